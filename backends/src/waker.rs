//! Waking a selector from another thread.
//!
//! A thread blocked in `epoll_wait`/`poll`/`kevent` only returns when one of
//! its descriptors becomes ready. So the portable way to interrupt it is to
//! own one extra descriptor and make *that* readable: an `eventfd` on Linux (a
//! counter, one fd), or a non-blocking pipe elsewhere (two fds). The selector
//! registers the read side under a token no user can have, drains it when it
//! fires, and returns from `wait` without reporting an event.
//!
//! The mio backend brings its own waker; [`Waker`] wraps either behind one type.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Something that can interrupt a selector's `wait`.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self) -> io::Result<()>;
}

/// A cloneable, thread-safe handle that makes the owning selector's current
/// or next `wait` return.
#[derive(Clone)]
pub struct Waker {
    inner: Arc<dyn Wake>,
}

impl Waker {
    pub(crate) fn new(inner: Arc<dyn Wake>) -> Waker {
        Waker { inner }
    }

    /// A waker over an eventfd of its own, with that descriptor, for a driver
    /// that does not wait in a [`Selector`](crate::Selector) (the io_uring
    /// completion driver keeps a read of the eventfd in flight). The
    /// descriptor stays open while any clone of the waker lives.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn eventfd() -> io::Result<(Waker, RawFd)> {
        let wake_fd = Arc::new(WakeFd::new()?);
        let fd = wake_fd.read_fd();
        Ok((Waker::new(wake_fd), fd))
    }

    /// Interrupts the selector. Several wakes before the selector runs
    /// collapse into one early return.
    pub fn wake(&self) -> io::Result<()> {
        self.inner.wake()
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// The descriptor(s) behind a libc backend's waker: read side registered with
/// the selector, write side poked by other threads.
#[allow(dead_code)]
pub(crate) struct WakeFd {
    read_fd: RawFd,
    write_fd: RawFd,
}

#[allow(dead_code)]
impl WakeFd {
    /// An eventfd on Linux, a pipe elsewhere.
    pub(crate) fn new() -> io::Result<WakeFd> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            Self::eventfd()
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            Self::pipe()
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn eventfd() -> io::Result<WakeFd> {
        // SAFETY: eventfd takes no pointers; the returned fd is owned by WakeFd.
        let fd = unsafe { syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))? };
        Ok(WakeFd {
            read_fd: fd,
            write_fd: fd,
        })
    }

    /// The portable fallback, public to the crate so tests can force it on
    /// Linux too.
    pub(crate) fn pipe() -> io::Result<WakeFd> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe() to fill.
        unsafe { syscall!(pipe(fds.as_mut_ptr()))? };
        for fd in fds {
            // SAFETY: fd was just returned by pipe() and is open.
            let set = unsafe {
                syscall!(fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK))
                    .and_then(|_| syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC)))
            };
            if let Err(err) = set {
                crate::sys::close_quietly(fds[0]);
                crate::sys::close_quietly(fds[1]);
                return Err(err);
            }
        }
        Ok(WakeFd {
            read_fd: fds[0],
            write_fd: fds[1],
        })
    }

    /// The descriptor to register for readability.
    pub(crate) fn read_fd(&self) -> RawFd {
        self.read_fd
    }

    /// Empties the descriptor so it stops being readable.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 512];
        loop {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes.
            let n = unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) };
            // An eventfd is emptied by one 8-byte read; a pipe may hold more.
            if n <= 0 || self.read_fd == self.write_fd {
                break;
            }
        }
    }
}

impl Wake for WakeFd {
    fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: `one` lives across the call and is 8 bytes, as eventfd
        // requires; a pipe accepts any length.
        let n = unsafe { libc::write(self.write_fd, (&one as *const u64).cast(), 8) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // A full pipe or a saturated eventfd means a wake is already pending.
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(())
        } else {
            Err(err)
        }
    }
}

impl Drop for WakeFd {
    fn drop(&mut self) {
        crate::sys::close_quietly(self.read_fd);
        if self.write_fd != self.read_fd {
            crate::sys::close_quietly(self.write_fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_readable(fd: RawFd) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1, no timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }

    fn check(wake_fd: WakeFd) {
        assert!(!is_readable(wake_fd.read_fd()));
        for _ in 0..3 {
            wake_fd.wake().unwrap();
        }
        assert!(is_readable(wake_fd.read_fd()));
        wake_fd.drain();
        assert!(!is_readable(wake_fd.read_fd()));
    }

    #[test]
    fn default_wake_fd_becomes_readable_and_drains() {
        check(WakeFd::new().unwrap());
    }

    #[test]
    fn pipe_fallback_becomes_readable_and_drains() {
        check(WakeFd::pipe().unwrap());
    }

    #[test]
    fn a_full_pipe_still_counts_as_woken() {
        let wake_fd = WakeFd::pipe().unwrap();
        for _ in 0..100_000 {
            wake_fd.wake().unwrap();
        }
        assert!(is_readable(wake_fd.read_fd()));
    }
}
