//! The completion driver: one worker's event loop over io_uring, running
//! the same connection core as the readiness driver.
//!
//! A readiness driver asks the kernel "tell me when this socket is ready",
//! then makes the `read` or `write` itself: for one echoed message that is
//! a wait, a read, a write and a re-arm, each a system call. A completion
//! driver hands the kernel the operation itself — "receive into one of
//! these buffers", "send these bytes" — and later reads what happened from
//! a shared ring. Operations are queued in memory and submitted in a batch,
//! so the system call per operation disappears: a loop turn is one
//! `io_uring_enter` that submits everything queued and waits. The price is
//! that the kernel works on our memory after we asked: buffers must stay
//! put until the completion arrives, and closing a connection means
//! cancelling what is in flight and waiting for it before the slot and its
//! memory can be reused.
//!
//! ```text
//!   io_uring_enter: submit the queued operations, wait (until the earliest deadline)
//!   for each completion:  accept → queue the new socket (accepting.rs)
//!                         recv   → feed the bytes to the connection, give the buffer back
//!                         send   → tell the connection what went, send the rest (socket_io.rs)
//!                         wake   → another worker posted a broadcast, or shutdown
//!   admit a batch of the queued sockets: tune, start a multishot receive
//!   deliver broadcasts; resume paused senders; re-arm receives starved of buffers
//!   fire the timers that are due
//! ```
//!
//! Every path ends in [`Worker::settle`], as in the readiness driver: it
//! asks the connection [`next`](crate::engine::Connection::next) and makes
//! the operations in flight match — a receive armed while it wants to read,
//! one send in flight while it has output. The one idea: **the kernel owns
//! an operation from submission to completion** — so the driver keeps, per
//! connection, exactly what is in flight (`slots.rs`), names every
//! operation by slot and generation (`user_data.rs`), and lends buffers to
//! the kernel from a ring that belongs to the worker (`buf_ring.rs`).
//!
//! | file | job |
//! |---|---|
//! | `ring.rs` | the ring: setup, queueing, the one enter per turn, overflow |
//! | `buf_ring.rs` | the provided buffers multishot receives fill |
//! | `user_data.rs` | naming an operation: op, slot, generation |
//! | `slots.rs` | a connection's socket, operations in flight, and core |
//! | `deadlines.rs` | the timer heap: connections' deadlines, resuming accepts |
//! | `accepting.rs` | multishot accept, admission, descriptor exhaustion |
//! | `socket_io.rs` | receive, send, cancel, broadcasts |
//!
//! UDP sockets are served by the readiness driver only; asking for both
//! fails at start-up (`server.rs`).

mod accepting;
mod buf_ring;
mod deadlines;
mod ring;
mod slots;
mod socket_io;
mod user_data;

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types};
use slab::Slab;

use super::connection::Next;
use super::context::ListenerPolicy;
use super::stats::CloseReason;
use super::worker::{Env, WorkerSetup};
use crate::net::accept::ReserveFd;
use crate::timers::Timers;
use buf_ring::BufRing;
use deadlines::TimerKey;
use ring::Ring;
use slots::Slot;
use user_data::{Op, UserData};

pub use crate::engine::driver::CompletionOptions;
pub use ring::probe;

/// A listening socket and its multishot accept.
struct Listener {
    socket: TcpListener,
    /// The multishot accept is in flight.
    accepting: bool,
    /// Accepting is paused (out of descriptors) until a timer resumes it.
    paused: bool,
}

/// What the driver counted, for its exit line (and the tests).
#[derive(Debug, Default)]
struct Counts {
    /// Receives ended by `ENOBUFS` and re-armed once buffers were back.
    starved: u64,
    /// Connections closed with operations in flight, which were cancelled.
    cancelled: u64,
    /// Completions that named a slot's older generation, dropped.
    stale: u64,
}

/// One thread's event loop over io_uring.
pub struct Worker {
    /// Declared first so that it is dropped first: the kernel lets go of the
    /// buffers and send copies below before they are freed.
    ring: Ring,
    bufs: BufRing,
    /// Indexed like `env.policies`; `None` once closed for shutdown.
    listeners: Vec<Option<Listener>>,
    slots: Slab<Slot>,
    next_generation: u32,
    timers: Timers<TimerKey>,
    live_timers: usize,
    reserve: ReserveFd,
    /// Connections held off until the broadcast hub has room again.
    paused: Vec<(usize, u32)>,
    /// Connections whose receive ran out of buffers, to re-arm.
    starved: Vec<(usize, u32)>,
    receivers: Vec<usize>,
    /// Connections the kernel accepted, waiting to be admitted in batches.
    accepted: std::collections::VecDeque<(usize, std::net::TcpStream)>,
    /// Send copies not in use, kept to avoid an allocation per send.
    spare_sends: Vec<Vec<u8>>,
    /// Completions copied out of the queue, reused from turn to turn.
    completions: Vec<(u64, i32, u32)>,
    /// The eventfd behind this worker's waker; its poll is multishot.
    wake_fd: RawFd,
    /// Keeps the eventfd open as long as the worker runs.
    _waker: backends::Waker,
    last_exhaustion_log: Option<Instant>,
    counts: Counts,
    now: Instant,
    env: Env,
}

impl Worker {
    /// A worker woken through `waker` (whose eventfd is `wake_fd`; see
    /// [`backends::Waker::eventfd`]). Call on the thread that runs it: the
    /// ring is single-issuer.
    pub fn new(
        setup: WorkerSetup,
        options: CompletionOptions,
        waker: backends::Waker,
        wake_fd: RawFd,
    ) -> io::Result<Worker> {
        let ring = Ring::new(options.entries)?;
        let bufs = BufRing::register(&ring.uring, options.buffers, options.buffer_size)?;
        let mut listeners = Vec::new();
        let mut policies = Vec::new();
        for spec in setup.listeners.iter() {
            // Non-blocking, so that shedding with the reserve descriptor
            // (a plain accept) never blocks; io_uring's own accept waits
            // for connections whatever the flag says.
            spec.listener.set_nonblocking(true)?;
            policies.push(ListenerPolicy {
                local: spec.listener.local_addr()?,
                allow_plaintext: spec.allow_plaintext,
                tls: spec.tls.clone(),
                edge: spec.edge.clone(),
                counters: policies.len(),
            });
        }
        let mut setup = setup;
        for spec in std::mem::take(&mut setup.listeners) {
            listeners.push(Some(Listener {
                socket: spec.listener,
                accepting: false,
                paused: false,
            }));
        }
        if setup.datagrams.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the uring-completion backend serves TCP only",
            ));
        }
        let mut worker = Worker {
            ring,
            bufs,
            listeners,
            slots: Slab::new(),
            next_generation: 0,
            timers: Timers::new(),
            live_timers: 0,
            reserve: ReserveFd::new(),
            paused: Vec::new(),
            starved: Vec::new(),
            receivers: Vec::new(),
            accepted: std::collections::VecDeque::new(),
            spare_sends: Vec::new(),
            completions: Vec::new(),
            wake_fd,
            _waker: waker,
            last_exhaustion_log: None,
            counts: Counts::default(),
            now: Instant::now(),
            env: Env::new(setup, policies, super::driver::Driver::COMPLETION_NAME),
        };
        for index in 0..worker.listeners.len() {
            worker.arm_accept(index);
        }
        worker.arm_wake();
        Ok(worker)
    }

    /// Runs until the shared stop flag is set and every connection has
    /// closed (each within the shutdown grace period).
    pub fn run(mut self) -> io::Result<()> {
        let mut overflowed = false;
        let mut more_accepted = false;
        loop {
            if self.env.stop_requested() && self.env.shutdown_by.is_none() {
                self.begin_shutdown();
            }
            if self.env.shutdown_by.is_some()
                && self.slots.is_empty()
                && self.listeners.iter().all(Option::is_none)
            {
                self.log_exit();
                return Ok(());
            }
            // Buffers given back during the last turn become the kernel's
            // again before it runs the receives this enter submits.
            self.bufs.publish();
            let timeout = if overflowed || more_accepted {
                // Hand over the overflowed completions, or come back at
                // once for the accepted connections still waiting.
                Some(Duration::ZERO)
            } else {
                self.timers
                    .next_deadline()
                    .map(|at| at.saturating_duration_since(Instant::now()))
            };
            // Accepted connections wait to be admitted: collect everything
            // else that is ready first, so that they do not go before it.
            let want = if more_accepted { 256 } else { 1 };
            self.ring.enter(timeout, want)?;
            self.now = Instant::now();
            self.reap();
            more_accepted = self.admit_accepted();
            overflowed = self.ring.check_overflow();
            self.deliver_posted_broadcasts();
            self.resume_paused();
            self.rearm_starved();
            self.expire_timers();
        }
    }

    /// Handles every completion in the queue.
    fn reap(&mut self) {
        let mut completions = std::mem::take(&mut self.completions);
        completions.clear();
        completions.extend(
            self.ring
                .uring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())),
        );
        for &(raw, result, flags) in &completions {
            let Some(ud) = UserData::decode(raw) else {
                log::error!("completion with unknown user_data {raw:#x}");
                continue;
            };
            match ud.op {
                Op::Accept => self.on_accept(ud.key, result, flags),
                Op::Recv => self.on_recv(ud, result, flags),
                Op::Send => self.on_send(ud, result),
                Op::Wake => self.on_wake(flags),
                Op::Cancel => {
                    if result < 0 && result != -libc::ENOENT && result != -libc::EALREADY {
                        log::debug!("cancel failed: {}", io::Error::from_raw_os_error(-result));
                    }
                }
            }
        }
        self.completions = completions;
    }

    /// Does what the connection wants next (see the module doc).
    fn settle(&mut self, key: usize) {
        loop {
            let Some(slot) = self.slots.get_mut(key) else {
                return;
            };
            let Some(conn) = slot.conn.as_mut() else {
                return;
            };
            match conn.next(&self.env.limits) {
                Next::Wait(interest) => {
                    if interest.is_readable() {
                        if !slot.stash.is_empty() || slot.eof_stashed {
                            // Bytes that came while it did not want them.
                            let stash = std::mem::take(&mut slot.stash);
                            let eof = std::mem::take(&mut slot.eof_stashed);
                            let mut cx = self.env.context(self.now);
                            if !stash.is_empty() {
                                conn.handle_input(&stash, &mut cx);
                                cx.counters.count_bytes_in(
                                    conn.listener(),
                                    conn.lane(),
                                    stash.len(),
                                );
                            }
                            if eof {
                                conn.handle_eof(&mut cx);
                            }
                            self.after_call(key);
                            continue;
                        }
                        if !slot.recv_armed && !slot.starved {
                            self.arm_recv(key);
                        }
                    } else {
                        self.cancel_recv(key);
                    }
                    if interest.is_writable() {
                        self.start_send(key);
                    }
                    self.schedule(key);
                    return;
                }
                Next::Parked => {
                    self.cancel_recv(key);
                    self.schedule(key);
                    return;
                }
                Next::ShutdownWrite => {
                    // Only with no receive in flight can the kernel's queues
                    // tell: an armed receive may have taken bytes that wait
                    // in the completion queue, and bytes received ahead and
                    // not read count as the kernel's unread bytes would.
                    let quiet = !slot.recv_armed
                        && slot.stash.is_empty()
                        && crate::net::queues::queues(&slot.socket).is_ok_and(|q| q.is_quiet());
                    if quiet {
                        let reason = conn.closing_reason();
                        self.close(key, reason);
                        return;
                    }
                    if let Err(err) = slot.socket.shutdown(std::net::Shutdown::Write) {
                        log::debug!("shutdown towards {} failed: {err}", conn.peer());
                        let reason = conn.closing_reason();
                        self.close(key, reason);
                        return;
                    }
                    conn.handle_write_shut(self.now);
                }
                Next::Close(reason) => {
                    // One try for the last bytes (a TLS alert), unless a
                    // send is in flight: they would overtake it.
                    let last = conn.transmit();
                    if !last.is_empty() && slot.sending.is_none() {
                        // SAFETY: `last` is valid for its length during the
                        // call; the socket is open.
                        unsafe {
                            libc::send(
                                slot.socket.as_raw_fd(),
                                last.as_ptr().cast(),
                                last.len(),
                                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                            );
                        }
                    }
                    self.close(key, reason);
                    return;
                }
            }
        }
    }

    /// The one way a connection ends: count it, tell the service, cancel
    /// what is in flight; the slot is freed once that has completed.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let Some(conn) = slot.conn.take() else {
            return;
        };
        if slot.scheduled.take().is_some() {
            self.live_timers -= 1;
        }
        slot.stash = Vec::new();
        slot.starved = false;
        if slot.in_flight() {
            self.counts.cancelled += 1;
            let fd = slot.socket.as_raw_fd();
            let ud = UserData::new(Op::Cancel, key, slot.generation).encode();
            slot.recv_cancelling = true;
            let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                .build()
                .user_data(ud);
            // SAFETY: a cancellation points at no memory of ours.
            unsafe { self.ring.push(&cancel) };
        }
        let admitted = conn.admitted();
        let mut cx = self.env.context(self.now);
        conn.finish(reason, &mut cx);
        self.env.release(admitted, self.now);
        self.free_if_done(key);
    }

    /// Frees a closed slot once nothing is in flight for it; dropping the
    /// slot closes the socket.
    fn free_if_done(&mut self, key: usize) {
        if self.slots.get(key).is_some_and(Slot::is_done) {
            self.slots.remove(key);
        }
    }

    /// The waker's eventfd is readable: another worker posted broadcasts,
    /// or the server is stopping. Both are looked at every turn, so all
    /// this does is empty the counter.
    fn on_wake(&mut self, flags: u32) {
        let mut counter = [0u8; 8];
        // SAFETY: `counter` is 8 writable bytes; the eventfd is
        // non-blocking, so an empty one returns EAGAIN at once.
        unsafe { libc::read(self.wake_fd, counter.as_mut_ptr().cast(), counter.len()) };
        if !cqueue::more(flags) {
            self.arm_wake();
        }
    }

    fn arm_wake(&mut self) {
        let poll = opcode::PollAdd::new(types::Fd(self.wake_fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(UserData::new(Op::Wake, 0, 0).encode());
        // SAFETY: a poll points at no memory of ours.
        unsafe { self.ring.push(&poll) };
    }

    /// Stops accepting, lets each admitted session say goodbye and drain,
    /// and sets the grace deadline by which every connection is closed.
    fn begin_shutdown(&mut self) {
        self.env.shutdown_by = Some(self.now + self.env.shutdown_grace);
        self.drop_accepted();
        for index in 0..self.listeners.len() {
            let Some(listener) = &self.listeners[index] else {
                continue;
            };
            if listener.accepting {
                // The listener closes when the accept's last completion
                // comes back (`on_accept`): closing it now would leave the
                // kernel accepting on it.
                let ud = UserData::new(Op::Accept, index, 0).encode();
                let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(ud))
                    .build()
                    .user_data(UserData::new(Op::Cancel, index, 0).encode());
                // SAFETY: a cancellation points at no memory of ours.
                unsafe { self.ring.push(&cancel) };
            } else {
                self.listeners[index] = None;
            }
        }
        let keys: Vec<usize> = self.slots.iter().map(|(key, _)| key).collect();
        for key in keys {
            if let Some(conn) = self.slots.get_mut(key).and_then(|s| s.conn.as_mut()) {
                let mut cx = self.env.context(self.now);
                conn.begin_shutdown(&mut cx);
                self.after_call(key);
                self.settle(key);
            }
        }
    }

    fn log_exit(&self) {
        self.env.log_exit();
        let c = &self.counts;
        log::info!(
            "worker {}: completion driver: {} receives re-armed after ENOBUFS, {} closes cancelled operations in flight, {} stale completions dropped, {} CQ overflows, {} early submits, {}/{} buffers lent at exit",
            self.env.id,
            c.starved,
            c.cancelled,
            c.stale,
            self.ring.overflows,
            self.ring.early_flushes,
            self.bufs.ledger().lent(),
            self.bufs.ledger().entries()
        );
    }
}
