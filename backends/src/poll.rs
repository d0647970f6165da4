//! The `poll(2)` backend: the portable baseline that runs on every Unix.
//!
//! `poll` is stateless in the kernel: every call hands the kernel the whole
//! array of `pollfd`s, the kernel checks each descriptor, writes `revents`
//! and copies the array back. A wait therefore costs O(registered fds), ready
//! or not — ten thousand idle connections are walked on every call, which is
//! what `epoll` and `kqueue` were invented to avoid. The one idea to take
//! away: **with `poll` the interest list lives in user space**, so this file
//! owns the bookkeeping that `epoll` keeps in the kernel — an array the kernel
//! reads, a parallel array of what each slot means, and an fd → slot map.
//!
//! One-shot semantics come for free from one `poll` rule: a `pollfd` whose
//! `fd` is negative is ignored entirely, `revents` stays zero. Disarming a slot
//! is therefore writing `-1` into its `fd` (clearing `events` would not do:
//! `POLLHUP`, `POLLERR` and `POLLNVAL` are reported even when `events` is 0),
//! and re-arming is writing the real descriptor back. Because `poll` is
//! level-triggered, a re-armed descriptor that is still ready is reported by
//! the very next call, exactly as the contract asks.
//!
//! Registering and deregistering are O(1): slots are appended, and a removed
//! slot is filled by the last one (`swap_remove`), whose map entry is then
//! fixed up to point at its new position.
//!
//! The waker's read side sits in slot 0 of the `pollfd` array, permanently
//! armed; it is drained inside `wait` and never reported.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::waker::WakeFd;
use crate::{BackendKind, Event, Events, Interest, Selector, Token, Waker};

/// Where the waker lives in `pollfds`; registration `i` is at `pollfds[i + 1]`.
const WAKER_SLOT: usize = 0;

/// What one registered slot means. The kernel never sees this.
#[derive(Debug)]
struct Registration {
    /// Kept here because the `pollfd` forgets it while the slot is disarmed.
    fd: RawFd,
    token: Token,
    interest: Interest,
}

pub(crate) struct PollSelector {
    /// Handed to `poll(2)` as is: the waker first, then one per registration.
    /// A disarmed registration has `fd == -1`.
    pollfds: Vec<libc::pollfd>,
    /// `registrations[i]` describes `pollfds[i + 1]`.
    registrations: Vec<Registration>,
    /// fd → index into `registrations`, so that lookups are O(1).
    index: HashMap<RawFd, usize>,
    /// Where the next scan of ready slots starts. Rotating it keeps a small
    /// `Events` capacity from always favouring the slots at the front.
    cursor: usize,
    wake_fd: Arc<WakeFd>,
}

impl PollSelector {
    pub(crate) fn new() -> io::Result<PollSelector> {
        let wake_fd = Arc::new(WakeFd::new()?);
        let waker = libc::pollfd {
            fd: wake_fd.read_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        Ok(PollSelector {
            pollfds: vec![waker],
            registrations: Vec::new(),
            index: HashMap::new(),
            cursor: 0,
            wake_fd,
        })
    }

    fn slot_of(&self, fd: RawFd) -> io::Result<usize> {
        self.index.get(&fd).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("fd {fd} is not registered"),
            )
        })
    }

    /// Writes `interest` into the slot and arms it.
    fn arm(&mut self, slot: usize, interest: Interest) {
        let fd = self.registrations[slot].fd;
        let pollfd = &mut self.pollfds[slot + 1];
        pollfd.fd = fd;
        pollfd.events = poll_events(interest);
        pollfd.revents = 0;
    }

    /// Checks that the three structures agree. Test-only: it is O(n).
    #[cfg(test)]
    fn assert_consistent(&self) {
        assert_eq!(self.pollfds.len(), self.registrations.len() + 1);
        assert_eq!(self.index.len(), self.registrations.len());
        assert_eq!(self.pollfds[WAKER_SLOT].fd, self.wake_fd.read_fd());
        for (slot, reg) in self.registrations.iter().enumerate() {
            assert_eq!(self.index.get(&reg.fd), Some(&slot), "{reg:?}");
            let fd = self.pollfds[slot + 1].fd;
            assert!(
                fd == reg.fd || fd == -1,
                "slot {slot}: pollfd {fd}, registration {reg:?}"
            );
        }
    }
}

fn poll_events(interest: Interest) -> libc::c_short {
    let mut events = 0;
    if interest.is_readable() {
        events |= libc::POLLIN;
    }
    if interest.is_writable() {
        events |= libc::POLLOUT;
    }
    events
}

impl Selector for PollSelector {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        // A negative fd is how a slot is disarmed; poll would silently ignore it.
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid fd {fd}"),
            ));
        }
        if self.index.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        let slot = self.registrations.len();
        self.registrations.push(Registration {
            fd,
            token,
            interest,
        });
        self.pollfds.push(libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        });
        self.index.insert(fd, slot);
        self.arm(slot, interest);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let slot = self.slot_of(fd)?;
        let reg = &mut self.registrations[slot];
        reg.token = token;
        reg.interest = interest;
        self.arm(slot, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let slot = self.slot_of(fd)?;
        self.index.remove(&fd);
        // Both arrays lose the same position, so they stay parallel; the last
        // registration (if it was not the removed one) now lives at `slot`.
        self.registrations.swap_remove(slot);
        self.pollfds.swap_remove(slot + 1);
        if let Some(moved) = self.registrations.get(slot) {
            self.index.insert(moved.fd, slot);
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // SAFETY: `pollfds` is a live, initialised array of exactly
        // `pollfds.len()` pollfds; the kernel writes only their `revents`.
        let ready = match unsafe {
            syscall!(poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                crate::timeout_to_millis(timeout)
            ))
        } {
            Ok(n) => n as usize,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(err) => return Err(err),
        };
        // `ready` counts slots with non-zero revents; stop scanning once all
        // of them are accounted for.
        let mut remaining = ready;
        if remaining > 0 && self.pollfds[WAKER_SLOT].revents != 0 {
            self.wake_fd.drain();
            remaining -= 1;
        }
        let count = self.registrations.len();
        if count == 0 {
            return Ok(());
        }
        let start = self.cursor % count;
        let mut next_start = start;
        for offset in 0..count {
            // Slots not reached because `events` is full stay armed, and
            // level-triggered poll reports them again at the next wait.
            if remaining == 0 || events.is_full() {
                break;
            }
            let slot = (start + offset) % count;
            let pollfd = &mut self.pollfds[slot + 1];
            if pollfd.revents == 0 {
                continue;
            }
            remaining -= 1;
            let revents = pollfd.revents;
            let has = |bits: libc::c_short| revents & bits != 0;
            // Errors, hang-ups and a closed-but-registered fd (NVAL) make the
            // next read or write return something, so report them as both.
            let broken = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
            events.push(Event {
                token: self.registrations[slot].token,
                readable: has(libc::POLLIN | libc::POLLPRI | broken),
                writable: has(libc::POLLOUT | broken),
            });
            // One-shot: poll ignores negative fds, so this slot now produces
            // nothing until `reregister` writes the fd back.
            pollfd.fd = -1;
            pollfd.revents = 0;
            next_start = slot + 1;
        }
        self.cursor = next_start;
        Ok(())
    }

    fn waker(&self) -> Waker {
        Waker::new(self.wake_fd.clone())
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn pairs(n: usize) -> Vec<(UnixStream, UnixStream)> {
        (0..n).map(|_| UnixStream::pair().unwrap()).collect()
    }

    #[test]
    fn deregistering_the_middle_moves_the_last_slot_into_the_hole() {
        let socks = pairs(4);
        let mut sel = PollSelector::new().unwrap();
        for (i, (a, _)) in socks.iter().enumerate() {
            sel.register(a.as_raw_fd(), Token(i), Interest::READABLE)
                .unwrap();
        }
        sel.assert_consistent();
        let last_fd = socks[3].0.as_raw_fd();
        sel.deregister(socks[1].0.as_raw_fd()).unwrap();
        sel.assert_consistent();
        assert_eq!(sel.index[&last_fd], 1);
        assert_eq!(sel.registrations[1].token, Token(3));
        assert_eq!(sel.pollfds[2].fd, last_fd);
        assert!(!sel.index.contains_key(&socks[1].0.as_raw_fd()));
    }

    #[test]
    fn deregistering_the_last_first_and_only_slots_keeps_the_index_right() {
        let socks = pairs(3);
        let fds: Vec<RawFd> = socks.iter().map(|(a, _)| a.as_raw_fd()).collect();
        let mut sel = PollSelector::new().unwrap();
        for (i, fd) in fds.iter().enumerate() {
            sel.register(*fd, Token(i), Interest::BOTH).unwrap();
        }
        sel.deregister(fds[2]).unwrap(); // the last: nothing moves
        sel.assert_consistent();
        sel.deregister(fds[0]).unwrap(); // the first: fds[1] moves to slot 0
        sel.assert_consistent();
        assert_eq!(sel.index[&fds[1]], 0);
        sel.deregister(fds[1]).unwrap(); // the only one
        sel.assert_consistent();
        assert!(sel.registrations.is_empty());
        assert_eq!(sel.pollfds.len(), 1);
        // Everything is gone, so all three are unknown now.
        for fd in fds {
            let err = sel.deregister(fd).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
        }
    }

    #[test]
    fn a_moved_registration_keeps_its_armed_state_and_token() {
        let mut socks = pairs(3);
        let mut sel = PollSelector::new().unwrap();
        for (i, (a, _)) in socks.iter().enumerate() {
            sel.register(a.as_raw_fd(), Token(10 + i), Interest::READABLE)
                .unwrap();
        }
        // Make the last one ready, let it fire (which disarms it), then move
        // it by deregistering the first.
        socks[2].1.write_all(b"x").unwrap();
        let mut events = Events::with_capacity(8);
        sel.wait(&mut events, Some(Duration::from_secs(1))).unwrap();
        assert_eq!(
            events.iter().map(|e| e.token).collect::<Vec<_>>(),
            [Token(12)]
        );
        sel.deregister(socks[0].0.as_raw_fd()).unwrap();
        sel.assert_consistent();
        assert_eq!(sel.pollfds[1].fd, -1, "moved slot must still be disarmed");
        sel.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty());
        // Re-arming finds it at its new slot.
        let moved = socks[2].0.as_raw_fd();
        sel.reregister(moved, Token(42), Interest::READABLE)
            .unwrap();
        sel.assert_consistent();
        sel.wait(&mut events, Some(Duration::from_secs(1))).unwrap();
        assert_eq!(
            events.iter().map(|e| e.token).collect::<Vec<_>>(),
            [Token(42)]
        );
        socks.clear();
    }

    #[test]
    fn a_disarmed_slot_is_skipped_even_after_a_hang_up() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut sel = PollSelector::new().unwrap();
        sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
            .unwrap();
        drop(b);
        let mut events = Events::with_capacity(4);
        sel.wait(&mut events, Some(Duration::from_secs(1))).unwrap();
        assert_eq!(events.len(), 1);
        // POLLHUP would be reported even with events == 0; fd == -1 hides it.
        sel.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn slots_not_delivered_for_lack_of_capacity_stay_armed() {
        let mut socks = pairs(5);
        let mut sel = PollSelector::new().unwrap();
        for (i, (a, b)) in socks.iter_mut().enumerate() {
            sel.register(a.as_raw_fd(), Token(i), Interest::READABLE)
                .unwrap();
            b.write_all(b"x").unwrap();
        }
        let mut events = Events::with_capacity(2);
        let mut seen = Vec::new();
        for _ in 0..3 {
            sel.wait(&mut events, Some(Duration::from_secs(1))).unwrap();
            assert!(events.len() <= 2);
            seen.extend(events.iter().map(|e| e.token.0));
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        let armed = sel.pollfds[1..].iter().filter(|p| p.fd != -1).count();
        assert_eq!(armed, 0);
    }

    #[test]
    fn negative_fds_are_rejected() {
        let mut sel = PollSelector::new().unwrap();
        let err = sel.register(-1, Token(0), Interest::READABLE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        sel.assert_consistent();
    }
}
