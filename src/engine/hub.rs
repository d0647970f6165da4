//! Broadcasts that cross worker threads, with a bound on what waits.
//!
//! Workers share nothing: each has its own reactor, listener and connections.
//! A chat message, though, must reach every session of the *server*, and the
//! other sessions may live on other workers. The hub gives each worker an
//! inbox and the waker of its reactor; a broadcast is delivered locally at
//! once and posted to every other worker's inbox, whose reactor wakes up and
//! delivers it. The first idea: **the waker is how threads talk to a
//! reactor** — a reactor asleep in `epoll_wait` hears nothing else.
//!
//! The second idea is the bound. An inbox fills when its worker falls
//! behind; left alone it would grow without limit. Dropping messages would
//! lose lines for every member on that worker, so instead the hub **pushes
//! back on the sender**: once another worker's inbox holds more than
//! [`INBOX_HIGH_WATER`] bytes, [`Hub::congested`] says so, and the sending
//! worker stops reading from the connections that broadcast until the
//! inbox drains. TCP flow control then slows the senders down, and nothing
//! is lost. An inbox can exceed the mark only by what senders posted before
//! they noticed: one read's worth of broadcasts per sending connection.
//! When a congested inbox is emptied its worker wakes the others, so paused
//! senders resume promptly.
//!
//! Order is preserved per sender: a worker appends to each inbox in the order
//! its sessions broadcast, and an inbox is drained in order.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use backends::Waker;

/// Bytes an inbox may hold before senders are paused.
pub const INBOX_HIGH_WATER: usize = 4 * 1024 * 1024;

struct Inbox {
    has_mail: AtomicBool,
    queued_bytes: AtomicUsize,
    messages: Mutex<Vec<Arc<[u8]>>>,
    waker: Waker,
}

/// One inbox per worker; shared by all workers.
pub struct Hub {
    inboxes: Vec<Inbox>,
    high_water: usize,
}

impl Hub {
    /// A hub for workers whose reactors have these wakers, in worker order.
    pub fn new(wakers: Vec<Waker>) -> Hub {
        Hub::with_high_water(wakers, INBOX_HIGH_WATER)
    }

    /// A hub whose inboxes push back past `high_water` bytes.
    pub fn with_high_water(wakers: Vec<Waker>, high_water: usize) -> Hub {
        Hub {
            inboxes: wakers
                .into_iter()
                .map(|waker| Inbox {
                    has_mail: AtomicBool::new(false),
                    queued_bytes: AtomicUsize::new(0),
                    messages: Mutex::new(Vec::new()),
                    waker,
                })
                .collect(),
            high_water,
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
            inbox
                .queued_bytes
                .fetch_add(message.len(), Ordering::AcqRel);
            // Only the first message since the last drain needs a wake-up.
            if !inbox.has_mail.swap(true, Ordering::AcqRel) {
                wake(worker, &inbox.waker);
            }
        }
    }

    /// Whether some other worker's inbox is past the high-water mark, so
    /// `from` should stop reading from the connections that broadcast.
    pub fn congested(&self, from: usize) -> bool {
        self.inboxes.iter().enumerate().any(|(worker, inbox)| {
            worker != from && inbox.queued_bytes.load(Ordering::Acquire) > self.high_water
        })
    }

    /// Takes what was posted to `worker`, oldest first. Cheap when empty: one
    /// atomic load, no lock. Emptying a congested inbox wakes the other
    /// workers, whose paused senders may resume.
    pub fn take(&self, worker: usize) -> Vec<Arc<[u8]>> {
        let inbox = &self.inboxes[worker];
        if !inbox.has_mail.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        let messages = std::mem::take(
            &mut *inbox
                .messages
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let taken: usize = messages.iter().map(|m| m.len()).sum();
        let before = inbox.queued_bytes.fetch_sub(taken, Ordering::AcqRel);
        if before > self.high_water {
            for (other, inbox) in self.inboxes.iter().enumerate() {
                if other != worker {
                    wake(other, &inbox.waker);
                }
            }
        }
        messages
    }
}

fn wake(worker: usize, waker: &Waker) {
    if let Err(err) = waker.wake() {
        log::warn!("cannot wake worker {worker}: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn selectors(n: usize) -> Vec<Box<dyn backends::Selector>> {
        (0..n)
            .map(|_| backends::BackendKind::best().open().unwrap())
            .collect()
    }

    #[test]
    fn messages_reach_every_other_worker_in_order() {
        let selectors = selectors(3);
        let hub = Hub::new(selectors.iter().map(|s| s.waker()).collect());
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

    #[test]
    fn a_full_inbox_pushes_back_until_it_is_drained() {
        let mut selectors = selectors(2);
        let hub = Hub::with_high_water(selectors.iter().map(|s| s.waker()).collect(), 10);
        let line: Arc<[u8]> = Arc::from(&b"0123456789"[..]);
        hub.post_to_others(0, &line);
        assert!(!hub.congested(0), "at the mark is not past it");
        hub.post_to_others(0, &line);
        assert!(hub.congested(0), "worker 1 is behind: worker 0 must pause");
        assert!(!hub.congested(1), "worker 0's inbox is empty");
        // Drain worker 0's selector of the wake-up from posting (none: posts
        // went to worker 1), then check that draining worker 1 wakes it.
        let mut events = backends::Events::with_capacity(4);
        selectors[0]
            .wait(&mut events, Some(Duration::ZERO))
            .unwrap();
        assert_eq!(hub.take(1).len(), 2, "nothing was dropped");
        assert!(!hub.congested(0));
        let started = std::time::Instant::now();
        selectors[0]
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "draining a congested inbox wakes the paused sender's worker"
        );
    }
}
