//! The readiness contract of Portcullis, and one backend per OS mechanism.
//!
//! A server with thousands of sockets cannot block in `read` on any one of
//! them. Instead it asks the kernel: *which of these descriptors can I read or
//! write without blocking?* Every OS answers that question with a different
//! system call — `poll(2)` everywhere, `epoll(7)` on Linux, `kqueue(2)` on the
//! BSDs and macOS — and this crate hides the differences behind one small
//! interface, [`Selector`], with one file per mechanism:
//!
//! | file        | mechanism            | runs on            | cost of one wait        |
//! |-------------|----------------------|--------------------|-------------------------|
//! | `poll.rs`   | `poll(2)`            | every Unix         | O(registered fds)       |
//! | `epoll.rs`  | `epoll_wait(2)`      | Linux, Android     | O(ready fds)            |
//! | `kqueue.rs` | `kevent(2)`          | macOS, BSDs        | O(ready fds)            |
//! | `mio.rs`    | the `mio` crate      | wherever mio runs  | mio's own backend's     |
//! | `uring.rs`  | `io_uring` poll ops  | Linux 5.11+        | O(ready fds), and the re-arms ride along in the same call |
//!
//! # The contract: one-shot readiness
//!
//! Backends disagree about *when* they report readiness. `poll` is
//! level-triggered (it reports a readable socket on every call until you have
//! read everything), `epoll` and `kqueue` can be either, and `mio` is
//! edge-triggered only. A server written against "whatever the backend does"
//! behaves differently per OS, so this crate fixes one rule and every backend
//! honours it:
//!
//! > **A registration is one-shot.** After the backend reports an [`Event`] for
//! > a token, that registration is *disarmed*: it produces no further events
//! > until you call [`Selector::reregister`] with the interest you want next.
//!
//! Why one-shot rather than edge- or level-triggered?
//!
//! * It can be implemented exactly, not approximately, on every mechanism:
//!   `EPOLLONESHOT`, `EV_DISPATCH`, clearing a `pollfd`, and a flag in front of
//!   mio. (The epoll backend uses such a flag too, in front of level-triggered
//!   epoll, so that re-arming with an unchanged interest costs no system call.) Edge-triggering cannot be emulated on `poll` without seeing every
//!   `read` return `EAGAIN`; level-triggering cannot be emulated on `mio`.
//! * It matches how a connection state machine thinks: *handle the event,
//!   decide what you want next (read? write? both? nothing because the peer is
//!   not draining?), say so.* Back-pressure is simply re-arming without
//!   [`Interest::READABLE`].
//! * A registration re-armed while the descriptor is already ready reports at
//!   the next wait, so the user never has to drain until `EAGAIN` to be safe.
//!   Draining is still the efficient thing to do.
//!
//! The other rules:
//!
//! * **Spurious events are allowed.** An event means "try the operation"; the
//!   operation may still return `WouldBlock`, which is not an error.
//! * **Errors and hang-ups are reported as readiness**, `readable` and/or
//!   `writable`, even for an interest the registration did not ask for, so
//!   that the next `read` or `write` returns the error (or end of file)
//!   through the normal path. Treat the flags as hints of what to try. A
//!   peer's half-close (FIN) is reported only to a registration that asked
//!   for `READABLE`: it is a standing condition, and reporting it to a
//!   write-only registration would wake every wait until the peer reads.
//! * **One descriptor, one registration.** Registering an fd twice is an error;
//!   deregister it before closing it (a closed fd silently leaves `epoll`'s set
//!   but stays in `poll`'s).
//! * **A selector belongs to one thread.** Only its [`Waker`] may be used from
//!   other threads: it makes the owner's current or next `wait` return early.
//!   Wake-ups are not reported as events; `wait` simply returns.
//! * **`wait` returns early on signals** (`EINTR`) with no events, so the caller
//!   can look at its shutdown flag.
//!
//! Every backend is checked against these rules by one shared test suite
//! (`tests/conformance.rs`).

#![deny(unsafe_op_in_unsafe_fn)]

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

#[macro_use]
mod sys;
mod oneshot;
mod waker;

#[cfg(with_epoll)]
mod epoll;
#[cfg(with_kqueue)]
mod kqueue;
#[cfg(feature = "mio")]
mod mio;
#[cfg(all(feature = "poll", unix))]
mod poll;
#[cfg(with_uring)]
mod uring;

pub use waker::Waker;

#[cfg(not(any(
    all(feature = "poll", unix),
    with_epoll,
    with_kqueue,
    with_uring,
    feature = "mio"
)))]
compile_error!(
    "no reactor backend is compiled for this target: enable a backend feature \
     (poll, epoll, kqueue, mio or uring) whose mechanism this OS has"
);

/// Identifies a registration. The selector hands it back in every [`Event`];
/// it means nothing to the selector itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// What a registration waits for: readable, writable, or both.
///
/// There is deliberately no "empty" interest: a registration that waits for
/// nothing should be deregistered, and making it unrepresentable removes a
/// class of "why does this connection never wake up" bugs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    const READ_BIT: u8 = 0b01;
    const WRITE_BIT: u8 = 0b10;

    /// Wake when a read would not block (data, end of file, or an error).
    pub const READABLE: Interest = Interest(Self::READ_BIT);
    /// Wake when a write would not block (buffer space, or an error).
    pub const WRITABLE: Interest = Interest(Self::WRITE_BIT);
    /// Both of the above.
    pub const BOTH: Interest = Interest(Self::READ_BIT | Self::WRITE_BIT);

    /// Builds an interest from two flags; `None` when both are false.
    pub const fn from_flags(readable: bool, writable: bool) -> Option<Interest> {
        match (readable, writable) {
            (true, true) => Some(Self::BOTH),
            (true, false) => Some(Self::READABLE),
            (false, true) => Some(Self::WRITABLE),
            (false, false) => None,
        }
    }

    pub const fn is_readable(self) -> bool {
        self.0 & Self::READ_BIT != 0
    }

    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITE_BIT != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE | WRITABLE"),
            (true, false) => f.write_str("READABLE"),
            _ => f.write_str("WRITABLE"),
        }
    }
}

/// One readiness report: the token of a registration and what it is ready for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub token: Token,
    pub readable: bool,
    pub writable: bool,
}

/// The buffer `wait` fills. Its capacity bounds how many events one wait
/// returns; the rest are reported by the next wait.
#[derive(Debug)]
pub struct Events {
    list: Vec<Event>,
    capacity: usize,
}

impl Events {
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events {
            list: Vec::with_capacity(capacity),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The event at `index`, for callers that cannot hold the borrow of
    /// an iterator while handling each event.
    pub fn get(&self, index: usize) -> Option<Event> {
        self.list.get(index).copied()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Used by backends. Returns false (and drops the event) when full.
    pub(crate) fn push(&mut self, event: Event) -> bool {
        if self.list.len() < self.capacity {
            self.list.push(event);
            true
        } else {
            false
        }
    }

    #[cfg_attr(not(feature = "poll"), allow(dead_code))]
    pub(crate) fn is_full(&self) -> bool {
        self.list.len() >= self.capacity
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// The interface every backend implements. See the crate documentation for
/// the rules (one-shot, spurious events, errors as readiness, one thread).
pub trait Selector: Send {
    /// Starts watching `fd` for `interest`; events carry `token`.
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Re-arms a registration (after an event disarmed it), possibly with a new
    /// interest or token. Also valid on a registration that is still armed.
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`. Call it before closing the descriptor.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;

    /// Clears `events`, then blocks until at least one registration is ready,
    /// the waker fires, a signal arrives, or `timeout` passes (`None`: no
    /// limit; zero: do not block).
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle other threads can use to interrupt `wait`.
    fn waker(&self) -> Waker;

    /// Which backend this is.
    fn kind(&self) -> BackendKind;
}

/// The backends this crate knows about, compiled in or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Poll,
    Epoll,
    Kqueue,
    Mio,
    Uring,
}

impl BackendKind {
    /// Every backend, compiled in or not, best first. `uring` comes after
    /// the native O(ready) mechanism: it is the newer path, and it is often
    /// switched off (containers, hardened kernels), so it is chosen when
    /// asked for by name.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Epoll,
        BackendKind::Kqueue,
        BackendKind::Uring,
        BackendKind::Mio,
        BackendKind::Poll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Poll => "poll",
            BackendKind::Epoll => "epoll",
            BackendKind::Kqueue => "kqueue",
            BackendKind::Mio => "mio",
            BackendKind::Uring => "uring",
        }
    }

    /// Parses a backend name, whether or not it is compiled in.
    pub fn from_name(name: &str) -> Option<BackendKind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether this build contains the backend (its cargo feature is on and
    /// the OS has the mechanism).
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Poll => cfg!(all(feature = "poll", unix)),
            BackendKind::Epoll => cfg!(with_epoll),
            BackendKind::Kqueue => cfg!(with_kqueue),
            BackendKind::Mio => cfg!(feature = "mio"),
            BackendKind::Uring => cfg!(with_uring),
        }
    }

    /// The backends compiled into this build, best first.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|k| k.is_compiled()).collect()
    }

    /// Whether this backend can run here, and if not, why. Being compiled
    /// in is not enough for `uring`: the running kernel may be too old, or
    /// forbid io_uring (`kernel.io_uring_disabled`, a seccomp filter), so it
    /// is probed once, by setting up a small ring, and the answer is kept.
    pub fn availability(self) -> Result<(), String> {
        if !self.is_compiled() {
            return Err(format!(
                "backend `{}` is not compiled into this build",
                self.name()
            ));
        }
        match self {
            #[cfg(with_uring)]
            BackendKind::Uring => {
                static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
                PROBE.get_or_init(uring::probe).clone()
            }
            _ => Ok(()),
        }
    }

    /// The backends that are compiled in and can run on this machine, best
    /// first.
    pub fn available() -> Vec<BackendKind> {
        Self::available_by(|kind| kind.availability())
    }

    /// [`available`](Self::available) with the check injected, so that a
    /// test can make a backend unavailable.
    pub fn available_by(check: impl Fn(BackendKind) -> Result<(), String>) -> Vec<BackendKind> {
        Self::compiled()
            .into_iter()
            .filter(|&kind| check(kind).is_ok())
            .collect()
    }

    /// The best backend that can run here: the OS's native O(ready)
    /// mechanism when compiled in, then uring, mio, poll. A backend whose
    /// probe fails is never chosen.
    pub fn best() -> BackendKind {
        Self::best_by(|kind| kind.availability())
    }

    /// [`best`](Self::best) with the check injected.
    pub fn best_by(check: impl Fn(BackendKind) -> Result<(), String>) -> BackendKind {
        // poll cannot fail to run where it is compiled; the crate refuses
        // to build with no backend at all.
        Self::available_by(check)
            .first()
            .copied()
            .unwrap_or_else(|| Self::compiled()[0])
    }

    /// Opens a selector of this kind, or explains why it is not available.
    pub fn open(self) -> io::Result<Box<dyn Selector>> {
        match self {
            #[cfg(all(feature = "poll", unix))]
            BackendKind::Poll => Ok(Box::new(poll::PollSelector::new()?)),
            #[cfg(with_epoll)]
            BackendKind::Epoll => Ok(Box::new(epoll::EpollSelector::new()?)),
            #[cfg(with_kqueue)]
            BackendKind::Kqueue => Ok(Box::new(kqueue::KqueueSelector::new()?)),
            #[cfg(feature = "mio")]
            BackendKind::Mio => Ok(Box::new(mio::MioSelector::new()?)),
            #[cfg(with_uring)]
            BackendKind::Uring => match uring::UringSelector::new() {
                Ok(selector) => Ok(Box::new(selector)),
                Err(err) => Err(io::Error::new(
                    err.kind(),
                    format!(
                        "backend `uring` cannot run on this machine: {err} (available: {})",
                        available_names()
                    ),
                )),
            },
            #[allow(unreachable_patterns)]
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "backend `{}` is not compiled into this build (available: {})",
                    other.name(),
                    available_names()
                ),
            )),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// "epoll, uring, mio, poll": the backends compiled in that can run here,
/// for error messages and `--help`.
pub fn available_names() -> String {
    BackendKind::available()
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a name given by a user into a compiled backend, with an error that
/// lists the choices.
pub fn parse_backend(name: &str) -> Result<BackendKind, String> {
    parse_backend_by(name, |kind| kind.availability())
}

/// [`parse_backend`] with the availability check injected.
pub fn parse_backend_by(
    name: &str,
    check: impl Fn(BackendKind) -> Result<(), String> + Copy,
) -> Result<BackendKind, String> {
    let names = || {
        BackendKind::available_by(check)
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match BackendKind::from_name(name) {
        Some(kind) if !kind.is_compiled() => Err(format!(
            "backend `{}` is not compiled into this build; available: {}",
            kind.name(),
            names()
        )),
        Some(kind) => match check(kind) {
            Ok(()) => Ok(kind),
            Err(why) => Err(format!(
                "backend `{}` cannot run on this machine: {why}; available: {}",
                kind.name(),
                names()
            )),
        },
        None => Err(format!("unknown backend `{name}`; available: {}", names())),
    }
}

/// Converts a wait timeout to whole milliseconds for `poll`/`epoll_wait`,
/// rounding *up* so that a 0.3 ms timer does not turn into a busy loop of
/// zero-timeout waits. `None` becomes -1 (block forever).
#[cfg_attr(not(any(feature = "poll", with_epoll)), allow(dead_code))]
pub(crate) fn timeout_to_millis(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_has_no_empty_value() {
        assert_eq!(Interest::from_flags(false, false), None);
        assert_eq!(Interest::from_flags(true, true), Some(Interest::BOTH));
        assert_eq!(Interest::READABLE | Interest::WRITABLE, Interest::BOTH);
        assert!(Interest::BOTH.is_readable() && Interest::BOTH.is_writable());
        assert!(!Interest::READABLE.is_writable());
    }

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_to_millis(None), -1);
        assert_eq!(timeout_to_millis(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_to_millis(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_to_millis(Some(Duration::from_millis(7))), 7);
        assert_eq!(
            timeout_to_millis(Some(Duration::from_secs(u64::MAX))),
            libc::c_int::MAX
        );
    }

    #[test]
    fn backend_names_round_trip_and_unknown_names_list_the_choices() {
        for kind in BackendKind::ALL {
            assert_eq!(BackendKind::from_name(kind.name()), Some(kind));
        }
        let err = parse_backend("nosuch").unwrap_err();
        assert!(err.contains("unknown backend `nosuch`"), "{err}");
        assert!(err.contains(&available_names()), "{err}");
    }

    #[test]
    fn the_best_backend_is_compiled() {
        assert!(BackendKind::best().is_compiled());
    }

    /// The refusal path, with the probe forced to fail: the best backend
    /// skips the failing one, and asking for it by name gives the reason and
    /// the backends that can run.
    #[test]
    fn a_backend_whose_probe_fails_is_never_chosen_and_is_refused_with_the_reason() {
        for broken in BackendKind::compiled() {
            let check = |kind: BackendKind| {
                if kind == broken {
                    Err("io_uring_setup is not permitted (forced by a test)".to_string())
                } else {
                    kind.availability()
                }
            };
            if BackendKind::available_by(check).is_empty() {
                continue; // the only backend of this build
            }
            assert_ne!(BackendKind::best_by(check), broken);
            assert!(!BackendKind::available_by(check).contains(&broken));
            let err = parse_backend_by(broken.name(), check).unwrap_err();
            assert!(
                err.contains(&format!("backend `{broken}` cannot run on this machine"))
                    && err.contains("forced by a test")
                    && err.contains("available: "),
                "{err}"
            );
            let listed = err.rsplit("available: ").next().unwrap();
            assert!(!listed.split(", ").any(|n| n == broken.name()), "{err}");
        }
    }

    /// When the best backend itself fails its probe, the next one is chosen.
    #[test]
    fn the_best_backend_falls_back_past_a_failing_probe() {
        let compiled = BackendKind::compiled();
        if compiled.len() < 2 {
            return;
        }
        let first = compiled[0];
        let check = |kind: BackendKind| match kind == first {
            true => Err("forced".to_string()),
            false => Ok(()),
        };
        assert_eq!(BackendKind::best_by(check), compiled[1]);
    }

    #[test]
    fn events_stop_at_capacity() {
        let mut events = Events::with_capacity(2);
        let e = Event {
            token: Token(1),
            readable: true,
            writable: false,
        };
        assert!(events.push(e));
        assert!(events.push(e));
        assert!(!events.push(e));
        assert_eq!(events.len(), 2);
        assert!(events.is_full());
    }
}
