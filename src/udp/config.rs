//! The UDP parts of the configuration file: `[[udp_listeners]]`, `[udp]`
//! and `[multicast]`.
//!
//! They follow the rest of `config.rs`: unknown keys are errors, and every
//! value is checked at start-up with a message naming the file, the key and
//! the problem. The one idea: **a datagram server's knobs are about
//! batches and bounds** — how many datagrams per system call, how large one
//! may be, how many one source may send — and each has a default that is
//! right on its own. See `portcullis.example.toml` for every key.

use std::net::SocketAddr;

use serde::Deserialize;

use super::batch::IoMode;
use super::endpoint::EndpointOptions;
use super::rate::RateLimit;

/// Largest `batch`: more than this only grows buffers.
pub const MAX_BATCH: usize = 1024;
/// Largest receive slot: every UDP payload fits in 64 KiB.
pub const MAX_DATAGRAM: usize = 65_536;
/// Socket buffers asked for when the file says nothing. The kernel caps
/// them (`net.core.rmem_max`, `wmem_max`); a burst that does not fit the
/// receive buffer is lost, so ask for plenty.
pub const DEFAULT_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// One UDP socket.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpListenerConfig {
    pub address: SocketAddr,
    /// Default: on when `workers` > 1.
    pub reuse_port: Option<bool>,
    /// For `[::]`: refuse IPv4 peers. Default: false (dual stack).
    #[serde(default)]
    pub ipv6_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UdpIo {
    Batched,
    PerDatagram,
}

/// `[udp]`: how every UDP socket reads, writes and limits.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// Datagrams per receive and per send pass. Default: 32.
    pub batch: Option<usize>,
    /// `batched` (default; `recvmmsg`/`sendmmsg` on Linux) or
    /// `per_datagram` (one system call each).
    pub io: Option<UdpIo>,
    /// Larger datagrams are dropped (counted as truncated). Default: 65536.
    pub max_datagram_bytes: Option<usize>,
    pub receive_buffer_bytes: Option<usize>,
    pub send_buffer_bytes: Option<usize>,
    /// Datagrams per second one source IP may send. Default: no limit.
    pub per_source_rate: Option<f64>,
    /// Datagrams one source may send at once. Default: one second's worth.
    pub per_source_burst: Option<u32>,
}

/// `[multicast]`: the multicast services.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MulticastConfig {
    /// Bytes per message (TCP `multicast`) or per datagram (`udp-multicast`).
    pub size: Option<usize>,
    /// `udp-multicast`: where the stream goes. Default: 239.255.0.1:3333.
    pub group: Option<SocketAddr>,
    /// `udp-multicast`: the interface to send on.
    pub interface: Option<String>,
    /// `udp-multicast`: TTL or IPv6 hop limit. Default: 1.
    pub ttl: Option<u32>,
    /// `udp-multicast`: datagrams per second; 0 is as fast as possible.
    pub rate: Option<f64>,
    /// `udp-multicast`: deliver to receivers on this host. Default: true.
    pub loopback: Option<bool>,
}

impl UdpConfig {
    /// The endpoint options, with defaults for what the file leaves out.
    pub fn endpoint_options(&self) -> EndpointOptions {
        let defaults = EndpointOptions::default();
        EndpointOptions {
            batch: self.batch.unwrap_or(defaults.batch),
            max_datagram: self.max_datagram_bytes.unwrap_or(defaults.max_datagram),
            io: match self.io {
                Some(UdpIo::PerDatagram) => IoMode::PerDatagram,
                _ => IoMode::Batched,
            },
            rate_limit: self.per_source_rate.map(|per_second| RateLimit {
                per_second,
                burst: self.per_source_burst.map_or(per_second.max(1.0), f64::from),
            }),
        }
    }
}

/// Checks the UDP keys; errors read `ORIGIN: KEY: PROBLEM`.
pub fn validate(
    origin: &str,
    udp: &UdpConfig,
    multicast: &MulticastConfig,
) -> Result<(), crate::config::ConfigError> {
    let fail = |key: &str, problem: String| {
        Err(crate::config::ConfigError(format!(
            "{origin}: {key}: {problem}"
        )))
    };
    if let Some(batch) = udp.batch {
        if !(1..=MAX_BATCH).contains(&batch) {
            return fail("udp.batch", format!("{batch} is outside 1 to {MAX_BATCH}"));
        }
    }
    if let Some(bytes) = udp.max_datagram_bytes {
        if !(1..=MAX_DATAGRAM).contains(&bytes) {
            return fail(
                "udp.max_datagram_bytes",
                format!("{bytes} is outside 1 to {MAX_DATAGRAM}"),
            );
        }
    }
    for (key, value) in [
        ("udp.receive_buffer_bytes", udp.receive_buffer_bytes),
        ("udp.send_buffer_bytes", udp.send_buffer_bytes),
        ("multicast.size", multicast.size),
    ] {
        if value == Some(0) {
            return fail(key, "must be at least 1".into());
        }
    }
    if let Some(rate) = udp.per_source_rate {
        if !(rate.is_finite() && rate > 0.0) {
            return fail(
                "udp.per_source_rate",
                format!("{rate} is not a positive number of datagrams per second"),
            );
        }
    }
    match (udp.per_source_burst, udp.per_source_rate) {
        (Some(0), _) => return fail("udp.per_source_burst", "must be at least 1".into()),
        (Some(_), None) => {
            return fail(
                "udp.per_source_burst",
                "has no effect without udp.per_source_rate".into(),
            )
        }
        _ => {}
    }
    if let Some(group) = multicast.group {
        if !group.ip().is_multicast() {
            return fail(
                "multicast.group",
                format!(
                    "{} is not a multicast address (224.0.0.0/4 or ff00::/8)",
                    group.ip()
                ),
            );
        }
    }
    if let Some(ttl) = multicast.ttl {
        if ttl > 255 {
            return fail("multicast.ttl", format!("{ttl} is above 255"));
        }
    }
    if let Some(rate) = multicast.rate {
        if !(rate.is_finite() && rate >= 0.0) {
            return fail(
                "multicast.rate",
                format!("{rate} is not a number of datagrams per second (0: as fast as possible)"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "test.toml").map_err(|e| e.0)
    }

    #[test]
    fn udp_keys_parse_into_endpoint_options() {
        let config = parse(
            "[[udp_listeners]]\naddress = \"127.0.0.1:0\"\n\
             [udp]\nbatch = 8\nio = \"per_datagram\"\nmax_datagram_bytes = 1024\n\
             per_source_rate = 100.0\nper_source_burst = 10\n",
        )
        .unwrap();
        assert_eq!(config.udp_listeners.len(), 1);
        let options = config.udp.endpoint_options();
        assert_eq!(options.batch, 8);
        assert_eq!(options.max_datagram, 1024);
        assert_eq!(options.io, crate::udp::batch::IoMode::PerDatagram);
        let limit = options.rate_limit.unwrap();
        assert_eq!((limit.per_second, limit.burst), (100.0, 10.0));
    }

    #[test]
    fn bad_udp_values_name_file_and_key() {
        for (text, key) in [
            ("[udp]\nbatch = 0\n", "test.toml: udp.batch: "),
            ("[udp]\nbatch = 5000\n", "test.toml: udp.batch: "),
            (
                "[udp]\nmax_datagram_bytes = 70000\n",
                "test.toml: udp.max_datagram_bytes: ",
            ),
            (
                "[udp]\nper_source_rate = -1.0\n",
                "test.toml: udp.per_source_rate: ",
            ),
            (
                "[udp]\nper_source_burst = 5\n",
                "test.toml: udp.per_source_burst: ",
            ),
            (
                "[multicast]\ngroup = \"10.0.0.1:3333\"\n",
                "test.toml: multicast.group: ",
            ),
            ("[multicast]\nttl = 300\n", "test.toml: multicast.ttl: "),
            ("[multicast]\nrate = -5.0\n", "test.toml: multicast.rate: "),
            ("[multicast]\nsize = 0\n", "test.toml: multicast.size: "),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(key), "{text:?}: {err}");
        }
        let err = parse("[udp]\nio = \"fast\"\n").unwrap_err();
        assert!(err.contains("io") && err.contains("per_datagram"), "{err}");
        let err = parse("[[udp_listeners]]\naddress = \"127.0.0.1:0\"\nbacklog = 3\n").unwrap_err();
        assert!(err.contains("backlog"), "{err}");
    }

    #[test]
    fn the_shipped_example_documents_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("portcullis.example.toml");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.udp.endpoint_options(),
            crate::udp::EndpointOptions::default()
        );
        assert_eq!(
            config.udp.receive_buffer_bytes,
            Some(super::DEFAULT_SOCKET_BUFFER)
        );
        let multicast = &config.multicast;
        assert_eq!(
            multicast.group,
            crate::udp::multicast::DEFAULT_GROUP.parse().ok()
        );
        assert_eq!(
            (multicast.size, multicast.ttl, multicast.loopback),
            (Some(32), Some(1), Some(true))
        );
        assert_eq!(multicast.rate, Some(0.0));
    }
}
