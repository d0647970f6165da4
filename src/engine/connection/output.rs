//! The queue of bytes waiting for a slow socket.
//!
//! A partial write leaves the tail of the queue to send later. Removing the
//! written prefix with `Vec::drain` would move the whole tail every time:
//! with a few MiB queued for a slow reader, each small write would cost a
//! few MiB of copying. The one idea: **advance a start offset, compact
//! rarely** — only when the dead prefix outweighs the live bytes, so each
//! byte is moved at most once on average — and give the allocation back
//! (to the worker's [`BufferPool`]) as soon as the queue empties, so an idle
//! connection owns no buffer at all.
//!
//! A service's output usually arrives in a worker buffer while this queue
//! is empty; [`OutputQueue::append`] then *swaps* that buffer in instead of
//! copying it, so the common case moves no byte between the service and the
//! socket.

use crate::engine::buffers::BufferPool;

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

    /// Queues everything in `more`, leaving it empty. When nothing is queued
    /// yet, `more`'s buffer becomes the queue's and `more` gets a pooled one.
    pub fn append(&mut self, more: &mut Vec<u8>, pool: &mut BufferPool) {
        if more.is_empty() {
            return;
        }
        if self.is_empty() {
            let spare = std::mem::replace(&mut self.bytes, std::mem::replace(more, pool.take()));
            pool.give(spare);
            self.start = 0;
        } else {
            self.bytes.extend_from_slice(more);
            more.clear();
        }
    }

    /// Queues a copy of `more` (a broadcast shared by many queues).
    pub fn extend(&mut self, more: &[u8], pool: &mut BufferPool) {
        if self.bytes.capacity() == 0 {
            self.bytes = pool.take();
        }
        self.bytes.extend_from_slice(more);
    }

    /// Marks `n` bytes as written.
    pub fn consume(&mut self, n: usize, pool: &mut BufferPool) {
        self.start = (self.start + n).min(self.bytes.len());
        if self.start == self.bytes.len() {
            // Drained: the buffer goes back to the pool.
            pool.give(std::mem::take(&mut self.bytes));
            self.start = 0;
        } else if self.start > self.len() {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
    }

    /// Forgets everything queued (the socket failed).
    pub fn discard(&mut self, pool: &mut BufferPool) {
        pool.give(std::mem::take(&mut self.bytes));
        self.start = 0;
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
        let mut pool = BufferPool::default();
        let mut queue = OutputQueue::default();
        queue.extend(b"hello, world", &mut pool);
        queue.consume(7, &mut pool);
        assert_eq!(queue.as_slice(), b"world");
        queue.extend(b"!", &mut pool);
        assert_eq!(queue.as_slice(), b"world!");
        queue.consume(6, &mut pool);
        assert!(queue.is_empty());
        assert_eq!(queue.capacity(), 0, "a drained queue owns no buffer");
        assert_eq!(pool.len(), 1, "its buffer went back to the pool");
    }

    #[test]
    fn appending_to_an_empty_queue_swaps_instead_of_copying() {
        let mut pool = BufferPool::default();
        let mut queue = OutputQueue::default();
        let mut from_service = Vec::with_capacity(1000);
        from_service.extend_from_slice(b"reply");
        let address = from_service.as_ptr();
        queue.append(&mut from_service, &mut pool);
        assert_eq!(queue.as_slice(), b"reply");
        assert_eq!(queue.as_slice().as_ptr(), address, "the same allocation");
        assert!(from_service.is_empty());
        // Behind queued bytes, appending copies and keeps the order.
        from_service.extend_from_slice(b" more");
        queue.append(&mut from_service, &mut pool);
        assert_eq!(queue.as_slice(), b"reply more");
        assert!(from_service.is_empty());
    }

    #[test]
    fn small_writes_do_not_move_a_large_tail_each_time() {
        let mut pool = BufferPool::default();
        let mut queue = OutputQueue::default();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        queue.extend(&data, &mut pool);
        let mut written = 0;
        while !queue.is_empty() {
            let n = queue.len().min(1000);
            assert_eq!(queue.as_slice()[..n], data[written..written + n]);
            queue.consume(n, &mut pool);
            written += n;
            // The dead prefix never exceeds the live bytes by more than one write.
            assert!(queue.start <= queue.len() + 1000);
        }
        assert_eq!(written, data.len());
    }

    #[test]
    fn over_consumption_is_clamped() {
        let mut pool = BufferPool::default();
        let mut queue = OutputQueue::default();
        queue.extend(b"abc", &mut pool);
        queue.consume(10, &mut pool);
        assert!(queue.is_empty());
    }
}
