//! HPACK integers (RFC 7541 §5.1): an N-bit prefix, then 7 bits per octet.
//!
//! A value that fits in the prefix takes no further octets; a larger one
//! fills the prefix with ones and continues in octets whose high bit says
//! "more follows". The one idea: **a peer chooses how many octets to send**,
//! so the decoder bounds both the octet count and the value, and never
//! trusts that the octets it needs are actually there.

use super::HpackError;

/// The largest integer the decoder accepts. Every HPACK integer here is a
/// length, an index or a table size, all far below this; refusing larger
/// ones keeps arithmetic on them free of overflow.
pub const MAX_INTEGER: usize = (1 << 24) - 1;

/// Decodes an integer whose prefix is the low `prefix_bits` of `input[0]`.
/// Returns the value and the octets used.
pub fn decode(input: &[u8], prefix_bits: u8) -> Result<(usize, usize), HpackError> {
    let first = *input.first().ok_or(HpackError::Truncated)?;
    let mask = (1usize << prefix_bits) - 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok((value, 1));
    }
    let mut shift = 0u32;
    for (offset, &octet) in input.iter().enumerate().skip(1) {
        value += usize::from(octet & 0x7f) << shift;
        if value > MAX_INTEGER {
            return Err(HpackError::IntegerTooLarge);
        }
        if octet & 0x80 == 0 {
            return Ok((value, offset + 1));
        }
        shift += 7;
        if shift > 28 {
            // Zero-valued continuation octets never grow the value; stop
            // them by count (and before the shift itself could overflow).
            return Err(HpackError::IntegerTooLarge);
        }
    }
    Err(HpackError::Truncated)
}

/// Appends `value` with `prefix_bits` of prefix; `high_bits` are the
/// representation's flag bits above the prefix in the first octet.
pub fn encode(value: usize, prefix_bits: u8, high_bits: u8, out: &mut Vec<u8>) {
    let mask = (1usize << prefix_bits) - 1;
    if value < mask {
        // `value < mask <= 255`, so it fits in the first octet.
        out.push(high_bits | value as u8);
        return;
    }
    out.push(high_bits | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_examples_encode_and_decode() {
        // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337 in a 5-bit prefix; C.1.3: 42 at an octet boundary.
        for (value, prefix, bytes) in [
            (10, 5, &[0x0a][..]),
            (1337, 5, &[0x1f, 0x9a, 0x0a][..]),
            (42, 8, &[0x2a][..]),
        ] {
            let mut out = Vec::new();
            encode(value, prefix, 0, &mut out);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(decode(bytes, prefix), Ok((value, bytes.len())), "{value}");
        }
    }

    #[test]
    fn truncated_and_oversized_integers_are_errors_not_panics() {
        assert_eq!(decode(&[], 5), Err(HpackError::Truncated));
        assert_eq!(decode(&[0x1f], 5), Err(HpackError::Truncated));
        assert_eq!(decode(&[0x1f, 0x80, 0x80], 5), Err(HpackError::Truncated));
        assert_eq!(
            decode(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], 5),
            Err(HpackError::IntegerTooLarge)
        );
        // Endless continuation octets stop at the value bound, not at the end of input.
        let endless = [
            0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(decode(&endless, 7), Err(HpackError::IntegerTooLarge));
        let mut zeros = vec![0x1f];
        zeros.extend([0x80; 100]);
        assert_eq!(decode(&zeros, 5), Err(HpackError::IntegerTooLarge));
    }

    #[test]
    fn every_value_round_trips_at_every_prefix() {
        for prefix in 1..=8 {
            for value in (0..5000).chain([MAX_INTEGER - 1, MAX_INTEGER]) {
                let mut out = Vec::new();
                encode(value, prefix, 0, &mut out);
                assert_eq!(decode(&out, prefix), Ok((value, out.len())));
            }
        }
    }
}
