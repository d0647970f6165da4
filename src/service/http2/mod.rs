//! HTTP/2 (RFC 9113), spoken by the `http` service on the same port, with
//! the same answers, as HTTP/1.1.
//!
//! How a connection gets here (see `service::http`): over TLS, when ALPN
//! chose `h2`; over plaintext, when its first bytes are the HTTP/2
//! connection preface (h2c with prior knowledge, `preface.rs`). Everything
//! else stays HTTP/1.1.
//!
//! HTTP/2 multiplexes many requests over one connection, which is what makes
//! it the hardest test of the TLS gate: a browser that was admitted as
//! `localhost` reuses ("coalesces") the connection for any other name the
//! certificate covers. So **the gate's rules apply to every stream**, not
//! once per connection: each request's `:authority` is judged by the same
//! `http::route` as an HTTP/1.1 request's `Host` — 421 for another domain
//! than the handshake's, 403 for a domain that requires a client
//! certificate on a connection without one (always, under h2c).
//!
//! It is also the protocol where a peer can make a server work hardest for
//! the least: resets, CONTINUATION frames, PINGs and SETTINGS cost the peer
//! a few octets each. Each such attack has a limit (`limits.rs`), a counter
//! (`counters.rs`), and an answer with the RFC's error code (`error.rs`).
//!
//! Files, in the order bytes flow: `preface.rs` (is it HTTP/2?), `frame.rs`
//! (frames in), `connection.rs` (the loop) and `control.rs` (SETTINGS,
//! WINDOW_UPDATE, RST_STREAM), `streams.rs`
//! (requests), `request.rs` (header fields to a request), `send.rs`
//! (responses, flow-controlled), `write.rs` (frames out); with `hpack/`,
//! `settings.rs`, `flow.rs`, `stream.rs`, `limits.rs`, `counters.rs` and
//! `error.rs` beside them.

mod connection;
mod control;
pub mod counters;
mod error;
mod flow;
pub mod frame;
pub mod hpack;
mod limits;
pub mod preface;
mod request;
mod send;
mod settings;
mod stream;
mod streams;
#[cfg(test)]
mod tests;
pub mod write;

use std::sync::Arc;

pub use connection::{Env, Http2Connection};
pub use counters::{Http2Counters, Http2Event};
pub use error::ErrorCode;
pub use limits::{Http2Limits, Rate};

/// How the `http` service speaks HTTP/2.
#[derive(Clone, Debug)]
pub struct Http2Options {
    /// Serve plaintext connections that open with the HTTP/2 preface
    /// (h2c with prior knowledge). Default: on.
    pub h2c: bool,
    pub limits: Http2Limits,
    /// Shared by every worker's service instance.
    pub counters: Arc<Http2Counters>,
}

impl Default for Http2Options {
    fn default() -> Http2Options {
        Http2Options {
            h2c: true,
            limits: Http2Limits::default(),
            counters: Arc::new(Http2Counters::new()),
        }
    }
}
