//! The system calls of a readiness driver: `read` and `write` on a ready
//! socket, each result handed to the connection, and broadcasts carried to
//! the connections they are for.
//!
//! The pattern for both directions is the same: try the operation, give
//! the connection what happened (`handle_input`, `handle_eof`,
//! `handle_sent`, `handle_socket_error`), and stop at `EAGAIN` or at a
//! per-event budget so that one busy connection cannot hold the loop. The
//! one idea: **the driver decides nothing about the protocol** — it does not
//! know whether bytes are TLS or what the service wants; it moves bytes and
//! reports results, and the connection's `next()` says what comes after.
//!
//! A read that does not fill the buffer has very likely drained the socket,
//! so the read that would only say `EAGAIN` is skipped: the one-shot re-arm
//! reports the socket again at once if more did arrive, so nothing is lost
//! and a round trip costs one system call less.

use std::io::{self, Read, Write};

use super::Worker;
use crate::engine::connection::Stage;
use crate::engine::stats::CloseReason;

/// Reads per readable event before yielding to other connections.
const READS_PER_EVENT: usize = 16;
/// Writes per call before yielding (a streaming service refills as fast as
/// the socket drains).
const WRITES_PER_EVENT: usize = 16;

impl Worker {
    /// Reads until `EAGAIN`, the budget, or the connection wants no more.
    pub(super) fn read_from(&mut self, key: usize) {
        for _ in 0..READS_PER_EVENT {
            let Some(slot) = self.slots.get_mut(key) else {
                return;
            };
            if !slot.conn.wants_read(&self.env.limits) {
                return;
            }
            // With read_rate_limit, read no more than the allowance.
            let room = match slot.conn.read_allowance() {
                Some(allowance) => allowance.clamp(1, self.read_buf.len()),
                None => self.read_buf.len(),
            };
            let result = read_retrying(&mut &slot.socket, &mut self.read_buf[..room]);
            let mut cx = self.env.context(self.now);
            let drained = match result {
                Ok(0) => {
                    slot.conn.handle_eof(&mut cx);
                    true
                }
                Ok(n) => {
                    slot.conn.handle_input(&self.read_buf[..n], &mut cx);
                    // Filed under the lane the bytes admitted the connection
                    // to, if they did: a plaintext connection's first bytes
                    // count as plaintext.
                    let listener = cx.listeners[slot.conn.listener()].counters;
                    cx.counters.count_bytes_in(listener, slot.conn.lane(), n);
                    n < room
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    let reason = failure_reason(&err, slot.conn.exchange_complete());
                    log::debug!("read from {} failed: {err}", slot.conn.peer());
                    slot.conn.handle_socket_error(reason, &mut cx);
                    return;
                }
            };
            self.after_call(key);
            if drained {
                return;
            }
        }
    }

    /// Writes what the connection has queued until `EAGAIN` or the budget.
    pub(super) fn write_to(&mut self, key: usize) {
        for _ in 0..WRITES_PER_EVENT {
            let Some(slot) = self.slots.get_mut(key) else {
                return;
            };
            let pending = slot.conn.transmit();
            if pending.is_empty() {
                return;
            }
            match (&slot.socket).write(pending) {
                Ok(n) => {
                    let listener = self.env.policies[slot.conn.listener()].counters;
                    let lane = slot.conn.lane();
                    self.env.counters.count_bytes_out(listener, lane, n);
                    let mut cx = self.env.context(self.now);
                    slot.conn.handle_sent(n, &mut cx);
                    // A refill (on_drained) or re-offered input may broadcast.
                    self.run_broadcasts(key);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let reason = failure_reason(&err, false);
                    log::debug!("write to {} failed: {err}", slot.conn.peer());
                    let mut cx = self.env.context(self.now);
                    slot.conn.handle_socket_error(reason, &mut cx);
                    return;
                }
            }
        }
    }

    /// After a connection call: send what it queued, and carry out its
    /// broadcasts.
    pub(super) fn after_call(&mut self, key: usize) {
        self.write_to(key);
        self.run_broadcasts(key);
    }

    /// Delivers the broadcasts the last callback asked for, locally and to
    /// the other workers; pauses the sender when another worker's inbox is
    /// full (see `engine::hub`).
    fn run_broadcasts(&mut self, sender: usize) {
        if self.env.work.requests.broadcasts.is_empty() {
            return;
        }
        while !self.env.work.requests.broadcasts.is_empty() {
            let messages = std::mem::take(&mut self.env.work.requests.broadcasts);
            for message in &messages {
                if let Some(hub) = self.env.hub() {
                    hub.post_to_others(self.env.id, message);
                }
                self.broadcast_local(message, Some(sender));
            }
        }
        let congested = self.env.hub().is_some_and(|hub| hub.congested(self.env.id));
        match self.slots.get_mut(sender) {
            Some(slot) if congested && !slot.conn.read_paused() => {
                slot.conn.set_read_paused(true);
                self.paused.push((sender, slot.generation));
            }
            _ => {}
        }
    }

    /// Queues `message` for every open session of this worker and writes it
    /// out. `sender` (settled by its own caller) is not settled here.
    fn broadcast_local(&mut self, message: &[u8], sender: Option<usize>) {
        let mut receivers = std::mem::take(&mut self.receivers);
        receivers.clear();
        receivers.extend(
            self.slots
                .iter()
                .filter(|(_, slot)| slot.conn.stage() == Stage::Open)
                .map(|(key, _)| key),
        );
        for &key in &receivers {
            let Some(slot) = self.slots.get_mut(key) else {
                continue;
            };
            let mut cx = self.env.context(self.now);
            slot.conn.handle_broadcast(message, &mut cx);
            self.write_to(key);
            if Some(key) != sender {
                self.settle(key);
            }
        }
        self.receivers = receivers;
    }

    /// Delivers what other workers posted to this one.
    pub(super) fn deliver_posted_broadcasts(&mut self) {
        let Some(hub) = self.env.hub() else {
            return;
        };
        let messages = hub.take(self.env.id);
        for message in &messages {
            self.broadcast_local(message, None);
        }
    }

    /// Lets paused senders read again once no inbox is congested.
    pub(super) fn resume_paused(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        if self.env.hub().is_some_and(|hub| hub.congested(self.env.id)) {
            return;
        }
        for (key, generation) in std::mem::take(&mut self.paused) {
            let Some(slot) = self.slots.get_mut(key) else {
                continue;
            };
            if slot.generation == generation {
                slot.conn.set_read_paused(false);
                self.settle(key);
            }
        }
    }
}

fn read_retrying(socket: &mut &std::net::TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match socket.read(buf) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The close reason for a failed socket call: a reset after a complete
/// exchange is how many clients end a connection, not a fault.
pub(in crate::engine) fn failure_reason(err: &io::Error, exchange_complete: bool) -> CloseReason {
    let reset = matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    );
    if reset && exchange_complete {
        CloseReason::PeerReset
    } else {
        CloseReason::SocketError
    }
}
