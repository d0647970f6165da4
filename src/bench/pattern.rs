//! The bytes echo clients send: a deterministic stream per client, so that
//! every echoed byte can be checked without storing what was sent.
//!
//! The one idea: **make the expected byte a function of (client, offset)**.
//! A client then needs no copy of its output to verify its input — it
//! regenerates the bytes at the offset it has reached — so verification
//! costs no allocation and no memory however many bytes are in flight. The
//! stream is pseudo-random (a SplitMix64 mix of 8-byte block numbers), so a
//! flipped, lost, duplicated or reordered byte shows up as a mismatch.

/// One client's byte stream.
#[derive(Clone, Copy, Debug)]
pub struct Pattern {
    seed: u64,
}

impl Pattern {
    pub fn new(client: u64) -> Pattern {
        Pattern {
            seed: client.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x5EED,
        }
    }

    /// The 8 bytes at offsets `8 * block .. 8 * block + 8`.
    #[inline]
    fn block(&self, block: u64) -> [u8; 8] {
        // SplitMix64's finaliser: cheap, and every input bit moves every
        // output bit, so neighbouring blocks look unrelated.
        let mut z = block
            .wrapping_add(self.seed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_le_bytes()
    }

    /// The byte at `offset`.
    pub fn byte(&self, offset: u64) -> u8 {
        self.block(offset / 8)[(offset % 8) as usize]
    }

    /// Writes the stream's bytes from `offset` into `out`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let mut offset = offset;
        let mut rest = out;
        // Unaligned head, byte by byte; then whole blocks; then the tail.
        while offset % 8 != 0 && !rest.is_empty() {
            rest[0] = self.byte(offset);
            rest = &mut rest[1..];
            offset += 1;
        }
        let mut blocks = rest.chunks_exact_mut(8);
        for chunk in &mut blocks {
            chunk.copy_from_slice(&self.block(offset / 8));
            offset += 8;
        }
        for byte in blocks.into_remainder() {
            *byte = self.byte(offset);
            offset += 1;
        }
    }

    /// The index in `data` of the first byte that differs from the stream at
    /// `offset`, or `None` when all match.
    pub fn first_mismatch(&self, offset: u64, data: &[u8]) -> Option<usize> {
        let mut index = 0;
        let mut offset = offset;
        while offset % 8 != 0 && index < data.len() {
            if data[index] != self.byte(offset) {
                return Some(index);
            }
            index += 1;
            offset += 1;
        }
        let mut blocks = data[index..].chunks_exact(8);
        for chunk in &mut blocks {
            let expected = self.block(offset / 8);
            if chunk != expected {
                let within = chunk.iter().zip(expected).position(|(a, b)| *a != b);
                return Some(index + within.unwrap_or(0));
            }
            index += 8;
            offset += 8;
        }
        for &byte in blocks.remainder() {
            if byte != self.byte(offset) {
                return Some(index);
            }
            index += 1;
            offset += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_check_agree_at_every_alignment() {
        let pattern = Pattern::new(7);
        for start in 0..20u64 {
            for len in [0usize, 1, 7, 8, 9, 31, 64, 100] {
                let mut buf = vec![0; len];
                pattern.fill(start, &mut buf);
                for (i, &b) in buf.iter().enumerate() {
                    assert_eq!(b, pattern.byte(start + i as u64));
                }
                assert_eq!(pattern.first_mismatch(start, &buf), None);
                if len > 0 {
                    let flip = len / 2;
                    buf[flip] ^= 1;
                    assert_eq!(pattern.first_mismatch(start, &buf), Some(flip));
                }
            }
        }
    }

    #[test]
    fn clients_and_shifts_are_distinguished() {
        let mut a = vec![0; 64];
        let mut b = vec![0; 64];
        Pattern::new(1).fill(0, &mut a);
        Pattern::new(2).fill(0, &mut b);
        assert_ne!(a, b);
        // A stream one byte late (a lost byte) fails at once.
        assert!(Pattern::new(1).first_mismatch(1, &a[..63]).is_some());
    }
}
