//! Encoding response header blocks, statelessly.
//!
//! The encoder never adds to the peer's dynamic table: a field that matches
//! a static entry exactly is sent as its index, any other is sent as a
//! literal *without indexing*, naming a static entry when one has the name,
//! and Huffman-coded when that is shorter. The one idea: **a server is free
//! not to use the dynamic table**, and by not using it never has to track
//! the peer's SETTINGS_HEADER_TABLE_SIZE or evictions; the responses here
//! have four or five small fields, so what indexing would save is a few
//! dozen bytes per response.

use super::table::STATIC_TABLE;
use super::{huffman, integer};

/// Appends one field to a header block.
pub fn encode_field(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let mut name_index = 0;
    for (at, (static_name, static_value)) in STATIC_TABLE.iter().enumerate() {
        if *static_name == name {
            if *static_value == value {
                integer::encode(at + 1, 7, 0x80, out);
                return;
            }
            if name_index == 0 {
                name_index = at + 1;
            }
        }
    }
    integer::encode(name_index, 4, 0x00, out);
    if name_index == 0 {
        encode_string(name, out);
    }
    encode_string(value, out);
}

fn encode_string(text: &[u8], out: &mut Vec<u8>) {
    let huffman_len = huffman::encoded_len(text);
    if huffman_len < text.len() {
        integer::encode(huffman_len, 7, 0x80, out);
        huffman::encode(text, out);
    } else {
        integer::encode(text.len(), 7, 0x00, out);
        out.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Decoder;
    use super::*;

    #[test]
    fn static_matches_become_one_octet_and_the_rest_decode_back() {
        let mut out = Vec::new();
        encode_field(b":status", b"200", &mut out);
        assert_eq!(out, [0x88]);
        let fields: [(&[u8], &[u8]); 4] = [
            (b":status", b"421"),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"x-unlisted", b"\x00\xff binary"),
            (b"server", b"portcullis"),
        ];
        let mut block = Vec::new();
        for (name, value) in fields {
            encode_field(name, value, &mut block);
        }
        let mut decoder = Decoder::new(4096);
        let mut decoded = Vec::new();
        decoder
            .decode(&block, |name, value| {
                decoded.push((name.to_vec(), value.to_vec()))
            })
            .unwrap();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = fields
            .iter()
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect();
        assert_eq!(decoded, expected);
        assert!(decoder.table().is_empty(), "nothing was indexed");
    }
}
