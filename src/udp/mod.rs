//! UDP: datagram services on the same reactor as the TCP connections.
//!
//! A UDP socket is registered with a worker's reactor like a listener, and
//! served by an [`Endpoint`]: on readiness it receives a batch of
//! datagrams, hands each to a [`DatagramService`], and sends what the
//! service queued as one batch. There are no connections, no TLS and no
//! per-peer state in the engine; what a peer can do wrong — send a datagram
//! too large, send too many, vanish so that replies bounce — is counted in
//! [`UdpCounters`] and never stops the loop.
//!
//! The one idea: **a datagram server is a batch server** — its cost is
//! system calls, so everything here moves arrays of datagrams
//! (`recvmmsg`/`sendmmsg` on Linux), and the summary says how many
//! datagrams each system call carried.
//!
//! | file | job |
//! |---|---|
//! | `batch/` | receive and send arrays of datagrams; ICMP error reports |
//! | `sockaddr.rs` | the kernel's peer address as a `SocketAddr` |
//! | `socket.rs` | opening server, multicast-sender and receiver sockets |
//! | `service.rs` | the [`DatagramService`] interface and its [`Outbox`] |
//! | `endpoint.rs` | one socket and its service: the receive/serve/send loop |
//! | `rate.rs` | the per-source rate limit |
//! | `counters.rs` | what happened, shared by every worker |
//! | `echo.rs` | `udp-echo` |
//! | `multicast.rs` | `udp-multicast`, and the datagrams its receivers check |
//! | `config.rs` | `[[udp_listeners]]`, `[udp]` and `[multicast]` in the config |
//!
//! The readiness driver's side is `engine/readiness/datagrams.rs`: tokens,
//! re-arming and timers, nothing about datagrams.

pub mod batch;
pub mod config;
pub mod counters;
pub mod echo;
pub mod endpoint;
pub mod multicast;
pub mod rate;
pub mod service;
pub mod sockaddr;
pub mod socket;

use std::net::UdpSocket;
use std::sync::Arc;

pub use counters::{UdpCounters, UdpEvent};
pub use endpoint::{Endpoint, EndpointOptions};
pub use service::{DatagramService, DatagramServiceFactory, NextSend, Outbox};

/// What one worker needs to serve UDP: its sockets (bound already), the
/// service to build for each, how to read and write, and the counters.
pub struct DatagramSetup {
    pub sockets: Vec<UdpSocket>,
    pub service: DatagramServiceFactory,
    pub options: EndpointOptions,
    pub counters: Arc<UdpCounters>,
}

/// The UDP side of a server: which sockets, which service, how.
pub struct UdpSettings {
    pub sockets: Vec<socket::UdpSocketOptions>,
    /// The service and what it does, for the `udp listening on` lines.
    pub description: String,
    pub service: DatagramServiceFactory,
    pub options: EndpointOptions,
    pub counters: Arc<UdpCounters>,
    /// Serve on the first worker only: a service that sends on its own
    /// (`udp-multicast`) must send one stream, not one per worker.
    pub first_worker_only: bool,
}
