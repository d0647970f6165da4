//! The `kqueue(2)` backend: the O(ready) readiness interface of macOS and
//! the BSDs.
//!
//! Like `epoll`, a kqueue keeps the interest list in the kernel and a wait
//! costs O(ready). Unlike `epoll`, it does not watch *descriptors* but
//! *(descriptor, filter)* pairs, called knotes: `EVFILT_READ` and
//! `EVFILT_WRITE` on the same socket are two independent registrations, each
//! with its own flags and its own events. The one idea to take away: **a
//! kqueue registration is per filter, our contract is per descriptor, and
//! this file is the bridge** — it adds and deletes one knote per wanted
//! direction, and folds the knotes' events back into one [`Event`] per
//! descriptor.
//!
//! One-shot semantics use `EV_DISPATCH`: after delivering an event, the kernel
//! disables that knote until it is enabled again (`EV_ENABLE`, here together
//! with `EV_ADD` so that one change both creates and re-arms). We leave out
//! `EV_CLEAR` on purpose: it would make the knote edge-triggered, which
//! buys nothing once the knote disables itself after each event, and without
//! it a knote re-enabled while its descriptor is still ready is reported at
//! the next wait — the re-arm rule of the contract. Because dispatch is per
//! knote, a registration for both directions whose read knote fired still
//! has an armed write knote; an `armed` flag per descriptor swallows that
//! knote's late event (which also disables it) until `reregister`.
//!
//! Changes are submitted with `EV_RECEIPT`, which makes the kernel answer
//! every change with its own status instead of failing the whole call at the
//! first error, and never lets a change call drain pending events.
//!
//! The waker is an `EVFILT_USER` event where the OS has one (macOS, FreeBSD,
//! DragonFly): no extra descriptor, triggered from any thread with
//! `NOTE_TRIGGER`, reset by `EV_CLEAR` when delivered. Elsewhere it is the
//! pipe of [`WakeFd`](crate::waker::WakeFd), registered level-triggered.
//!
//! This file cannot be built on Linux; CI builds and tests it on macOS and
//! FreeBSD.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::oneshot::{Batch, OneShot};
use crate::{BackendKind, Events, Interest, Selector, Token, Waker};

// The kevent field types differ between systems (NetBSD uses u32 where the
// others use i16/u16); these aliases name them once.
#[cfg(target_os = "netbsd")]
type Filter = u32;
#[cfg(not(target_os = "netbsd"))]
type Filter = i16;
#[cfg(target_os = "netbsd")]
type Flags = u32;
#[cfg(not(target_os = "netbsd"))]
type Flags = u16;

/// How a registration's knotes are (re-)armed: create or update, enable, and
/// disable again after one event.
const ARM: Flags = libc::EV_ADD | libc::EV_ENABLE | libc::EV_DISPATCH;

/// The kqueue descriptor. Shared with the waker, so a `Waker` that outlives
/// its selector never writes to a closed (and possibly reused) descriptor.
struct KqueueFd(RawFd);

impl Drop for KqueueFd {
    fn drop(&mut self) {
        crate::sys::close_quietly(self.0);
    }
}

struct Registration {
    /// Which knotes we added: one per direction.
    interest: Interest,
    /// Token and armed flag; the read and the write knote of one descriptor
    /// firing in the same wait become one `Event` (see `oneshot`).
    delivery: OneShot,
}

impl AsMut<OneShot> for Registration {
    fn as_mut(&mut self) -> &mut OneShot {
        &mut self.delivery
    }
}

pub(crate) struct KqueueSelector {
    kq: Arc<KqueueFd>,
    registrations: HashMap<RawFd, Registration>,
    /// Reused for every `kevent` wait, so waiting allocates nothing.
    buffer: Vec<libc::kevent>,
    /// The events of the current wait; reused across waits.
    batch: Batch,
    wake: WakeSource,
}

// SAFETY: `libc::kevent` is not `Send` only because of its `udata` pointer.
// This backend never sets `udata` (every kevent starts zeroed, i.e. null)
// and never dereferences it, so moving the buffer to another thread moves
// nothing but integers.
unsafe impl Send for KqueueSelector {}

/// A kevent with every field zero, ready to be filled in.
fn zeroed_kevent() -> libc::kevent {
    // SAFETY: `kevent` consists of integers, a `udata` pointer and, on some
    // systems, an array of integers; all-zero bytes are a valid value for
    // each (a null pointer for `udata`).
    unsafe { std::mem::zeroed() }
}

/// Builds one change. `as _` because `ident` is `uintptr_t` everywhere but
/// the integer types of the other fields vary by system.
fn change(ident: usize, filter: Filter, flags: Flags, fflags: u32) -> libc::kevent {
    let mut kev = zeroed_kevent();
    kev.ident = ident as _;
    kev.filter = filter as _;
    kev.flags = flags as _;
    kev.fflags = fflags as _;
    kev
}

fn timespec(duration: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: duration.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: duration.subsec_nanos() as _,
    }
}

/// Submits up to two changes and returns the first failure whose errno is
/// not in `ignore`.
fn apply(kq: RawFd, changes: &mut [libc::kevent], ignore: &[i32]) -> io::Result<()> {
    let mut receipts = [zeroed_kevent(), zeroed_kevent()];
    let receipts = receipts
        .get_mut(..changes.len())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "too many kqueue changes"))?;
    for kev in changes.iter_mut() {
        kev.flags |= libc::EV_RECEIPT;
    }
    // With EV_RECEIPT each change produces exactly one receipt, so a receipt
    // buffer of the same length leaves no room for real events; the zero
    // timeout guarantees the call never blocks whatever the kernel does.
    let no_wait = timespec(Duration::ZERO);
    // SAFETY: `changes` and `receipts` are distinct live arrays of exactly
    // the lengths passed; the kernel reads the first and writes at most that
    // many kevents into the second; `no_wait` outlives the call.
    let n = unsafe {
        syscall!(kevent(
            kq,
            changes.as_ptr(),
            changes.len() as _,
            receipts.as_mut_ptr(),
            receipts.len() as _,
            &no_wait
        ))?
    };
    for receipt in &receipts[..(n as usize).min(receipts.len())] {
        // A receipt always has EV_ERROR set; `data` is 0 on success.
        if receipt.flags & libc::EV_ERROR != 0 && receipt.data != 0 {
            let errno = receipt.data as i32;
            if !ignore.contains(&errno) {
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
    }
    Ok(())
}

/// One change per direction in `interest`, each with `flags`.
fn changes_for(fd: RawFd, interest: Interest, flags: Flags, out: &mut Vec<libc::kevent>) {
    let ident = fd as usize;
    if interest.is_readable() {
        out.push(change(ident, libc::EVFILT_READ, flags, 0));
    }
    if interest.is_writable() {
        out.push(change(ident, libc::EVFILT_WRITE, flags, 0));
    }
}

/// What a delivered kevent means for the caller, `None` for a filter this
/// backend does not register.
fn readiness(kev: &libc::kevent) -> Option<(bool, bool)> {
    let eof = kev.flags & libc::EV_EOF != 0;
    if kev.filter == libc::EVFILT_READ {
        // EOF on the read filter: the peer sent FIN, so the next read returns
        // 0. `fflags` then holds the socket error, if there is one, which a
        // write would return too.
        Some((true, eof && kev.fflags != 0))
    } else if kev.filter == libc::EVFILT_WRITE {
        // EOF on the write filter: the peer is gone, so a read returns EOF or
        // the error as well.
        Some((eof, true))
    } else {
        None
    }
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}

impl KqueueSelector {
    pub(crate) fn new() -> io::Result<KqueueSelector> {
        // SAFETY: no arguments; the returned fd is owned by `KqueueFd`.
        let fd = unsafe { syscall!(kqueue())? };
        // Owned from here on, so the error paths below close it.
        let kq = Arc::new(KqueueFd(fd));
        // macOS has no kqueue1(O_CLOEXEC); set the flag afterwards.
        // SAFETY: `fd` is the open kqueue just created; no pointers.
        unsafe { syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))? };
        let wake = WakeSource::new(&kq)?;
        Ok(KqueueSelector {
            kq,
            registrations: HashMap::new(),
            buffer: Vec::new(),
            batch: Batch::default(),
            wake,
        })
    }
}

impl Selector for KqueueSelector {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid fd {fd}"),
            ));
        }
        // Checked here because EV_ADD on an existing knote silently updates it.
        if self.registrations.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        let mut changes = Vec::with_capacity(2);
        changes_for(fd, interest, ARM, &mut changes);
        if let Err(err) = apply(self.kq.0, &mut changes, &[]) {
            // One knote may have been added before the other failed; remove
            // whatever is there so a failed register leaves nothing behind.
            let mut undo = Vec::with_capacity(2);
            changes_for(fd, interest, libc::EV_DELETE, &mut undo);
            let _ = apply(self.kq.0, &mut undo, &[libc::ENOENT]);
            return Err(err);
        }
        self.registrations.insert(
            fd,
            Registration {
                interest,
                delivery: OneShot::armed(token),
            },
        );
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let reg = self
            .registrations
            .get_mut(&fd)
            .ok_or_else(|| not_registered(fd))?;
        let mut changes = Vec::with_capacity(2);
        // Re-arm what is wanted (EV_ADD also creates a knote for a direction
        // that is new) ...
        changes_for(fd, interest, ARM, &mut changes);
        // ... and delete the knote of a direction no longer wanted, so it
        // cannot wake us for something the caller did not ask for.
        let dropped = Interest::from_flags(
            reg.interest.is_readable() && !interest.is_readable(),
            reg.interest.is_writable() && !interest.is_writable(),
        );
        if let Some(dropped) = dropped {
            changes_for(fd, dropped, libc::EV_DELETE, &mut changes);
        }
        // ENOENT: the knote to delete is already gone, which is what we want.
        apply(self.kq.0, &mut changes, &[libc::ENOENT])?;
        reg.interest = interest;
        reg.delivery.arm(token);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.registrations
            .remove(&fd)
            .ok_or_else(|| not_registered(fd))?;
        // Both directions, whatever the interest was: a reregister that
        // failed half-way may have left a knote we did not record.
        let mut changes = Vec::with_capacity(2);
        changes_for(fd, Interest::BOTH, libc::EV_DELETE, &mut changes);
        apply(self.kq.0, &mut changes, &[libc::ENOENT])
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let capacity = events.capacity().min(libc::c_int::MAX as usize);
        if self.buffer.len() < capacity {
            self.buffer.resize(capacity, zeroed_kevent());
        }
        // A batch made only of swallowed events is not a reason to return, so
        // we may wait again, for what is left of the timeout.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut remaining = timeout;
        loop {
            let ts = remaining.map(timespec);
            let ts_ptr = ts
                .as_ref()
                .map_or(ptr::null(), |ts| ts as *const libc::timespec);
            // SAFETY: no changelist (null, 0); `buffer` holds at least
            // `capacity` initialised kevents the kernel may overwrite;
            // `ts_ptr` is null or points at `ts`, which outlives the call.
            let n = match unsafe {
                syscall!(kevent(
                    self.kq.0,
                    ptr::null(),
                    0,
                    self.buffer.as_mut_ptr(),
                    capacity as _,
                    ts_ptr
                ))
            } {
                Ok(n) => n as usize,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(err) => return Err(err),
            };
            let mut woken = false;
            for kev in &self.buffer[..n.min(capacity)] {
                if self.wake.is_wake(kev) {
                    self.wake.reset();
                    woken = true;
                    continue;
                }
                // EV_ERROR only answers changes, and this call submits none.
                if kev.flags & libc::EV_ERROR != 0 {
                    continue;
                }
                let fd = kev.ident as RawFd;
                let Some(reg) = self.registrations.get_mut(&fd) else {
                    continue;
                };
                let Some((readable, writable)) = readiness(kev) else {
                    continue;
                };
                // A knote of a registration that already fired is
                // swallowed here; EV_DISPATCH has disabled it too by now.
                self.batch.record(fd, &mut reg.delivery, readable, writable);
            }
            self.batch.deliver(events, &mut self.registrations);
            if !events.is_empty() || woken || n == 0 {
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
        self.wake.waker()
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Kqueue
    }
}

/// The ident of the `EVFILT_USER` waker. User events have their own
/// namespace, so this cannot collide with a descriptor.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
const WAKE_IDENT: usize = 0;

/// The waker as an `EVFILT_USER` knote on the kqueue itself.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
struct WakeSource {
    kq: Arc<KqueueFd>,
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
impl WakeSource {
    fn new(kq: &Arc<KqueueFd>) -> io::Result<WakeSource> {
        // EV_CLEAR: delivering the event resets it, so several triggers
        // before a wait collapse into one and nothing needs draining.
        let mut add = [change(
            WAKE_IDENT,
            libc::EVFILT_USER,
            libc::EV_ADD | libc::EV_CLEAR,
            0,
        )];
        apply(kq.0, &mut add, &[])?;
        Ok(WakeSource { kq: kq.clone() })
    }

    fn is_wake(&self, kev: &libc::kevent) -> bool {
        kev.filter == libc::EVFILT_USER && kev.ident == WAKE_IDENT
    }

    fn reset(&self) {}

    fn waker(&self) -> Waker {
        Waker::new(self.kq.clone())
    }
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
impl crate::waker::Wake for KqueueFd {
    fn wake(&self) -> io::Result<()> {
        // Only `fflags` changes on an existing user knote; no EV_ADD needed.
        let mut trigger = [change(WAKE_IDENT, libc::EVFILT_USER, 0, libc::NOTE_TRIGGER)];
        apply(self.0, &mut trigger, &[])
    }
}

/// The waker as the read side of a pipe, on systems without `EVFILT_USER`.
#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
struct WakeSource {
    fd: Arc<crate::waker::WakeFd>,
}

#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
impl WakeSource {
    fn new(kq: &Arc<KqueueFd>) -> io::Result<WakeSource> {
        let fd = Arc::new(crate::waker::WakeFd::new()?);
        // Level-triggered and never dispatched: it stays readable, and keeps
        // firing, until `reset` drains it.
        let mut add = [change(
            fd.read_fd() as usize,
            libc::EVFILT_READ,
            libc::EV_ADD,
            0,
        )];
        apply(kq.0, &mut add, &[])?;
        Ok(WakeSource { fd })
    }

    fn is_wake(&self, kev: &libc::kevent) -> bool {
        kev.filter == libc::EVFILT_READ && kev.ident == self.fd.read_fd() as usize
    }

    fn reset(&self) {
        self.fd.drain();
    }

    fn waker(&self) -> Waker {
        Waker::new(self.fd.clone())
    }
}
