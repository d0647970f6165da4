//! Multishot accept: one submission per listener, one completion per
//! connection.
//!
//! The readiness driver accepts in batches of 32 per event so that a
//! connection storm cannot starve established connections. Here the kernel
//! accepts on its own and posts each new descriptor as a completion, in the
//! same queue as everything else, so accepting and serving take turns by
//! construction. The one idea: **the same admission, a different source of
//! descriptors** — the peer address comes from `getpeername` (a multishot
//! accept does not report it), and then admission, socket options and the
//! connection core are exactly the readiness driver's.
//!
//! One enter can bring a whole storm of accepted connections; they are
//! admitted [`ACCEPTS_PER_TURN`] per turn, after the turn's other
//! completions, as the readiness driver accepts a batch per event.
//!
//! Out of descriptors, the kernel ends the multishot accept with `EMFILE`:
//! the reserve descriptor sheds one waiting connection and accepting
//! resumes; with no spare, it pauses for [`ACCEPT_BACKOFF`].

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use io_uring::{cqueue, opcode, types};

use super::slots::Slot;
use super::user_data::{Op, UserData, GENERATION_MASK};
use super::{TimerKey, Worker};
use crate::engine::connection::Connection;
use crate::engine::stats::CloseReason;
use crate::net::accept;

/// Connections admitted per loop turn before other completions get a turn
/// (the readiness driver's batch per listener event).
pub const ACCEPTS_PER_TURN: usize = 32;
/// How long to stop accepting when out of descriptors with no spare to shed.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Worker {
    /// Starts the multishot accept of listener `index`, unless it runs.
    pub(super) fn arm_accept(&mut self, index: usize) {
        let Some(Some(listener)) = self.listeners.get_mut(index) else {
            return;
        };
        if listener.accepting || listener.paused {
            return;
        }
        let sqe = opcode::AcceptMulti::new(types::Fd(listener.socket.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(UserData::new(Op::Accept, index, 0).encode());
        listener.accepting = true;
        // SAFETY: a multishot accept without an address points at no memory.
        unsafe { self.ring.push(&sqe) };
    }

    pub(super) fn on_accept(&mut self, index: usize, result: i32, flags: u32) {
        let more = cqueue::more(flags);
        let Some(Some(listener)) = self.listeners.get_mut(index) else {
            if result >= 0 {
                // SAFETY: the kernel created this descriptor for us.
                drop(unsafe { TcpStream::from_raw_fd(result) });
            }
            return;
        };
        if !more {
            listener.accepting = false;
        }
        if result >= 0 {
            // SAFETY: the kernel just created this descriptor for us and
            // nothing else owns it.
            let stream = unsafe { TcpStream::from_raw_fd(result) };
            self.env.shared.stats.count_accepted();
            self.env.counters.count_accepted(index);
            if self.env.shutdown_by.is_some() {
                self.env.shared.stats.count_closed(CloseReason::Shutdown);
                self.env
                    .counters
                    .count_refused(index, CloseReason::Shutdown);
            } else {
                // Admitted after this turn's other completions (see
                // `admit_accepted`).
                self.accepted.push_back((index, stream));
            }
        } else {
            let err = io::Error::from_raw_os_error(-result);
            if result == -libc::ECANCELED {
                // Shutdown cancelled it (below, the listener closes).
            } else if accept::is_per_connection_error(&err) {
                // The connection is gone already; accepting goes on.
            } else if accept::is_descriptor_exhaustion(&err) {
                self.log_exhaustion(&err);
                let shed = self.listeners[index]
                    .as_ref()
                    .is_some_and(|l| self.reserve.shed_one(&l.socket));
                if shed {
                    self.env
                        .shared
                        .stats
                        .count_closed(CloseReason::OutOfDescriptors);
                    self.env.counters.count_accepted(index);
                    self.env
                        .counters
                        .count_refused(index, CloseReason::OutOfDescriptors);
                } else {
                    self.pause_accepting(index);
                }
            } else {
                log::warn!(
                    "worker {}: accept failed: {err}; retrying shortly",
                    self.env.id
                );
                self.pause_accepting(index);
            }
        }
        if !more {
            if self.env.shutdown_by.is_some() {
                self.listeners[index] = None; // nothing in flight: close it
            } else {
                self.arm_accept(index);
            }
        }
    }

    /// Admits up to [`ACCEPTS_PER_TURN`] of the connections the kernel
    /// accepted, after the turn's other completions were handled. One
    /// enter can bring hundreds of accepts (a storm waiting in the backlog),
    /// and admitting them all first would make an established connection
    /// that spoke meanwhile wait behind them; the rest wait for the next
    /// turn, which then does not block. Returns whether some are left.
    pub(super) fn admit_accepted(&mut self) -> bool {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some((index, stream)) = self.accepted.pop_front() else {
                return false;
            };
            match stream.peer_addr() {
                Ok(peer) => self.admit(index, stream, peer),
                Err(err) => {
                    log::debug!("dropped a connection: no peer address: {err}");
                    self.env.shared.stats.count_closed(CloseReason::SocketError);
                    self.env
                        .counters
                        .count_refused(index, CloseReason::SocketError);
                }
            }
        }
        !self.accepted.is_empty()
    }

    /// Shutdown: the connections accepted but not yet admitted are closed.
    pub(super) fn drop_accepted(&mut self) {
        for (index, _) in self.accepted.drain(..) {
            self.env.shared.stats.count_closed(CloseReason::Shutdown);
            self.env
                .counters
                .count_refused(index, CloseReason::Shutdown);
        }
    }

    fn pause_accepting(&mut self, index: usize) {
        if let Some(Some(listener)) = self.listeners.get_mut(index) {
            if listener.paused {
                return;
            }
            listener.paused = true;
        }
        self.live_timers += 1;
        self.timers.schedule(
            self.now + ACCEPT_BACKOFF,
            TimerKey::ResumeAccepting { listener: index },
        );
    }

    fn log_exhaustion(&mut self, err: &io::Error) {
        let quiet = self
            .last_exhaustion_log
            .is_some_and(|at| self.now.duration_since(at) < Duration::from_secs(5));
        if !quiet {
            log::warn!(
                "worker {}: out of file descriptors ({err}); shedding new connections until some close",
                self.env.id
            );
            self.last_exhaustion_log = Some(self.now);
        }
    }

    /// Creates the connection for an accepted socket, or refuses it
    /// (dropping the stream closes it). Its receive is armed by `settle`.
    fn admit(&mut self, listener: usize, stream: TcpStream, peer: SocketAddr) {
        let admitted = match self.env.admit(listener, peer, self.now) {
            Ok(admitted) => admitted,
            Err(reason) => {
                self.env.shared.stats.count_closed(reason);
                self.env.counters.count_refused(listener, reason);
                return;
            }
        };
        if let Err(err) = accept::tune(&stream, &self.env.socket_options) {
            self.env.release(admitted, self.now);
            self.env.shared.stats.count_closed(CloseReason::SocketError);
            self.env
                .counters
                .count_refused(listener, CloseReason::SocketError);
            log::debug!("dropped {peer}: cannot set socket options: {err}");
            return;
        }
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        let id = self.env.next_session_id();
        let mut cx = self.env.context(self.now);
        let conn = Connection::new(id, listener, peer, &mut cx);
        let key = self.slots.insert(Slot::new(stream, generation, conn));
        // A plaintext-only listener admits at once, and the service may
        // already have something to say.
        self.after_call(key);
        self.settle(key);
    }
}
