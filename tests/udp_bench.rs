//! `portcullis bench udp-echo` and `bench udp-multicast` against the real
//! server, and against a deliberately broken UDP echo: the scenarios must
//! count no errors against a good server, report their loss figures, and
//! catch a server that changes a byte or answers nothing.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::process::{Command, Output};

use common::udp::fresh_group;
use common::{Server, BIN};

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    result: HashMap<String, String>,
}

impl Outcome {
    fn number(&self, key: &str) -> f64 {
        self.result
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number `{key}` in RESULT:\n{}", self.stdout))
    }

    fn assert_clean(&self, scenario: &str) {
        assert_eq!(self.code, Some(0), "{}\n{}", self.stdout, self.stderr);
        assert_eq!(
            self.result.get("scenario").map(String::as_str),
            Some(scenario)
        );
        assert_eq!(self.number("errors"), 0.0, "{}", self.stdout);
        assert!(self.number("msgs_per_s") > 0.0, "{}", self.stdout);
    }
}

fn bench(args: &[&str]) -> Outcome {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run portcullis bench");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("RESULT "),
        "the last line is not RESULT:\n{stdout}"
    );
    let result = last
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Outcome {
        code: status.code(),
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        result,
    }
}

#[test]
fn udp_echo_verifies_every_reply_and_reports_its_losses() {
    let server = Server::start(&["--service", "udp-echo", "--udp", "127.0.0.1:0"]);
    let (addr, pid) = (server.udp_addr().to_string(), server.pid().to_string());
    for (clients, threads) in [("1", "1"), ("20", "2")] {
        let outcome = bench(&[
            "udp-echo",
            "--addr",
            &addr,
            "--server-pid",
            &pid,
            "--clients",
            clients,
            "--threads",
            threads,
            "--messages",
            "4",
            "--duration",
            "0.5",
            "--drain",
            "0.5",
        ]);
        outcome.assert_clean("udp-echo");
        let (sent, received, lost) = (
            outcome.number("sent"),
            outcome.number("received"),
            outcome.number("lost"),
        );
        assert_eq!(sent - received, lost, "{}", outcome.stdout);
        assert!(outcome.number("loss_pct") >= 0.0);
        assert!(outcome.number("server_cpu_ns_per_msg") >= 0.0);
        assert!(outcome.stdout.contains("Message throughput:"));
    }
}

#[test]
fn udp_multicast_counts_each_receivers_datagrams_losses_and_order() {
    let group = fresh_group();
    let target = format!("{group}:{}", 20_000 + std::process::id() % 20_000);
    let server = Server::start(&[
        "--service",
        "udp-multicast",
        "--group",
        &target,
        "--rate",
        "2000",
    ]);
    let outcome = bench(&[
        "udp-multicast",
        "--group",
        &target,
        "--server-pid",
        &server.pid().to_string(),
        "--clients",
        "10",
        "--threads",
        "2",
        "--duration",
        "0.5",
    ]);
    outcome.assert_clean("udp-multicast");
    // Ten receivers of one stream: ten times what the server sent.
    let per_receiver = outcome.number("messages") / 10.0;
    assert!(per_receiver > 200.0, "{}", outcome.stdout);
    assert_eq!(outcome.number("out_of_order"), 0.0, "{}", outcome.stdout);
    assert!(outcome.number("stream_per_s") > 0.0);
}

/// A UDP echo that flips one byte of every tenth reply.
fn corrupting_echo() -> std::net::SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for n in 0u64.. {
            let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            if n % 10 == 9 {
                buf[len - 1] ^= 0x20;
            }
            let _ = socket.send_to(&buf[..len], peer);
        }
    });
    addr
}

#[test]
fn udp_echo_catches_a_changed_byte_and_a_silent_server() {
    let addr = corrupting_echo().to_string();
    let outcome = bench(&[
        "udp-echo",
        "--addr",
        &addr,
        "--clients",
        "2",
        "--duration",
        "0.3",
    ]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    assert!(outcome.number("errors") >= 1.0);
    assert!(
        outcome.stderr.contains("differs from the byte sent"),
        "{}",
        outcome.stderr
    );

    // Nobody on the port: every datagram vanishes.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let outcome = bench(&[
        "udp-echo",
        "--addr",
        &addr,
        "--clients",
        "2",
        "--duration",
        "0.2",
        "--drain",
        "0.1",
    ]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    assert!(
        outcome.stderr.contains("no reply at all"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.number("loss_pct"), 100.0);
}

/// The C loop `scripts/bench-udp.sh` compares the server with must itself
/// be a correct echo, or the comparison means nothing: built with gcc as
/// the script builds it, it returns every datagram and reports its calls.
#[test]
fn the_c_reference_echo_loop_builds_echoes_and_counts_its_system_calls() {
    let dir = common::tls::TempDir::new("udp-peer");
    let binary = dir.path.join("udp_echo");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/udp_echo.c");
    let built = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(source)
        .output()
        .expect("run gcc");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let mut peer = Command::new(&binary)
        .args(["127.0.0.1", "0", "32"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(peer.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("udp listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let socket = common::udp::client();
    for i in 0..50 {
        let payload = common::pattern(i, 1 + i as usize * 13);
        assert_eq!(common::udp::round_trip(&socket, addr, &payload), payload);
    }
    // SAFETY: kill takes plain integers; the pid is the child started above.
    unsafe { libc::kill(peer.id() as i32, libc::SIGTERM) };
    let out = peer.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("datagrams=50 "), "{report}");
    assert!(
        report.contains("receive_calls=") && report.contains("send_calls="),
        "{report}"
    );
}
