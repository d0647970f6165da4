//! The `threads` driver: one OS thread per connection, in blocking reads
//! and writes — the baseline that shows why an event loop exists.
//!
//! This is how Hunchentoot serves connections, and how most servers were
//! written before readiness APIs: an acceptor thread takes each connection
//! and hands it to a thread of its own, which reads, thinks and writes as
//! if it were the only client. It is the simplest model to read, and it
//! runs the very same connection core as the event loops (TLS, every
//! service, the deadlines, the counters), so a comparison measures only the
//! I/O model. Its costs are the ones the event loop avoids:
//!
//! * **memory**: a stack and a read buffer per connection, plus the
//!   kernel's own per-thread structures, where an event loop holds only the
//!   connection's state;
//! * **context switches**: every message wakes a thread of its own, so the
//!   scheduler switches once per message where one event-loop thread
//!   handles a whole batch per wake.
//!
//! The one idea: **the thread is the state machine's scheduler** — `next()`
//! says what the connection waits for, and the thread waits for it in a
//! system call rather than in a loop over many connections.
//!
//! | file | job |
//! |---|---|
//! | `acceptor.rs` | accept, admit (`max_connections`), start a thread per connection |
//! | `connection.rs` | one connection's loop: blocking write, wait, blocking read |
//! | `room.rs` | broadcasts (chat, multicast): an inbox per thread, and a wake |
//! | `wake.rs` | waking a thread blocked on its socket: a signal unblocked only in `ppoll` |
//!
//! It serves TCP only; datagrams need a readiness backend. `--workers` does
//! not apply: every connection is a worker of its own.

mod acceptor;
mod connection;
mod room;
pub mod wake;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::context::ListenerPolicy;
use super::limits::ConnectionLimits;
use super::worker::Shared;
use crate::net::accept::AcceptedSocketOptions;
use crate::service::ServiceFactory;

/// How many connection threads this process can hold. Each thread maps a
/// stack, its guard page, a signal stack and that stack's guard: about four
/// of the `vm.max_map_count` memory maps (65,530 by default), and a thread
/// that cannot map its signal stack aborts the whole process. So the
/// driver admits at most this many connections, with room to spare for the
/// allocator's own maps. It is the first wall this model meets, near 15,000
/// connections, well before memory or the descriptor limit.
pub fn thread_budget() -> usize {
    let maps: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_530);
    (maps / 4).saturating_sub(1_000)
}

/// What every thread of the driver needs to build its environment.
pub struct Setup {
    pub service: ServiceFactory,
    pub policies: Vec<ListenerPolicy>,
    pub limits: ConnectionLimits,
    pub socket_options: AcceptedSocketOptions,
    pub shutdown_grace: Duration,
    pub shared: Arc<Shared>,
}

/// Starts the acceptor thread on `listeners` (indexed like
/// `setup.policies`). Returns the waker that stops it (after setting
/// `shared.stop`) and its handle; it returns once every connection thread
/// has ended.
pub fn start(
    listeners: Vec<TcpListener>,
    setup: Setup,
) -> io::Result<(backends::Waker, JoinHandle<io::Result<()>>)> {
    let selector = backends::BackendKind::best().open()?;
    let waker = selector.waker();
    let acceptor = acceptor::Acceptor {
        selector,
        listeners,
        setup,
    };
    let handle = std::thread::Builder::new()
        .name("portcullis-acceptor".into())
        .spawn(move || acceptor.run())?;
    Ok((waker, handle))
}
