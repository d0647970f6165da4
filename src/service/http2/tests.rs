//! A connection driven frame by frame, the way the engine drives it, with
//! the engine's clock chosen by the test: every behaviour of RFC 9113 this
//! server promises, and every attack it refuses, as a hand-built sequence.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frame::{self, flag, kind, Frame, Parsed};
use super::hpack::{encode_field, Decoder};
use super::preface::PREFACE;
use super::settings::{INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE};
use super::*;
use crate::connection_info::{ConnectionInfo, Transport};
use crate::domains::{ClientAuth, DomainRule, DomainRules, NameTable};
use crate::service::{Requests, Session, SessionId};

/// `localhost` (no client certificate) and `mtls.localhost` (required).
fn rules() -> DomainRules {
    let mut names = NameTable::new();
    names.insert("localhost", 0).unwrap();
    names.insert("mtls.localhost", 1).unwrap();
    let rule = |name: &str, client_auth| DomainRule {
        name: name.into(),
        client_auth,
    };
    DomainRules {
        rules: vec![
            rule("localhost", ClientAuth::None),
            rule("mtls.localhost", ClientAuth::Required),
        ],
        names,
        fallback: Some(0),
    }
}

fn plain() -> ConnectionInfo {
    let addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    ConnectionInfo::plain(addr, addr, "test")
}

fn tls(domain: &str) -> ConnectionInfo {
    ConnectionInfo {
        transport: Transport::Tls,
        sni: Some(domain.into()),
        alpn: Some("h2".into()),
        domain: Some(domain.into()),
        ..plain()
    }
}

/// One frame the server sent, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Settings {
        ack: bool,
    },
    Headers {
        stream: u32,
        end_stream: bool,
        fields: Vec<(String, String)>,
    },
    Data {
        stream: u32,
        end_stream: bool,
        data: Vec<u8>,
    },
    Ping,
    GoAway {
        last_stream: u32,
        code: u32,
    },
    Reset {
        stream: u32,
        code: u32,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
}

struct Peer {
    connection: Http2Connection,
    info: ConnectionInfo,
    rules: DomainRules,
    limits: Http2Limits,
    counters: Arc<Http2Counters>,
    unconsumed: Vec<u8>,
    decoder: Decoder,
    now: Instant,
    high_water: usize,
    closed: bool,
    waiting: bool,
}

impl Peer {
    fn new(info: ConnectionInfo) -> Peer {
        Peer::with_limits(info, Http2Limits::default())
    }

    /// A connection past its preface and SETTINGS exchange.
    fn with_limits(info: ConnectionInfo, limits: Http2Limits) -> Peer {
        let mut peer = Peer {
            connection: Http2Connection::new(),
            info,
            rules: rules(),
            limits,
            counters: Arc::new(Http2Counters::new()),
            unconsumed: Vec::new(),
            decoder: Decoder::new(4096),
            now: Instant::now(),
            high_water: usize::MAX,
            closed: false,
            waiting: false,
        };
        let mut output = Vec::new();
        let mut requests = Requests::default();
        let mut session = Session::new(SessionId(1), &peer.info, &mut output, &mut requests);
        peer.connection.start(&peer.limits, &mut session);
        assert!(matches!(
            peer.parse(&output)[..],
            [Sent::Settings { ack: false }]
        ));
        let mut opening = PREFACE.to_vec();
        opening.extend(settings_frame(&[]));
        assert_eq!(peer.send(&opening), [Sent::Settings { ack: true }]);
        peer
    }

    /// Delivers bytes; returns the frames the server sent back.
    fn send(&mut self, bytes: &[u8]) -> Vec<Sent> {
        assert!(!self.closed, "sending on a closed session");
        self.unconsumed.extend_from_slice(bytes);
        let mut output = Vec::new();
        let mut requests = Requests::default();
        let consumed = {
            let env = Env {
                rules: &self.rules,
                limits: &self.limits,
                counters: &self.counters,
            };
            let mut session = Session::new(SessionId(1), &self.info, &mut output, &mut requests)
                .with_clock(self.now)
                .with_queue(0, self.high_water);
            self.connection
                .receive(&env, &mut session, &self.unconsumed)
        };
        self.unconsumed.drain(..consumed);
        self.closed = requests.close;
        if let Some(waiting) = requests.waiting_for_peer {
            self.waiting = waiting;
        }
        self.parse(&output)
    }

    fn parse(&mut self, mut output: &[u8]) -> Vec<Sent> {
        let mut sent = Vec::new();
        while let Ok(Parsed::Frame(frame, used)) = frame::parse(output, 1 << 20) {
            output = &output[used..];
            sent.push(match frame {
                Frame::Settings { ack, .. } => Sent::Settings { ack },
                Frame::Headers {
                    stream,
                    end_stream,
                    fragment,
                    ..
                } => {
                    let mut fields = Vec::new();
                    self.decoder
                        .decode(fragment, |n, v| {
                            fields.push((
                                String::from_utf8_lossy(n).into(),
                                String::from_utf8_lossy(v).into(),
                            ))
                        })
                        .unwrap();
                    Sent::Headers {
                        stream,
                        end_stream,
                        fields,
                    }
                }
                Frame::Data {
                    stream,
                    end_stream,
                    data,
                    ..
                } => Sent::Data {
                    stream,
                    end_stream,
                    data: data.to_vec(),
                },
                Frame::Ping { .. } => Sent::Ping,
                Frame::GoAway { last_stream, code } => Sent::GoAway { last_stream, code },
                Frame::RstStream { stream, code } => Sent::Reset { stream, code },
                Frame::WindowUpdate { stream, increment } => {
                    Sent::WindowUpdate { stream, increment }
                }
                other => panic!("server sent {other:?}"),
            });
        }
        assert!(output.is_empty(), "the server wrote a partial frame");
        sent
    }
}

fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write::header(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

fn settings_frame(params: &[(u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    write::settings(&mut out, params);
    out
}

fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        encode_field(name.as_bytes(), value.as_bytes(), &mut out);
    }
    out
}

fn request(method: &str, path: &str, authority: &str) -> Vec<u8> {
    block(&[
        (":method", method),
        (":scheme", "https"),
        (":path", path),
        (":authority", authority),
    ])
}

fn get(stream: u32, path: &str, authority: &str) -> Vec<u8> {
    raw(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        stream,
        &request("GET", path, authority),
    )
}

fn status(sent: &[Sent], wanted: u32) -> Option<String> {
    sent.iter().find_map(|frame| match frame {
        Sent::Headers { stream, fields, .. } if *stream == wanted => fields
            .iter()
            .find(|(n, _)| n == ":status")
            .map(|(_, v)| v.clone()),
        _ => None,
    })
}

fn body(sent: &[Sent], wanted: u32) -> String {
    let bytes: Vec<u8> = sent
        .iter()
        .filter_map(|frame| match frame {
            Sent::Data { stream, data, .. } if *stream == wanted => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    String::from_utf8(bytes).unwrap()
}

fn goaway_code(sent: &[Sent]) -> Option<ErrorCode> {
    sent.iter().find_map(|frame| match frame {
        Sent::GoAway { code, .. } => ErrorCode::from_code(*code),
        _ => None,
    })
}

fn reset_code(sent: &[Sent], wanted: u32) -> Option<ErrorCode> {
    sent.iter().find_map(|frame| match frame {
        Sent::Reset { stream, code } if *stream == wanted => ErrorCode::from_code(*code),
        _ => None,
    })
}

#[test]
fn get_root_reports_the_connection_like_http1() {
    let mut peer = Peer::new(tls("localhost"));
    let sent = peer.send(&get(1, "/", "localhost:8443"));
    assert_eq!(status(&sent, 1).as_deref(), Some("200"));
    assert_eq!(
        body(&sent, 1),
        "transport=tls\ndomain=localhost\nsni=localhost\nalpn=h2\nclient_cn=-\nclient_fingerprint=-\nhost=localhost:8443\nbackend=test\n"
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
