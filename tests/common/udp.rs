//! Talking UDP to a test server: clients, multicast receivers, and the
//! `udp:` summary line the server logs at shutdown.
//!
//! Receivers join groups with `socket2` directly, not with the server's own
//! code, so the tests check the server against the operating system's idea
//! of multicast rather than against itself.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use portcullis::udp::multicast::StreamDatagram;
use socket2::{Domain, Protocol, Socket, Type};

/// A client socket on `ip`, port 0, that gives up reading after 5 s.
pub fn client_on(ip: &str) -> UdpSocket {
    let socket = UdpSocket::bind((ip, 0)).expect("bind a UDP client");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

pub fn client() -> UdpSocket {
    client_on("127.0.0.1")
}

/// Sends `payload` to `server` and returns the reply (panics after 5 s).
pub fn round_trip(socket: &UdpSocket, server: SocketAddr, payload: &[u8]) -> Vec<u8> {
    socket.send_to(payload, server).expect("send a datagram");
    let mut buf = vec![0u8; 70_000];
    let (n, from) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no reply to a {}-byte datagram: {e}", payload.len()));
    assert_eq!(from, server, "the reply came from elsewhere");
    buf.truncate(n);
    buf
}

/// Whether nothing arrives on `socket` for `quiet`.
pub fn nothing_within(socket: &UdpSocket, quiet: Duration) -> bool {
    socket.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 2048];
    let silent = socket.recv_from(&mut buf).is_err();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    silent
}

/// The server's `udp:` summary line in `log`.
pub fn udp_summary(log: &str) -> &str {
    log.lines()
        .rev()
        .find_map(|l| l.split_once("] udp: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no udp summary line in the server log:\n{log}"))
}

/// One counter of the `udp:` summary line (0 when it is not listed).
pub fn udp_counter(log: &str, name: &str) -> u64 {
    udp_summary(log)
        .split_whitespace()
        .find_map(|token| token.strip_prefix(name)?.strip_prefix('='))
        .map_or(0, |n| n.parse().unwrap())
}

/// A group no other test (or other test run on this machine) uses:
/// 239.255.x.y from the process id and a counter.
pub fn fresh_group() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let seed = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(n * 104_729);
    Ipv4Addr::new(239, 255, (seed >> 8) as u8, (seed as u8).max(2))
}

/// A receiver of `group`, joined on 127.0.0.1. Port 0 picks a free port;
/// receivers after the first pass the port it got.
pub fn join(group: Ipv4Addr, port: u16) -> UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_recv_buffer_size(4 << 20).unwrap();
    socket
        .bind(&SocketAddr::V4(SocketAddrV4::new(group, port)).into())
        .unwrap();
    socket
        .join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
        .expect("join the group on 127.0.0.1");
    let socket: UdpSocket = socket.into();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

/// The sequence numbers of the stream datagrams `socket` receives for
/// `length`, each checked in full against the stream's format.
pub fn receive_stream(socket: &UdpSocket, size: usize, length: Duration) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut buf = vec![0u8; 70_000];
    let until = Instant::now() + length;
    while Instant::now() < until {
        match socket.recv(&mut buf) {
            Ok(n) => match StreamDatagram::check(&buf[..n], size) {
                Ok(seq) => seqs.push(seq),
                Err(e) => panic!("a bad stream datagram: {e}"),
            },
            Err(e) => panic!("the stream stopped: {e} (after {} datagrams)", seqs.len()),
        }
    }
    seqs
}
