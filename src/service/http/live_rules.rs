//! The domain rules the HTTP service checks `Host` against, replaceable by
//! a reload while the service runs.
//!
//! Each worker has its own service instance, and a request is answered
//! thousands of times per second, so looking the rules up must cost next to
//! nothing. The one idea: **a version number guards a cached `Arc`**: each
//! instance keeps the rules it last saw and the version they had, and reads
//! the shared cell (one lock, one `Arc` clone) only when the version moved,
//! that is once per reload. Between reloads a request costs one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::domains::DomainRules;

/// The rules in force, shared by every worker's instance.
#[derive(Debug)]
pub struct LiveRules {
    version: AtomicU64,
    current: RwLock<Arc<DomainRules>>,
}

impl LiveRules {
    pub fn new(rules: Arc<DomainRules>) -> LiveRules {
        LiveRules {
            version: AtomicU64::new(0),
            current: RwLock::new(rules),
        }
    }

    /// Installs `rules` for the requests answered from now on.
    pub fn replace(&self, rules: Arc<DomainRules>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = rules;
        self.version.fetch_add(1, Ordering::Release);
    }

    fn load(&self) -> (u64, Arc<DomainRules>) {
        // Version first: a replace in between only makes the next request
        // look again.
        let version = self.version.load(Ordering::Acquire);
        let rules = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (version, rules)
    }
}

/// One instance's view of the rules.
#[derive(Debug)]
pub struct RulesView {
    source: Arc<LiveRules>,
    version: u64,
    rules: Arc<DomainRules>,
}

impl RulesView {
    pub fn new(source: Arc<LiveRules>) -> RulesView {
        let (version, rules) = source.load();
        RulesView {
            source,
            version,
            rules,
        }
    }

    /// The rules in force now.
    pub fn current(&mut self) -> &DomainRules {
        if self.source.version.load(Ordering::Acquire) != self.version {
            (self.version, self.rules) = self.source.load();
        }
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_sees_a_replacement_at_its_next_look() {
        let live = Arc::new(LiveRules::new(Arc::new(DomainRules::default())));
        let mut view = RulesView::new(live.clone());
        assert!(view.current().rules.is_empty());
        let gate = crate::tls::TlsGate::development().unwrap();
        live.replace(Arc::new(gate.domain_rules()));
        assert!(view.current().for_name("localhost").is_some());
    }
}
