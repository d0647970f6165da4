//! UDP sockets in the readiness driver: registration, re-arming, timers.
//!
//! A UDP socket is one more kind of registration, with a token range of its
//! own (`slots.rs`). Everything about datagrams — batches, the service,
//! counting what peers did wrong — is in [`crate::udp::Endpoint`]; this file
//! only does for it what `settle` does for a connection. The one idea:
//! **same loop, same rule** — after an event or a timer, ask the endpoint
//! what readiness it wants and when to wake it, re-arm the one-shot
//! registration if that changed, and schedule the timer, so a UDP socket is
//! never left disarmed.

use std::io;
use std::time::Instant;

use backends::{Event, Interest};

use super::slots::{datagram_token, TimerKey};
use super::Worker;
use crate::udp::endpoint::Scratch;
use crate::udp::{DatagramSetup, Endpoint};

/// One registered UDP socket.
struct DatagramSlot {
    endpoint: Endpoint,
    /// What the one-shot registration is armed with; `None` once an event
    /// disarmed it.
    armed: Option<Interest>,
    /// The due time of this socket's live timer entry.
    scheduled: Option<Instant>,
}

/// A worker's UDP sockets and the batches they share.
#[derive(Default)]
pub struct Datagrams {
    /// Indexed by token; `None` once closed.
    sockets: Vec<Option<DatagramSlot>>,
    /// Lent to whichever socket is being served (none without sockets).
    scratch: Option<Scratch>,
}

impl Datagrams {
    /// Builds an endpoint, with its own service instance, per socket.
    pub fn open(setup: Option<DatagramSetup>) -> io::Result<Datagrams> {
        let Some(setup) = setup else {
            return Ok(Datagrams::default());
        };
        let mut sockets = Vec::with_capacity(setup.sockets.len());
        for socket in setup.sockets {
            let service = (setup.service)();
            let endpoint = Endpoint::new(socket, service, &setup.options, setup.counters.clone())?;
            sockets.push(Some(DatagramSlot {
                endpoint,
                armed: None,
                scheduled: None,
            }));
        }
        Ok(Datagrams {
            sockets,
            scratch: Some(Scratch::new(&setup.options)),
        })
    }

    /// Whether a timer entry for `socket` due at `at` is still wanted.
    pub fn timer_is_live(&self, socket: usize, at: Instant) -> bool {
        self.sockets
            .get(socket)
            .and_then(Option::as_ref)
            .is_some_and(|slot| slot.scheduled == Some(at))
    }
}

impl Worker {
    /// Registers every UDP socket and lets its service start (a multicast
    /// stream begins at once).
    pub(super) fn register_datagrams(&mut self) -> io::Result<()> {
        for index in 0..self.datagrams.sockets.len() {
            if let Some(slot) = self.datagrams.sockets[index].as_mut() {
                let interest = slot.endpoint.interest(self.now);
                self.selector
                    .register(slot.endpoint.fd(), datagram_token(index), interest)?;
                slot.armed = Some(interest);
            }
            self.settle_datagram(index);
        }
        Ok(())
    }

    pub(super) fn datagram_event(&mut self, index: usize, event: Event) {
        let Datagrams { sockets, scratch } = &mut self.datagrams;
        let (Some(slot), Some(scratch)) =
            (sockets.get_mut(index).and_then(Option::as_mut), scratch)
        else {
            return; // closed for shutdown earlier in this batch
        };
        slot.armed = None; // one-shot: the event disarmed it
        slot.endpoint
            .on_ready(scratch, event.readable, event.writable, self.now);
        self.settle_datagram(index);
    }

    /// A timer entry for `index` due at `at` came due.
    pub(super) fn datagram_timer(&mut self, index: usize, at: Instant) {
        if !self.datagrams.timer_is_live(index, at) {
            return; // stale: rescheduled, or closed
        }
        self.live_timers -= 1;
        let Datagrams { sockets, scratch } = &mut self.datagrams;
        if let (Some(slot), Some(scratch)) =
            (sockets.get_mut(index).and_then(Option::as_mut), scratch)
        {
            slot.scheduled = None;
            slot.endpoint.on_timer(scratch, self.now);
        }
        self.settle_datagram(index);
    }

    /// Re-arms the registration if the wanted readiness changed, and makes
    /// sure a timer entry no later than the endpoint's deadline exists.
    fn settle_datagram(&mut self, index: usize) {
        let Some(slot) = self
            .datagrams
            .sockets
            .get_mut(index)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let interest = slot.endpoint.interest(self.now);
        if slot.armed != Some(interest) {
            let fd = slot.endpoint.fd();
            if let Err(err) = self
                .selector
                .reregister(fd, datagram_token(index), interest)
            {
                log::error!(
                    "worker {}: cannot re-arm UDP socket {}: {err}; closing it",
                    self.env.id,
                    slot.endpoint.local()
                );
                self.close_datagram(index);
                return;
            }
            slot.armed = Some(interest);
        }
        if let Some(at) = slot.endpoint.deadline(self.now) {
            if slot.scheduled.is_some_and(|scheduled| scheduled <= at) {
                return; // the entry already there fires first, then recomputes
            }
            if slot.scheduled.is_none() {
                self.live_timers += 1;
            }
            slot.scheduled = Some(at);
            self.timers
                .schedule(at, TimerKey::Datagram { socket: index });
        }
    }

    fn close_datagram(&mut self, index: usize) {
        let Some(slot) = self.datagrams.sockets.get_mut(index).and_then(Option::take) else {
            return;
        };
        if slot.scheduled.is_some() {
            self.live_timers -= 1;
        }
        if let Err(err) = self.selector.deregister(slot.endpoint.fd()) {
            log::debug!("deregister UDP {} failed: {err}", slot.endpoint.local());
        }
        // Dropping the endpoint closes the socket.
    }

    /// Shutdown: datagrams have no connection to drain, so the sockets
    /// simply close (a multicast stream stops).
    pub(super) fn close_datagrams(&mut self) {
        for index in 0..self.datagrams.sockets.len() {
            self.close_datagram(index);
        }
    }
}
