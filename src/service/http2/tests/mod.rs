//! A connection driven frame by frame, the way the engine drives it, with
//! the engine's clock chosen by the test: every behaviour of RFC 9113 this
//! server promises (`protocol.rs`), and every attack it refuses
//! (`hardening.rs`), as a hand-built sequence. This file is the harness.

mod hardening;
mod protocol;

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
