//! The io_uring completion driver's own hazards, end to end: closing a
//! connection while its receive is in flight, running out of receive
//! buffers under a thousand clients, and refusing what it does not serve.
//! (The echo, chat and TLS suites run against it like against every
//! backend; see `common::backends`.)

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::{backends_of_model, pattern, read_exact, Server, BIN};

const DRIVER: &str = "uring-completion";

/// Whether this machine can run the completion driver; if not, the test
/// says so and checks nothing more (the listing test covers the reason).
fn available() -> bool {
    let ok = backends_of_model("completion").iter().any(|b| b == DRIVER);
    if !ok {
        eprintln!("{DRIVER} cannot run here; skipping");
    }
    ok
}

/// The number before `phrase` in the driver's exit line, summed over workers.
fn counted(log: &str, phrase: &str) -> u64 {
    log.lines()
        .filter(|line| line.contains("completion driver:"))
        .map(|line| {
            let at = line
                .find(phrase)
                .unwrap_or_else(|| panic!("no `{phrase}` in {line}"));
            let before = line[..at].trim_end();
            let number = before.rsplit([' ', ':', ',']).next().unwrap();
            let number = number.split('/').next().unwrap();
            number
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("`{number}` in {line}"))
        })
        .sum()
}

#[test]
fn the_listing_names_the_completion_driver_and_its_model() {
    let out = std::process::Command::new(BIN)
        .arg("backends")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let fields = |prefix: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in:\n{text}"));
        line.split_whitespace().map(String::from).collect()
    };
    let completion = fields("uring-completion");
    assert_eq!(completion[1], "completion", "{completion:?}");
    assert!(
        completion[2] == "yes" || completion[2] == "no",
        "{completion:?}"
    );
    assert_eq!(fields("epoll")[1], "readiness");
}

/// A connection the server closes (a malformed TLS record) always has its
/// multishot receive in flight, so each close goes through cancellation;
/// meanwhile other clients echo through the slots those closes free. No
/// echo may carry a byte that is not its own, every close must have
/// cancelled, and no completion may arrive for a slot's older generation.
#[test]
fn close_with_receives_in_flight_never_reaches_a_reused_slot() {
    if !available() {
        return;
    }
    const ROUNDS: usize = 300;
    let server = Server::service("echo", DRIVER, &[]);
    let addr = server.addr();
    let mut good: Vec<TcpStream> = (0..8).map(|_| server.connect()).collect();
    for round in 0..ROUNDS {
        // Not TLS's handshake type: the sniffer says TLS, the engine fails it.
        let mut bad = TcpStream::connect(addr).unwrap();
        bad.write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0xff, 0xff, 0xff, 0xff])
            .unwrap();
        if round % 2 == 0 {
            // Half the time the peer goes too, racing the server's close.
            let _ = bad.shutdown(Shutdown::Both);
        }
        // A fresh connection is likely to land in the slot just freed.
        let mut fresh = TcpStream::connect(addr).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let message = pattern(round as u64, 64 + round % 300);
        fresh.write_all(&message).unwrap();
        assert_eq!(
            read_exact(&mut fresh, message.len()),
            message,
            "round {round}"
        );
        for (i, client) in good.iter_mut().enumerate() {
            let message = pattern((round * 8 + i) as u64 + 1_000_000, 32);
            client.write_all(&message).unwrap();
            assert_eq!(read_exact(client, 32), message, "round {round} client {i}");
        }
        let mut rest = Vec::new();
        bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = bad.read_to_end(&mut rest); // the server closed it
        drop(fresh);
    }
    drop(good);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    let cancelled = counted(&log, "closes cancelled operations in flight");
    eprintln!("{cancelled} closes cancelled operations in flight");
    assert!(
        cancelled >= ROUNDS as u64,
        "every bad connection closed with its receive in flight: {cancelled}\n{log}"
    );
    assert_eq!(counted(&log, "stale completions dropped"), 0, "{log}");
    assert_eq!(counted(&log, "buffers lent at exit"), 0, "{log}");
}

/// With a ring of 8 buffers and a thousand clients sending at once, the
/// kernel runs out of buffers and ends receives with ENOBUFS; each is
/// re-armed once buffers are back, and every byte is echoed, in order. The
/// completion queue (64 entries) overflows too: the kernel keeps what does
/// not fit (FEAT_NODROP) and the driver collects it on its next turn.
#[test]
fn a_thousand_clients_exhaust_a_small_buffer_ring_and_lose_nothing() {
    if !available() {
        return;
    }
    const CLIENTS: usize = 1000;
    const THREADS: usize = 4;
    const ROUNDS: usize = 3;
    let server = Server::service(
        "echo",
        DRIVER,
        &["--uring-buffers", "8", "--uring-entries", "16"],
    );
    let addr = server.addr();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut clients: Vec<TcpStream> = (0..CLIENTS / THREADS)
                    .map(|_| {
                        let s = TcpStream::connect(addr).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        s
                    })
                    .collect();
                for round in 0..ROUNDS {
                    // All send before any reads: all are in flight at once,
                    // many more than there are buffers.
                    for (i, client) in clients.iter_mut().enumerate() {
                        let seed = (t * 100_000 + i * 10 + round) as u64;
                        client.write_all(&pattern(seed, 1000 + i % 3000)).unwrap();
                    }
                    for (i, client) in clients.iter_mut().enumerate() {
                        let seed = (t * 100_000 + i * 10 + round) as u64;
                        let expected = pattern(seed, 1000 + i % 3000);
                        assert_eq!(read_exact(client, expected.len()), expected);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a client thread failed");
    }
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    let starved = counted(&log, "receives re-armed after ENOBUFS");
    eprintln!(
        "{starved} receives re-armed after ENOBUFS, {} CQ overflows",
        counted(&log, "CQ overflows")
    );
    assert!(
        starved > 0,
        "8 buffers never ran out under 1,000 clients:\n{log}"
    );
    assert!(
        counted(&log, "CQ overflows") > 0,
        "64 CQ entries sufficed:\n{log}"
    );
    assert_eq!(counted(&log, "buffers lent at exit"), 0, "{log}");
}

#[test]
fn udp_is_refused_at_start_up_with_the_reason() {
    if !available() {
        return;
    }
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--backend",
            DRIVER,
            "--service",
            "udp-echo",
            "--udp",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("serves TCP only") && err.contains("epoll"),
        "{err}"
    );
}
