//! `udp-echo`: every datagram goes back to its sender, unchanged.
//!
//! CppServer's UDP echo server. The one idea: **an answer never larger than
//! the question** — the reply is the datagram itself, so a forged source
//! address can make the server reflect traffic but never amplify it (and a
//! per-source rate limit in `[udp]` bounds the reflection too). A
//! zero-length datagram gets a zero-length reply.

use std::net::SocketAddr;

use super::service::{DatagramService, Outbox};

#[derive(Debug, Default)]
pub struct UdpEcho;

impl DatagramService for UdpEcho {
    fn on_datagram(&mut self, peer: SocketAddr, datagram: &[u8], out: &mut Outbox<'_>) {
        out.send_to(peer, datagram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::service::Captured;
    use std::time::Instant;

    #[test]
    fn each_datagram_goes_back_to_its_sender_unchanged_even_when_empty() {
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:2000".parse().unwrap();
        let sent = Captured::run(2, Instant::now(), |out| {
            let mut echo = UdpEcho;
            echo.on_datagram(a, b"one", out);
            echo.on_datagram(b, b"", out);
            echo.on_datagram(a, &[0xff; 1000], out);
        });
        assert_eq!(
            sent.datagrams,
            vec![(a, b"one".to_vec()), (b, Vec::new()), (a, vec![0xff; 1000])]
        );
    }
}
