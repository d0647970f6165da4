//! The chat service: greeting, broadcast to every member exactly once and in
//! order per sender, across workers, and a slow member that cannot stall the
//! room.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{backends, drivers, Server};

const GREETING: &str = "welcome to portcullis chat";

fn chat_server(backend: &str, extra: &[&str]) -> Server {
    Server::service("chat", backend, extra)
}

fn join(server: &Server) -> (TcpStream, BufReader<TcpStream>) {
    let stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with(GREETING), "greeting was {greeting:?}");
    (stream, reader)
}

/// Runs a room of `members` members and returns the server's log.
fn every_member_hears_every_line_once_in_order(
    backend: &str,
    extra: &[&str],
    members: usize,
) -> String {
    const LINES: usize = 200;
    let server = chat_server(backend, extra);
    let mut room: Vec<_> = (0..members).map(|_| join(&server)).collect();
    // Every member has been greeted, so every member is in the room.
    let writers: Vec<_> = room
        .iter()
        .enumerate()
        .map(|(m, (stream, _))| {
            let mut stream = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                for line in 0..LINES {
                    stream
                        .write_all(format!("member{m} line{line}\n").as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    for (receiver, (_, reader)) in room.iter_mut().enumerate() {
        let mut next_expected: HashMap<usize, usize> = HashMap::new();
        for _ in 0..members * LINES {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let (sender, number) = parse(&line);
            let expected = next_expected.entry(sender).or_insert(0);
            assert_eq!(
                number, *expected,
                "{backend}: member {receiver} got {line:?} out of order"
            );
            *expected += 1;
        }
        assert!(
            next_expected.values().all(|n| *n == LINES),
            "{backend}: {next_expected:?}"
        );
    }
    // Exactly once: nothing more arrives.
    for (stream, reader) in &mut room {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut extra = String::new();
        assert!(
            reader.read_line(&mut extra).is_err() || extra.is_empty(),
            "{backend}: duplicate {extra:?}"
        );
    }
    drop(room);
    server.stop().1
}

fn parse(line: &str) -> (usize, usize) {
    let mut parts = line.trim_end().split(' ');
    let sender = parts
        .next()
        .and_then(|p| p.strip_prefix("member"))
        .and_then(|n| n.parse().ok());
    let number = parts
        .next()
        .and_then(|p| p.strip_prefix("line"))
        .and_then(|n| n.parse().ok());
    match (sender, number) {
        (Some(s), Some(n)) => (s, n),
        _ => panic!("malformed chat line {line:?}"),
    }
}

#[test]
fn broadcast_reaches_every_member_exactly_once_and_in_order() {
    for backend in drivers() {
        every_member_hears_every_line_once_in_order(&backend, &[], 6);
    }
}

#[test]
fn broadcast_crosses_workers() {
    // Twelve members over three workers: the kernel's SO_REUSEPORT hash puts
    // them all on one worker about once in 60,000 runs.
    let log = every_member_hears_every_line_once_in_order(&backends()[0], &["--workers", "3"], 12);
    let serving = common::workers_that_served(&log);
    assert!(
        serving >= 2,
        "only {serving} worker(s) had members; log:\n{log}"
    );
}

#[test]
fn a_member_that_stops_reading_is_dropped_and_the_room_carries_on() {
    // A low hard limit keeps the test quick: the slow member is dropped once
    // 256 KiB wait for it (plus what the kernel buffers hold).
    let dir = std::env::temp_dir().join(format!("portcullis-chat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("chat.toml");
    std::fs::write(&config, "[limits]\noutput_hard_limit = 262144\n").unwrap();
    for backend in drivers() {
        let server = chat_server(&backend, &["--config", config.to_str().unwrap()]);
        let (_slow, _slow_reader) = join(&server); // never reads again
        let (mut talker, mut talker_reader) = join(&server);
        let (_, mut listener_reader) = join(&server);
        let rss_before = server.rss_kib();
        let line = format!("{}\n", "x".repeat(4000));
        // 4,000 lines of 4 KB: far more than the limit and any kernel buffer.
        for _ in 0..4000 {
            talker.write_all(line.as_bytes()).unwrap();
            let mut echoed = String::new();
            talker_reader.read_line(&mut echoed).unwrap();
            let mut heard = String::new();
            listener_reader.read_line(&mut heard).unwrap();
            assert_eq!(heard, line);
        }
        let grown = server.rss_kib().saturating_sub(rss_before);
        assert!(grown < 16 * 1024, "{backend}: server grew by {grown} KiB");
        let (_, log) = server.stop();
        assert!(
            log.contains("slow_consumer=1"),
            "{backend}: slow member not dropped:\n{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
