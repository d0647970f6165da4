//! Domain policies and the gate that applies them during the handshake.
//!
//! A [`DomainSpec`] (one `[[domains]]` entry of the config) names a set of
//! server names, the certificate to present for them, and how much to demand
//! of a client certificate. [`TlsGate`] loads them into one OpenSSL context
//! per domain and starts every connection on an *initial* context whose only
//! job is to look at the ClientHello's SNI and switch to the right domain.
//!
//! The one idea: **the SNI picks the policy, and everything that enforces
//! the policy must come from the picked domain**, not from the context the
//! connection started on. OpenSSL makes that easy to get wrong:
//!
//! * The switch happens in the *ClientHello* callback, not the servername
//!   callback. OpenSSL decides on resumption (checking the offered session's
//!   session id context against the `SSL`'s) *before* it runs the servername
//!   callback, so switching there leaves every session stamped with, and
//!   checked against, the initial context's id: a session made for
//!   `localhost` then resumes under `mtls.localhost` without a client
//!   certificate (the nginx CVE-2025-23419 class). The tests caught exactly
//!   that with a servername-callback switch. The ClientHello callback runs
//!   first, so each domain's own session id context is in force when
//!   OpenSSL looks the session up, and a foreign session is simply not
//!   resumed (a full handshake follows). The servername callback remains to
//!   acknowledge the SNI and to refuse a changed SNI in a ClientHello
//!   repeated after HelloRetryRequest.
//! * `SSL_set_SSL_CTX` swaps certificate, CA store, client-CA list and
//!   session id context but *not* the verify mode, depth or options, which
//!   `SSL_new` copied from the initial context. The callback sets verify
//!   mode and depth on the `SSL` itself, and every option that matters is
//!   set identically on all contexts.
//! * Defence in depth: after every handshake the session re-checks that a
//!   domain requiring a client certificate really has a verified one.
//!
//! The tests resume across domains with TLS 1.2 session ids, TLS 1.2
//! tickets and TLS 1.3 tickets, and check that same-domain resumption works.
//! Sessions stay resumable only after an orderly close
//! ([`TlsSession::close`]): OpenSSL evicts the session of a connection freed
//! without one.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    AlpnError, ClientHelloResponse, NameType, SniError, Ssl, SslAlert, SslContext,
    SslContextBuilder, SslMethod, SslMode, SslOptions, SslRef, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};
use openssl::x509::X509;
use serde::{Deserialize, Deserializer};

use crate::domains::{ClientAuth, DomainRule, DomainRules, NameTable};

use super::error::{TlsError, TlsErrorKind};
use super::session::TlsSession;

/// How long a certificate chain the gate will verify.
const VERIFY_DEPTH: u32 = 8;
/// Sessions kept for id-based resumption (shared by all domains; each entry
/// is a few hundred bytes plus the client certificate, if any).
const SESSION_CACHE_SIZE: i32 = 10_000;
/// TLS 1.3 tickets sent per full handshake; clients reuse one at a time.
const TICKETS_PER_HANDSHAKE: usize = 1;

/// One domain as written in the configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Server names (`example.com`) and wildcards (`*.example.com`). The
    /// first is the domain's display name. IP addresses are not names: a
    /// client connecting to an address sends no SNI, which `no_sni` handles.
    pub names: Vec<String>,
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the leaf's private key.
    pub key: PathBuf,
    /// `"none"`, `"optional"` or `"required"`.
    #[serde(default, deserialize_with = "deserialize_client_auth")]
    pub client_auth: ClientAuth,
    /// PEM file with the CA certificates trusted for client certificates;
    /// required unless `client_auth` is `"none"`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

fn deserialize_client_auth<'de, D: Deserializer<'de>>(d: D) -> Result<ClientAuth, D::Error> {
    let text = String::deserialize(d)?;
    ClientAuth::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "client_auth must be \"none\", \"optional\" or \"required\", not {text:?}"
        ))
    })
}

impl DomainSpec {
    /// Makes relative `cert`, `key` and `client_ca` paths relative to `base`
    /// (the config file's directory), so a config works from any directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.cert);
        resolve(&mut self.key);
        if let Some(ca) = &mut self.client_ca {
            resolve(ca);
        }
    }

    /// Reads and checks the files. `origin` says where the spec came from
    /// (e.g. `portcullis.toml: domains[1]`) and starts every error message.
    pub fn load(&self, origin: &str) -> Result<Domain, String> {
        let cert = read_file(origin, "cert", &self.cert)?;
        let key = read_file(origin, "key", &self.key)?;
        let client_ca = match &self.client_ca {
            Some(path) => Some((
                read_file(origin, "client_ca", path)?,
                path.display().to_string(),
            )),
            None => None,
        };
        Domain::from_pem(
            origin,
            &self.names,
            (&cert, &self.cert.display().to_string()),
            (&key, &self.key.display().to_string()),
            self.client_auth,
            client_ca
                .as_ref()
                .map(|(pem, label)| (pem.as_slice(), label.as_str())),
        )
    }
}

fn read_file(origin: &str, key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{origin}: {key}: cannot read {}: {e}", path.display()))
}

/// A domain whose certificate, key and CA have been parsed and checked.
#[derive(Clone)]
pub struct Domain {
    origin: String,
    names: Vec<String>,
    chain: Vec<X509>,
    key: PKey<Private>,
    client_auth: ClientAuth,
    client_ca: Vec<X509>,
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Domain")
            .field("origin", &self.origin)
            .field("names", &self.names)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl Domain {
    /// Builds a domain from PEM bytes. Each PEM comes with a label (its path,
    /// or "embedded ...") for error messages; `client_ca` must be given
    /// exactly when `client_auth` is not `None`.
    pub fn from_pem(
        origin: &str,
        names: &[String],
        cert: (&[u8], &str),
        key: (&[u8], &str),
        client_auth: ClientAuth,
        client_ca: Option<(&[u8], &str)>,
    ) -> Result<Domain, String> {
        if names.is_empty() {
            return Err(format!(
                "{origin}: names: at least one server name is required"
            ));
        }
        for name in names {
            if name.parse::<IpAddr>().is_ok() {
                return Err(format!(
                    "{origin}: names: `{name}` is an IP address; clients connecting to an \
                     address send no SNI, so choose its domain with `no_sni` instead"
                ));
            }
            // Validates the pattern now so the message names this domain.
            NameTable::new()
                .insert(name, 0)
                .map_err(|e| format!("{origin}: names: {e}"))?;
        }
        let (cert_pem, cert_label) = cert;
        let chain = X509::stack_from_pem(cert_pem)
            .map_err(|e| format!("{origin}: cert: {cert_label} is not PEM certificates: {e}"))?;
        let Some(leaf) = chain.first() else {
            return Err(format!(
                "{origin}: cert: {cert_label} contains no certificate"
            ));
        };
        let (key_pem, key_label) = key;
        let private = PKey::private_key_from_pem(key_pem)
            .map_err(|e| format!("{origin}: key: {key_label} is not a PEM private key: {e}"))?;
        let public = leaf
            .public_key()
            .map_err(|e| format!("{origin}: cert: {cert_label}: unreadable public key: {e}"))?;
        if !public.public_eq(&private) {
            return Err(format!(
                "{origin}: key: {key_label} does not match the certificate in {cert_label}"
            ));
        }
        let client_ca = match (client_auth, client_ca) {
            (ClientAuth::None, None) => Vec::new(),
            (ClientAuth::None, Some((_, label))) => {
                return Err(format!(
                    "{origin}: client_ca: {label} is set but client_auth is \"none\"; \
                     set client_auth to \"optional\" or \"required\", or remove client_ca"
                ))
            }
            (auth, None) => {
                return Err(format!(
                    "{origin}: client_ca: required when client_auth is \"{}\"",
                    auth.as_str()
                ))
            }
            (_, Some((pem, label))) => {
                let cas = X509::stack_from_pem(pem)
                    .map_err(|e| format!("{origin}: client_ca: {label} is not PEM: {e}"))?;
                if cas.is_empty() {
                    return Err(format!("{origin}: client_ca: {label} has no certificates"));
                }
                cas
            }
        };
        Ok(Domain {
            origin: origin.to_string(),
            names: names.to_vec(),
            chain,
            key: private,
            client_auth,
            client_ca,
        })
    }
}

/// What to do with a ClientHello whose SNI no domain lists, or that has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SniFallback {
    /// Admit it under the domain that lists this name.
    Default(String),
    /// Abort the handshake with an `unrecognized_name` alert.
    Reject,
}

impl SniFallback {
    /// `"reject"`, or the name of the default domain.
    pub fn parse(text: &str) -> SniFallback {
        match text {
            "reject" => SniFallback::Reject,
            name => SniFallback::Default(name.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for SniFallback {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SniFallback::parse(&String::deserialize(d)?))
    }
}

/// Gate-wide choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateOptions {
    /// For an SNI that no domain lists.
    pub unknown_sni: SniFallback,
    /// For a ClientHello without SNI (e.g. a client connecting to an IP).
    pub no_sni: SniFallback,
    /// ALPN protocols offered, in server preference order. Default: `h2`
    /// then `http/1.1`, as nginx offers with `http2 on`.
    pub alpn: Vec<String>,
}

impl Default for GateOptions {
    fn default() -> GateOptions {
        GateOptions {
            unknown_sni: SniFallback::Reject,
            no_sni: SniFallback::Reject,
            alpn: vec!["h2".to_string(), "http/1.1".to_string()],
        }
    }
}

/// What the servername callback decided, stored in the `SSL`'s ex_data so
/// the session can report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Admission {
    /// Index of the admitting domain.
    pub domain: Option<usize>,
    /// The handshake was aborted because of the SNI (or its absence).
    pub sni_rejected: bool,
}

/// The process-wide ex_data slot for [`Admission`]. OpenSSL never frees
/// ex_data indexes, so one is made once, not per gate.
pub(crate) fn admission_index() -> Result<openssl::ex_data::Index<Ssl, Admission>, TlsError> {
    static INDEX: OnceLock<Option<openssl::ex_data::Index<Ssl, Admission>>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index().ok())
        .ok_or_else(|| TlsError::new(TlsErrorKind::Internal, "no OpenSSL ex_data index"))
}

/// One loaded domain, as the handshake and the sessions see it.
pub(crate) struct DomainEntry {
    pub name: Arc<str>,
    pub client_auth: ClientAuth,
    context: SslContext,
}

impl DomainEntry {
    fn verify_mode(&self) -> SslVerifyMode {
        verify_mode(self.client_auth)
    }
}

fn verify_mode(auth: ClientAuth) -> SslVerifyMode {
    match auth {
        ClientAuth::None => SslVerifyMode::NONE,
        ClientAuth::Optional => SslVerifyMode::PEER,
        ClientAuth::Required => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
    }
}

/// The read-only state shared by the servername callback and every session.
pub(crate) struct GateShared {
    domains: Vec<DomainEntry>,
    names: NameTable,
    unknown_sni: Option<usize>,
    no_sni: Option<usize>,
}

impl GateShared {
    pub(crate) fn domain(&self, index: usize) -> &DomainEntry {
        &self.domains[index]
    }

    /// The domain for a ClientHello's server name (or its absence).
    fn resolve(&self, sni: Option<&str>) -> Option<usize> {
        match sni {
            Some(name) => self.names.lookup(name).or(self.unknown_sni),
            None => self.no_sni,
        }
    }

    /// The ClientHello callback: pick the domain and make the `SSL` enforce
    /// *its* policy, before OpenSSL looks at the offered session.
    fn on_client_hello(
        &self,
        ssl: &mut SslRef,
        alert: &mut SslAlert,
    ) -> Result<ClientHelloResponse, ErrorStack> {
        let Ok(sni) = client_hello_server_name(ssl) else {
            *alert = SslAlert::DECODE_ERROR;
            return Err(ErrorStack::get());
        };
        match self.admit(ssl, sni.as_deref(), alert) {
            Ok(()) => Ok(ClientHelloResponse::SUCCESS),
            Err(()) => Err(ErrorStack::get()),
        }
    }

    /// The servername callback, which OpenSSL runs after it has parsed the
    /// ClientHello. The choice was made in `on_client_hello`; here it is only
    /// confirmed (a TLS 1.3 ClientHello repeated after HelloRetryRequest
    /// reaches only this callback and must not switch domains), and
    /// returning success acknowledges the SNI to the client.
    fn on_servername(&self, ssl: &mut SslRef, alert: &mut SslAlert) -> Result<(), SniError> {
        let recorded = admission_index()
            .ok()
            .and_then(|slot| ssl.ex_data(slot))
            .and_then(|a| a.domain);
        let sni = ssl.servername(NameType::HOST_NAME).map(str::to_owned);
        match recorded {
            Some(index) if self.resolve(sni.as_deref()) == Some(index) => Ok(()),
            Some(_) => {
                *alert = SslAlert::ILLEGAL_PARAMETER;
                Err(SniError::ALERT_FATAL)
            }
            // Unreachable while the ClientHello callback is installed; kept
            // so the policy holds even if that ever changes.
            None => self
                .admit(ssl, sni.as_deref(), alert)
                .map_err(|()| SniError::ALERT_FATAL),
        }
    }

    /// Switches `ssl` to the domain for `sni` and records the choice, or
    /// sets `alert` and fails.
    fn admit(&self, ssl: &mut SslRef, sni: Option<&str>, alert: &mut SslAlert) -> Result<(), ()> {
        let Ok(slot) = admission_index() else {
            *alert = SslAlert::INTERNAL_ERROR;
            return Err(());
        };
        let Some(index) = self.resolve(sni) else {
            ssl.set_ex_data(
                slot,
                Admission {
                    domain: None,
                    sni_rejected: true,
                },
            );
            *alert = SslAlert::UNRECOGNIZED_NAME;
            return Err(());
        };
        let domain = &self.domains[index];
        if ssl.set_ssl_context(&domain.context).is_err() {
            *alert = SslAlert::INTERNAL_ERROR;
            return Err(());
        }
        // SSL_set_SSL_CTX copies the session id context but not these.
        ssl.set_verify(domain.verify_mode());
        ssl.param_mut().set_depth(VERIFY_DEPTH as i32);
        ssl.set_ex_data(
            slot,
            Admission {
                domain: Some(index),
                sni_rejected: false,
            },
        );
        Ok(())
    }
}

/// The host name in the ClientHello being processed, read from the raw
/// server_name extension (RFC 6066 §3): `Ok(None)` when there is none,
/// `Err(())` when the extension is malformed.
fn client_hello_server_name(ssl: &mut SslRef) -> Result<Option<String>, ()> {
    const TLSEXT_TYPE_SERVER_NAME: u32 = 0;
    const HOST_NAME: u8 = 0;
    let mut data: *const u8 = std::ptr::null();
    let mut len: usize = 0;
    // SAFETY: an `&mut SslRef` is the `SSL*` itself (the openssl crate's
    // foreign-type references point at the C object), and this runs inside
    // the ClientHello callback, the only time SSL_client_hello_get0_ext may
    // be called. On success OpenSSL points `data` at `len` bytes it owns
    // until the callback returns; the slice is copied out before that.
    let extension = unsafe {
        let raw = ssl as *mut SslRef as *mut openssl_sys::SSL;
        if openssl_sys::SSL_client_hello_get0_ext(raw, TLSEXT_TYPE_SERVER_NAME, &mut data, &mut len)
            != 1
            || data.is_null()
        {
            return Ok(None);
        }
        std::slice::from_raw_parts(data, len)
    };
    let (list, rest) = split_u16_prefixed(extension)?;
    if !rest.is_empty() {
        return Err(());
    }
    let mut entries = list;
    while let Some((&name_type, tail)) = entries.split_first() {
        let (name, tail) = split_u16_prefixed(tail)?;
        if name_type == HOST_NAME {
            return std::str::from_utf8(name)
                .map(|n| Some(n.to_string()))
                .map_err(|_| ());
        }
        entries = tail;
    }
    Ok(None)
}

/// Splits a 16-bit length-prefixed vector off the front of `bytes`.
fn split_u16_prefixed(bytes: &[u8]) -> Result<(&[u8], &[u8]), ()> {
    let [high, low, rest @ ..] = bytes else {
        return Err(());
    };
    let len = usize::from(*high) << 8 | usize::from(*low);
    if rest.len() < len {
        return Err(());
    }
    Ok(rest.split_at(len))
}

/// The TLS side of the port: builds a [`TlsSession`] per accepted TLS
/// connection. Cheap to share (`Arc` inside); build once, use from every
/// worker.
#[derive(Clone)]
pub struct TlsGate {
    initial: SslContext,
    shared: Arc<GateShared>,
}

impl fmt::Debug for TlsGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.shared.domains.iter().map(|d| &*d.name).collect();
        f.debug_struct("TlsGate")
            .field("domains", &names)
            .finish_non_exhaustive()
    }
}

impl TlsGate {
    /// Loads every spec (each with its origin for error messages) and builds
    /// the gate.
    pub fn from_specs(
        specs: &[(String, DomainSpec)],
        options: &GateOptions,
    ) -> Result<TlsGate, String> {
        let domains = specs
            .iter()
            .map(|(origin, spec)| spec.load(origin))
            .collect::<Result<Vec<_>, _>>()?;
        TlsGate::new(&domains, options)
    }

    /// Builds the gate from the config file's `[[domains]]` and `[tls]`.
    /// `origin` names the file; domain errors say `FILE: domains[i]: key: ...`.
    /// Unset `unknown_sni` / `no_sni` default to the first domain, unset
    /// `alpn` to `["h2", "http/1.1"]`.
    pub fn from_config(
        specs: &[DomainSpec],
        tls: &crate::config::TlsConfig,
        origin: &str,
    ) -> Result<TlsGate, String> {
        let domains = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| spec.load(&format!("{origin}: domains[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let first = || {
            specs
                .first()
                .and_then(|s| s.names.first())
                .map_or(SniFallback::Reject, |n| SniFallback::Default(n.clone()))
        };
        let options = GateOptions {
            unknown_sni: tls
                .unknown_sni
                .as_deref()
                .map_or_else(first, SniFallback::parse),
            no_sni: tls.no_sni.as_deref().map_or_else(first, SniFallback::parse),
            alpn: tls
                .alpn
                .clone()
                .unwrap_or_else(|| GateOptions::default().alpn),
        };
        TlsGate::new(&domains, &options).map_err(|e| match e.strip_prefix("tls: ") {
            Some(rest) => format!("{origin}: tls.{rest}"),
            None => e,
        })
    }

    /// Builds the gate from loaded domains.
    pub fn new(domains: &[Domain], options: &GateOptions) -> Result<TlsGate, String> {
        if domains.is_empty() {
            return Err("tls: at least one domain is required".to_string());
        }
        let alpn = Arc::new(
            options
                .alpn
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        );
        for protocol in alpn.iter() {
            if protocol.is_empty() || protocol.len() > 255 {
                return Err("tls: alpn: protocol names must be 1 to 255 bytes".to_string());
            }
        }
        let mut names = NameTable::new();
        let mut entries = Vec::with_capacity(domains.len());
        for (index, domain) in domains.iter().enumerate() {
            for name in &domain.names {
                names
                    .insert(name, index)
                    .map_err(|e| format!("{}: names: {e}", domain.origin))?;
            }
            let context = domain_context(domain, index, &alpn)
                .map_err(|e| format!("{}: cannot build TLS context: {e}", domain.origin))?;
            entries.push(DomainEntry {
                name: Arc::from(domain.names[0].as_str()),
                client_auth: domain.client_auth,
                context,
            });
        }
        let resolve = |what: &str, fallback: &SniFallback| match fallback {
            SniFallback::Reject => Ok(None),
            SniFallback::Default(name) => names
                .lookup(name)
                .map(Some)
                .ok_or_else(|| format!("tls: {what}: `{name}` is not a name of any domain")),
        };
        let unknown_sni = resolve("unknown_sni", &options.unknown_sni)?;
        let no_sni = resolve("no_sni", &options.no_sni)?;
        let shared = Arc::new(GateShared {
            domains: entries,
            names,
            unknown_sni,
            no_sni,
        });
        let initial = initial_context(&shared, &alpn)
            .map_err(|e| format!("tls: cannot build the initial TLS context: {e}"))?;
        Ok(TlsGate { initial, shared })
    }

    /// The built-in development gate, from certificates embedded in the
    /// binary: `localhost` (and `*.localhost`, and any connection without
    /// SNI or with an unknown one) without client certificates, and
    /// `mtls.localhost` requiring a client certificate from the dev CA.
    pub fn development() -> Result<TlsGate, String> {
        use super::dev_certs::{CA_PEM, SERVER_CERT_PEM, SERVER_KEY_PEM};
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            log::warn!(
                "TLS uses the built-in DEVELOPMENT certificates (certs/): their private keys \
                 are public; configure real certificates for anything but local testing"
            );
        });
        let cert = (SERVER_CERT_PEM, "embedded certs/server.pem");
        let key = (SERVER_KEY_PEM, "embedded certs/server.key");
        let localhost = Domain::from_pem(
            "development domain localhost",
            &["localhost".to_string(), "*.localhost".to_string()],
            cert,
            key,
            ClientAuth::None,
            None,
        )?;
        let mtls = Domain::from_pem(
            "development domain mtls.localhost",
            &["mtls.localhost".to_string()],
            cert,
            key,
            ClientAuth::Required,
            Some((CA_PEM, "embedded certs/ca.pem")),
        )?;
        let options = GateOptions {
            unknown_sni: SniFallback::Default("localhost".to_string()),
            no_sni: SniFallback::Default("localhost".to_string()),
            ..GateOptions::default()
        };
        TlsGate::new(&[localhost, mtls], &options)
    }

    /// A server engine for one accepted TLS connection.
    pub fn new_session(&self) -> Result<TlsSession, TlsError> {
        let mut ssl = Ssl::new(&self.initial)
            .map_err(|e| TlsError::new(TlsErrorKind::Internal, e.to_string()))?;
        ssl.set_accept_state();
        TlsSession::from_ssl(ssl, Some(self.shared.clone()), 0)
    }

    /// Every domain's name and client-auth rule, for services (the HTTP
    /// service checks `Host` against the handshake's domain with these).
    pub fn domain_rules(&self) -> DomainRules {
        DomainRules {
            rules: self
                .shared
                .domains
                .iter()
                .map(|d| DomainRule {
                    name: d.name.clone(),
                    client_auth: d.client_auth,
                })
                .collect(),
            names: self.shared.names.clone(),
            fallback: self.shared.unknown_sni,
        }
    }
}

/// Settings every server context shares. They must be identical on the
/// initial and the domain contexts because an `SSL` keeps the options,
/// versions and mode it copied from the initial one.
fn common_server_settings(
    b: &mut SslContextBuilder,
    alpn: &Arc<Vec<Vec<u8>>>,
) -> Result<(), String> {
    let e = |e: openssl::error::ErrorStack| e.to_string();
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(e)?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(e)?;
    b.set_options(SslOptions::NO_RENEGOTIATION | SslOptions::CIPHER_SERVER_PREFERENCE);
    // Frees OpenSSL's 16 KiB+ record buffers whenever they are empty: the
    // dominant cost of an idle connection otherwise.
    b.set_mode(SslMode::RELEASE_BUFFERS);
    b.set_session_cache_mode(SslSessionCacheMode::SERVER);
    b.set_session_cache_size(SESSION_CACHE_SIZE);
    b.set_num_tickets(TICKETS_PER_HANDSHAKE).map_err(e)?;
    let alpn = alpn.clone();
    // Looked up on whichever context the SSL has at that moment, so every
    // context installs it.
    b.set_alpn_select_callback(move |_ssl, client| {
        select_alpn(&alpn, client).ok_or(AlpnError::NOACK)
    });
    Ok(())
}

/// The first of our protocols (server preference) that the client offers,
/// as a slice of the client's list (OpenSSL wants a pointer into it).
fn select_alpn<'a>(ours: &[Vec<u8>], client: &'a [u8]) -> Option<&'a [u8]> {
    let mut offered = Vec::new();
    let mut rest = client;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || tail.len() < len {
            return None;
        }
        offered.push(&tail[..len]);
        rest = &tail[len..];
    }
    ours.iter()
        .find_map(|want| offered.iter().find(|p| **p == want.as_slice()).copied())
}

/// A session id context: OpenSSL resumes a session only under the context
/// it was created with. It digests everything that makes up the policy, so
/// two domains never share one (SSL_MAX_SID_CTX_LENGTH is 32 = SHA-256).
fn session_id_context(parts: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut hasher = Hasher::new(MessageDigest::sha256()).map_err(|e| e.to_string())?;
    for part in parts {
        hasher
            .update(&(part.len() as u64).to_be_bytes())
            .map_err(|e| e.to_string())?;
        hasher.update(part).map_err(|e| e.to_string())?;
    }
    Ok(hasher.finish().map_err(|e| e.to_string())?.to_vec())
}

fn domain_context(
    domain: &Domain,
    index: usize,
    alpn: &Arc<Vec<Vec<u8>>>,
) -> Result<SslContext, String> {
    let e = |e: openssl::error::ErrorStack| e.to_string();
    let mut b = SslContextBuilder::new(SslMethod::tls_server()).map_err(e)?;
    common_server_settings(&mut b, alpn)?;
    let mut chain = domain.chain.iter();
    if let Some(leaf) = chain.next() {
        b.set_certificate(leaf).map_err(e)?;
    }
    for extra in chain {
        b.add_extra_chain_cert(extra.clone()).map_err(e)?;
    }
    b.set_private_key(&domain.key).map_err(e)?;
    b.check_private_key().map_err(e)?;
    let mut ca_digests = Vec::new();
    for ca in &domain.client_ca {
        b.cert_store_mut().add_cert(ca.clone()).map_err(e)?;
        b.add_client_ca(ca).map_err(e)?;
        ca_digests.extend_from_slice(&ca.digest(MessageDigest::sha256()).map_err(e)?);
    }
    b.set_verify(verify_mode(domain.client_auth));
    b.set_verify_depth(VERIFY_DEPTH);
    let sid = session_id_context(&[
        b"portcullis domain",
        &(index as u64).to_be_bytes(),
        domain.names.join(",").as_bytes(),
        domain.client_auth.as_str().as_bytes(),
        &ca_digests,
    ])?;
    b.set_session_id_context(&sid).map_err(e)?;
    Ok(b.build())
}

/// The context every connection starts on. It has no certificate: the
/// servername callback always switches to a domain's context before one is
/// needed, or aborts the handshake.
fn initial_context(
    shared: &Arc<GateShared>,
    alpn: &Arc<Vec<Vec<u8>>>,
) -> Result<SslContext, String> {
    let e = |e: openssl::error::ErrorStack| e.to_string();
    let mut b = SslContextBuilder::new(SslMethod::tls_server()).map_err(e)?;
    common_server_settings(&mut b, alpn)?;
    b.set_verify(SslVerifyMode::NONE);
    let sid = session_id_context(&[b"portcullis initial context"])?;
    b.set_session_id_context(&sid).map_err(e)?;
    let selector = shared.clone();
    b.set_client_hello_callback(move |ssl, alert| selector.on_client_hello(ssl, alert));
    let confirmer = shared.clone();
    b.set_servername_callback(move |ssl, alert| confirmer.on_servername(ssl, alert));
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection_info::Transport;
    use crate::tls::dev_certs::{CA_PEM, OTHER_CA_PEM};
    use crate::tls::test_support::*;
    use crate::tls::{ClientConfig, TlsVersion};

    /// Two domains that both require a client certificate, each trusting a
    /// different CA, listed in the given order.
    fn two_ca_gate(dev_first: bool) -> TlsGate {
        let dev = domain(&["dev.localhost"], ClientAuth::Required, Some(CA_PEM));
        let other = domain(
            &["other.localhost"],
            ClientAuth::Required,
            Some(OTHER_CA_PEM),
        );
        let domains = if dev_first {
            [dev, other]
        } else {
            [other, dev]
        };
        let options = GateOptions {
            no_sni: SniFallback::Default("dev.localhost".to_string()),
            ..GateOptions::default()
        };
        TlsGate::new(&domains, &options).unwrap()
    }

    #[test]
    fn the_selected_domains_ca_is_the_one_that_verifies() {
        for dev_first in [true, false] {
            let gate = two_ca_gate(dev_first);
            for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
                for (sni, cert, admitted_cn) in [
                    ("dev.localhost", ClientCert::Dev, Some("dev-client")),
                    ("dev.localhost", ClientCert::Foreign, None),
                    ("other.localhost", ClientCert::Foreign, Some("intruder")),
                    ("other.localhost", ClientCert::Dev, None),
                ] {
                    let what = format!("dev_first={dev_first} {version:?} {sni} {cert:?}");
                    let mut pair = Pair::new(&gate, &client_with_version(cert, version), Some(sni));
                    let (_, server) = pair.run();
                    match admitted_cn {
                        Some(cn) => {
                            server.unwrap();
                            let info = pair.server.info(&base_info());
                            assert_eq!(info.transport, Transport::Mtls, "{what}");
                            assert_eq!(info.client_cn.as_deref(), Some(cn), "{what}");
                            assert_eq!(info.domain.as_deref(), Some(sni), "{what}");
                        }
                        None => {
                            let error = server.expect_err(&what);
                            assert_eq!(error.reason(), "bad_client_cert", "{what}: {error}");
                        }
                    }
                }
            }
        }
    }

    /// Connects, lets the client take in any ticket, and returns the session.
    fn saved_session(
        gate: &TlsGate,
        tls: &crate::tls::ClientTls,
        sni: &str,
    ) -> crate::tls::ClientSession {
        let mut pair = connected(gate, tls, Some(sni));
        // A TLS 1.3 ticket is sent after the handshake; pass it over.
        pair.server.send(b"hello").unwrap();
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        assert_eq!(pair.client_plain, b"hello");
        // OpenSSL drops a session from the cache when its connection is
        // freed without an orderly shutdown, so close like a real server.
        pair.client.close();
        pair.server.close();
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        pair.client.ssl_session().expect("a session to resume")
    }

    fn resume(
        gate: &TlsGate,
        tls: &crate::tls::ClientTls,
        sni: &str,
        session: &crate::tls::ClientSession,
    ) -> (Pair, Result<(), TlsError>) {
        let client = TlsSession::client(tls, Some(sni), Some(session)).unwrap();
        let mut pair = Pair::with_client(gate, client);
        let (_, server) = pair.run();
        (pair, server)
    }

    /// (name, version, tickets): the three ways a session can come back.
    const RESUMPTION_KINDS: [(&str, TlsVersion, bool); 3] = [
        ("TLS 1.2 session id", TlsVersion::Tls12, false),
        ("TLS 1.2 ticket", TlsVersion::Tls12, true),
        ("TLS 1.3 ticket", TlsVersion::Tls13, true),
    ];

    fn resumption_client(version: TlsVersion, tickets: bool) -> crate::tls::ClientTls {
        ClientConfig {
            min_version: Some(version),
            max_version: Some(version),
            session_tickets: tickets,
            ..client_config(ClientCert::None)
        }
        .build()
        .unwrap()
    }

    #[test]
    fn a_session_resumes_within_its_domain() {
        let gate = TlsGate::development().unwrap();
        for (kind, version, tickets) in RESUMPTION_KINDS {
            let tls = resumption_client(version, tickets);
            let session = saved_session(&gate, &tls, "localhost");
            let (pair, server) = resume(&gate, &tls, "localhost", &session);
            server.unwrap();
            assert!(
                pair.client.session_reused(),
                "{kind}: client did not resume"
            );
            assert!(
                pair.server.session_reused(),
                "{kind}: server did not resume"
            );
            assert_eq!(
                pair.server.info(&base_info()).domain.as_deref(),
                Some("localhost")
            );
        }
    }

    #[test]
    fn a_session_never_resumes_into_a_domain_that_requires_client_certs() {
        let gate = TlsGate::development().unwrap();
        for (kind, version, tickets) in RESUMPTION_KINDS {
            let tls = resumption_client(version, tickets);
            let session = saved_session(&gate, &tls, "localhost");
            let (pair, server) = resume(&gate, &tls, "mtls.localhost", &session);
            // OpenSSL itself must refuse the session (not just our
            // post-handshake check), and the full handshake then fails for
            // want of a client certificate.
            assert!(
                !pair.server.session_reused(),
                "{kind}: resumed across domains"
            );
            let error = server.expect_err(kind);
            assert_eq!(error.reason(), "no_client_cert", "{kind}: {error}");
        }
    }

    #[test]
    fn an_mtls_session_does_not_resume_into_another_domain_either() {
        let gate = TlsGate::development().unwrap();
        for (kind, version, tickets) in RESUMPTION_KINDS {
            let tls = ClientConfig {
                min_version: Some(version),
                max_version: Some(version),
                session_tickets: tickets,
                ..client_config(ClientCert::Dev)
            }
            .build()
            .unwrap();
            let session = saved_session(&gate, &tls, "mtls.localhost");
            let (pair, server) = resume(&gate, &tls, "mtls.localhost", &session);
            server.unwrap();
            assert!(pair.server.session_reused(), "{kind}");
            assert_eq!(
                pair.server.info(&base_info()).transport,
                Transport::Mtls,
                "{kind}"
            );
            let (pair, server) = resume(&gate, &tls, "localhost", &session);
            server.unwrap();
            assert!(
                !pair.server.session_reused(),
                "{kind}: resumed across domains"
            );
            assert_eq!(
                pair.server.info(&base_info()).domain.as_deref(),
                Some("localhost")
            );
        }
    }

    #[test]
    fn the_development_gate_describes_its_domains() {
        let gate = TlsGate::development().unwrap();
        let rules = gate.domain_rules();
        assert_eq!(rules.rules.len(), 2);
        assert_eq!(
            rules.for_name("localhost").unwrap().client_auth,
            ClientAuth::None
        );
        assert_eq!(
            rules.for_name("x.localhost").unwrap().name.as_ref(),
            "localhost"
        );
        let mtls = rules.for_name("MTLS.localhost.").unwrap();
        assert_eq!(
            (mtls.name.as_ref(), mtls.client_auth),
            ("mtls.localhost", ClientAuth::Required)
        );
        assert_eq!(rules.fallback, Some(0));
        // A client connecting by address sends no SNI and gets localhost.
        let tls = ClientConfig {
            verify_hostname: true,
            ..client_config(ClientCert::None)
        }
        .build()
        .unwrap();
        let pair = connected(&gate, &tls, Some("127.0.0.1"));
        let info = pair.server.info(&base_info());
        assert_eq!(
            (info.sni, info.domain.as_deref()),
            (None, Some("localhost"))
        );
    }

    fn spec(dir: &Path, cert: &str, key: &str, auth: ClientAuth, ca: Option<&str>) -> DomainSpec {
        DomainSpec {
            names: vec!["localhost".to_string()],
            cert: dir.join(cert),
            key: dir.join(key),
            client_auth: auth,
            client_ca: ca.map(|c| dir.join(c)),
        }
    }

    fn certs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("certs")
    }

    #[test]
    fn specs_load_from_files_and_errors_name_origin_key_and_problem() {
        let dir = certs_dir();
        let origin = "portcullis.toml: domains[1]";
        let ok = spec(
            &dir,
            "server.pem",
            "server.key",
            ClientAuth::Required,
            Some("ca.pem"),
        );
        ok.load(origin).unwrap();
        let err = |s: DomainSpec| s.load(origin).unwrap_err();

        let e = err(spec(
            &dir,
            "missing.pem",
            "server.key",
            ClientAuth::None,
            None,
        ));
        assert!(
            e.starts_with("portcullis.toml: domains[1]: cert: cannot read "),
            "{e}"
        );
        assert!(
            e.contains("missing.pem") && e.contains("No such file"),
            "{e}"
        );
        let e = err(spec(
            &dir,
            "README.md",
            "server.key",
            ClientAuth::None,
            None,
        ));
        assert!(
            e.contains(": cert: ") && e.contains("no certificate"),
            "{e}"
        );
        let e = err(spec(
            &dir,
            "server.pem",
            "README.md",
            ClientAuth::None,
            None,
        ));
        assert!(
            e.contains(": key: ") && e.contains("not a PEM private key"),
            "{e}"
        );
        let e = err(spec(
            &dir,
            "server.pem",
            "client.key",
            ClientAuth::None,
            None,
        ));
        assert!(e.contains(": key: ") && e.contains("does not match"), "{e}");
        let e = err(spec(
            &dir,
            "server.pem",
            "server.key",
            ClientAuth::Required,
            None,
        ));
        assert!(e.contains(": client_ca: required"), "{e}");
        let e = err(spec(
            &dir,
            "server.pem",
            "server.key",
            ClientAuth::Optional,
            Some("README.md"),
        ));
        assert!(
            e.contains(": client_ca: ") && e.contains("no certificates"),
            "{e}"
        );
        let e = err(spec(
            &dir,
            "server.pem",
            "server.key",
            ClientAuth::None,
            Some("ca.pem"),
        ));
        assert!(
            e.contains(": client_ca: ") && e.contains("client_auth is \"none\""),
            "{e}"
        );
        for (names, problem) in [
            (vec![], "at least one"),
            (vec!["a.*.example"], "wildcard"),
            (vec!["::1"], "IP address"),
            (vec!["bad name"], "not a valid server name"),
        ] {
            let mut s = ok.clone();
            s.names = names.into_iter().map(String::from).collect();
            let e = err(s);
            assert!(
                e.starts_with(&format!("{origin}: names: ")) && e.contains(problem),
                "{e}"
            );
        }
        // Duplicates across domains name the later domain.
        let a = ok.clone();
        let mut b = ok.clone();
        b.names = vec!["LOCALHOST".to_string()];
        let specs = [
            ("f.toml: domains[0]".to_string(), a),
            ("f.toml: domains[1]".to_string(), b),
        ];
        let e = TlsGate::from_specs(&specs, &GateOptions::default()).unwrap_err();
        assert!(
            e.starts_with("f.toml: domains[1]: names: ") && e.contains("more than one"),
            "{e}"
        );
        // A default that no domain lists.
        let options = GateOptions {
            unknown_sni: SniFallback::Default("nosuch".to_string()),
            ..GateOptions::default()
        };
        let e = TlsGate::from_specs(&specs[..1], &options).unwrap_err();
        assert!(e.contains("unknown_sni") && e.contains("nosuch"), "{e}");
    }

    #[test]
    fn specs_parse_strictly_from_toml() {
        let text = "names = [\"localhost\"]\ncert = \"a.pem\"\nkey = \"a.key\"\n";
        let spec: DomainSpec = toml::from_str(text).unwrap();
        assert_eq!(spec.client_auth, ClientAuth::None);
        assert_eq!(spec.client_ca, None);
        let spec: DomainSpec = toml::from_str(&format!(
            "{text}client_auth = \"required\"\nclient_ca = \"ca.pem\"\n"
        ))
        .unwrap();
        assert_eq!(spec.client_auth, ClientAuth::Required);
        let e = toml::from_str::<DomainSpec>(&format!("{text}client_auth = \"sometimes\"\n"))
            .unwrap_err();
        assert!(e.to_string().contains("client_auth"), "{e}");
        let e = toml::from_str::<DomainSpec>(&format!("{text}client_atuh = \"required\"\n"))
            .unwrap_err();
        assert!(e.to_string().contains("client_atuh"), "{e}");
        let mut spec = spec;
        spec.resolve_paths(Path::new("/etc/portcullis"));
        assert_eq!(spec.cert, Path::new("/etc/portcullis/a.pem"));
        assert_eq!(
            spec.client_ca.as_deref(),
            Some(Path::new("/etc/portcullis/ca.pem"))
        );
    }

    #[test]
    fn alpn_prefers_the_servers_order_and_tolerates_garbage() {
        let ours = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        assert_eq!(select_alpn(&ours, b"\x08http/1.1\x02h2"), Some(&b"h2"[..]));
        assert_eq!(select_alpn(&ours, b"\x08http/1.1"), Some(&b"http/1.1"[..]));
        assert_eq!(select_alpn(&ours, b"\x06spdy/3"), None);
        assert_eq!(select_alpn(&ours, b"\x09http/1.1"), None);
        assert_eq!(select_alpn(&ours, b"\x00"), None);
        assert_eq!(select_alpn(&ours, b""), None);
    }
}
