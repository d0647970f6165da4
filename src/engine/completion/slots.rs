//! One connection as the completion driver holds it: the socket, the
//! operations it has in flight, and the connection core.
//!
//! A readiness slot can be freed the moment its connection closes: nothing
//! the kernel does refers to it. A completion slot cannot, because the
//! kernel may still hold a receive or a send for it, with our memory. The
//! one idea: **a slot is freed only when nothing is in flight for it** — a
//! closed connection's slot stays behind (`conn` is `None`) with its socket
//! open until the cancelled operations have completed, so neither the
//! descriptor number nor the slot can be reused under an operation.

use std::net::TcpStream;
use std::time::Instant;

use crate::engine::connection::Connection;

/// One connection's slot.
pub struct Slot {
    pub socket: TcpStream,
    pub generation: u32,
    /// A multishot receive is in flight (until its last completion).
    pub recv_armed: bool,
    /// A cancellation of the receive has been asked for.
    pub recv_cancelling: bool,
    /// The receive ended with `ENOBUFS`: re-arm once buffers are back.
    pub starved: bool,
    /// The bytes of the one send in flight (the kernel reads them until it
    /// completes, so they are a copy the core cannot move).
    pub sending: Option<Vec<u8>>,
    /// Bytes that arrived while the connection did not want to read (the
    /// multishot receive was being cancelled): fed to it once it does.
    pub stash: Vec<u8>,
    /// The end of input came after the stash: delivered after it.
    pub eof_stashed: bool,
    /// The due time of this connection's live entry in the timer heap.
    pub scheduled: Option<Instant>,
    /// `None` once closed: the slot waits for its operations to finish.
    pub conn: Option<Connection>,
}

impl Slot {
    pub fn new(socket: TcpStream, generation: u32, conn: Connection) -> Slot {
        Slot {
            socket,
            generation,
            recv_armed: false,
            recv_cancelling: false,
            starved: false,
            sending: None,
            stash: Vec::new(),
            eof_stashed: false,
            scheduled: None,
            conn: Some(conn),
        }
    }

    /// Whether the kernel holds an operation for this slot.
    pub fn in_flight(&self) -> bool {
        self.recv_armed || self.sending.is_some()
    }

    /// Closed, with every operation finished: the slot may be freed.
    pub fn is_done(&self) -> bool {
        self.conn.is_none() && !self.in_flight()
    }
}
