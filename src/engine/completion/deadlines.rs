//! Deadlines: one lazy timer entry per connection, as in the readiness
//! driver, plus the timer that resumes a paused accept.
//!
//! Timers are not ring operations here: the next deadline is the timeout
//! of the one `io_uring_enter` per turn (`ring.rs`), so waiting for a
//! deadline costs no submission and no completion. The one idea: **the
//! timer heap stays in user space, and the wait's timeout is its top**.

use std::time::Instant;

use super::Worker;

/// What a timer entry is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    Connection { key: usize, generation: u32 },
    ResumeAccepting { listener: usize },
}

impl Worker {
    /// Makes sure the timer heap holds an entry no later than the
    /// connection's deadline (entries are lazy; see `timers`).
    pub(super) fn schedule(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        let cx = self.env.context(self.now);
        let Some(deadline) = conn.deadline(&cx) else {
            return;
        };
        if slot.scheduled.is_some_and(|at| at <= deadline) {
            return;
        }
        if slot.scheduled.is_none() {
            self.live_timers += 1;
        }
        slot.scheduled = Some(deadline);
        let generation = slot.generation;
        self.timers
            .schedule(deadline, TimerKey::Connection { key, generation });
    }

    pub(super) fn expire_timers(&mut self) {
        self.now = Instant::now();
        while let Some((at, timer)) = self.timers.pop_due(self.now) {
            match timer {
                TimerKey::ResumeAccepting { listener } => {
                    self.live_timers -= 1;
                    if let Some(Some(l)) = self.listeners.get_mut(listener) {
                        l.paused = false;
                    }
                    self.arm_accept(listener);
                }
                TimerKey::Connection { key, generation } => {
                    let Some(slot) = self.slots.get_mut(key) else {
                        continue;
                    };
                    if slot.generation != generation || slot.scheduled != Some(at) {
                        continue; // stale: reused, rescheduled or closed
                    }
                    let Some(conn) = slot.conn.as_mut() else {
                        continue;
                    };
                    slot.scheduled = None;
                    self.live_timers -= 1;
                    let mut cx = self.env.context(self.now);
                    conn.handle_timeout(&mut cx);
                    self.after_call(key);
                    self.settle(key);
                }
            }
        }
        if self.timers.needs_compaction(self.live_timers) {
            let slots = &self.slots;
            self.timers.retain(|at, timer| match *timer {
                TimerKey::Connection { key, generation } => slots
                    .get(key)
                    .is_some_and(|s| s.generation == generation && s.scheduled == Some(at)),
                TimerKey::ResumeAccepting { .. } => true,
            });
        }
    }
}
