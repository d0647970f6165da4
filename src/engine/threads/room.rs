//! Broadcasts between connection threads: an inbox per thread, and a wake.
//!
//! Under the readiness driver a worker delivers a broadcast to its own
//! connections itself, in one loop. Here every connection has a thread of
//! its own, and only that thread may touch its connection (TLS state
//! included). So a broadcast is posted to each member's inbox and the
//! member's thread is woken (`wake.rs`); it delivers its inbox to its
//! connection before its next wait. The one idea: **a connection is only
//! ever touched by its own thread**, so no connection needs a lock; the
//! room's lock guards the list of members and the inboxes only.
//!
//! An inbox is bounded: a member whose thread is stuck in a write (its peer
//! is not reading) would otherwise collect broadcasts without limit. Past
//! the connection's hard output limit nothing more is queued; what was
//! queued already exceeds that limit, so delivering it makes the
//! connection close as a slow consumer, exactly as under the readiness
//! driver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use slab::Slab;

use super::wake;

/// One connection thread, as the room sees it.
pub struct Member {
    thread: libc::pthread_t,
    /// Admitted (the service sees it): only these hear broadcasts, as under
    /// the readiness driver.
    open: AtomicBool,
    inbox: Mutex<Inbox>,
}

#[derive(Default)]
struct Inbox {
    messages: Vec<Arc<[u8]>>,
    bytes: usize,
}

impl Member {
    pub fn set_open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// Everything posted since the last call, oldest first.
    pub fn take(&self) -> Vec<Arc<[u8]>> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        inbox.bytes = 0;
        std::mem::take(&mut inbox.messages)
    }
}

/// Every connection thread of the server.
pub struct Room {
    members: Mutex<Slab<Arc<Member>>>,
    /// Bytes an inbox may hold (the connections' hard output limit).
    inbox_limit: usize,
}

impl Room {
    pub fn new(inbox_limit: usize) -> Room {
        Room {
            members: Mutex::new(Slab::new()),
            inbox_limit,
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Slab<Arc<Member>>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The calling thread joins; it must [`leave`](Self::leave) before it
    /// ends (it is woken with `pthread_kill` while it is a member).
    pub fn join(&self) -> (usize, Arc<Member>) {
        let member = Arc::new(Member {
            // SAFETY: pthread_self has no preconditions.
            thread: unsafe { libc::pthread_self() },
            open: AtomicBool::new(false),
            inbox: Mutex::new(Inbox::default()),
        });
        let key = self.members().insert(member.clone());
        (key, member)
    }

    pub fn leave(&self, key: usize) {
        self.members().try_remove(key);
    }

    /// Posts `message` to every admitted member but `from`, and wakes each.
    pub fn broadcast(&self, from: usize, message: &Arc<[u8]>) {
        let members = self.members();
        for (key, member) in members.iter() {
            if key == from || !member.open.load(Ordering::Acquire) {
                continue;
            }
            let mut inbox = member.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            if inbox.bytes > self.inbox_limit {
                continue; // it will close as a slow consumer (module doc)
            }
            inbox.bytes += message.len();
            let first = inbox.messages.is_empty();
            inbox.messages.push(message.clone());
            drop(inbox);
            // One wake per batch: a thread takes its whole inbox at once.
            if first {
                wake::wake(member.thread);
            }
        }
    }

    /// Wakes every member (the server is stopping).
    pub fn wake_all(&self) {
        for (_, member) in self.members().iter() {
            wake::wake(member.thread);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members().is_empty()
    }
}
