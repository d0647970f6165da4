//! A service of your own on Portcullis: an "uppercase echo" in a few lines.
//!
//! Run it with `cargo run --example uppercase`, then `nc 127.0.0.1 7000` and
//! type. It shows the whole service interface: `on_connect` to greet,
//! `on_data` to answer (returning how many bytes were consumed, so a partial
//! line waits for its end), `broadcast` to reach every session, and
//! `on_close`. The engine does the rest: sockets, back-pressure, timeouts.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis::connection_info::ConnectionInfo;
use portcullis::server::{self, ServerSettings};
use portcullis::service::{Service, Session, SessionId};

#[derive(Default)]
struct Uppercase {
    lines_per_session: HashMap<SessionId, u64>,
}

impl Service for Uppercase {
    fn on_connect(&mut self, session: &mut Session<'_>) {
        session.send(b"hello! lines come back in capitals; say `/all text` to tell everyone\n");
        self.lines_per_session.insert(session.id(), 0);
    }

    fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize {
        let mut consumed = 0;
        // Answer each complete line; leave a partial one for next time.
        while let Some(end) = data[consumed..].iter().position(|&b| b == b'\n') {
            let line = &data[consumed..consumed + end + 1];
            consumed += end + 1;
            *self.lines_per_session.entry(session.id()).or_default() += 1;
            match line.strip_prefix(b"/all ") {
                Some(text) => session.broadcast(text),
                None => session.send(&line.to_ascii_uppercase()),
            }
        }
        consumed
    }

    fn on_close(&mut self, id: SessionId, info: &ConnectionInfo) {
        let lines = self.lines_per_session.remove(&id).unwrap_or(0);
        println!("{} left after {lines} lines", info.peer);
    }
}

fn main() -> std::io::Result<()> {
    let addr = "127.0.0.1:7000".parse().expect("a valid address");
    let factory = Arc::new(|| Box::new(Uppercase::default()) as Box<dyn Service>);
    server::block_shutdown_signals()?;
    let handle = server::start(ServerSettings::plaintext(addr, "uppercase", factory))?;
    println!(
        "uppercase: listening on {}; Ctrl-C stops",
        handle.addresses()[0]
    );
    server::wait_for_shutdown(&handle)?;
    handle.request_stop();
    handle.join()
}
