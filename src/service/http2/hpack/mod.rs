//! HPACK, HTTP/2's header compression (RFC 7541), written here rather than
//! taken from a crate.
//!
//! Why not a crate: `hpack` is unmaintained (RUSTSEC-2023-0084) and panics
//! on the one-byte block `0x3f` (a size update whose integer is cut short);
//! its maintained forks `fluke-hpack`/`loona-hpack` carry the same code and
//! the same panic; `httlib-hpack` has not seen a release in years; the `h2`
//! crate's decoder is not public. A decoder is a few hundred lines, and the
//! one in a server must never panic on what a peer sends, so it lives here,
//! is tested against the RFC's Appendix C vectors and is fuzzed
//! (`fuzz/fuzz_targets/hpack_decoder.rs`).
//!
//! The one idea: **decoding is bounded by what we advertised**. The dynamic
//! table never exceeds our SETTINGS_HEADER_TABLE_SIZE, integers never exceed
//! [`integer::MAX_INTEGER`], and strings never exceed the block that carries
//! them; the size of the decoded header *list* (which indexing can make far
//! larger than the block: an "HPACK bomb") is bounded by the caller, which
//! sees every field go by.
//!
//! Files: `integer.rs` (§5.1), `huffman.rs` (§5.2, Appendix B), `table.rs`
//! (§2.3, Appendix A), `decoder.rs` (§6), `encoder.rs` (responses).

mod decoder;
mod encoder;
mod huffman;
mod integer;
mod table;
#[cfg(test)]
mod vectors;

use std::fmt;

pub use decoder::Decoder;
pub use encoder::encode_field;
pub use table::ENTRY_OVERHEAD;

/// What can be wrong with a header block. Every one is a connection error
/// of type COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// A representation or string runs past the end of the block.
    Truncated,
    /// An integer beyond any length or index this decoder accepts.
    IntegerTooLarge,
    /// Index 0, or past the end of the static and dynamic tables.
    InvalidIndex,
    /// A dynamic table size update after the first field of a block.
    SizeUpdateNotAtStart,
    /// A dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE.
    SizeUpdateTooLarge,
    /// Huffman padding longer than 7 bits or not all ones.
    HuffmanPadding,
    /// The EOS symbol inside a Huffman string.
    HuffmanEos,
    /// Bits that are no Huffman code.
    HuffmanInvalid,
}

impl HpackError {
    pub fn as_str(self) -> &'static str {
        match self {
            HpackError::Truncated => "header block ends inside a representation",
            HpackError::IntegerTooLarge => "HPACK integer too large",
            HpackError::InvalidIndex => "HPACK index outside the tables",
            HpackError::SizeUpdateNotAtStart => "dynamic table size update after a field",
            HpackError::SizeUpdateTooLarge => "dynamic table size update above our setting",
            HpackError::HuffmanPadding => "invalid Huffman padding",
            HpackError::HuffmanEos => "EOS symbol inside a Huffman string",
            HpackError::HuffmanInvalid => "invalid Huffman code",
        }
    }
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
