//! The command line: `portcullis serve` and `portcullis bench`.
//!
//! Flags are declared once, with their help text, through clap's derive; the
//! one idea is that **`--help` is generated from the same structs the code
//! reads**, so it cannot drift from what the flags do.

mod activation;
mod admin_flags;
pub mod limits;
pub mod serve;
pub mod stats;
pub mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "One TCP port serving plaintext, TLS and mutual TLS, on a hand-rolled reactor",
    long_about = "One TCP port serving plaintext, TLS and mutual TLS, decided per connection, \
                  on a hand-rolled reactor (poll, epoll, kqueue, or mio as a reference).\n\n\
                  With no subcommand, runs `serve` with its defaults: HTTP on 127.0.0.1:8443, \
                  plaintext allowed, `localhost` over TLS and `mtls.localhost` requiring a client \
                  certificate, using built-in development certificates."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default command).
    Serve(ServeArgs),
    /// List the I/O drivers of this binary, best first, one a line: name,
    /// model (readiness or threads) and whether it can run here (yes, or no
    /// with the reason).
    Backends,
    /// Measure a server: echo, multicast, connections or handshakes.
    Bench(crate::bench::BenchArgs),
    /// Show a running server's counters, with rates (needs its admin port).
    Stats(stats::StatsArgs),
    /// Show or change a running server's limits (needs its admin port).
    Limits(limits::LimitsArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// A TOML configuration file (see portcullis.example.toml). Flags given
    /// on the command line override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on; repeat for several. Port 0 picks a free port,
    /// printed in the `listening on` line. Default: 127.0.0.1:8443.
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,

    /// I/O driver: a readiness backend (epoll, uring, kqueue, mio, poll) or
    /// `threads` (a thread per connection). Default: the best readiness
    /// backend that runs here (see `portcullis backends`).
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,

    /// With `--backend uring-completion`: buffers in each worker's
    /// provided-buffer ring (a power of two, at most 32768). Default: 64.
    #[arg(long, value_name = "N")]
    pub uring_buffers: Option<u16>,

    /// With `--backend uring-completion`: bytes per provided buffer.
    /// Default: 65536.
    #[arg(long, value_name = "BYTES")]
    pub uring_buffer_size: Option<usize>,

    /// With `--backend uring-completion`: submission-queue entries per
    /// worker ring (the completion queue has four times as many). Default: 1024.
    #[arg(long, value_name = "N")]
    pub uring_entries: Option<u32>,

    /// Protocol to serve: http, echo, chat, multicast, udp-echo or
    /// udp-multicast. The udp- services serve datagrams only, unless
    /// --listen is given too. Default: http.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// Worker threads, each with its own reactor and SO_REUSEPORT listener.
    /// Default: 1.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Connections open at once across all workers; more are accepted and
    /// closed at once. Default: the descriptor limit minus a reserve.
    #[arg(long = "max-conns", value_name = "N")]
    pub max_conns: Option<usize>,

    /// Run N worker processes on the same port (SO_REUSEPORT), kept running
    /// by a supervisor that restarts any that crash, forwards SIGHUP
    /// (reload) and drains them all on SIGTERM; `auto` is one per core.
    /// They share session-ticket keys. Default: one process, no supervisor.
    #[arg(long, value_name = "N|auto")]
    pub processes: Option<crate::supervisor::Processes>,

    /// Set SO_REUSEPORT so that other processes can listen on the same port
    /// (as --processes does). Always on with --workers above 1.
    #[arg(long)]
    pub reuse_port: bool,

    /// Serve plaintext only: no TLS, no sniffing of the first bytes.
    #[arg(long, conflicts_with = "tls_only")]
    pub no_tls: bool,

    /// Refuse connections whose first bytes are not a TLS handshake.
    #[arg(long)]
    pub tls_only: bool,

    /// UDP address to serve datagrams on (udp-echo, or echo beside TCP);
    /// repeat for several. Port 0 picks a free port, printed in the `udp
    /// listening on` line. Default for udp-echo: 127.0.0.1:8443; for
    /// udp-multicast, the socket the stream leaves from: the interface's
    /// address, port 0.
    #[arg(long = "udp", value_name = "ADDR")]
    pub udp: Vec<SocketAddr>,

    /// udp-multicast: the group the stream goes to. Default: 239.255.0.1:3333.
    #[arg(long, value_name = "ADDR:PORT")]
    pub group: Option<SocketAddr>,

    /// udp-multicast: the interface to send on: an IPv4 address for an IPv4
    /// group, an interface name or index for an IPv6 group. Default:
    /// 127.0.0.1 (IPv4), the kernel's choice (IPv6).
    #[arg(long = "multicast-if", value_name = "IP")]
    pub multicast_if: Option<String>,

    /// udp-multicast: TTL (IPv6: hop limit) of the stream. Default: 1, the
    /// local network only.
    #[arg(long = "multicast-ttl", value_name = "N")]
    pub multicast_ttl: Option<u32>,

    /// udp-multicast: datagrams per second; 0 sends as fast as the socket
    /// takes them. Default: 0.
    #[arg(long, value_name = "MSGS_PER_S")]
    pub rate: Option<f64>,

    /// Serve metrics, stats and run-time limits on this address (a port of
    /// its own, loopback peers only unless the config's `[admin]` says
    /// otherwise). Default: off, or `[admin] address` from the config.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,

    /// Message size of the multicast services, in bytes: per message of the
    /// TCP multicast stream, per datagram of udp-multicast (8 to 65507:
    /// each carries an 8-byte sequence number). Default: 32.
    #[arg(long, value_name = "BYTES")]
    pub multicast_size: Option<usize>,
}
