//! HTTP/2's two kinds of error (RFC 9113 §5.4) and their codes (§7).
//!
//! The one idea: **every error knows its blast radius**. A *stream* error
//! ends one request with RST_STREAM and the connection carries on; a
//! *connection* error ends everything with GOAWAY, because after it the two
//! sides can no longer agree on the state they share (the HPACK tables,
//! the flow-control windows, where the next frame starts). Each error also
//! names the [`Http2Event`] it is counted under, so no path that refuses a
//! peer can forget to count it.

use std::fmt;

use super::counters::Http2Event;

/// RFC 9113 §7 error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    NoError,
    ProtocolError,
    InternalError,
    FlowControlError,
    SettingsTimeout,
    StreamClosed,
    FrameSizeError,
    RefusedStream,
    Cancel,
    CompressionError,
    ConnectError,
    EnhanceYourCalm,
    InadequateSecurity,
    Http11Required,
}

impl ErrorCode {
    const ALL: [ErrorCode; 14] = [
        ErrorCode::NoError,
        ErrorCode::ProtocolError,
        ErrorCode::InternalError,
        ErrorCode::FlowControlError,
        ErrorCode::SettingsTimeout,
        ErrorCode::StreamClosed,
        ErrorCode::FrameSizeError,
        ErrorCode::RefusedStream,
        ErrorCode::Cancel,
        ErrorCode::CompressionError,
        ErrorCode::ConnectError,
        ErrorCode::EnhanceYourCalm,
        ErrorCode::InadequateSecurity,
        ErrorCode::Http11Required,
    ];

    /// The code on the wire: the position in RFC 9113's list.
    pub fn code(self) -> u32 {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0) as u32
    }

    /// The code a peer sent; unknown codes are kept as `None` (RFC 9113 §7:
    /// they must not trigger special behaviour).
    pub fn from_code(code: u32) -> Option<ErrorCode> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::NoError => "NO_ERROR",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::FlowControlError => "FLOW_CONTROL_ERROR",
            ErrorCode::SettingsTimeout => "SETTINGS_TIMEOUT",
            ErrorCode::StreamClosed => "STREAM_CLOSED",
            ErrorCode::FrameSizeError => "FRAME_SIZE_ERROR",
            ErrorCode::RefusedStream => "REFUSED_STREAM",
            ErrorCode::Cancel => "CANCEL",
            ErrorCode::CompressionError => "COMPRESSION_ERROR",
            ErrorCode::ConnectError => "CONNECT_ERROR",
            ErrorCode::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            ErrorCode::InadequateSecurity => "INADEQUATE_SECURITY",
            ErrorCode::Http11Required => "HTTP_1_1_REQUIRED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Ends the connection: GOAWAY with `code`, `reason` as its debug data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionError {
    pub code: ErrorCode,
    pub reason: &'static str,
    pub event: Http2Event,
}

/// Ends one stream: RST_STREAM with `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamError {
    pub stream: u32,
    pub code: ErrorCode,
    pub reason: &'static str,
    pub event: Http2Event,
}

/// A connection error of the commonest kind.
pub fn protocol_error(reason: &'static str) -> ConnectionError {
    ConnectionError {
        code: ErrorCode::ProtocolError,
        reason,
        event: Http2Event::ProtocolError,
    }
}

/// A connection error with its own code and counter.
pub fn connection_error(
    code: ErrorCode,
    event: Http2Event,
    reason: &'static str,
) -> ConnectionError {
    ConnectionError {
        code,
        reason,
        event,
    }
}

/// A stream error.
pub fn stream_error(
    stream: u32,
    code: ErrorCode,
    event: Http2Event,
    reason: &'static str,
) -> StreamError {
    StreamError {
        stream,
        code,
        reason,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_rfc_numbers() {
        assert_eq!(ErrorCode::NoError.code(), 0);
        assert_eq!(ErrorCode::FrameSizeError.code(), 6);
        assert_eq!(ErrorCode::EnhanceYourCalm.code(), 0xb);
        assert_eq!(ErrorCode::Http11Required.code(), 0xd);
        assert_eq!(ErrorCode::from_code(0xb), Some(ErrorCode::EnhanceYourCalm));
        assert_eq!(ErrorCode::from_code(0xe), None);
    }
}
