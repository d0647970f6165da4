//! The multicast service: a continuous stream of fixed-size messages to every
//! connected client, as fast as each client drains it.
//!
//! This is CppServer's multicast scenario, which measures how fast a server
//! can push data out. The one idea: **pace each receiver by its own drain**.
//! The service queues a batch for a session, and refills only when the engine
//! reports that batch written (`on_drained`), so a fast reader gets data at
//! its speed, a slow reader gets it at its own, and neither can make the
//! server buffer more than one batch for it.

use super::{Service, Session};

/// Bytes queued per refill: large enough to amortise a trip through the
/// reactor, small enough to keep memory per receiver bounded.
const BATCH_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct Multicast {
    batch: Vec<u8>,
}

impl Multicast {
    /// Messages of `message_size` bytes (at least 1): a counter-free fixed
    /// pattern, so receivers can check framing by size alone.
    pub fn new(message_size: usize) -> Multicast {
        let size = message_size.max(1);
        let mut message = vec![b'm'; size];
        message[size - 1] = b'\n';
        let messages = (BATCH_BYTES / size).max(1);
        Multicast {
            batch: message.repeat(messages),
        }
    }

    fn refill(&self, session: &mut Session<'_>) {
        session.send(&self.batch);
    }
}

impl Service for Multicast {
    fn on_connect(&mut self, session: &mut Session<'_>) {
        self.refill(session);
    }

    /// Receivers have nothing to say; whatever they send is discarded.
    fn on_data(&mut self, _session: &mut Session<'_>, data: &[u8]) -> usize {
        data.len()
    }

    fn on_drained(&mut self, session: &mut Session<'_>) {
        self.refill(session);
    }

    fn wants_drained(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_whole_messages() {
        for size in [1, 32, 1000, 100_000] {
            let m = Multicast::new(size);
            assert_eq!(m.batch.len() % size, 0);
            assert!(m.batch.len() >= size);
            assert_eq!(*m.batch.last().unwrap(), b'\n');
        }
    }
}
