//! Five thousand clients that start a TLS handshake and go silent, for every
//! compiled backend, with `handshake_secs = 1`: a normal client is served
//! promptly all the while, the server closes every silent one on time (the
//! `handshake_timeout` counter says so), and its memory stays bounded.
//!
//! Each silent client sends half a real ClientHello: a client that sends
//! nothing at all would sit in the kernel (`TCP_DEFER_ACCEPT`) and never
//! reach the server. Each costs this test one descriptor (the limit here is
//! 20,000) and the server one.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::tls::{
    client_hello, dev_domains_toml, field, read_response, summary_counter, summary_line,
    tls_connect, TempDir,
};
use common::{backends, Server};

const SILENT: usize = 5000;
const NORMAL_REQUESTS: usize = 50;
const MAX_RSS_GROWTH_KIB: u64 = 64 * 1024;
/// Silent clients arrive in batches, about 5,000 a second: a slow-client
/// attack, not a SYN flood. Unpaced, this test's burst can overflow the
/// listen backlog (1024) and a dropped SYN costs any client a 1 s
/// retransmission, which would be the kernel's doing, not the server's.
const OPEN_BATCH: usize = 100;
const OPEN_PAUSE: Duration = Duration::from_millis(20);

/// One `GET /` on a new connection (every fifth over TLS); returns how long
/// it took.
fn normal_request(addr: SocketAddr, i: usize) -> Duration {
    let started = Instant::now();
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (status, body) = if i % 5 == 4 {
        let mut tls = tls_connect(addr, "localhost", None).expect("TLS connect");
        tls.write_all(request).unwrap();
        let response = read_response(&mut tls);
        (response.status, response.body)
    } else {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(request).unwrap();
        let response = read_response(&mut tcp);
        (response.status, response.body)
    };
    assert_eq!(status, 200, "normal request {i}: {body}");
    let want = if i % 5 == 4 { "tls" } else { "plain" };
    assert_eq!(field(&body, "transport"), Some(want), "request {i}");
    started.elapsed()
}

/// Whether the server has closed `stream` (EOF or reset), without waiting.
fn closed_now(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

#[test]
fn thousands_of_silent_handshakes_time_out_without_hurting_anyone() {
    let dir = TempDir::new("slow-clients");
    let text = format!("[timeouts]\nhandshake_secs = 1\n\n{}", dev_domains_toml());
    let config = dir.write("portcullis.toml", &text).display().to_string();
    let hello = client_hello("localhost");
    let half = &hello[..hello.len() / 2];
    // Memory is checked after every backend has run, so one backend's
    // excess does not hide how the others behave.
    let mut memory_failures = Vec::new();
    for backend in backends() {
        let server = Server::with_config(&config, &backend);
        let addr = server.addr();
        // Warm up (TLS contexts, allocator) before the baseline.
        normal_request(addr, 0);
        normal_request(addr, 4);
        let rss_before = server.rss_kib();

        // The normal client runs throughout: while the silent ones arrive
        // and while they are timed out.
        let normal = std::thread::spawn(move || {
            (0..NORMAL_REQUESTS)
                .map(|i| {
                    let took = normal_request(addr, i);
                    std::thread::sleep(Duration::from_millis(40));
                    took
                })
                .collect::<Vec<_>>()
        });

        let opening = Instant::now();
        let mut silent: Vec<TcpStream> = Vec::with_capacity(SILENT);
        for i in 0..SILENT {
            let mut stream = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("{backend}: silent client {i}: {e}"));
            stream.write_all(half).unwrap();
            silent.push(stream);
            if i % OPEN_BATCH == OPEN_BATCH - 1 {
                std::thread::sleep(OPEN_PAUSE);
            }
        }
        let opened_in = opening.elapsed();
        let rss_peak = server.rss_kib();

        for stream in &silent {
            stream.set_nonblocking(true).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut open: Vec<usize> = (0..SILENT).collect();
        while !open.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            open.retain(|&i| !closed_now(&mut silent[i]));
        }
        let all_closed_after = opening.elapsed();
        let rss_after = server.rss_kib();

        let latencies = normal.join().expect("the normal client failed");
        let slowest = latencies.iter().max().copied().unwrap_or_default();
        drop(silent);

        let (code, log) = server.stop();
        let summary = summary_line(&log);
        eprintln!(
            "{backend}: opened {SILENT} in {opened_in:?}, all closed after {all_closed_after:?}; \
             slowest normal request {slowest:?}; RSS {rss_before} -> {rss_peak} -> {rss_after} KiB; \
             {summary}"
        );
        assert_eq!(code, Some(0), "{backend}: exit code");
        assert!(
            open.is_empty(),
            "{backend}: {} silent clients still open {all_closed_after:?} after the first \
             connected (handshake_secs = 1)",
            open.len()
        );
        for (i, took) in latencies.iter().enumerate() {
            assert!(
                *took < Duration::from_secs(1),
                "{backend}: normal request {i} took {took:?}"
            );
        }
        assert!(
            summary_counter(&log, "handshake_timeout") >= SILENT as u64,
            "{backend}: {summary}"
        );
        let growth = rss_peak.max(rss_after).saturating_sub(rss_before);
        if growth >= MAX_RSS_GROWTH_KIB {
            memory_failures.push(format!(
                "{backend}: RSS grew by {growth} KiB (limit {MAX_RSS_GROWTH_KIB}) for {SILENT} \
                 silent half-ClientHellos ({rss_before} -> {rss_peak} at the peak -> \
                 {rss_after} KiB once all were closed)"
            ));
        }
    }
    assert!(memory_failures.is_empty(), "{}", memory_failures.join("\n"));
}
