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
#[path = "frame_tests.rs"]
mod tests;
