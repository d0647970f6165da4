//! Waking one thread out of a blocking wait on its socket, with no extra
//! descriptor.
//!
//! A connection thread sleeps until its socket is ready or its deadline
//! comes. A chat line from another connection, or the shutdown, must wake
//! it sooner. The choices were: an eventfd per connection (one more
//! descriptor each, which at 10,000 connections meets the process's
//! descriptor limit), a short read timeout (every idle thread waking many
//! times a second, which is exactly the cost this baseline is meant to
//! show honestly, not to inflate), or a signal.
//!
//! The one idea: **a signal that is blocked except inside `ppoll`**. The
//! wake signal is blocked in every connection thread, so it can never
//! interrupt a `read` or a `write`. `ppoll` unblocks it atomically for the
//! length of the wait: a signal sent while the thread was busy stays
//! pending and makes the next `ppoll` return at once (`EINTR`), and one sent
//! during the wait ends it. No wake can fall between "check the inbox" and
//! "sleep", which is the race a plain blocking `read` would have.

use std::io;
use std::os::fd::RawFd;
use std::sync::Once;
use std::time::Duration;

/// The signal that wakes a connection thread: the first real-time signal
/// the C library leaves to programs.
pub fn signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn on_wake(_: libc::c_int) {
    // Nothing to do: being delivered is the whole message (ppoll returns).
}

/// Installs the (empty) handler once per process. Without a handler the
/// default action of a real-time signal would end the process.
pub fn install() -> io::Result<()> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        // SAFETY: `action` is zeroed then filled; `on_wake` is async-signal-
        // safe (it does nothing). No SA_RESTART: the point is to interrupt.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_wake as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal(), &action, std::ptr::null_mut()) != 0 {
                result = Err(io::Error::last_os_error());
            }
        }
    });
    result
}

/// The calling thread's signal mask for its waits: the wake signal is
/// blocked from now on except inside [`wait`], which uses the mask returned.
pub struct WaitMask(libc::sigset_t);

impl WaitMask {
    pub fn block_in_this_thread() -> io::Result<WaitMask> {
        // SAFETY: both sets are initialised by sigemptyset/pthread_sigmask
        // before they are read.
        unsafe {
            let mut wake: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut wake);
            libc::sigaddset(&mut wake, signal());
            let mut old: libc::sigset_t = std::mem::zeroed();
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &wake, &mut old);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            // Whatever else was blocked (SIGINT, SIGTERM: see `server`)
            // stays blocked during the wait.
            libc::sigdelset(&mut old, signal());
            Ok(WaitMask(old))
        }
    }
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// The socket is ready: the `poll(2)` revents.
    Ready(libc::c_short),
    /// The timeout passed.
    TimedOut,
    /// The wake signal (or another signal) arrived.
    Signalled,
}

/// Sleeps until `fd` has one of `events` (none: only a signal or the
/// timeout ends the wait), the wake signal arrives, or `timeout` passes.
pub fn wait(
    fd: RawFd,
    events: libc::c_short,
    timeout: Option<Duration>,
    mask: &WaitMask,
) -> io::Result<Woken> {
    let mut pfd = libc::pollfd {
        fd: if events == 0 { -1 } else { fd },
        events,
        revents: 0,
    };
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: one valid pollfd, a timespec that outlives the call (or
    // null), and an initialised signal mask.
    let n = unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, &mask.0) };
    match n {
        0 => Ok(Woken::TimedOut),
        n if n > 0 => Ok(Woken::Ready(pfd.revents)),
        _ => {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                Ok(Woken::Signalled)
            } else {
                Err(err)
            }
        }
    }
}

/// Wakes `thread` (its current or next [`wait`]).
pub fn wake(thread: libc::pthread_t) {
    // SAFETY: callers pass a thread that is still running: the room removes
    // a member before its thread ends, and wakes only under the room's lock.
    unsafe {
        libc::pthread_kill(thread, signal());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    /// A wake sent while the thread is busy (not waiting) is not lost: the
    /// next wait returns at once.
    #[test]
    fn a_wake_before_the_wait_ends_the_next_wait_at_once() {
        install().unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mask = WaitMask::block_in_this_thread().unwrap();
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            std::thread::sleep(Duration::from_millis(100)); // "busy"
            let started = Instant::now();
            let woken = wait(
                a.as_raw_fd(),
                libc::POLLIN,
                Some(Duration::from_secs(5)),
                &mask,
            );
            (woken.unwrap(), started.elapsed())
        });
        let target = rx.recv().unwrap();
        wake(target);
        let (woken, waited) = thread.join().unwrap();
        assert_eq!(woken, Woken::Signalled);
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    }

    #[test]
    fn a_quiet_socket_times_out() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mask = WaitMask::block_in_this_thread().unwrap();
        let woken = wait(
            a.as_raw_fd(),
            libc::POLLIN,
            Some(Duration::from_millis(20)),
            &mask,
        );
        assert_eq!(woken.unwrap(), Woken::TimedOut);
    }
}
