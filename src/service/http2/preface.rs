//! Is this plaintext connection HTTP/2 with prior knowledge (h2c)? Decided
//! from its first bytes, the way `tls::sniff` decides TLS.
//!
//! An HTTP/2 client that knows the server speaks HTTP/2 opens with the
//! 24-octet connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113
//! §3.4), which was chosen so that an HTTP/1.1 server sees a request it will
//! refuse. The one idea: **wait only while every byte so far is exactly the
//! preface's**; the first byte that differs decides HTTP/1.1 (`G` of `GET`
//! decides at once, `POST` at its second byte), all 24 decide HTTP/2. The
//! verdict is a pure function of the prefix that never changes its mind as
//! more bytes arrive, whatever way the network splits them.

/// The client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The verdict on a plaintext connection's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// Every byte so far is the preface's; read more.
    NeedMore,
    /// The whole preface: HTTP/2.
    Http2,
    /// Anything else: HTTP/1.1.
    Http1,
}

/// Classifies a plaintext connection from the bytes received so far.
pub fn classify(prefix: &[u8]) -> Opening {
    let compared = prefix.len().min(PREFACE.len());
    if prefix[..compared] != PREFACE[..compared] {
        Opening::Http1
    } else if compared == PREFACE.len() {
        Opening::Http2
    } else {
        Opening::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict on every prefix agrees with the verdict on the whole.
    fn assert_prefix_consistent(bytes: &[u8]) -> Opening {
        let full = classify(bytes);
        let mut decided = false;
        for end in 0..=bytes.len() {
            let verdict = classify(&bytes[..end]);
            if decided {
                assert_eq!(verdict, full, "prefix of {end} changed its mind");
            } else if verdict != Opening::NeedMore {
                assert_eq!(verdict, full, "prefix of {end} decided differently");
                decided = true;
            }
        }
        full
    }

    #[test]
    fn the_preface_is_http2_and_its_prefixes_wait() {
        let mut with_settings = PREFACE.to_vec();
        with_settings.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(assert_prefix_consistent(&with_settings), Opening::Http2);
        for end in 0..PREFACE.len() {
            assert_eq!(classify(&PREFACE[..end]), Opening::NeedMore, "{end}");
        }
    }

    #[test]
    fn http1_requests_decide_at_their_first_differing_byte() {
        assert_eq!(classify(b"G"), Opening::Http1);
        assert_eq!(classify(b"PO"), Opening::Http1);
        assert_eq!(classify(b"PU"), Opening::Http1);
        // An HTTP/1.1 request with the method PRI is still HTTP/1.1.
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n"), Opening::Http1);
        for request in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        ] {
            assert_eq!(assert_prefix_consistent(request), Opening::Http1);
        }
    }

    #[test]
    fn any_single_wrong_byte_means_http1() {
        for at in 0..PREFACE.len() {
            let mut bytes = PREFACE.to_vec();
            bytes[at] ^= 0x20;
            assert_eq!(assert_prefix_consistent(&bytes), Opening::Http1, "{at}");
        }
    }
}
