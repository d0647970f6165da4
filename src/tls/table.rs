//! The domain table: which domain serves which server name, with each
//! domain's ready-built context, behind one atomically swapped pointer.
//!
//! The gate reads the table once per handshake, resolves the ClientHello's
//! name to a domain, and creates the connection's `SSL` from that domain's
//! context. The one idea: **the table is immutable and shared through an
//! `Arc`; replacing it is one pointer swap** ([`TableSlot::swap`]), so a
//! later reload can install new certificates while every live connection
//! keeps the context (and so the certificate, CA and ticket keys) it was
//! created with, for as long as it lives.
//!
//! Why `RwLock<Arc<_>>` and not a lock-free cell such as `arc-swap`: a
//! handshake costs hundreds of microseconds of public-key arithmetic; an
//! uncontended read lock plus an `Arc` clone costs tens of nanoseconds, and
//! writers come only from a reload. The standard library suffices.

use std::sync::{Arc, RwLock};

use openssl::ssl::SslContext;

use crate::domains::{ClientAuth, DomainRule, DomainRules, NameTable};

use super::contexts::{domain_context, ContextSettings};
use super::domain::{Domain, SniFallback};

/// One loaded domain, as the handshake and the sessions see it.
pub(crate) struct DomainEntry {
    pub name: Arc<str>,
    pub client_auth: ClientAuth,
    pub context: SslContext,
}

/// Every domain, the name lookup, and what to do with unlisted names.
pub(crate) struct DomainTable {
    domains: Vec<Arc<DomainEntry>>,
    names: NameTable,
    unknown_sni: Option<usize>,
    no_sni: Option<usize>,
}

/// How a ClientHello's name was resolved.
pub(crate) enum Resolved<'a> {
    Domain(&'a Arc<DomainEntry>),
    /// No domain serves it and the fallback is `reject`.
    Rejected,
}

impl DomainTable {
    /// Builds every domain's context. Errors start with the domain's origin
    /// (`FILE: domains[i]: key: problem`) or with `tls: key:` for the
    /// gate-wide fallbacks.
    pub fn build(
        domains: &[Domain],
        unknown_sni: &SniFallback,
        no_sni: &SniFallback,
        settings: &ContextSettings<'_>,
    ) -> Result<DomainTable, String> {
        if domains.is_empty() {
            return Err("tls: at least one domain is required".to_string());
        }
        let mut names = NameTable::new();
        let mut entries = Vec::with_capacity(domains.len());
        for (index, domain) in domains.iter().enumerate() {
            for name in &domain.names {
                names
                    .insert(name, index)
                    .map_err(|e| format!("{}: names: {e}", domain.origin))?;
            }
            let context = domain_context(domain, index, settings)
                .map_err(|e| format!("{}: {e}", domain.origin))?;
            entries.push(Arc::new(DomainEntry {
                name: Arc::from(domain.name()),
                client_auth: domain.client_auth,
                context,
            }));
        }
        let resolve = |what: &str, fallback: &SniFallback| match fallback {
            SniFallback::Reject => Ok(None),
            SniFallback::Default(name) => names
                .lookup(name)
                .map(Some)
                .ok_or_else(|| format!("tls: {what}: `{name}` is not a name of any domain")),
        };
        let unknown_sni = resolve("unknown_sni", unknown_sni)?;
        let no_sni = resolve("no_sni", no_sni)?;
        Ok(DomainTable {
            domains: entries,
            names,
            unknown_sni,
            no_sni,
        })
    }

    /// The domain for a ClientHello's host name (`None`: no SNI). A name
    /// that is not UTF-8 matches no domain.
    pub fn resolve(&self, server_name: Option<&[u8]>) -> Resolved<'_> {
        let index = match server_name {
            Some(raw) => std::str::from_utf8(raw)
                .ok()
                .and_then(|name| self.names.lookup(name))
                .or(self.unknown_sni),
            None => self.no_sni,
        };
        match index.and_then(|i| self.domains.get(i)) {
            Some(entry) => Resolved::Domain(entry),
            None => Resolved::Rejected,
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().map(|d| &*d.name)
    }

    /// Every domain's name and client-auth rule, for services.
    pub fn rules(&self) -> DomainRules {
        DomainRules {
            rules: self
                .domains
                .iter()
                .map(|d| DomainRule {
                    name: d.name.clone(),
                    client_auth: d.client_auth,
                })
                .collect(),
            names: self.names.clone(),
            fallback: self.unknown_sni,
        }
    }
}

/// The current table, replaceable while connections use the old one.
pub(crate) struct TableSlot {
    current: RwLock<Arc<DomainTable>>,
}

impl TableSlot {
    pub fn new(table: DomainTable) -> TableSlot {
        TableSlot {
            current: RwLock::new(Arc::new(table)),
        }
    }

    /// The table in force now. A handshake reads it once.
    pub fn load(&self) -> Arc<DomainTable> {
        match self.current.read() {
            Ok(table) => table.clone(),
            // A writer panicked mid-swap; the pointer itself is intact.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs `table` for new connections; returns the one it replaces.
    pub fn swap(&self, table: DomainTable) -> Arc<DomainTable> {
        let mut current = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *current, Arc::new(table))
    }
}
