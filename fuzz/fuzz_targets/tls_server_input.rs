//! Fuzzes the server's TLS engine with arbitrary bytes from a hostile client.
//!
//! The bytes go where a socket's bytes go: first through the sniffer that
//! decides plaintext or TLS, then, if they look like a ClientHello, into a
//! server session of the built-in development gate, split into two
//! deliveries at a point chosen by the first byte. Whatever the bytes, the
//! engine must answer with an error or progress, never a panic, never
//! plaintext before a handshake, and never a sniffing verdict that changes
//! its mind as more bytes arrive.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::tls::{classify, FirstBytes, TlsGate};

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
    let split = bytes.len() * usize::from(control) / 255;
    let (first, second) = bytes.split_at(split.min(bytes.len()));
    let Ok(mut session) = gate().new_session() else {
        return;
    };
    let mut plaintext = Vec::new();
    for delivery in [first, second] {
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
