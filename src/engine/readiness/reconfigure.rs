//! Applying a reconfiguration (see `engine::control`) between two batches
//! of events: listeners open and close, new connections get new policies.
//!
//! The one idea: **only what the message names changes, and nothing that is
//! open is touched**. A listener that stays keeps its socket and its
//! backlog; it only gets a new policy number, so connections accepted from
//! now on see the new policy while every live connection keeps the number
//! (and so the gate, the certificates) it was admitted with. A listener the
//! message leaves out is deregistered and closed; its live connections stay.

use std::os::fd::AsRawFd;

use backends::Interest;

use super::slots::listener_token;
use super::Worker;
use crate::engine::control::Reconfigure;

impl Worker {
    /// Applies what was posted to this worker's mailbox, if anything.
    pub(super) fn apply_control(&mut self) {
        // One atomic load when there is nothing, which is nearly always.
        let Some(messages) = self.env.shared.control.get().map(|c| c.take(self.env.id)) else {
            return;
        };
        for (seq, message) in messages {
            // Draining: the listeners are closed for good; drop it.
            if self.env.shutdown_by.is_none() {
                self.reconfigure(message);
            }
            if let Some(controls) = self.env.shared.control.get() {
                controls.mark_applied(self.env.id, seq);
            }
        }
    }

    fn reconfigure(&mut self, message: Reconfigure) {
        self.env.limits = message.limits;
        self.env.socket_options = message.socket_options;
        self.env.shutdown_grace = message.shutdown_grace;
        let (mut opened, mut closed) = (0, 0);
        for index in 0..self.listeners.len() {
            let id = self.listener_ids[index];
            let kept = message.listeners.iter().any(|l| l.id == id);
            if kept || self.listeners[index].is_none() {
                continue;
            }
            if let Some(socket) = self.listeners[index].take() {
                let _ = self.selector.deregister(socket.as_raw_fd());
                closed += 1;
            }
            self.env.policies.retire(self.listener_policy[index]);
        }
        for change in message.listeners {
            let Some(number) = self.env.policies.insert(change.policy) else {
                log::error!(
                    "worker {}: too many listener policies in use; listener {} keeps its old one",
                    self.env.id,
                    change.id
                );
                continue;
            };
            match self.listener_ids.iter().position(|&id| id == change.id) {
                Some(index) if self.listeners[index].is_some() => {
                    let old = std::mem::replace(&mut self.listener_policy[index], number);
                    self.env.policies.retire(old);
                }
                Some(_) => self.env.policies.retire(number), // closed earlier
                None => {
                    let Some(socket) = change.socket else {
                        log::error!(
                            "worker {}: listener {} is new here but came without a socket",
                            self.env.id,
                            change.id
                        );
                        self.env.policies.retire(number);
                        continue;
                    };
                    let index = self.listeners.len();
                    let registered = socket.set_nonblocking(true).and_then(|()| {
                        self.selector.register(
                            socket.as_raw_fd(),
                            listener_token(index),
                            Interest::READABLE,
                        )
                    });
                    if let Err(err) = registered {
                        log::error!(
                            "worker {}: cannot serve new listener {}: {err}",
                            self.env.id,
                            self.env.policies[number].local
                        );
                        self.env.policies.retire(number);
                        continue;
                    }
                    self.listeners.push(Some(socket));
                    self.listener_ids.push(change.id);
                    self.listener_policy.push(number);
                    opened += 1;
                }
            }
        }
        log::debug!(
            "worker {}: reconfigured: {opened} listeners opened, {closed} closed, {} policies in use",
            self.env.id,
            self.env.policies.in_use()
        );
    }
}
