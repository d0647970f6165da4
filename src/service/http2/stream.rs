//! One request stream's state (RFC 9113 §5.1), server side.
//!
//! A client opens a stream with HEADERS; this server answers a request as
//! soon as it is complete (its END_STREAM), so of the RFC's seven states
//! only two ever need remembering:
//!
//! ```text
//!   idle ──HEADERS──► open ──END_STREAM──► answered ──last DATA──► closed
//!          (request still arriving:        (response waiting for
//!           body, trailers)                 flow-control credit)
//! ```
//!
//! A stream whose request ends in its HEADERS and whose response fits the
//! windows goes from idle to closed within one frame and is never stored.
//! The one idea: **a stream is stored only while something is owed** — more
//! request from the peer, or more response from us — and the connection
//! tells closed from idle by id alone (ids only grow), so closed streams
//! cost nothing.

use super::flow::{ReceiveWindow, SendWindow};
use super::request::Request;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// The request has not ended: body or trailers may follow.
    Open,
    /// The request ended and was answered; part of the response body
    /// waits for window.
    Answered,
}

/// Response bytes waiting for flow-control credit.
#[derive(Debug, Default)]
pub struct PendingBody {
    pub bytes: Vec<u8>,
    pub sent: usize,
}

impl PendingBody {
    pub fn remaining(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }
}

#[derive(Debug)]
pub struct Stream {
    pub state: StreamState,
    /// What we may still send on this stream.
    pub send: SendWindow,
    /// What the peer may still send on it.
    pub receive: ReceiveWindow,
    /// The request, kept until its body ends.
    pub request: Option<Request>,
    pub body_received: u64,
    pub pending: PendingBody,
}

impl Stream {
    pub fn new(request: Option<Request>, send_window: u32, receive_window: u32) -> Stream {
        Stream {
            state: StreamState::Open,
            send: SendWindow::new(send_window),
            receive: ReceiveWindow::new(receive_window),
            request,
            body_received: 0,
            pending: PendingBody::default(),
        }
    }

    /// Whether anything is still owed in either direction.
    pub fn is_done(&self) -> bool {
        self.state == StreamState::Answered && self.pending.remaining().is_empty()
    }
}
