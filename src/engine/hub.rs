//! Broadcasts that cross worker threads.
//!
//! Workers share nothing: each has its own reactor, listener and connections.
//! A chat message, though, must reach every session of the *server*, and the
//! other sessions may live on other workers. The hub gives each worker an
//! inbox and the waker of its reactor; a broadcast is delivered locally at
//! once and posted to every other worker's inbox, whose reactor wakes up and
//! delivers it. The one idea: **the waker is how threads talk to a reactor**
//! — a reactor asleep in `epoll_wait` hears nothing else.
//!
//! Order is preserved per sender: a worker appends to each inbox in the order
//! its sessions broadcast, and an inbox is drained in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use backends::Waker;

struct Inbox {
    has_mail: AtomicBool,
    messages: Mutex<Vec<Arc<[u8]>>>,
    waker: Waker,
}

/// One inbox per worker; shared by all workers.
pub struct Hub {
    inboxes: Vec<Inbox>,
}

impl Hub {
    /// A hub for workers whose reactors have these wakers, in worker order.
    pub fn new(wakers: Vec<Waker>) -> Hub {
        Hub {
            inboxes: wakers
                .into_iter()
                .map(|waker| Inbox {
                    has_mail: AtomicBool::new(false),
                    messages: Mutex::new(Vec::new()),
                    waker,
                })
                .collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Posts `message` to every worker but `from`, waking each.
    pub fn post_to_others(&self, from: usize, message: &Arc<[u8]>) {
        for (worker, inbox) in self.inboxes.iter().enumerate() {
            if worker == from {
                continue;
            }
            inbox
                .messages
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(message.clone());
            // Only the first message since the last drain needs a wake-up.
            if !inbox.has_mail.swap(true, Ordering::AcqRel) {
                if let Err(err) = inbox.waker.wake() {
                    log::warn!("cannot wake worker {worker}: {err}");
                }
            }
        }
    }

    /// Takes what was posted to `worker`, oldest first. Cheap when empty: one
    /// atomic load, no lock.
    pub fn take(&self, worker: usize) -> Vec<Arc<[u8]>> {
        let inbox = &self.inboxes[worker];
        if !inbox.has_mail.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(
            &mut *inbox
                .messages
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_every_other_worker_in_order() {
        let wakers = (0..3)
            .map(|_| backends::BackendKind::best().open().unwrap().waker())
            .collect();
        let hub = Hub::new(wakers);
        let a: Arc<[u8]> = Arc::from(&b"a"[..]);
        let b: Arc<[u8]> = Arc::from(&b"b"[..]);
        hub.post_to_others(0, &a);
        hub.post_to_others(0, &b);
        assert!(hub.take(0).is_empty(), "the sender delivers locally itself");
        for worker in 1..3 {
            let got: Vec<Vec<u8>> = hub.take(worker).iter().map(|m| m.to_vec()).collect();
            assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec()]);
            assert!(hub.take(worker).is_empty());
        }
    }
}
