//! How a connection calls its service, and carries out what the service
//! asked for.
//!
//! A service callback gets a [`Session`]: it can send, close, broadcast,
//! and say it is waiting for the peer. The callback only *records* those
//! requests (in the worker's scratch space); this file applies them once
//! the callback has returned: output is queued (encrypted first for TLS),
//! a close becomes a graceful close after the output, and broadcasts are
//! left for the driver, which alone can reach other connections. The one
//! idea: **a callback never re-enters the connection**, so a service cannot
//! observe a half-updated state, whatever it asks for.
//!
//! Input the service does not consume is kept and offered again with the
//! next bytes; when it stopped because its output was full, it is offered
//! again, alone, once the peer has drained the output.

use std::borrow::Cow;

use super::Connection;
use crate::connection_info::ConnectionInfo;
use crate::engine::context::Context;
use crate::engine::stats::CloseReason;
use crate::service::{Service, Session};

impl Connection {
    /// Hands plaintext to the service, keeping what it does not consume.
    /// `fresh` follows whatever was left from before; `&[]` offers the
    /// leftover again (after the output drained).
    pub(super) fn deliver(&mut self, fresh: &[u8], cx: &mut Context<'_>) {
        if fresh.is_empty() && self.input.is_empty() {
            return;
        }
        let consumed;
        if self.input.is_empty() {
            consumed = self.call_on_data(fresh, cx);
            if consumed < fresh.len() {
                self.input.extend_from_slice(&fresh[consumed..]);
            }
        } else {
            let mut input = self.input.take();
            input.extend_from_slice(fresh);
            consumed = self.call_on_data(&input, cx);
            input.drain(..consumed);
            self.input.set(input);
        }
        if self.input.is_empty() || self.closed.is_some() {
            return;
        }
        if self.is_backpressured(cx.limits) {
            // The service stopped because the peer is not reading: offer the
            // rest again once it has (reading is off until then, so the
            // input cannot grow).
            self.input_waiting = true;
        } else if self.input.len() > cx.limits.max_input {
            log::info!(
                "closing {}: {} unconsumed input bytes exceed the limit",
                self.peer,
                self.input.len()
            );
            self.close_now(CloseReason::InputLimit);
        }
    }

    fn call_on_data(&mut self, data: &[u8], cx: &mut Context<'_>) -> usize {
        let mut consumed = 0;
        self.run_service(cx, |service, session| {
            consumed = service.on_data(session, data).min(data.len());
        });
        consumed
    }

    /// What a service may know about this connection: the record built at
    /// the TLS handshake, or, for plaintext, one made on the spot.
    pub(super) fn facts<'a>(&'a self, cx: &Context<'_>) -> Cow<'a, ConnectionInfo> {
        match self.tls.as_ref().and_then(|tls| tls.info.as_ref()) {
            Some(info) => Cow::Borrowed(info),
            None => {
                let mut info = ConnectionInfo::plain(
                    self.peer,
                    cx.listeners[usize::from(self.listener)].local,
                    cx.backend,
                );
                if let Some(header) = self.proxy() {
                    info.client = self.client();
                    info.proxy = Some(header.clone());
                }
                Cow::Owned(info)
            }
        }
    }

    /// Runs one service callback, then carries out what it asked for: queue
    /// its output, close, hold output for the peer. Broadcasts are left in
    /// `cx.work.requests` for the driver, which alone can reach the other
    /// connections.
    pub(super) fn run_service(
        &mut self,
        cx: &mut Context<'_>,
        callback: impl FnOnce(&mut dyn Service, &mut Session<'_>),
    ) {
        let queued = self.pending_output();
        cx.work.service_output.clear();
        {
            let info = self.facts(cx);
            let mut session = Session::new(
                self.id,
                &info,
                &mut cx.work.service_output,
                &mut cx.work.requests,
            )
            .with_clock(cx.now)
            .with_queue(queued, cx.limits.output_high_water);
            callback(&mut *cx.service, &mut session);
        }
        if !cx.work.service_output.is_empty() {
            self.queue_service_output(cx);
        }
        if let Some(waiting) = cx.work.requests.waiting_for_peer.take() {
            if waiting && !self.waiting_for_peer {
                self.clock.output_since = cx.now;
            }
            self.waiting_for_peer = waiting;
        }
        if std::mem::take(&mut cx.work.requests.close) {
            self.close_after_output(CloseReason::ServiceClosed);
        }
    }

    fn queue_service_output(&mut self, cx: &mut Context<'_>) {
        if cx.service.wants_drained() {
            self.wants_drained = true;
        }
        let was_idle = self.pending_output() == 0;
        let work = &mut *cx.work;
        match &mut self.tls {
            Some(tls) => {
                let result = tls.session.send(&work.service_output);
                work.service_output.clear();
                if let Err(err) = result {
                    log::debug!("cannot send to {}: {err}", self.peer);
                    self.close_now(CloseReason::TlsError);
                    return;
                }
            }
            None => self.output.append(&mut work.service_output, &mut work.pool),
        }
        // One large answer must not leave a large scratch buffer behind.
        if work.service_output.capacity() > crate::engine::buffers::MAX_POOLED_CAPACITY {
            work.service_output = work.pool.take();
        }
        if was_idle {
            self.clock.output_since = cx.now;
        }
    }
}
