//! One `bench udp-echo` client: its socket, its numbering, and the check
//! of every reply; and the totals the threads add up.
//!
//! The one idea: **a datagram names itself** — its first 8 bytes are its
//! number, the rest the client's [`Pattern`] at an offset computed from the
//! number — so a reply is checked in full in any order, and nothing sent is
//! kept.

use std::net::{SocketAddr, UdpSocket};

use crate::bench::pattern::Pattern;
use crate::udp::batch::SendBatch;

/// Asked-for socket buffers: losses should be the server's, not ours.
const CLIENT_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// What the threads counted, added up.
#[derive(Default)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    /// Replies that arrived while sending was still on (the measured part).
    pub in_window: u64,
    pub out_of_order: u64,
    pub send_dropped: u64,
    pub errors: u64,
    pub failures: Vec<String>,
}

impl Totals {
    pub fn add(&mut self, t: Totals) {
        self.sent += t.sent;
        self.received += t.received;
        self.in_window += t.in_window;
        self.out_of_order += t.out_of_order;
        self.send_dropped += t.send_dropped;
        self.errors += t.errors;
        for failure in t.failures {
            self.fail_quietly(failure);
        }
    }

    pub fn fail(&mut self, what: String) {
        self.errors += 1;
        self.fail_quietly(what);
    }

    fn fail_quietly(&mut self, what: String) {
        if self.failures.len() < 5 {
            self.failures.push(what);
        }
    }
}

/// One client: its socket and how far it has got.
pub struct Client {
    pub id: usize,
    pub socket: UdpSocket,
    pub pattern: Pattern,
    /// The next datagram number to send.
    pub next: u64,
    pub received: u64,
    pub highest: Option<u64>,
    pub failed: bool,
}

impl Client {
    pub fn open(id: usize, server: SocketAddr) -> std::io::Result<Client> {
        let local: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        let tune = socket2::SockRef::from(&socket);
        tune.set_recv_buffer_size(CLIENT_SOCKET_BUFFER)?;
        tune.set_send_buffer_size(CLIENT_SOCKET_BUFFER)?;
        Ok(Client {
            id,
            socket,
            pattern: Pattern::new(id as u64),
            next: 0,
            received: 0,
            highest: None,
            failed: false,
        })
    }

    /// Queues datagram `next` into `batch`, using `scratch` to build it.
    pub fn queue(&mut self, batch: &mut SendBatch, to: SocketAddr, scratch: &mut [u8]) {
        scratch[..8].copy_from_slice(&self.next.to_le_bytes());
        let size = scratch.len() as u64;
        self.pattern.fill(self.next * size + 8, &mut scratch[8..]);
        batch.push(to, scratch);
        self.next += 1;
    }

    /// Checks one reply; returns whether it came out of order.
    pub fn check(&mut self, reply: &[u8], size: usize) -> Result<bool, String> {
        if reply.len() != size {
            return Err(format!(
                "a {}-byte reply to {size}-byte datagrams",
                reply.len()
            ));
        }
        let seq = u64::from_le_bytes(reply[..8].try_into().map_err(|_| "short reply")?);
        if seq >= self.next {
            return Err(format!("reply {seq} to a datagram never sent"));
        }
        if let Some(at) = self
            .pattern
            .first_mismatch(seq * size as u64 + 8, &reply[8..])
        {
            return Err(format!(
                "reply {seq}: byte {} differs from the byte sent",
                at + 8
            ));
        }
        self.received += 1;
        let late = self.highest.is_some_and(|h| seq < h);
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        Ok(late)
    }
}
