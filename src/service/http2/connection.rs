//! One HTTP/2 connection: bytes in, frames handled in order, frames out.
//!
//! The service hands [`Http2Connection::receive`] every unconsumed byte;
//! it consumes whole frames only and leaves a partial one for next time,
//! exactly as the HTTP/1.1 service leaves a partial request head. Each frame
//! is handled to the end before the next is looked at, and its replies are
//! queued at once, so the order of the peer's frames is the order of our
//! answers. This file holds the loop, the control frames (SETTINGS, PING,
//! GOAWAY, WINDOW_UPDATE, RST_STREAM, PRIORITY) and the two ways out of an
//! error; `streams.rs` holds requests (HEADERS, CONTINUATION, DATA) and
//! `send.rs` responses and flow-controlled output.
//!
//! The one idea: **a connection error is final and a stream error is not**.
//! After GOAWAY nothing the peer sends is looked at (it is consumed and
//! dropped, so the engine does not cut the connection off for unconsumed
//! input before our GOAWAY is written); after RST_STREAM the connection
//! simply goes on.

use std::collections::{HashMap, VecDeque};

use super::counters::{Http2Counters, Http2Event};
use super::error::{
    connection_error, protocol_error, stream_error, ConnectionError, ErrorCode, StreamError,
};
use super::flow::{ReceiveWindow, SendWindow};
use super::frame::{self, Frame, Parsed};
use super::hpack::Decoder;
use super::limits::{Http2Limits, RateWindow};
use super::preface::PREFACE;
use super::settings::{
    self, PeerSettings, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, OUR_HEADER_TABLE_SIZE,
};
use super::stream::Stream;
use super::write;
use crate::domains::DomainRules;
use crate::service::Session;

/// What a connection needs from its service: shared, read-only.
pub struct Env<'a> {
    pub rules: &'a DomainRules,
    pub limits: &'a Http2Limits,
    pub counters: &'a Http2Counters,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the 24-octet client preface.
    Preface,
    /// The preface is in; the first frame must be SETTINGS (§3.4).
    FirstSettings,
    Open,
    /// GOAWAY for an error was sent: everything else is dropped.
    Failed,
}

/// A header block still receiving CONTINUATION frames.
#[derive(Debug)]
pub(super) struct PendingBlock {
    pub stream: u32,
    pub end_stream: bool,
    pub self_dependent: bool,
    pub fragments: Vec<u8>,
    pub continuations: usize,
}

/// Why a frame could not be handled.
pub(super) enum Fault {
    Connection(ConnectionError),
    Stream(StreamError),
}

impl From<ConnectionError> for Fault {
    fn from(error: ConnectionError) -> Fault {
        Fault::Connection(error)
    }
}

impl From<StreamError> for Fault {
    fn from(error: StreamError) -> Fault {
        Fault::Stream(error)
    }
}

/// The server side of one HTTP/2 connection.
#[derive(Debug)]
pub struct Http2Connection {
    pub(super) phase: Phase,
    pub(super) decoder: Decoder,
    pub(super) peer: PeerSettings,
    pub(super) send_window: SendWindow,
    pub(super) receive_window: ReceiveWindow,
    /// Streams that still owe or are owed something (see `stream.rs`).
    pub(super) streams: HashMap<u32, Stream>,
    /// Streams whose response waits for window, oldest first.
    pub(super) blocked: VecDeque<u32>,
    /// The highest stream id the peer opened; lower ids are closed.
    pub(super) highest_stream: u32,
    pub(super) block: Option<PendingBlock>,
    pub(super) resets: RateWindow,
    pub(super) pings: RateWindow,
    pub(super) settings_frames: RateWindow,
    /// Frames queued by the frame being handled.
    pub(super) out: Vec<u8>,
    /// What we last told the engine through `set_waiting_for_peer`.
    pub(super) waiting: bool,
    /// GOAWAY sent (shutdown): new streams are ignored.
    pub(super) going_away: bool,
}

impl Http2Connection {
    pub fn new() -> Http2Connection {
        Http2Connection {
            phase: Phase::Preface,
            decoder: Decoder::new(OUR_HEADER_TABLE_SIZE),
            peer: PeerSettings::default(),
            send_window: SendWindow::new(DEFAULT_WINDOW),
            receive_window: ReceiveWindow::new(DEFAULT_WINDOW),
            streams: HashMap::new(),
            blocked: VecDeque::new(),
            highest_stream: 0,
            block: None,
            resets: RateWindow::default(),
            pings: RateWindow::default(),
            settings_frames: RateWindow::default(),
            out: Vec::new(),
            waiting: false,
            going_away: false,
        }
    }

    /// Sends the server's connection preface: our SETTINGS (§3.4). May go
    /// before the client's preface has arrived.
    pub fn start(&mut self, limits: &Http2Limits, session: &mut Session<'_>) {
        write::settings(
            &mut self.out,
            &[
                (
                    settings::MAX_CONCURRENT_STREAMS,
                    limits.max_concurrent_streams,
                ),
                (
                    settings::MAX_HEADER_LIST_SIZE,
                    u32::try_from(limits.max_header_list_size).unwrap_or(u32::MAX),
                ),
            ],
        );
        self.flush_out(session);
    }

    /// The server is shutting down: GOAWAY with the last stream we will
    /// answer (§6.8). Streams already open are still answered; the engine
    /// closes once output drains.
    pub fn shutdown(&mut self, session: &mut Session<'_>) {
        if self.phase == Phase::Failed || self.going_away {
            return;
        }
        self.going_away = true;
        write::goaway(
            &mut self.out,
            self.highest_stream,
            ErrorCode::NoError,
            "server shutting down",
        );
        self.flush_out(session);
        if self.streams.is_empty() {
            // Nothing under way: the GOAWAY is the last word.
            session.close();
        }
    }

    /// Handles every whole frame in `data`; returns the octets consumed.
    pub fn receive(&mut self, env: &Env<'_>, session: &mut Session<'_>, data: &[u8]) -> usize {
        let mut consumed = 0;
        while self.phase != Phase::Failed {
            // Back-pressure: leave the rest until the peer reads.
            if session.output_full() {
                break;
            }
            let rest = &data[consumed..];
            if self.phase == Phase::Preface {
                let compared = rest.len().min(PREFACE.len());
                if rest[..compared] != PREFACE[..compared] {
                    let error = connection_error(
                        ErrorCode::ProtocolError,
                        Http2Event::BadPreface,
                        "invalid connection preface",
                    );
                    self.fail(env, session, error);
                    break;
                }
                if compared < PREFACE.len() {
                    break;
                }
                consumed += PREFACE.len();
                self.phase = Phase::FirstSettings;
                continue;
            }
            let (frame, used) = match frame::parse(rest, DEFAULT_MAX_FRAME_SIZE) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Frame(frame, used)) => (frame, used),
                Err(error) => {
                    self.fail(env, session, error);
                    break;
                }
            };
            consumed += used;
            match self.handle(env, session, frame) {
                Ok(()) => {}
                Err(Fault::Stream(error)) => self.reset(env, session, error),
                Err(Fault::Connection(error)) => self.fail(env, session, error),
            }
            self.flush_out(session);
        }
        self.flush_out(session);
        self.update_waiting(env, session);
        if self.phase == Phase::Failed {
            data.len()
        } else {
            consumed
        }
    }

    fn handle(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        frame: Frame<'_>,
    ) -> Result<(), Fault> {
        if let Some(block) = &self.block {
            // §6.10: nothing may come between a header block's frames.
            let continues =
                matches!(frame, Frame::Continuation { stream, .. } if stream == block.stream);
            if !continues {
                return Err(
                    protocol_error("a header block was interrupted by another frame").into(),
                );
            }
        }
        if self.phase == Phase::FirstSettings {
            if !matches!(frame, Frame::Settings { ack: false, .. }) {
                let reason = "the first frame after the preface is not SETTINGS";
                return Err(connection_error(
                    ErrorCode::ProtocolError,
                    Http2Event::BadPreface,
                    reason,
                )
                .into());
            }
            self.phase = Phase::Open;
        }
        match frame {
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.on_data(env, session, stream, end_stream, data.len(), flow_len),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                priority,
                fragment,
            } => {
                let self_dependent = priority.is_some_and(|p| p.depends_on == stream);
                self.on_headers(
                    env,
                    session,
                    stream,
                    end_stream,
                    end_headers,
                    self_dependent,
                    fragment,
                )
            }
            Frame::Continuation {
                stream,
                end_headers,
                fragment,
            } => self.on_continuation(env, session, stream, end_headers, fragment),
            Frame::Priority { stream, priority } if priority.depends_on == stream => {
                Err(stream_error(
                    stream,
                    ErrorCode::ProtocolError,
                    Http2Event::ProtocolError,
                    "stream depends on itself",
                )
                .into())
            }
            Frame::Priority { .. } | Frame::Unknown { .. } => Ok(()),
            Frame::RstStream { stream, .. } => self.on_reset(env, session, stream),
            Frame::Settings { ack: true, .. } => Ok(()),
            Frame::Settings { ack: false, params } => self.on_settings(env, session, params),
            Frame::Ping { ack: true, .. } => Ok(()),
            Frame::Ping { ack: false, data } => {
                if self.pings.over(env.limits.pings, session.now()) {
                    return Err(calm(Http2Event::PingFlood, "too many PING frames").into());
                }
                write::ping_ack(&mut self.out, &data);
                Ok(())
            }
            // The peer will open no more streams; it closes the connection
            // when it is done with the ones it has (§6.8).
            Frame::GoAway { .. } => Ok(()),
            Frame::WindowUpdate { stream, increment } => {
                self.on_window_update(env, session, stream, increment)
            }
            Frame::Malformed(error) => Err(error.into()),
        }
    }

    /// Drops a stream's state: it is closed.
    pub(super) fn forget(&mut self, stream: u32) {
        self.streams.remove(&stream);
        self.blocked.retain(|&id| id != stream);
    }

    /// A stream error: RST_STREAM, count, and carry on.
    pub(super) fn reset(&mut self, env: &Env<'_>, session: &mut Session<'_>, error: StreamError) {
        env.counters.record(
            error.event,
            session.now(),
            session.info().peer,
            error.reason,
        );
        self.forget(error.stream);
        write::rst_stream(&mut self.out, error.stream, error.code);
    }

    /// A connection error: GOAWAY, count, close once it is written.
    pub(super) fn fail(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        error: ConnectionError,
    ) {
        env.counters.record(
            error.event,
            session.now(),
            session.info().peer,
            error.reason,
        );
        write::goaway(&mut self.out, self.highest_stream, error.code, error.reason);
        self.flush_out(session);
        self.phase = Phase::Failed;
        self.streams.clear();
        self.blocked.clear();
        session.close();
    }

    pub(super) fn flush_out(&mut self, session: &mut Session<'_>) {
        if !self.out.is_empty() {
            session.send(&self.out);
            self.out.clear();
        }
    }
}

impl Default for Http2Connection {
    fn default() -> Http2Connection {
        Http2Connection::new()
    }
}

/// GOAWAY ENHANCE_YOUR_CALM: the peer asks for work faster than allowed.
pub(super) fn calm(event: Http2Event, reason: &'static str) -> ConnectionError {
    connection_error(ErrorCode::EnhanceYourCalm, event, reason)
}

pub(super) fn flow_control(reason: &'static str) -> ConnectionError {
    connection_error(
        ErrorCode::FlowControlError,
        Http2Event::FlowControlError,
        reason,
    )
}
