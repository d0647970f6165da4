//! Each HTTP/2 attack the server refuses, as a hand-built frame sequence
//! against the real binary over h2c: the attacker gets GOAWAY (or
//! RST_STREAM) with the RFC's error code, the attack is counted under its
//! own name in the shutdown summary, and a second connection opened during
//! the attack is served as if nothing happened.

mod common;

use std::time::Duration;

use common::h2::{block, get_frame, http2_counter, raw, request_block, H2Client, Received};
use common::tls::TempDir;
use common::Server;
use portcullis::service::http2::frame::{flag, kind};
use portcullis::service::http2::preface::PREFACE;
use portcullis::service::http2::ErrorCode;

const INITIAL_WINDOW_SIZE: u16 = 0x4;

fn server() -> Server {
    Server::service("http", &common::backends()[0], &["--no-tls"])
}

/// Opens a bystander, sends `attack` on another connection, and returns
/// the attacker's GOAWAY code and the server's log after it stopped; the
/// bystander must be served before and after.
fn attack(attack: &[u8]) -> (Option<ErrorCode>, String) {
    let server = server();
    let mut bystander = H2Client::open(server.connect(), &[]);
    assert_eq!(
        bystander.get(1, "localhost", "/healthz"),
        (200, "ok\n".to_string())
    );
    let mut attacker = H2Client::open(server.connect(), &[]);
    attacker.send(attack);
    let code = attacker
        .goaway(Duration::from_secs(5))
        .and_then(|(_, code)| ErrorCode::from_code(code));
    assert_eq!(
        bystander.get(3, "localhost", "/healthz"),
        (200, "ok\n".to_string())
    );
    let (_, log) = server.stop();
    (code, log)
}

#[test]
fn rapid_reset_gets_goaway_enhance_your_calm() {
    let mut frames = Vec::new();
    for stream in (1..400).step_by(2) {
        frames.extend(raw(
            kind::HEADERS,
            flag::END_HEADERS,
            stream,
            &request_block("GET", "localhost", "/"),
        ));
        frames.extend(raw(
            kind::RST_STREAM,
            0,
            stream,
            &ErrorCode::Cancel.code().to_be_bytes(),
        ));
    }
    let (code, log) = attack(&frames);
    assert_eq!(code, Some(ErrorCode::EnhanceYourCalm));
    assert_eq!(http2_counter(&log, "rapid_reset"), 1, "{log}");
}

#[test]
fn a_continuation_flood_gets_goaway_enhance_your_calm() {
    let mut frames = raw(kind::HEADERS, 0, 1, &request_block("GET", "localhost", "/"));
    for _ in 0..1000 {
        frames.extend(raw(kind::CONTINUATION, 0, 1, &block(&[("x-flood", "1")])));
    }
    let (code, log) = attack(&frames);
    assert_eq!(code, Some(ErrorCode::EnhanceYourCalm));
    assert_eq!(http2_counter(&log, "continuation_flood"), 1, "{log}");
}

#[test]
fn an_hpack_bomb_gets_431_and_the_connection_goes_on() {
    let server = server();
    let mut client = H2Client::open(server.connect(), &[]);
    // One 4000-octet entry added to the dynamic table, then named 100
    // times: ~150 octets that decode to 400 KB.
    let mut bomb = request_block("GET", "localhost", "/");
    bomb.extend([0x40, 0x01, b'x', 0x7f, 0xa1, 0x1e]);
    bomb.extend([b'v'; 4000]);
    bomb.extend([0xbe; 100]);
    client.send(&raw(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        1,
        &bomb,
    ));
    let (status, _) = client.response(1);
    assert_eq!(status, 431);
    assert_eq!(
        client.get(3, "localhost", "/healthz"),
        (200, "ok\n".to_string())
    );
    let (_, log) = server.stop();
    assert_eq!(http2_counter(&log, "header_list_too_large"), 1, "{log}");
}

#[test]
fn a_settings_flood_gets_goaway_enhance_your_calm() {
    let mut frames = Vec::new();
    for _ in 0..200 {
        portcullis::service::http2::write::settings(&mut frames, &[]);
    }
    let (code, log) = attack(&frames);
    assert_eq!(code, Some(ErrorCode::EnhanceYourCalm));
    assert_eq!(http2_counter(&log, "settings_flood"), 1, "{log}");
}

#[test]
fn a_ping_flood_gets_goaway_enhance_your_calm() {
    let frames: Vec<u8> = (0..200)
        .flat_map(|_| raw(kind::PING, 0, 0, &[7; 8]))
        .collect();
    let (code, log) = attack(&frames);
    assert_eq!(code, Some(ErrorCode::EnhanceYourCalm));
    assert_eq!(http2_counter(&log, "ping_flood"), 1, "{log}");
}

#[test]
fn a_frame_over_max_frame_size_gets_goaway_frame_size_error() {
    // Only the header: the server must not wait for 1 MiB to refuse it.
    let mut frames = Vec::new();
    portcullis::service::http2::write::header(&mut frames, 1 << 20, kind::DATA, 0, 1);
    let (code, log) = attack(&frames);
    assert_eq!(code, Some(ErrorCode::FrameSizeError));
    assert_eq!(http2_counter(&log, "frame_too_large"), 1, "{log}");
}

#[test]
fn stream_id_reuse_and_out_of_order_ids_get_goaway_protocol_error() {
    let mut frames = get_frame(7, "localhost", "/");
    frames.extend(get_frame(3, "localhost", "/"));
    let (code, log) = attack(&frames);
    assert_eq!(code, Some(ErrorCode::ProtocolError));
    let mut even = get_frame(2, "localhost", "/");
    even.extend(get_frame(3, "localhost", "/"));
    let (code, log_even) = attack(&even);
    assert_eq!(code, Some(ErrorCode::ProtocolError));
    assert_eq!(http2_counter(&log, "stream_id_reuse"), 1, "{log}");
    assert_eq!(http2_counter(&log_even, "stream_id_reuse"), 1, "{log_even}");
}

#[test]
fn a_preface_received_twice_gets_goaway_protocol_error() {
    let (code, log) = attack(PREFACE);
    assert_eq!(code, Some(ErrorCode::ProtocolError));
    assert_eq!(http2_counter(&log, "preface_repeated"), 1, "{log}");
}

/// A server whose write-stall deadline is one second and whose idle
/// timeout is far longer, so which of the two closed a connection is plain.
fn stall_server() -> (Server, TempDir) {
    let dir = TempDir::new("h2-stall");
    let file = dir.write(
        "portcullis.toml",
        "[timeouts]\nwrite_secs = 1\nidle_secs = 60\n",
    );
    let server = Server::start(&[
        "--config",
        file.to_str().unwrap(),
        "--no-tls",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &common::backends()[0],
    ]);
    (server, dir)
}

#[test]
fn a_peer_that_never_opens_its_window_is_closed_by_the_write_stall_deadline() {
    let (server, _dir) = stall_server();
    let mut client = H2Client::open(server.connect(), &[(INITIAL_WINDOW_SIZE, 0)]);
    client.send(&get_frame(1, "localhost", "/"));
    let started = std::time::Instant::now();
    let frames = client.drain(Duration::from_secs(10));
    assert!(
        frames.iter().any(|f| matches!(
            f,
            Received::Headers {
                stream: 1,
                end_stream: false,
                ..
            }
        )),
        "the head goes out, the body waits: {frames:?}"
    );
    assert!(
        !frames.iter().any(|f| matches!(f, Received::Data { .. })),
        "{frames:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}, not by the 1 s write-stall deadline",
        started.elapsed()
    );
    let (_, log) = server.stop();
    assert_eq!(
        common::tls::summary_counter(&log, "write_timeout"),
        1,
        "{log}"
    );
    assert_eq!(http2_counter(&log, "zero_window_wait"), 1, "{log}");
}

#[test]
fn shutdown_sends_goaway_no_error_with_the_last_stream_id() {
    let server = server();
    let mut client = H2Client::open(server.connect(), &[]);
    assert_eq!(client.get(1, "localhost", "/healthz").0, 200);
    assert_eq!(client.get(3, "localhost", "/healthz").0, 200);
    common::send_sigterm(&server);
    let frames = client.drain(Duration::from_secs(10));
    assert!(
        frames.contains(&Received::GoAway {
            last_stream: 3,
            code: ErrorCode::NoError.code(),
            debug: String::new()
        }),
        "{frames:?}"
    );
}
