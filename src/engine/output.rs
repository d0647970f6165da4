//! The queue of bytes waiting for a slow socket.
//!
//! A partial write leaves the tail of the queue to send later. Removing the
//! written prefix with `Vec::drain` would move the whole tail every time:
//! with a few MiB queued for a slow reader, each small write would cost a
//! few MiB of copying. The one idea: **advance a start offset, compact
//! rarely** — only when the dead prefix outweighs the live bytes, so each
//! byte is moved at most once on average — and free the allocation as soon
//! as the queue empties, so an idle connection owns no buffer at all.

/// Bytes queued for a socket, oldest first.
#[derive(Debug, Default)]
pub struct OutputQueue {
    bytes: Vec<u8>,
    /// Bytes before this offset are already written.
    start: usize,
}

impl OutputQueue {
    pub fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes still to write.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub fn extend(&mut self, more: &[u8]) {
        self.bytes.extend_from_slice(more);
    }

    /// Marks `n` bytes as written.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.bytes.len());
        if self.start == self.bytes.len() {
            // Drained: give the memory back.
            *self = OutputQueue::default();
        } else if self.start > self.len() {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
    }

    /// Allocated bytes, for memory accounting in tests.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_consumption_keeps_the_tail_in_order() {
        let mut queue = OutputQueue::default();
        queue.extend(b"hello, world");
        queue.consume(7);
        assert_eq!(queue.as_slice(), b"world");
        queue.extend(b"!");
        assert_eq!(queue.as_slice(), b"world!");
        queue.consume(6);
        assert!(queue.is_empty());
        assert_eq!(queue.capacity(), 0, "a drained queue frees its buffer");
    }

    #[test]
    fn small_writes_do_not_move_a_large_tail_each_time() {
        let mut queue = OutputQueue::default();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        queue.extend(&data);
        let mut written = 0;
        while !queue.is_empty() {
            let n = queue.len().min(1000);
            assert_eq!(queue.as_slice()[..n], data[written..written + n]);
            queue.consume(n);
            written += n;
            // The dead prefix never exceeds the live bytes by more than one write.
            assert!(queue.start <= queue.len() + 1000);
        }
        assert_eq!(written, data.len());
    }

    #[test]
    fn over_consumption_is_clamped() {
        let mut queue = OutputQueue::default();
        queue.extend(b"abc");
        queue.consume(10);
        assert!(queue.is_empty());
    }
}
