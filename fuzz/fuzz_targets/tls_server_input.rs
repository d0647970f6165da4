//! Fuzzes the server's TLS path with arbitrary bytes from a hostile client.
//!
//! The bytes go where a socket's bytes go: first through the sniffer that
//! decides plaintext or TLS; if they look like TLS, the first record is
//! held until whole and handed to the development gate's `accept`, and
//! whatever follows it is delivered to the session at a point chosen by
//! the first byte. Whatever the bytes, the gate must refuse or the engine
//! must answer with an error or progress: never a panic, never plaintext
//! before a handshake, and never a sniffing verdict that changes its mind
//! as more bytes arrive.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::tls::{classify, first_record_len, FirstBytes, TlsGate};

fn gate() -> &'static TlsGate {
    static GATE: OnceLock<TlsGate> = OnceLock::new();
    GATE.get_or_init(|| TlsGate::development().expect("the development gate builds"))
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, bytes)) = input.split_first() else {
        return;
    };
    // The sniffer's verdict never changes once made.
    let full = classify(bytes);
    for end in 0..bytes.len().min(8) {
        let verdict = classify(&bytes[..end]);
        assert!(verdict == FirstBytes::NeedMore || verdict == full);
    }
    if full != FirstBytes::Tls {
        return;
    }
    let Some(record_len) = first_record_len(bytes).filter(|&len| len <= bytes.len()) else {
        return; // the engine would still be waiting for the first record
    };
    let rest = &bytes[record_len..];
    let split = rest.len() * usize::from(control) / 255;
    let (with_record, later) = rest.split_at(split.min(rest.len()));
    let first = &bytes[..record_len + with_record.len()];
    let mut session = match gate().accept(first) {
        Ok(session) => session,
        Err(refusal) => {
            assert!(!refusal.error().reason().is_empty());
            assert_eq!(refusal.alert_record()[0], 0x15);
            return;
        }
    };
    let mut plaintext = Vec::new();
    for delivery in [&[][..], later] {
        session.receive(delivery);
        match session.process(&mut plaintext) {
            Ok(progress) => {
                // Random bytes cannot complete a handshake with us.
                assert!(
                    !progress.handshake_complete,
                    "handshake completed on fuzz input"
                );
            }
            Err(err) => {
                assert!(!err.reason().is_empty());
                break;
            }
        }
        assert!(plaintext.is_empty(), "plaintext before any handshake");
    }
});
