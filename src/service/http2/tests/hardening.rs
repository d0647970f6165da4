//! Each attack of the issue, and the limit that stops it.

use super::*;

#[test]
fn rapid_reset_gets_goaway_enhance_your_calm() {
    let limits = Http2Limits {
        resets: Rate {
            max: 10,
            per: Duration::from_secs(10),
        },
        ..Http2Limits::default()
    };
    let mut peer = Peer::with_limits(plain(), limits);
    let mut attack = Vec::new();
    for stream in (1..=23).step_by(2) {
        let head = request("GET", "/", "localhost");
        attack.extend(raw(kind::HEADERS, flag::END_HEADERS, stream, &head));
        attack.extend(raw(kind::RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    }
    let sent = peer.send(&attack);
    assert_eq!(goaway_code(&sent), Some(ErrorCode::EnhanceYourCalm));
    assert!(peer.closed);
    assert_eq!(peer.counters.get(Http2Event::RapidReset), 1);
}

#[test]
fn resets_spread_over_time_are_allowed() {
    let limits = Http2Limits {
        resets: Rate {
            max: 2,
            per: Duration::from_secs(10),
        },
        ..Http2Limits::default()
    };
    let mut peer = Peer::with_limits(plain(), limits);
    for stream in (1..=9).step_by(2) {
        peer.send(&raw(
            kind::HEADERS,
            flag::END_HEADERS,
            stream,
            &request("GET", "/", "localhost"),
        ));
        assert!(
            goaway_code(&peer.send(&raw(kind::RST_STREAM, 0, stream, &8u32.to_be_bytes())))
                .is_none()
        );
        peer.now += Duration::from_secs(6);
    }
    assert!(!peer.closed);
}

#[test]
fn a_continuation_flood_gets_goaway_before_the_block_ends() {
    let mut peer = Peer::new(plain());
    let mut flood = raw(kind::HEADERS, 0, 1, &request("GET", "/", "localhost"));
    for _ in 0..40 {
        flood.extend(raw(kind::CONTINUATION, 0, 1, &block(&[("x-a", "b")])));
    }
    let sent = peer.send(&flood);
    assert_eq!(goaway_code(&sent), Some(ErrorCode::EnhanceYourCalm));
    assert_eq!(peer.counters.get(Http2Event::ContinuationFlood), 1);
    // Too many octets in few frames is the same attack.
    let mut peer = Peer::new(plain());
    let mut big = raw(kind::HEADERS, 0, 1, &request("GET", "/", "localhost"));
    for _ in 0..5 {
        big.extend(raw(kind::CONTINUATION, 0, 1, &[0u8; 16_000]));
    }
    assert_eq!(
        goaway_code(&peer.send(&big)),
        Some(ErrorCode::EnhanceYourCalm)
    );
}

#[test]
fn an_hpack_bomb_gets_431_and_the_connection_stays_in_step() {
    let mut peer = Peer::new(plain());
    // One 4000-octet entry in the dynamic table, then a block that names
    // it 50 times: 50 octets that decode to 200 KB.
    let mut bomb = request("GET", "/", "localhost");
    let value = "v".repeat(4000);
    bomb.push(0x40);
    bomb.push(0x01);
    bomb.push(b'x');
    let mut literal = vec![0x7f, 0xa1, 0x1e]; // 127 + 0x21 + (0x1e << 7) = 4000
    literal.extend(value.as_bytes());
    bomb.extend(literal);
    bomb.extend([0xbe; 50]); // index 62, the newest entry
    let sent = peer.send(&raw(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        1,
        &bomb,
    ));
    assert_eq!(status(&sent, 1).as_deref(), Some("431"));
    assert_eq!(peer.counters.get(Http2Event::HeaderListTooLarge), 1);
    // The table is still in step: the next request decodes.
    assert_eq!(
        status(&peer.send(&get(3, "/healthz", "localhost")), 3).as_deref(),
        Some("200")
    );
}

#[test]
fn ping_and_settings_floods_get_goaway_enhance_your_calm() {
    let limits = Http2Limits {
        pings: Rate {
            max: 5,
            per: Duration::from_secs(10),
        },
        settings: Rate {
            max: 5,
            per: Duration::from_secs(10),
        },
        ..Http2Limits::default()
    };
    let mut peer = Peer::with_limits(plain(), limits.clone());
    let pings: Vec<u8> = (0..6)
        .flat_map(|_| raw(kind::PING, 0, 0, &[1; 8]))
        .collect();
    let sent = peer.send(&pings);
    assert_eq!(sent.iter().filter(|f| **f == Sent::Ping).count(), 5);
    assert_eq!(goaway_code(&sent), Some(ErrorCode::EnhanceYourCalm));
    assert_eq!(peer.counters.get(Http2Event::PingFlood), 1);
    let mut peer = Peer::with_limits(plain(), limits);
    // One SETTINGS was the opening; five more go over.
    let floods: Vec<u8> = (0..5).flat_map(|_| settings_frame(&[])).collect();
    assert_eq!(
        goaway_code(&peer.send(&floods)),
        Some(ErrorCode::EnhanceYourCalm)
    );
    assert_eq!(peer.counters.get(Http2Event::SettingsFlood), 1);
}

#[test]
fn a_frame_over_our_max_frame_size_is_refused_from_its_header() {
    let mut peer = Peer::new(plain());
    let mut header = Vec::new();
    write::header(&mut header, 16_385, kind::DATA, 0, 1);
    let sent = peer.send(&header);
    assert_eq!(goaway_code(&sent), Some(ErrorCode::FrameSizeError));
    assert_eq!(peer.counters.get(Http2Event::FrameTooLarge), 1);
}

#[test]
fn reused_and_out_of_order_stream_ids_are_protocol_errors() {
    for second in [1, 3, 4] {
        let mut peer = Peer::new(plain());
        peer.send(&get(5, "/", "localhost"));
        let sent = peer.send(&get(second, "/", "localhost"));
        let expected = if second == 5 {
            ErrorCode::StreamClosed
        } else {
            ErrorCode::ProtocolError
        };
        assert_eq!(
            goaway_code(&sent),
            Some(expected),
            "stream {second} after 5"
        );
        assert!(matches!(
            sent.last(),
            Some(Sent::GoAway { last_stream: 5, .. })
        ));
        assert_eq!(peer.counters.get(Http2Event::StreamIdReuse), 1);
    }
}

#[test]
fn the_preface_received_twice_is_a_protocol_error() {
    let mut peer = Peer::new(plain());
    let sent = peer.send(PREFACE);
    assert_eq!(goaway_code(&sent), Some(ErrorCode::ProtocolError));
    assert_eq!(peer.counters.get(Http2Event::PrefaceRepeated), 1);
}

#[test]
fn streams_over_the_concurrency_limit_are_refused() {
    let limits = Http2Limits {
        max_concurrent_streams: 2,
        ..Http2Limits::default()
    };
    let mut peer = Peer::with_limits(plain(), limits);
    let mut open = Vec::new();
    for stream in [1, 3, 5] {
        let head = block(&[(":method", "POST"), (":scheme", "http"), (":path", "/")]);
        open.extend(raw(kind::HEADERS, flag::END_HEADERS, stream, &head));
    }
    let sent = peer.send(&open);
    assert_eq!(
        sent,
        [Sent::Reset {
            stream: 5,
            code: ErrorCode::RefusedStream.code()
        }]
    );
    assert_eq!(peer.counters.get(Http2Event::StreamRefused), 1);
    // The others are still answered.
    assert_eq!(
        status(&peer.send(&raw(kind::DATA, flag::END_STREAM, 3, b"")), 3).as_deref(),
        Some("200")
    );
}

#[test]
fn a_bad_header_block_is_a_compression_error() {
    let mut peer = Peer::new(plain());
    let sent = peer.send(&raw(kind::HEADERS, flag::END_HEADERS, 1, &[0x3f]));
    assert_eq!(goaway_code(&sent), Some(ErrorCode::CompressionError));
}
