//! Fuzzes the HPACK decoder with header blocks from a hostile peer.
//!
//! The first byte picks the decoder's table size; the rest is cut into
//! blocks at every 0xff 0x00 pair and decoded in order on one decoder, the
//! way a connection decodes one HEADERS block after another. Beyond "no
//! panic": the dynamic table never exceeds its size, and every field that
//! decodes, re-encoded by the server's encoder, decodes back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::service::http2::hpack::{encode_field, Decoder};

fuzz_target!(|input: &[u8]| {
    let Some((&size, rest)) = input.split_first() else {
        return;
    };
    let table_size = usize::from(size) * 32;
    let mut decoder = Decoder::new(table_size);
    for block in rest
        .split(|&b| b == 0xff)
        .map(|b| b.strip_prefix(&[0x00]).unwrap_or(b))
    {
        let mut fields = Vec::new();
        let outcome = decoder.decode(block, |name, value| {
            fields.push((name.to_vec(), value.to_vec()))
        });
        assert!(decoder.table().size() <= table_size, "table over its size");
        if outcome.is_err() {
            // A connection ends at the first bad block.
            return;
        }
        let mut encoded = Vec::new();
        for (name, value) in &fields {
            encode_field(name, value, &mut encoded);
        }
        let mut again = Vec::new();
        Decoder::new(4096)
            .decode(&encoded, |name, value| {
                again.push((name.to_vec(), value.to_vec()))
            })
            .expect("what the encoder writes decodes");
        assert_eq!(again, fields, "re-encoded fields decode back to themselves");
    }
});
