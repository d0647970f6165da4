//! RFC 9113 behaviour: answers, the gate per stream, bodies and flow
//! control, shutdown, back-pressure, and input split anywhere.

use super::*;

#[test]
fn get_root_reports_the_connection_like_http1() {
    let mut peer = Peer::new(tls("localhost"));
    let sent = peer.send(&get(1, "/", "localhost:8443"));
    assert_eq!(status(&sent, 1).as_deref(), Some("200"));
    assert_eq!(
        body(&sent, 1),
        "transport=tls\ndomain=localhost\nsni=localhost\nalpn=h2\nclient_cn=-\nclient_fingerprint=-\nhost=localhost:8443\nbackend=test\nclient_addr=127.0.0.1:50000\npeer_addr=127.0.0.1:50000\n"
    );
    assert!(matches!(
        sent.last(),
        Some(Sent::Data {
            end_stream: true,
            ..
        })
    ));
    let sent = peer.send(&get(3, "/healthz", "localhost"));
    assert_eq!(body(&sent, 3), "ok\n");
    assert_eq!(
        status(&peer.send(&get(5, "/nope", "localhost")), 5).as_deref(),
        Some("404")
    );
    assert!(!peer.closed);
}

#[test]
fn head_gets_the_length_and_no_body() {
    let mut peer = Peer::new(plain());
    let head = raw(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        1,
        &request("HEAD", "/healthz", "localhost"),
    );
    let sent = peer.send(&head);
    assert!(
        matches!(&sent[..], [Sent::Headers { end_stream: true, fields, .. }]
        if fields.contains(&("content-length".into(), "3".into())))
    );
}

#[test]
fn a_coalesced_stream_for_another_domain_gets_421_on_the_same_connection() {
    let mut peer = Peer::new(tls("localhost"));
    assert_eq!(
        status(&peer.send(&get(1, "/", "localhost")), 1).as_deref(),
        Some("200")
    );
    let sent = peer.send(&get(3, "/", "mtls.localhost"));
    assert_eq!(status(&sent, 3).as_deref(), Some("421"));
    assert!(!body(&sent, 3).contains("transport="));
    // The connection is still good for the domain it was made for.
    assert_eq!(
        status(&peer.send(&get(5, "/", "localhost")), 5).as_deref(),
        Some("200")
    );
}

#[test]
fn h2c_never_reaches_a_domain_that_requires_a_client_certificate() {
    let mut peer = Peer::new(plain());
    let sent = peer.send(&get(1, "/", "mtls.localhost"));
    assert_eq!(status(&sent, 1).as_deref(), Some("403"));
    assert!(!body(&sent, 1).contains("transport="));
    // `host` instead of `:authority` is judged the same way.
    let by_host = block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        ("host", "mtls.localhost"),
    ]);
    let sent = peer.send(&raw(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        3,
        &by_host,
    ));
    assert_eq!(status(&sent, 3).as_deref(), Some("403"));
}

#[test]
fn a_post_body_is_read_credited_back_and_answered() {
    let mut peer = Peer::new(plain());
    let head = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/healthz"),
        (":authority", "localhost"),
        ("content-length", "40000"),
    ]);
    assert!(peer
        .send(&raw(kind::HEADERS, flag::END_HEADERS, 1, &head))
        .is_empty());
    let sent = peer.send(&raw(kind::DATA, 0, 1, &[b'x'; 16_384]));
    assert!(sent.is_empty(), "no credit before half a window: {sent:?}");
    let sent = peer.send(&raw(kind::DATA, 0, 1, &[b'x'; 16_384]));
    assert!(sent.contains(&Sent::WindowUpdate {
        stream: 0,
        increment: 32_768
    }));
    assert!(sent.contains(&Sent::WindowUpdate {
        stream: 1,
        increment: 32_768
    }));
    let sent = peer.send(&raw(
        kind::DATA,
        flag::END_STREAM,
        1,
        &[b'x'; 40_000 - 32_768],
    ));
    assert_eq!(status(&sent, 1).as_deref(), Some("200"));
    assert_eq!(body(&sent, 1), "ok\n");
}

#[test]
fn a_body_that_disagrees_with_content_length_is_malformed() {
    let mut peer = Peer::new(plain());
    let head = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/"),
        ("content-length", "2"),
    ]);
    peer.send(&raw(kind::HEADERS, flag::END_HEADERS, 1, &head));
    let sent = peer.send(&raw(kind::DATA, flag::END_STREAM, 1, b"abc"));
    assert_eq!(reset_code(&sent, 1), Some(ErrorCode::ProtocolError));
    assert_eq!(peer.counters.get(Http2Event::MalformedRequest), 1);
}

#[test]
fn a_zero_window_holds_the_body_tells_the_engine_and_resumes_on_window_update() {
    let mut peer = Peer::new(plain());
    assert_eq!(
        peer.send(&settings_frame(&[(INITIAL_WINDOW_SIZE, 0)])),
        [Sent::Settings { ack: true }]
    );
    let sent = peer.send(&get(1, "/healthz", "localhost"));
    assert!(
        matches!(
            &sent[..],
            [Sent::Headers {
                end_stream: false,
                ..
            }]
        ),
        "{sent:?}"
    );
    assert!(
        peer.waiting,
        "the engine must be told output waits for the peer"
    );
    assert_eq!(peer.counters.get(Http2Event::ZeroWindowWait), 1);
    let sent = peer.send(&raw(kind::WINDOW_UPDATE, 0, 1, &1u32.to_be_bytes()));
    assert_eq!(
        sent,
        [Sent::Data {
            stream: 1,
            end_stream: false,
            data: b"o".to_vec()
        }]
    );
    assert!(peer.waiting);
    let sent = peer.send(&settings_frame(&[(INITIAL_WINDOW_SIZE, 100)]));
    assert!(
        sent.contains(&Sent::Data {
            stream: 1,
            end_stream: true,
            data: b"k\n".to_vec()
        }),
        "{sent:?}"
    );
    assert!(!peer.waiting);
}

#[test]
fn bodies_respect_the_peers_frame_size_and_connection_window() {
    let mut peer = Peer::new(tls("localhost"));
    peer.send(&settings_frame(&[
        (MAX_FRAME_SIZE, 16_384),
        (INITIAL_WINDOW_SIZE, 5),
    ]));
    let sent = peer.send(&get(1, "/", "localhost"));
    let data: Vec<_> = sent
        .iter()
        .filter(|f| matches!(f, Sent::Data { .. }))
        .collect();
    assert_eq!(data.len(), 1);
    assert_eq!(body(&sent, 1).len(), 5);
}

#[test]
fn shutdown_sends_goaway_with_the_last_stream_and_ignores_newer_ones() {
    let mut peer = Peer::new(plain());
    peer.send(&get(1, "/", "localhost"));
    let mut output = Vec::new();
    let mut requests = Requests::default();
    let mut session = Session::new(SessionId(1), &peer.info, &mut output, &mut requests);
    peer.connection.shutdown(&mut session);
    assert_eq!(
        peer.parse(&output),
        [Sent::GoAway {
            last_stream: 1,
            code: 0
        }]
    );
    assert!(peer.send(&get(3, "/", "localhost")).is_empty());
}

#[test]
fn back_pressure_leaves_frames_unconsumed_until_output_drains() {
    let mut peer = Peer::new(plain());
    peer.high_water = 0;
    assert!(peer.send(&get(1, "/", "localhost")).is_empty());
    assert!(!peer.unconsumed.is_empty());
    peer.high_water = usize::MAX;
    assert_eq!(status(&peer.send(&[]), 1).as_deref(), Some("200"));
    assert!(peer.unconsumed.is_empty());
}

#[test]
fn bytes_split_anywhere_give_the_same_answers() {
    let mut whole = Peer::new(plain());
    let mut input = get(1, "/", "localhost");
    input.extend(raw(kind::PING, 0, 0, &[9; 8]));
    input.extend(get(3, "/healthz", "localhost"));
    let expected = whole.send(&input);
    let mut trickled = Peer::new(plain());
    let mut got = Vec::new();
    for byte in &input {
        got.extend(trickled.send(&[*byte]));
    }
    assert_eq!(got, expected);
}

#[test]
fn the_first_frame_must_be_settings() {
    let mut connection = Http2Connection::new();
    let info = plain();
    let (rules, limits, counters) = (rules(), Http2Limits::default(), Http2Counters::new());
    let env = Env {
        rules: &rules,
        limits: &limits,
        counters: &counters,
    };
    let mut output = Vec::new();
    let mut requests = Requests::default();
    let mut session = Session::new(SessionId(1), &info, &mut output, &mut requests);
    let mut input = PREFACE.to_vec();
    input.extend(raw(kind::PING, 0, 0, &[0; 8]));
    connection.receive(&env, &mut session, &input);
    assert!(requests.close);
    assert_eq!(counters.get(Http2Event::BadPreface), 1);
}
