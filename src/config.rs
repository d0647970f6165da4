//! The configuration file (`portcullis serve --config FILE`) and the built-in
//! defaults.
//!
//! A configuration mistake should stop the server *before* it accepts a
//! single connection, with a message a tired operator can act on: which file,
//! which key, what is wrong. The one idea: **parse strictly, then validate
//! everything up front** — unknown keys are errors (a typo such as
//! `client_atuh` must not silently turn mutual TLS off), and certificates and
//! keys are loaded and matched at start-up, not on the first handshake.
//!
//! See `portcullis.example.toml` for every key, documented.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::engine::edge::access::parse_net;
use crate::engine::edge::{parse_byte_rate, AcceptRate, AccessRules, EdgeSettings, ProxyMode};
use crate::engine::ConnectionLimits;
use crate::net::accept::AcceptedSocketOptions;
use crate::tls::{DomainSpec, Profile};
use crate::udp::config::{MulticastConfig, UdpConfig, UdpListenerConfig};

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `echo`, `chat`, `http`, `multicast`, `udp-echo` or `udp-multicast`.
    pub service: Option<String>,
    /// A backend name; default: the best compiled in.
    pub backend: Option<String>,
    pub workers: Option<usize>,
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub timeouts: TimeoutConfig,
    #[serde(default)]
    pub limits: LimitConfig,
    #[serde(default)]
    pub socket: SocketConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub http2: Http2Config,
    #[serde(default)]
    pub domains: Vec<DomainSpec>,
    #[serde(default)]
    pub udp_listeners: Vec<UdpListenerConfig>,
    #[serde(default)]
    pub udp: UdpConfig,
    #[serde(default)]
    pub multicast: MulticastConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// Serve connections whose first bytes are not TLS. Default: true.
    #[serde(default = "yes")]
    pub plaintext: bool,
    /// Serve TLS (needs `[[domains]]`). Default: true when domains exist.
    pub tls: Option<bool>,
    pub backlog: Option<i32>,
    /// Default: on when `workers` > 1.
    pub reuse_port: Option<bool>,
    /// Linux `TCP_DEFER_ACCEPT`. Default: on, except for `chat` and
    /// `multicast`, which speak first.
    pub defer_accept: Option<bool>,
    /// For `[::]`: refuse IPv4 clients. Default: false (dual stack).
    #[serde(default)]
    pub ipv6_only: bool,
    /// Access rules in order, nginx-style: `"deny 192.168.1.1"`,
    /// `"allow 192.168.1.0/24"`, `"deny all"`. First match wins; default allow.
    #[serde(default)]
    pub access: Vec<String>,
    /// Connections open at once on this listener (next to the global one).
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address.
    pub max_connections_per_client: Option<u32>,
    /// New connections per client address: `"20/s"` or `"600/m"`.
    pub accept_rate_per_client: Option<String>,
    /// Per-connection read rate: `"100KiB/s"`; reading pauses, nothing drops.
    pub read_rate_limit: Option<String>,
    /// `"off"` (default), `"v1"`, `"v2"` or `"any"`.
    pub proxy_protocol: Option<String>,
    /// Peers (addresses or CIDRs) whose PROXY header is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Seconds a trusted proxy has to send its whole header. Default: 3.
    pub proxy_header_secs: Option<f64>,
}

impl ListenerConfig {
    /// The edge settings (access rules, limits, rates, PROXY protocol);
    /// an error names the key (`listeners[i].KEY`) and the problem.
    pub fn edge_settings(&self, index: usize) -> Result<EdgeSettings, (String, String)> {
        let key = |name: &str| format!("listeners[{index}].{name}");
        let mut edge = EdgeSettings {
            access: AccessRules::parse(&self.access).map_err(|e| (key("access"), e))?,
            ..EdgeSettings::default()
        };
        if self.max_connections == Some(0) {
            return Err((key("max_connections"), "must be at least 1".into()));
        }
        edge.max_connections = self.max_connections;
        if self.max_connections_per_client == Some(0) {
            return Err((
                key("max_connections_per_client"),
                "must be at least 1".into(),
            ));
        }
        edge.max_connections_per_client = self.max_connections_per_client;
        if let Some(rate) = &self.accept_rate_per_client {
            edge.accept_rate_per_client =
                Some(AcceptRate::parse(rate).map_err(|e| (key("accept_rate_per_client"), e))?);
        }
        if let Some(rate) = &self.read_rate_limit {
            edge.read_rate_limit =
                Some(parse_byte_rate(rate).map_err(|e| (key("read_rate_limit"), e))?);
        }
        if let Some(mode) = &self.proxy_protocol {
            edge.proxy = ProxyMode::parse(mode).map_err(|e| (key("proxy_protocol"), e))?;
        }
        for (i, entry) in self.trusted_proxies.iter().enumerate() {
            let net = parse_net(entry).map_err(|e| (key(&format!("trusted_proxies[{i}]")), e))?;
            edge.trusted_proxies.push(net);
        }
        if let Some(secs) = self.proxy_header_secs {
            if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
                return Err((
                    key("proxy_header_secs"),
                    format!("{secs} is not a positive number of seconds"),
                ));
            }
            edge.proxy_header_timeout = Duration::from_secs_f64(secs);
        }
        match (edge.proxy, edge.trusted_proxies.is_empty()) {
            (ProxyMode::Off, false) => Err((
                key("trusted_proxies"),
                "set, but proxy_protocol is off: no header would be read".into(),
            )),
            (ProxyMode::Off, true) if self.proxy_header_secs.is_some() => Err((
                key("proxy_header_secs"),
                "set, but proxy_protocol is off".into(),
            )),
            (mode, true) if mode != ProxyMode::Off => Err((
                key("trusted_proxies"),
                format!(
                    "empty, but proxy_protocol is \"{}\": no proxy would be believed",
                    self.proxy_protocol.as_deref().unwrap_or("")
                ),
            )),
            _ => Ok(edge),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    pub handshake_secs: Option<f64>,
    pub idle_secs: Option<f64>,
    pub write_secs: Option<f64>,
    pub linger_secs: Option<f64>,
    pub plaintext_after_ms: Option<u64>,
    pub shutdown_grace_secs: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub output_high_water: Option<usize>,
    pub output_hard_limit: Option<usize>,
    pub max_input: Option<usize>,
    pub max_header_bytes: Option<usize>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    pub nodelay: Option<bool>,
    /// Seconds of idleness before TCP keepalive probes; 0 turns keepalive off.
    pub keepalive_secs: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// What to do with a ClientHello whose SNI no domain lists: a domain name
    /// (its policy serves it) or `reject`. Default: the first domain.
    pub unknown_sni: Option<String>,
    /// What to do with a ClientHello without SNI (clients connecting by IP
    /// address send none): a domain name or `reject`. Default: the first
    /// domain.
    pub no_sni: Option<String>,
    /// ALPN protocols offered, in preference order. Default:
    /// `["h2", "http/1.1"]`.
    pub alpn: Option<Vec<String>>,
    /// `"intermediate"` (default: TLS 1.2 with ECDHE + AEAD, and TLS 1.3) or
    /// `"modern"` (TLS 1.3 only), for domains that name none.
    pub profile: Option<Profile>,
    /// A file with the secret that session-ticket keys are derived from,
    /// shared by every process serving the port (see docs/tls.md). Must
    /// not be readable by group or others. Default: random keys per process.
    pub ticket_key_file: Option<PathBuf>,
    /// Seconds each ticket key encrypts before the next takes over; the
    /// previous one still decrypts. Default: 43200 (12 hours).
    pub ticket_rotation_secs: Option<u64>,
}

/// `[http2]`: HTTP/2 on the `http` service (see docs/http2.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2Config {
    /// Serve plaintext connections that open with the HTTP/2 preface.
    /// Default: true.
    pub h2c: Option<bool>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS. Default: 100.
    pub max_concurrent_streams: Option<u32>,
    /// SETTINGS_MAX_HEADER_LIST_SIZE, decoded bytes. Default: 16384.
    pub max_header_list_size: Option<usize>,
    /// Stream resets a peer may send per 10 seconds. Default: 100.
    pub max_resets_per_10s: Option<u32>,
}

impl Http2Config {
    /// The HTTP/2 limits, with defaults for what the file leaves out.
    pub fn limits(&self) -> crate::service::http2::Http2Limits {
        let mut limits = crate::service::http2::Http2Limits::default();
        if let Some(max) = self.max_concurrent_streams {
            limits.max_concurrent_streams = max;
        }
        if let Some(size) = self.max_header_list_size {
            limits.max_header_list_size = size;
            // A block may encode at most this much (literals) plus framing;
            // keep the encoded bound at least as large.
            limits.max_header_block = limits.max_header_block.max(size * 2);
        }
        if let Some(max) = self.max_resets_per_10s {
            limits.resets.max = max;
        }
        limits
    }
}

/// The shortest and longest ticket key rotation periods accepted: a minute,
/// and a week (TLS 1.3 tickets may not live longer, RFC 8446 §4.6.1).
pub const TICKET_ROTATION_SECS: std::ops::RangeInclusive<u64> = 60..=604_800;

fn yes() -> bool {
    true
}

/// A configuration error: the file, the key, the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and parses a file; relative certificate paths are resolved
    /// against the file's directory, so a config works from any directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError(format!("{}: cannot read: {err}", path.display())))?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        for domain in &mut config.domains {
            domain.resolve_paths(base);
        }
        if let Some(file) = &mut config.tls.ticket_key_file {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        Ok(config)
    }

    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| {
            // toml's message already names the key and shows the line.
            ConfigError(format!("{origin}: {}", err.to_string().trim_end()))
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let fail =
            |key: &str, problem: String| Err(ConfigError(format!("{origin}: {key}: {problem}")));
        if let Some(service) = &self.service {
            if !SERVICES.contains(&service.as_str()) {
                return fail(
                    "service",
                    format!(
                        "unknown service `{service}`; expected one of {}",
                        SERVICES.join(", ")
                    ),
                );
            }
        }
        if let Some(backend) = &self.backend {
            if let Err(err) = crate::engine::Driver::parse(backend) {
                return fail("backend", err);
            }
        }
        if self.workers == Some(0) {
            return fail("workers", "must be at least 1".into());
        }
        if self.max_connections == Some(0) {
            return fail("max_connections", "must be at least 1".into());
        }
        for (i, listener) in self.listeners.iter().enumerate() {
            let tls = listener.tls.unwrap_or(!self.domains.is_empty());
            if tls && self.domains.is_empty() {
                return fail(
                    &format!("listeners[{i}].tls"),
                    "TLS is on but no [[domains]] are configured".into(),
                );
            }
            if !tls && !listener.plaintext {
                return fail(
                    &format!("listeners[{i}]"),
                    "neither plaintext nor TLS is allowed: nothing could connect".into(),
                );
            }
            if let Err((key, problem)) = listener.edge_settings(i) {
                return fail(&key, problem);
            }
        }
        for (key, value) in [
            ("timeouts.handshake_secs", self.timeouts.handshake_secs),
            ("timeouts.idle_secs", self.timeouts.idle_secs),
            ("timeouts.write_secs", self.timeouts.write_secs),
            ("timeouts.linger_secs", self.timeouts.linger_secs),
            (
                "timeouts.shutdown_grace_secs",
                self.timeouts.shutdown_grace_secs,
            ),
        ] {
            if let Some(secs) = value {
                if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
                    return fail(key, format!("{secs} is not a positive number of seconds"));
                }
            }
        }
        if let Some(secs) = self.tls.ticket_rotation_secs {
            if !TICKET_ROTATION_SECS.contains(&secs) {
                return fail(
                    "tls.ticket_rotation_secs",
                    format!(
                        "{secs} is outside {} to {} seconds (a minute to a week)",
                        TICKET_ROTATION_SECS.start(),
                        TICKET_ROTATION_SECS.end()
                    ),
                );
            }
        }
        for (key, value) in [
            ("limits.output_high_water", self.limits.output_high_water),
            ("limits.output_hard_limit", self.limits.output_hard_limit),
            ("limits.max_input", self.limits.max_input),
            ("limits.max_header_bytes", self.limits.max_header_bytes),
            (
                "http2.max_concurrent_streams",
                self.http2.max_concurrent_streams.map(|n| n as usize),
            ),
            (
                "http2.max_header_list_size",
                self.http2.max_header_list_size,
            ),
            (
                "http2.max_resets_per_10s",
                self.http2.max_resets_per_10s.map(|n| n as usize),
            ),
        ] {
            if value == Some(0) {
                return fail(key, "must be at least 1".into());
            }
        }
        crate::udp::config::validate(origin, &self.udp, &self.multicast)
    }

    /// Connection limits, with defaults for what the file leaves out.
    pub fn connection_limits(&self) -> ConnectionLimits {
        let defaults = ConnectionLimits::default();
        let secs =
            |value: Option<f64>, default: Duration| value.map_or(default, Duration::from_secs_f64);
        let plaintext_after = match self.timeouts.plaintext_after_ms {
            Some(ms) => Some(Duration::from_millis(ms)),
            None if self.service.as_deref() == Some("chat") => Some(DEFAULT_PLAINTEXT_AFTER),
            None => None,
        };
        ConnectionLimits {
            handshake_timeout: secs(self.timeouts.handshake_secs, defaults.handshake_timeout),
            idle_timeout: secs(self.timeouts.idle_secs, defaults.idle_timeout),
            write_timeout: secs(self.timeouts.write_secs, defaults.write_timeout),
            linger_timeout: secs(self.timeouts.linger_secs, defaults.linger_timeout),
            plaintext_after,
            output_high_water: self
                .limits
                .output_high_water
                .unwrap_or(defaults.output_high_water),
            output_hard_limit: self
                .limits
                .output_hard_limit
                .unwrap_or(defaults.output_hard_limit),
            max_input: self.limits.max_input.unwrap_or(defaults.max_input),
        }
    }

    pub fn socket_options(&self) -> AcceptedSocketOptions {
        let defaults = AcceptedSocketOptions::default();
        AcceptedSocketOptions {
            nodelay: self.socket.nodelay.unwrap_or(defaults.nodelay),
            keepalive: match self.socket.keepalive_secs {
                Some(0) => None,
                Some(secs) => Some(Duration::from_secs(secs)),
                None => defaults.keepalive,
            },
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        self.timeouts
            .shutdown_grace_secs
            .map_or(Duration::from_secs(5), Duration::from_secs_f64)
    }
}

/// The services `--service` and `service =` accept. The `udp-` ones serve
/// datagrams only unless TCP listeners are given too (see docs/udp.md).
pub const SERVICES: [&str; 6] = [
    "http",
    "echo",
    "chat",
    "multicast",
    "udp-echo",
    "udp-multicast",
];

/// Where `portcullis serve` listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// How long a listener that allows both plaintext and TLS waits for a chat
/// client's first bytes before greeting it as plaintext.
pub const DEFAULT_PLAINTEXT_AFTER: Duration = Duration::from_millis(300);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "test.toml").map_err(|e| e.0)
    }

    #[test]
    fn an_empty_file_is_valid_and_means_defaults() {
        let config = parse("").unwrap();
        assert!(config.listeners.is_empty());
        assert_eq!(
            config.connection_limits().idle_timeout,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_file_and_key() {
        let err = parse("sevrice = \"echo\"\n").unwrap_err();
        assert!(err.starts_with("test.toml:"), "{err}");
        assert!(err.contains("sevrice"), "{err}");
        let err = parse("[timeouts]\nidle = 3\n").unwrap_err();
        assert!(err.contains("idle"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = parse("service = \"ftp\"\n").unwrap_err();
        assert!(err.contains("service") && err.contains("ftp"), "{err}");
        let err = parse("backend = \"nosuch\"\n").unwrap_err();
        assert!(err.contains("backend") && err.contains("nosuch"), "{err}");
        let err = parse("[timeouts]\nidle_secs = -1\n").unwrap_err();
        assert!(err.contains("timeouts.idle_secs"), "{err}");
        let err = parse("[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = true\n").unwrap_err();
        assert!(err.contains("listeners[0].tls"), "{err}");
        let err = parse("[[listeners]]\naddress = \"not an address\"\n").unwrap_err();
        assert!(err.contains("address"), "{err}");
    }

    #[test]
    fn chat_waits_briefly_for_plaintext_clients_and_others_do_not() {
        let chat = parse("service = \"chat\"\n").unwrap();
        assert_eq!(
            chat.connection_limits().plaintext_after,
            Some(DEFAULT_PLAINTEXT_AFTER)
        );
        let echo = parse("service = \"echo\"\n").unwrap();
        assert_eq!(echo.connection_limits().plaintext_after, None);
    }

    #[test]
    fn http2_keys_set_limits_and_zero_is_refused() {
        let config = parse("[http2]\nh2c = false\nmax_concurrent_streams = 7\n").unwrap();
        assert_eq!(config.http2.h2c, Some(false));
        assert_eq!(config.http2.limits().max_concurrent_streams, 7);
        let err = parse("[http2]\nmax_header_list_size = 0\n").unwrap_err();
        assert!(err.contains("http2.max_header_list_size"), "{err}");
        let err = parse("[http2]\nh2 = true\n").unwrap_err();
        assert!(err.contains("h2"), "{err}");
    }

    #[test]
    fn tls_profile_and_ticket_keys_parse_and_bad_values_name_their_key() {
        let config = parse(
            "[tls]\nprofile = \"modern\"\nticket_key_file = \"t.key\"\n\
             ticket_rotation_secs = 3600\n",
        )
        .unwrap();
        assert_eq!(config.tls.profile, Some(Profile::Modern));
        assert_eq!(config.tls.ticket_rotation_secs, Some(3600));
        let err = parse("[tls]\nprofile = \"old\"\n").unwrap_err();
        assert!(err.contains("profile") && err.contains("old"), "{err}");
        for secs in [0, 59, 604_801] {
            let err = parse(&format!("[tls]\nticket_rotation_secs = {secs}\n")).unwrap_err();
            assert!(
                err.starts_with("test.toml: tls.ticket_rotation_secs: "),
                "{err}"
            );
        }
    }

    #[test]
    fn listener_edge_keys_parse_and_bad_values_name_file_key_and_problem() {
        let config = parse(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = false\n\
             access = [\"deny 192.168.1.1\", \"allow 192.168.1.0/24\", \"deny all\"]\n\
             max_connections = 5\nmax_connections_per_client = 2\n\
             accept_rate_per_client = \"20/s\"\nread_rate_limit = \"100KiB/s\"\n\
             proxy_protocol = \"v2\"\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_header_secs = 1.5\n",
        )
        .unwrap();
        let edge = config.listeners[0].edge_settings(0).unwrap();
        assert_eq!(edge.access.len(), 3);
        assert_eq!(edge.max_connections, Some(5));
        assert_eq!(edge.read_rate_limit, Some(102_400));
        assert_eq!(edge.proxy, ProxyMode::V2);
        assert_eq!(edge.proxy_header_timeout, Duration::from_millis(1500));
        let listener = "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = false\n";
        for (keys, expected) in [
            (
                "access = [\"permit all\"]",
                "test.toml: listeners[0].access: [0] `permit all`: `permit` is not",
            ),
            (
                "max_connections = 0",
                "test.toml: listeners[0].max_connections: must be at least 1",
            ),
            (
                "max_connections_per_client = 0",
                "test.toml: listeners[0].max_connections_per_client: must be",
            ),
            (
                "accept_rate_per_client = \"20/h\"",
                "test.toml: listeners[0].accept_rate_per_client: `20/h` is not a rate",
            ),
            (
                "read_rate_limit = \"fast\"",
                "test.toml: listeners[0].read_rate_limit: `fast` is not a byte rate",
            ),
            (
                "proxy_protocol = \"v3\"",
                "test.toml: listeners[0].proxy_protocol: `v3` is not",
            ),
            (
                "proxy_protocol = \"v1\"",
                "test.toml: listeners[0].trusted_proxies: empty, but proxy_protocol is \"v1\"",
            ),
            (
                "trusted_proxies = [\"10.0.0.0/8\"]",
                "test.toml: listeners[0].trusted_proxies: set, but proxy_protocol is off",
            ),
            (
                "proxy_protocol = \"any\"\ntrusted_proxies = [\"10.0.0.1/8\"]",
                "test.toml: listeners[0].trusted_proxies[0]: `10.0.0.1/8` has host bits set",
            ),
            (
                "proxy_protocol = \"any\"\ntrusted_proxies = [\"::1\"]\nproxy_header_secs = 0",
                "test.toml: listeners[0].proxy_header_secs: 0 is not",
            ),
        ] {
            let err = parse(&format!("{listener}{keys}\n")).unwrap_err();
            assert!(err.starts_with(expected), "{keys}: {err}");
        }
    }

    #[test]
    fn keepalive_zero_turns_it_off() {
        let config = parse("[socket]\nkeepalive_secs = 0\n").unwrap();
        assert_eq!(config.socket_options().keepalive, None);
    }
}

#[cfg(test)]
mod example_file_tests {
    use super::*;

    #[test]
    fn the_shipped_example_loads_and_builds_a_gate() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("portcullis.example.toml");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.domains.len(), 2);
        let gate = crate::tls::TlsGate::from_config(&config.domains, &config.tls, "example")
            .unwrap_or_else(|e| panic!("{e}"));
        let rules = gate.domain_rules();
        assert_eq!(
            rules.for_name("mtls.localhost").map(|r| r.client_auth),
            Some(crate::domains::ClientAuth::Required)
        );
    }
}
