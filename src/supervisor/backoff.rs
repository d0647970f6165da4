//! How long to wait before restarting a worker process that died.
//!
//! A process that crashes at once on every start (a config it cannot load,
//! a port it cannot use) must not be restarted in a tight loop that floods
//! the log and burns a core; one that crashed once after serving for hours
//! should be back at once. The one idea: **the delay doubles with each
//! quick crash and resets after a run that lasted**.

use std::time::Duration;

/// The first delay, and the one after a run that lasted.
pub const FIRST: Duration = Duration::from_millis(100);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(5);
/// A run at least this long counts as healthy: the next delay is `FIRST`.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The delay before restarting a process that ran for `ran`.
    pub fn after_crash(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.next = FIRST;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_crashes_double_the_delay_up_to_the_cap_and_a_long_run_resets_it() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(10);
        let delays: Vec<u128> = (0..8)
            .map(|_| backoff.after_crash(quick).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff.after_crash(HEALTHY_RUN), FIRST);
        assert_eq!(backoff.after_crash(quick), FIRST * 2);
    }
}
