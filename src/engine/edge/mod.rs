//! The edge policy of a listener: who may connect, how many, how fast, and
//! whether a load balancer in front speaks for the client (PROXY protocol).
//!
//! Each check runs as early as the facts it needs are known, in the order
//! the connection core applies them:
//!
//! ```text
//!   accept ──► PROXY header? ──► access rules ──► limits ──► sniff ──► TLS ──► service
//!              (trusted peers     (first match     (listener, per client,
//!               only)              wins)            accept rate)
//! ```
//!
//! Without PROXY, the client is the TCP peer, known at accept: rules and
//! limits run in [`Env::admit`](crate::engine::Env::admit) before any byte
//! is read. With PROXY from a trusted peer, the client is known only once
//! the header is whole, so the same checks run then, in the core
//! (`connection/proxy_stage.rs`), against the address the header names.
//! The one idea: **one policy, applied to whoever the client really is**,
//! at the first moment that is known.
//!
//! | file | job |
//! |---|---|
//! | `access.rs` | allow/deny rules, nginx semantics, one address family |
//! | `clients.rs` | the bounded per-client table: open counts and the GCRA rate |
//! | `limits.rs` | one listener's shared count, limit and refusal counters |
//! | `rate.rs` | the per-connection read-rate bucket that pauses reading |

pub mod access;
pub mod clients;
pub mod limits;
pub mod rate;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

pub use access::AccessRules;
pub use clients::AcceptRate;
pub use limits::ListenerLimits;

use super::stats::CloseReason;
use crate::proxy::Versions;

/// The default `proxy_header_secs`.
pub const DEFAULT_PROXY_HEADER: Duration = Duration::from_secs(3);

/// `proxy_protocol`: which header versions a listener expects from its
/// trusted proxies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    #[default]
    Off,
    V1,
    V2,
    Any,
}

impl ProxyMode {
    pub fn parse(text: &str) -> Result<ProxyMode, String> {
        match text {
            "off" => Ok(ProxyMode::Off),
            "v1" => Ok(ProxyMode::V1),
            "v2" => Ok(ProxyMode::V2),
            "any" => Ok(ProxyMode::Any),
            other => Err(format!(
                "`{other}` is not \"off\", \"v1\", \"v2\" or \"any\""
            )),
        }
    }

    pub fn versions(self) -> Option<Versions> {
        match self {
            ProxyMode::Off => None,
            ProxyMode::V1 => Some(Versions::V1),
            ProxyMode::V2 => Some(Versions::V2),
            ProxyMode::Any => Some(Versions::Any),
        }
    }
}

/// One listener's edge policy, shared by every worker.
#[derive(Debug)]
pub struct EdgePolicy {
    pub access: AccessRules,
    pub proxy: ProxyMode,
    /// Peers whose PROXY header is believed (canonical networks).
    pub trusted_proxies: Vec<IpNet>,
    /// How long a trusted proxy has to send its whole header.
    pub proxy_header_timeout: Duration,
    /// `read_rate_limit`, bytes per second per connection.
    pub read_rate: Option<u64>,
    pub limits: Arc<ListenerLimits>,
}

impl EdgePolicy {
    /// No rules, no limits, no PROXY protocol.
    pub fn open(local: SocketAddr) -> EdgePolicy {
        EdgePolicy {
            access: AccessRules::default(),
            proxy: ProxyMode::Off,
            trusted_proxies: Vec::new(),
            proxy_header_timeout: DEFAULT_PROXY_HEADER,
            read_rate: None,
            limits: Arc::new(ListenerLimits::unlimited(local)),
        }
    }

    /// Whether the PROXY protocol is on for this listener at all.
    pub fn proxy_enabled(&self) -> bool {
        self.proxy != ProxyMode::Off
    }

    /// Whether a connection from `peer` must open with a PROXY header: the
    /// protocol is on and the peer is a trusted proxy.
    pub fn expects_proxy_header(&self, peer: IpAddr) -> bool {
        if !self.proxy_enabled() {
            return false;
        }
        let peer = access::canonical(peer);
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }

    /// The client address known at accept (the TCP peer), or `None` when
    /// a PROXY header will name it.
    pub fn client_at_accept(&self, peer: SocketAddr) -> Option<IpAddr> {
        (!self.expects_proxy_header(peer.ip())).then(|| access::canonical(peer.ip()))
    }

    /// The access rules and per-client limits for the real client `ip`. On
    /// `Err` the refusal is already counted and logged. On `Ok(true)` the
    /// client was counted in the per-client table: release it with
    /// [`release_client`](Self::release_client).
    pub fn admit_client(&self, ip: IpAddr, now: Instant) -> Result<bool, CloseReason> {
        let ip = access::canonical(ip);
        let verdict = if !self.access.allows(ip) {
            Err(CloseReason::AccessDenied)
        } else {
            self.limits.admit_client(ip, now)
        };
        match verdict {
            Ok(()) => Ok(self.limits.tracks_clients()),
            Err(reason) => {
                self.limits.refused(reason, ip, now);
                Err(reason)
            }
        }
    }

    pub fn release_client(&self, ip: IpAddr, now: Instant) {
        self.limits.release_client(access::canonical(ip), now);
    }
}

/// A listener's edge settings as configured, before the listener exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeSettings {
    pub access: AccessRules,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<u32>,
    pub accept_rate_per_client: Option<AcceptRate>,
    pub read_rate_limit: Option<u64>,
    pub proxy: ProxyMode,
    pub trusted_proxies: Vec<IpNet>,
    pub proxy_header_timeout: Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            access: AccessRules::default(),
            max_connections: None,
            max_connections_per_client: None,
            accept_rate_per_client: None,
            read_rate_limit: None,
            proxy: ProxyMode::Off,
            trusted_proxies: Vec::new(),
            proxy_header_timeout: DEFAULT_PROXY_HEADER,
        }
    }
}

/// Per-client entries kept beyond the connections a listener can hold
/// open, so that a full table always has an entry it may drop.
const CLIENT_TABLE_SLACK: usize = 1024;

impl EdgeSettings {
    /// The policy for the listener bound at `local`, in a server that holds
    /// at most `global_max` connections.
    pub fn build(&self, local: SocketAddr, global_max: usize) -> EdgePolicy {
        let holds = self.max_connections.unwrap_or(global_max).min(global_max);
        EdgePolicy {
            access: self.access.clone(),
            proxy: self.proxy,
            trusted_proxies: self.trusted_proxies.clone(),
            proxy_header_timeout: self.proxy_header_timeout,
            read_rate: self.read_rate_limit,
            limits: Arc::new(ListenerLimits::new(
                local,
                self.max_connections,
                self.max_connections_per_client,
                self.accept_rate_per_client,
                holds.saturating_add(CLIENT_TABLE_SLACK),
            )),
        }
    }
}

/// `read_rate_limit = "100KiB/s"`: bytes per second. Units: B, KB (1000),
/// KiB (1024), MB, MiB, GB, GiB.
pub fn parse_byte_rate(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a byte rate such as \"100KiB/s\" or \"1MB/s\"");
    let amount = text.trim().strip_suffix("/s").ok_or_else(bad)?;
    let split = amount
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(amount.len());
    let (number, unit) = amount.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return Err(bad()),
    };
    match number.checked_mul(scale) {
        Some(0) => Err(format!(
            "`{text}`: the rate must be at least 1 byte per second"
        )),
        Some(rate) => Ok(rate),
        None => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_rates_parse_with_their_units() {
        assert_eq!(parse_byte_rate("100KiB/s"), Ok(102_400));
        assert_eq!(parse_byte_rate("1MB/s"), Ok(1_000_000));
        assert_eq!(parse_byte_rate("2 MiB/s"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_byte_rate("500/s"), Ok(500));
        for bad in [
            "100KiB",
            "100 KiB/m",
            "KiB/s",
            "0B/s",
            "1XB/s",
            "99999999999GiB/s",
        ] {
            assert!(parse_byte_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_trusted_peers_are_expected_to_send_a_header() {
        let mut policy = EdgePolicy::open("127.0.0.1:1".parse().unwrap());
        policy.trusted_proxies = vec![access::parse_net("10.0.0.0/8").unwrap()];
        let proxy: SocketAddr = "10.1.1.1:5".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.1.1.1]:5".parse().unwrap();
        assert!(!policy.expects_proxy_header(proxy.ip()), "off: never");
        policy.proxy = ProxyMode::V2;
        assert!(policy.expects_proxy_header(proxy.ip()));
        assert!(policy.expects_proxy_header(mapped.ip()));
        assert_eq!(policy.client_at_accept(proxy), None);
        let other: SocketAddr = "11.1.1.1:5".parse().unwrap();
        assert_eq!(policy.client_at_accept(other), Some(other.ip()));
        assert_eq!(
            policy.client_at_accept("[::ffff:11.1.1.1]:5".parse().unwrap()),
            Some(other.ip()),
            "the client is named in its IPv4 form"
        );
    }
}
