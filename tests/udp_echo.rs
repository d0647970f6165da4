//! `serve --service udp-echo` against real sockets on loopback, on every
//! backend: every byte back, to one client and to a hundred; the largest
//! datagrams; truncation; zero-length datagrams; replies that bounce; a
//! source over its rate limit; and the echo never sending more bytes than
//! it received.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::tls::TempDir;
use common::udp::{client, client_on, nothing_within, round_trip, udp_counter, udp_summary};
use common::{backends_of_model, pattern, Server};

fn udp_echo(backend: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--service",
        "udp-echo",
        "--udp",
        "127.0.0.1:0",
        "--backend",
        backend,
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Stops the server and checks what every echo test promises of the
/// counters: nothing sent that was not received.
fn stop_and_check(server: Server) -> String {
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    let (received, sent) = (
        udp_counter(&log, "received_bytes"),
        udp_counter(&log, "sent_bytes"),
    );
    assert!(
        sent <= received,
        "echo sent {sent} bytes for {received} received: {}",
        udp_summary(&log)
    );
    log
}

#[test]
fn one_client_gets_every_datagram_back_byte_for_byte() {
    for backend in backends_of_model("readiness") {
        let server = udp_echo(&backend, &[]);
        let socket = client();
        for i in 0..300u64 {
            let payload = pattern(i, (i as usize * 37) % 1500);
            assert_eq!(
                round_trip(&socket, server.udp_addr(), &payload),
                payload,
                "{backend} #{i}"
            );
        }
        let log = stop_and_check(server);
        assert_eq!(udp_counter(&log, "received"), 300, "{backend}");
        assert_eq!(udp_counter(&log, "sent"), 300, "{backend}");
    }
}

/// A hundred clients, spread over ten threads with one datagram in flight
/// each (so the server's buffers hold everything in flight even where the
/// kernel caps them low), twenty rounds each.
fn hundred_clients(server: SocketAddr, context: &str) {
    std::thread::scope(|scope| {
        for thread in 0..10u64 {
            scope.spawn(move || {
                let sockets: Vec<UdpSocket> = (0..10).map(|_| client()).collect();
                for round in 0..20u64 {
                    let payloads: Vec<Vec<u8>> = (0..10u64)
                        .map(|c| {
                            pattern(
                                (thread * 10 + c) << 8 | round,
                                1 + (round as usize * 71) % 1200,
                            )
                        })
                        .collect();
                    for (socket, payload) in sockets.iter().zip(&payloads) {
                        socket.send_to(payload, server).unwrap();
                    }
                    for (c, (socket, payload)) in sockets.iter().zip(&payloads).enumerate() {
                        let mut buf = vec![0u8; 2048];
                        let (n, _) = socket.recv_from(&mut buf).unwrap_or_else(|e| {
                            panic!(
                                "{context}: client {} round {round}: no reply: {e}",
                                thread * 10 + c as u64
                            )
                        });
                        assert_eq!(
                            &buf[..n],
                            &payload[..],
                            "{context}: client {thread}/{c} round {round}"
                        );
                    }
                }
            });
        }
    });
}

#[test]
fn a_hundred_clients_each_get_their_own_datagrams_back() {
    for backend in backends_of_model("readiness") {
        let server = udp_echo(&backend, &[]);
        hundred_clients(server.udp_addr(), &backend);
        let log = stop_and_check(server);
        assert_eq!(udp_counter(&log, "received"), 2000, "{backend}");
    }
}

#[test]
fn the_portable_one_call_per_datagram_path_serves_a_hundred_clients_too() {
    let dir = TempDir::new("udp-per-datagram");
    let config = dir.write("udp.toml", "[udp]\nio = \"per_datagram\"\nbatch = 8\n");
    for backend in backends_of_model("readiness") {
        let server = udp_echo(&backend, &["--config", config.to_str().unwrap()]);
        hundred_clients(server.udp_addr(), &backend);
        let log = stop_and_check(server);
        let per_call = udp_summary(&log);
        assert!(
            per_call.contains("datagrams_per_send_call=1.0"),
            "{backend}: {per_call}"
        );
    }
}

#[test]
fn several_workers_share_the_port_and_serve_a_hundred_clients() {
    let server = udp_echo(&backends_of_model("readiness")[0], &["--workers", "2"]);
    hundred_clients(server.udp_addr(), "2 workers");
    stop_and_check(server);
}

#[test]
fn the_largest_datagrams_come_back_whole() {
    for backend in backends_of_model("readiness") {
        let server = udp_echo(&backend, &[]);
        let socket = client();
        // 65,507 bytes is the largest UDP payload over IPv4.
        for size in [8192, 32_768, 65_000, 65_507] {
            let payload = pattern(size as u64, size);
            assert_eq!(
                round_trip(&socket, server.udp_addr(), &payload),
                payload,
                "{backend} {size}"
            );
        }
        stop_and_check(server);
    }
}

#[test]
fn zero_length_datagrams_are_echoed() {
    for backend in backends_of_model("readiness") {
        let server = udp_echo(&backend, &[]);
        let socket = client();
        for _ in 0..3 {
            assert_eq!(
                round_trip(&socket, server.udp_addr(), b""),
                b"",
                "{backend}"
            );
        }
        let log = stop_and_check(server);
        assert_eq!(udp_counter(&log, "sent"), 3, "{backend}");
    }
}

#[test]
fn a_datagram_larger_than_max_datagram_bytes_is_dropped_counted_and_logged() {
    let dir = TempDir::new("udp-truncate");
    let config = dir.write("udp.toml", "[udp]\nmax_datagram_bytes = 1024\n");
    for backend in backends_of_model("readiness") {
        let server = udp_echo(&backend, &["--config", config.to_str().unwrap()]);
        let socket = client();
        socket
            .send_to(&pattern(1, 1025), server.udp_addr())
            .unwrap();
        socket
            .send_to(&pattern(2, 5000), server.udp_addr())
            .unwrap();
        assert!(
            nothing_within(&socket, Duration::from_millis(300)),
            "{backend}: half a datagram came back"
        );
        // Exactly the buffer fits, and serving goes on.
        let fits = pattern(3, 1024);
        assert_eq!(
            round_trip(&socket, server.udp_addr(), &fits),
            fits,
            "{backend}"
        );
        let log = stop_and_check(server);
        assert_eq!(
            udp_counter(&log, "truncated"),
            2,
            "{backend}: {}",
            udp_summary(&log)
        );
        assert_eq!(udp_counter(&log, "sent"), 1, "{backend}");
        assert!(
            log.contains("larger than max_datagram_bytes (1024)"),
            "{backend}: {log}"
        );
        assert_eq!(
            log.matches("larger than max_datagram_bytes").count(),
            1,
            "once per burst: {log}"
        );
    }
}

/// The server is paused (SIGSTOP) while a client sends and closes its
/// socket, so the replies surely go to a closed port: the kernel answers
/// them with ICMP port unreachable, which comes back to the server as
/// ECONNREFUSED on its next receive.
#[test]
fn replies_to_a_vanished_client_are_counted_unreachable_and_others_are_still_served() {
    for backend in backends_of_model("readiness") {
        let server = udp_echo(&backend, &[]);
        let pid = server.pid() as i32;
        // SAFETY: kill takes plain integers; `pid` is the child started above.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let gone = client();
        for i in 0..3 {
            gone.send_to(&pattern(i, 64), server.udp_addr()).unwrap();
        }
        drop(gone);
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        std::thread::sleep(Duration::from_millis(100));
        let socket = client();
        for i in 0..20 {
            let payload = pattern(100 + i, 200);
            assert_eq!(
                round_trip(&socket, server.udp_addr(), &payload),
                payload,
                "{backend}"
            );
        }
        let log = stop_and_check(server);
        if cfg!(target_os = "linux") {
            assert!(
                udp_counter(&log, "unreachable") >= 1,
                "{backend}: {}",
                udp_summary(&log)
            );
            assert!(log.contains("could not be delivered"), "{backend}: {log}");
        }
        assert_eq!(udp_counter(&log, "received"), 23, "{backend}");
    }
}

#[test]
fn a_source_over_its_rate_limit_is_dropped_and_counted_and_others_are_served() {
    let dir = TempDir::new("udp-rate");
    let config = dir.write(
        "udp.toml",
        "[udp]\nper_source_rate = 2.0\nper_source_burst = 5\n",
    );
    for backend in backends_of_model("readiness") {
        let server = udp_echo(&backend, &["--config", config.to_str().unwrap()]);
        let flooder = client();
        for i in 0..50 {
            flooder
                .send_to(&pattern(i, 100), server.udp_addr())
                .unwrap();
        }
        let mut replies = 0;
        while !nothing_within(&flooder, Duration::from_millis(300)) {
            replies += 1;
        }
        assert!(
            (5..=7).contains(&replies),
            "{backend}: {replies} replies for a burst of 5"
        );
        // Another source (127.0.0.2 is loopback too) has a bucket of its own.
        let other = client_on("127.0.0.2");
        let payload = pattern(9, 100);
        assert_eq!(
            round_trip(&other, server.udp_addr(), &payload),
            payload,
            "{backend}"
        );
        let log = stop_and_check(server);
        assert!(
            udp_counter(&log, "rate_limited") >= 43,
            "{backend}: {}",
            udp_summary(&log)
        );
        assert!(log.contains("over per_source_rate"), "{backend}: {log}");
    }
}

#[test]
fn udp_and_tcp_echo_share_a_server_and_a_port_number() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let addr = format!("127.0.0.1:{port}");
    let server = Server::start(&[
        "--service",
        "udp-echo",
        "--udp",
        &addr,
        "--listen",
        &addr,
        "--no-tls",
        "--backend",
        &backends_of_model("readiness")[0],
    ]);
    assert_eq!(server.udp_addr().port(), server.addr().port());
    let socket = client();
    assert_eq!(
        round_trip(&socket, server.udp_addr(), b"datagram"),
        b"datagram"
    );
    let mut tcp = server.connect();
    std::io::Write::write_all(&mut tcp, b"stream").unwrap();
    assert_eq!(common::read_exact(&mut tcp, 6), b"stream");
    drop(tcp);
    stop_and_check(server);
}

#[test]
fn a_bad_udp_key_stops_start_up_naming_the_file_and_the_key() {
    let dir = TempDir::new("udp-config-error");
    for (service, text, key) in [
        (
            "udp-echo",
            "[udp]\nbatch = 0\n",
            "udp.batch: 0 is outside 1 to 1024",
        ),
        (
            "udp-echo",
            "[udp]\nper_source_burst = 9\n",
            "udp.per_source_burst: has no effect",
        ),
        (
            "udp-multicast",
            "[multicast]\ninterface = \"lo\"\n",
            "multicast.interface: `lo` is not an IPv4",
        ),
        (
            "udp-multicast",
            "[multicast]\nsize = 70000\n",
            "multicast.size: 70000 bytes is outside",
        ),
        (
            "http",
            "[[udp_listeners]]\naddress = \"127.0.0.1:0\"\n",
            "udp_listeners: the `http` service",
        ),
    ] {
        let file = dir.write("bad.toml", text);
        let file = file.to_str().unwrap();
        let out = std::process::Command::new(common::BIN)
            .args(["serve", "--config", file, "--service", service])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(&format!("{file}: {key}")), "{text}: {err}");
    }
}

/// A `[::]` socket is dual stack: IPv4 peers arrive as `::ffff:a.b.c.d`
/// and their replies must still reach them.
#[test]
fn a_dual_stack_socket_answers_ipv4_and_ipv6_clients() {
    let Ok(v6) = UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    v6.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for backend in backends_of_model("readiness") {
        let server = Server::start(&[
            "--service",
            "udp-echo",
            "--udp",
            "[::]:0",
            "--backend",
            &backend,
        ]);
        let port = server.udp_addr().port();
        let to_v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        assert_eq!(
            round_trip(&v6, to_v6, b"over IPv6"),
            b"over IPv6",
            "{backend}"
        );
        let v4 = client();
        let to_v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert_eq!(
            round_trip(&v4, to_v4, b"over IPv4"),
            b"over IPv4",
            "{backend}"
        );
        stop_and_check(server);
    }
}
