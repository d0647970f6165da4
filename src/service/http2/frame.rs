//! Reading frames (RFC 9113 §4, §6): a 9-octet header, then a payload whose
//! shape the frame type fixes.
//!
//! The one idea: **judge a frame by its header before waiting for its
//! payload.** The header says how long the payload is; a length above our
//! SETTINGS_MAX_FRAME_SIZE is refused the moment those 9 octets are in, so
//! a peer cannot make the server buffer (or wait for) 16 MiB it never
//! agreed to. Everything here is a pure function of the bytes: what depends
//! on the connection's state (which streams exist, which windows are open)
//! is judged in `connection.rs`.
//!
//! Errors whose damage is confined to one stream (a PRIORITY frame of the
//! wrong length) come back as [`Frame::Malformed`], still consumed, so the
//! connection goes on; the rest are connection errors.

use super::counters::Http2Event;
use super::error::{
    connection_error, protocol_error, stream_error, ConnectionError, ErrorCode, StreamError,
};

pub const HEADER_LEN: usize = 9;

/// Frame types (§6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (§6); the same bit means different things per type.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// The start of the client connection preface, as a frame header would
/// see it: `PRI * HTT`.
const PREFACE_START: &[u8; HEADER_LEN] = b"PRI * HTT";

/// The 9-octet frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub length: usize,
    pub kind: u8,
    pub flags: u8,
    /// With the reserved bit cleared (§4.1: ignored on receipt).
    pub stream: u32,
}

impl FrameHeader {
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            length: usize::from(bytes[0]) << 16
                | usize::from(bytes[1]) << 8
                | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A stream dependency (§5.3.2, deprecated by RFC 9113 but still parsed:
/// a stream may not depend on itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    pub depends_on: u32,
}

/// A frame, borrowing its payload from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Data {
        stream: u32,
        end_stream: bool,
        data: &'a [u8],
        /// What the frame costs in flow control: the whole payload,
        /// padding included (§6.9.1).
        flow_len: u32,
    },
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        priority: Option<Priority>,
        fragment: &'a [u8],
    },
    Priority {
        stream: u32,
        priority: Priority,
    },
    RstStream {
        stream: u32,
        code: u32,
    },
    Settings {
        ack: bool,
        /// Six octets per setting; the length is checked.
        params: &'a [u8],
    },
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: u32,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Continuation {
        stream: u32,
        end_headers: bool,
        fragment: &'a [u8],
    },
    /// A type this server does not know; ignored (§5.5) except inside a
    /// header block.
    Unknown {
        kind: u8,
        stream: u32,
    },
    /// A frame whose error is confined to one stream.
    Malformed(StreamError),
}

/// What [`parse`] found at the start of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not a whole frame yet.
    Incomplete,
    /// A frame, and the octets it took.
    Frame(Frame<'a>, usize),
}

/// Parses the frame at the start of `input`; `max_frame_size` is our
/// SETTINGS_MAX_FRAME_SIZE.
pub fn parse(input: &[u8], max_frame_size: usize) -> Result<Parsed<'_>, ConnectionError> {
    let Some(header_bytes) = input.first_chunk::<HEADER_LEN>() else {
        return Ok(Parsed::Incomplete);
    };
    if header_bytes == PREFACE_START {
        return Err(connection_error(
            ErrorCode::ProtocolError,
            Http2Event::PrefaceRepeated,
            "connection preface received twice",
        ));
    }
    let header = FrameHeader::parse(header_bytes);
    if header.length > max_frame_size {
        return Err(connection_error(
            ErrorCode::FrameSizeError,
            Http2Event::FrameTooLarge,
            "frame larger than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let total = HEADER_LEN + header.length;
    let Some(payload) = input.get(HEADER_LEN..total) else {
        return Ok(Parsed::Incomplete);
    };
    Ok(Parsed::Frame(parse_payload(header, payload)?, total))
}

fn parse_payload(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, ConnectionError> {
    let stream = header.stream;
    let on_connection = stream == 0;
    let frame_size =
        |reason| connection_error(ErrorCode::FrameSizeError, Http2Event::ProtocolError, reason);
    Ok(match header.kind {
        kind::DATA => {
            if on_connection {
                return Err(protocol_error("DATA on stream 0"));
            }
            Frame::Data {
                stream,
                end_stream: header.has(flag::END_STREAM),
                data: unpad(header, payload)?,
                flow_len: payload.len() as u32,
            }
        }
        kind::HEADERS => {
            if on_connection {
                return Err(protocol_error("HEADERS on stream 0"));
            }
            let mut fragment = unpad(header, payload)?;
            let mut priority = None;
            if header.has(flag::PRIORITY) {
                let (fields, rest) = fragment
                    .split_first_chunk::<5>()
                    .ok_or(frame_size("HEADERS too short for its priority fields"))?;
                priority = Some(dependency(fields));
                fragment = rest;
            }
            Frame::Headers {
                stream,
                end_stream: header.has(flag::END_STREAM),
                end_headers: header.has(flag::END_HEADERS),
                priority,
                fragment,
            }
        }
        kind::PRIORITY => {
            if on_connection {
                return Err(protocol_error("PRIORITY on stream 0"));
            }
            match payload.first_chunk::<5>() {
                Some(fields) if payload.len() == 5 => Frame::Priority {
                    stream,
                    priority: dependency(fields),
                },
                _ => Frame::Malformed(stream_error(
                    stream,
                    ErrorCode::FrameSizeError,
                    Http2Event::ProtocolError,
                    "PRIORITY payload is not 5 octets",
                )),
            }
        }
        kind::RST_STREAM => {
            if on_connection {
                return Err(protocol_error("RST_STREAM on stream 0"));
            }
            let code =
                exactly_u32(payload).ok_or(frame_size("RST_STREAM payload is not 4 octets"))?;
            Frame::RstStream { stream, code }
        }
        kind::SETTINGS => {
            if !on_connection {
                return Err(protocol_error("SETTINGS on a stream"));
            }
            let ack = header.has(flag::ACK);
            if ack && !payload.is_empty() {
                return Err(frame_size("SETTINGS ACK with a payload"));
            }
            if payload.len() % 6 != 0 {
                return Err(frame_size("SETTINGS payload is not a multiple of 6 octets"));
            }
            Frame::Settings {
                ack,
                params: payload,
            }
        }
        kind::PUSH_PROMISE => return Err(protocol_error("PUSH_PROMISE from a client")),
        kind::PING => {
            if !on_connection {
                return Err(protocol_error("PING on a stream"));
            }
            let data = match payload.first_chunk::<8>() {
                Some(data) if payload.len() == 8 => *data,
                _ => return Err(frame_size("PING payload is not 8 octets")),
            };
            Frame::Ping {
                ack: header.has(flag::ACK),
                data,
            }
        }
        kind::GOAWAY => {
            if !on_connection {
                return Err(protocol_error("GOAWAY on a stream"));
            }
            let (last, rest) = payload
                .split_first_chunk::<4>()
                .ok_or(frame_size("GOAWAY shorter than 8 octets"))?;
            let code = rest
                .first_chunk::<4>()
                .ok_or(frame_size("GOAWAY shorter than 8 octets"))?;
            Frame::GoAway {
                last_stream: u32::from_be_bytes(*last) & 0x7fff_ffff,
                code: u32::from_be_bytes(*code),
            }
        }
        kind::WINDOW_UPDATE => {
            let raw =
                exactly_u32(payload).ok_or(frame_size("WINDOW_UPDATE payload is not 4 octets"))?;
            Frame::WindowUpdate {
                stream,
                increment: raw & 0x7fff_ffff,
            }
        }
        kind::CONTINUATION => {
            if on_connection {
                return Err(protocol_error("CONTINUATION on stream 0"));
            }
            Frame::Continuation {
                stream,
                end_headers: header.has(flag::END_HEADERS),
                fragment: payload,
            }
        }
        other => Frame::Unknown {
            kind: other,
            stream,
        },
    })
}

/// The payload without its padding (§6.1): a length octet, then data, then
/// that many octets of padding, which must leave room for the length octet.
fn unpad(header: FrameHeader, payload: &[u8]) -> Result<&[u8], ConnectionError> {
    if !header.has(flag::PADDED) {
        return Ok(payload);
    }
    let (&pad, rest) = payload
        .split_first()
        .ok_or(protocol_error("padded frame without a pad length"))?;
    let data_len = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(protocol_error("padding longer than the payload"))?;
    Ok(&rest[..data_len])
}

fn dependency(fields: &[u8; 5]) -> Priority {
    Priority {
        depends_on: u32::from_be_bytes([fields[0], fields[1], fields[2], fields[3]]) & 0x7fff_ffff,
    }
}

fn exactly_u32(payload: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = payload.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::write::header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    fn parse_one(bytes: &[u8]) -> Result<Frame<'_>, ConnectionError> {
        match parse(bytes, 16_384)? {
            Parsed::Frame(frame, used) => {
                assert_eq!(used, bytes.len());
                Ok(frame)
            }
            Parsed::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn a_frame_is_incomplete_until_its_last_octet() {
        let bytes = frame(kind::PING, 0, 0, &[7; 8]);
        for end in 0..bytes.len() {
            assert_eq!(
                parse(&bytes[..end], 16_384),
                Ok(Parsed::Incomplete),
                "{end}"
            );
        }
        assert_eq!(
            parse_one(&bytes),
            Ok(Frame::Ping {
                ack: false,
                data: [7; 8]
            })
        );
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_alone() {
        let header = &frame(kind::DATA, 0, 1, &[])[..];
        let mut big = header.to_vec();
        big[..3].copy_from_slice(&[0, 0x40, 0x01]); // 16385
        let err = parse(&big, 16_384).unwrap_err();
        assert_eq!(
            (err.code, err.event),
            (ErrorCode::FrameSizeError, Http2Event::FrameTooLarge)
        );
        big[..3].copy_from_slice(&[0, 0x40, 0x00]); // 16384 fits
        assert_eq!(parse(&big, 16_384), Ok(Parsed::Incomplete));
    }

    #[test]
    fn the_preface_seen_as_a_frame_is_a_repeated_preface() {
        let err = parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 16_384).unwrap_err();
        assert_eq!(err.event, Http2Event::PrefaceRepeated);
    }

    #[test]
    fn padding_is_removed_and_counted_for_flow_control() {
        let bytes = frame(
            kind::DATA,
            flag::PADDED | flag::END_STREAM,
            3,
            &[2, b'h', b'i', 0, 0],
        );
        assert_eq!(
            parse_one(&bytes),
            Ok(Frame::Data {
                stream: 3,
                end_stream: true,
                data: b"hi",
                flow_len: 5
            })
        );
        for bad in [&[][..], &[5, 1, 2, 3, 4]] {
            let bytes = frame(kind::DATA, flag::PADDED, 3, bad);
            assert_eq!(
                parse_one(&bytes).unwrap_err().code,
                ErrorCode::ProtocolError
            );
        }
    }

    #[test]
    fn headers_carry_priority_and_flags() {
        let bytes = frame(
            kind::HEADERS,
            flag::PRIORITY | flag::END_HEADERS,
            1,
            &[0x80, 0, 0, 3, 16, 0x82],
        );
        assert_eq!(
            parse_one(&bytes),
            Ok(Frame::Headers {
                stream: 1,
                end_stream: false,
                end_headers: true,
                priority: Some(Priority { depends_on: 3 }),
                fragment: &[0x82],
            })
        );
    }

    #[test]
    fn wrong_lengths_and_streams_get_the_rfc_error() {
        let code = |bytes: Vec<u8>| parse_one(&bytes).map_err(|e| e.code).err();
        assert_eq!(
            code(frame(kind::PING, 0, 0, &[0; 7])),
            Some(ErrorCode::FrameSizeError)
        );
        assert_eq!(
            code(frame(kind::PING, 0, 1, &[0; 8])),
            Some(ErrorCode::ProtocolError)
        );
        assert_eq!(
            code(frame(kind::SETTINGS, 0, 0, &[0; 5])),
            Some(ErrorCode::FrameSizeError)
        );
        assert_eq!(
            code(frame(kind::SETTINGS, flag::ACK, 0, &[0; 6])),
            Some(ErrorCode::FrameSizeError)
        );
        assert_eq!(
            code(frame(kind::SETTINGS, 0, 1, &[])),
            Some(ErrorCode::ProtocolError)
        );
        assert_eq!(
            code(frame(kind::RST_STREAM, 0, 1, &[0; 3])),
            Some(ErrorCode::FrameSizeError)
        );
        assert_eq!(
            code(frame(kind::RST_STREAM, 0, 0, &[0; 4])),
            Some(ErrorCode::ProtocolError)
        );
        assert_eq!(
            code(frame(kind::WINDOW_UPDATE, 0, 0, &[0; 3])),
            Some(ErrorCode::FrameSizeError)
        );
        assert_eq!(
            code(frame(kind::GOAWAY, 0, 0, &[0; 7])),
            Some(ErrorCode::FrameSizeError)
        );
        assert_eq!(
            code(frame(kind::GOAWAY, 0, 1, &[0; 8])),
            Some(ErrorCode::ProtocolError)
        );
        assert_eq!(
            code(frame(kind::DATA, 0, 0, &[])),
            Some(ErrorCode::ProtocolError)
        );
        assert_eq!(
            code(frame(kind::HEADERS, 0, 0, &[])),
            Some(ErrorCode::ProtocolError)
        );
        assert_eq!(
            code(frame(kind::PUSH_PROMISE, 0, 1, &[0; 4])),
            Some(ErrorCode::ProtocolError)
        );
        assert_eq!(
            code(frame(kind::CONTINUATION, 0, 0, &[])),
            Some(ErrorCode::ProtocolError)
        );
        // A PRIORITY of the wrong length harms only its stream.
        assert!(matches!(
            parse_one(&frame(kind::PRIORITY, 0, 1, &[0; 4])),
            Ok(Frame::Malformed(StreamError {
                stream: 1,
                code: ErrorCode::FrameSizeError,
                ..
            }))
        ));
        assert_eq!(
            parse_one(&frame(0xfa, 0, 0, b"x")),
            Ok(Frame::Unknown {
                kind: 0xfa,
                stream: 0
            })
        );
    }
}
