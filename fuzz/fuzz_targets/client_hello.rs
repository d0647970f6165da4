//! Fuzzes the ClientHello parser the gate runs before any TLS state exists.
//!
//! The parser must never panic or read out of bounds, and what it accepts
//! must hold what it promises: a host name that is non-empty, at most 255
//! bytes and free of NUL, and an ALPN list of non-empty names that lie
//! inside the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::tls::client_hello::{parse, MAX_HOST_NAME};

fuzz_target!(|bytes: &[u8]| {
    let Ok(hello) = parse(bytes) else {
        return;
    };
    if let Some(name) = hello.server_name {
        assert!(!name.is_empty() && name.len() <= MAX_HOST_NAME);
        assert!(!name.contains(&0));
    }
    let mut total = 0;
    for protocol in hello.alpn() {
        assert!(!protocol.is_empty());
        total += protocol.len() + 1;
    }
    assert!(total <= bytes.len());
});
