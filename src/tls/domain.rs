//! Domains as configured, and as loaded: names, certificate, key, client
//! CA, cipher choices.
//!
//! A [`DomainSpec`] is one `[[domains]]` entry of the config file; a
//! [`Domain`] is the same after its files were read, parsed and checked
//! against each other. The one idea: **everything that can be wrong with a
//! domain is found here, at start-up, and the message names the file, the
//! key and the problem** — the handshake path never parses a certificate.
//! Loading also warns when a key is one of the development keys shipped in
//! `certs/`, whatever file it was copied to: their private halves are
//! public.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::x509::X509;
use serde::{Deserialize, Deserializer};

use crate::domains::{ClientAuth, NameTable};

use super::dev_certs;
use super::profile::{CipherChoice, Profile};

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
    /// `"intermediate"` or `"modern"`; default: `tls.profile`.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// TLS 1.2 cipher list replacing the profile's (OpenSSL syntax).
    #[serde(default)]
    pub ciphers: Option<String>,
    /// TLS 1.3 cipher suites replacing the profile's.
    #[serde(default)]
    pub ciphersuites: Option<String>,
    /// Key-exchange groups replacing the profile's (e.g. `"X25519:P-256"`).
    #[serde(default)]
    pub groups: Option<String>,
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
    /// Warns when the key is a published development key.
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
        let domain = Domain::from_pem(
            origin,
            &self.names,
            (&cert, &self.cert.display().to_string()),
            (&key, &self.key.display().to_string()),
            self.client_auth,
            client_ca
                .as_ref()
                .map(|(pem, label)| (pem.as_slice(), label.as_str())),
        )?
        .with_ciphers(CipherChoice {
            profile: self.profile,
            ciphers: self.ciphers.clone(),
            ciphersuites: self.ciphersuites.clone(),
            groups: self.groups.clone(),
        });
        if let Some(published) = domain.development_key() {
            log::warn!(
                "{origin}: key: {} is the development key {published} shipped with portcullis; \
                 its private key is public, so anyone can impersonate this server: \
                 configure a key of your own",
                self.key.display()
            );
        }
        Ok(domain)
    }
}

fn read_file(origin: &str, key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{origin}: {key}: cannot read {}: {e}", path.display()))
}

/// A domain whose certificate, key and CA have been parsed and checked.
#[derive(Clone)]
pub struct Domain {
    pub(crate) origin: String,
    pub(crate) names: Vec<String>,
    pub(crate) chain: Vec<X509>,
    pub(crate) key: PKey<Private>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) client_ca: Vec<X509>,
    pub(crate) ciphers: CipherChoice,
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
        check_names(origin, names)?;
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
            ciphers: CipherChoice::default(),
        })
    }

    /// The same domain with its own cipher choices.
    pub fn with_ciphers(mut self, ciphers: CipherChoice) -> Domain {
        self.ciphers = ciphers;
        self
    }

    /// The domain's display name (its first name).
    pub fn name(&self) -> &str {
        &self.names[0]
    }

    /// Which published development key this domain's key is, if any.
    pub fn development_key(&self) -> Option<&'static str> {
        development_key(&self.key)
    }
}

fn check_names(origin: &str, names: &[String]) -> Result<(), String> {
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
    Ok(())
}

/// The SHA-256 of a key's public half (DER), which identifies the key
/// whatever file or format it came in.
fn public_fingerprint(key: &PKeyRef<Private>) -> Option<Vec<u8>> {
    let der = key.public_key_to_der().ok()?;
    openssl::hash::hash(MessageDigest::sha256(), &der)
        .ok()
        .map(|d| d.to_vec())
}

/// The name of the development key `key` is, if it is one of them.
pub fn development_key(key: &PKeyRef<Private>) -> Option<&'static str> {
    static PUBLISHED: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    let published = PUBLISHED.get_or_init(|| {
        [
            ("certs/server.key", dev_certs::SERVER_KEY_PEM),
            ("certs/server-ecdsa.key", dev_certs::SERVER_ECDSA_KEY_PEM),
            ("certs/client.key", dev_certs::CLIENT_KEY_PEM),
            ("certs/other-client.key", dev_certs::OTHER_CLIENT_KEY_PEM),
        ]
        .into_iter()
        .filter_map(|(name, pem)| {
            let key = PKey::private_key_from_pem(pem).ok()?;
            Some((name, public_fingerprint(&key)?))
        })
        .collect()
    });
    let fingerprint = public_fingerprint(key)?;
    published
        .iter()
        .find(|(_, known)| *known == fingerprint)
        .map(|(name, _)| *name)
}

/// What to do with a ClientHello whose SNI no domain lists, or that has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SniFallback {
    /// Admit it under the domain that lists this name.
    Default(String),
    /// Refuse it with an `unrecognized_name` alert.
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
