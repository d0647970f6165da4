//! The flags of `portcullis bench udp-echo` and `bench udp-multicast`.
//!
//! UDP has no connection to set up and no TLS, so these scenarios take an
//! address and the shared [`MeasureArgs`], not [`super::args::TargetArgs`].
//! The one idea, as for the TCP scenarios: **every knob that changes the
//! result is a flag with a printed default**, repeated in the report.

use std::net::SocketAddr;

use clap::Args;

use super::args::MeasureArgs;

#[derive(Debug, Args, Clone)]
pub struct UdpEchoArgs {
    #[command(flatten)]
    pub measure: MeasureArgs,

    /// Server address (`serve --service udp-echo` prints it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub addr: SocketAddr,

    /// Concurrent clients, each with a socket of its own.
    #[arg(long, value_name = "C", default_value_t = 100)]
    pub clients: usize,

    /// Datagrams each client sends at once at the start; after that it
    /// sends one more per reply (CppServer's `--messages`). Losses are not
    /// replaced, so this is the most a client has in flight.
    #[arg(long, value_name = "M", default_value_t = 10)]
    pub messages: usize,

    /// Datagram size in bytes (at least 8: each carries its number).
    #[arg(long, value_name = "S", default_value_t = 32)]
    pub size: usize,

    /// Seconds to send for.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub duration: f64,

    /// After --duration, how long to wait for replies still in flight
    /// before counting the missing ones as lost.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub drain: f64,

    /// Threads, each running its own reactor with a share of the clients.
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub threads: usize,

    /// Datagrams per receive and send system call of each client.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub batch: usize,

    /// The bench's own reactor backend. Default: the best compiled in.
    #[arg(long, value_name = "NAME")]
    pub client_backend: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct UdpMulticastArgs {
    #[command(flatten)]
    pub measure: MeasureArgs,

    /// The group the server sends to (`serve --group`).
    #[arg(long, value_name = "ADDR:PORT", default_value = "239.255.0.1:3333")]
    pub group: SocketAddr,

    /// The interface to join on: an IPv4 address for an IPv4 group, an
    /// interface name or index for IPv6. Default: 127.0.0.1 (IPv4), the
    /// kernel's choice (IPv6).
    #[arg(long = "multicast-if", value_name = "IP")]
    pub multicast_if: Option<String>,

    /// Receivers, each a socket that joins the group.
    #[arg(long, value_name = "C", default_value_t = 100)]
    pub clients: usize,

    /// The server's datagram size (`serve --multicast-size`): every
    /// datagram is checked in full against it.
    #[arg(long, value_name = "S", default_value_t = 32)]
    pub size: usize,

    /// Seconds to count for, once every receiver has its first datagram.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub duration: f64,

    /// Threads, each running its own reactor with a share of the receivers.
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub threads: usize,

    /// Datagrams per receive system call of each receiver.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub batch: usize,

    /// The bench's own reactor backend. Default: the best compiled in.
    #[arg(long, value_name = "NAME")]
    pub client_backend: Option<String>,
}
