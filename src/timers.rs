//! Deadlines for thousands of connections, at a cost that does not grow with
//! the number of idle ones.
//!
//! Every connection has a deadline (finish the handshake by…, say something
//! by…, let us write by…). Scanning all connections each loop would make ten
//! thousand idle connections cost ten thousand checks per wake-up, which is
//! exactly the O(n) cost that epoll exists to remove. Instead deadlines sit in
//! a min-heap, and the reactor sleeps until the earliest one.
//!
//! The one idea: **cancel lazily**. Connections push back their deadline on
//! every message; re-sorting the heap each time would cost O(log n) per
//! message. So the heap keeps the *old* entry, the connection just remembers
//! its real deadline, and when the old entry comes due the owner checks the
//! real deadline and, if it has moved, schedules it again. An entry is only
//! pushed when a deadline moves *earlier* than the one already scheduled, so
//! each connection has about one entry in the heap, and a busy connection
//! costs nothing here per message.
//!
//! Lazy cancellation leaves stale entries behind: a closed connection's
//! entry stays until its due time, which can be minutes. The owner counts
//! its live entries and calls [`Timers::retain`] when the stale ones
//! outnumber them ([`Timers::needs_compaction`]), so the heap stays within a
//! constant factor of the live timers and each stale entry is dropped once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Entries a heap may hold beyond twice the live ones before compaction.
const COMPACTION_SLACK: usize = 64;

/// A min-heap of `(deadline, key)`. Keys are opaque to the heap: the owner
/// decides whether an entry that comes due is still meaningful (the
/// connection may have gone, or moved its deadline).
#[derive(Debug)]
pub struct Timers<K: Ord + Copy> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord + Copy> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Ord + Copy> Timers<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry. Entries are never removed early: see the module doc.
    pub fn schedule(&mut self, at: Instant, key: K) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest deadline, to bound how long the reactor may sleep.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns one entry due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    /// Keeps only the entries `keep` accepts. O(entries): call it when
    /// [`needs_compaction`](Self::needs_compaction) says stale entries
    /// outnumber live ones, so its cost is spread over the pushes that made
    /// them.
    pub fn retain(&mut self, mut keep: impl FnMut(Instant, &K) -> bool) {
        self.heap.retain(|Reverse((at, key))| keep(*at, key));
    }

    /// Whether the heap holds more than twice `live` entries (with some
    /// slack, so that small heaps are never rebuilt).
    pub fn needs_compaction(&self, live: usize) -> bool {
        self.heap.len() > 2 * live + COMPACTION_SLACK
    }

    /// Entries in the heap, live or stale.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_come_due_in_deadline_order() {
        let start = Instant::now();
        let mut timers = Timers::new();
        for (offset, key) in [(30, 'c'), (10, 'a'), (20, 'b')] {
            timers.schedule(start + Duration::from_millis(offset), key);
        }
        assert_eq!(
            timers.next_deadline(),
            Some(start + Duration::from_millis(10))
        );
        assert_eq!(timers.pop_due(start), None, "nothing is due yet");
        let now = start + Duration::from_millis(25);
        let due: Vec<char> = std::iter::from_fn(|| timers.pop_due(now).map(|(_, k)| k)).collect();
        assert_eq!(due, vec!['a', 'b']);
        assert_eq!(timers.len(), 1);
    }

    #[test]
    fn compaction_keeps_live_entries_and_order() {
        let start = Instant::now();
        let mut timers = Timers::new();
        for key in 0..1000u32 {
            timers.schedule(start + Duration::from_millis(u64::from(key)), key);
        }
        // Only every tenth key is still live.
        assert!(timers.needs_compaction(100));
        timers.retain(|_, key| key % 10 == 0);
        assert_eq!(timers.len(), 100);
        assert!(!timers.needs_compaction(100));
        let later = start + Duration::from_secs(10);
        let due: Vec<u32> = std::iter::from_fn(|| timers.pop_due(later).map(|(_, k)| k)).collect();
        assert_eq!(due, (0..1000).step_by(10).collect::<Vec<_>>());
    }

    #[test]
    fn an_empty_heap_has_no_deadline() {
        let mut timers: Timers<u64> = Timers::new();
        assert!(timers.is_empty());
        assert_eq!(timers.next_deadline(), None);
        assert_eq!(timers.pop_due(Instant::now()), None);
    }
}
