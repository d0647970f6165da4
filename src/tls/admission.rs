//! The gate: from a connection's first record to a TLS session of the right
//! domain, or to a refusal.
//!
//! [`TlsGate::accept`] parses the ClientHello the event loop has held
//! whole, resolves its server name in the current domain table, and
//! creates the `SSL` from that domain's own context. The one idea: **the
//! domain is decided before any TLS state exists**, so a refused connection
//! costs no OpenSSL allocation, and an admitted one carries only its own
//! domain's certificate, client-CA policy, session cache and ticket keys
//! from its first byte. Nothing is switched mid-handshake, so there is
//! nothing to forget to switch.
//!
//! The gate owns the [`TlsCounters`] every session reports to, and the
//! [`TableSlot`] a reload swaps ([`TlsGate::replace_domains`]).

use std::fmt;
use std::sync::Arc;

use openssl::ssl::Ssl;

use crate::domains::DomainRules;

use super::client_hello;
use super::contexts::{hello_check_index, ContextSettings, HelloCheck};
use super::counters::TlsCounters;
use super::domain::{Domain, SniFallback};
use super::error::{TlsError, TlsErrorKind};
use super::profile::Profile;
use super::refusal::Refusal;
use super::session::TlsSession;
use super::table::{DomainTable, Resolved, TableSlot};
use super::tickets::{KeyFile, TicketSettings};

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
    /// The cipher profile of domains that name none.
    pub profile: Profile,
    /// Ticket key rotation and the optional shared key file.
    pub tickets: TicketSettings,
}

impl Default for GateOptions {
    fn default() -> GateOptions {
        GateOptions {
            unknown_sni: SniFallback::Reject,
            no_sni: SniFallback::Reject,
            alpn: vec!["h2".to_string(), "http/1.1".to_string()],
            profile: Profile::default(),
            tickets: TicketSettings::default(),
        }
    }
}

/// The TLS side of the port: turns first records into sessions. Cheap to
/// share (`Arc` inside); build once, use from every worker.
#[derive(Clone)]
pub struct TlsGate {
    table: Arc<TableSlot>,
    counters: Arc<TlsCounters>,
    options: Arc<GateOptions>,
    key_file: Option<KeyFile>,
}

impl fmt::Debug for TlsGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table.load();
        let names: Vec<&str> = table.names().collect();
        f.debug_struct("TlsGate")
            .field("domains", &names)
            .finish_non_exhaustive()
    }
}

impl TlsGate {
    /// Builds the gate from loaded domains. Errors name the domain's origin
    /// and key, or `tls: key:` for gate-wide settings.
    pub fn new(domains: &[Domain], options: &GateOptions) -> Result<TlsGate, String> {
        let key_file = match &options.tickets.key_file {
            Some(path) => {
                Some(KeyFile::read(path).map_err(|e| format!("tls: ticket_key_file: {e}"))?)
            }
            None => None,
        };
        let table = build_table(domains, options, key_file.as_ref())?;
        Ok(TlsGate {
            table: Arc::new(TableSlot::new(table)),
            counters: Arc::new(TlsCounters::default()),
            options: Arc::new(options.clone()),
            key_file,
        })
    }

    /// Admits or refuses a connection from its first bytes: `first_record`
    /// starts with the whole first TLS record (what follows it, if anything,
    /// goes to the session too). On success the bytes are inside the
    /// returned session; call [`TlsSession::process`] next. A refusal has
    /// been counted; write its [`Refusal::alert_record`] and close.
    pub fn accept(&self, first_record: &[u8]) -> Result<TlsSession, Refusal> {
        let refuse = |error: TlsError| {
            self.counters.count_failure(error.kind());
            Refusal::new(error)
        };
        let hello = client_hello::parse(first_record).map_err(refuse)?;
        let table = self.table.load();
        let domain = match table.resolve(hello.server_name) {
            Resolved::Domain(domain) => domain.clone(),
            Resolved::Rejected => {
                let shown = hello
                    .server_name
                    .map(|n| format!("`{}`", String::from_utf8_lossy(n).escape_debug()));
                return Err(refuse(TlsError::new(
                    TlsErrorKind::UnknownSni,
                    match shown {
                        Some(name) => format!("no domain serves {name}"),
                        None => "no server name, and no_sni is reject".to_string(),
                    },
                )));
            }
        };
        let internal = |e: openssl::error::ErrorStack| {
            refuse(TlsError::new(TlsErrorKind::Internal, e.to_string()))
        };
        let mut ssl = Ssl::new(&domain.context).map_err(internal)?;
        ssl.set_accept_state();
        let slot = hello_check_index().map_err(refuse)?;
        ssl.set_ex_data(
            slot,
            HelloCheck {
                expected: hello.server_name.map(Box::from),
                sni_changed: false,
            },
        );
        let mut session = TlsSession::server(ssl, domain, self.counters.clone()).map_err(refuse)?;
        session.receive(first_record);
        Ok(session)
    }

    /// Builds a new domain table and installs it for new connections; live
    /// connections keep the contexts they were created with. The gate-wide
    /// options (and the ticket key file) stay as they were.
    pub fn replace_domains(&self, domains: &[Domain]) -> Result<(), String> {
        let table = build_table(domains, &self.options, self.key_file.as_ref())?;
        self.table.swap(table);
        Ok(())
    }

    /// This gate, reporting to `counters` (a reload's new gate keeps
    /// counting where the old one left off).
    pub fn with_counters(mut self, counters: Arc<TlsCounters>) -> TlsGate {
        self.counters = counters;
        self
    }

    /// The counters every session of this gate reports to.
    pub fn counters(&self) -> &Arc<TlsCounters> {
        &self.counters
    }

    /// Every domain's name and client-auth rule, for services (the HTTP
    /// service checks `Host` against the handshake's domain with these).
    pub fn domain_rules(&self) -> DomainRules {
        self.table.load().rules()
    }
}

fn build_table(
    domains: &[Domain],
    options: &GateOptions,
    key_file: Option<&KeyFile>,
) -> Result<DomainTable, String> {
    let alpn = Arc::new(
        options
            .alpn
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    );
    if alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
        return Err("tls: alpn: protocol names must be 1 to 255 bytes".to_string());
    }
    let settings = ContextSettings {
        alpn: &alpn,
        profile: options.profile,
        tickets: &options.tickets,
        key_file,
    };
    DomainTable::build(domains, &options.unknown_sni, &options.no_sni, &settings)
}
