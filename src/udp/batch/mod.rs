//! Datagrams in batches: many per system call where the OS allows it.
//!
//! A UDP server's cost is system calls. A stream socket hands over as many
//! bytes as are waiting in one `read`; a datagram socket hands over one
//! datagram per `recvfrom`, so a busy echo server spends most of its time
//! entering and leaving the kernel. Linux has `recvmmsg` and `sendmmsg`,
//! which move a whole array of datagrams per call; elsewhere the same array
//! is filled one call at a time. The one idea: **the batch is the unit** —
//! [`RecvBatch`] and [`SendBatch`] are the same arrays whichever way they
//! are filled ([`IoMode`]), so the code above them never knows how many
//! system calls it took, and the counters say.
//!
//! | file | job |
//! |---|---|
//! | `mmsg.rs` | Linux: `recvmmsg` / `sendmmsg`, one call per batch |
//! | `single.rs` | everywhere: `recvmsg` / `sendmsg`, one call per datagram |
//! | `errors.rs` | ICMP reports (`IP_RECVERR`) and the error queue |
//!
//! A datagram larger than its slot is cut by the kernel and flagged
//! `MSG_TRUNC`; [`Datagram::truncated`] says so, and the caller drops it
//! rather than serve half a message.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod mmsg;
mod single;

pub mod errors;

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use super::sockaddr::{empty_storage, to_socket_addr};

/// How datagrams cross into the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// One system call per batch where the OS has one (Linux `recvmmsg`,
    /// `sendmmsg`); one per datagram elsewhere.
    Batched,
    /// One system call per datagram everywhere: the portable path, and the
    /// baseline that shows what batching saves.
    PerDatagram,
}

impl IoMode {
    /// Whether this build really batches in [`IoMode::Batched`].
    pub const fn batches_here() -> bool {
        cfg!(any(target_os = "linux", target_os = "android"))
    }

    pub fn name(self) -> &'static str {
        match self {
            IoMode::Batched => "batched",
            IoMode::PerDatagram => "per_datagram",
        }
    }
}

/// Why a receive pass ended.
#[derive(Debug)]
pub enum RecvStop {
    /// Every slot was filled: more may be waiting.
    Full,
    /// The socket had nothing more (or very likely nothing: a batch call
    /// that returned fewer datagrams than asked for).
    Drained,
    /// A call failed, after the datagrams counted before it. On a UDP
    /// socket this is a pending error, such as an ICMP port unreachable
    /// reported as `ECONNREFUSED`: the socket itself is fine.
    Failed(io::Error),
}

/// What one receive pass did.
#[derive(Debug)]
pub struct RecvPass {
    pub datagrams: usize,
    pub system_calls: u64,
    pub stop: RecvStop,
}

/// One received datagram, as the batch holds it.
#[derive(Debug)]
pub struct Datagram<'a> {
    /// `None` for an address of a family this code does not speak.
    pub peer: Option<SocketAddr>,
    pub bytes: &'a [u8],
    /// The datagram was larger than its slot and was cut by the kernel.
    pub truncated: bool,
}

/// Slots for up to `capacity` datagrams of up to `slot_size` bytes each.
pub struct RecvBatch {
    slot_size: usize,
    /// `capacity * slot_size` bytes; slot `i` starts at `i * slot_size`.
    /// Allocated zeroed, so pages a small datagram never reaches are never
    /// touched and cost no memory.
    data: Vec<u8>,
    peers: Vec<libc::sockaddr_storage>,
    peer_lens: Vec<libc::socklen_t>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    filled: usize,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    calls: mmsg::Headers,
}

impl RecvBatch {
    pub fn new(capacity: usize, slot_size: usize) -> RecvBatch {
        let capacity = capacity.max(1);
        RecvBatch {
            slot_size,
            data: vec![0; capacity * slot_size],
            peers: vec![empty_storage(); capacity],
            peer_lens: vec![0; capacity],
            lens: vec![0; capacity],
            truncated: vec![false; capacity],
            filled: 0,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            calls: mmsg::Headers::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Datagrams held from the last pass.
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Datagram `i` of the last pass.
    pub fn get(&self, i: usize) -> Datagram<'_> {
        let start = i * self.slot_size;
        Datagram {
            peer: to_socket_addr(&self.peers[i], self.peer_lens[i]),
            bytes: &self.data[start..start + self.lens[i]],
            truncated: self.truncated[i],
        }
    }

    /// Receives up to a batch from non-blocking `fd`.
    pub fn receive(&mut self, fd: RawFd, mode: IoMode) -> RecvPass {
        self.filled = 0;
        let pass = match mode {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            IoMode::Batched => mmsg::receive(fd, self),
            _ => single::receive(fd, self),
        };
        self.filled = pass.datagrams;
        pass
    }

    /// Slot `i`'s buffer and address fields, for the system call modules.
    fn slot(&mut self, i: usize) -> Slot<'_> {
        let start = i * self.slot_size;
        Slot {
            buffer: &mut self.data[start..start + self.slot_size],
            peer: &mut self.peers[i],
        }
    }

    /// Records what the kernel wrote into slot `i`.
    fn record(&mut self, i: usize, len: usize, peer_len: libc::socklen_t, flags: libc::c_int) {
        self.lens[i] = len.min(self.slot_size);
        self.peer_lens[i] = peer_len;
        self.truncated[i] = flags & libc::MSG_TRUNC != 0;
    }
}

struct Slot<'a> {
    buffer: &'a mut [u8],
    peer: &'a mut libc::sockaddr_storage,
}

/// One datagram waiting to be sent.
struct Outgoing {
    to: socket2::SockAddr,
    start: usize,
    len: usize,
}

/// What one flush did.
#[derive(Debug, Default)]
pub struct SendReport {
    pub sent: u64,
    pub sent_bytes: u64,
    /// Dropped because the socket's send buffer was full (`EAGAIN`): never
    /// retried, never waited for.
    pub dropped_full: u64,
    /// Refused one by one by the kernel (no route, too large, ...).
    pub failed: u64,
    /// The first refusal, with the address it was for.
    pub first_failure: Option<(io::Error, Option<SocketAddr>)>,
    pub system_calls: u64,
}

/// Datagrams queued for one flush: their bytes in one arena, their
/// addresses beside. Pushing never fails; [`is_full`](Self::is_full) says
/// when to flush.
pub struct SendBatch {
    capacity: usize,
    /// Bytes at which the batch counts as full whatever the count, so that
    /// large datagrams do not pile up an arena of megabytes.
    byte_limit: usize,
    arena: Vec<u8>,
    entries: Vec<Outgoing>,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    calls: mmsg::Headers,
}

impl SendBatch {
    pub fn new(capacity: usize) -> SendBatch {
        let capacity = capacity.max(1);
        SendBatch {
            capacity,
            byte_limit: 1024 * 1024,
            arena: Vec::new(),
            entries: Vec::with_capacity(capacity),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            calls: mmsg::Headers::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the next push should wait for a flush.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity || self.arena.len() >= self.byte_limit
    }

    /// Datagrams that fit before the batch is full.
    pub fn room(&self) -> usize {
        if self.arena.len() >= self.byte_limit {
            0
        } else {
            self.capacity.saturating_sub(self.entries.len())
        }
    }

    /// Queues `bytes` for `to`.
    pub fn push(&mut self, to: impl Into<socket2::SockAddr>, bytes: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.entries.push(Outgoing {
            to: to.into(),
            start,
            len: bytes.len(),
        });
    }

    /// Queued datagram `i`: its address and bytes.
    pub fn get(&self, i: usize) -> (&socket2::SockAddr, &[u8]) {
        let entry = &self.entries[i];
        (&entry.to, &self.arena[entry.start..entry.start + entry.len])
    }

    /// Discards everything queued.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.arena.clear();
    }

    /// Sends everything queued from non-blocking `fd` and empties the
    /// batch. A full send buffer drops the rest (counted); a datagram the
    /// kernel refuses is counted and skipped, and the others still go.
    pub fn flush(&mut self, fd: RawFd, mode: IoMode) -> SendReport {
        let mut report = SendReport::default();
        let mut next = 0;
        while next < self.entries.len() {
            report.system_calls += 1;
            let result = match mode {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                IoMode::Batched => mmsg::send(fd, self, next),
                _ => single::send(fd, self, next),
            };
            match result {
                Ok(0) => {
                    // Not expected from the kernel; treat as a full buffer
                    // rather than loop on it.
                    report.dropped_full += (self.entries.len() - next) as u64;
                    break;
                }
                Ok(n) => {
                    report.sent += n as u64;
                    report.sent_bytes += self.entries[next..next + n]
                        .iter()
                        .map(|e| e.len as u64)
                        .sum::<u64>();
                    next += n;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    report.dropped_full += (self.entries.len() - next) as u64;
                    break;
                }
                Err(err) => {
                    report.failed += 1;
                    if report.first_failure.is_none() {
                        report.first_failure = Some((err, self.entries[next].to.as_socket()));
                    }
                    next += 1;
                }
            }
        }
        self.clear();
        report
    }
}

#[cfg(test)]
mod tests;
