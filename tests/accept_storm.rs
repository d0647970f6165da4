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

/// Waits until every thread of the server is stopped (state `T` in
/// /proc/PID/task/*/stat). SIGSTOP takes effect when each thread next runs,
/// and on a loaded machine a worker may still accept a few batches first.
fn wait_until_stopped(server: &Server) {
    let tasks = format!("/proc/{}/task", server.pid());
    for _ in 0..1000 {
        let all_stopped = std::fs::read_dir(&tasks).unwrap().all(|task| {
            let stat =
                std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('T') || state.starts_with('t')
        });
        if all_stopped {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the server did not stop");
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
        wait_until_stopped(&server);
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
        // Leave before the stop, or the drain waits for these members.
        drop(storm);
        drop(speaker);
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

/// The p99 of one-byte round trips on `client` for `secs` seconds.
fn p99_round_trip(client: &mut TcpStream, secs: u64) -> Duration {
    let mut rtts = Vec::new();
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    while started.elapsed() < Duration::from_secs(secs) {
        let sent = std::time::Instant::now();
        client.write_all(b"p").unwrap();
        client.read_exact(&mut byte).unwrap();
        rtts.push(sent.elapsed());
        std::thread::sleep(Duration::from_millis(2));
    }
    rtts.sort();
    rtts[rtts.len() * 99 / 100]
}

/// The figure the engine issue asks for: an established client's p99 round
/// trip during a storm of 5,000 connects per second stays under 10 ms. A
/// measurement, so it is not run by default (a loaded machine slows every
/// round trip); run it on a quiet machine with
/// `cargo test --release --test accept_storm -- --ignored --nocapture`.
#[test]
#[ignore]
fn round_trips_during_a_storm_of_5000_connects_per_second() {
    let backend = &backends()[0];
    let server = Server::service("echo", backend, &["--no-tls"]);
    let addr = server.addr();
    let mut client = server.connect();
    client.set_nodelay(true).unwrap();
    let quiet = p99_round_trip(&mut client, 1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let storm = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // 5,000 connects per second: bursts of 250 every 50 ms, each
            // closed at once.
            let mut made = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let burst = std::time::Instant::now();
                let sockets: Vec<TcpStream> = (0..250)
                    .filter_map(|_| TcpStream::connect(addr).ok())
                    .collect();
                made += sockets.len() as u64;
                drop(sockets);
                if let Some(left) = Duration::from_millis(50).checked_sub(burst.elapsed()) {
                    std::thread::sleep(left);
                }
            }
            made
        })
    };
    let p99 = p99_round_trip(&mut client, 3);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rate = storm.join().unwrap() as f64 / 3.0;
    let _ = server.stop();
    eprintln!("{backend}: p99 round trip {p99:?} during {rate:.0} connects/s ({quiet:?} without)");
    assert!(
        rate > 4_000.0,
        "the storm only reached {rate:.0} connects/s"
    );
    assert!(p99 < Duration::from_millis(10), "{backend}: p99 {p99:?}");
}
