//! `portcullis bench` against the real server, and against a deliberately
//! broken one.
//!
//! Each scenario runs briefly against `portcullis serve` started on port 0
//! (see `common`), must count zero errors, and must end with a RESULT line
//! that parses. Then the echo scenario meets a tiny std::net server that
//! flips one byte, and one that hangs up early: the bench must notice, say
//! so, and exit non-zero — a load generator that cannot catch a corrupting
//! server is measuring nothing.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use common::{Server, BIN};

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    result: HashMap<String, String>,
}

impl Outcome {
    fn get(&self, key: &str) -> &str {
        self.result
            .get(key)
            .unwrap_or_else(|| panic!("no `{key}` in RESULT; stdout:\n{}", self.stdout))
    }

    fn number(&self, key: &str) -> f64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("`{key}` is not a number; stdout:\n{}", self.stdout))
    }

    /// Exit 0, errors=0, and the figures every scenario reports.
    fn assert_clean(&self, scenario: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert_eq!(self.get("scenario"), scenario);
        assert_eq!(self.number("errors"), 0.0);
        assert!(self.number("msgs_per_s") > 0.0, "{}", self.stdout);
        self.number("mib_per_s");
    }
}

/// Runs `portcullis bench ARGS` and parses its last line.
fn bench(args: &[&str]) -> Outcome {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run portcullis bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("RESULT "),
        "the last line is not RESULT:\n{stdout}\nstderr:\n{stderr}"
    );
    let result = last
        .split_whitespace()
        .skip(1)
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    Outcome {
        code: out.status.code(),
        stdout,
        stderr,
        result,
    }
}

fn server(service: &str, extra: &[&str]) -> (Server, String, String) {
    let mut args = vec!["--service", service, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let (addr, pid) = (server.addr().to_string(), server.pid().to_string());
    (server, addr, pid)
}

#[test]
fn echo_streams_and_ping_pongs_over_plain_and_tls_without_errors() {
    let (_server, addr, pid) = server("echo", &[]);
    let target = ["echo", "--addr", &addr, "--server-pid", &pid];

    let stream = bench(
        &[
            &target[..],
            &["--clients", "8", "--messages", "40000", "--threads", "2"],
        ]
        .concat(),
    );
    stream.assert_clean("echo");
    assert_eq!(stream.get("mode"), "stream");
    assert_eq!(stream.number("messages"), 40000.0);
    // Present, though coarse in so short a run (clock ticks of 10 ms).
    assert!(stream.number("server_cpu_ns_per_msg") >= 0.0);
    assert!(stream.stdout.contains("Message throughput:"));

    let pingpong = bench(
        &[
            &target[..],
            &[
                "--tls",
                "--clients",
                "3",
                "--messages",
                "600",
                "--size",
                "100",
            ],
            &["--mode", "pingpong"],
        ]
        .concat(),
    );
    pingpong.assert_clean("echo");
    assert_eq!(pingpong.get("transport"), "tls");
    assert_eq!(pingpong.number("messages"), 600.0);
    let (p50, p99, max) = (
        pingpong.number("p50_us"),
        pingpong.number("p99_us"),
        pingpong.number("max_us"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{}", pingpong.stdout);

    // A time-bounded run stops sending at --duration and still verifies
    // everything in flight.
    let timed = bench(
        &[
            &target[..],
            &[
                "--clients",
                "4",
                "--messages",
                "1000000000",
                "--duration",
                "0.3",
            ],
        ]
        .concat(),
    );
    timed.assert_clean("echo");
    assert!(timed.number("seconds") < 5.0, "{}", timed.stdout);
}

#[test]
fn multicast_counts_framed_messages() {
    let (_server, addr, pid) = server("multicast", &["--multicast-size", "64"]);
    for tls in [false, true] {
        let mut args = vec![
            "multicast",
            "--addr",
            &addr,
            "--server-pid",
            &pid,
            "--clients",
            "4",
            "--threads",
            "2",
            "--size",
            "64",
            "--duration",
            "0.5",
        ];
        if tls {
            args.push("--tls");
        }
        let outcome = bench(&args);
        outcome.assert_clean("multicast");
        assert!(outcome.number("messages") > 0.0);
        assert!(outcome.number("server_cpu_ns_per_msg") >= 0.0);
    }
}

#[test]
fn connections_split_over_processes_and_source_addresses() {
    let (_server, addr, pid) = server("echo", &[]);
    let outcome = bench(&[
        "connections",
        "--addr",
        &addr,
        "--server-pid",
        &pid,
        "--count",
        "60",
        "--per-process",
        "25",
        "--sources",
        "2",
        "--hold",
        "0.2",
    ]);
    outcome.assert_clean("connections");
    assert_eq!(outcome.number("processes"), 3.0);
    assert_eq!(outcome.number("sources"), 2.0);
    assert_eq!(outcome.number("connections_ok"), 60.0);
    assert!(outcome.result.contains_key("rss_bytes_per_conn"));

    let tls = bench(&[
        "connections",
        "--addr",
        &addr,
        "--tls",
        "--count",
        "20",
        "--hold",
        "0.1",
    ]);
    tls.assert_clean("connections");
    assert_eq!(tls.number("connections_ok"), 20.0);
}

#[test]
fn handshakes_full_and_resumed() {
    let (_server, addr, pid) = server("echo", &[]);
    for version in ["1.2", "1.3"] {
        let outcome = bench(&[
            "handshakes",
            "--addr",
            &addr,
            "--server-pid",
            &pid,
            "--tls-version",
            version,
            "--concurrency",
            "2",
            "--duration",
            "0.4",
        ]);
        outcome.assert_clean("handshakes");
        assert!(outcome.number("handshakes_per_s") > 0.0);
        assert!(outcome.number("resumed_per_s") > 0.0, "{}", outcome.stdout);
        assert_eq!(outcome.number("not_resumed"), 0.0, "{}", outcome.stdout);
        assert_eq!(outcome.get("version"), format!("TLSv{version}"));
    }
}

/// A broken echo server: echoes everything, except that it flips the byte
/// at offset `flip_at` of each connection, or hangs up after `close_after`
/// bytes.
fn broken_echo(flip_at: Option<usize>, close_after: Option<usize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fixture");
    let addr = listener.local_addr().expect("fixture address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut offset = 0;
                let mut buf = [0u8; 4096];
                loop {
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let chunk = &mut buf[..n];
                    if let Some(at) = flip_at.filter(|at| (offset..offset + n).contains(at)) {
                        chunk[at - offset] ^= 0x20;
                    }
                    let keep = close_after.map_or(n, |limit| n.min(limit.saturating_sub(offset)));
                    if stream.write_all(&chunk[..keep]).is_err() {
                        return;
                    }
                    offset += n;
                    if keep < n {
                        // Hang up with echoes still owed: FIN, then drain
                        // what the client still sends so the close is clean.
                        let _ = stream.shutdown(std::net::Shutdown::Write);
                        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_corrupting_echo_server_is_reported_and_fails_the_run() {
    let addr = broken_echo(Some(100), None).to_string();
    let outcome = bench(&[
        "echo",
        "--addr",
        &addr,
        "--clients",
        "2",
        "--messages",
        "200",
        "--timeout",
        "10",
    ]);
    assert_ne!(outcome.code, Some(0), "stdout:\n{}", outcome.stdout);
    assert!(outcome.number("errors") >= 1.0, "{}", outcome.stdout);
    assert!(outcome.stderr.contains("differs"), "{}", outcome.stderr);
}

#[test]
fn a_short_echo_is_reported_and_fails_the_run() {
    let addr = broken_echo(None, Some(1000)).to_string();
    let outcome = bench(&[
        "echo",
        "--addr",
        &addr,
        "--clients",
        "1",
        "--messages",
        "200",
        "--timeout",
        "10",
    ]);
    assert_ne!(outcome.code, Some(0), "stdout:\n{}", outcome.stdout);
    assert_eq!(outcome.number("errors"), 1.0, "{}", outcome.stdout);
    assert!(
        outcome.stderr.contains("closed by the server"),
        "{}",
        outcome.stderr
    );
}
