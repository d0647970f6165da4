//! One echo client: its connection, how far it has got, and the rule that
//! decides when it sends — the only thing the three modes disagree on.
//!
//! | mode           | sends a new message when                | in flight    |
//! |----------------|-----------------------------------------|--------------|
//! | `cppserver-v1` | its previous write has completed        | unbounded    |
//! | `cppserver-v2` | one of its messages has been echoed     | `--window`   |
//! | `pingpong`     | its one message has been echoed         | one          |
//!
//! The one idea: **the send rule is the benchmark.** The same server looks
//! five times faster or slower depending on whether each message costs the
//! server one `read` and one `write` (cppserver-v1: the client writes one
//! message per system call and never waits) or a thousand messages share
//! them (cppserver-v2: the window lets echoes come back in large chunks
//! and the replacements leave in one write). Neither is wrong; a figure is
//! only comparable with another produced by the same rule.

use std::time::Instant;

use backends::Event;

use super::super::args::EchoMode;
use super::super::client::{Buffers, Conn, Failure};
use super::super::histogram::Histogram;
use super::super::pattern::Pattern;
use super::plan::Plan;

/// Largest piece written from the scratch buffer at once; a window of many
/// large messages is sent in several pieces rather than one huge buffer.
pub const SCRATCH_BYTES: usize = 256 * 1024;

/// One client: its connection and how far it has got.
pub struct EchoClient {
    pub id: usize,
    pub conn: Conn,
    pattern: Pattern,
    /// Bytes this client will send: its share of --messages, or unbounded;
    /// lowered to what was sent when --duration ends the run.
    pub goal: u64,
    pub sent: u64,
    pub received: u64,
    /// When the message in flight was written (pingpong).
    sent_at: Instant,
    /// Counted at the start line (ready, or failed).
    pub arrived: bool,
    /// The connection's write calls when the start line fired: handshake
    /// flights are not part of the run.
    writes_at_start: u64,
}

/// What an event did to a client.
#[derive(Default)]
pub struct Step {
    pub opened: bool,
    pub done: bool,
}

impl EchoClient {
    pub fn new(id: usize, conn: Conn, goal: u64) -> EchoClient {
        EchoClient {
            id,
            conn,
            pattern: Pattern::new(id as u64),
            goal,
            sent: 0,
            received: 0,
            sent_at: Instant::now(),
            arrived: false,
            writes_at_start: 0,
        }
    }

    /// Handles one readiness event: verifies what came back, then sends
    /// what the mode allows (once the run has started).
    pub fn on_event(
        &mut self,
        event: &Event,
        buffers: &mut Buffers,
        scratch: &mut [u8],
        plan: &Plan,
        sending: bool,
        histogram: &mut Option<Histogram>,
    ) -> Result<Step, Failure> {
        let EchoClient {
            conn,
            pattern,
            sent,
            received,
            sent_at,
            ..
        } = self;
        let arrived = conn.on_event(event, buffers, |data| {
            let end = *received + data.len() as u64;
            if end > *sent {
                return Err(Failure::Corrupt(format!(
                    "{end} bytes came back but only {sent} were sent"
                )));
            }
            if let Some(at) = pattern.first_mismatch(*received, data) {
                return Err(Failure::Corrupt(format!(
                    "echoed byte {} differs from the byte sent",
                    *received + at as u64
                )));
            }
            if let Some(h) = histogram.as_mut() {
                if end == *sent {
                    // One message in flight: its last byte just arrived.
                    h.record(sent_at.elapsed().as_nanos() as u64);
                }
            }
            *received = end;
            Ok(())
        })?;
        if sending {
            self.send_what_the_mode_allows(scratch, plan)?;
        }
        let step = Step {
            opened: arrived.opened,
            done: self.is_done(),
        };
        if arrived.eof && !step.done {
            return Err(Failure::Closed(format!(
                "after {} of {} bytes were echoed",
                self.received,
                self.sent.max(self.received)
            )));
        }
        Ok(step)
    }

    /// The start line fired: note the writes so far, and send the first
    /// message (cppserver-v1, pingpong) or the first window (cppserver-v2).
    pub fn start(&mut self, scratch: &mut [u8], plan: &Plan) -> Result<Step, Failure> {
        self.writes_at_start = self.conn.writes();
        self.send_what_the_mode_allows(scratch, plan)?;
        Ok(Step {
            opened: false,
            done: self.is_done(),
        })
    }

    /// --duration is over: send nothing more, and finish once what is in
    /// flight has come back. Returns whether this cut the client's share
    /// short (it had more to send).
    pub fn stop_sending(&mut self) -> bool {
        let cut = self.sent < self.goal;
        self.goal = self.sent;
        cut
    }

    /// Whether the client must hear about writability even with nothing
    /// queued: a cppserver-v1 client sends its next message when its
    /// previous write has completed, and the socket accepting more is how
    /// it learns that.
    pub fn waits_for_writability(&self, plan: &Plan, sending: bool) -> bool {
        sending && plan.mode == EchoMode::CppserverV1 && self.sent < self.goal
    }

    /// Write calls since the start line.
    pub fn writes_in_run(&self) -> u64 {
        self.conn.writes().saturating_sub(self.writes_at_start)
    }

    pub fn is_done(&self) -> bool {
        self.conn.is_open() && self.sent == self.goal && self.received == self.goal
    }

    fn send_what_the_mode_allows(
        &mut self,
        scratch: &mut [u8],
        plan: &Plan,
    ) -> Result<(), Failure> {
        if !self.conn.is_open() || self.sent >= self.goal {
            return Ok(());
        }
        let n = match plan.mode {
            // One message, and only once the previous write has completed
            // (nothing of it is still queued): never waiting for echoes.
            EchoMode::CppserverV1 if self.conn.pending_output() == 0 => plan.size,
            EchoMode::CppserverV1 => 0,
            // As many whole messages as have left the window: a message
            // echoed only in part frees no room yet.
            EchoMode::CppserverV2 | EchoMode::Pingpong => {
                let in_flight = self.sent - self.received;
                let room = plan
                    .window
                    .saturating_mul(plan.size)
                    .saturating_sub(in_flight);
                room / plan.size * plan.size
            }
        };
        let mut left = n.min(self.goal - self.sent);
        while left > 0 {
            let piece = left.min(scratch.len() as u64) as usize;
            let bytes = &mut scratch[..piece];
            self.pattern.fill(self.sent, bytes);
            self.conn.send(bytes)?;
            self.sent += piece as u64;
            left -= piece as u64;
        }
        if n > 0 {
            self.sent_at = Instant::now();
        }
        Ok(())
    }
}
