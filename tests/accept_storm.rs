//! A connection storm must not starve established connections.
//!
//! Accepting used to go on until `EAGAIN`: a listener event with 500
//! connections waiting accepted all 500 before the loop looked at anything
//! else. Now a listener event accepts a fixed batch and yields, so an
//! established connection that became readable meanwhile is served after at
//! most one batch.
//!
//! The test observes that order without a clock. The server (chat, which
//! speaks first, so no bytes are needed to admit a member) is stopped with
//! SIGSTOP; 500 connections queue in its backlog; then an established member
//! sends a line, and the server continues. Every member that was accepted
//! before the line was read receives it; the others only get the greeting.
//! So the number of storm connections that received the line is the number
//! accepted ahead of the established member.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{backends, Server};

const STORM: usize = 500;
/// The engine's accept batch (`readiness/accepting.rs`), with room for one
/// more batch in case the listener is reported twice in one wake-up.
const AHEAD_AT_MOST: usize = 64;
const LINE: &[u8] = b"established member speaking\n";
/// Fewer bytes than the chat greeting (`service/chat.rs`): a member that
/// has received this many has been accepted and greeted.
const GREETING_LEN: usize = 20;

fn signal(server: &Server, signal: libc::c_int) {
    // SAFETY: kill(2) with the PID of a child this test started and still
    // holds (it cannot have been reaped and reused).
    let rc = unsafe { libc::kill(server.pid() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// Reads what `stream` has received within `wait`.
fn received(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_established_member_is_served_after_at_most_one_accept_batch() {
    for backend in backends() {
        let server = Server::service("chat", &backend, &["--no-tls"]);
        let mut speaker = server.connect();
        let greeting = received(&mut speaker, Duration::from_secs(5));
        assert!(!greeting.is_empty(), "{backend}: no greeting");

        signal(&server, libc::SIGSTOP);
        // The kernel completes these handshakes on its own and queues them
        // for accept(2) (chat does not use TCP_DEFER_ACCEPT).
        let mut storm: Vec<TcpStream> = (0..STORM)
            .map(|_| TcpStream::connect(server.addr()).expect("connect"))
            .collect();
        speaker.write_all(LINE).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        signal(&server, libc::SIGCONT);

        let heard = received(&mut speaker, Duration::from_secs(10));
        assert!(
            contains(&heard, LINE),
            "{backend}: the line did not come back"
        );
        // Loopback delivers at once: collect what each storm member has,
        // without blocking, until every one has at least its greeting.
        let mut got: Vec<Vec<u8>> = vec![Vec::new(); STORM];
        for member in &storm {
            member.set_nonblocking(true).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while got.iter().any(|g| g.len() < GREETING_LEN) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            for (member, seen) in storm.iter_mut().zip(&mut got) {
                while let Ok(n @ 1..) = member.read(&mut buf) {
                    seen.extend_from_slice(&buf[..n]);
                }
            }
        }
        let greeted = got.iter().filter(|g| g.len() >= GREETING_LEN).count();
        let ahead = got.iter().filter(|g| contains(g, LINE)).count();
        let _ = server.stop();
        assert_eq!(
            greeted, STORM,
            "{backend}: every storm connection is served"
        );
        assert!(
            ahead <= AHEAD_AT_MOST,
            "{backend}: {ahead} of {STORM} waiting connections were accepted \
             before the established member's line was read"
        );
    }
}
