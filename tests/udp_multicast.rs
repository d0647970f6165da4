//! `serve --service udp-multicast` against receivers that join its group on
//! 127.0.0.1, on every backend: ten receivers each get the stream whole and
//! in order, the rate is kept, and bad multicast settings stop start-up
//! with the flag named.
//!
//! Every test streams to a group of its own (`fresh_group`), so tests and
//! test runs on the same machine never hear each other.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::udp::{fresh_group, join, receive_stream, udp_counter};
use common::{backends_of_model, Server, BIN};

const SIZE: usize = 32;

fn stream_server(backend: &str, group: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--service",
        "udp-multicast",
        "--group",
        group,
        "--backend",
        backend,
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Asserts that `seqs` is one run of consecutive numbers.
fn assert_in_order_without_gaps(seqs: &[u64], context: &str) {
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "{context}: {} came after {}",
            pair[1],
            pair[0]
        );
    }
}

#[test]
fn each_of_ten_receivers_gets_every_datagram_in_order() {
    for backend in backends_of_model("readiness") {
        let group = fresh_group();
        let first = join(group, 0);
        let port = first.local_addr().unwrap().port();
        let mut receivers = vec![first];
        receivers.extend((1..10).map(|_| join(group, port)));
        let target = format!("{group}:{port}");
        // 400 datagrams/s: the receivers' buffers hold seconds of it, so a
        // loaded machine cannot make them lose any.
        let server = stream_server(&backend, &target, &["--rate", "400"]);
        let streams: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = receivers
                .iter()
                .map(|r| scope.spawn(move || receive_stream(r, SIZE, Duration::from_millis(1500))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{log}");
        for (i, seqs) in streams.iter().enumerate() {
            let context = format!("{backend}: receiver {i}");
            assert!(
                seqs.len() >= 200,
                "{context}: only {} datagrams",
                seqs.len()
            );
            assert_in_order_without_gaps(seqs, &context);
        }
        // Every receiver heard the same stream: their runs overlap.
        let latest_start = streams.iter().map(|s| s[0]).max().unwrap();
        let earliest_end = streams.iter().map(|s| *s.last().unwrap()).min().unwrap();
        assert!(
            latest_start < earliest_end,
            "{backend}: the receivers heard different streams"
        );
        assert!(udp_counter(&log, "sent") >= 400, "{backend}: {log}");
        assert_eq!(udp_counter(&log, "send_errors"), 0, "{backend}");
    }
}

#[test]
fn the_stream_keeps_to_its_rate() {
    let group = fresh_group();
    let receiver = join(group, 0);
    let target = format!("{group}:{}", receiver.local_addr().unwrap().port());
    let server = stream_server(
        &backends_of_model("readiness")[0],
        &target,
        &["--rate", "200"],
    );
    let started = Instant::now();
    let seqs = receive_stream(&receiver, SIZE, Duration::from_secs(2));
    let elapsed = started.elapsed().as_secs_f64();
    drop(server);
    let expected = 200.0 * elapsed;
    // Loose below (a loaded machine may run the server late), tight above:
    // a stream sent as fast as possible would be thousands per second.
    assert!(
        (seqs.len() as f64) < expected * 1.2 + 25.0 && seqs.len() as f64 > expected * 0.3,
        "{} datagrams in {elapsed:.2} s at 200/s",
        seqs.len()
    );
}

#[test]
fn an_unpaced_stream_runs_as_fast_as_the_socket_takes_it() {
    let group = fresh_group();
    let receiver = join(group, 0);
    let target = format!("{group}:{}", receiver.local_addr().unwrap().port());
    let server = stream_server(
        &backends_of_model("readiness")[0],
        &target,
        &["--multicast-size", "100"],
    );
    let seqs = receive_stream(&receiver, 100, Duration::from_millis(500));
    let (_, log) = server.stop();
    assert!(
        seqs.len() > 2000,
        "only {} datagrams in half a second",
        seqs.len()
    );
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "out of order");
    assert!(log.contains("datagrams_per_send_call="), "{log}");
}

fn refused(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("serve")
        .args(args)
        .output()
        .expect("run portcullis serve");
    assert_eq!(out.status.code(), Some(2), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_multicast_settings_stop_start_up_naming_the_flag() {
    let stream = ["--service", "udp-multicast"];
    for (extra, needle) in [
        (
            &["--group", "10.0.0.1:3333"][..],
            "--group: 10.0.0.1 is not a multicast address",
        ),
        (
            &["--multicast-size", "4"][..],
            "--multicast-size: 4 bytes is outside 8 to 65507",
        ),
        (
            &["--multicast-if", "lo"][..],
            "--multicast-if: `lo` is not an IPv4 address",
        ),
        (
            &["--multicast-ttl", "256"][..],
            "--multicast-ttl: 256 is above 255",
        ),
        (&["--rate=-3"][..], "--rate: -3 is not a number"),
        (
            &["--udp", "127.0.0.1:0", "--udp", "127.0.0.1:0"][..],
            "--udp: udp-multicast sends one stream from one socket",
        ),
    ] {
        let args: Vec<&str> = stream.iter().chain(extra).copied().collect();
        let err = refused(&args);
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let err = refused(&["--service", "http", "--udp", "127.0.0.1:0"]);
    assert!(
        err.contains("--udp: the `http` service has no datagram form"),
        "{err}"
    );
}

/// IPv6 multicast on loopback needs `lo` to carry the MULTICAST flag, which
/// many systems (this project's CI among them) leave off; where it is on,
/// a receiver on `lo` gets the stream of an `ff02::` group.
#[test]
fn an_ipv6_group_reaches_a_receiver_on_loopback_where_the_os_allows_it() {
    const IFF_MULTICAST: u32 = 0x1000;
    let flags = std::fs::read_to_string("/sys/class/net/lo/flags").unwrap_or_default();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
    if flags & IFF_MULTICAST == 0 {
        eprintln!("skipped: the loopback interface has no MULTICAST flag here");
        return;
    }
    let index = 1; // `lo`
    let group: std::net::Ipv6Addr = "ff02::1:7a7a".parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&"[::]:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    socket.join_multicast_v6(&group, index).unwrap();
    let receiver: std::net::UdpSocket = socket.into();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let target = format!("[{group}]:{}", receiver.local_addr().unwrap().port());
    let server = stream_server(
        &backends_of_model("readiness")[0],
        &target,
        &["--multicast-if", "lo", "--rate", "100"],
    );
    let seqs = receive_stream(&receiver, SIZE, Duration::from_millis(500));
    drop(server);
    assert!(!seqs.is_empty());
}
