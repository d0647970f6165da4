//! How the readiness driver names its connections to the reactor and the
//! timer heap: a slab slot plus a generation.
//!
//! A connection lives in a slab slot, and the slot's key goes into every
//! reactor token and timer entry. Slots are reused as connections come and
//! go, so a key alone could reach the wrong connection: an event or a timer
//! set for the connection that *used* to live in slot 7 must not touch the
//! one living there now. The one idea: **a token is a key and a
//! generation**, and anything that arrives with an old generation is stale
//! and ignored.

use std::net::TcpStream;
use std::time::Instant;

use backends::{Interest, Token};

use crate::engine::connection::Connection;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("tokens pack a slab key and a generation into 64 bits");

/// Tokens at or above this value name listeners; below it, connections.
pub const LISTENER_TOKEN_BASE: usize = 1 << 62;
/// Tokens at or above this value name UDP sockets (a range of their own
/// above the listeners').
pub const DATAGRAM_TOKEN_BASE: usize = 3 << 61;
/// Connection tokens carry the slab key in the low 32 bits and the slot's
/// generation in the next 29.
pub const GENERATION_MASK: u32 = (1 << 29) - 1;

/// One connection, with what the driver needs to know about its socket.
pub struct Slot {
    pub socket: TcpStream,
    pub generation: u32,
    /// What the one-shot registration is armed with now; `None` once an
    /// event has disarmed it. Re-arming is skipped when nothing changed.
    pub armed: Option<Interest>,
    /// The due time of this connection's live entry in the timer heap.
    pub scheduled: Option<Instant>,
    pub conn: Connection,
}

/// What a timer entry is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKey {
    Connection {
        key: usize,
        generation: u32,
    },
    ResumeAccepting {
        listener: usize,
    },
    /// A UDP socket's service wants to send (pacing).
    Datagram {
        socket: usize,
    },
}

/// What a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Listener(usize),
    Connection { key: usize, generation: u32 },
    Datagram(usize),
}

pub fn listener_token(index: usize) -> Token {
    Token(LISTENER_TOKEN_BASE + index)
}

pub fn datagram_token(index: usize) -> Token {
    Token(DATAGRAM_TOKEN_BASE + index)
}

pub fn connection_token(key: usize, generation: u32) -> Token {
    debug_assert!(key <= u32::MAX as usize);
    Token(((generation as usize) << 32) | key)
}

pub fn target(token: Token) -> Target {
    let Token(raw) = token;
    if raw >= DATAGRAM_TOKEN_BASE {
        Target::Datagram(raw - DATAGRAM_TOKEN_BASE)
    } else if raw >= LISTENER_TOKEN_BASE {
        Target::Listener(raw - LISTENER_TOKEN_BASE)
    } else {
        Target::Connection {
            key: raw & 0xffff_ffff,
            generation: (raw >> 32) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle plaintext connection owns no heap buffer, so its user-space
    /// cost is its slot (plus the slab's bookkeeping and a timer entry). The
    /// budget is 256 bytes per idle connection in all. (184 until the edge
    /// policy's one boxed word: a PROXY header and a read-rate bucket.)
    #[test]
    fn an_idle_connection_stays_small() {
        let size = std::mem::size_of::<Slot>();
        eprintln!("size_of::<Slot>() = {size}");
        assert!(size <= 192, "a connection's slot grew to {size} bytes");
    }

    #[test]
    fn tokens_keep_key_and_generation_apart_from_listeners() {
        let token = connection_token(u32::MAX as usize, GENERATION_MASK);
        assert!(token.0 < LISTENER_TOKEN_BASE);
        assert_eq!(
            target(token),
            Target::Connection {
                key: u32::MAX as usize,
                generation: GENERATION_MASK
            }
        );
        assert_eq!(target(listener_token(3)), Target::Listener(3));
        assert_eq!(target(datagram_token(3)), Target::Datagram(3));
        assert!(listener_token(1 << 20).0 < DATAGRAM_TOKEN_BASE);
    }
}
