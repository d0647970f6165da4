//! The pipeline a connection's bytes go through: sniff, then TLS, then the
//! service.
//!
//! ```text
//!   bytes ──► sniff ──plaintext──────────────────────────► service.on_data
//!               │                                              ▲
//!               └──TLS record──► TlsSession ──plaintext────────┘
//!                                  (handshake; on completion: on_connect)
//! ```
//!
//! Each stage hands what it produced to the next and nothing else: the
//! sniffer decides once, from a prefix that never changes its mind
//! (`tls::sniff`); TLS turns ciphertext into plaintext and back; the service
//! sees only plaintext and a [`Session`](crate::service::Session). The one
//! idea: **a stage is a function of the bytes it is given and the time**,
//! with no socket in sight, which is why the same pipeline runs under every
//! driver and can be tested byte by byte. The PROXY protocol header, from
//! a trusted proxy, is a stage in front of `sniff` (`proxy_stage.rs`).

use super::{Connection, Stage, Tls};
use crate::connection_info::{ConnectionInfo, Transport};
use crate::engine::context::Context;
use crate::engine::stats::CloseReason;
use crate::tls::{self, FirstBytes};

impl Connection {
    /// Bytes arrived from the peer.
    pub fn handle_input(&mut self, bytes: &[u8], cx: &mut Context<'_>) {
        if bytes.is_empty() || self.closed.is_some() {
            return;
        }
        self.clock.last_activity = cx.now;
        if let Some(bucket) = self.read_rate_mut() {
            bucket.consume(bytes.len(), cx.now);
        }
        if self.write_shut || self.ending.is_some() {
            return; // closing: what the peer still says is discarded
        }
        match self.stage {
            Stage::ProxyHeader => self.proxy_header(bytes, cx),
            Stage::Sniffing => self.sniff(bytes, cx),
            Stage::Handshaking | Stage::Open if self.tls.is_some() => {
                if let Some(tls) = &mut self.tls {
                    tls.session.receive(bytes);
                }
                self.drive_tls(cx);
            }
            Stage::Handshaking => {}
            Stage::Open => self.deliver(bytes, cx),
        }
    }

    /// The peer sent FIN: nothing more will arrive. Output still queued is
    /// written, then the connection closes.
    pub fn handle_eof(&mut self, cx: &mut Context<'_>) {
        self.read_closed = true;
        match self.stage {
            Stage::ProxyHeader if !self.input.is_empty() => self.proxy_header(&[], cx),
            // A proxy's health check may connect and leave without a word.
            Stage::ProxyHeader => self.close_now(CloseReason::PeerClosed),
            // A plaintext client may send a request and half-close before we
            // decided anything: decide on what we have.
            Stage::Sniffing if !self.input.is_empty() => self.sniff(&[], cx),
            Stage::Sniffing => self.close_now(CloseReason::PeerClosed),
            Stage::Handshaking => {
                log::info!("closing {}: the peer left mid-handshake", self.peer);
                self.close_now(CloseReason::TlsHandshakeFailed);
            }
            Stage::Open => {}
        }
    }

    /// The first bytes decide: plaintext, or a TLS record to hold until it
    /// is whole.
    pub(super) fn sniff(&mut self, bytes: &[u8], cx: &mut Context<'_>) {
        self.input.extend_from_slice(bytes);
        if self.refuse_untrusted_proxy_header(cx) {
            return;
        }
        let listeners = cx.listeners;
        let policy = &listeners[usize::from(self.listener)];
        let verdict = match tls::classify(&self.input) {
            // A plaintext-only listener (sniffing only to refuse a PROXY
            // header) serves whatever arrives as plaintext.
            _ if policy.tls.is_none() && !self.input.is_empty() => FirstBytes::Plain,
            FirstBytes::NeedMore if self.read_closed => FirstBytes::Plain,
            verdict => verdict,
        };
        let allow_plaintext = policy.allow_plaintext;
        match verdict {
            FirstBytes::NeedMore => {}
            FirstBytes::Plain if !allow_plaintext => {
                log::info!("refused {}: plaintext on a TLS-only listener", self.peer);
                self.close_now(CloseReason::PlaintextRefused);
            }
            FirstBytes::Plain => {
                self.open_plaintext(cx);
                if self.closed.is_none() && !self.input.is_empty() {
                    self.deliver(&[], cx);
                }
            }
            FirstBytes::Tls => {
                // Hold the first record until it is whole (see
                // `tls::first_record_len`): a stalled half ClientHello then
                // costs its bytes, not an OpenSSL session.
                if tls::first_record_len(&self.input).is_some_and(|len| self.input.len() < len) {
                    if self.read_closed {
                        log::info!("closing {}: the peer left mid-ClientHello", self.peer);
                        self.close_now(CloseReason::TlsHandshakeFailed);
                    }
                    return;
                }
                let Some(gate) = cx.listeners[usize::from(self.listener)].tls.clone() else {
                    self.close_now(CloseReason::PlaintextRefused);
                    return;
                };
                // The gate reads the ClientHello in the held record, picks
                // the domain and builds the session from that domain's own
                // context, or refuses (already counted) with an alert.
                let session = match gate.accept(&self.input) {
                    Ok(session) => session,
                    Err(refusal) => {
                        let err = refusal.error();
                        cx.counters.count_handshake_failed(
                            cx.listeners[usize::from(self.listener)].counters,
                            err.kind(),
                        );
                        log::info!("closing {}: TLS {} ({})", self.peer, err.reason(), err);
                        self.input.clear();
                        // The alert waits in `transmit()` for the driver's
                        // last try before the close.
                        self.output
                            .extend(&refusal.alert_record(), &mut cx.work.pool);
                        self.close_now(CloseReason::TlsHandshakeFailed);
                        return;
                    }
                };
                self.input.clear();
                self.tls = Some(Box::new(Tls {
                    session,
                    info: None,
                }));
                self.stage = Stage::Handshaking;
                self.drive_tls(cx);
            }
        }
    }

    /// Admits the connection as plaintext and lets the service greet it.
    pub(super) fn open_plaintext(&mut self, cx: &mut Context<'_>) {
        self.stage = Stage::Open;
        self.transport = Some(Transport::Plain);
        cx.stats.count_admitted(Transport::Plain);
        cx.counters.count_admitted(
            cx.listeners[usize::from(self.listener)].counters,
            Transport::Plain,
        );
        self.run_service(cx, |service, session| service.on_connect(session));
    }

    /// Runs the TLS engine over newly received ciphertext: handshake steps,
    /// then decrypted application data to the service.
    fn drive_tls(&mut self, cx: &mut Context<'_>) {
        let mut plaintext = std::mem::take(&mut cx.work.plaintext);
        plaintext.clear();
        let Some(tls) = self.tls.as_mut() else {
            cx.work.plaintext = plaintext;
            return;
        };
        let progress = match tls.session.process(&mut plaintext) {
            Ok(progress) => progress,
            Err(err) => {
                cx.work.plaintext = plaintext;
                let reason = match self.stage {
                    Stage::Handshaking => {
                        cx.counters.count_handshake_failed(
                            cx.listeners[usize::from(self.listener)].counters,
                            err.kind(),
                        );
                        CloseReason::TlsHandshakeFailed
                    }
                    _ => CloseReason::TlsError,
                };
                // The alert OpenSSL queued stays in `transmit()` for the
                // driver's last try.
                log::info!("closing {}: TLS {} ({})", self.peer, err.reason(), err);
                self.close_now(reason);
                return;
            }
        };
        if progress.just_completed {
            let mut base = ConnectionInfo::plain(
                self.peer,
                cx.listeners[usize::from(self.listener)].local,
                cx.backend,
            );
            // Fields, not `self.client()`: `tls` is borrowed.
            let proxy = self.edge.as_ref().and_then(|e| e.proxy.clone());
            base.client = proxy.as_ref().and_then(|h| h.source).unwrap_or(self.peer);
            base.proxy = proxy;
            let info = tls.session.info(&base);
            log::debug!(
                "admitted {} over {} for {}",
                self.peer,
                info.transport,
                info.domain.as_deref().unwrap_or("-")
            );
            cx.stats.count_admitted(info.transport);
            let listener = cx.listeners[usize::from(self.listener)].counters;
            cx.counters.count_admitted(listener, info.transport);
            let resumed = tls.session.ssl().session_reused();
            cx.counters
                .count_handshake(listener, info.transport, resumed);
            self.transport = Some(info.transport);
            tls.info = Some(info);
            self.stage = Stage::Open;
            self.run_service(cx, |service, session| service.on_connect(session));
        }
        if !plaintext.is_empty() && self.closed.is_none() && self.ending.is_none() {
            self.deliver(&plaintext, cx);
        }
        cx.work.plaintext = plaintext;
        if progress.peer_closed {
            // The peer said close_notify: answer with ours, then close once
            // it is written.
            self.read_closed = true;
            self.close_after_output(CloseReason::PeerClosed);
        }
    }
}
