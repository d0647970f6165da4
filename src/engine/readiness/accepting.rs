//! Accepting, in batches, and calmly when descriptors run out.
//!
//! A listener event may stand for thousands of waiting connections. Taking
//! them all before anything else would let a connection storm starve the
//! connections already established, so the one idea here is **a fixed
//! batch per event, then yield**: after [`ACCEPTS_PER_EVENT`] the listener
//! is re-armed, and since the one-shot re-arm of a still-ready listener is
//! reported at the next wait, behind the events already waiting, accepting
//! and serving take turns.
//!
//! Out of descriptors (`EMFILE`), the reserve descriptor sheds the waiting
//! connection (`net::accept`); with no spare left, accepting pauses for
//! [`ACCEPT_BACKOFF`] instead of spinning on a listener that stays readable.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use backends::Interest;

use super::slots::{connection_token, listener_token, Slot, TimerKey, GENERATION_MASK};
use super::Worker;
use crate::engine::connection::Connection;
use crate::engine::stats::CloseReason;
use crate::net::accept;

/// Connections accepted per listener event before other events get a turn.
pub const ACCEPTS_PER_EVENT: usize = 32;
/// How long to stop accepting when out of descriptors with no spare to shed.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Worker {
    pub(super) fn accept_batch(&mut self, index: usize) {
        for _ in 0..ACCEPTS_PER_EVENT {
            let Some(listener) = self.listeners.get(index).and_then(Option::as_ref) else {
                return; // closed for shutdown
            };
            match accept::accept(listener) {
                Ok((stream, peer)) => {
                    self.env.shared.stats.count_accepted();
                    self.env.counters.count_accepted(self.counter_block(index));
                    self.admit(index, stream, peer);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if accept::is_per_connection_error(&err) => continue,
                Err(err) if accept::is_descriptor_exhaustion(&err) => {
                    if self.reserve.shed_one(listener) {
                        self.log_exhaustion(&err);
                        self.env
                            .shared
                            .stats
                            .count_closed(CloseReason::OutOfDescriptors);
                        self.env.counters.count_accepted(self.counter_block(index));
                        self.env.counters.count_refused(
                            self.counter_block(index),
                            CloseReason::OutOfDescriptors,
                        );
                        continue;
                    }
                    self.log_exhaustion(&err);
                    self.pause_accepting(index);
                    return;
                }
                Err(err) => {
                    log::warn!(
                        "worker {}: accept failed: {err}; retrying shortly",
                        self.env.id
                    );
                    self.pause_accepting(index);
                    return;
                }
            }
        }
        self.rearm_listener(index);
    }

    /// The counter block of listener `index` (see `ListenerPolicy::counters`).
    fn counter_block(&self, index: usize) -> usize {
        self.env.policies[self.listener_policy[index]].counters
    }

    fn pause_accepting(&mut self, index: usize) {
        self.live_timers += 1;
        self.timers.schedule(
            self.now + ACCEPT_BACKOFF,
            TimerKey::ResumeAccepting { listener: index },
        );
    }

    fn rearm_listener(&mut self, index: usize) {
        let Some(listener) = self.listeners.get(index).and_then(Option::as_ref) else {
            return;
        };
        let fd = listener.as_raw_fd();
        if let Err(err) = self
            .selector
            .reregister(fd, listener_token(index), Interest::READABLE)
        {
            log::error!(
                "worker {}: cannot re-arm listener {}: {err}",
                self.env.id,
                self.env.policies[self.listener_policy[index]].local
            );
        }
    }

    fn log_exhaustion(&mut self, err: &io::Error) {
        // Once per burst: a storm of EMFILE must not become a storm of logs.
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

    /// Registers an accepted socket and creates its connection, or refuses
    /// it (dropping the stream closes it).
    fn admit(&mut self, listener: usize, stream: TcpStream, peer: SocketAddr) {
        // The connection keeps the policy it is admitted under, whatever a
        // reload does to the listener later (see `engine::policies`).
        let policy = self.listener_policy[listener];
        let admitted = match self.env.admit(policy, peer, self.now) {
            Ok(admitted) => admitted,
            Err(reason) => {
                self.env.shared.stats.count_closed(reason);
                self.env
                    .counters
                    .count_refused(self.counter_block(listener), reason);
                return;
            }
        };
        if let Err(err) = accept::tune(&stream, &self.env.socket_options) {
            self.env.release(admitted, self.now);
            self.env.shared.stats.count_closed(CloseReason::SocketError);
            self.env
                .counters
                .count_refused(self.counter_block(listener), CloseReason::SocketError);
            log::debug!("dropped {peer}: cannot set socket options: {err}");
            return;
        }
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        let entry = self.slots.vacant_entry();
        let key = entry.key();
        let token = connection_token(key, generation);
        if let Err(err) = self
            .selector
            .register(stream.as_raw_fd(), token, Interest::READABLE)
        {
            self.env.release(admitted, self.now);
            self.env.shared.stats.count_closed(CloseReason::SocketError);
            self.env
                .counters
                .count_refused(self.counter_block(listener), CloseReason::SocketError);
            log::warn!("cannot register connection from {peer}: {err}");
            return;
        }
        let id = self.env.next_session_id();
        self.env.policies.acquire(policy);
        let mut cx = self.env.context(self.now);
        let conn = Connection::new(id, policy, peer, &mut cx);
        entry.insert(Slot {
            socket: stream,
            generation,
            armed: Some(Interest::READABLE),
            scheduled: None,
            conn,
        });
        // A plaintext-only listener admits at once, and the service may
        // already have something to say.
        self.after_call(key);
        self.settle(key);
    }
}
