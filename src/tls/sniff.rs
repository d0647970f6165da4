//! Plaintext or TLS? Decided from the first bytes a client sends.
//!
//! Every connection on the shared port starts unclassified. A TLS client
//! speaks first with a handshake record carrying its ClientHello, whose
//! five-byte header is tightly constrained; a plaintext protocol (HTTP, the
//! chat service's lines) almost never produces it. The one idea: **classify as
//! soon as one byte rules TLS out, and wait only while every byte seen so far
//! is still exactly what a ClientHello would start with.** That makes the
//! answer a pure function of the prefix that never changes its mind as more
//! bytes arrive, so it is the same however the network splits the stream.
//!
//! What is checked, byte by byte:
//!
//! | offset | meaning | TLS requires |
//! |---|---|---|
//! | 0 | record content type | `0x16` (handshake) |
//! | 1 | record major version | `0x03` |
//! | 2 | record minor version | `0x00..=0x04` (SSL 3.0 .. TLS 1.3 values) |
//! | 3–4 | record length | `1..=16384` (RFC 8446 §5.1 limit for plaintext records) |
//!
//! The handshake message type (byte 5) is deliberately not looked at: a
//! handshake record that does not carry a ClientHello is a TLS client
//! misbehaving, not plaintext, and deserves a TLS alert. After the header
//! the engine holds the first record until it is whole
//! ([`first_record_len`]), then hands it to the gate
//! ([`TlsGate::accept`](super::TlsGate::accept)), which judges the rest.

/// The verdict on a connection's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstBytes {
    /// Every byte so far fits a TLS ClientHello; read more before deciding.
    NeedMore,
    /// The bytes are the start of a TLS handshake record.
    Tls,
    /// Some byte rules TLS out: treat the connection as plaintext.
    Plain,
}

/// How many bytes [`classify`] needs, at most, to decide.
pub const DECISIVE_PREFIX: usize = 5;

const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
const MAJOR_VERSION: u8 = 0x03;
const MAX_MINOR_VERSION: u8 = 0x04;
/// The largest TLS plaintext record (2^14 bytes); a ClientHello record is
/// plaintext, so a larger announced length cannot be TLS.
const MAX_RECORD_LENGTH: usize = 1 << 14;

/// Classifies a connection from the bytes received so far.
///
/// Looks at no more than [`DECISIVE_PREFIX`] bytes. Returns
/// [`FirstBytes::NeedMore`] only while `prefix` is a proper prefix of
/// something a TLS client could send; for an empty prefix that is always the
/// case.
pub fn classify(prefix: &[u8]) -> FirstBytes {
    // Each byte is judged using only itself and the bytes before it, and can
    // only rule TLS out, so a verdict never depends on bytes after the one
    // that produced it.
    for (offset, &byte) in prefix.iter().enumerate().take(DECISIVE_PREFIX) {
        let fits = match offset {
            0 => byte == CONTENT_TYPE_HANDSHAKE,
            1 => byte == MAJOR_VERSION,
            2 => byte <= MAX_MINOR_VERSION,
            // The length's high byte alone already excludes most values.
            3 => usize::from(byte) <= MAX_RECORD_LENGTH >> 8,
            _ => {
                let length = usize::from(prefix[3]) << 8 | usize::from(byte);
                length != 0 && length <= MAX_RECORD_LENGTH
            }
        };
        if !fits {
            return FirstBytes::Plain;
        }
    }
    if prefix.len() >= DECISIVE_PREFIX {
        FirstBytes::Tls
    } else {
        FirstBytes::NeedMore
    }
}

/// The size on the wire (header included) of the record `prefix` starts,
/// once its 5-byte header has arrived.
///
/// The event loop keeps a connection's first record to itself until all of
/// it is in, and only then creates a TLS session: OpenSSL allocates a
/// record-sized read buffer as soon as it sees a header, so a client that
/// sends half a ClientHello and stalls would otherwise cost tens of KiB until
/// the handshake timeout, instead of the few bytes it sent.
pub fn first_record_len(prefix: &[u8]) -> Option<usize> {
    match prefix {
        [_, _, _, high, low, ..] => Some(5 + (usize::from(*high) << 8 | usize::from(*low))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of a real ClientHello (captured from `openssl s_client`),
    /// long enough to cover every byte `classify` looks at and more.
    const CLIENT_HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x01, 0x2c, 0x01, 0x00, 0x01, 0x28, 0x03, 0x03, 0x5e, 0x1a, 0x9c, 0x00,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    ];

    /// Whether every prefix of `bytes` agrees with the verdict on all of it:
    /// `NeedMore` until the deciding byte, then the same verdict forever.
    fn assert_prefix_consistent(bytes: &[u8]) -> FirstBytes {
        let full = classify(bytes);
        let mut decided = false;
        for end in 0..=bytes.len() {
            let verdict = classify(&bytes[..end]);
            if decided {
                assert_eq!(verdict, full, "prefix of {end} bytes changed its mind");
            } else if verdict != FirstBytes::NeedMore {
                assert_eq!(verdict, full, "prefix of {end} bytes decided differently");
                decided = true;
            }
        }
        full
    }

    #[test]
    fn client_hello_is_tls_for_every_prefix() {
        assert_eq!(assert_prefix_consistent(CLIENT_HELLO), FirstBytes::Tls);
        for end in 0..DECISIVE_PREFIX {
            assert_eq!(classify(&CLIENT_HELLO[..end]), FirstBytes::NeedMore);
        }
    }

    #[test]
    fn http_request_is_plain_from_its_first_byte() {
        let request = b"GET / HTTP/1.1\r\n";
        assert_eq!(assert_prefix_consistent(request), FirstBytes::Plain);
        assert_eq!(classify(&request[..1]), FirstBytes::Plain);
    }

    #[test]
    fn only_the_handshake_content_type_can_start_tls() {
        for first in 0..=255u8 {
            let expected = if first == 0x16 {
                FirstBytes::NeedMore
            } else {
                FirstBytes::Plain
            };
            assert_eq!(classify(&[first]), expected, "first byte {first:#04x}");
            let mut hello = CLIENT_HELLO.to_vec();
            hello[0] = first;
            let verdict = assert_prefix_consistent(&hello);
            let expected = if first == 0x16 {
                FirstBytes::Tls
            } else {
                FirstBytes::Plain
            };
            assert_eq!(verdict, expected, "first byte {first:#04x}");
        }
    }

    #[test]
    fn each_header_field_can_rule_tls_out() {
        let with = |offset: usize, value: u8| {
            let mut hello = CLIENT_HELLO.to_vec();
            hello[offset] = value;
            assert_prefix_consistent(&hello)
        };
        assert_eq!(with(1, 0x02), FirstBytes::Plain);
        assert_eq!(with(2, 0x05), FirstBytes::Plain);
        assert_eq!(with(2, 0x00), FirstBytes::Tls);
        assert_eq!(with(2, 0x04), FirstBytes::Tls);
        assert_eq!(with(3, 0x41), FirstBytes::Plain);
        // Any handshake message is TLS; the gate refuses non-ClientHellos.
        assert_eq!(with(5, 0x02), FirstBytes::Tls);
        // Length 0x4000 is the maximum; 0x4001 and 0 are not TLS.
        assert_eq!(
            assert_prefix_consistent(&[0x16, 0x03, 0x01, 0x40, 0x00]),
            FirstBytes::Tls
        );
        assert_eq!(
            assert_prefix_consistent(&[0x16, 0x03, 0x01, 0x40, 0x01]),
            FirstBytes::Plain
        );
        assert_eq!(
            assert_prefix_consistent(&[0x16, 0x03, 0x01, 0x00, 0x00]),
            FirstBytes::Plain
        );
    }

    #[test]
    fn every_two_byte_start_decides_consistently() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let mut bytes = CLIENT_HELLO.to_vec();
                bytes[1] = a;
                bytes[2] = b;
                let verdict = assert_prefix_consistent(&bytes);
                let tls = a == 0x03 && b <= 0x04;
                assert_eq!(verdict == FirstBytes::Tls, tls, "{a:#04x} {b:#04x}");
            }
        }
    }

    #[test]
    fn the_first_record_length_comes_from_its_header() {
        assert_eq!(first_record_len(&CLIENT_HELLO[..4]), None);
        assert_eq!(first_record_len(&CLIENT_HELLO[..5]), Some(5 + 0x012c));
        assert_eq!(first_record_len(CLIENT_HELLO), Some(5 + 0x012c));
    }
}
