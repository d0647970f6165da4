//! The static Huffman code of RFC 7541 Appendix B, and decoding and
//! encoding with it.
//!
//! The code is *canonical*: within each length, codes are consecutive
//! integers in symbol order, and each length's first code follows the last
//! code of the length before. So the code lengths alone determine every
//! code, and decoding needs no tree: read bits into an integer, and after
//! each bit ask "is this a code of the current length?" with one subtraction
//! and one comparison. The table below is kept as the RFC prints it (code and
//! length) so it can be checked against the RFC by eye; a test checks that it
//! is canonical, which the decoder relies on.
//!
//! What a peer can get wrong, and what it gets back (RFC 7541 §5.2):
//! padding longer than 7 bits, padding that is not the most significant
//! bits of EOS, or the EOS symbol itself inside a string — each an error,
//! never a panic and never a partial string.

use super::HpackError;

/// `(code, length in bits)` for symbols 0..=255 and EOS (256).
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    (0x3fffffff, 30),
];

const EOS: u16 = 256;
const MIN_LENGTH: usize = 5;
const MAX_LENGTH: usize = 30;

/// The canonical code, arranged for decoding.
struct Canonical {
    /// The first code of each length (meaningful where `count > 0`).
    first: [u32; MAX_LENGTH + 1],
    /// How many codes have each length.
    count: [u16; MAX_LENGTH + 1],
    /// Where each length's symbols start in `symbols`.
    start: [u16; MAX_LENGTH + 1],
    /// Symbols ordered by (length, symbol): code order.
    symbols: [u16; 257],
}

const fn canonical() -> Canonical {
    let mut table = Canonical {
        first: [0; MAX_LENGTH + 1],
        count: [0; MAX_LENGTH + 1],
        start: [0; MAX_LENGTH + 1],
        symbols: [0; 257],
    };
    let mut next = 0;
    let mut length = MIN_LENGTH;
    while length <= MAX_LENGTH {
        table.start[length] = next as u16;
        let mut symbol = 0;
        while symbol < CODES.len() {
            if CODES[symbol].1 as usize == length {
                if table.count[length] == 0 {
                    table.first[length] = CODES[symbol].0;
                }
                table.count[length] += 1;
                table.symbols[next] = symbol as u16;
                next += 1;
            }
            symbol += 1;
        }
        length += 1;
    }
    table
}

static CANONICAL: Canonical = canonical();

/// Appends the decoding of `input` to `out`.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let table = &CANONICAL;
    let mut code: u32 = 0;
    let mut length = 0usize;
    for &octet in input {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((octet >> bit) & 1);
            length += 1;
            if length < MIN_LENGTH {
                continue;
            }
            // In canonical order a prefix of a longer code is numerically
            // above every code of its own length, so "is a code of this
            // length" is one range check.
            let offset = code.wrapping_sub(table.first[length]);
            if offset < u32::from(table.count[length]) {
                let symbol = table.symbols[usize::from(table.start[length]) + offset as usize];
                if symbol == EOS {
                    return Err(HpackError::HuffmanEos);
                }
                out.push(symbol as u8);
                code = 0;
                length = 0;
            } else if length == MAX_LENGTH {
                return Err(HpackError::HuffmanInvalid);
            }
        }
    }
    // What is left must be padding: at most 7 bits, all ones (a prefix of EOS).
    if length > 7 {
        return Err(HpackError::HuffmanPadding);
    }
    if code != (1u32 << length) - 1 {
        return Err(HpackError::HuffmanPadding);
    }
    Ok(())
}

/// How many octets `input` takes Huffman-encoded.
pub fn encoded_len(input: &[u8]) -> usize {
    let bits: usize = input
        .iter()
        .map(|&byte| usize::from(CODES[usize::from(byte)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends the Huffman encoding of `input`, padded with ones.
pub fn encode(input: &[u8], out: &mut Vec<u8>) {
    let mut pending: u64 = 0;
    let mut bits = 0u32;
    for &byte in input {
        let (code, length) = CODES[usize::from(byte)];
        pending = (pending << length) | u64::from(code);
        bits += u32::from(length);
        while bits >= 8 {
            bits -= 8;
            out.push((pending >> bits) as u8);
        }
        // Keep only the bits not yet written (at most 7).
        pending &= (1 << bits) - 1;
    }
    if bits > 0 {
        let padding = 8 - bits;
        out.push(((pending << padding) | ((1 << padding) - 1)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn the_table_is_canonical() {
        let mut order: Vec<usize> = (0..CODES.len()).collect();
        order.sort_by_key(|&symbol| (CODES[symbol].1, symbol));
        let mut expected = 0u32;
        let mut previous_length = CODES[order[0]].1;
        for (i, &symbol) in order.iter().enumerate() {
            let (code, length) = CODES[symbol];
            if i > 0 {
                expected = (expected + 1) << (length - previous_length);
            }
            assert_eq!(code, expected, "symbol {symbol}");
            previous_length = length;
        }
        assert_eq!(CODES[usize::from(EOS)], (0x3fff_ffff, 30));
    }

    #[test]
    fn rfc_appendix_c_strings_decode_and_encode() {
        for (encoded, plain) in [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
        ] {
            let mut out = Vec::new();
            decode(&hex(encoded), &mut out).unwrap();
            assert_eq!(out, plain.as_bytes());
            let mut back = Vec::new();
            encode(plain.as_bytes(), &mut back);
            assert_eq!(back, hex(encoded), "{plain}");
            assert_eq!(encoded_len(plain.as_bytes()), back.len());
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut encoded = Vec::new();
        encode(&all, &mut encoded);
        let mut decoded = Vec::new();
        decode(&encoded, &mut decoded).unwrap();
        assert_eq!(decoded, all);
    }

    #[test]
    fn bad_padding_and_eos_are_errors() {
        // 'a' is 00011 (5 bits); then 3 ones of padding is fine.
        let mut out = Vec::new();
        decode(&[0b0001_1111], &mut out).unwrap();
        assert_eq!(out, b"a");
        // Padding of zeros is not a prefix of EOS.
        assert_eq!(
            decode(&[0b0001_1000], &mut Vec::new()),
            Err(HpackError::HuffmanPadding)
        );
        // A whole octet of ones after a symbol is padding longer than 7 bits.
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut Vec::new()),
            Err(HpackError::HuffmanPadding)
        );
        // EOS itself (30 ones), padded with ones.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(HpackError::HuffmanEos)
        );
    }
}
