//! What one listener holds open, shared by every worker: its connection
//! count and limit, its per-client table, and why it refused connections.
//!
//! Workers each have their own socket for a listener (`SO_REUSEPORT`), but
//! a limit is the listener's, not the worker's: the count lives here, in
//! one atomic, and so does the limit, an `AtomicUsize` so that it can be
//! changed while the server runs. The one idea: **one listener, one
//! count**, however many threads accept on it.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::clients::{AcceptRate, ClientRefusal, ClientTable};
use crate::engine::stats::CloseReason;

/// No per-listener limit.
pub const UNLIMITED: usize = usize::MAX;

/// How long refusals stay at debug level after an info line about them.
const BURST_QUIET: Duration = Duration::from_secs(5);

/// One listener's shared counts and limits.
#[derive(Debug)]
pub struct ListenerLimits {
    /// The listener's address, for log lines.
    pub local: SocketAddr,
    /// `max_connections` of this listener; [`UNLIMITED`] when unset.
    pub max_connections: AtomicUsize,
    open: AtomicUsize,
    clients: Option<Mutex<ClientTable>>,
    /// Refusals by reason, indexed like [`CloseReason::ALL`].
    refused: [AtomicU64; CloseReason::ALL.len()],
    epoch: Instant,
    /// When the last info line about a refusal was written (ms since
    /// `epoch`, plus one; 0: never).
    last_info_ms: AtomicU64,
}

impl ListenerLimits {
    /// A listener with no limits of its own.
    pub fn unlimited(local: SocketAddr) -> ListenerLimits {
        ListenerLimits::new(local, None, None, None, 0)
    }

    /// `client_capacity` bounds the per-client table; it must exceed the
    /// connections this listener can hold open (see `clients`).
    pub fn new(
        local: SocketAddr,
        max_connections: Option<usize>,
        max_per_client: Option<u32>,
        accept_rate: Option<AcceptRate>,
        client_capacity: usize,
    ) -> ListenerLimits {
        let epoch = Instant::now();
        let clients = (max_per_client.is_some() || accept_rate.is_some()).then(|| {
            Mutex::new(ClientTable::new(
                max_per_client,
                accept_rate,
                client_capacity,
                epoch,
            ))
        });
        ListenerLimits {
            local,
            max_connections: AtomicUsize::new(max_connections.unwrap_or(UNLIMITED)),
            open: AtomicUsize::new(0),
            clients,
            refused: Default::default(),
            epoch,
            last_info_ms: AtomicU64::new(0),
        }
    }

    /// Connections open on this listener now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts one more open connection, unless the limit is reached.
    pub fn try_open(&self) -> bool {
        let previous = self.open.fetch_add(1, Ordering::AcqRel);
        if previous >= self.max_connections.load(Ordering::Acquire) {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    pub fn close(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether per-client state is kept (a per-client limit or rate is set).
    pub fn tracks_clients(&self) -> bool {
        self.clients.is_some()
    }

    /// Counts a connection from `ip` in the per-client table.
    pub fn admit_client(&self, ip: IpAddr, now: Instant) -> Result<(), CloseReason> {
        let Some(table) = &self.clients else {
            return Ok(());
        };
        let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
        table.admit(ip, now).map_err(|refusal| match refusal {
            ClientRefusal::TooManyConnections => CloseReason::ClientMaxConnections,
            ClientRefusal::RateExceeded => CloseReason::ClientAcceptRate,
        })
    }

    pub fn release_client(&self, ip: IpAddr, now: Instant) {
        if let Some(table) = &self.clients {
            table
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .release(ip, now);
        }
    }

    /// How many entries the per-client table may hold (`None` without one).
    /// The connections this listener holds open must stay below it, so a
    /// limit raised at run time is checked against it.
    pub fn client_capacity(&self) -> Option<usize> {
        self.clients
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|e| e.into_inner()).capacity())
    }

    /// Entries in the per-client table (0 without one).
    pub fn tracked_clients(&self) -> usize {
        self.clients
            .as_ref()
            .map_or(0, |t| t.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Counts a refusal and logs it: at debug level, and at info level once
    /// per burst (then quiet for five seconds).
    pub fn refused(&self, reason: CloseReason, who: IpAddr, now: Instant) {
        let n = self.refused[reason.index()].fetch_add(1, Ordering::Relaxed) + 1;
        log::debug!("{}: refused {who}: {}", self.local, reason.label());
        let at = now.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
        let last = self.last_info_ms.load(Ordering::Relaxed);
        let quiet = BURST_QUIET.as_millis() as u64;
        if (last == 0 || at >= last + quiet)
            && self
                .last_info_ms
                .compare_exchange(last, at, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::info!(
                "{}: refused {who}: {} ({n} so far for this reason; further refusals are logged at debug level for {} s)",
                self.local,
                reason.label(),
                quiet / 1000
            );
        }
    }

    /// Refusals on this listener for `reason`.
    pub fn refusals(&self, reason: CloseReason) -> u64 {
        self.refused[reason.index()].load(Ordering::Relaxed)
    }

    /// `reason=n` for every refusal reason that happened, space-separated.
    pub fn refusal_summary(&self) -> String {
        CloseReason::ALL
            .into_iter()
            .filter(|r| self.refusals(*r) > 0)
            .map(|r| format!("{}={}", r.label(), self.refusals(r)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_limit_counts_across_callers_and_can_change() {
        let limits = ListenerLimits::new("127.0.0.1:1".parse().unwrap(), Some(2), None, None, 0);
        assert!(limits.try_open() && limits.try_open());
        assert!(!limits.try_open());
        assert_eq!(limits.open(), 2);
        limits.max_connections.store(3, Ordering::Release);
        assert!(limits.try_open(), "a raised limit applies at once");
        limits.close();
        assert_eq!(limits.open(), 2);
        assert!(!limits.tracks_clients());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        limits.refused(CloseReason::AccessDenied, ip, Instant::now());
        limits.refused(CloseReason::AccessDenied, ip, Instant::now());
        assert_eq!(limits.refusals(CloseReason::AccessDenied), 2);
        assert_eq!(limits.refusal_summary(), "access_denied=2");
    }
}
