//! The readiness driver: one worker's event loop over a [`Selector`].
//!
//! It owns the sockets, the reactor and the timers, and runs connections
//! that do no I/O of their own (`engine/connection/`). Its loop:
//!
//! ```text
//!   wait for readiness (until the earliest deadline)
//!   for each event:  listener   → accept a batch        (accepting.rs)
//!                    connection → write, then read until EAGAIN, feeding
//!                                 each result to the connection (socket_io.rs)
//!                    UDP socket → its endpoint receives, serves and sends
//!                                 batches of datagrams (datagrams.rs)
//!   deliver broadcasts posted by other workers; resume paused senders
//!   fire the timers that are due
//! ```
//!
//! and after anything happens to a connection, [`Worker::settle`] asks it
//! [`Connection::next`] and does that: re-arm the one-shot registration
//! (skipped when it is already armed the same way), send FIN and linger, or
//! close. The one idea: **every path ends in `settle`**, so a connection is
//! always either armed, parked on purpose, or closed with a reason — with
//! one-shot registrations there is no fourth state that would silently
//! never wake again.
//!
//! [`Connection`]: crate::engine::connection::Connection
//! [`Connection::next`]: crate::engine::connection::Connection::next

mod accepting;
mod datagrams;
mod reconfigure;
mod slots;
pub(super) mod socket_io;

pub(in crate::engine) use socket_io::failure_reason;

use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::time::Instant;

use backends::{Event, Events, Selector};
use slab::Slab;

use super::connection::Next;
use super::context::ListenerPolicy;
use super::stats::CloseReason;
use super::worker::{Env, WorkerSetup};
use crate::net::accept::ReserveFd;
use crate::timers::Timers;
use slots::{connection_token, listener_token, target, Slot, Target, TimerKey};

/// Events one wait may return.
const EVENTS_PER_WAIT: usize = 1024;
const READ_BUFFER_SIZE: usize = 64 * 1024;

/// One thread's event loop.
pub struct Worker {
    selector: Box<dyn Selector>,
    events: Events,
    /// `None` once closed (for shutdown, or by a reload). Indices are never
    /// reused, so a stale event or timer finds `None`.
    listeners: Vec<Option<TcpListener>>,
    /// Each listener's stable id (see `engine::control`), by index.
    listener_ids: Vec<crate::engine::control::ListenerId>,
    /// Each listener's current policy number in `env.policies`, by index.
    listener_policy: Vec<usize>,
    slots: Slab<Slot>,
    next_generation: u32,
    timers: Timers<TimerKey>,
    /// Entries in `timers` that are not stale.
    live_timers: usize,
    reserve: ReserveFd,
    /// The one read buffer, lent to whichever connection is being read.
    read_buf: Vec<u8>,
    /// Connections whose reading is held off until the broadcast hub has
    /// room again, with their generations.
    paused: Vec<(usize, u32)>,
    /// Keys of a broadcast's receivers, reused from message to message.
    receivers: Vec<usize>,
    last_exhaustion_log: Option<Instant>,
    /// UDP sockets, if this worker serves any.
    datagrams: datagrams::Datagrams,
    now: Instant,
    env: Env,
}

impl Worker {
    pub fn new(selector: Box<dyn Selector>, mut setup: WorkerSetup) -> io::Result<Worker> {
        let backend = selector.kind().name();
        let datagrams = datagrams::Datagrams::open(setup.datagrams.take())?;
        let mut listeners = Vec::new();
        let mut policies = Vec::new();
        for spec in std::mem::take(&mut setup.listeners) {
            spec.listener.set_nonblocking(true)?;
            policies.push(ListenerPolicy {
                local: spec.listener.local_addr()?,
                allow_plaintext: spec.allow_plaintext,
                tls: spec.tls,
                edge: spec.edge,
                counters: policies.len(),
            });
            listeners.push(Some(spec.listener));
        }
        let count = listeners.len();
        let mut worker = Worker {
            selector,
            events: Events::with_capacity(EVENTS_PER_WAIT),
            listeners,
            listener_ids: (0..count as u64).collect(),
            listener_policy: (0..count).collect(),
            slots: Slab::new(),
            next_generation: 0,
            timers: Timers::new(),
            live_timers: 0,
            reserve: ReserveFd::new(),
            read_buf: vec![0; READ_BUFFER_SIZE],
            paused: Vec::new(),
            receivers: Vec::new(),
            last_exhaustion_log: None,
            datagrams,
            now: Instant::now(),
            env: Env::new(setup, policies, backend),
        };
        for (index, listener) in worker.listeners.iter().enumerate() {
            if let Some(listener) = listener {
                worker.selector.register(
                    listener.as_raw_fd(),
                    listener_token(index),
                    backends::Interest::READABLE,
                )?;
            }
        }
        worker.register_datagrams()?;
        Ok(worker)
    }

    /// Runs until the shared stop flag is set and every connection has
    /// closed (each within the shutdown grace period and one linger).
    pub fn run(mut self) -> io::Result<()> {
        loop {
            if self.env.stop_requested() && self.env.shutdown_by.is_none() {
                self.begin_shutdown();
            }
            if self.env.shutdown_by.is_some() && self.slots.is_empty() {
                self.env.log_exit();
                return Ok(());
            }
            let timeout = self
                .timers
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            self.selector.wait(&mut self.events, timeout)?;
            self.now = Instant::now();
            // Before accepting: a connection that arrived after a reload
            // was posted gets the new policy.
            self.apply_control();
            // Index rather than iterate: handling an event needs `self`.
            let mut i = 0;
            while let Some(event) = self.events.get(i) {
                self.dispatch(event);
                i += 1;
            }
            self.deliver_posted_broadcasts();
            self.resume_paused();
            self.expire_timers();
        }
    }

    fn dispatch(&mut self, event: Event) {
        match target(event.token) {
            Target::Listener(index) => self.accept_batch(index),
            Target::Datagram(index) => self.datagram_event(index, event),
            Target::Connection { key, generation } => {
                let Some(slot) = self.slots.get_mut(key) else {
                    return; // closed earlier in this batch
                };
                if slot.generation != generation {
                    return; // a stale event for a slot that was reused
                }
                slot.armed = None; // one-shot: the event disarmed it
                if event.writable {
                    self.write_to(key);
                }
                if event.readable {
                    self.read_from(key);
                }
                self.settle(key);
            }
        }
    }

    /// Does what the connection wants next (see the module doc).
    fn settle(&mut self, key: usize) {
        loop {
            let Some(slot) = self.slots.get_mut(key) else {
                return;
            };
            match slot.conn.next(&self.env.limits) {
                Next::Wait(interest) => {
                    if slot.armed != Some(interest) {
                        let token = connection_token(key, slot.generation);
                        let fd = slot.socket.as_raw_fd();
                        if let Err(err) = self.selector.reregister(fd, token, interest) {
                            log::warn!("cannot re-arm {}: {err}", slot.conn.peer());
                            self.close(key, CloseReason::SocketError);
                            return;
                        }
                        slot.armed = Some(interest);
                    }
                    self.schedule(key);
                    return;
                }
                Next::Parked => {
                    self.schedule(key);
                    return;
                }
                Next::ShutdownWrite => {
                    // Close at once when the kernel holds nothing in flight:
                    // lingering could then only waste time.
                    if quiet(&slot.socket) {
                        let reason = slot.conn.closing_reason();
                        self.close(key, reason);
                        return;
                    }
                    if let Err(err) = slot.socket.shutdown(std::net::Shutdown::Write) {
                        log::debug!("shutdown towards {} failed: {err}", slot.conn.peer());
                        let reason = slot.conn.closing_reason();
                        self.close(key, reason);
                        return;
                    }
                    slot.conn.handle_write_shut(self.now);
                }
                Next::Close(reason) => {
                    // One try for the last bytes (a TLS alert); no waiting.
                    let last = slot.conn.transmit();
                    if !last.is_empty() {
                        if let Ok(n) = (&slot.socket).write(last) {
                            let listener = self.env.policies[slot.conn.listener()].counters;
                            let lane = slot.conn.lane();
                            self.env.counters.count_bytes_out(listener, lane, n);
                        }
                    }
                    self.close(key, reason);
                    return;
                }
            }
        }
    }

    /// The one way a connection ends.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(slot) = self.slots.try_remove(key) else {
            return;
        };
        if slot.scheduled.is_some() {
            self.live_timers -= 1;
        }
        if let Err(err) = self.selector.deregister(slot.socket.as_raw_fd()) {
            log::debug!("deregister {} failed: {err}", slot.conn.peer());
        }
        let admitted = slot.conn.admitted();
        let policy = slot.conn.listener();
        let mut cx = self.env.context(self.now);
        slot.conn.finish(reason, &mut cx);
        // The policy number outlives the release, which reads its edge.
        self.env.release(admitted, self.now);
        self.env.policies.release(policy);
        // Dropping the slot closes the socket.
    }

    /// Makes sure the timer heap holds an entry no later than the
    /// connection's deadline (see `timers` for why entries are lazy).
    fn schedule(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let cx = self.env.context(self.now);
        let Some(deadline) = slot.conn.deadline(&cx) else {
            return;
        };
        if slot.scheduled.is_some_and(|at| at <= deadline) {
            return; // the entry already there fires first, then recomputes
        }
        if slot.scheduled.is_none() {
            self.live_timers += 1;
        }
        slot.scheduled = Some(deadline);
        let generation = slot.generation;
        self.timers
            .schedule(deadline, TimerKey::Connection { key, generation });
    }

    fn expire_timers(&mut self) {
        self.now = Instant::now();
        while let Some((at, timer)) = self.timers.pop_due(self.now) {
            match timer {
                TimerKey::ResumeAccepting { listener } => {
                    self.live_timers -= 1;
                    self.accept_batch(listener);
                }
                TimerKey::Datagram { socket } => self.datagram_timer(socket, at),
                TimerKey::Connection { key, generation } => {
                    let Some(slot) = self.slots.get_mut(key) else {
                        continue;
                    };
                    if slot.generation != generation || slot.scheduled != Some(at) {
                        continue; // stale: the slot was reused or rescheduled
                    }
                    slot.scheduled = None;
                    self.live_timers -= 1;
                    let mut cx = self.env.context(self.now);
                    slot.conn.handle_timeout(&mut cx);
                    self.after_call(key);
                    self.settle(key);
                }
            }
        }
        if self.timers.needs_compaction(self.live_timers) {
            let (slots, datagrams) = (&self.slots, &self.datagrams);
            self.timers.retain(|at, timer| match *timer {
                TimerKey::Connection { key, generation } => slots
                    .get(key)
                    .is_some_and(|s| s.generation == generation && s.scheduled == Some(at)),
                TimerKey::ResumeAccepting { .. } => true,
                TimerKey::Datagram { socket } => datagrams.timer_is_live(socket, at),
            });
        }
    }

    /// The drain: stops accepting, closes connections not yet admitted,
    /// lets each admitted session say goodbye, and sets the grace deadline
    /// until which they are served on, then closed politely (TLS
    /// `close_notify`; see `connection/deadlines.rs`).
    fn begin_shutdown(&mut self) {
        self.env.shutdown_by = Some(self.now + self.env.shutdown_grace);
        for listener in &mut self.listeners {
            if let Some(socket) = listener.take() {
                let _ = self.selector.deregister(socket.as_raw_fd());
            }
        }
        self.close_datagrams();
        let keys: Vec<usize> = self.slots.iter().map(|(key, _)| key).collect();
        for key in keys {
            if let Some(slot) = self.slots.get_mut(key) {
                let mut cx = self.env.context(self.now);
                slot.conn.begin_shutdown(&mut cx);
                self.after_call(key);
                self.settle(key);
            }
        }
    }
}

/// Whether the kernel holds nothing unread from, or unacknowledged by, the
/// peer (see `net::queues`).
fn quiet(stream: &std::net::TcpStream) -> bool {
    crate::net::queues::queues(stream).is_ok_and(|q| q.is_quiet())
}
