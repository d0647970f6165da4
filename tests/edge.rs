//! The edge policy against the real binary over real sockets: access
//! rules, per-listener and per-client limits, the accept rate, the read
//! rate, the per-client table under a scan, and hostile PROXY headers.
//! Clients pick their source address inside 127.0.0.0/8 (every address
//! there is local on Linux), so "another client" is a real other address,
//! on loopback only.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{backends, closed_by_server, pattern, Server};
use socket2::{Domain, Socket, Type};

/// A config file with one plaintext listener on 127.0.0.1:0 (or `address`)
/// and `keys` in its table.
fn config(name: &str, service: &str, address: &str, keys: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "service = \"{service}\"\n[timeouts]\nhandshake_secs = 5\n\
             [[listeners]]\naddress = \"{address}\"\ntls = false\ndefer_accept = false\n{keys}\n"
        ),
    )
    .unwrap();
    path
}

fn start(path: &std::path::Path, backend: &str) -> Server {
    Server::start_expecting(
        &["--config", path.to_str().unwrap(), "--backend", backend],
        1,
        0,
    )
}

/// Connects to `server` from the source address `source` (any port).
fn connect_from(source: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let source = SocketAddr::new(source.parse().unwrap(), 0);
    let socket = Socket::new(Domain::for_address(server), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&source.into())?;
    socket.connect(&server.into())?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// `GET /` and the body of the connection report.
fn report(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

fn line<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|l| l.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in\n{report}"))
}

#[test]
fn access_rules_refuse_before_any_byte_first_match_wins() {
    let path = config(
        "access",
        "http",
        "127.0.0.1:0",
        "access = [\"deny 127.0.0.3\", \"allow 127.0.0.0/29\", \"deny all\"]",
    );
    for backend in backends() {
        let server = start(&path, &backend);
        let addr = server.addr();
        for denied in ["127.0.0.3", "127.0.0.9"] {
            let mut stream = connect_from(denied, addr).unwrap();
            assert!(
                closed_by_server(&mut stream, Duration::from_secs(5)),
                "{backend}: {denied} was served"
            );
        }
        let mut allowed = connect_from("127.0.0.2", addr).unwrap();
        let body = report(&mut allowed);
        assert!(
            line(&body, "client_addr").starts_with("127.0.0.2:"),
            "{body}"
        );
        assert_eq!(line(&body, "client_addr"), line(&body, "peer_addr"));
        let (_, log) = server.stop();
        assert!(log.contains("access_denied=2"), "{backend}:\n{log}");
        assert!(
            log.contains(&format!("listener {addr} refused: access_denied=2")),
            "{backend}:\n{log}"
        );
        // One info line per burst, not one per refusal.
        let info = log.matches("refused 127.0.0.").count();
        assert_eq!(info, 1, "{backend}:\n{log}");
    }
}

#[test]
fn an_ipv4_mapped_peer_on_a_dual_stack_listener_is_matched_as_ipv4() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 on this machine");
        return;
    }
    let path = config("mapped", "http", "[::]:0", "access = [\"deny 127.0.0.1\"]");
    let server = start(&path, "epoll");
    let port = server.port();
    // Arrives as ::ffff:127.0.0.1 on the [::] socket.
    let mut mapped =
        connect_from("127.0.0.1", format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
    assert!(
        closed_by_server(&mut mapped, Duration::from_secs(5)),
        "bypassed through IPv6"
    );
    let mut spoof = connect_from(
        "::ffff:127.0.0.1",
        format!("[::ffff:127.0.0.1]:{port}").parse().unwrap(),
    )
    .unwrap();
    assert!(
        closed_by_server(&mut spoof, Duration::from_secs(5)),
        "spoofed ::ffff: passed"
    );
    let mut other =
        connect_from("127.0.0.2", format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
    let body = report(&mut other);
    assert!(
        line(&body, "client_addr").starts_with("[::ffff:127.0.0.2]:"),
        "{body}"
    );
    let mut v6 = connect_from("::1", format!("[::1]:{port}").parse().unwrap()).unwrap();
    assert!(report(&mut v6).contains("client_addr=[::1]:"));
    let (_, log) = server.stop();
    assert!(log.contains("access_denied=2"), "{log}");
}

#[test]
fn the_listener_limit_refuses_the_extra_connection_and_frees_a_place_on_close() {
    let path = config("listener-max", "echo", "127.0.0.1:0", "max_connections = 3");
    let server = start(&path, "epoll");
    let mut held = Vec::new();
    for i in 0..3 {
        let mut stream = connect_from("127.0.0.1", server.addr()).unwrap();
        stream.write_all(&pattern(i, 10)).unwrap();
        let mut echo = [0u8; 10];
        stream.read_exact(&mut echo).unwrap();
        held.push(stream);
    }
    let mut extra = connect_from("127.0.0.2", server.addr()).unwrap();
    assert!(closed_by_server(&mut extra, Duration::from_secs(5)));
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(200));
    let mut again = connect_from("127.0.0.2", server.addr()).unwrap();
    again.write_all(b"back").unwrap();
    let mut echo = [0u8; 4];
    again.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"back");
    let (_, log) = server.stop();
    assert!(log.contains("listener_max_connections=1"), "{log}");
}

#[test]
fn ten_thousand_connections_from_one_address_against_a_limit_of_a_hundred() {
    let path = config(
        "per-client",
        "echo",
        "127.0.0.1:0",
        "max_connections_per_client = 100",
    );
    let server = start(&path, "epoll");
    let addr = server.addr();
    let mut held = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        held.push(connect_from("127.0.0.7", addr).unwrap());
    }
    // Another client is not disturbed meanwhile.
    let mut other = connect_from("127.0.0.8", addr).unwrap();
    other.write_all(b"fine").unwrap();
    let mut echo = [0u8; 4];
    other.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"fine");
    // The first hundred are served.
    for stream in held.iter_mut().take(100) {
        stream.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        stream.read_exact(&mut one).unwrap();
    }
    let (_, log) = server.stop();
    assert!(log.contains("client_max_connections=9900"), "{log}");
}

#[test]
fn the_accept_rate_refuses_beyond_the_burst_and_counts_instead_of_queueing() {
    let path = config(
        "rate",
        "echo",
        "127.0.0.1:0",
        "accept_rate_per_client = \"20/s\"",
    );
    let server = start(&path, "epoll");
    let start = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..100 {
        streams.push(connect_from("127.0.0.9", server.addr()).unwrap());
    }
    let elapsed = start.elapsed();
    // Another address has its own allowance.
    let mut other = connect_from("127.0.0.10", server.addr()).unwrap();
    other.write_all(b"ok").unwrap();
    let mut echo = [0u8; 2];
    other.read_exact(&mut echo).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (_, log) = server.stop();
    let refused: u64 = log
        .split("client_accept_rate=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter:\n{log}"));
    // A burst of 20, plus one per 50 ms the loop took (and two for the
    // server's accepts trailing the client's connects).
    let earned = (elapsed.as_millis() / 50) as u64 + 2;
    assert!(
        (80 - earned.min(80)..=80).contains(&refused),
        "{refused} refused in {elapsed:?}:\n{log}"
    );
}

#[test]
fn a_fast_sender_is_slowed_to_the_read_rate_and_no_byte_is_lost() {
    let path = config(
        "read-rate",
        "echo",
        "127.0.0.1:0",
        "read_rate_limit = \"100KiB/s\"",
    );
    let server = start(&path, "epoll");
    let source: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let stream: TcpStream = socket.into();
    let mut writer = stream.try_clone().unwrap();
    let sent = std::thread::spawn(move || {
        // 10 MiB/s offered for 3 s, in 64 KiB writes paced at that rate;
        // flow control blocks the writes once the server pauses reading.
        let data = pattern(42, 30 * 1024 * 1024);
        let start = Instant::now();
        let mut at = 0;
        while start.elapsed() < Duration::from_secs(3) {
            let due =
                ((start.elapsed().as_secs_f64() * 10.0 * 1024.0 * 1024.0) as usize).min(data.len());
            if due > at {
                let end = due.min(at + 64 * 1024);
                writer.write_all(&data[at..end]).unwrap();
                at = end;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        writer.shutdown(std::net::Shutdown::Write).unwrap();
        data[..at].to_vec()
    });
    let mut reader = stream;
    reader
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let start = Instant::now();
    let mut received = Vec::new();
    let mut at_1s = None;
    let mut at_3s = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        let t = start.elapsed();
        if at_1s.is_none() && t >= Duration::from_secs(1) {
            at_1s = Some((t, received.len()));
        }
        if at_3s.is_none() && t >= Duration::from_secs(3) {
            at_3s = Some((t, received.len()));
        }
    }
    let sent = sent.join().unwrap();
    assert_eq!(received.len(), sent.len(), "bytes lost or added");
    assert!(received == sent, "bytes changed");
    let ((t1, n1), (t3, n3)) = (at_1s.unwrap(), at_3s.unwrap());
    let rate = (n3 - n1) as f64 / (t3 - t1).as_secs_f64();
    let limit = 100.0 * 1024.0;
    eprintln!(
        "steady rate {rate:.0} B/s against {limit} B/s; {} bytes in all",
        sent.len()
    );
    assert!((rate / limit - 1.0).abs() <= 0.10, "{rate:.0} B/s");
    drop(server);
}

/// Re-runs the test `name` in a network namespace of its own, with only a
/// loopback interface, when this machine allows it (root and `unshare`):
/// returns true once it has run there. A scan's 100,000 connections then
/// leave their TIME_WAIT entries in that namespace, not on the loopback
/// other programs share. Elsewhere it returns false and the test runs here.
fn ran_in_own_network_namespace(name: &str) -> bool {
    use std::process::Command;
    if std::env::var_os("PORTCULLIS_TEST_NETNS").is_some() {
        return false; // already inside
    }
    let possible = Command::new("unshare")
        .args(["--net", "true"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !possible {
        eprintln!("no network namespace here: the scan runs on this loopback");
        return false;
    }
    let status = Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env("PORTCULLIS_TEST_NETNS", "1")
        .status()
        .expect("run the test in a network namespace");
    assert!(
        status.success(),
        "{name} failed in its network namespace: {status}"
    );
    true
}

#[test]
fn the_per_client_table_stays_flat_under_a_scan_from_100000_sources() {
    if ran_in_own_network_namespace(
        "the_per_client_table_stays_flat_under_a_scan_from_100000_sources",
    ) {
        return;
    }
    let path = config(
        "scan",
        "echo",
        "127.0.0.1:0",
        "max_connections_per_client = 10\naccept_rate_per_client = \"100/s\"",
    );
    let server = start(&path, "epoll");
    let addr = server.addr();
    let mut rss = Vec::new();
    for n in 0u32..100_000 {
        // 127.1.0.0 upwards: 100,000 distinct sources.
        let ip = std::net::Ipv4Addr::from(0x7f01_0000 + n);
        let stream = connect_from(&ip.to_string(), addr).unwrap();
        drop(stream);
        if n % 20_000 == 19_999 {
            std::thread::sleep(Duration::from_millis(200));
            rss.push(server.rss_kib());
        }
    }
    eprintln!("server RSS after each 20,000 sources (KiB): {rss:?}");
    // Flat: after the table first fills, memory does not keep growing with
    // the number of sources.
    // (A table keeping every source would be about 5 MB at 100,000 and
    // half that at 40,000.)
    let growth = rss[4].saturating_sub(rss[1]);
    assert!(
        growth < 1024,
        "RSS grew {growth} KiB from 40,000 to 100,000 sources: {rss:?}"
    );
    let mut last = connect_from("127.0.0.1", addr).unwrap();
    last.write_all(b"alive").unwrap();
    let mut echo = [0u8; 5];
    last.read_exact(&mut echo).unwrap();
}

/// A v2 PROXY header for a TCP4 client, with `extra` added to the length.
fn v2_header(src: [u8; 4], sport: u16, extra: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11]);
    h.extend_from_slice(&(12 + extra).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

#[test]
fn hostile_proxy_headers_are_each_counted_and_nothing_else_is_disturbed() {
    let path = config(
        "proxy-hostile",
        "http",
        "127.0.0.1:0",
        "proxy_protocol = \"any\"\ntrusted_proxies = [\"127.0.0.2\"]\nproxy_header_secs = 1",
    );
    for backend in backends() {
        let server = start(&path, &backend);
        let addr = server.addr();
        // A client that is not a trusted proxy: its header is never believed.
        let mut untrusted = connect_from("127.0.0.1", addr).unwrap();
        untrusted
            .write_all(b"PROXY TCP4 203.0.113.1 127.0.0.1 1 80\r\nGET / HTTP/1.1\r\n\r\n")
            .unwrap();
        assert!(closed_by_server(&mut untrusted, Duration::from_secs(5)));
        // A truncated v2 header, then silence: the header timeout.
        let mut truncated = connect_from("127.0.0.2", addr).unwrap();
        truncated
            .write_all(&v2_header([203, 0, 113, 2], 2, 0)[..10])
            .unwrap();
        // A v2 length larger than what follows, then the end.
        let mut long = connect_from("127.0.0.2", addr).unwrap();
        long.write_all(&v2_header([203, 0, 113, 3], 3, 40)).unwrap();
        long.shutdown(std::net::Shutdown::Write).unwrap();
        // A v1 line without CRLF within 107 bytes.
        let mut endless = connect_from("127.0.0.2", addr).unwrap();
        let mut line = b"PROXY TCP4 203.0.113.4 127.0.0.1 4 80".to_vec();
        line.resize(120, b' ');
        endless.write_all(&line).unwrap();
        // Meanwhile, an ordinary client and a proxied one are served.
        let mut plain = connect_from("127.0.0.1", addr).unwrap();
        let body = report(&mut plain);
        assert!(
            line_of(&body, "client_addr").starts_with("127.0.0.1:"),
            "{body}"
        );
        let mut proxied = connect_from("127.0.0.2", addr).unwrap();
        proxied
            .write_all(&v2_header([203, 0, 113, 5], 5000, 0))
            .unwrap();
        let body = report(&mut proxied);
        assert_eq!(
            line_of(&body, "client_addr"),
            "203.0.113.5:5000",
            "{backend}: {body}"
        );
        assert!(
            line_of(&body, "peer_addr").starts_with("127.0.0.2:"),
            "{body}"
        );
        for stream in [&mut truncated, &mut long, &mut endless] {
            assert!(
                closed_by_server(stream, Duration::from_secs(5)),
                "{backend}"
            );
        }
        let (_, log) = server.stop();
        for counter in ["proxy_untrusted=1", "proxy_timeout=1", "proxy_invalid=2"] {
            assert!(log.contains(counter), "{backend}: no {counter}:\n{log}");
        }
    }
}

fn line_of<'a>(report: &'a str, key: &str) -> &'a str {
    line(report, key)
}

#[test]
fn a_bad_edge_key_stops_the_server_naming_the_file_the_key_and_the_problem() {
    let path = config(
        "bad-key",
        "echo",
        "127.0.0.1:0",
        "access = [\"allow 10.0.0.0/8\", \"deny 10.0.0.1/8\"]",
    );
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}: listeners[0].access: [1] `deny 10.0.0.1/8`: `10.0.0.1/8` has host bits set; did you mean 10.0.0.0/8?",
        path.display()
    );
    assert!(err.contains(&expected), "{err}");
}
