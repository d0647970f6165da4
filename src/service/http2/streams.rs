//! Requests on a connection: HEADERS and CONTINUATION frames assembled into
//! header blocks, blocks decoded into requests, DATA read and dropped, and
//! each request answered once it has ended.
//!
//! The one idea: **a header block is decoded even when the stream it opens
//! is about to be refused**, because HPACK state is shared by the whole
//! connection (see `hpack/decoder.rs`); so every check that can wait waits
//! until the block is whole and decoded, and only checks that end the
//! connection anyway (an even stream id, a reused id, a flood) skip the
//! decoding. Assembling blocks is bounded twice — in encoded octets and in
//! CONTINUATION frames — so a peer cannot make the server buffer a header
//! block forever (the CONTINUATION flood, CVE-2024-27316 and its kin).

use super::connection::{calm, flow_control, Env, Fault, Http2Connection, PendingBlock};
use super::counters::Http2Event;
use super::error::{connection_error, protocol_error, stream_error, ErrorCode, StreamError};
use super::request::{Refusal, RequestHead};
use super::settings::DEFAULT_WINDOW;
use super::stream::{Stream, StreamState};
use super::write;
use crate::service::http::{Response, Status};
use crate::service::Session;

/// What a completed header block is for.
enum Role {
    NewStream,
    Trailers,
    /// HEADERS on a stream whose request already ended.
    AlreadyEnded,
}

impl Http2Connection {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_headers(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        self_dependent: bool,
        fragment: &[u8],
    ) -> Result<(), Fault> {
        if stream % 2 == 0 {
            let reason = "even stream id from a client";
            return Err(connection_error(
                ErrorCode::ProtocolError,
                Http2Event::StreamIdReuse,
                reason,
            )
            .into());
        }
        if end_headers {
            return self.on_header_block(
                env,
                session,
                stream,
                end_stream,
                self_dependent,
                fragment,
            );
        }
        if fragment.len() > env.limits.max_header_block {
            return Err(calm(Http2Event::ContinuationFlood, "header block too large").into());
        }
        self.block = Some(PendingBlock {
            stream,
            end_stream,
            self_dependent,
            fragments: fragment.to_vec(),
            continuations: 0,
        });
        Ok(())
    }

    pub(super) fn on_continuation(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
        end_headers: bool,
        fragment: &[u8],
    ) -> Result<(), Fault> {
        let Some(mut block) = self.block.take() else {
            return Err(protocol_error("CONTINUATION without a HEADERS before it").into());
        };
        block.continuations += 1;
        if block.continuations > env.limits.max_continuations {
            return Err(calm(
                Http2Event::ContinuationFlood,
                "too many CONTINUATION frames",
            )
            .into());
        }
        if block.fragments.len() + fragment.len() > env.limits.max_header_block {
            return Err(calm(Http2Event::ContinuationFlood, "header block too large").into());
        }
        block.fragments.extend_from_slice(fragment);
        if !end_headers {
            self.block = Some(block);
            return Ok(());
        }
        debug_assert_eq!(block.stream, stream);
        self.on_header_block(
            env,
            session,
            stream,
            block.end_stream,
            block.self_dependent,
            &block.fragments,
        )
    }

    fn on_header_block(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
        end_stream: bool,
        self_dependent: bool,
        block: &[u8],
    ) -> Result<(), Fault> {
        let role = match self.streams.get(&stream).map(|s| s.state) {
            Some(StreamState::Open) => Role::Trailers,
            Some(StreamState::Answered) => Role::AlreadyEnded,
            None if stream > self.highest_stream => Role::NewStream,
            None if stream == self.highest_stream => {
                let reason = "HEADERS on a closed stream";
                return Err(connection_error(
                    ErrorCode::StreamClosed,
                    Http2Event::StreamClosed,
                    reason,
                )
                .into());
            }
            None => {
                let reason = "stream id not above an earlier one";
                return Err(connection_error(
                    ErrorCode::ProtocolError,
                    Http2Event::StreamIdReuse,
                    reason,
                )
                .into());
            }
        };
        let limit = env.limits.max_header_list_size;
        let mut head = match role {
            Role::Trailers => RequestHead::trailers(limit),
            _ => RequestHead::new(limit),
        };
        self.decoder
            .decode(block, |name, value| head.add(name, value))
            .map_err(|error| {
                connection_error(
                    ErrorCode::CompressionError,
                    Http2Event::CompressionError,
                    error.as_str(),
                )
            })?;
        match role {
            Role::AlreadyEnded => Err(closed(stream, "HEADERS after the request ended").into()),
            Role::Trailers => self.on_trailers(env, session, stream, end_stream, head),
            Role::NewStream => {
                self.open_stream(env, session, stream, end_stream, self_dependent, head)
            }
        }
    }

    fn open_stream(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
        end_stream: bool,
        self_dependent: bool,
        head: RequestHead,
    ) -> Result<(), Fault> {
        self.highest_stream = stream;
        if self.going_away {
            return Ok(()); // above the GOAWAY's last stream: ignored (§6.8)
        }
        env.counters
            .record(Http2Event::Stream, session.now(), session.info().peer, "");
        if self_dependent {
            return Err(malformed(stream, "stream depends on itself").into());
        }
        if self.streams.len() >= env.limits.max_concurrent_streams as usize {
            let reason = "over SETTINGS_MAX_CONCURRENT_STREAMS";
            return Err(stream_error(
                stream,
                ErrorCode::RefusedStream,
                Http2Event::StreamRefused,
                reason,
            )
            .into());
        }
        let request = match head.finish() {
            Ok(request) => request,
            Err(Refusal::Malformed(reason)) => return Err(malformed(stream, reason).into()),
            Err(Refusal::TooLarge) => {
                let peer = session.info().peer;
                env.counters.record(
                    Http2Event::HeaderListTooLarge,
                    session.now(),
                    peer,
                    "header list over the limit",
                );
                self.refuse(session, stream, Status::HeaderFieldsTooLarge, end_stream);
                return Ok(());
            }
        };
        if request
            .content_length
            .is_some_and(|length| length > env.limits.max_request_body)
        {
            self.refuse(session, stream, Status::ContentTooLarge, end_stream);
            return Ok(());
        }
        if end_stream {
            if request.content_length.is_some_and(|length| length != 0) {
                return Err(malformed(stream, "content-length without a body").into());
            }
            self.answer(env, session, stream, &request, None);
            return Ok(());
        }
        let open = Stream::new(Some(request), self.peer.initial_window_size, DEFAULT_WINDOW);
        self.streams.insert(stream, open);
        Ok(())
    }

    fn on_trailers(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
        end_stream: bool,
        head: RequestHead,
    ) -> Result<(), Fault> {
        if !end_stream {
            return Err(malformed(stream, "trailers without END_STREAM").into());
        }
        if let Err(Refusal::Malformed(reason)) = head.finish_trailers() {
            return Err(malformed(stream, reason).into());
        }
        self.end_request(env, session, stream)
    }

    pub(super) fn on_data(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
        end_stream: bool,
        length: usize,
        flow_len: u32,
    ) -> Result<(), Fault> {
        // The connection window counts every DATA frame, whatever its stream.
        let credit = self
            .receive_window
            .receive(flow_len)
            .map_err(|_| flow_control("DATA beyond the connection window"))?;
        if let Some(increment) = credit {
            write::window_update(&mut self.out, 0, increment);
        }
        let Some(open) = self.streams.get_mut(&stream) else {
            if stream > self.highest_stream {
                return Err(protocol_error("DATA on an idle stream").into());
            }
            return Err(closed(stream, "DATA on a closed stream").into());
        };
        if open.state == StreamState::Answered {
            return Err(closed(stream, "DATA after the request ended").into());
        }
        let credit = open.receive.receive(flow_len).map_err(|_| {
            stream_error(
                stream,
                ErrorCode::FlowControlError,
                Http2Event::FlowControlError,
                "DATA beyond the stream window",
            )
        })?;
        open.body_received += length as u64;
        let declared = open
            .request
            .as_ref()
            .and_then(|request| request.content_length);
        if declared.is_some_and(|declared| open.body_received > declared) {
            return Err(malformed(stream, "body longer than content-length").into());
        }
        if open.body_received > env.limits.max_request_body {
            self.forget(stream);
            self.refuse(session, stream, Status::ContentTooLarge, end_stream);
            return Ok(());
        }
        if end_stream {
            return self.end_request(env, session, stream);
        }
        if let Some(increment) = credit {
            write::window_update(&mut self.out, stream, increment);
        }
        Ok(())
    }

    /// The request on `stream` has ended: check its length and answer it.
    fn end_request(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
    ) -> Result<(), Fault> {
        let Some(mut open) = self.streams.remove(&stream) else {
            return Ok(());
        };
        let Some(request) = open.request.take() else {
            return Ok(());
        };
        if request
            .content_length
            .is_some_and(|declared| declared != open.body_received)
        {
            return Err(malformed(stream, "body shorter than content-length").into());
        }
        self.answer(env, session, stream, &request, Some(open));
        Ok(())
    }

    /// Answers with an error status and, if the request had not ended, asks
    /// the peer to stop sending it (§8.1: RST_STREAM NO_ERROR after a
    /// complete response).
    fn refuse(
        &mut self,
        session: &mut Session<'_>,
        stream: u32,
        status: Status,
        request_ended: bool,
    ) {
        self.send_response(session, stream, &Response::error(status, None), false, None);
        if !request_ended {
            self.forget(stream);
            write::rst_stream(&mut self.out, stream, ErrorCode::NoError);
        }
    }
}

/// A request whose fields break RFC 9113 §8.
fn malformed(stream: u32, reason: &'static str) -> StreamError {
    stream_error(
        stream,
        ErrorCode::ProtocolError,
        Http2Event::MalformedRequest,
        reason,
    )
}

fn closed(stream: u32, reason: &'static str) -> StreamError {
    stream_error(
        stream,
        ErrorCode::StreamClosed,
        Http2Event::StreamClosed,
        reason,
    )
}
