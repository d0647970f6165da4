//! A minimal, strict HTTP/1.1 server, as a [`Service`].
//!
//! It answers `GET /` with what the server knows about the connection
//! (transport, SNI, ALPN, client certificate, the domain that admitted it)
//! and `GET /healthz` with `ok`, over plaintext, TLS and mTLS alike. It is
//! small, but it is the service where the TLS gate's decisions meet what a
//! client *claims*, so the one idea to take away is:
//!
//! **The request must match the handshake that admitted it.** The TLS gate
//! chose a domain policy from the SNI before any HTTP byte was read; the
//! `Host` header is just text the client typed afterwards. A client admitted
//! by one domain's handshake (no client certificate needed) must not reach
//! another domain's content by naming it in `Host` (421), and a domain that
//! requires a client certificate must never be served without one: not over
//! TLS without a certificate, and not over plaintext on the shared port,
//! where `Host` is the only claim there is (403). These decisions live in
//! `policy.rs` as small pure functions.
//!
//! How bytes become answers:
//! - The engine hands [`Http::on_data`] every unconsumed byte. Complete
//!   requests are answered in order (pipelining) and consumed; a partial
//!   request is left unconsumed and offered again with more bytes. Once
//!   the output reaches the high-water mark ([`Session::output_full`]) the
//!   rest waits too, so a client that pipelines without reading cannot make
//!   the server queue more than that.
//! - A head that has not ended within [`HttpLimits::max_header_bytes`] is
//!   refused (431, or 414 when even the request line does not fit) as soon
//!   as that many bytes are in, never by waiting for more.
//! - Request bodies are framed by `Content-Length` only. A body (say on a
//!   `GET`) is read and thrown away, up to [`MAX_DISCARDED_BODY`] bytes, so
//!   the next pipelined request is found where it really starts.
//!   `Transfer-Encoding` is answered 501 and the connection closed: chunked
//!   bodies are not implemented, and without them the end of the body
//!   cannot be found (with `Content-Length` too, or in HTTP/1.0, it is 400).
//! - Methods: `GET`, `HEAD` and `POST` are served (a `POST` body is read
//!   and dropped; the answer is the `GET` one). Other methods RFC 9110
//!   defines get 405 with `Allow: GET, HEAD, POST`; method tokens it does
//!   not define get 501 (RFC 9110 §9.1 and §15.6.2). Both keep the
//!   connection open.
//! - Errors that leave the byte stream in doubt (400, 413, 414, 431, 501 for
//!   `Transfer-Encoding`, 505) are sent with `Connection: close` and close
//!   the session; answers where the request was understood (403, 404, 405,
//!   421, 501 for a method) keep it open.
//! - Persistence: HTTP/1.1 stays open unless `Connection: close`; HTTP/1.0
//!   closes unless `Connection: keep-alive`.
//! - Line endings are CRLF only; a bare LF or CR is a 400 (see `request.rs`).
//! - No `Date` header, so responses are deterministic (see `response.rs`).
//!
//! - HTTP/2 shares the port and the answers (see `service::http2`): ALPN
//!   `h2` over TLS, or, over plaintext, a session whose first bytes are the
//!   HTTP/2 connection preface (h2c; [`Http2Options::h2c`]). Both versions
//!   answer through [`route`], so the 421 and 403 rules are the same for
//!   an HTTP/1.1 request and for every HTTP/2 stream.
//!
//! Memory per session is a few words in a map keyed by [`SessionId`],
//! removed in `on_close`; requests are parsed in place without copying.

pub mod live_rules;
mod policy;
mod request;
mod response;

use std::collections::HashMap;
use std::sync::Arc;

use super::http2::preface::{self, Opening};
use super::http2::{Env, Http2Connection, Http2Event, Http2Options};
use super::{Service, Session, SessionId};
use crate::connection_info::{ConnectionInfo, Transport};
use crate::domains::DomainRules;
use live_rules::{LiveRules, RulesView};
use policy::{client_auth_satisfied, governing_rule};
use request::{empty_lines_len, parse_head, HeadScanner, Rejection, Request, Scan, Version};
pub(crate) use request::{parse_authority, Host};
use response::{connection_report, render, Persistence};
pub(crate) use response::{Response, Status, ALLOWED_METHODS};

/// The largest request body read and discarded to keep a connection in
/// sync; a larger one is refused with 413 and the connection closed. The
/// body is never stored, so this bounds bandwidth spent, not memory.
pub const MAX_DISCARDED_BODY: u64 = 1 << 20;

/// Per-connection limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// The largest request head (request line, header fields and the empty
    /// line that ends them). Default 8192.
    pub max_header_bytes: usize,
    /// Close the connection after answering this many requests. Default:
    /// no limit.
    pub max_requests_per_connection: Option<usize>,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_header_bytes: 8192,
            max_requests_per_connection: None,
        }
    }
}

/// The HTTP service. One instance per worker thread.
#[derive(Debug)]
pub struct Http {
    rules: RulesView,
    limits: HttpLimits,
    http2: Http2Options,
    sessions: HashMap<SessionId, Protocol>,
}

/// Which HTTP a session speaks, once known.
#[derive(Debug)]
enum Protocol {
    /// A plaintext session whose first bytes may still be the HTTP/2
    /// preface (see `http2::preface`).
    Undecided,
    Http1(SessionState),
    Http2(Box<Http2Connection>),
}

/// What must be remembered about an HTTP/1.1 session between `on_data`
/// calls.
#[derive(Debug, Default)]
struct SessionState {
    /// How far the head being received has been scanned.
    scanner: HeadScanner,
    /// Bytes of the last request's body still to be read and dropped.
    body_left: u64,
    /// Requests answered so far.
    answered: usize,
    /// The last response has been sent; anything further is ignored.
    closing: bool,
}

impl Http {
    /// HTTP/1.1 with these limits, and HTTP/2 with its defaults and
    /// counters of its own.
    pub fn new(rules: Arc<DomainRules>, limits: HttpLimits) -> Http {
        Http::with_http2(rules, limits, Http2Options::default())
    }

    /// HTTP/1.1 and HTTP/2 as configured; `http2.counters` is normally
    /// shared by every worker's instance.
    pub fn with_http2(rules: Arc<DomainRules>, limits: HttpLimits, http2: Http2Options) -> Http {
        Http::with_live_rules(Arc::new(LiveRules::new(rules)), limits, http2)
    }

    /// As [`with_http2`](Self::with_http2), with rules a reload can replace.
    pub fn with_live_rules(rules: Arc<LiveRules>, limits: HttpLimits, http2: Http2Options) -> Http {
        Http {
            rules: RulesView::new(rules),
            limits,
            http2,
            sessions: HashMap::new(),
        }
    }
}

/// Starts HTTP/2 on a session: our SETTINGS go out at once.
fn open_http2(http2: &Http2Options, session: &mut Session<'_>, event: Http2Event) -> Protocol {
    http2
        .counters
        .record(event, session.now(), session.info().peer, "");
    let mut connection = Box::new(Http2Connection::new());
    connection.start(&http2.limits, session);
    Protocol::Http2(connection)
}

/// The protocol of a session not decided at connect, from its first bytes:
/// HTTP/2 when ALPN chose it or a plaintext session opens with the h2c
/// preface, HTTP/1.1 otherwise; `None` while the bytes cannot tell yet.
fn decide(http2: &Http2Options, session: &mut Session<'_>, data: &[u8]) -> Option<Protocol> {
    if negotiated_h2(session.info()) {
        return Some(open_http2(http2, session, Http2Event::ConnectionTls));
    }
    if session.info().transport == Transport::Plain && http2.h2c {
        return match preface::classify(data) {
            Opening::NeedMore => None,
            Opening::Http2 => Some(open_http2(http2, session, Http2Event::ConnectionCleartext)),
            Opening::Http1 => Some(Protocol::Http1(SessionState::default())),
        };
    }
    Some(Protocol::Http1(SessionState::default()))
}

/// Whether TLS chose HTTP/2 by ALPN.
fn negotiated_h2(info: &ConnectionInfo) -> bool {
    info.alpn.as_deref() == Some("h2")
}

impl Service for Http {
    fn on_connect(&mut self, session: &mut Session<'_>) {
        let protocol = if negotiated_h2(session.info()) {
            open_http2(&self.http2, session, Http2Event::ConnectionTls)
        } else if session.info().transport == Transport::Plain && self.http2.h2c {
            Protocol::Undecided
        } else {
            Protocol::Http1(SessionState::default())
        };
        self.sessions.insert(session.id(), protocol);
    }

    fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize {
        // One lookup per call, and the session's state is served where it
        // lies: this runs for every request, so nothing is moved out of the
        // map and back.
        let protocol = self
            .sessions
            .entry(session.id())
            .or_insert(Protocol::Undecided);
        if let Protocol::Undecided = protocol {
            match decide(&self.http2, session, data) {
                Some(decided) => *protocol = decided,
                None => return 0,
            }
        }
        let rules = self.rules.current();
        match protocol {
            Protocol::Http1(state) => serve_http1(rules, &self.limits, session, state, data),
            Protocol::Http2(connection) => {
                let env = Env {
                    rules,
                    limits: &self.http2.limits,
                    counters: &self.http2.counters,
                };
                connection.receive(&env, session, data)
            }
            Protocol::Undecided => 0,
        }
    }

    /// HTTP/2 says GOAWAY and finishes the streams under way; HTTP/1.1
    /// closes once the response being written is out (a keep-alive
    /// connection has nothing more to finish).
    fn on_shutdown(&mut self, session: &mut Session<'_>) {
        match self.sessions.get_mut(&session.id()) {
            Some(Protocol::Http2(connection)) => connection.shutdown(session),
            _ => session.close(),
        }
    }

    fn on_close(&mut self, id: SessionId, _info: &ConnectionInfo) {
        self.sessions.remove(&id);
    }
}

/// Answers every complete HTTP/1.1 request in `data`; returns the bytes
/// consumed.
fn serve_http1(
    rules: &DomainRules,
    limits: &HttpLimits,
    session: &mut Session<'_>,
    state: &mut SessionState,
    data: &[u8],
) -> usize {
    let mut consumed = 0;
    while !state.closing {
        // Stop answering pipelined requests once the peer owes us a
        // high-water mark of reading: the rest stays unconsumed and is
        // offered again when the output drains.
        if session.output_full() {
            break;
        }
        consumed += discard_body(state, &data[consumed..]);
        if state.body_left > 0 {
            break;
        }
        let empty_lines = empty_lines_len(&data[consumed..]);
        if empty_lines > 0 {
            // The head now starts elsewhere; what was scanned is stale.
            consumed += empty_lines;
            state.scanner = HeadScanner::default();
        }
        let unconsumed = &data[consumed..];
        if unconsumed.is_empty() {
            break;
        }
        match state.scanner.scan(unconsumed, limits.max_header_bytes) {
            Scan::Incomplete => break,
            Scan::Rejected(rejection) => refuse(session, state, rejection, false),
            Scan::Complete(head_len) => {
                state.scanner = HeadScanner::default();
                consumed += head_len;
                answer(rules, limits, session, state, &unconsumed[..head_len]);
            }
        }
    }
    // Once closing, whatever else arrives is read and dropped.
    if state.closing {
        data.len()
    } else {
        consumed
    }
}

/// Drops as much of the pending body as `data` holds; returns how much.
fn discard_body(state: &mut SessionState, data: &[u8]) -> usize {
    let available = u64::try_from(data.len()).unwrap_or(u64::MAX);
    let dropped = state.body_left.min(available);
    state.body_left -= dropped;
    // `dropped <= data.len()`, so it fits in a usize.
    usize::try_from(dropped).unwrap_or(data.len())
}

/// Answers one complete request head and decides whether the connection
/// goes on.
fn answer(
    rules: &DomainRules,
    limits: &HttpLimits,
    session: &mut Session<'_>,
    state: &mut SessionState,
    head: &[u8],
) {
    let request = match parse_head(head) {
        Ok(request) => request,
        Err(rejection) => return refuse(session, state, rejection, false),
    };
    let head_only = request.method == "HEAD";
    if request.content_length > MAX_DISCARDED_BODY {
        return refuse(session, state, Rejection::BodyTooLarge, head_only);
    }
    state.answered += 1;
    let limit_reached = limits
        .max_requests_per_connection
        .is_some_and(|max| state.answered >= max);
    let last = limit_reached || !request.wants_keep_alive();
    let persistence = match (last, request.version) {
        (true, _) => Persistence::Close,
        (false, Version::Http10) => Persistence::KeepAlive,
        (false, Version::Http11) => Persistence::Implicit,
    };
    let response = respond(rules, session.info(), &request);
    session.send(&render(&response, persistence, head_only));
    if last {
        close(session, state);
    } else {
        state.body_left = request.content_length;
    }
}

/// What to answer a well-formed request. The order matters: the security
/// checks come before anything that depends on the method or path, so a
/// refused client learns nothing about what the domain serves.
fn respond(rules: &DomainRules, info: &ConnectionInfo, request: &Request<'_>) -> Response {
    route(rules, info, request.method, request.path, request.host)
}

/// What this service answers to `method` on `path` for `host`, whichever
/// HTTP version carried the request: HTTP/2 streams are judged by exactly
/// these rules, in exactly this order.
pub(crate) fn route(
    rules: &DomainRules,
    info: &ConnectionInfo,
    method: &str,
    path: &str,
    host: Option<Host<'_>>,
) -> Response {
    let host_name = host.map(|host| host.name);
    let Ok(rule) = governing_rule(rules, info.transport, info.domain.as_deref(), host_name) else {
        return Response::error(
            Status::MisdirectedRequest,
            Some("this connection was not made for that host"),
        );
    };
    if !client_auth_satisfied(rule, info.transport) {
        return Response::error(
            Status::Forbidden,
            Some("this domain requires a client certificate"),
        );
    }
    match method_support(method) {
        MethodSupport::Served => {}
        MethodSupport::NotAllowed => return Response::error(Status::MethodNotAllowed, None),
        MethodSupport::Unknown => return Response::error(Status::NotImplemented, None),
    }
    match path {
        "/" => Response::ok(connection_report(info, host.map(|host| host.raw))),
        "/healthz" => Response::ok("ok\n".to_string()),
        _ => Response::error(Status::NotFound, None),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MethodSupport {
    /// GET, HEAD and POST (whose body is read and dropped).
    Served,
    /// A method RFC 9110 defines that no resource here allows: 405.
    NotAllowed,
    /// A method token this server does not recognize (methods are
    /// case-sensitive, so `get` is one): 501.
    Unknown,
}

fn method_support(method: &str) -> MethodSupport {
    match method {
        "GET" | "HEAD" | "POST" => MethodSupport::Served,
        "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH" => MethodSupport::NotAllowed,
        _ => MethodSupport::Unknown,
    }
}

/// Answers a request that cannot be handled safely, then closes: after it,
/// where the next request would start is uncertain.
fn refuse(
    session: &mut Session<'_>,
    state: &mut SessionState,
    rejection: Rejection,
    head_only: bool,
) {
    let response = match rejection {
        Rejection::BadRequest(detail) => Response::error(Status::BadRequest, Some(detail)),
        Rejection::BodyTooLarge => Response::error(Status::ContentTooLarge, None),
        Rejection::UriTooLong => Response::error(Status::UriTooLong, None),
        Rejection::HeadTooLarge => Response::error(Status::HeaderFieldsTooLarge, None),
        Rejection::TransferCodingNotImplemented => Response::error(
            Status::NotImplemented,
            Some("Transfer-Encoding is not supported; send Content-Length"),
        ),
        Rejection::VersionNotSupported => Response::error(
            Status::VersionNotSupported,
            Some("this server speaks HTTP/1.0 and HTTP/1.1"),
        ),
    };
    session.send(&render(&response, Persistence::Close, head_only));
    close(session, state);
}

fn close(session: &mut Session<'_>, state: &mut SessionState) {
    state.closing = true;
    session.close();
}

#[cfg(test)]
mod tests;
