//! Client-side TLS for the load generator and the tests.
//!
//! [`ClientConfig`] describes what a client trusts and presents; it is built
//! once into a [`ClientTls`] (an OpenSSL context), and each connection gets a
//! [`TlsSession`] in client mode from it — the same bytes-in/bytes-out engine
//! the server uses. The one idea: **build the context once, and resume only
//! with sessions that context produced**: [`ClientSession`] remembers which
//! `ClientTls` made it, which is what makes resumption safe to offer.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslSession,
    SslSessionCacheMode, SslSessionRef, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;

use super::error::{TlsError, TlsErrorKind};
use super::session::TlsSession;

/// PEM data from a file or from memory (embedded test certificates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Bytes(Vec<u8>),
}

impl Pem {
    fn load(&self, what: &str) -> Result<Vec<u8>, String> {
        match self {
            Pem::File(path) => std::fs::read(path)
                .map_err(|e| format!("client TLS: {what}: cannot read {}: {e}", path.display())),
            Pem::Bytes(bytes) => Ok(bytes.clone()),
        }
    }
}

/// A protocol version to pin a client to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn openssl(self) -> SslVersion {
        match self {
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        }
    }
}

/// What a client trusts and presents.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// CA certificates to verify the server with; `None` uses the system's
    /// default trust store.
    pub ca: Option<Pem>,
    /// Client certificate chain (leaf first) and its key, for mTLS.
    pub cert: Option<Pem>,
    pub key: Option<Pem>,
    /// ALPN protocols to offer, in preference order.
    pub alpn: Vec<String>,
    /// Check that the server certificate names the host connected to.
    pub verify_hostname: bool,
    /// Pin the lowest / highest protocol version (default TLS 1.2 .. 1.3).
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// Offer session tickets (TLS 1.2 falls back to session ids without).
    pub session_tickets: bool,
    /// Key-exchange groups to offer (OpenSSL syntax); the client sends a
    /// key share for the first only, so a server preferring a later one
    /// answers with a HelloRetryRequest. `None`: OpenSSL's default.
    pub groups: Option<String>,
    /// TLS 1.2 cipher list (OpenSSL syntax); `None`: OpenSSL's default.
    pub ciphers: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            ca: None,
            cert: None,
            key: None,
            alpn: vec!["http/1.1".to_string()],
            verify_hostname: true,
            min_version: None,
            max_version: None,
            session_tickets: true,
            groups: None,
            ciphers: None,
        }
    }
}

impl ClientConfig {
    /// Builds the OpenSSL context. Errors name the field and the problem.
    pub fn build(&self) -> Result<ClientTls, String> {
        let e = |e: openssl::error::ErrorStack| format!("client TLS: {e}");
        let mut b = SslContextBuilder::new(SslMethod::tls_client()).map_err(e)?;
        b.set_min_proto_version(Some(
            self.min_version.unwrap_or(TlsVersion::Tls12).openssl(),
        ))
        .map_err(e)?;
        b.set_max_proto_version(Some(
            self.max_version.unwrap_or(TlsVersion::Tls13).openssl(),
        ))
        .map_err(e)?;
        b.set_mode(SslMode::RELEASE_BUFFERS);
        // Keeps the latest session (a TLS 1.3 ticket arrives after the
        // handshake) on the SSL so `ssl_session()` returns a resumable one.
        b.set_session_cache_mode(SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL);
        if !self.session_tickets {
            b.set_options(SslOptions::NO_TICKET);
        }
        if let Some(groups) = &self.groups {
            b.set_groups_list(groups)
                .map_err(|err| format!("client TLS: groups: `{groups}`: {err}"))?;
        }
        if let Some(ciphers) = &self.ciphers {
            b.set_cipher_list(ciphers)
                .map_err(|err| format!("client TLS: ciphers: `{ciphers}`: {err}"))?;
        }
        match &self.ca {
            Some(pem) => {
                let cas = X509::stack_from_pem(&pem.load("ca")?)
                    .map_err(|err| format!("client TLS: ca: not PEM: {err}"))?;
                if cas.is_empty() {
                    return Err("client TLS: ca: no certificates".to_string());
                }
                for ca in cas {
                    b.cert_store_mut().add_cert(ca).map_err(e)?;
                }
            }
            None => b.set_default_verify_paths().map_err(e)?,
        }
        b.set_verify(SslVerifyMode::PEER);
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = X509::stack_from_pem(&cert.load("cert")?)
                    .map_err(|err| format!("client TLS: cert: not PEM: {err}"))?;
                let mut chain = chain.into_iter();
                let leaf = chain
                    .next()
                    .ok_or_else(|| "client TLS: cert: no certificate".to_string())?;
                b.set_certificate(&leaf).map_err(e)?;
                for extra in chain {
                    b.add_extra_chain_cert(extra).map_err(e)?;
                }
                let key = PKey::private_key_from_pem(&key.load("key")?)
                    .map_err(|err| format!("client TLS: key: not a PEM private key: {err}"))?;
                if !leaf.public_key().is_ok_and(|public| public.public_eq(&key)) {
                    return Err("client TLS: key does not match cert".to_string());
                }
                b.set_private_key(&key).map_err(e)?;
            }
            (None, None) => {}
            _ => return Err("client TLS: cert and key must be given together".to_string()),
        }
        if !self.alpn.is_empty() {
            let mut wire = Vec::new();
            for protocol in &self.alpn {
                let len = u8::try_from(protocol.len())
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| "client TLS: alpn: names must be 1 to 255 bytes".to_string())?;
                wire.push(len);
                wire.extend_from_slice(protocol.as_bytes());
            }
            b.set_alpn_protos(&wire).map_err(e)?;
        }
        Ok(ClientTls {
            id: NEXT_CLIENT_TLS_ID.fetch_add(1, Ordering::Relaxed),
            context: b.build(),
            verify_hostname: self.verify_hostname,
        })
    }
}

/// Identifies each built [`ClientTls`] for the life of the process.
static NEXT_CLIENT_TLS_ID: AtomicU64 = AtomicU64::new(1);

/// A built client configuration; clone freely (reference counted).
#[derive(Clone)]
pub struct ClientTls {
    /// Unique per `build()`; clones share it, as they share the context.
    id: u64,
    context: SslContext,
    verify_hostname: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("verify_hostname", &self.verify_hostname)
            .finish_non_exhaustive()
    }
}

/// A session saved for resumption, tied to the [`ClientTls`] that made it.
#[derive(Clone)]
pub struct ClientSession {
    session: SslSession,
    /// The `ClientTls::id` that made it.
    origin: u64,
}

impl ClientSession {
    pub fn session(&self) -> &SslSessionRef {
        &self.session
    }
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession").finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A client engine. `server_name` is sent as SNI (unless it is an IP
    /// address, which SNI may not carry) and, with `verify_hostname`, checked
    /// against the server certificate. `resume` offers a saved session; it
    /// must come from the same `ClientTls`.
    pub fn client(
        tls: &ClientTls,
        server_name: Option<&str>,
        resume: Option<&ClientSession>,
    ) -> Result<TlsSession, TlsError> {
        let internal =
            |e: openssl::error::ErrorStack| TlsError::new(TlsErrorKind::Internal, e.to_string());
        let mut ssl = Ssl::new(&tls.context).map_err(internal)?;
        ssl.set_connect_state();
        if let Some(name) = server_name {
            match name.parse::<IpAddr>() {
                Ok(ip) if tls.verify_hostname => ssl.param_mut().set_ip(ip).map_err(internal)?,
                Ok(_) => {}
                Err(_) => {
                    ssl.set_hostname(name).map_err(internal)?;
                    if tls.verify_hostname {
                        ssl.param_mut().set_host(name).map_err(internal)?;
                    }
                }
            }
        }
        if let Some(saved) = resume {
            if saved.origin != tls.id {
                return Err(TlsError::new(
                    TlsErrorKind::Internal,
                    "a session can only be resumed with the ClientTls that made it",
                ));
            }
            // SAFETY: `set_session` requires the session to come from this
            // SSL's context. A `ClientSession` is only made by
            // `ssl_session()` of a session built from a `ClientTls`, and
            // carries that `ClientTls`'s unique id, checked just above.
            unsafe { ssl.set_session(&saved.session) }.map_err(internal)?;
        }
        TlsSession::client_from_ssl(ssl, tls.id)
    }

    /// The session to offer for resumption next time (client side; for TLS
    /// 1.3 only after the server's ticket has been processed, i.e. after a
    /// `process` call following the handshake).
    pub fn ssl_session(&self) -> Option<ClientSession> {
        Some(ClientSession {
            session: self.ssl().session()?.to_owned(),
            origin: self.client_origin()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::dev_certs::CA_PEM;
    use crate::tls::test_support::*;
    use crate::tls::TlsGate;

    fn verifying_client() -> ClientTls {
        ClientConfig {
            ca: Some(Pem::Bytes(CA_PEM.to_vec())),
            ..ClientConfig::default()
        }
        .build()
        .unwrap()
    }

    #[test]
    fn the_server_name_is_checked_against_the_certificate() {
        let gate = TlsGate::development().unwrap();
        let tls = verifying_client();
        for name in ["localhost", "mtls.localhost", "127.0.0.1", "::1"] {
            let mut pair = Pair::new(&gate, &tls, Some(name));
            let (client, _) = pair.run();
            // mtls.localhost wants a client certificate, but the client's
            // own check of the server passed if it got that far.
            if name != "mtls.localhost" {
                client.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        let mut pair = Pair::new(&gate, &tls, Some("example.com"));
        let (client, _) = pair.run();
        let error = client.unwrap_err();
        assert_eq!(error.reason(), "handshake_failed");
        assert!(
            error.message().contains("certificate verify failed"),
            "{error}"
        );
    }

    #[test]
    fn an_untrusted_server_is_refused() {
        let gate = TlsGate::development().unwrap();
        let tls = ClientConfig {
            ca: Some(Pem::Bytes(crate::tls::dev_certs::OTHER_CA_PEM.to_vec())),
            ..ClientConfig::default()
        }
        .build()
        .unwrap();
        let mut pair = Pair::new(&gate, &tls, Some("localhost"));
        let (client, _) = pair.run();
        assert_eq!(client.unwrap_err().reason(), "handshake_failed");
    }

    #[test]
    fn sessions_resume_only_with_the_config_that_made_them() {
        let gate = TlsGate::development().unwrap();
        let tls = verifying_client();
        let mut pair = connected(&gate, &tls, Some("localhost"));
        pair.client.close();
        pair.server.close();
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        let session = pair.client.ssl_session().unwrap();
        let other = verifying_client();
        let error = TlsSession::client(&other, Some("localhost"), Some(&session)).unwrap_err();
        assert_eq!(error.reason(), "internal");
        let resumed = TlsSession::client(&tls.clone(), Some("localhost"), Some(&session)).unwrap();
        let mut pair = Pair::with_client(&gate, resumed);
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        assert!(pair.client.session_reused());
    }

    #[test]
    fn bad_client_configs_say_what_is_wrong() {
        let only_cert = ClientConfig {
            cert: Some(Pem::Bytes(crate::tls::dev_certs::CLIENT_CERT_PEM.to_vec())),
            ..ClientConfig::default()
        };
        assert!(only_cert.build().unwrap_err().contains("together"));
        let missing = ClientConfig {
            ca: Some(Pem::File(PathBuf::from("/nonexistent/ca.pem"))),
            ..ClientConfig::default()
        };
        let e = missing.build().unwrap_err();
        assert!(e.contains("ca") && e.contains("/nonexistent/ca.pem"), "{e}");
        let mismatched = ClientConfig {
            cert: Some(Pem::Bytes(crate::tls::dev_certs::CLIENT_CERT_PEM.to_vec())),
            key: Some(Pem::Bytes(
                crate::tls::dev_certs::OTHER_CLIENT_KEY_PEM.to_vec(),
            )),
            ..ClientConfig::default()
        };
        assert!(mismatched.build().unwrap_err().contains("does not match"));
    }
}
