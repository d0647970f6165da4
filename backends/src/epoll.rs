//! The `epoll(7)` backend: Linux's O(ready) readiness interface.
//!
//! `poll(2)` makes the kernel walk every descriptor on every call. `epoll`
//! splits that into two steps: `epoll_ctl` tells the kernel once which
//! descriptors to watch (the *interest list*, kept in the kernel), and
//! `epoll_wait` returns only those that are ready. A wait therefore costs
//! O(ready), not O(registered): ten thousand idle connections cost nothing
//! per wait. The one idea to take away: **the interest list lives in the
//! kernel**, so the only user-space state here is the epoll descriptor itself.
//!
//! One-shot semantics map directly onto `EPOLLONESHOT`: after one event the
//! kernel disables the registration until `EPOLL_CTL_MOD` re-arms it, and a
//! re-arm of an already-ready descriptor reports at the next wait.
//!
//! The waker is an `eventfd` registered level-triggered (not one-shot) under a
//! token no caller can use; it is drained inside `wait` and never reported.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::waker::WakeFd;
use crate::{BackendKind, Event, Events, Interest, Selector, Token, Waker};

/// The epoll `data` value of the waker. Real tokens are stored as `token + 1`
/// so that no `Token` can collide with it.
const WAKER_DATA: u64 = 0;

pub(crate) struct EpollSelector {
    epfd: RawFd,
    wake_fd: Arc<WakeFd>,
    /// Reused for every `epoll_wait`, so waiting allocates nothing.
    buffer: Vec<libc::epoll_event>,
}

impl EpollSelector {
    pub(crate) fn new() -> io::Result<EpollSelector> {
        // SAFETY: no pointers; the returned fd is owned by the selector.
        let epfd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC))? };
        let selector = EpollSelector {
            epfd,
            wake_fd: Arc::new(WakeFd::new()?),
            buffer: Vec::new(),
        };
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKER_DATA,
        };
        // SAFETY: both fds are open and `event` is a valid epoll_event.
        unsafe {
            syscall!(epoll_ctl(
                epfd,
                libc::EPOLL_CTL_ADD,
                selector.wake_fd.read_fd(),
                &mut event
            ))?
        };
        Ok(selector)
    }

    fn control(
        &mut self,
        op: libc::c_int,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        let mut flags = libc::EPOLLONESHOT;
        if interest.is_readable() {
            // The peer's FIN is news only to a reader. A write-only
            // registration must not hear it: a FIN is a standing condition,
            // and it would fire on every wait while the socket stays full.
            flags |= libc::EPOLLIN | libc::EPOLLRDHUP;
        }
        if interest.is_writable() {
            flags |= libc::EPOLLOUT;
        }
        let mut event = libc::epoll_event {
            events: flags as u32,
            u64: token_to_data(token)?,
        };
        // SAFETY: `self.epfd` is open; `event` is a valid epoll_event that
        // outlives the call; the kernel validates `fd`.
        unsafe { syscall!(epoll_ctl(self.epfd, op, fd, &mut event))? };
        Ok(())
    }
}

fn token_to_data(token: Token) -> io::Result<u64> {
    (token.0 as u64)
        .checked_add(1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "token usize::MAX is reserved"))
}

impl Selector for EpollSelector {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        // Kernels before 2.6.9 demanded a non-null event pointer for DEL;
        // passing one costs nothing.
        let mut unused = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `self.epfd` is open and `unused` is a valid epoll_event.
        unsafe { syscall!(epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, &mut unused))? };
        Ok(())
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let capacity = events.capacity();
        if self.buffer.len() < capacity {
            self.buffer
                .resize(capacity, libc::epoll_event { events: 0, u64: 0 });
        }
        let max = capacity.min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: `buffer` holds at least `max` initialised epoll_events that
        // the kernel may overwrite; `self.epfd` is open.
        let n = match unsafe {
            syscall!(epoll_wait(
                self.epfd,
                self.buffer.as_mut_ptr(),
                max,
                crate::timeout_to_millis(timeout)
            ))
        } {
            Ok(n) => n as usize,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(err) => return Err(err),
        };
        for raw in &self.buffer[..n] {
            // Copy out of the (packed on x86_64) struct before use.
            let (data, flags) = (raw.u64, raw.events);
            if data == WAKER_DATA {
                self.wake_fd.drain();
                continue;
            }
            let has = |bits: libc::c_int| flags & bits as u32 != 0;
            events.push(Event {
                token: Token((data - 1) as usize),
                // A peer's FIN (RDHUP), a full hang-up or an error all make
                // the next read return something: data, EOF or the error.
                readable: has(libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR),
                writable: has(libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR),
            });
        }
        Ok(())
    }

    fn waker(&self) -> Waker {
        Waker::new(self.wake_fd.clone())
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Epoll
    }
}

impl Drop for EpollSelector {
    fn drop(&mut self) {
        crate::sys::close_quietly(self.epfd);
    }
}
