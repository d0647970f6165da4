//! Linux: a whole batch per system call, with `recvmmsg` and `sendmmsg`.
//!
//! Both calls take an array of `mmsghdr`, each pointing at one buffer and
//! one address. The arrays are rebuilt before every call, pointing into the
//! batch's own buffers, so nothing here outlives the call that uses it. The
//! one idea: **one call, many datagrams, each with its own result** — the
//! kernel reports a length, an address and flags (`MSG_TRUNC`) per entry,
//! and how many entries it got through.

use std::io;
use std::os::fd::RawFd;
use std::ptr;

use super::{RecvBatch, RecvPass, RecvStop, SendBatch};

/// The arrays the calls take, kept between calls only for their
/// allocations.
#[derive(Default)]
pub struct Headers {
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
}

fn empty_header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data (pointers may be null, lengths
    // zero); some targets have private padding fields, so zeroing is the
    // portable way to build one.
    unsafe { std::mem::zeroed() }
}

pub fn receive(fd: RawFd, batch: &mut RecvBatch) -> RecvPass {
    let capacity = batch.capacity();
    let mut calls = std::mem::take(&mut batch.calls);
    calls.headers.clear();
    calls.iovecs.clear();
    for i in 0..capacity {
        let slot = batch.slot(i);
        calls.iovecs.push(libc::iovec {
            iov_base: slot.buffer.as_mut_ptr().cast(),
            iov_len: slot.buffer.len(),
        });
    }
    for i in 0..capacity {
        let mut header = empty_header();
        header.msg_hdr.msg_name = batch.slot(i).peer as *mut libc::sockaddr_storage as *mut _;
        header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        header.msg_hdr.msg_iov = &mut calls.iovecs[i];
        header.msg_hdr.msg_iovlen = 1;
        calls.headers.push(header);
    }
    let mut system_calls = 0;
    let result = loop {
        system_calls += 1;
        // SAFETY: `headers` holds `capacity` entries, each pointing at a
        // slot buffer of `iov_len` bytes and an address buffer of
        // `msg_namelen` bytes, all owned by `batch` and alive for the call;
        // a null timeout is allowed.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                calls.headers.as_mut_ptr(),
                capacity as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if rc >= 0 {
            break Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            break Err(err);
        }
    };
    let pass = match result {
        Ok(n) => {
            for (i, header) in calls.headers.iter().take(n).enumerate() {
                batch.record(
                    i,
                    header.msg_len as usize,
                    header.msg_hdr.msg_namelen,
                    header.msg_hdr.msg_flags,
                );
            }
            RecvPass {
                datagrams: n,
                system_calls,
                stop: if n == capacity {
                    RecvStop::Full
                } else {
                    RecvStop::Drained
                },
            }
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => RecvPass {
            datagrams: 0,
            system_calls,
            stop: RecvStop::Drained,
        },
        Err(err) => RecvPass {
            datagrams: 0,
            system_calls,
            stop: RecvStop::Failed(err),
        },
    };
    batch.calls = calls;
    pass
}

/// Sends queued datagrams from `first` on in one call; returns how many
/// the kernel took (the first failure, if any, is reported by the next
/// call, which starts at it).
pub fn send(fd: RawFd, batch: &mut SendBatch, first: usize) -> io::Result<usize> {
    let mut calls = std::mem::take(&mut batch.calls);
    calls.headers.clear();
    calls.iovecs.clear();
    for entry in &batch.entries[first..] {
        calls.iovecs.push(libc::iovec {
            // sendmmsg only reads through iov_base.
            iov_base: batch.arena[entry.start..].as_ptr() as *mut _,
            iov_len: entry.len,
        });
    }
    for (i, entry) in batch.entries[first..].iter().enumerate() {
        let mut header = empty_header();
        // sendmmsg only reads the address.
        header.msg_hdr.msg_name = entry.to.as_ptr() as *mut _;
        header.msg_hdr.msg_namelen = entry.to.len();
        header.msg_hdr.msg_iov = &mut calls.iovecs[i];
        header.msg_hdr.msg_iovlen = 1;
        calls.headers.push(header);
    }
    // SAFETY: every header points at an address of `msg_namelen` bytes and
    // one iovec over bytes of the arena, all owned by `batch` and alive
    // for the call; the kernel writes only `msg_len`.
    let rc = unsafe {
        libc::sendmmsg(
            fd,
            calls.headers.as_mut_ptr(),
            calls.headers.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    batch.calls = calls;
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}
