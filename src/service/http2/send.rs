//! Responses: the same answers as the HTTP/1.1 service, as HEADERS and
//! DATA frames, sent as fast as flow control allows.
//!
//! The response is decided by `http::route` — the one function both HTTP
//! versions share, so the gate's 421 and 403 apply to every stream exactly
//! as to every HTTP/1.1 request. Its head becomes an HPACK block, its body
//! DATA frames no larger than the peer's SETTINGS_MAX_FRAME_SIZE and no
//! more than both windows (the stream's and the connection's) allow.
//!
//! The one idea: **output the window does not allow waits, and the engine
//! is told so**. What cannot be sent stays with its stream, which joins a
//! queue of blocked streams served in order when WINDOW_UPDATE or SETTINGS
//! open a window; while any stream waits, the connection says
//! `set_waiting_for_peer(true)`, so the engine's write-stall deadline
//! closes a peer that never opens its window instead of holding the
//! connection (and its stream state) forever.

use super::connection::{Env, Http2Connection};
use super::counters::Http2Event;
use super::hpack::encode_field;
use super::request::Request;
use super::settings::DEFAULT_WINDOW;
use super::stream::{PendingBody, Stream, StreamState};
use super::write;
use crate::service::http::{route, Response, ALLOWED_METHODS};
use crate::service::Session;

impl Http2Connection {
    /// Answers a request that has ended.
    pub(super) fn answer(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
        request: &Request,
        state: Option<Stream>,
    ) {
        let response = route(
            env.rules,
            session.info(),
            &request.method,
            &request.path,
            request.host(),
        );
        let head_only = request.method == "HEAD";
        self.send_response(session, stream, &response, head_only, state);
    }

    /// Sends `response` on `stream`: the head at once, the body as far as
    /// the windows allow; the rest waits with the stream.
    pub(super) fn send_response(
        &mut self,
        session: &mut Session<'_>,
        stream: u32,
        response: &Response,
        head_only: bool,
        state: Option<Stream>,
    ) {
        let mut block = Vec::with_capacity(64);
        let mut digits = itoa_buffer();
        encode_field(
            b":status",
            format_u64(&mut digits, u64::from(response.status.code())),
            &mut block,
        );
        encode_field(b"server", b"portcullis", &mut block);
        encode_field(b"content-type", b"text/plain; charset=utf-8", &mut block);
        encode_field(
            b"content-length",
            format_u64(&mut digits, response.body.len() as u64),
            &mut block,
        );
        if response.allow {
            encode_field(b"allow", ALLOWED_METHODS.as_bytes(), &mut block);
        }
        let end_stream = head_only || response.body.is_empty();
        write::headers(
            &mut self.out,
            stream,
            &block,
            end_stream,
            self.peer.max_frame_size,
        );
        self.flush_out(session);
        if end_stream {
            return;
        }
        let mut state = state
            .unwrap_or_else(|| Stream::new(None, self.peer.initial_window_size, DEFAULT_WINDOW));
        state.state = StreamState::Answered;
        state.pending = PendingBody {
            bytes: response.body.as_bytes().to_vec(),
            sent: 0,
        };
        self.send_pending(stream, &mut state);
        if !state.is_done() {
            self.streams.insert(stream, state);
            self.blocked.push_back(stream);
        }
    }

    /// Sends as much of `state`'s pending body as the windows allow.
    fn send_pending(&mut self, stream: u32, state: &mut Stream) {
        loop {
            let rest = state.pending.remaining();
            if rest.is_empty() {
                return;
            }
            let chunk = rest
                .len()
                .min(self.send_window.available())
                .min(state.send.available())
                .min(self.peer.max_frame_size);
            if chunk == 0 {
                return;
            }
            write::data(&mut self.out, stream, &rest[..chunk], chunk == rest.len());
            self.send_window.spend(chunk);
            state.send.spend(chunk);
            state.pending.sent += chunk;
        }
    }

    /// A window opened: serve blocked streams, oldest first.
    pub(super) fn send_blocked(&mut self, session: &mut Session<'_>) {
        let mut still_blocked = std::collections::VecDeque::new();
        while let Some(stream) = self.blocked.pop_front() {
            let Some(mut state) = self.streams.remove(&stream) else {
                continue;
            };
            self.send_pending(stream, &mut state);
            if !state.is_done() {
                self.streams.insert(stream, state);
                still_blocked.push_back(stream);
            }
        }
        self.blocked = still_blocked;
        self.flush_out(session);
    }

    /// Tells the engine whether output waits for the peer's window.
    pub(super) fn update_waiting(&mut self, env: &Env<'_>, session: &mut Session<'_>) {
        let waiting = !self.blocked.is_empty();
        if waiting != self.waiting {
            if waiting {
                let detail = "response waits for a flow-control window";
                env.counters.record(
                    Http2Event::ZeroWindowWait,
                    session.now(),
                    session.info().peer,
                    detail,
                );
            }
            session.set_waiting_for_peer(waiting);
            self.waiting = waiting;
        }
    }
}

fn itoa_buffer() -> [u8; 20] {
    [0; 20]
}

/// Decimal digits of `value`, written into `buffer` without allocating.
fn format_u64(buffer: &mut [u8; 20], mut value: u64) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buffer[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_as_decimal() {
        let mut buffer = itoa_buffer();
        assert_eq!(format_u64(&mut buffer, 0), b"0");
        assert_eq!(format_u64(&mut buffer, 421), b"421");
        assert_eq!(format_u64(&mut buffer, u64::MAX), b"18446744073709551615");
    }
}
