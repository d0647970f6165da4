//! The PROXY protocol stage: a trusted proxy's header, then the checks on
//! the real client it names, before the first byte reaches `sniff`.
//!
//! ```text
//!   trusted peer:    bytes ──► whole header? ──► access rules, per-client
//!                              (never a part)    limits on its source ──► sniff
//!   untrusted peer:  bytes ──► a PROXY signature? ──► close: proxy_untrusted
//!                              otherwise ─────────────────────────────► sniff
//! ```
//!
//! The one idea: **a header is believed only from a trusted peer, and
//! only when whole.** From a peer in `trusted_proxies`, the header is
//! required and parsed strictly (`crate::proxy`); nothing after it is
//! looked at until it has been checked end to end, and it must arrive
//! within `proxy_header_secs`. From anyone else, a connection that starts
//! like a header is closed: a client must not be able to claim an address
//! by writing one. A listener with the protocol off never looks.

use std::sync::Arc;

use super::{Connection, Stage};
use crate::engine::context::Context;
use crate::engine::stats::CloseReason;
use crate::proxy::{self, Parsed, Signature};

impl Connection {
    /// Bytes from a trusted proxy while its header is incomplete.
    pub(super) fn proxy_header(&mut self, bytes: &[u8], cx: &mut Context<'_>) {
        self.input.extend_from_slice(bytes);
        let listeners = cx.listeners;
        let policy = &listeners[usize::from(self.listener)];
        let Some(versions) = policy.edge.proxy.versions() else {
            return; // unreachable: the stage exists only with the protocol on
        };
        match proxy::parse(&self.input, versions) {
            Parsed::NeedMore if self.read_closed => {
                log::info!(
                    "closing {}: the proxy left mid-header ({} bytes)",
                    self.peer,
                    self.input.len()
                );
                self.close_now(CloseReason::ProxyInvalid);
            }
            Parsed::NeedMore => {}
            Parsed::Invalid(err) => {
                log::info!("closing {}: invalid PROXY header: {err}", self.peer);
                self.input.clear();
                self.close_now(CloseReason::ProxyInvalid);
            }
            Parsed::Header(header, length) => {
                let mut rest = self.input.take();
                rest.drain(..length);
                self.edge.get_or_insert_with(Default::default).proxy = Some(Arc::from(header));
                let client = self.client_ip();
                match policy.edge.admit_client(client, cx.now) {
                    Ok(counted) => self.client_counted = counted,
                    Err(reason) => {
                        self.close_now(reason);
                        return;
                    }
                }
                log::debug!("{} speaks for {}", self.peer, self.client());
                self.stage = Stage::Sniffing;
                if policy.tls.is_none() {
                    self.open_plaintext(cx);
                    if self.closed.is_none() && !rest.is_empty() {
                        self.deliver(&rest, cx);
                    }
                } else if !rest.is_empty() {
                    self.sniff(&rest, cx);
                } else if self.read_closed {
                    self.close_now(CloseReason::PeerClosed);
                }
            }
        }
    }

    /// On a listener with the protocol on, a peer that is not a trusted
    /// proxy may not send a header: closes such a connection. Returns
    /// whether sniffing must stop here (closed, or too few bytes to tell).
    pub(super) fn refuse_untrusted_proxy_header(&mut self, cx: &mut Context<'_>) -> bool {
        if self.proxy().is_some()
            || !cx.listeners[usize::from(self.listener)]
                .edge
                .proxy_enabled()
        {
            return false;
        }
        match proxy::signature(&self.input) {
            Signature::No => false,
            Signature::Partial if self.read_closed || self.input.is_empty() => false,
            Signature::Partial => true,
            Signature::V1 | Signature::V2 => {
                log::info!(
                    "closing {}: a PROXY header from a peer not in trusted_proxies",
                    self.peer
                );
                self.input.clear();
                self.close_now(CloseReason::ProxyUntrusted);
                true
            }
        }
    }
}
