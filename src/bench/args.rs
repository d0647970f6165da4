//! The flags of `portcullis bench SCENARIO`.
//!
//! Every scenario takes the same [`TargetArgs`] (where the server is and how
//! to speak to it: plaintext or TLS with SNI, CA and optional client
//! certificate) and [`MeasureArgs`] (pinning, the server's PID for CPU and
//! memory figures); the rest is its own. The one idea: **a benchmark is only
//! as good as its reproducibility**, so every knob that changes the result
//! is a flag with a printed default, and the report repeats them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand, Clone)]
pub enum Scenario {
    /// Round trips: clients send messages and verify every echoed byte
    /// (against `serve --service echo`). `--mode` picks which CppServer
    /// client to reproduce: cppserver-v1, cppserver-v2 (default) or
    /// pingpong.
    Echo(EchoArgs),
    /// Receive rate: clients count the bytes a `multicast` server streams
    /// (CppServer's performance/tcp_multicast_client.cpp).
    Multicast(MulticastArgs),
    /// Many concurrent connections: open, check each with one echo, hold,
    /// and (with --server-pid) measure the server's memory per connection.
    Connections(ConnectionsArgs),
    /// TLS handshakes per second, full and resumed.
    Handshakes(HandshakesArgs),
    /// UDP round trips: clients send datagrams, verify every reply, count
    /// losses (against `serve --service udp-echo`).
    UdpEcho(super::udp_args::UdpEchoArgs),
    /// UDP multicast: receivers join the group a `udp-multicast` server
    /// streams to and count what arrives, what is lost, what is late.
    UdpMulticast(super::udp_args::UdpMulticastArgs),
}

/// Where the server is and how to talk to it, for scenarios that speak
/// plaintext unless told otherwise.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Speak TLS (the project's own engine in client mode).
    #[arg(long)]
    pub tls: bool,
}

/// Where the server is, for scenarios that always speak TLS (`handshakes`):
/// the same flags as [`TargetArgs`] without `--tls`, which would mean
/// nothing there.
#[derive(Debug, Args, Clone)]
pub struct TlsTargetArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What both kinds of target share: the address, the TLS details used when
/// TLS is spoken, and the bench's own backend.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// Server address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub addr: SocketAddr,

    /// Server name sent as SNI and checked against the certificate.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub sni: String,

    /// CA certificates (PEM) to verify the server with. Default: the
    /// built-in development CA that `portcullis serve` uses by default.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Client certificate (PEM), for domains that require one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Pin the TLS version: 1.2 or 1.3. Default: negotiate (1.3 when both
    /// sides have it).
    #[arg(long, value_name = "VERSION", value_parser = ["1.2", "1.3"])]
    pub tls_version: Option<String>,

    /// The bench's own reactor backend. Default: the best compiled in.
    #[arg(long, value_name = "NAME")]
    pub client_backend: Option<String>,
}

/// The two kinds of target, as [`crate::bench::target::Target`] reads them.
pub trait TargetFlags {
    fn server(&self) -> &ServerArgs;
    /// Whether `--tls` was given (always false where there is no such flag).
    fn tls_requested(&self) -> bool;
}

impl TargetFlags for TargetArgs {
    fn server(&self) -> &ServerArgs {
        &self.server
    }
    fn tls_requested(&self) -> bool {
        self.tls
    }
}

impl TargetFlags for TlsTargetArgs {
    fn server(&self) -> &ServerArgs {
        &self.server
    }
    fn tls_requested(&self) -> bool {
        false
    }
}

/// How to measure.
#[derive(Debug, Args, Clone)]
pub struct MeasureArgs {
    /// Pin the bench (all its threads) to these CPUs, e.g. `1` or `2,3`, so
    /// it does not compete with a server pinned elsewhere.
    #[arg(long, value_name = "CPUS")]
    pub pin: Option<String>,

    /// PID of the server process: adds its CPU time per message (and, for
    /// `connections`, its memory per connection) to the report. Repeat it
    /// for a server made of several processes (scripts/run-per-core.sh):
    /// their CPU times and memory are added up.
    #[arg(long, value_name = "PID")]
    pub server_pid: Vec<u32>,
}

/// What an echo client does, each named after the client it reproduces.
/// CppServer's clients live in its `performance/` directory; its defaults
/// (100 clients, 32-byte messages, 1,000 messages in flight, 10 seconds)
/// are this bench's defaults too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EchoMode {
    /// CppServer's original round-trip client (performance/tcp_echo_client.cpp
    /// and ssl_echo_client.cpp as of commit e0bdec8, March 2019): --messages
    /// in total (default 1000000), split
    /// across clients; each client writes one message per completed write,
    /// never waits for echoes, and stops once its share has been echoed.
    #[value(name = "cppserver-v1")]
    CppserverV1,
    /// Today's CppServer client (performance/tcp_echo_client.cpp and
    /// ssl_echo_client.cpp since commit 9144c45, April 2019): --window
    /// messages in flight per client, one new message per echoed message,
    /// for --duration (default 10 s).
    #[value(name = "cppserver-v2")]
    CppserverV2,
    /// One message in flight per client (no CppServer client does this);
    /// reports round-trip percentiles.
    Pingpong,
}

impl EchoMode {
    pub fn name(self) -> &'static str {
        match self {
            EchoMode::CppserverV1 => "cppserver-v1",
            EchoMode::CppserverV2 => "cppserver-v2",
            EchoMode::Pingpong => "pingpong",
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct EchoArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub measure: MeasureArgs,

    /// Which client to reproduce. (The earlier `stream` mode, 8 KiB in
    /// flight per client, matched neither CppServer client; it is
    /// `cppserver-v2 --window 256` for 32-byte messages.)
    #[arg(long, value_enum, default_value_t = EchoMode::CppserverV2)]
    pub mode: EchoMode,

    /// Concurrent clients (CppServer's -c).
    #[arg(long, value_name = "C", default_value_t = 100)]
    pub clients: usize,

    /// Messages in total, split evenly across clients; a client stops
    /// sending once its share is sent and finishes once it is echoed.
    /// Bounds the run when given. Default: 1000000 for cppserver-v1 (its
    /// -m), unbounded for the other modes.
    #[arg(long, value_name = "M")]
    pub messages: Option<u64>,

    /// Seconds to send for; what is in flight then is still awaited and
    /// verified. Bounds the run when given. Default: 10 for cppserver-v2
    /// and pingpong (CppServer's -z), unbounded for cppserver-v1. With
    /// --messages too, whichever is reached first ends the run, and the
    /// report says which.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Message size in bytes (CppServer's -s).
    #[arg(long, value_name = "S", default_value_t = 32)]
    pub size: usize,

    /// cppserver-v2: messages in flight per client (CppServer's -m).
    #[arg(long, value_name = "M", default_value_t = 1000)]
    pub window: usize,

    /// Threads, each running its own reactor with a share of the clients
    /// (CppServer's -t).
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub threads: usize,

    /// Give up (and count unfinished clients as errors) after this long.
    /// Default: 120 s, or --duration plus 60 s when that is longer.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
}

#[derive(Debug, Args, Clone)]
pub struct MulticastArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub measure: MeasureArgs,

    /// Concurrent receivers.
    #[arg(long, value_name = "C", default_value_t = 100)]
    pub clients: usize,

    /// The server's message size (`serve --multicast-size`), for counting
    /// messages and checking that every message ends in '\n'.
    #[arg(long, value_name = "S", default_value_t = 32)]
    pub size: usize,

    /// Seconds to measure, after every receiver has its first bytes.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub duration: f64,

    /// Threads, each running its own reactor with a share of the receivers.
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub threads: usize,
}

#[derive(Debug, Args, Clone)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub measure: MeasureArgs,

    /// Connections to open and hold at once.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub count: usize,

    /// Seconds to hold them once all are open and checked.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub hold: f64,

    /// Size of the one echo that checks each connection.
    #[arg(long, value_name = "S", default_value_t = 32)]
    pub size: usize,

    /// Connections per process. Default: this process's descriptor limit
    /// minus a reserve; more connections are split over child processes.
    #[arg(long, value_name = "N")]
    pub per_process: Option<usize>,

    /// Spread source addresses over 127.0.0.2 .. 127.0.0.(1+K). Default:
    /// as many as the count needs given one address's ephemeral ports.
    #[arg(long, value_name = "K")]
    pub sources: Option<usize>,

    /// Connections being set up (connect, handshake, echo) at once; more
    /// would only overflow the server's accept backlog.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub setup_concurrency: usize,

    /// Give up on connections not set up after this long.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub timeout: f64,

    /// Internal: run as a child process holding connections START..START+N.
    #[arg(long, value_name = "START:N", hide = true)]
    pub child_share: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HandshakePhases {
    /// New session every time.
    Full,
    /// Offer a saved session every time.
    Resumed,
    /// Full, then resumed, each for --duration.
    Both,
}

#[derive(Debug, Args, Clone)]
pub struct HandshakesArgs {
    #[command(flatten)]
    pub target: TlsTargetArgs,
    #[command(flatten)]
    pub measure: MeasureArgs,

    /// Handshakes in progress at once (per run, across threads).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,

    /// Seconds per phase.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub duration: f64,

    #[arg(long, value_enum, default_value_t = HandshakePhases::Both)]
    pub phases: HandshakePhases,

    /// Threads, each running its own reactor with a share of the concurrency.
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub threads: usize,
}
