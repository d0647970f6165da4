//! A connection turned away before any TLS state existed: the alert to send
//! and the reason to count.
//!
//! When the gate refuses a ClientHello it has parsed itself (malformed, no
//! domain for its name), there is no OpenSSL session to produce the alert,
//! so the gate writes the alert record itself. The one idea: **a refusal is
//! data, not an action** — the caller, which owns the socket, writes
//! [`Refusal::alert_record`] and closes, and the error's
//! [`reason`](TlsError::reason) has already been counted.

use std::fmt;

use super::error::{TlsError, TlsErrorKind};

/// The TLS alert descriptions the gate sends itself (RFC 8446 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alert {
    UnexpectedMessage,
    HandshakeFailure,
    IllegalParameter,
    DecodeError,
    InternalError,
    UnrecognizedName,
}

impl Alert {
    /// The alert's code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Alert::UnexpectedMessage => 10,
            Alert::HandshakeFailure => 40,
            Alert::IllegalParameter => 47,
            Alert::DecodeError => 50,
            Alert::InternalError => 80,
            Alert::UnrecognizedName => 112,
        }
    }

    /// The alert that goes with a refusal of this kind.
    pub fn for_kind(kind: TlsErrorKind) -> Alert {
        match kind {
            TlsErrorKind::NotClientHello => Alert::UnexpectedMessage,
            TlsErrorKind::FragmentedClientHello => Alert::HandshakeFailure,
            TlsErrorKind::MalformedClientHello | TlsErrorKind::EmptySni => Alert::DecodeError,
            TlsErrorKind::DuplicateSni | TlsErrorKind::SniChanged => Alert::IllegalParameter,
            // As OpenSSL answers such names itself.
            TlsErrorKind::OversizedSni | TlsErrorKind::SniNulByte | TlsErrorKind::UnknownSni => {
                Alert::UnrecognizedName
            }
            _ => Alert::InternalError,
        }
    }
}

/// Why [`TlsGate::accept`](super::TlsGate::accept) turned a connection away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    error: TlsError,
    alert: Alert,
}

impl Refusal {
    pub(crate) fn new(error: TlsError) -> Refusal {
        Refusal {
            alert: Alert::for_kind(error.kind()),
            error,
        }
    }

    /// What went wrong; `error().reason()` names the counter.
    pub fn error(&self) -> &TlsError {
        &self.error
    }

    pub fn alert(&self) -> Alert {
        self.alert
    }

    /// The fatal alert as a whole TLS record, ready for the socket.
    pub fn alert_record(&self) -> [u8; 7] {
        // Content type alert (21), legacy version TLS 1.2, length 2, level
        // fatal (2), description.
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, self.alert.code()]
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (alert {})", self.error, self.alert.code())
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_carries_a_fatal_alert_record_for_its_kind() {
        let refusal = Refusal::new(TlsError::new(TlsErrorKind::EmptySni, "empty host name"));
        assert_eq!(refusal.alert(), Alert::DecodeError);
        assert_eq!(refusal.alert_record(), [0x15, 3, 3, 0, 2, 2, 50]);
        assert_eq!(refusal.error().reason(), "sni_empty");
        let unknown = Refusal::new(TlsError::new(TlsErrorKind::UnknownSni, "nosuch"));
        assert_eq!(unknown.alert_record()[6], 112);
    }
}
