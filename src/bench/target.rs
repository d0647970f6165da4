//! The server under test, as the bench sees it: an address, and, for TLS,
//! a client context built once from `--sni --ca --cert --key`.
//!
//! The one idea: **build the expensive things once per run, not per
//! connection** — the OpenSSL context (certificate store, client key) is
//! shared by every connection of every thread, and each connection only
//! gets a cheap [`TlsSession`] from it.

use std::net::SocketAddr;

use backends::BackendKind;

use super::args::TargetFlags;
use super::client::Failure;
use crate::tls::{dev_certs, ClientConfig, ClientSession, ClientTls, Pem, TlsSession, TlsVersion};

/// Everything a thread needs to open connections to the server.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Some` when connections speak TLS.
    pub tls: Option<ClientTls>,
    pub sni: String,
    /// The bench's own reactor backend.
    pub backend: BackendKind,
}

impl Target {
    /// Builds the target from flags; `force_tls` for scenarios that only
    /// make sense over TLS (handshakes).
    pub fn from_args(flags: &impl TargetFlags, force_tls: bool) -> Result<Target, String> {
        let args = flags.server();
        let backend = match &args.client_backend {
            Some(name) => {
                backends::parse_backend(name).map_err(|e| format!("--client-backend: {e}"))?
            }
            None => BackendKind::best(),
        };
        let tls = if flags.tls_requested() || force_tls {
            let version = args.tls_version.as_deref().map(|v| match v {
                "1.2" => TlsVersion::Tls12,
                _ => TlsVersion::Tls13,
            });
            let config = ClientConfig {
                ca: Some(match &args.ca {
                    Some(path) => Pem::File(path.clone()),
                    None => Pem::Bytes(dev_certs::CA_PEM.to_vec()),
                }),
                cert: args.cert.clone().map(Pem::File),
                key: args.key.clone().map(Pem::File),
                // The bench protocols are raw bytes, not HTTP: offer nothing.
                alpn: Vec::new(),
                verify_hostname: true,
                min_version: version,
                max_version: version,
                session_tickets: true,
                ..ClientConfig::default()
            };
            Some(config.build()?)
        } else {
            None
        };
        Ok(Target {
            addr: args.addr,
            tls,
            sni: args.sni.clone(),
            backend,
        })
    }

    /// A fresh client engine for one connection (`None` for plaintext),
    /// offering `resume` when given.
    pub fn session(&self, resume: Option<&ClientSession>) -> Result<Option<TlsSession>, Failure> {
        match &self.tls {
            Some(tls) => TlsSession::client(tls, Some(&self.sni), resume)
                .map(Some)
                .map_err(Failure::Tls),
            None => Ok(None),
        }
    }

    /// How the report's "Transport" line describes it.
    pub fn describe(&self) -> String {
        match &self.tls {
            Some(_) => format!("TLS (SNI {})", self.sni),
            None => "plain".to_string(),
        }
    }

    /// "plain" or "tls", for reports.
    pub fn transport(&self) -> &'static str {
        if self.tls.is_some() {
            "tls"
        } else {
            "plain"
        }
    }
}
