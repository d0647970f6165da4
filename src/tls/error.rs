//! Why a TLS connection failed, in a form fit for counters, logs and tests.
//!
//! OpenSSL reports failures as a stack of library/reason strings that vary
//! between versions. The gate folds them into a small, stable set of
//! categories: the one idea is that **callers branch and count on
//! [`TlsError::reason`], and only humans read the message**.

use std::fmt;

use openssl::ssl::{Error as SslError, ErrorCode};

/// The category of a TLS failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsErrorKind {
    /// The peer is not speaking TLS at all (e.g. plain HTTP to the TLS path).
    NotTls,
    /// The handshake failed for a reason not listed below (no shared
    /// version or cipher, bad handshake message, failed server-cert check on
    /// the client side, ...).
    HandshakeFailed,
    /// The admitting domain requires a client certificate and none was sent.
    NoClientCert,
    /// A client certificate was sent but did not verify against the domain's
    /// CA (foreign CA, expired, wrong key usage, ...).
    BadClientCert,
    /// The client asked for a server name no domain serves, and the policy
    /// for that is to reject (or it sent none and no-SNI means reject).
    UnknownSni,
    /// A malformed or oversized record, or one that failed to decrypt.
    BadRecord,
    /// A protocol violation after the handshake (unexpected message,
    /// refused renegotiation, ...).
    ProtocolError,
    /// The session was used after it was closed or after it failed.
    Closed,
    /// OpenSSL could not set up the session (out of memory, bad context).
    Internal,
    /// The first record is a handshake record, but its message is not a
    /// ClientHello (a ServerHello, say, or a Finished out of the blue).
    NotClientHello,
    /// The ClientHello does not fit in its first record. Refused: see
    /// [`client_hello`](super::client_hello) for why.
    FragmentedClientHello,
    /// The ClientHello (or one of its SNI/ALPN extensions) does not parse,
    /// or repeats an extension other than SNI.
    MalformedClientHello,
    /// Two `server_name` extensions, or two host names in one.
    DuplicateSni,
    /// A `server_name` extension carrying an empty host name.
    EmptySni,
    /// A host name longer than any DNS name (255 bytes).
    OversizedSni,
    /// A host name with a NUL byte in it.
    SniNulByte,
    /// The ClientHello repeated after a HelloRetryRequest names a different
    /// server (or adds or drops the name).
    SniChanged,
}

impl TlsErrorKind {
    /// Every kind, in the order counters list them.
    pub const ALL: [TlsErrorKind; 17] = [
        TlsErrorKind::NotTls,
        TlsErrorKind::HandshakeFailed,
        TlsErrorKind::NoClientCert,
        TlsErrorKind::BadClientCert,
        TlsErrorKind::UnknownSni,
        TlsErrorKind::BadRecord,
        TlsErrorKind::ProtocolError,
        TlsErrorKind::Closed,
        TlsErrorKind::Internal,
        TlsErrorKind::NotClientHello,
        TlsErrorKind::FragmentedClientHello,
        TlsErrorKind::MalformedClientHello,
        TlsErrorKind::DuplicateSni,
        TlsErrorKind::EmptySni,
        TlsErrorKind::OversizedSni,
        TlsErrorKind::SniNulByte,
        TlsErrorKind::SniChanged,
    ];

    /// The position of this kind in [`TlsErrorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short label that never changes, for metrics and log fields.
    pub fn reason(self) -> &'static str {
        match self {
            TlsErrorKind::NotTls => "not_tls",
            TlsErrorKind::HandshakeFailed => "handshake_failed",
            TlsErrorKind::NoClientCert => "no_client_cert",
            TlsErrorKind::BadClientCert => "bad_client_cert",
            TlsErrorKind::UnknownSni => "unknown_sni",
            TlsErrorKind::BadRecord => "bad_record",
            TlsErrorKind::ProtocolError => "protocol_error",
            TlsErrorKind::Closed => "closed",
            TlsErrorKind::Internal => "internal",
            TlsErrorKind::NotClientHello => "not_client_hello",
            TlsErrorKind::FragmentedClientHello => "client_hello_fragmented",
            TlsErrorKind::MalformedClientHello => "client_hello_malformed",
            TlsErrorKind::DuplicateSni => "sni_duplicated",
            TlsErrorKind::EmptySni => "sni_empty",
            TlsErrorKind::OversizedSni => "sni_too_long",
            TlsErrorKind::SniNulByte => "sni_nul_byte",
            TlsErrorKind::SniChanged => "sni_changed",
        }
    }
}

/// A TLS failure: a stable category plus a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    kind: TlsErrorKind,
    message: String,
}

impl TlsError {
    pub fn new(kind: TlsErrorKind, message: impl Into<String>) -> TlsError {
        TlsError {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// The stable label of [`TlsError::kind`], e.g. `"no_client_cert"`.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// What OpenSSL (or the gate) said, for logs.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Folds an OpenSSL error into a category. `handshaking` says whether the
    /// handshake was still running, which decides the fallback category.
    pub(crate) fn from_ssl(error: &SslError, handshaking: bool) -> TlsError {
        let message = describe(error);
        let lower = message.to_ascii_lowercase();
        // OpenSSL's reason strings are the only portable signal for *why*; the
        // numeric reason codes are not exported by openssl-sys. These strings
        // have been stable across OpenSSL 1.1.1 and 3.x.
        let has = |needle: &str| lower.contains(needle);
        let kind = if has("http request") || has("https proxy request") {
            TlsErrorKind::NotTls
        } else if has("peer did not return a certificate") {
            TlsErrorKind::NoClientCert
        } else if handshaking && has("certificate verify failed") && error.code() == ErrorCode::SSL
        {
            // On the server this is the client's certificate; the client side
            // reclassifies its own (server certificate) failures itself.
            TlsErrorKind::BadClientCert
        } else if has("packet length too long")
            || has("record length mismatch")
            || has("encrypted length too long")
            || has("bad record mac")
            || has("wrong version number")
            || has("record layer failure")
            || has("length too short")
            || has("bad packet length")
            || has("record too small")
            || has("data length too long")
            || has("wrong record type")
            || has("bad record type")
        {
            TlsErrorKind::BadRecord
        } else if handshaking {
            TlsErrorKind::HandshakeFailed
        } else {
            TlsErrorKind::ProtocolError
        };
        TlsError { kind, message }
    }

    pub(crate) fn with_kind(mut self, kind: TlsErrorKind) -> TlsError {
        self.kind = kind;
        self
    }
}

/// One line from an OpenSSL error: the reason strings of its error stack, or
/// the I/O error, or the bare code.
fn describe(error: &SslError) -> String {
    if let Some(stack) = error.ssl_error() {
        let reasons: Vec<String> = stack
            .errors()
            .iter()
            .map(|e| match e.reason() {
                Some(reason) => reason.to_string(),
                None => e.to_string(),
            })
            .collect();
        if !reasons.is_empty() {
            return reasons.join("; ");
        }
    }
    if let Some(io) = error.io_error() {
        return io.to_string();
    }
    format!("OpenSSL error code {}", error.code().as_raw())
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.reason(), self.message)
    }
}

impl std::error::Error for TlsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_at_its_own_index_with_its_own_label() {
        let labels: std::collections::HashSet<_> =
            TlsErrorKind::ALL.iter().map(|k| k.reason()).collect();
        assert_eq!(labels.len(), TlsErrorKind::ALL.len());
        for (i, kind) in TlsErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i, "{}", kind.reason());
        }
    }
}
