//! A seeded, randomized simulation: thousands of connections driven through
//! the core at once, with random split points, partial writes, stalled
//! readers, half-closes and resets, plaintext and TLS interleaved on one
//! worker's shared scratch space.
//!
//! Each simulated client knows exactly what it sent, so the checks are
//! exact: what it received is always a prefix of what it is owed (nothing
//! lost, duplicated or reordered), and all of it when the connection ended
//! in an orderly way; after every step the connection is either waiting
//! for readiness or closing, never in between; the bytes it holds stay
//! under the bounds; and once the clock runs far enough ahead every
//! connection has closed with a reason. A failure prints the seed.

use std::collections::HashMap;

use super::*;
use crate::tls::ClientTls;

/// xorshift64*: small, deterministic, good enough to pick split points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// How a simulated peer reads what the server sends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reader {
    /// Takes whatever is offered.
    Eager,
    /// Takes a few bytes now and then.
    Slow,
    /// Never reads: the write-stall deadline must end it.
    Stalled,
}

/// One simulated client and what it knows.
struct Client {
    conn: Connection,
    tls: Option<TlsSession>,
    /// Plaintext still to send, and how much of it has gone.
    script: Vec<u8>,
    sent: usize,
    /// Ciphertext (or plaintext) produced but not yet delivered.
    wire: Vec<u8>,
    /// What came back (decrypted).
    received: Vec<u8>,
    reader: Reader,
    half_close: bool,
    eof_sent: bool,
    reset_at: Option<usize>,
    lingering: bool,
    closed: Option<CloseReason>,
}

const CONNECTIONS: usize = 3_000;
/// The most the simulated network hands over in one read.
const MAX_DELIVERY: usize = 4_096;
const TLS_EVERY: usize = 10;

#[test]
fn thousands_of_connections_lose_nothing_and_all_end_with_a_reason() {
    for seed in [1u64, 0xdead_beef] {
        simulate(seed);
    }
}

fn simulate(seed: u64) {
    let mut rng = Rng(seed);
    let mut h = echo_harness();
    h.limits.output_high_water = 4_096;
    h.limits.max_input = 8_192;
    h.limits.idle_timeout = Duration::from_secs(5);
    h.limits.write_timeout = Duration::from_secs(2);
    h.limits.handshake_timeout = Duration::from_secs(3);
    h.limits.linger_timeout = Duration::from_secs(1);
    let tls_client = client(ClientCert::None);
    let mut clients: Vec<Client> = (0..CONNECTIONS)
        .map(|i| new_client(i, &mut rng, &mut h, &tls_client))
        .collect();
    let mut now_us: u64 = 0;
    let mut reasons: HashMap<&'static str, usize> = HashMap::new();
    let mut open = CONNECTIONS;
    let mut steps = 0;
    while open > 0 && steps < 4_000_000 {
        steps += 1;
        now_us += rng.below(12);
        let index = rng.below(CONNECTIONS as u64) as usize;
        let client = &mut clients[index];
        if client.closed.is_some() {
            continue;
        }
        let millis = now_us / 1_000;
        step(client, &mut rng, &mut h, millis);
        if let Some(reason) = client.closed {
            open -= 1;
            *reasons.entry(reason.label()).or_default() += 1;
            check_delivery(client, seed, index);
        } else {
            check_invariants(client, &h, seed, index);
        }
    }
    // Run the clock far ahead: every deadline fires, nothing survives.
    let late = now_us / 1_000 + 3_600_000;
    for (index, client) in clients.iter_mut().enumerate() {
        if client.closed.is_some() {
            continue;
        }
        client.conn.handle_timeout(&mut h.cx(late));
        settle(client, &mut h, late);
        let reason = client
            .closed
            .unwrap_or_else(|| panic!("seed {seed:#x} client {index}: still open after an hour"));
        *reasons.entry(reason.label()).or_default() += 1;
        check_delivery(client, seed, index);
    }
    eprintln!("seed {seed:#x}: {steps} steps; closes: {reasons:?}");
    for expected in ["peer_closed", "write_timeout", "peer_reset", "idle_timeout"] {
        assert!(
            reasons.contains_key(expected),
            "seed {seed:#x}: the simulation never produced {expected}: {reasons:?}"
        );
    }
}

fn new_client(index: usize, rng: &mut Rng, h: &mut Harness, tls: &ClientTls) -> Client {
    let len = rng.below(20_000) as usize;
    let script: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    let conn = h.accept(0);
    let mut wire = Vec::new();
    let tls = (index % TLS_EVERY == 0).then(|| {
        let mut session = TlsSession::client(tls, Some("localhost"), None).unwrap();
        session.process(&mut Vec::new()).unwrap();
        take_outgoing(&mut session, &mut wire);
        session
    });
    let reader = match rng.below(10) {
        0 => Reader::Stalled,
        1 | 2 => Reader::Slow,
        _ => Reader::Eager,
    };
    Client {
        conn,
        tls,
        reset_at: rng.chance(10).then(|| rng.below(len as u64 + 1) as usize),
        script,
        sent: 0,
        wire,
        received: Vec::new(),
        reader,
        half_close: rng.chance(2),
        eof_sent: false,
        lingering: false,
        closed: None,
    }
}

/// One turn for one client: maybe a deadline, then one random action, then
/// whatever the connection says to do next.
fn step(c: &mut Client, rng: &mut Rng, h: &mut Harness, millis: u64) {
    if let Some(at) = c.conn.deadline(&h.cx(millis)) {
        if h.at(millis) >= at {
            c.conn.handle_timeout(&mut h.cx(millis));
            settle(c, h, millis);
            if c.closed.is_some() {
                return;
            }
        }
    }
    if c.reset_at.is_some_and(|at| c.sent >= at) {
        let reason = match c.conn.exchange_complete() {
            true => CloseReason::PeerReset,
            false => CloseReason::SocketError,
        };
        c.conn.handle_socket_error(reason, &mut h.cx(millis));
        settle(c, h, millis);
        return;
    }
    match rng.below(3) {
        0 => send_some(c, rng, h, millis),
        1 => read_some(c, rng, h, millis),
        _ => {
            send_some(c, rng, h, millis);
            read_some(c, rng, h, millis);
        }
    }
    settle(c, h, millis);
}

/// The client sends a random slice of its script, cut at a random point.
fn send_some(c: &mut Client, rng: &mut Rng, h: &mut Harness, millis: u64) {
    if c.sent < c.script.len() {
        let chunk = if rng.chance(4) {
            1 + rng.below(8)
        } else {
            1 + rng.below(3_000)
        };
        let end = (c.sent + chunk as usize).min(c.script.len());
        let piece = &c.script[c.sent..end];
        match &mut c.tls {
            Some(tls) => {
                tls.send(piece).unwrap();
                take_outgoing(tls, &mut c.wire);
            }
            None => c.wire.extend_from_slice(piece),
        }
        c.sent = end;
    } else if c.half_close && !c.eof_sent && c.wire.is_empty() {
        if let Some(tls) = &mut c.tls {
            tls.close();
            take_outgoing(tls, &mut c.wire);
        }
        c.eof_sent = true;
    }
    // The network delivers only what the server is willing to read.
    if !c.wire.is_empty() && c.conn.wants_read(&h.limits) {
        let n = (1 + rng.below(c.wire.len().min(MAX_DELIVERY) as u64)) as usize;
        let delivered: Vec<u8> = c.wire.drain(..n).collect();
        c.conn.handle_input(&delivered, &mut h.cx(millis));
    } else if c.eof_sent && c.wire.is_empty() && c.conn.wants_read(&h.limits) {
        c.conn.handle_eof(&mut h.cx(millis));
    }
}

/// The socket takes some of what the server has queued, as the reader allows.
fn read_some(c: &mut Client, rng: &mut Rng, h: &mut Harness, millis: u64) {
    let pending = c.conn.transmit().len();
    let room = match c.reader {
        Reader::Eager => pending,
        Reader::Slow if rng.chance(3) => rng.below(64) as usize,
        Reader::Slow | Reader::Stalled => 0,
    };
    let n = room.min(pending);
    if n == 0 {
        return;
    }
    let bytes = c.conn.transmit()[..n].to_vec();
    c.conn.handle_sent(n, &mut h.cx(millis));
    match &mut c.tls {
        Some(tls) => {
            tls.receive(&bytes);
            // A failed client is only possible after the server closed
            // with an alert; it shows up as a short delivery, not here.
            let _ = tls.process(&mut c.received);
            take_outgoing(tls, &mut c.wire); // its handshake answers
        }
        None => c.received.extend_from_slice(&bytes),
    }
}

/// Does what `next()` says, as a driver would, until it says "wait".
fn settle(c: &mut Client, h: &mut Harness, millis: u64) {
    loop {
        match c.conn.next(&h.limits) {
            Next::Wait(_) | Next::Parked => return,
            Next::ShutdownWrite => {
                assert!(!c.lingering, "asked twice to send FIN");
                c.lingering = true;
                c.conn.handle_write_shut(h.at(millis));
                // A client that closed its side answers our FIN at once.
                if c.eof_sent {
                    c.conn.handle_eof(&mut h.cx(millis));
                }
            }
            Next::Close(reason) => {
                // `finish` consumes the connection; a fresh one stands in
                // for the rest of the run and is never used again.
                let conn = std::mem::replace(&mut c.conn, h.accept(millis));
                conn.finish(reason, &mut h.cx(millis));
                c.closed = Some(reason);
                return;
            }
        }
    }
}

fn check_invariants(c: &Client, h: &Harness, seed: u64, index: usize) {
    let what = format!("seed {seed:#x} client {index}");
    match c.conn.next(&h.limits) {
        Next::Wait(interest) => {
            if c.conn.pending_output() > 0 {
                assert!(
                    interest.is_writable(),
                    "{what}: output queued but not armed"
                );
            }
            if c.conn.wants_read(&h.limits) {
                assert!(
                    interest.is_readable(),
                    "{what}: wants to read but not armed"
                );
            }
        }
        Next::Parked => panic!("{what}: parked with no pause set"),
        other => panic!("{what}: left in {other:?} after settling"),
    }
    // Reading stops at the high-water mark, so at most what one delivery
    // releases lies beyond it: the delivery itself, plus, over TLS, the rest
    // of a record (up to 16 KiB) it completed, and the records' overhead.
    let bound = h.limits.output_high_water + MAX_DELIVERY + (16 << 10) + 1024;
    assert!(
        c.conn.pending_output() <= bound,
        "{what}: {} bytes queued",
        c.conn.pending_output()
    );
    assert!(
        c.conn.input.len() <= h.limits.max_input,
        "{what}: input grew"
    );
    assert!(
        is_prefix(&c.received, &c.script[..c.sent]),
        "{what}: received bytes that were not sent, or out of order"
    );
}

fn check_delivery(c: &Client, seed: u64, index: usize) {
    let what = format!(
        "seed {seed:#x} client {index} ({:?}, tls {})",
        c.closed,
        c.tls.is_some()
    );
    assert!(
        is_prefix(&c.received, &c.script),
        "{what}: received bytes that were not sent, or out of order"
    );
    if c.closed == Some(CloseReason::PeerClosed) {
        assert_eq!(
            c.received.len(),
            c.script.len(),
            "{what}: an orderly close lost bytes"
        );
    }
}

/// Moves what a client engine wants to send onto the simulated wire.
fn take_outgoing(tls: &mut TlsSession, wire: &mut Vec<u8>) {
    wire.extend_from_slice(tls.outgoing());
    let n = tls.outgoing().len();
    tls.consume_outgoing(n);
}

fn is_prefix(received: &[u8], sent: &[u8]) -> bool {
    received.len() <= sent.len() && received == &sent[..received.len()]
}
