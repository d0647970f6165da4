//! One-shot delivery over a mechanism that reports readiness in pieces.
//!
//! kqueue reports a descriptor's read and write sides as two separate
//! kernel events, and mio (over kqueue) passes them on the same way. The
//! contract promises one `Event` per registration and then silence until it
//! is re-armed. Two small pieces of state give that: an `armed` flag per
//! registration, and, while one wait is being assembled, where the
//! registration's event sits in the batch. The one idea: **the first report
//! of an armed registration becomes its event and disarms it; later reports
//! in the same wait merge into that event; reports after that are
//! swallowed** until `reregister` arms it again.
//!
//! epoll and poll need none of this: the kernel (`EPOLLONESHOT`) or the
//! `pollfd` array already hands over one report per descriptor.

#![cfg_attr(not(any(feature = "mio", with_kqueue)), allow(dead_code))]

use std::collections::HashMap;
use std::os::fd::RawFd;

use crate::{Event, Events, Token};

/// The one-shot state of one registration.
#[derive(Debug)]
pub(crate) struct OneShot {
    pub(crate) token: Token,
    /// False from the moment an event is reported until `arm`.
    armed: bool,
    /// During a wait: where this registration's event sits in the batch.
    batch_slot: Option<usize>,
}

impl OneShot {
    /// A new registration, armed.
    pub(crate) fn armed(token: Token) -> OneShot {
        OneShot {
            token,
            armed: true,
            batch_slot: None,
        }
    }

    /// Arms the registration again, possibly under a new token.
    pub(crate) fn arm(&mut self, token: Token) {
        self.token = token;
        self.armed = true;
    }
}

/// The events of one wait, assembled one readiness report at a time.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    entries: Vec<(RawFd, Event)>,
}

impl Batch {
    /// Takes one report for `fd`; see the module doc for what becomes of it.
    pub(crate) fn record(&mut self, fd: RawFd, reg: &mut OneShot, readable: bool, writable: bool) {
        if reg.armed {
            reg.armed = false;
            reg.batch_slot = Some(self.entries.len());
            self.entries.push((
                fd,
                Event {
                    token: reg.token,
                    readable,
                    writable,
                },
            ));
        } else if let Some(slot) = reg.batch_slot {
            let event = &mut self.entries[slot].1;
            event.readable |= readable;
            event.writable |= writable;
        }
        // Else: disarmed by an earlier wait. Swallowed; the re-arm re-checks
        // readiness.
    }

    /// Hands the batch to the caller and forgets the slots. The batch holds
    /// at most one event per kernel report, and the kernel returned at most
    /// `events.capacity()` of them, so nothing is dropped.
    pub(crate) fn deliver<R>(&mut self, events: &mut Events, registrations: &mut HashMap<RawFd, R>)
    where
        R: AsMut<OneShot>,
    {
        for (fd, event) in self.entries.drain(..) {
            if let Some(reg) = registrations.get_mut(&fd) {
                reg.as_mut().batch_slot = None;
            }
            events.push(event);
        }
    }
}

impl AsMut<OneShot> for OneShot {
    fn as_mut(&mut self) -> &mut OneShot {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_report_wins_later_ones_merge_then_silence() {
        let mut registrations = HashMap::from([(7, OneShot::armed(Token(1)))]);
        let mut batch = Batch::default();
        let mut events = Events::with_capacity(4);

        // Read side, then write side of fd 7 in one wait: one event.
        batch.record(7, registrations.get_mut(&7).unwrap(), true, false);
        batch.record(7, registrations.get_mut(&7).unwrap(), false, true);
        batch.deliver(&mut events, &mut registrations);
        let got: Vec<Event> = events.iter().copied().collect();
        assert_eq!(
            got,
            vec![Event {
                token: Token(1),
                readable: true,
                writable: true
            }]
        );

        // The next wait: disarmed, so swallowed.
        events.clear();
        batch.record(7, registrations.get_mut(&7).unwrap(), true, false);
        batch.deliver(&mut events, &mut registrations);
        assert!(events.is_empty());

        // Re-armed under a new token: reported again.
        registrations.get_mut(&7).unwrap().arm(Token(2));
        batch.record(7, registrations.get_mut(&7).unwrap(), true, false);
        batch.deliver(&mut events, &mut registrations);
        assert_eq!(events.get(0).map(|e| e.token), Some(Token(2)));
    }
}
