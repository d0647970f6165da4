//! Waiting to write on a socket whose peer has half-closed: the one wait
//! io_uring's poll cannot express.
//!
//! The kernel always adds `POLLRDHUP` (with `POLLERR`, `POLLHUP` and
//! `POLLNVAL`) to the mask of an io_uring poll (`IO_POLL_UNMASK` in
//! `io_uring/poll.c`). Once the peer's FIN has arrived, a `POLL_ADD` for
//! `POLLOUT` alone therefore completes at once, with `POLLRDHUP`, and again
//! after every re-arm: a server waiting for a full send buffer to drain
//! towards a peer that has finished sending would spin. The contract says a
//! FIN is news only to a reader, and epoll honours the mask, so the one idea
//! here is **a small epoll instance on the side for exactly those waits**:
//! such a registration is moved there (`EPOLLOUT | EPOLLONESHOT`), and the
//! ring polls the epoll descriptor like any other. It costs `epoll_ctl`
//! calls, but only on this rare path; a registration that wants to read
//! again goes back to the ring.

use std::io;
use std::os::fd::RawFd;

pub(super) struct EpollSide {
    epfd: RawFd,
    buffer: Vec<libc::epoll_event>,
    members: usize,
}

impl EpollSide {
    pub(super) fn new() -> io::Result<EpollSide> {
        // SAFETY: no pointers; the returned fd is owned by EpollSide.
        let epfd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC))? };
        Ok(EpollSide {
            epfd,
            buffer: Vec::new(),
            members: 0,
        })
    }

    /// The descriptor the ring polls for readability.
    pub(super) fn fd(&self) -> RawFd {
        self.epfd
    }

    pub(super) fn has_members(&self) -> bool {
        self.members > 0
    }

    /// Waits (one-shot) for `fd` to become writable; `added` says whether
    /// it is in the set already (then this re-arms it).
    pub(super) fn arm_write(&mut self, fd: RawFd, added: bool) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLOUT | libc::EPOLLONESHOT) as u32,
            u64: fd as u64,
        };
        let op = if added {
            libc::EPOLL_CTL_MOD
        } else {
            libc::EPOLL_CTL_ADD
        };
        // SAFETY: `self.epfd` is open and `event` is a valid epoll_event.
        unsafe { syscall!(epoll_ctl(self.epfd, op, fd, &mut event))? };
        if !added {
            self.members += 1;
        }
        Ok(())
    }

    pub(super) fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        let mut unused = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `self.epfd` is open and `unused` is a valid epoll_event.
        unsafe { syscall!(epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, &mut unused))? };
        self.members -= 1;
        Ok(())
    }

    /// The members ready now, at most `max`: (descriptor, epoll flags).
    pub(super) fn ready(&mut self, max: usize) -> io::Result<Vec<(RawFd, u32)>> {
        let max = max.clamp(1, 1024);
        if self.buffer.len() < max {
            self.buffer
                .resize(max, libc::epoll_event { events: 0, u64: 0 });
        }
        // SAFETY: `buffer` holds at least `max` initialised epoll_events for
        // the kernel to overwrite; `self.epfd` is open; zero timeout.
        let n = match unsafe {
            syscall!(epoll_wait(
                self.epfd,
                self.buffer.as_mut_ptr(),
                max as libc::c_int,
                0
            ))
        } {
            Ok(n) => n as usize,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => 0,
            Err(err) => return Err(err),
        };
        Ok(self.buffer[..n]
            .iter()
            .map(|raw| {
                // Copy out of the (packed on x86_64) struct before use.
                let (data, flags) = (raw.u64, raw.events);
                (data as RawFd, flags)
            })
            .collect())
    }
}

impl Drop for EpollSide {
    fn drop(&mut self) {
        crate::sys::close_quietly(self.epfd);
    }
}
