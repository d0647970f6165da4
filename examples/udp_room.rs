//! A datagram service of your own: a UDP chat room in a few lines.
//!
//! Run it with `cargo run --example udp_room`, then in two terminals
//! `nc -u 127.0.0.1 7001` and type. Whoever sends a datagram joins the
//! room; every datagram goes to every other member. It shows the whole
//! datagram interface: `on_datagram(peer, bytes)`, and an `Outbox` that
//! sends to any address — here, to everyone but the sender. The engine
//! does the rest: batched system calls, truncation, unreachable members,
//! counters.
//!
//! A relay multiplies traffic, which is why the room is small and members
//! who go quiet are forgotten: a real one would also want `[udp]
//! per_source_rate`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::server::{self, ServerSettings};
use portcullis::udp::{DatagramService, Outbox};

/// Members at most: one datagram in becomes at most this many out.
const ROOM_SIZE: usize = 16;
/// Members who sent nothing for this long are forgotten.
const QUIET_LIMIT: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Room {
    last_heard: HashMap<SocketAddr, Instant>,
}

impl DatagramService for Room {
    fn on_datagram(&mut self, peer: SocketAddr, datagram: &[u8], out: &mut Outbox<'_>) {
        let now = out.now();
        self.last_heard
            .retain(|_, at| now.duration_since(*at) < QUIET_LIMIT);
        if !self.last_heard.contains_key(&peer) && self.last_heard.len() >= ROOM_SIZE {
            out.send_to(peer, b"the room is full\n");
            return;
        }
        self.last_heard.insert(peer, now);
        let line = [format!("{peer}: ").as_bytes(), datagram].concat();
        for member in self.last_heard.keys().filter(|m| **m != peer) {
            out.send_to(*member, &line);
        }
    }
}

fn main() -> std::io::Result<()> {
    let addr = "127.0.0.1:7001".parse().expect("a valid address");
    let factory = Arc::new(|| Box::new(Room::default()) as Box<dyn DatagramService>);
    server::block_shutdown_signals()?;
    let handle = server::start(ServerSettings::datagrams(addr, "udp-room", factory))?;
    println!(
        "udp-room: udp listening on {}; Ctrl-C stops",
        handle.udp_addresses()[0]
    );
    server::wait_for_shutdown(&handle)?;
    handle.request_stop();
    handle.join()
}
