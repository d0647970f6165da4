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

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use common::bench::bench;
use common::{Server, BIN};

fn server(service: &str, extra: &[&str]) -> (Server, String, String) {
    let mut args = vec!["--service", service, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let (addr, pid) = (server.addr().to_string(), server.pid().to_string());
    (server, addr, pid)
}

#[test]
fn echo_modes_run_over_plain_and_tls_without_errors() {
    let (_server, addr, pid) = server("echo", &[]);
    let target = ["echo", "--addr", &addr, "--server-pid", &pid];

    let windowed = bench(
        &[
            &target[..],
            &["--clients", "8", "--messages", "40000", "--threads", "2"],
        ]
        .concat(),
    );
    windowed.assert_clean("echo");
    assert_eq!(windowed.get("mode"), "cppserver-v2");
    assert_eq!(windowed.number("window"), 1000.0);
    assert_eq!(windowed.number("messages"), 40000.0);
    // Present, though coarse in so short a run (clock ticks of 10 ms).
    assert!(windowed.number("server_cpu_ns_per_msg") >= 0.0);
    assert!(windowed.stdout.contains("Message throughput:"));

    let v1 = bench(
        &[
            &target[..],
            &["--tls", "--mode", "cppserver-v1", "--clients", "4"],
            &["--messages", "2000"],
        ]
        .concat(),
    );
    v1.assert_clean("echo");
    assert_eq!(v1.get("transport"), "tls");
    assert_eq!(v1.number("messages"), 2000.0);
    assert_eq!(v1.number("writes"), 2000.0, "{}", v1.stdout);

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
}

#[test]
fn echo_ends_on_the_first_bound_reached_and_says_which() {
    let (_server, addr, _pid) = server("echo", &[]);
    let run = |flags: &[&str]| {
        let outcome = bench(&[&["echo", "--addr", &addr, "--clients", "4"][..], flags].concat());
        outcome.assert_clean("echo");
        outcome
    };
    for mode in ["cppserver-v1", "cppserver-v2", "pingpong"] {
        // --duration alone bounds the run: no default message count cuts
        // it short, and what was in flight is still verified.
        let timed = run(&["--mode", mode, "--duration", "0.4"]);
        assert_eq!(timed.get("ended_by"), "duration", "{}", timed.stdout);
        let seconds = timed.number("seconds");
        assert!((0.35..5.0).contains(&seconds), "{}", timed.stdout);
        assert!(
            timed.stdout.contains("Ended by: --duration"),
            "{}",
            timed.stdout
        );

        // --messages alone: no default duration.
        let counted = run(&["--mode", mode, "--messages", "400"]);
        assert_eq!(counted.get("ended_by"), "messages", "{}", counted.stdout);
        assert_eq!(counted.number("messages"), 400.0);
    }
    // Both: the messages run out first, or the time does.
    let few = run(&["--messages", "400", "--duration", "30"]);
    assert_eq!(few.get("ended_by"), "messages", "{}", few.stdout);
    assert!(few.number("seconds") < 10.0, "{}", few.stdout);
    let many = run(&["--messages", "1000000000000", "--duration", "0.3"]);
    assert_eq!(many.get("ended_by"), "duration", "{}", many.stdout);
    assert!(
        many.stdout.contains("whichever comes first"),
        "{}",
        many.stdout
    );
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
fn handshakes_refuse_a_tls_flag_they_would_ignore() {
    let out = Command::new(BIN)
        .args(["bench", "handshakes", "--tls", "--duration", "0.1"])
        .output()
        .expect("run portcullis bench");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls"), "{stderr}");
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

/// Runs `portcullis bench ARGS` with its open-file limit set to
/// (`soft`, `hard`); returns its stderr.
fn bench_with_fd_limit(args: &[&str], soft: u64, hard: u64) -> String {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(BIN);
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only setrlimit, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = command
        .arg("bench")
        .args(args)
        .output()
        .expect("run portcullis bench");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn connections_raise_their_open_file_limit_or_say_exactly_how_many_fit() {
    let (_server, addr, _pid) = server("echo", &[]);
    let flags = [
        "connections",
        "--addr",
        &addr,
        "--count",
        "150",
        "--hold",
        "0",
    ];

    // The soft limit below the hard one: raised, no ulimit needed.
    let raised = bench_with_fd_limit(&flags, 100, 400);
    assert!(
        raised.contains("raised the open-file soft limit from 100 to the hard limit 400"),
        "{raised}"
    );
    assert!(!raised.contains("processes of at most"), "{raised}");

    // Stuck at the hard limit: how many fit in one process, and the split.
    let stuck = bench_with_fd_limit(&flags, 100, 100);
    assert!(stuck.contains("36 per process"), "{stuck}");
    assert!(
        stuck.contains("150 connections need 5 processes of at most 36"),
        "{stuck}"
    );

    // Asking one process for more than it may hold is refused up front.
    let refused = bench_with_fd_limit(&[&flags[..], &["--per-process", "150"]].concat(), 100, 100);
    assert!(
        refused.contains("may hold only 36 connections"),
        "{refused}"
    );
}

#[test]
fn connections_warn_when_the_server_cannot_accept_them_all() {
    let server =
        Server::start_with_fd_limit(&["--service", "echo", "--listen", "127.0.0.1:0"], 100);
    let (addr, pid) = (server.addr().to_string(), server.pid().to_string());
    let stderr = bench_with_fd_limit(
        &[
            "connections",
            "--addr",
            &addr,
            "--server-pid",
            &pid,
            "--count",
            "50",
            "--hold",
            "0",
            "--timeout",
            "5",
        ],
        1024,
        1024,
    );
    assert!(
        stderr.contains("can accept about 36 connections by its open-file limit"),
        "{stderr}"
    );
    assert!(
        stderr.contains("about 14 of the 50 will be refused"),
        "{stderr}"
    );
}
