//! Telling running workers to change: listeners to open or close, new
//! policies and limits. This is how a reload reaches the event loops.
//!
//! Each worker has a mailbox; whoever reconfigures the server (a reload, and
//! later the admin API) posts one [`Reconfigure`] per worker and wakes its
//! reactor through the backend's waker, exactly as the broadcast hub does.
//! The worker applies it between two batches of events, on its own thread,
//! so nothing it owns is ever touched from outside. The one idea: **a
//! reconfiguration is a message carrying the whole new state** (every
//! listener with its policy, the limits), so a worker needs no memory of
//! what changed: what it holds and is not in the message closes, what is in
//! the message and new to it opens, and everything gets a fresh policy.
//!
//! Each posting has a sequence number, and a worker records the last one it
//! applied, so the poster can wait until every worker has applied it
//! ([`Controls::wait_applied`]): when a reload says it is done, a
//! connection made afterwards gets the new configuration.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use backends::Waker;

use super::context::ListenerPolicy;
use super::limits::ConnectionLimits;
use crate::net::accept::AcceptedSocketOptions;

/// A listener's stable name across reloads: the server numbers its
/// listeners in the order they are first opened (the start-up ones are
/// `0..n`, in the order given).
pub type ListenerId = u64;

/// One listener after the reload.
pub struct ListenerChange {
    pub id: ListenerId,
    /// The worker's socket for a listener the reload opened; `None` for one
    /// the worker already has.
    pub socket: Option<TcpListener>,
    /// The policy new connections on it get.
    pub policy: ListenerPolicy,
}

/// The whole new state of one worker.
pub struct Reconfigure {
    /// Every listener the worker must serve; any other one it has closes.
    pub listeners: Vec<ListenerChange>,
    pub limits: ConnectionLimits,
    pub socket_options: AcceptedSocketOptions,
    pub shutdown_grace: Duration,
}

struct Mailbox {
    has_mail: AtomicBool,
    messages: Mutex<Vec<(u64, Reconfigure)>>,
    /// The sequence number of the last message this worker applied.
    applied: AtomicU64,
    waker: Waker,
}

/// One mailbox per worker, in worker order.
pub struct Controls {
    mailboxes: Vec<Mailbox>,
    /// The last sequence number handed out.
    posted: AtomicU64,
}

impl Controls {
    pub fn new(wakers: Vec<Waker>) -> Controls {
        Controls {
            mailboxes: wakers
                .into_iter()
                .map(|waker| Mailbox {
                    has_mail: AtomicBool::new(false),
                    messages: Mutex::new(Vec::new()),
                    applied: AtomicU64::new(0),
                    waker,
                })
                .collect(),
            posted: AtomicU64::new(0),
        }
    }

    pub fn workers(&self) -> usize {
        self.mailboxes.len()
    }

    /// Queues one message per worker (in worker order) and wakes each;
    /// returns the sequence number to [`wait_applied`](Self::wait_applied) for.
    pub fn post_all(&self, messages: Vec<Reconfigure>) -> u64 {
        let seq = self.posted.fetch_add(1, Ordering::AcqRel) + 1;
        for (worker, (mailbox, message)) in self.mailboxes.iter().zip(messages).enumerate() {
            mailbox
                .messages
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((seq, message));
            mailbox.has_mail.store(true, Ordering::Release);
            if let Err(err) = mailbox.waker.wake() {
                log::warn!("cannot wake worker {worker} to reconfigure it: {err}");
            }
        }
        seq
    }

    /// Worker `worker` has applied message `seq` (or dropped it because it
    /// is shutting down).
    pub fn mark_applied(&self, worker: usize, seq: u64) {
        if let Some(mailbox) = self.mailboxes.get(worker) {
            mailbox.applied.fetch_max(seq, Ordering::AcqRel);
        }
    }

    /// Waits until every worker has applied message `seq`, at most
    /// `timeout`; false if some worker did not (it is stuck or has ended).
    pub fn wait_applied(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .mailboxes
                .iter()
                .all(|m| m.applied.load(Ordering::Acquire) >= seq)
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What was posted to `worker`, oldest first. One atomic load when
    /// there is nothing, which is nearly always.
    pub fn take(&self, worker: usize) -> Vec<(u64, Reconfigure)> {
        let Some(mailbox) = self.mailboxes.get(worker) else {
            return Vec::new();
        };
        // A plain load first: the loop asks every iteration, and a write
        // each time would bounce the line between cores for nothing.
        if !mailbox.has_mail.load(Ordering::Acquire)
            || !mailbox.has_mail.swap(false, Ordering::AcqRel)
        {
            return Vec::new();
        }
        std::mem::take(
            &mut *mailbox
                .messages
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Reconfigure {
        Reconfigure {
            listeners: Vec::new(),
            limits: ConnectionLimits::default(),
            socket_options: AcceptedSocketOptions::default(),
            shutdown_grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_posting_is_done_once_every_worker_applied_it() {
        let selectors: Vec<_> = (0..2)
            .map(|_| backends::BackendKind::best().open().unwrap())
            .collect();
        let controls = Controls::new(selectors.iter().map(|s| s.waker()).collect());
        assert!(controls.take(0).is_empty(), "nothing posted yet");
        let seq = controls.post_all(vec![message(), message()]);
        let taken = controls.take(0);
        assert_eq!(taken.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [seq]);
        assert!(controls.take(0).is_empty(), "taken once");
        controls.mark_applied(0, seq);
        assert!(
            !controls.wait_applied(seq, Duration::from_millis(20)),
            "worker 1 has not applied it"
        );
        assert_eq!(controls.take(1).len(), 1);
        controls.mark_applied(1, seq);
        assert!(controls.wait_applied(seq, Duration::from_millis(20)));
    }
}
