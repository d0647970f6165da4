//! The acceptor thread: accept, admit, and start one thread per connection.
//!
//! It waits on the listeners through a selector, rather than sitting in
//! `accept`, so that the shutdown can wake it with the selector's waker
//! (the same waker the readiness workers are stopped with). The one idea:
//! **admission is the readiness driver's** — `Env::admit` counts the
//! connection against `max_connections` and refuses it during shutdown;
//! the reserve descriptor sheds a connection when descriptors run out; a
//! thread that cannot be created closes its connection and is counted.

use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use backends::{Events, Interest, Selector, Token};

use super::connection::ConnectionThread;
use super::room::Room;
use super::Setup;
use crate::engine::counters::WorkerCounters;
use crate::engine::stats::CloseReason;
use crate::engine::worker::{Env, WorkerSetup};
use crate::net::accept::{self, ReserveFd};

/// Stack of a connection thread. Only the pages it touches count against
/// memory; this bounds the address space a runaway recursion could take.
pub const STACK_SIZE: usize = 256 * 1024;
/// How long to stop accepting when out of descriptors with no spare left.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct Acceptor {
    pub selector: Box<dyn Selector>,
    pub listeners: Vec<TcpListener>,
    pub setup: Setup,
}

impl Acceptor {
    pub fn run(self) -> io::Result<()> {
        let Acceptor {
            mut selector,
            listeners,
            setup,
        } = self;
        let setup = Arc::new(setup);
        super::wake::install()?;
        // Connection threads inherit this thread's signal mask: the wake
        // signal is blocked in them from their first instruction.
        let _mask = super::wake::WaitMask::block_in_this_thread()?;
        for (index, listener) in listeners.iter().enumerate() {
            listener.set_nonblocking(true)?;
            selector.register(listener.as_raw_fd(), Token(index), Interest::READABLE)?;
        }
        let mut env = setup.env(0);
        let room = Arc::new(Room::new(setup.limits.output_hard_limit));
        let mut reserve = ReserveFd::new();
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut events = Events::with_capacity(listeners.len().max(1));
        let mut next_id = 0usize;
        let mut paused_until: Option<Instant> = None;
        while !env.stop_requested() {
            let timeout = paused_until.map(|at| at.saturating_duration_since(Instant::now()));
            selector.wait(&mut events, timeout)?;
            if paused_until.is_some_and(|at| Instant::now() >= at) {
                paused_until = None;
                for (index, listener) in listeners.iter().enumerate() {
                    selector.reregister(listener.as_raw_fd(), Token(index), Interest::READABLE)?;
                }
            }
            for event in events.iter() {
                let index = event.token.0;
                let listener = &listeners[index];
                loop {
                    match accept::accept(listener) {
                        Ok((stream, peer)) => {
                            env.shared.stats.count_accepted();
                            let admitted = match env.admit(index, peer, Instant::now()) {
                                Ok(admitted) => admitted,
                                Err(reason) => {
                                    env.shared.stats.count_closed(reason);
                                    continue;
                                }
                            };
                            if let Err(err) = accept::tune(&stream, &env.socket_options) {
                                env.release(admitted, Instant::now());
                                env.shared.stats.count_closed(CloseReason::SocketError);
                                log::debug!("dropped {peer}: cannot set socket options: {err}");
                                continue;
                            }
                            next_id = next_id.wrapping_add(1);
                            let connection = ConnectionThread {
                                setup: setup.clone(),
                                id: next_id & 0xffff,
                                admitted,
                                stream,
                                listener: index,
                                peer,
                                room: room.clone(),
                            };
                            let spawned = std::thread::Builder::new()
                                .name("portcullis-conn".into())
                                .stack_size(STACK_SIZE)
                                .spawn(move || connection.run());
                            match spawned {
                                Ok(handle) => threads.push(handle),
                                Err(err) => {
                                    // The closure (and the stream) is dropped:
                                    // the connection is closed.
                                    log::warn!("cannot start a thread for {peer}: {err}");
                                    env.release(admitted, Instant::now());
                                    env.shared.stats.count_closed(CloseReason::SocketError);
                                }
                            }
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(err) if accept::is_per_connection_error(&err) => continue,
                        Err(err) if accept::is_descriptor_exhaustion(&err) => {
                            if reserve.shed_one(listener) {
                                env.shared.stats.count_closed(CloseReason::OutOfDescriptors);
                                continue;
                            }
                            log::warn!("threads: out of file descriptors ({err}); pausing accepts");
                            paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                            break;
                        }
                        Err(err) => {
                            log::warn!("threads: accept failed: {err}; retrying shortly");
                            paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                            break;
                        }
                    }
                }
                if paused_until.is_none() {
                    selector.reregister(listener.as_raw_fd(), event.token, Interest::READABLE)?;
                }
            }
            threads.retain(|t| !t.is_finished());
        }
        // Stop: no more accepts; every connection thread hears the stop,
        // says goodbye within the grace period, and ends.
        for listener in &listeners {
            let _ = selector.deregister(listener.as_raw_fd());
        }
        drop(listeners);
        room.wake_all();
        let served = threads.len();
        for thread in threads {
            let _ = thread.join();
        }
        debug_assert!(room.is_empty());
        log::info!(
            "threads: served {} connections ({served} still open at shutdown)",
            env.served()
        );
        Ok(())
    }
}

impl Setup {
    /// An environment for one thread: its own service instance (services
    /// keep per-session state without locks, one instance per thread), the
    /// server's limits, listener policies and counters.
    pub(super) fn env(&self, id: usize) -> Env {
        let setup = WorkerSetup {
            id,
            listeners: Vec::new(),
            service: (self.service)(),
            limits: self.limits.clone(),
            socket_options: self.socket_options,
            shutdown_grace: self.shutdown_grace,
            shared: self.shared.clone(),
            datagrams: None,
            // Counters with one writer, this thread (see engine::counters).
            // The admin port, which sums per-worker counters, is refused
            // under this driver (server.rs), so nothing reads them.
            counters: Arc::new(WorkerCounters::new(id, self.policies.len())),
        };
        Env::new(setup, self.policies.clone(), "threads")
    }
}
