//! Everywhere: one datagram per system call, up to the batch size.
//!
//! `recvmsg` rather than `recvfrom`, because `recvmsg` reports `MSG_TRUNC`
//! in its flags on every POSIX system, while `recvfrom` says nothing when a
//! datagram did not fit. The one idea: **the same batch, filled one call at
//! a time** — callers see no difference but the system-call count.

use std::io;
use std::os::fd::RawFd;

use super::{RecvBatch, RecvPass, RecvStop, SendBatch};

fn empty_header() -> libc::msghdr {
    // SAFETY: msghdr is plain old data; zeroing also clears the private
    // padding fields some targets have.
    unsafe { std::mem::zeroed() }
}

pub fn receive(fd: RawFd, batch: &mut RecvBatch) -> RecvPass {
    let mut system_calls = 0;
    let mut received = 0;
    while received < batch.capacity() {
        let slot = batch.slot(received);
        let mut iovec = libc::iovec {
            iov_base: slot.buffer.as_mut_ptr().cast(),
            iov_len: slot.buffer.len(),
        };
        let mut header = empty_header();
        header.msg_name = slot.peer as *mut libc::sockaddr_storage as *mut _;
        header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_iov = &mut iovec;
        header.msg_iovlen = 1;
        system_calls += 1;
        // SAFETY: the header points at one iovec over the slot's buffer and
        // at the slot's address storage, both alive for the call and of the
        // sizes given.
        let rc = unsafe { libc::recvmsg(fd, &mut header, libc::MSG_DONTWAIT) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            let stop = match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => RecvStop::Drained,
                _ => RecvStop::Failed(err),
            };
            return RecvPass {
                datagrams: received,
                system_calls,
                stop,
            };
        }
        batch.record(received, rc as usize, header.msg_namelen, header.msg_flags);
        received += 1;
    }
    RecvPass {
        datagrams: received,
        system_calls,
        stop: RecvStop::Full,
    }
}

/// Sends queued datagram `index`; `Ok(1)` when the kernel took it.
pub fn send(fd: RawFd, batch: &mut SendBatch, index: usize) -> io::Result<usize> {
    let entry = &batch.entries[index];
    let mut iovec = libc::iovec {
        // sendmsg only reads through iov_base.
        iov_base: batch.arena[entry.start..].as_ptr() as *mut _,
        iov_len: entry.len,
    };
    let mut header = empty_header();
    header.msg_name = entry.to.as_ptr() as *mut _;
    header.msg_namelen = entry.to.len();
    header.msg_iov = &mut iovec;
    header.msg_iovlen = 1;
    // SAFETY: the header points at the entry's address (`msg_namelen`
    // bytes) and one iovec over its bytes in the arena, alive for the call;
    // sendmsg reads them only.
    let rc = unsafe { libc::sendmsg(fd, &header, libc::MSG_DONTWAIT) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(1)
    }
}
