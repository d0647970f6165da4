//! The provided-buffer ring: receive buffers the kernel picks from.
//!
//! A readiness driver reads into one buffer of its own, because it reads
//! only when it knows there are bytes. A completion driver keeps a receive
//! in flight on every connection, and giving each its own buffer would cost
//! a buffer per idle connection. Instead the worker hands the kernel a ring
//! of buffers (`IORING_REGISTER_PBUF_RING`); a multishot receive takes one
//! only when bytes arrive and names it in the completion (`bid`). The one
//! idea: **buffers belong to the worker, not to connections** — a buffer is
//! lent for exactly one completion and given back as soon as the connection
//! core has consumed (copied what it keeps of) the bytes.
//!
//! When every buffer is out, the kernel ends multishot receives with
//! `ENOBUFS`; the bytes stay in the socket, and the driver re-arms once
//! buffers are back (`socket_io.rs`). [`Ledger`] is the bookkeeping, kept
//! apart from the memory so it can be tested without a ring.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group id: a worker has one ring.
pub const GROUP: u16 = 0;

/// Which buffers the kernel holds and which are lent to the driver.
#[derive(Debug)]
pub struct Ledger {
    lent: Vec<bool>,
    lent_count: usize,
}

impl Ledger {
    pub fn new(entries: usize) -> Ledger {
        Ledger {
            lent: vec![false; entries],
            lent_count: 0,
        }
    }

    /// A completion handed buffer `bid` to the driver.
    pub fn lend(&mut self, bid: u16) -> io::Result<()> {
        match self.lent.get_mut(usize::from(bid)) {
            Some(lent @ false) => {
                *lent = true;
                self.lent_count += 1;
                Ok(())
            }
            Some(true) => Err(io::Error::other(format!("buffer {bid} handed out twice"))),
            None => Err(io::Error::other(format!("buffer {bid} is not in the ring"))),
        }
    }

    /// The driver gives `bid` back; `false` if it was not lent (a bug).
    pub fn give_back(&mut self, bid: u16) -> bool {
        match self.lent.get_mut(usize::from(bid)) {
            Some(lent @ true) => {
                *lent = false;
                self.lent_count -= 1;
                true
            }
            _ => false,
        }
    }

    /// Buffers out of the kernel's hands now.
    pub fn lent(&self) -> usize {
        self.lent_count
    }

    pub fn entries(&self) -> usize {
        self.lent.len()
    }
}

/// A registered ring of `entries` buffers of `size` bytes each.
pub struct BufRing {
    /// The ring of entries the kernel reads (page-aligned).
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    /// The buffers themselves, one block.
    data: *mut u8,
    data_layout: Layout,
    size: usize,
    mask: u16,
    /// Our copy of the tail; published to the kernel after each batch.
    tail: u16,
    ledger: Ledger,
}

impl BufRing {
    /// Allocates and registers the ring with `ring`. `entries` must be a
    /// power of two up to 32,768.
    pub fn register(ring: &IoUring, entries: u16, size: usize) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 || size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "buffer ring: {entries} entries of {size} bytes (need a power of two ≤ 32768)"
                ),
            ));
        }
        let n = usize::from(entries);
        let ring_layout = Layout::from_size_align(n * std::mem::size_of::<BufRingEntry>(), 4096)
            .map_err(io::Error::other)?;
        let data_layout = Layout::from_size_align(n * size, 64).map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size (entries and size are
        // non-zero); the pointers are checked for null below and freed with
        // the same layouts in Drop.
        let (ring_ptr, data) = unsafe { (alloc_zeroed(ring_layout), alloc_zeroed(data_layout)) };
        if ring_ptr.is_null() || data.is_null() {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer ring"));
        }
        // Touch every page now: the buffers are the worker's fixed cost, and
        // paying it at start-up keeps it from looking like growth later, as
        // the kernel reaches buffers it had not used yet.
        for offset in (0..n * size).step_by(4096) {
            // SAFETY: `offset` < n * size, inside the allocation.
            unsafe { data.add(offset).write_volatile(0) };
        }
        let mut buf_ring = BufRing {
            ring: ring_ptr.cast(),
            ring_layout,
            data,
            data_layout,
            size,
            mask: entries - 1,
            tail: 0,
            ledger: Ledger::new(n),
        };
        // SAFETY: the ring memory is page-aligned, holds `entries` entries,
        // and lives until Drop, which runs after the ring that uses it is
        // gone (the worker declares the IoUring first, so it drops first).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ring_ptr as u64, entries, GROUP, 0)?;
        }
        for bid in 0..entries {
            buf_ring.push(bid);
        }
        buf_ring.publish();
        Ok(buf_ring)
    }

    /// Takes buffer `bid`, which a completion says holds `len` bytes.
    pub fn take(&mut self, bid: u16, len: usize) -> io::Result<&[u8]> {
        self.ledger.lend(bid)?;
        let len = len.min(self.size);
        // SAFETY: `bid` is within the ring (the ledger checked), so the
        // range lies inside `data`; the kernel wrote it before posting the
        // completion and will not touch it again until it is given back.
        Ok(unsafe { std::slice::from_raw_parts(self.data.add(usize::from(bid) * self.size), len) })
    }

    /// Gives `bid` back to the kernel (visible after [`publish`](Self::publish)).
    pub fn give_back(&mut self, bid: u16) {
        if self.ledger.give_back(bid) {
            self.push(bid);
        } else {
            log::error!("buffer {bid} given back but not lent");
        }
    }

    /// Makes every buffer given back so far visible to the kernel.
    pub fn publish(&mut self) {
        // SAFETY: the tail field lies inside the first entry of our ring,
        // and an AtomicU16 has the layout of a u16; the kernel reads it with
        // acquire ordering, so release here publishes the entries first.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast_mut().cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & self.mask);
        // SAFETY: `index` < entries, inside the ring allocation. The kernel
        // only reads entries between its head and our published tail, and
        // this one is past the published tail.
        unsafe {
            let entry = &mut *self.ring.add(index);
            entry.set_addr(self.data.add(usize::from(bid) * self.size) as u64);
            entry.set_len(self.size as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with these layouts; the ring that
        // used them is already dropped (see `register`).
        unsafe {
            dealloc(self.ring.cast(), self.ring_layout);
            dealloc(self.data, self.data_layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_lends_each_buffer_once_and_counts_what_is_out() {
        let mut ledger = Ledger::new(4);
        ledger.lend(0).unwrap();
        ledger.lend(3).unwrap();
        assert_eq!(ledger.lent(), 2);
        assert!(ledger.lend(3).is_err(), "a buffer cannot be out twice");
        assert!(ledger.lend(4).is_err(), "no such buffer");
        assert!(ledger.give_back(3));
        assert!(!ledger.give_back(3), "given back twice");
        assert!(!ledger.give_back(1), "never lent");
        assert_eq!(ledger.lent(), 1);
        assert!(ledger.give_back(0));
        assert_eq!(ledger.lent(), 0);
        assert_eq!(ledger.entries(), 4);
    }

    #[test]
    fn a_ring_must_be_a_power_of_two() {
        let Ok(ring) = IoUring::new(8) else {
            return; // io_uring unavailable: the driver's probe says why
        };
        assert!(BufRing::register(&ring, 12, 64).is_err());
        let mut bufs = BufRing::register(&ring, 8, 64).unwrap();
        assert_eq!(
            bufs.take(5, 100).unwrap().len(),
            64,
            "clamped to the buffer"
        );
        bufs.give_back(5);
        bufs.publish();
        assert_eq!(bufs.ledger().lent(), 0);
    }
}
