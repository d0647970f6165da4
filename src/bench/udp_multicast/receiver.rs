//! One `bench udp-multicast` receiver's view of the stream, and the counts
//! the threads add up.
//!
//! The one idea: **the numbers are the whole protocol** — a gap in them is
//! a loss, a step back is a reordering — so a receiver keeps only the
//! number it expects next.

/// Counts over the measured interval.
#[derive(Default)]
pub struct Counts {
    pub received: u64,
    pub lost: u64,
    pub out_of_order: u64,
    /// The most numbers one receiver's interval covered: what the server
    /// sent meanwhile.
    pub widest_span: u64,
    pub errors: u64,
    pub failures: Vec<String>,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.received += other.received;
        self.lost += other.lost;
        self.out_of_order += other.out_of_order;
        self.widest_span = self.widest_span.max(other.widest_span);
        self.errors += other.errors;
        for failure in other.failures {
            if self.failures.len() < 5 {
                self.failures.push(failure);
            }
        }
    }

    pub fn fail(&mut self, what: String) {
        self.errors += 1;
        if self.failures.len() < 5 {
            self.failures.push(what);
        }
    }
}

/// One receiver's view of the stream.
pub struct Receiver {
    pub id: usize,
    pub socket: std::net::UdpSocket,
    /// The number expected next.
    pub expected: Option<u64>,
    /// Counted since the interval began.
    pub counts: Counts,
    pub first_in_window: Option<u64>,
    pub arrived: bool,
    pub failed: bool,
}

impl Receiver {
    /// Accounts for datagram `seq`.
    pub fn count(&mut self, seq: u64, counting: bool) {
        if counting {
            self.first_in_window.get_or_insert(seq);
            self.counts.received += 1;
        }
        match self.expected {
            Some(expected) if seq < expected => {
                if counting {
                    self.counts.out_of_order += 1;
                    // It was counted lost when it was skipped.
                    self.counts.lost = self.counts.lost.saturating_sub(1);
                }
                return;
            }
            Some(expected) if counting => self.counts.lost += seq - expected,
            _ => {}
        }
        self.expected = Some(seq + 1);
        if let Some(first) = self.first_in_window {
            self.counts.widest_span = seq + 1 - first;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> Receiver {
        Receiver {
            id: 0,
            socket: std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            expected: None,
            counts: Counts::default(),
            first_in_window: None,
            arrived: false,
            failed: false,
        }
    }

    #[test]
    fn gaps_are_losses_and_steps_back_are_late_not_lost() {
        let mut r = receiver();
        for seq in [5, 6, 7] {
            r.count(seq, false); // before the interval: only followed
        }
        for seq in [8, 9, 12, 10, 13] {
            r.count(seq, true);
        }
        assert_eq!(r.counts.received, 5);
        assert_eq!(r.counts.out_of_order, 1);
        assert_eq!(r.counts.lost, 1, "11 never came; 10 came late");
        assert_eq!(r.counts.widest_span, 6, "8 to 13");
    }
}
