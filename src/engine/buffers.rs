//! Buffers a worker lends to its connections, so that an idle connection
//! owns none.
//!
//! Ten thousand idle connections must not hold ten thousand buffers, so a
//! connection's output queue gives its allocation up the moment it drains.
//! But a busy connection that allocates and frees a buffer for every
//! message pays `malloc` and `free` each time. The one idea: **a drained
//! buffer goes back to a small per-worker pool instead of to the
//! allocator**, and the next connection with something to send takes it
//! from there. The pool is bounded in count and in the size of what it
//! keeps, so a burst of large messages cannot leave memory parked in it.
//!
//! [`Workspace`] gathers everything a worker lends to whichever connection
//! it is serving at the moment: the pool, the buffer a service writes into,
//! the buffer TLS decrypts into, and the requests a callback makes.

use crate::service::Requests;

/// Buffers kept for reuse, at most.
const POOLED_BUFFERS: usize = 16;
/// A buffer larger than this goes back to the allocator instead. Large
/// enough for the answer to one full read (64 KiB, and Vec's doubling past
/// it), so that a streaming peer does not make every read allocate and free
/// a buffer that size; the pool then parks at most 4 MiB.
pub const MAX_POOLED_CAPACITY: usize = 256 * 1024;

/// A stack of empty buffers ready for reuse.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
}

impl BufferPool {
    /// An empty buffer, with capacity when one was pooled.
    pub fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    /// Gives a buffer back: kept when small and the pool has room, freed
    /// otherwise.
    pub fn give(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0
            || buffer.capacity() > MAX_POOLED_CAPACITY
            || self.free.len() >= POOLED_BUFFERS
        {
            return;
        }
        buffer.clear();
        self.free.push(buffer);
    }

    /// Buffers waiting in the pool.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }
}

/// What a worker lends to the connection it is serving, one at a time.
#[derive(Debug, Default)]
pub struct Workspace {
    pub pool: BufferPool,
    /// Where a service callback's `send`s land.
    pub service_output: Vec<u8>,
    /// Where TLS puts the plaintext it decrypted.
    pub plaintext: Vec<u8>,
    /// What a callback asked for beyond sending (close, broadcast).
    pub requests: Requests,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_with_their_capacity() {
        let mut pool = BufferPool::default();
        assert_eq!(pool.take().capacity(), 0, "an empty pool allocates nothing");
        let mut buffer = Vec::with_capacity(4096);
        buffer.extend_from_slice(b"old bytes");
        pool.give(buffer);
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() >= 4096);
    }

    #[test]
    fn the_pool_is_bounded_in_count_and_in_size() {
        let mut pool = BufferPool::default();
        pool.give(Vec::with_capacity(MAX_POOLED_CAPACITY + 1));
        assert!(pool.is_empty(), "a large buffer is freed, not parked");
        for _ in 0..POOLED_BUFFERS + 10 {
            pool.give(Vec::with_capacity(1024));
        }
        assert_eq!(pool.len(), POOLED_BUFFERS);
    }
}
