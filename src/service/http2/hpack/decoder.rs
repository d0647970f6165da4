//! Decoding header blocks (RFC 7541 §6): each representation either names a
//! table entry, or carries a literal name and value and says whether to
//! remember it.
//!
//! The one idea: **the decoder is a state machine shared with the peer's
//! encoder**. Every block must be decoded to its end, in order, even when
//! the request it carries is going to be refused, or the dynamic table here
//! and the one in the peer's encoder drift apart and every later block
//! decodes to the wrong fields. So the decoder hands each field to a
//! callback and never stops early for reasons of its own caller; only an
//! error in the block itself (which ends the connection with
//! COMPRESSION_ERROR) stops it.
//!
//! Nothing here trusts a length: every integer is bounded (`integer.rs`),
//! every string is checked against the bytes actually present, and Huffman
//! strings are checked bit by bit (`huffman.rs`). Errors, never panics.

use super::table::{self, DynamicTable};
use super::{huffman, integer, HpackError};

/// One connection's HPACK decoder.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// The largest dynamic table we allow (our SETTINGS_HEADER_TABLE_SIZE);
    /// the peer's size updates may not exceed it.
    allowed_max: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder whose dynamic table may grow to `allowed_max` bytes.
    pub fn new(allowed_max: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(allowed_max),
            allowed_max,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// The dynamic table, for tests and the fuzz target.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Decodes one complete header block, handing each field to `field` in
    /// order as `(name, value)`.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        // Size updates are allowed only before the first field (§4.2).
        let mut fields_seen = false;
        while let Some(&first) = block.first() {
            let used = if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let (index, used) = integer::decode(block, 7)?;
                let (name, value) =
                    table::lookup(&self.table, index).ok_or(HpackError::InvalidIndex)?;
                field(name, value);
                used
            } else if first & 0x40 != 0 {
                // Literal with incremental indexing (§6.2.1).
                let used = self.literal(block, 6)?;
                field(&self.name, &self.value);
                self.table.insert(&self.name, &self.value);
                used
            } else if first & 0x20 != 0 {
                // Dynamic table size update (§6.3).
                if fields_seen {
                    return Err(HpackError::SizeUpdateNotAtStart);
                }
                let (size, used) = integer::decode(block, 5)?;
                if size > self.allowed_max {
                    return Err(HpackError::SizeUpdateTooLarge);
                }
                self.table.set_max_size(size);
                block = &block[used..];
                continue;
            } else {
                // Literal without indexing, or never indexed (§6.2.2, §6.2.3):
                // both 4-bit prefixes; neither touches the table.
                let used = self.literal(block, 4)?;
                field(&self.name, &self.value);
                used
            };
            fields_seen = true;
            block = &block[used..];
        }
        Ok(())
    }

    /// Reads a literal representation into `self.name` and `self.value`;
    /// returns the octets used. `prefix_bits` is the width of its name
    /// index (0 there means the name follows as a literal).
    fn literal(&mut self, block: &[u8], prefix_bits: u8) -> Result<usize, HpackError> {
        let (name_index, mut used) = integer::decode(block, prefix_bits)?;
        self.name.clear();
        if name_index == 0 {
            used += read_string(&block[used..], &mut self.name)?;
        } else {
            let (name, _) =
                table::lookup(&self.table, name_index).ok_or(HpackError::InvalidIndex)?;
            self.name.extend_from_slice(name);
        }
        self.value.clear();
        used += read_string(&block[used..], &mut self.value)?;
        Ok(used)
    }
}

/// Reads a string literal (§5.2) into `out`; returns the octets used.
fn read_string(input: &[u8], out: &mut Vec<u8>) -> Result<usize, HpackError> {
    let huffman_coded = input.first().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let (length, header) = integer::decode(input, 7)?;
    let end = header.checked_add(length).ok_or(HpackError::Truncated)?;
    let bytes = input.get(header..end).ok_or(HpackError::Truncated)?;
    if huffman_coded {
        huffman::decode(bytes, out)?;
    } else {
        out.extend_from_slice(bytes);
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        decoder: &mut Decoder,
        block: &[u8],
    ) -> Result<Vec<(String, String)>, HpackError> {
        let mut fields = Vec::new();
        decoder.decode(block, |name, value| {
            fields.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ))
        })?;
        Ok(fields)
    }

    #[test]
    fn index_zero_and_indexes_past_the_tables_are_errors() {
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decode_all(&mut decoder, &[0x80]),
            Err(HpackError::InvalidIndex)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0xbe]),
            Err(HpackError::InvalidIndex)
        );
        // A literal naming a missing entry.
        assert_eq!(
            decode_all(&mut decoder, &[0x7f, 0x00, 0x01, b'x']),
            Err(HpackError::InvalidIndex)
        );
    }

    #[test]
    fn a_size_update_must_come_first_and_within_what_we_allowed() {
        let mut decoder = Decoder::new(4096);
        // Two updates, then a field: fine.
        assert_eq!(
            decode_all(&mut decoder, &[0x20, 0x3f, 0xe1, 0x1f, 0x82]).unwrap(),
            [(":method".into(), "GET".into())]
        );
        assert_eq!(decoder.table().max_size(), 4096);
        // After a field: an error.
        assert_eq!(
            decode_all(&mut decoder, &[0x82, 0x20]),
            Err(HpackError::SizeUpdateNotAtStart)
        );
        // Above our setting (4097): an error.
        assert_eq!(
            decode_all(&mut decoder, &[0x3f, 0xe2, 0x1f]),
            Err(HpackError::SizeUpdateTooLarge)
        );
        // The lone byte that made other decoders panic.
        assert_eq!(
            decode_all(&mut decoder, &[0x3f]),
            Err(HpackError::Truncated)
        );
    }

    #[test]
    fn strings_longer_than_the_block_are_errors() {
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decode_all(&mut decoder, &[0x40, 0x05, b'a', b'b']),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x7f, 0xff, 0xff, 0x03]),
            Err(HpackError::Truncated)
        );
    }

    #[test]
    fn never_indexed_and_without_indexing_leave_the_table_alone() {
        let mut decoder = Decoder::new(4096);
        let block = [0x10, 0x01, b'a', 0x01, b'b', 0x00, 0x01, b'c', 0x01, b'd'];
        assert_eq!(
            decode_all(&mut decoder, &block).unwrap(),
            [("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        assert!(decoder.table().is_empty());
    }
}
