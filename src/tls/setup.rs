//! Building a gate from the configuration file, from specs, or from the
//! development certificates embedded in the binary.
//!
//! The one idea: **the file's defaults are decided here, in one place**:
//! unset `unknown_sni` / `no_sni` mean the first domain, unset `alpn`
//! means the gate's default list, unset `profile` means intermediate,
//! unset `ticket_rotation_secs` means 12 hours. Every error names the file,
//! the key and the problem.

use std::time::Duration;

use crate::config::TlsConfig;
use crate::domains::ClientAuth;

use super::admission::{GateOptions, TlsGate};
use super::domain::{Domain, DomainSpec, SniFallback};
use super::tickets::TicketSettings;

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
    /// `origin` names the file; domain errors say `FILE: domains[i]: key: ...`
    /// and gate-wide ones `FILE: tls.key: ...`.
    pub fn from_config(
        specs: &[DomainSpec],
        tls: &TlsConfig,
        origin: &str,
    ) -> Result<TlsGate, String> {
        let domains = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| spec.load(&format!("{origin}: domains[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        TlsGate::new(&domains, &options_from_config(specs, tls)).map_err(|e| {
            match e.strip_prefix("tls: ") {
                Some(rest) => format!("{origin}: tls.{rest}"),
                None => e,
            }
        })
    }

    /// The built-in development gate, from certificates embedded in the
    /// binary: `localhost` (and `*.localhost`, and any connection without
    /// SNI or with an unknown one) without client certificates, and
    /// `mtls.localhost` requiring a client certificate from the dev CA.
    pub fn development() -> Result<TlsGate, String> {
        TlsGate::development_with(TicketSettings::default())
    }

    /// The development gate with these ticket settings (a supervisor's
    /// worker processes share its ticket key file even without a config).
    pub fn development_with(tickets: TicketSettings) -> Result<TlsGate, String> {
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
            tickets,
            ..GateOptions::default()
        };
        TlsGate::new(&[localhost, mtls], &options)
    }
}

/// The gate options a config file asks for, with the defaults filled in.
pub fn options_from_config(specs: &[DomainSpec], tls: &TlsConfig) -> GateOptions {
    let first = || {
        specs
            .first()
            .and_then(|s| s.names.first())
            .map_or(SniFallback::Reject, |n| SniFallback::Default(n.clone()))
    };
    let defaults = GateOptions::default();
    GateOptions {
        unknown_sni: tls
            .unknown_sni
            .as_deref()
            .map_or_else(first, SniFallback::parse),
        no_sni: tls.no_sni.as_deref().map_or_else(first, SniFallback::parse),
        alpn: tls.alpn.clone().unwrap_or(defaults.alpn),
        profile: tls.profile.unwrap_or(defaults.profile),
        tickets: TicketSettings {
            rotation: tls
                .ticket_rotation_secs
                .map_or(defaults.tickets.rotation, Duration::from_secs),
            key_file: tls.ticket_key_file.clone(),
        },
    }
}
