//! A raw HTTP/2 client for tests: frames built and read with the server's
//! own codec (`service::http2::{write, frame, hpack}`), so a test can send
//! exactly the sequence an attack needs — which no real client would — and
//! see exactly what comes back. Real clients (curl, nghttp, h2load,
//! httpwg) check interoperability; this checks behaviour.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use portcullis::service::http2::frame::{self, flag, kind, Frame, Parsed};
use portcullis::service::http2::hpack::{encode_field, Decoder};
use portcullis::service::http2::preface::PREFACE;
use portcullis::service::http2::write;

/// A frame the server sent, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
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
    Ping {
        ack: bool,
    },
    GoAway {
        last_stream: u32,
        code: u32,
        debug: String,
    },
    Reset {
        stream: u32,
        code: u32,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Other(u8),
}

pub struct H2Client<S> {
    pub stream: S,
    buffer: Vec<u8>,
    decoder: Decoder,
}

impl<S: Read + Write> H2Client<S> {
    /// Sends the preface and `settings`; does not wait for the server's.
    pub fn open(stream: S, settings: &[(u16, u32)]) -> H2Client<S> {
        let mut client = H2Client {
            stream,
            buffer: Vec::new(),
            decoder: Decoder::new(4096),
        };
        let mut opening = PREFACE.to_vec();
        write::settings(&mut opening, settings);
        client.send(&opening);
        client
    }

    pub fn send(&mut self, bytes: &[u8]) {
        // A server that already closed may reset; the test then reads what
        // it did send.
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    /// The next frame, or `None` once the server has closed (or sent
    /// nothing for `timeout`).
    pub fn next(&mut self, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Parsed::Frame(frame, used)) = frame::parse(&self.buffer, 1 << 24) {
                let received = own(&mut self.decoder, frame);
                self.buffer.drain(..used);
                return Some(received);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 16_384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    /// Every frame until the server closes or is quiet for `quiet`.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Received> {
        std::iter::from_fn(|| self.next(quiet)).collect()
    }

    /// The GOAWAY the server sends before closing, if any.
    pub fn goaway(&mut self, timeout: Duration) -> Option<(u32, u32)> {
        self.drain(timeout)
            .into_iter()
            .find_map(|frame| match frame {
                Received::GoAway {
                    last_stream, code, ..
                } => Some((last_stream, code)),
                _ => None,
            })
    }

    /// Sends a GET on `stream` and reads until its response ends; returns
    /// the status and body.
    pub fn get(&mut self, stream: u32, authority: &str, path: &str) -> (u16, String) {
        self.send(&get_frame(stream, authority, path));
        self.response(stream)
    }

    /// Reads until the response on `stream` ends, acknowledging SETTINGS.
    pub fn response(&mut self, stream: u32) -> (u16, String) {
        let mut status = 0;
        let mut body = Vec::new();
        while let Some(frame) = self.next(Duration::from_secs(10)) {
            match frame {
                Received::Settings { ack: false } => {
                    let mut ack = Vec::new();
                    write::settings_ack(&mut ack);
                    self.send(&ack);
                }
                Received::Headers {
                    stream: s,
                    end_stream,
                    fields,
                } if s == stream => {
                    status = fields
                        .iter()
                        .find(|(n, _)| n == ":status")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    if end_stream {
                        break;
                    }
                }
                Received::Data {
                    stream: s,
                    end_stream,
                    data,
                } if s == stream => {
                    body.extend(data);
                    if end_stream {
                        break;
                    }
                }
                Received::Reset { stream: s, code } if s == stream => {
                    panic!("stream {s} reset with {code}")
                }
                Received::GoAway { code, debug, .. } => panic!("GOAWAY {code}: {debug}"),
                _ => {}
            }
        }
        (status, String::from_utf8(body).unwrap())
    }
}

/// Copies a parsed frame out of the receive buffer.
fn own(decoder: &mut Decoder, frame: Frame<'_>) -> Received {
    match frame {
        Frame::Settings { ack, .. } => Received::Settings { ack },
        Frame::Headers {
            stream,
            end_stream,
            fragment,
            ..
        } => {
            let mut fields = Vec::new();
            decoder
                .decode(fragment, |n, v| {
                    fields.push((
                        String::from_utf8_lossy(n).into(),
                        String::from_utf8_lossy(v).into(),
                    ))
                })
                .expect("the server's header blocks decode");
            Received::Headers {
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
        } => Received::Data {
            stream,
            end_stream,
            data: data.to_vec(),
        },
        Frame::Ping { ack, .. } => Received::Ping { ack },
        Frame::GoAway { last_stream, code } => Received::GoAway {
            last_stream,
            code,
            debug: String::new(),
        },
        Frame::RstStream { stream, code } => Received::Reset { stream, code },
        Frame::WindowUpdate { stream, increment } => Received::WindowUpdate { stream, increment },
        Frame::Priority { .. } => Received::Other(kind::PRIORITY),
        Frame::Continuation { .. } => Received::Other(kind::CONTINUATION),
        Frame::Unknown { kind, .. } => Received::Other(kind),
        Frame::Malformed(_) => Received::Other(0xff),
    }
}

/// A frame with `payload`.
pub fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write::header(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

/// An HPACK block of `fields`.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        encode_field(name.as_bytes(), value.as_bytes(), &mut out);
    }
    out
}

pub fn request_block(method: &str, authority: &str, path: &str) -> Vec<u8> {
    block(&[
        (":method", method),
        (":scheme", "https"),
        (":path", path),
        (":authority", authority),
    ])
}

/// HEADERS for a complete GET.
pub fn get_frame(stream: u32, authority: &str, path: &str) -> Vec<u8> {
    raw(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        stream,
        &request_block("GET", authority, path),
    )
}

/// The counter `key` from the server's `http2:` summary line; 0 if absent.
pub fn http2_counter(log: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("http2:"))
        .unwrap_or_else(|| panic!("no http2 summary in the server log:\n{log}"));
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
        .map_or(0, |n| n.parse().unwrap())
}
