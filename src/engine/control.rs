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

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

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
    messages: Mutex<Vec<Reconfigure>>,
    waker: Waker,
}

/// One mailbox per worker, in worker order.
pub struct Controls {
    mailboxes: Vec<Mailbox>,
}

impl Controls {
    pub fn new(wakers: Vec<Waker>) -> Controls {
        Controls {
            mailboxes: wakers
                .into_iter()
                .map(|waker| Mailbox {
                    has_mail: AtomicBool::new(false),
                    messages: Mutex::new(Vec::new()),
                    waker,
                })
                .collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.mailboxes.len()
    }

    /// Queues `message` for `worker` and wakes it.
    pub fn post(&self, worker: usize, message: Reconfigure) -> std::io::Result<()> {
        let mailbox = &self.mailboxes[worker];
        mailbox
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
        mailbox.has_mail.store(true, Ordering::Release);
        mailbox.waker.wake()
    }

    /// What was posted to `worker`, oldest first. One atomic load when
    /// there is nothing, which is nearly always.
    pub fn take(&self, worker: usize) -> Vec<Reconfigure> {
        let Some(mailbox) = self.mailboxes.get(worker) else {
            return Vec::new();
        };
        if !mailbox.has_mail.swap(false, Ordering::AcqRel) {
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
