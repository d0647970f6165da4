//! Receiving, sending and cancelling on completions, and carrying
//! broadcasts to the connections they are for.
//!
//! **Receive.** One multishot receive per connection stays in flight while
//! the connection wants to read; each completion names the buffer the
//! kernel filled. The bytes go to the connection core, which copies what it
//! keeps, and the buffer goes straight back to the ring. When the core
//! stops wanting input (its output is full, a broadcast inbox is congested,
//! it is closing) the receive is cancelled; bytes that arrive before the
//! cancellation lands are kept in the slot's stash and fed first when
//! reading resumes, so nothing is lost or reordered. That read-ahead is the
//! price of multishot: it is bounded by the ring (the kernel cannot take
//! more buffers than there are), not by the connection's limits. `ENOBUFS` ends a
//! receive when the ring is empty: the bytes stay in the socket and the
//! receive is re-armed at the end of the turn, once buffers are back.
//!
//! **Send.** At most one send per connection is in flight, so bytes leave
//! in order. It sends a copy of what the core has queued (the core may move
//! its own buffer while the kernel reads ours); its completion tells the
//! core how much went, and a short send is followed by a send of the rest.
//!
//! The one idea is the readiness driver's: **the driver decides nothing
//! about the protocol** — it moves bytes and reports results, and the
//! connection's `next()` says what comes after.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{cqueue, opcode, types};

use super::buf_ring::GROUP;
use super::user_data::{Op, UserData};
use super::Worker;
use crate::engine::connection::Stage;
use crate::engine::readiness::failure_reason;

/// Bytes copied into one send at most: bounds a connection's send copy,
/// which is memory a readiness driver (writing from the queue) never needs.
pub(super) const MAX_SEND: usize = 64 * 1024;
/// Spare send copies kept for reuse.
const SPARE_SENDS: usize = 64;

impl Worker {
    pub(super) fn arm_recv(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        if slot.recv_armed {
            return;
        }
        let sqe = opcode::RecvMulti::new(types::Fd(slot.socket.as_raw_fd()), GROUP)
            .build()
            .user_data(UserData::new(Op::Recv, key, slot.generation).encode());
        slot.recv_armed = true;
        slot.recv_cancelling = false;
        // SAFETY: the receive writes only into ring buffers, which live as
        // long as the ring.
        unsafe { self.ring.push(&sqe) };
    }

    /// Asks the kernel to end the connection's receive, if one runs.
    pub(super) fn cancel_recv(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        if !slot.recv_armed || slot.recv_cancelling {
            return;
        }
        slot.recv_cancelling = true;
        let target = UserData::new(Op::Recv, key, slot.generation).encode();
        let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target))
            .build()
            .user_data(UserData::new(Op::Cancel, key, slot.generation).encode());
        // SAFETY: a cancellation points at no memory of ours.
        unsafe { self.ring.push(&sqe) };
    }

    pub(super) fn on_recv(&mut self, ud: UserData, result: i32, flags: u32) {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let key = ud.key;
        let Some(slot) = self
            .slots
            .get_mut(key)
            .filter(|s| s.generation == ud.generation)
        else {
            // An older connection's: never delivered, but its buffer is ours.
            self.counts.stale += 1;
            if let Some(bid) = bid {
                let _ = self.bufs.take(bid, 0);
                self.bufs.give_back(bid);
            }
            return;
        };
        if !more {
            slot.recv_armed = false;
            slot.recv_cancelling = false;
        }
        let Some(conn) = slot.conn.as_mut() else {
            // Closed: the bytes have no one to go to.
            if let Some(bid) = bid {
                let _ = self.bufs.take(bid, 0);
                self.bufs.give_back(bid);
            }
            self.free_if_done(key);
            return;
        };
        let mut cx = self.env.context(self.now);
        match result {
            n if n > 0 => {
                let Some(bid) = bid else {
                    log::error!("a receive completed without a buffer");
                    return;
                };
                match self.bufs.take(bid, n as usize) {
                    Ok(bytes) => {
                        if slot.stash.is_empty() && conn.wants_read(cx.limits) {
                            conn.handle_input(bytes, &mut cx);
                            // Filed under the lane the bytes admitted the
                            // connection to, as the readiness driver does.
                            cx.counters
                                .count_bytes_in(conn.listener(), conn.lane(), bytes.len());
                        } else {
                            // Exactly what is held: no doubling of a stash
                            // that only ever empties all at once.
                            slot.stash.reserve_exact(bytes.len());
                            slot.stash.extend_from_slice(bytes);
                        }
                    }
                    Err(err) => log::error!("buffer ring: {err}"),
                }
                self.bufs.give_back(bid);
                self.after_call(key);
            }
            0 => {
                if slot.stash.is_empty() {
                    conn.handle_eof(&mut cx);
                } else {
                    slot.eof_stashed = true;
                }
                self.after_call(key);
            }
            e if e == -libc::ENOBUFS => {
                // The bytes wait in the socket; re-armed once buffers are back.
                self.counts.starved += 1;
                slot.starved = true;
                self.starved.push((key, slot.generation));
            }
            e if e == -libc::ECANCELED => {}
            e => {
                let err = io::Error::from_raw_os_error(-e);
                log::debug!("receive from {} failed: {err}", conn.peer());
                let reason = failure_reason(&err, conn.exchange_complete());
                conn.handle_socket_error(reason, &mut cx);
            }
        }
        self.settle(key);
    }

    /// Starts a send of what the connection has queued, unless one is in
    /// flight (its completion starts the next).
    pub(super) fn start_send(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        if slot.sending.is_some() {
            return;
        }
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        let pending = conn.transmit();
        if pending.is_empty() {
            return;
        }
        let mut copy = self.spare_sends.pop().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(&pending[..pending.len().min(MAX_SEND)]);
        let sqe = opcode::Send::new(
            types::Fd(slot.socket.as_raw_fd()),
            copy.as_ptr(),
            copy.len() as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(UserData::new(Op::Send, key, slot.generation).encode());
        slot.sending = Some(copy);
        // SAFETY: the copy's heap block is owned by the slot until this
        // send completes (`on_send` takes it back), and is not touched in
        // between; a closed slot is kept until then (`Slot::is_done`).
        unsafe { self.ring.push(&sqe) };
    }

    pub(super) fn on_send(&mut self, ud: UserData, result: i32) {
        let key = ud.key;
        let Some(slot) = self
            .slots
            .get_mut(key)
            .filter(|s| s.generation == ud.generation)
        else {
            self.counts.stale += 1;
            return;
        };
        if let Some(copy) = slot.sending.take() {
            if self.spare_sends.len() < SPARE_SENDS && copy.capacity() <= MAX_SEND {
                self.spare_sends.push(copy);
            }
        }
        let Some(conn) = slot.conn.as_mut() else {
            self.free_if_done(key);
            return;
        };
        let mut cx = self.env.context(self.now);
        if result >= 0 {
            cx.counters
                .count_bytes_out(conn.listener(), conn.lane(), result as usize);
            conn.handle_sent(result as usize, &mut cx);
            // A refill (on_drained) or re-offered input may broadcast.
            self.run_broadcasts(key);
        } else if result != -libc::EAGAIN && result != -libc::EINTR {
            let err = io::Error::from_raw_os_error(-result);
            log::debug!("send to {} failed: {err}", conn.peer());
            conn.handle_socket_error(failure_reason(&err, false), &mut cx);
        }
        self.settle(key);
    }

    /// After a connection call: start sending what it queued, and carry
    /// out its broadcasts.
    pub(super) fn after_call(&mut self, key: usize) {
        self.start_send(key);
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
        if let Some(slot) = self.slots.get_mut(sender) {
            if let Some(conn) = slot.conn.as_mut() {
                if congested && !conn.read_paused() {
                    conn.set_read_paused(true);
                    self.paused.push((sender, slot.generation));
                }
            }
        }
    }

    /// Queues `message` for every open session of this worker and starts
    /// sending it. `sender` (settled by its own caller) is not settled here.
    fn broadcast_local(&mut self, message: &[u8], sender: Option<usize>) {
        let mut receivers = std::mem::take(&mut self.receivers);
        receivers.clear();
        receivers.extend(
            self.slots
                .iter()
                .filter(|(_, slot)| slot.conn.as_ref().is_some_and(|c| c.stage() == Stage::Open))
                .map(|(key, _)| key),
        );
        for &key in &receivers {
            let Some(conn) = self.slots.get_mut(key).and_then(|s| s.conn.as_mut()) else {
                continue;
            };
            let mut cx = self.env.context(self.now);
            conn.handle_broadcast(message, &mut cx);
            self.start_send(key);
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
            if slot.generation != generation {
                continue;
            }
            if let Some(conn) = slot.conn.as_mut() {
                conn.set_read_paused(false);
                self.settle(key);
            }
        }
    }

    /// Re-arms the receives that `ENOBUFS` ended: every buffer lent this
    /// turn has been given back, and is published before the next enter.
    pub(super) fn rearm_starved(&mut self) {
        for (key, generation) in std::mem::take(&mut self.starved) {
            let Some(slot) = self.slots.get_mut(key) else {
                continue;
            };
            if slot.generation != generation || !slot.starved {
                continue;
            }
            slot.starved = false;
            self.settle(key);
        }
    }
}
