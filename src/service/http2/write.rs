//! Writing frames: each function appends one frame (or a HEADERS frame and
//! its CONTINUATIONs) to an output buffer.
//!
//! The one idea: **the peer's limits shape what we write**. No frame is
//! larger than the peer's SETTINGS_MAX_FRAME_SIZE, so a header block that
//! does not fit one frame is split into CONTINUATION frames, and the caller
//! decides how much DATA flow control lets it send before calling
//! [`data`].

use super::error::ErrorCode;
use super::frame::{flag, kind, HEADER_LEN};

/// Appends a 9-octet frame header.
pub fn header(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(length < 1 << 24);
    let mut bytes = [0u8; HEADER_LEN];
    bytes[..3].copy_from_slice(&(length as u32).to_be_bytes()[1..]);
    bytes[3] = kind;
    bytes[4] = flags;
    bytes[5..].copy_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&bytes);
}

/// SETTINGS with `(identifier, value)` pairs.
pub fn settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    header(out, params.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in params {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn settings_ack(out: &mut Vec<u8>) {
    header(out, 0, kind::SETTINGS, flag::ACK, 0);
}

pub fn ping_ack(out: &mut Vec<u8>, data: &[u8; 8]) {
    header(out, 8, kind::PING, flag::ACK, 0);
    out.extend_from_slice(data);
}

/// GOAWAY naming the last stream we processed; `debug` says why.
pub fn goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode, debug: &str) {
    header(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&code.code().to_be_bytes());
    out.extend_from_slice(debug.as_bytes());
}

pub fn rst_stream(out: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    header(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&code.code().to_be_bytes());
}

pub fn window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    header(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & 0x7fff_ffff).to_be_bytes());
}

/// A header block as HEADERS plus as many CONTINUATION frames as
/// `max_frame_size` requires.
pub fn headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: usize,
) {
    let mut chunks = block.chunks(max_frame_size.max(1)).peekable();
    let first = chunks.next().unwrap_or_default();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    header(out, first.len(), kind::HEADERS, flags, stream);
    out.extend_from_slice(first);
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        header(out, chunk.len(), kind::CONTINUATION, flags, stream);
        out.extend_from_slice(chunk);
    }
}

/// One DATA frame; the caller keeps it within the peer's frame size and
/// windows.
pub fn data(out: &mut Vec<u8>, stream: u32, bytes: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    header(out, bytes.len(), kind::DATA, flags, stream);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::super::frame::{parse, Frame, Parsed};
    use super::*;

    #[test]
    fn a_large_header_block_is_split_into_continuations() {
        let block: Vec<u8> = (0..40u8).collect();
        let mut out = Vec::new();
        headers(&mut out, 5, &block, true, 16);
        let mut rest = &out[..];
        let mut fragments = Vec::new();
        while let Ok(Parsed::Frame(frame, used)) = parse(rest, 16) {
            fragments.push(frame);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(fragments.len(), 3);
        assert!(matches!(
            fragments[0],
            Frame::Headers {
                stream: 5,
                end_stream: true,
                end_headers: false,
                ..
            }
        ));
        assert!(matches!(
            fragments[1],
            Frame::Continuation {
                end_headers: false,
                ..
            }
        ));
        assert!(matches!(
            fragments[2],
            Frame::Continuation {
                end_headers: true,
                ..
            }
        ));
    }

    #[test]
    fn control_frames_parse_back() {
        let mut out = Vec::new();
        goaway(&mut out, 7, ErrorCode::EnhanceYourCalm, "slow down");
        assert_eq!(
            parse(&out, 16_384),
            Ok(Parsed::Frame(
                Frame::GoAway {
                    last_stream: 7,
                    code: 0xb
                },
                out.len()
            ))
        );
        let mut out = Vec::new();
        window_update(&mut out, 3, 1000);
        assert_eq!(
            parse(&out, 16_384),
            Ok(Parsed::Frame(
                Frame::WindowUpdate {
                    stream: 3,
                    increment: 1000
                },
                13
            ))
        );
    }
}
