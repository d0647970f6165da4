//! Fuzzes the PROXY protocol parser (v1 and v2) a trusted proxy's bytes go
//! through before any of them is believed.
//!
//! It must never panic or read out of bounds, and what it accepts must hold
//! what it promises: a header of at least one byte that lies inside the
//! input, a v1 line of at most 107 bytes, a v2 header exactly as long as
//! its length field says, the same answer for the header's bytes alone,
//! and "need more" — never a verdict — for a strict prefix of a valid
//! header, so that a partial header is never processed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::proxy::{parse, Parsed, Versions, V1_MAX_LINE};

fuzz_target!(|bytes: &[u8]| {
    for versions in [Versions::V1, Versions::V2, Versions::Any] {
        let Parsed::Header(header, n) = parse(bytes, versions) else {
            continue;
        };
        assert!(n > 0 && n <= bytes.len());
        match header.version {
            1 => assert!(n <= V1_MAX_LINE && bytes[..n].ends_with(b"\r\n")),
            2 => assert_eq!(n, 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]))),
            other => panic!("version {other}"),
        }
        if let Some(id) = &header.tlvs.unique_id {
            assert!(id.len() <= 128);
        }
        assert_eq!(parse(&bytes[..n], versions), Parsed::Header(header, n));
        let split = usize::from(bytes[0]) % n;
        assert_eq!(parse(&bytes[..split], versions), Parsed::NeedMore, "prefix {split}");
    }
});
