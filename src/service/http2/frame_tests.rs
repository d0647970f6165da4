//! Frame parsing, frame type by frame type: what each wrong length or
//! stream id costs, and that nothing is decided before its bytes are in.

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
