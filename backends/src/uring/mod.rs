//! The `io_uring` backend, used as a better epoll: readiness through
//! `IORING_OP_POLL_ADD`, one system call per loop turn.
//!
//! # Why
//!
//! With a one-shot epoll registration a ping-pong round trip costs four
//! system calls: `read`, `write`, `epoll_ctl` to re-arm, and `epoll_wait`.
//! The re-arm is pure bookkeeping. The epoll backend avoids it when the
//! interest does not change, by keeping the one-shot flag in user space over
//! a level-triggered registration (`epoll.rs`); but registering a new
//! connection, or switching between waiting to read and waiting to write,
//! is still one `epoll_ctl` each. `io_uring` removes the question: it
//! replaces *calls* with *entries* in a ring of memory shared with the
//! kernel. The program writes requests into the submission queue (SQ) and
//! reads results from the completion queue (CQ), and one `io_uring_enter`
//! both hands over every request written so far and waits for results.
//!
//! # The one idea
//!
//! **A re-arm is an SQ entry, not a system call.** `IORING_OP_POLL_ADD` is
//! one-shot exactly like the contract of this crate: it completes once, with
//! the `poll(2)` mask, when the descriptor is ready (at once if it already
//! is), and then it is gone. So `register` and `reregister` push a
//! `POLL_ADD`, `deregister` pushes a `POLL_REMOVE`, nothing is sent to the
//! kernel yet, and the next [`wait`](Selector::wait) submits them all
//! together with the wait in one `submit_and_wait`:
//!
//! ```text
//!   loop turn                         system calls
//!   ─────────                         ────────────
//!   handle events: read, write        read, write (the driver's own)
//!     re-arm A, re-arm B, drop C      none: three SQ entries
//!   wait                              io_uring_enter(to_submit = 3,
//!                                                    min_complete = 1,
//!                                                    timeout)
//! ```
//!
//! The timeout travels in the same call (`IORING_ENTER_EXT_ARG`, Linux 5.11),
//! so a turn with a timer costs no extra `IORING_OP_TIMEOUT` entry either.
//! `strace -f -e trace=io_uring_enter,epoll_ctl,epoll_wait` shows it: per
//! turn, one `io_uring_enter` here, whatever was registered, re-armed or
//! removed (docs/tour.md has a traced turn).
//!
//! # The details that make it exact
//!
//! * **Stale completions.** A `POLL_ADD` may complete after the registration
//!   it was for was changed or removed (the kernel raced us, or the
//!   `POLL_REMOVE` is still queued). Every `POLL_ADD` therefore carries a
//!   fresh `user_data` — the descriptor in the low 32 bits and a sequence
//!   number above — and a registration remembers the one it has in flight.
//!   A completion whose `user_data` is not the one in flight is dropped, so
//!   an old registration's readiness never reaches a new one on a reused
//!   descriptor number.
//! * **Changing the interest of an armed registration** removes the old poll
//!   and adds a new one (two entries, still no system call). Changing only
//!   the token costs nothing: tokens live in user space.
//! * **The waker** is an eventfd with a `POLL_ADD` of its own under a
//!   reserved `user_data`; when it completes, the eventfd is drained, the
//!   poll is re-queued for the next wait, and `wait` returns.
//! * **A full SQ** is submitted early (one extra `io_uring_enter`, without
//!   waiting) to make room; a full CQ is not lost either: with
//!   `IORING_FEAT_NODROP` the kernel keeps the overflow, flags it in the SQ
//!   ring, and an enter with `GETEVENTS` moves it back into the CQ once it has
//!   room, which `reap` does before it gives up. Completions beyond the
//!   caller's `Events` capacity simply stay in the CQ for the next wait.
//! * **A write-only wait on a half-closed socket** cannot be a `POLL_ADD`:
//!   the kernel adds `POLLRDHUP` to every io_uring poll, so it would
//!   complete at once, forever. Such a wait moves to a small epoll instance
//!   on the side, which the ring polls (`epoll_side.rs`).
//! * **Closing a descriptor does not cancel its poll**: the ring holds a
//!   reference to the open file. That is one more reason for the contract's
//!   "deregister before closing"; the `POLL_REMOVE` goes out with the next
//!   wait, which comes right after the close in a loop turn.
//!
//! Where io_uring is missing or forbidden (`kernel.io_uring_disabled`, a
//! seccomp filter, a kernel before 5.11), [`probe`] says why, and
//! `BackendKind::best()` never picks this backend.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

mod epoll_side;

use epoll_side::EpollSide;

use crate::waker::WakeFd;
use crate::{BackendKind, Event, Events, Interest, Selector, Token, Waker};

/// Submission queue entries. Re-arms beyond this in one turn cost an early
/// submit, not a failure.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: room for one turn's worth of readiness.
/// Beyond it the kernel keeps the overflow (`IORING_FEAT_NODROP`).
const CQ_ENTRIES: u32 = 8192;

/// `user_data` with the top bit set belongs to the selector itself.
const INTERNAL: u64 = 1 << 63;
/// The waker's poll.
const WAKER_DATA: u64 = INTERNAL;
/// A `POLL_REMOVE`'s own completion (only its failures are posted when the
/// kernel can skip successful ones).
const REMOVE_DATA: u64 = INTERNAL | 1;
/// The poll of the side epoll instance (`epoll_side.rs`).
const EPOLL_SIDE_DATA: u64 = INTERNAL | 2;
/// `in_flight` of a registration armed in the side epoll instance.
const ON_EPOLL_SIDE: u64 = INTERNAL | 3;
/// Sequence numbers stay below the internal bit.
const SEQUENCE_MASK: u32 = (1 << 31) - 1;

/// One registration.
#[derive(Clone, Copy, Debug)]
struct Registration {
    token: Token,
    interest: Interest,
    /// The `user_data` of the `POLL_ADD` in flight ([`ON_EPOLL_SIDE`] when
    /// armed in the side epoll instance); `None` once its completion was
    /// reported (disarmed, waiting for `reregister`).
    in_flight: Option<u64>,
    /// A write-only wait on a half-closed socket lives in the side epoll
    /// instance (`epoll_side.rs`).
    on_epoll_side: bool,
}

pub(crate) struct UringSelector {
    ring: IoUring,
    /// Indexed by descriptor: descriptors are small integers, and a vector
    /// lookup is cheaper than a hash on the hot path.
    registrations: Vec<Option<Registration>>,
    next_sequence: u32,
    wake_fd: Arc<WakeFd>,
    /// Whether `POLL_REMOVE` can be asked to post no completion on success.
    skip_success: bool,
    /// Completions taken out of the CQ early (to make room for a submit
    /// that met `EBUSY`), delivered by the next waits, oldest first.
    backlog: VecDeque<(u64, i32)>,
    /// Created the first time a write-only wait meets a half-closed peer.
    epoll_side: Option<EpollSide>,
    /// Whether the ring has a poll in flight for the side epoll descriptor.
    epoll_side_polled: bool,
}

impl UringSelector {
    pub(crate) fn new() -> io::Result<UringSelector> {
        Self::with_sizes(SQ_ENTRIES, CQ_ENTRIES)
    }

    /// A selector with rings of the given sizes (tests use tiny ones to
    /// force a full SQ and an overflowing CQ).
    pub(crate) fn with_sizes(sq_entries: u32, cq_entries: u32) -> io::Result<UringSelector> {
        let ring = build_ring(sq_entries, cq_entries).map_err(explain_setup_error)?;
        require_features(&ring)?;
        let skip_success = ring.params().is_feature_skip_cqe_on_success();
        let mut selector = UringSelector {
            ring,
            registrations: Vec::new(),
            next_sequence: 0,
            wake_fd: Arc::new(WakeFd::new()?),
            skip_success,
            backlog: VecDeque::new(),
            epoll_side: None,
            epoll_side_polled: false,
        };
        selector.queue_waker_poll()?;
        Ok(selector)
    }

    fn queue_waker_poll(&mut self) -> io::Result<()> {
        let fd = self.wake_fd.read_fd();
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(WAKER_DATA);
        self.push(entry)
    }

    /// Puts one entry in the SQ, submitting early when it is full.
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the entries this selector builds (POLL_ADD and
            // POLL_REMOVE) carry a descriptor, a mask and a user_data, and
            // point at no memory that would have to outlive the request.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                // The CQ overflowed and the kernel will take no more until
                // it is emptied: move its completions aside and retry.
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) => self.move_cq_to_backlog(),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn move_cq_to_backlog(&mut self) {
        for cqe in self.ring.completion() {
            self.backlog.push_back((cqe.user_data(), cqe.result()));
        }
    }

    fn slot(&mut self, fd: RawFd) -> io::Result<&mut Option<Registration>> {
        let index = usize::try_from(fd)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "negative descriptor"))?;
        if index >= self.registrations.len() {
            self.registrations.resize(index + 1, None);
        }
        Ok(&mut self.registrations[index])
    }

    /// Queues a `POLL_ADD` for `fd` under a fresh `user_data`, and returns it.
    fn queue_poll(&mut self, fd: RawFd, interest: Interest) -> io::Result<u64> {
        let sequence = self.next_sequence;
        self.next_sequence = (sequence + 1) & SEQUENCE_MASK;
        let user_data = ((sequence as u64) << 32) | fd as u32 as u64;
        let mut mask = 0;
        if interest.is_readable() {
            // As with epoll: the peer's FIN is news only to a reader.
            mask |= libc::POLLIN | libc::POLLRDHUP;
        }
        if interest.is_writable() {
            mask |= libc::POLLOUT;
        }
        let entry = opcode::PollAdd::new(types::Fd(fd), mask as u16 as u32)
            .build()
            .user_data(user_data);
        self.push(entry)?;
        Ok(user_data)
    }

    fn queue_remove(&mut self, user_data: u64) -> io::Result<()> {
        let mut entry = opcode::PollRemove::new(user_data)
            .build()
            .user_data(REMOVE_DATA);
        if self.skip_success {
            entry = entry.flags(squeue::Flags::SKIP_SUCCESS);
        }
        self.push(entry)
    }

    /// Turns one completion into an event, or drops it. Returns true when it
    /// was the waker.
    fn complete(&mut self, user_data: u64, result: i32, events: &mut Events) -> bool {
        if user_data == WAKER_DATA {
            self.wake_fd.drain();
            // Re-queued for the next wait; a push can only fail on a broken
            // ring, which the next submit reports.
            let _ = self.queue_waker_poll();
            return true;
        }
        if user_data == EPOLL_SIDE_DATA {
            self.epoll_side_polled = false;
            self.complete_epoll_side(events);
            return false;
        }
        if user_data & INTERNAL != 0 {
            return false; // a POLL_REMOVE's own result: nothing to report
        }
        let fd = (user_data & 0xffff_ffff) as u32 as usize;
        let Some(Some(reg)) = self.registrations.get_mut(fd) else {
            return false; // deregistered since
        };
        if reg.in_flight != Some(user_data) {
            return false; // stale: for a poll this registration replaced
        }
        let write_news = (libc::POLLOUT | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as i32;
        if result >= 0 && !reg.interest.is_readable() && result & write_news == 0 {
            // Only POLLRDHUP (or POLLIN), which the kernel adds to every
            // io_uring poll: the peer half-closed, and this registration
            // waits to write. Not news to it; wait in epoll instead.
            let added = reg.on_epoll_side;
            reg.on_epoll_side = true;
            reg.in_flight = Some(ON_EPOLL_SIDE);
            if let Err(err) = self.arm_on_epoll_side(fd as RawFd, added) {
                // Reported as both directions: the caller's write meets it.
                log_side_error(&err);
                if let Some(Some(reg)) = self.registrations.get_mut(fd) {
                    reg.in_flight = None;
                    events.push(Event {
                        token: reg.token,
                        readable: true,
                        writable: true,
                    });
                }
            }
            return false;
        }
        reg.in_flight = None;
        let has = |bits: libc::c_short| result >= 0 && result & bits as i32 != 0;
        // A failed poll (a negative result) is reported as both directions,
        // so that the caller's next read or write meets the error.
        let failed = result < 0;
        events.push(Event {
            token: reg.token,
            readable: failed || has(libc::POLLIN | libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR),
            writable: failed || has(libc::POLLOUT | libc::POLLHUP | libc::POLLERR),
        });
        false
    }

    fn arm_on_epoll_side(&mut self, fd: RawFd, added: bool) -> io::Result<()> {
        let side = match &mut self.epoll_side {
            Some(side) => side,
            None => self.epoll_side.insert(EpollSide::new()?),
        };
        side.arm_write(fd, added)?;
        self.poll_epoll_side()
    }

    /// Keeps one ring poll on the side epoll descriptor while it has members.
    fn poll_epoll_side(&mut self) -> io::Result<()> {
        let Some(side) = &self.epoll_side else {
            return Ok(());
        };
        if self.epoll_side_polled || !side.has_members() {
            return Ok(());
        }
        let entry = opcode::PollAdd::new(types::Fd(side.fd()), libc::POLLIN as u32)
            .build()
            .user_data(EPOLL_SIDE_DATA);
        self.push(entry)?;
        self.epoll_side_polled = true;
        Ok(())
    }

    /// The side epoll instance is readable: report its ready members.
    fn complete_epoll_side(&mut self, events: &mut Events) {
        let room = events.capacity() - events.len();
        let ready = match self.epoll_side.as_mut().map(|side| side.ready(room)) {
            Some(Ok(ready)) => ready,
            Some(Err(err)) => {
                log_side_error(&err);
                Vec::new()
            }
            None => Vec::new(),
        };
        for (fd, flags) in ready {
            let Some(Some(reg)) = self.registrations.get_mut(fd as usize) else {
                continue;
            };
            if !reg.on_epoll_side || reg.in_flight != Some(ON_EPOLL_SIDE) {
                continue;
            }
            reg.in_flight = None;
            let has = |bits: libc::c_int| flags & bits as u32 != 0;
            events.push(Event {
                token: reg.token,
                readable: has(libc::EPOLLHUP | libc::EPOLLERR),
                writable: has(libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR),
            });
        }
        // Members left ready (beyond `room`) make it readable again at once.
        if let Err(err) = self.poll_epoll_side() {
            log_side_error(&err);
        }
    }

    /// Moves completions into `events` until the CQ is empty or `events` is
    /// full. Returns whether the waker fired.
    fn reap(&mut self, events: &mut Events) -> io::Result<bool> {
        let mut woke = false;
        while !events.is_full() {
            let Some((user_data, result)) = self.backlog.pop_front() else {
                break;
            };
            woke |= self.complete(user_data, result, events);
        }
        while !events.is_full() {
            let next = self.ring.completion().next();
            match next {
                Some(cqe) => woke |= self.complete(cqe.user_data(), cqe.result(), events),
                // The CQ is empty, but the kernel may be holding an
                // overflow: an enter with GETEVENTS (which `submit` adds
                // when the overflow flag is up) moves it back.
                None if self.ring.submission().cq_overflow() => match self.ring.submit() {
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {}
                    Err(err) => return Err(err),
                },
                None => break,
            }
        }
        Ok(woke)
    }

    /// One `io_uring_enter`: submit what is queued and wait for a
    /// completion, at most `timeout`. Returns false on a signal.
    fn enter(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let submitter = self.ring.submitter();
        let result = match timeout {
            None => submitter.submit_and_wait(1),
            Some(t) if t.is_zero() => submitter.submit(),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                submitter.submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.raw_os_error() == Some(libc::ETIME) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(false),
            // The CQ must be emptied before the kernel takes more: `reap`
            // does that next.
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                self.move_cq_to_backlog();
                Ok(true)
            }
            Err(err) => Err(err),
        }
    }
}

impl Selector for UringSelector {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if self.slot(fd)?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("descriptor {fd} is already registered"),
            ));
        }
        let user_data = self.queue_poll(fd, interest)?;
        *self.slot(fd)? = Some(Registration {
            token,
            interest,
            in_flight: Some(user_data),
            on_epoll_side: false,
        });
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let Some(reg) = *self.slot(fd)? else {
            return Err(not_registered(fd));
        };
        if reg.on_epoll_side {
            return self.reregister_on_epoll_side(fd, reg, token, interest);
        }
        let in_flight = match reg.in_flight {
            // Still armed with the same interest: only the token changes,
            // and tokens live here, not in the kernel.
            Some(user_data) if reg.interest == interest => Some(user_data),
            Some(old) => {
                self.queue_remove(old)?;
                Some(self.queue_poll(fd, interest)?)
            }
            None => Some(self.queue_poll(fd, interest)?),
        };
        *self.slot(fd)? = Some(Registration {
            token,
            interest,
            in_flight,
            on_epoll_side: false,
        });
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(reg) = self.slot(fd)?.take() else {
            return Err(not_registered(fd));
        };
        if reg.on_epoll_side {
            if let Some(side) = &mut self.epoll_side {
                side.remove(fd)?;
            }
            return Ok(());
        }
        if let Some(user_data) = reg.in_flight {
            self.queue_remove(user_data)?;
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // What is already there (left over from a full `events`) is
        // reported without blocking, but the queued entries still go out.
        let mut woke = self.reap(events)?;
        if !events.is_empty() || woke {
            self.enter(Some(Duration::ZERO))?;
            self.reap(events)?;
            return Ok(());
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if !self.enter(left)? {
                return Ok(()); // a signal: the caller checks its flags
            }
            woke |= self.reap(events)?;
            // Completions that carried nothing (stale polls, removes) do
            // not end the wait early; the rest of the timeout still runs.
            let timed_out =
                left.is_some_and(|l| l.is_zero()) || deadline.is_some_and(|d| Instant::now() >= d);
            if !events.is_empty() || woke || timed_out {
                return Ok(());
            }
        }
    }

    fn waker(&self) -> Waker {
        Waker::new(self.wake_fd.clone())
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Uring
    }
}

impl UringSelector {
    /// `reregister` for a registration in the side epoll instance: a
    /// write-only wait stays there; one that wants to read goes back to the
    /// ring, where the peer's FIN is news.
    fn reregister_on_epoll_side(
        &mut self,
        fd: RawFd,
        reg: Registration,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        let in_flight = if !interest.is_readable() {
            if reg.in_flight.is_none() {
                self.arm_on_epoll_side(fd, true)?;
            }
            Some(ON_EPOLL_SIDE)
        } else {
            if let Some(side) = &mut self.epoll_side {
                side.remove(fd)?;
            }
            Some(self.queue_poll(fd, interest)?)
        };
        *self.slot(fd)? = Some(Registration {
            token,
            interest,
            in_flight,
            on_epoll_side: !interest.is_readable(),
        });
        Ok(())
    }
}

fn log_side_error(err: &io::Error) {
    // The backends crate has no logger; stderr is where a selector's
    // internal trouble can be seen.
    eprintln!("portcullis-backends: uring: the side epoll instance failed: {err}");
}

fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("descriptor {fd} is not registered"),
    )
}

/// A ring with cooperative task running (fewer interrupts, Linux 5.19) when
/// the kernel knows the flag, without it otherwise.
fn build_ring(sq_entries: u32, cq_entries: u32) -> io::Result<IoUring> {
    let cq_entries = cq_entries.max(sq_entries * 2);
    match IoUring::builder()
        .setup_cqsize(cq_entries)
        .setup_coop_taskrun()
        .build(sq_entries)
    {
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => IoUring::builder()
            .setup_cqsize(cq_entries)
            .build(sq_entries),
        other => other,
    }
}

/// What this backend needs beyond a ring: the timeout in the wait itself
/// and no lost completions, plus the two poll opcodes.
fn require_features(ring: &IoUring) -> io::Result<()> {
    let unsupported = |what: &str| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("io_uring on this kernel lacks {what}"),
        )
    };
    let params = ring.params();
    if !params.is_feature_ext_arg() {
        return Err(unsupported(
            "IORING_FEAT_EXT_ARG (a timeout on the wait itself, Linux 5.11)",
        ));
    }
    if !params.is_feature_nodrop() {
        return Err(unsupported(
            "IORING_FEAT_NODROP (no completion lost when the CQ overflows, Linux 5.5)",
        ));
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|err| unsupported(&format!("IORING_REGISTER_PROBE ({err})")))?;
    for (code, name) in [
        (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD"),
        (opcode::PollRemove::CODE, "IORING_OP_POLL_REMOVE"),
    ] {
        if !probe.is_supported(code) {
            return Err(unsupported(name));
        }
    }
    Ok(())
}

/// Turns a failed `io_uring_setup` into a sentence that names the likely
/// cause, for `--backend uring` and `portcullis backends`.
fn explain_setup_error(err: io::Error) -> io::Error {
    let why = match err.raw_os_error() {
        Some(libc::EPERM) => format!(
            "io_uring_setup is not permitted ({err}): kernel.io_uring_disabled is {}, \
             or a seccomp filter forbids it",
            std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        ),
        Some(libc::ENOSYS) => format!(
            "this kernel has no io_uring ({err}): older than Linux 5.1, built without \
             CONFIG_IO_URING, or a seccomp filter hides it"
        ),
        Some(libc::ENOMEM) => format!(
            "cannot allocate the io_uring rings ({err}): the locked-memory limit \
             (ulimit -l) may be too low"
        ),
        _ => format!("io_uring_setup failed: {err}"),
    };
    io::Error::new(err.kind(), why)
}

/// Whether this machine can run the backend, and if not, why: a small ring
/// is set up and its features checked, exactly as `open` would.
pub(crate) fn probe() -> Result<(), String> {
    UringSelector::with_sizes(4, 8)
        .map(drop)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn pairs(n: usize) -> Vec<(UnixStream, UnixStream)> {
        (0..n)
            .map(|_| {
                let (a, b) = UnixStream::pair().unwrap();
                a.set_nonblocking(true).unwrap();
                (a, b)
            })
            .collect()
    }

    /// Tiny rings: 300 registrations overflow an 8-entry SQ (early submits)
    /// and a 16-entry CQ (the kernel keeps the overflow); every ready
    /// registration is still reported exactly once.
    #[test]
    fn a_full_sq_and_an_overflowing_cq_lose_nothing() {
        let mut sel = UringSelector::with_sizes(8, 16).unwrap();
        let mut pairs = pairs(300);
        for (i, (a, b)) in pairs.iter_mut().enumerate() {
            b.write_all(b"x").unwrap();
            sel.register(a.as_raw_fd(), Token(i), Interest::READABLE)
                .unwrap();
        }
        let mut seen = vec![0u32; pairs.len()];
        let mut events = Events::with_capacity(64);
        let until = Instant::now() + Duration::from_secs(5);
        while seen.contains(&0) && Instant::now() < until {
            sel.wait(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            for event in &events {
                assert!(event.readable, "{event:?}");
                seen[event.token.0] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }

    /// A poll that completes while its registration is being replaced
    /// reaches nobody: the descriptor is deregistered and registered again
    /// (the same number, as after a close and an accept), and only the new
    /// registration's token is ever reported.
    #[test]
    fn a_completion_for_an_old_registration_is_dropped() {
        let mut sel = UringSelector::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"x").unwrap();
        let fd = a.as_raw_fd();
        sel.register(fd, Token(1), Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(8);
        // Submit the first poll: it completes at once (readable) but is not
        // reaped yet, because the events buffer is not looked at...
        sel.enter(Some(Duration::ZERO)).unwrap();
        // ...then the registration is replaced.
        sel.deregister(fd).unwrap();
        sel.register(fd, Token(2), Interest::READABLE).unwrap();
        let mut tokens = Vec::new();
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            sel.wait(&mut events, Some(Duration::from_millis(20)))
                .unwrap();
            tokens.extend(events.iter().map(|e| e.token.0));
        }
        assert_eq!(tokens, vec![2]);
    }

    /// The peer half-closes while our send buffer is full: a write-only
    /// wait must stay quiet (the kernel's POLLRDHUP is not news to a
    /// writer), and report once the peer reads and room appears.
    #[test]
    fn a_write_only_wait_ignores_a_half_close_and_reports_the_room() {
        use std::io::Read;
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while ours.write(&chunk).is_ok() {}
        peer.shutdown(Shutdown::Write).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut sel = UringSelector::new().unwrap();
        let fd = ours.as_raw_fd();
        sel.register(fd, Token(7), Interest::WRITABLE).unwrap();
        let mut events = Events::with_capacity(8);
        for _ in 0..20 {
            sel.wait(&mut events, Some(Duration::from_millis(5)))
                .unwrap();
            assert!(events.is_empty(), "{:?}", events.iter().collect::<Vec<_>>());
            sel.reregister(fd, Token(7), Interest::WRITABLE).unwrap();
        }
        // The peer drains: now there is room, and it is reported once.
        let mut sink = vec![0u8; 1 << 20];
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut drained = 0;
        while drained < 4 << 20 {
            match peer.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
            sel.wait(&mut events, Some(Duration::ZERO)).unwrap();
            if !events.is_empty() {
                break;
            }
        }
        let until = Instant::now() + Duration::from_secs(2);
        while events.is_empty() && Instant::now() < until {
            sel.wait(&mut events, Some(Duration::from_millis(20)))
                .unwrap();
        }
        let got: Vec<Event> = events.iter().copied().collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].writable && got[0].token == Token(7), "{got:?}");
        // Back to reading: the registration returns to the ring, where the
        // FIN is news at once.
        sel.reregister(fd, Token(8), Interest::READABLE).unwrap();
        sel.wait(&mut events, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(
            events.get(0).map(|e| (e.token, e.readable)),
            Some((Token(8), true))
        );
        sel.deregister(fd).unwrap();
    }

    #[test]
    fn the_probe_succeeds_where_a_selector_opens() {
        assert_eq!(probe().is_ok(), UringSelector::new().is_ok());
    }
}
