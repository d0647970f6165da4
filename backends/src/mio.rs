//! The `mio` backend: the same contract on top of the crate most of the Rust
//! async ecosystem stands on, as a reference to compare the hand-written
//! backends against.
//!
//! mio is *edge-triggered*: it reports a descriptor when it *becomes* ready,
//! and not again until it has been drained to `WouldBlock` and becomes ready
//! anew. Our contract is one-shot, which is stricter about *when not* to
//! report (never twice without a re-arm) and looser about *when* to report
//! (re-arming a descriptor that is still ready must report it, drained or
//! not). The one idea to take away: **one-shot is an edge-triggered
//! mechanism plus one flag per registration and a re-arm that re-checks
//! readiness.**
//!
//! * The flag: every registration has an `armed` bit. An event for a
//!   disarmed registration is swallowed; an event for an armed one is
//!   reported and clears the bit.
//! * The re-check: `reregister` calls mio's `reregister`, which is
//!   `EPOLL_CTL_MOD` on Linux and `EV_ADD` on kqueue. Both make the kernel
//!   look at the descriptor again and queue an edge if it is ready *now*, so
//!   data that arrived while we were disarmed (and whose edge we swallowed)
//!   is reported after the re-arm. The conformance suite checks this.
//!
//! mio identifies registrations by its own `Token`; we use the fd as mio's
//! token, which makes the state lookup a map lookup by fd and leaves the
//! whole `usize` range free for the caller's tokens. mio brings its own
//! waker, registered under a token no fd can have.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::mio::unix::SourceFd;

use crate::oneshot::{Batch, OneShot};
use crate::waker::Wake;
use crate::{BackendKind, Events, Interest, Selector, Token, Waker};

/// mio's token for the waker. Fds are non-negative `i32`s, so as `usize`
/// they never reach this value.
const WAKER_TOKEN: ::mio::Token = ::mio::Token(usize::MAX);

pub(crate) struct MioSelector {
    poll: ::mio::Poll,
    mio_events: ::mio::Events,
    registrations: HashMap<RawFd, OneShot>,
    /// The events of the current wait (mio over kqueue reports read and
    /// write separately); reused across waits.
    batch: Batch,
    waker: Arc<MioWake>,
}

struct MioWake(::mio::Waker);

impl Wake for MioWake {
    fn wake(&self) -> io::Result<()> {
        self.0.wake()
    }
}

impl MioSelector {
    pub(crate) fn new() -> io::Result<MioSelector> {
        let poll = ::mio::Poll::new()?;
        let waker = Arc::new(MioWake(::mio::Waker::new(poll.registry(), WAKER_TOKEN)?));
        Ok(MioSelector {
            poll,
            mio_events: ::mio::Events::with_capacity(1),
            registrations: HashMap::new(),
            batch: Batch::default(),
            waker,
        })
    }
}

fn mio_token(fd: RawFd) -> io::Result<::mio::Token> {
    usize::try_from(fd)
        .map(::mio::Token)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid fd {fd}")))
}

fn mio_interest(interest: Interest) -> ::mio::Interest {
    match (interest.is_readable(), interest.is_writable()) {
        (true, true) => ::mio::Interest::READABLE | ::mio::Interest::WRITABLE,
        (true, false) => ::mio::Interest::READABLE,
        _ => ::mio::Interest::WRITABLE,
    }
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}

impl Selector for MioSelector {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        // Checked here, not left to the OS: kqueue's EV_ADD silently updates
        // an existing registration instead of failing.
        if self.registrations.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        self.poll.registry().register(
            &mut SourceFd(&fd),
            mio_token(fd)?,
            mio_interest(interest),
        )?;
        self.registrations.insert(fd, OneShot::armed(token));
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let reg = self
            .registrations
            .get_mut(&fd)
            .ok_or_else(|| not_registered(fd))?;
        // Re-registering is what makes a still-ready fd report again; arming
        // the flag alone would wait for an edge that may never come.
        self.poll.registry().reregister(
            &mut SourceFd(&fd),
            mio_token(fd)?,
            mio_interest(interest),
        )?;
        reg.arm(token);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        if self.registrations.remove(&fd).is_none() {
            return Err(not_registered(fd));
        }
        // Our state is gone either way; an error here (say, the fd was
        // already closed) is still worth reporting to the caller.
        self.poll.registry().deregister(&mut SourceFd(&fd))
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        if self.mio_events.capacity() != events.capacity() {
            self.mio_events = ::mio::Events::with_capacity(events.capacity());
        }
        // A batch made only of swallowed events is not a reason to return, so
        // we may poll again, for what is left of the timeout.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut remaining = timeout;
        loop {
            match self.poll.poll(&mut self.mio_events, remaining) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(err) => return Err(err),
            }
            let mut woken = false;
            for mio_event in self.mio_events.iter() {
                if mio_event.token() == WAKER_TOKEN {
                    // mio's waker needs no draining.
                    woken = true;
                    continue;
                }
                let fd = mio_event.token().0 as RawFd;
                let Some(reg) = self.registrations.get_mut(&fd) else {
                    continue;
                };
                // A closed direction or an error makes the next read or
                // write return (EOF or the error), so they count as both.
                let readable =
                    mio_event.is_readable() || mio_event.is_read_closed() || mio_event.is_error();
                let writable =
                    mio_event.is_writable() || mio_event.is_write_closed() || mio_event.is_error();
                if !readable && !writable {
                    // Nothing we can tell the caller (a priority-only edge,
                    // say); keep the registration armed.
                    continue;
                }
                self.batch.record(fd, reg, readable, writable);
            }
            self.batch.deliver(events, &mut self.registrations);
            let timed_out = self.mio_events.is_empty();
            if !events.is_empty() || woken || timed_out {
                return Ok(());
            }
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(());
                    }
                    remaining = Some(deadline - now);
                }
                // No timeout, or one so long that the deadline overflowed.
                None => remaining = None,
            }
        }
    }

    fn waker(&self) -> Waker {
        Waker::new(self.waker.clone())
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Mio
    }
}
