//! The `epoll(7)` backend: Linux's O(ready) readiness interface.
//!
//! `poll(2)` makes the kernel walk every descriptor on every call. `epoll`
//! splits that into two steps: `epoll_ctl` tells the kernel once which
//! descriptors to watch (the *interest list*, kept in the kernel), and
//! `epoll_wait` returns only those that are ready. A wait therefore costs
//! O(ready), not O(registered): ten thousand idle connections cost nothing
//! per wait. The one idea to take away: **the interest list lives in the
//! kernel**.
//!
//! One-shot semantics could map directly onto `EPOLLONESHOT`: after one event
//! the kernel disables the registration until `EPOLL_CTL_MOD` re-arms it. But
//! then every event costs an `epoll_ctl` to re-arm, even when the interest
//! does not change, and in an echo or a ping-pong server it almost never does:
//! read, write, re-arm for reading again. So this backend keeps one small
//! record per descriptor in user space, *what the kernel was last told* and
//! *whether the registration is armed*, and asks the kernel for persistent,
//! level-triggered readiness:
//!
//! * an event is reported only for an armed registration, which it disarms;
//! * re-arming with the interest the kernel already has is a flag write, not
//!   a system call; the kernel is still watching, and a descriptor that is
//!   still ready is reported at the next wait, as the contract asks;
//! * an event for a disarmed registration (the caller paused it) silences it
//!   with one `EPOLL_CTL_MOD` to "nothing, once" (`EPOLLONESHOT` with no
//!   events, so that even a hang-up, which epoll always reports, comes at
//!   most once); the next re-arm tells the kernel the interest again.
//!
//! A connection that keeps its interest therefore costs `epoll_wait`,
//! `read` and `write` per round trip, and no `epoll_ctl`; one that changes
//! it pays what `EPOLLONESHOT` would have cost.
//!
//! The waker is an `eventfd` registered level-triggered (not one-shot) under a
//! token no caller can use; it is drained inside `wait` and never reported.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::waker::WakeFd;
use crate::{BackendKind, Event, Events, Interest, Selector, Token, Waker};

/// The epoll `data` value of the waker. Registered descriptors are stored as
/// `fd + 1`, so that none can collide with it.
const WAKER_DATA: u64 = 0;

/// The kernel flags of a silenced registration: nothing, and at most once.
const SILENCED: u32 = libc::EPOLLONESHOT as u32;

/// What this selector knows about one registered descriptor.
#[derive(Clone, Copy)]
struct Registration {
    token: Token,
    /// The flags the kernel was last given for this descriptor.
    kernel: u32,
    /// Whether the next event may be reported (the one-shot flag).
    armed: bool,
}

pub(crate) struct EpollSelector {
    epfd: RawFd,
    wake_fd: Arc<WakeFd>,
    /// Reused for every `epoll_wait`, so waiting allocates nothing.
    buffer: Vec<libc::epoll_event>,
    /// Indexed by descriptor: descriptors are small integers, so a vector is
    /// both the smallest and the fastest map (16 bytes per slot).
    registrations: Vec<Option<Registration>>,
}

impl EpollSelector {
    pub(crate) fn new() -> io::Result<EpollSelector> {
        // SAFETY: no pointers; the returned fd is owned by the selector.
        let epfd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC))? };
        let selector = EpollSelector {
            epfd,
            wake_fd: Arc::new(WakeFd::new()?),
            buffer: Vec::new(),
            registrations: Vec::new(),
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

    /// Tells the kernel to watch `fd` with `flags` (`op`: ADD or MOD).
    fn control(&mut self, op: libc::c_int, fd: RawFd, flags: u32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: flags,
            u64: fd_to_data(fd)?,
        };
        // SAFETY: `self.epfd` is open; `event` is a valid epoll_event that
        // outlives the call; the kernel validates `fd`.
        unsafe { syscall!(epoll_ctl(self.epfd, op, fd, &mut event))? };
        Ok(())
    }

    fn registration(&mut self, fd: RawFd) -> io::Result<&mut Registration> {
        usize::try_from(fd)
            .ok()
            .and_then(|index| self.registrations.get_mut(index))
            .and_then(Option::as_mut)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn record(&mut self, fd: RawFd, registration: Option<Registration>) {
        let index = fd as usize;
        if self.registrations.len() <= index {
            self.registrations.resize(index + 1, None);
        }
        self.registrations[index] = registration;
    }
}

/// The level-triggered kernel flags for `interest`.
fn flags_for(interest: Interest) -> u32 {
    let mut flags = 0;
    if interest.is_readable() {
        // The peer's FIN is news only to a reader. A write-only registration
        // must not hear it: a FIN is a standing condition, and it would fire
        // on every wait while the socket stays full.
        flags |= libc::EPOLLIN | libc::EPOLLRDHUP;
    }
    if interest.is_writable() {
        flags |= libc::EPOLLOUT;
    }
    flags as u32
}

fn fd_to_data(fd: RawFd) -> io::Result<u64> {
    u64::try_from(fd)
        .map(|fd| fd + 1)
        .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
}

impl Selector for EpollSelector {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let kernel = flags_for(interest);
        self.control(libc::EPOLL_CTL_ADD, fd, kernel)?;
        self.record(
            fd,
            Some(Registration {
                token,
                kernel,
                armed: true,
            }),
        );
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let wanted = flags_for(interest);
        let registration = self.registration(fd)?;
        registration.token = token;
        registration.armed = true;
        if registration.kernel != wanted {
            registration.kernel = wanted;
            self.control(libc::EPOLL_CTL_MOD, fd, wanted)?;
        }
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        // Kernels before 2.6.9 demanded a non-null event pointer for DEL;
        // passing one costs nothing.
        let mut unused = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `self.epfd` is open and `unused` is a valid epoll_event.
        unsafe { syscall!(epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, &mut unused))? };
        self.record(fd, None);
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
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // SAFETY: `buffer` holds at least `max` initialised epoll_events
            // that the kernel may overwrite; `self.epfd` is open.
            let n = match unsafe {
                syscall!(epoll_wait(
                    self.epfd,
                    self.buffer.as_mut_ptr(),
                    max,
                    crate::timeout_to_millis(left)
                ))
            } {
                Ok(n) => n as usize,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(err) => return Err(err),
            };
            let mut finished = n == 0; // a timeout
            for index in 0..n {
                // Copy out of the (packed on x86_64) struct before use.
                let (data, flags) = (self.buffer[index].u64, self.buffer[index].events);
                if data == WAKER_DATA {
                    self.wake_fd.drain();
                    finished = true;
                    continue;
                }
                let fd = (data - 1) as RawFd;
                let Ok(registration) = self.registration(fd) else {
                    continue;
                };
                if !registration.armed {
                    // Ready, but the caller has not asked again: silence it
                    // until the next re-arm.
                    registration.kernel = SILENCED;
                    self.control(libc::EPOLL_CTL_MOD, fd, SILENCED)?;
                    continue;
                }
                registration.armed = false;
                let token = registration.token;
                let has = |bits: libc::c_int| flags & bits as u32 != 0;
                events.push(Event {
                    token,
                    // A peer's FIN (RDHUP), a full hang-up or an error all
                    // make the next read return something: data, EOF or the
                    // error.
                    readable: has(libc::EPOLLIN
                        | libc::EPOLLRDHUP
                        | libc::EPOLLHUP
                        | libc::EPOLLERR),
                    writable: has(libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR),
                });
            }
            // Only silenced registrations were ready: that is no reason to
            // return, so wait again for what is left of the timeout.
            if finished || !events.is_empty() {
                return Ok(());
            }
        }
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
