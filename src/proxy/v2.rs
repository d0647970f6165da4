//! Version 2: a binary header. 12 signature bytes, version and command,
//! family and transport, a 16-bit length, then the addresses and TLVs,
//! which must fill exactly that length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{crc32c::crc32c, Header, Parsed, ProxyError, SslTlv, Tlvs};

const FIXED: usize = 16;

const TYPE_ALPN: u8 = 0x01;
const TYPE_AUTHORITY: u8 = 0x02;
const TYPE_CRC32C: u8 = 0x03;
const TYPE_UNIQUE_ID: u8 = 0x05;
const TYPE_SSL: u8 = 0x20;
const SUBTYPE_SSL_VERSION: u8 = 0x21;
const SUBTYPE_SSL_CN: u8 = 0x22;
const SUBTYPE_SSL_CIPHER: u8 = 0x23;
const SUBTYPE_SSL_SIG_ALG: u8 = 0x24;
const SUBTYPE_SSL_KEY_ALG: u8 = 0x25;
const MAX_UNIQUE_ID: usize = 128;

pub fn parse(bytes: &[u8]) -> Parsed {
    if bytes.len() < FIXED {
        return Parsed::NeedMore;
    }
    let version = bytes[12] >> 4;
    let command = bytes[12] & 0x0f;
    if version != 2 {
        return Parsed::Invalid(ProxyError("v2 version nibble is not 2"));
    }
    let local = match command {
        0x0 => true,
        0x1 => false,
        _ => return Parsed::Invalid(ProxyError("v2 command is neither LOCAL nor PROXY")),
    };
    let family = bytes[13] >> 4;
    let transport = bytes[13] & 0x0f;
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let total = FIXED + length;
    // Check what can be checked early, but decide only on the whole header.
    if family > 3 || transport > 2 {
        return Parsed::Invalid(ProxyError("v2 address family or transport is unknown"));
    }
    if bytes.len() < total {
        return Parsed::NeedMore;
    }
    let body = &bytes[FIXED..total];
    if local {
        // LOCAL: the proxy speaks for itself (a health check). The length
        // is honoured; the block is not interpreted.
        return Parsed::Header(
            Box::new(Header {
                version: 2,
                ..Header::default()
            }),
            total,
        );
    }
    let (addresses, rest): ((Option<SocketAddr>, Option<SocketAddr>), &[u8]) =
        match (family, transport) {
            (0x0, 0x0) => ((None, None), body),
            (_, 0x2) => {
                return Parsed::Invalid(ProxyError("v2 DGRAM transport on a stream listener"))
            }
            (_, 0x0) | (0x0, _) => {
                return Parsed::Invalid(ProxyError("v2 family and transport disagree"))
            }
            (0x1, 0x1) => match body.get(..12) {
                Some(a) => {
                    let src = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                    let dst = Ipv4Addr::new(a[4], a[5], a[6], a[7]);
                    let (sport, dport) = ports(&a[8..12]);
                    (
                        (
                            Some(SocketAddr::new(IpAddr::V4(src), sport)),
                            Some(SocketAddr::new(IpAddr::V4(dst), dport)),
                        ),
                        &body[12..],
                    )
                }
                None => {
                    return Parsed::Invalid(ProxyError("v2 length too short for TCP4 addresses"))
                }
            },
            (0x2, 0x1) => match body.get(..36) {
                Some(a) => {
                    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&a[..16]).expect("16 bytes"));
                    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&a[16..32]).expect("16 bytes"));
                    let (sport, dport) = ports(&a[32..36]);
                    (
                        (
                            Some(SocketAddr::new(IpAddr::V6(src), sport)),
                            Some(SocketAddr::new(IpAddr::V6(dst), dport)),
                        ),
                        &body[36..],
                    )
                }
                None => {
                    return Parsed::Invalid(ProxyError("v2 length too short for TCP6 addresses"))
                }
            },
            // AF_UNIX: two 108-byte paths; no IP address to believe.
            (0x3, 0x1) => match body.get(216..) {
                Some(rest) => ((None, None), rest),
                None => {
                    return Parsed::Invalid(ProxyError("v2 length too short for UNIX addresses"))
                }
            },
            _ => return Parsed::Invalid(ProxyError("v2 address family or transport is unknown")),
        };
    let tlv_start = total - rest.len();
    match tlvs(rest, &bytes[..total], tlv_start) {
        Ok(tlvs) => Parsed::Header(
            Box::new(Header {
                version: 2,
                source: addresses.0,
                destination: addresses.1,
                tlvs,
            }),
            total,
        ),
        Err(err) => Parsed::Invalid(err),
    }
}

fn ports(bytes: &[u8]) -> (u16, u16) {
    (
        u16::from_be_bytes([bytes[0], bytes[1]]),
        u16::from_be_bytes([bytes[2], bytes[3]]),
    )
}

/// Walks `type, length, value` triples that must fill `bytes` exactly.
fn walk(
    bytes: &[u8],
    mut each: impl FnMut(u8, &[u8], usize) -> Result<(), ProxyError>,
) -> Result<(), ProxyError> {
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 3) else {
            return Err(ProxyError("v2 TLV header overruns the header length"));
        };
        let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let Some(value) = bytes.get(at + 3..at + 3 + len) else {
            return Err(ProxyError("v2 TLV value overruns the header length"));
        };
        each(head[0], value, at + 3)?;
        at += 3 + len;
    }
    Ok(())
}

fn text(value: &[u8], what: &'static str) -> Result<String, ProxyError> {
    String::from_utf8(value.to_vec()).map_err(|_| ProxyError(what))
}

fn tlvs(bytes: &[u8], header: &[u8], offset: usize) -> Result<Tlvs, ProxyError> {
    let mut tlvs = Tlvs::default();
    walk(bytes, |kind, value, at| {
        match kind {
            TYPE_ALPN => tlvs.alpn = Some(value.to_vec()),
            TYPE_AUTHORITY => tlvs.authority = Some(text(value, "v2 AUTHORITY TLV is not UTF-8")?),
            TYPE_CRC32C => {
                let Ok(sent) = <[u8; 4]>::try_from(value) else {
                    return Err(ProxyError("v2 CRC32C TLV is not 4 bytes"));
                };
                // The checksum covers the whole header with its own field
                // zeroed.
                let mut copy = header.to_vec();
                let field = offset + at;
                copy[field..field + 4].fill(0);
                if crc32c(&copy) != u32::from_be_bytes(sent) {
                    return Err(ProxyError("v2 CRC32C does not match"));
                }
            }
            TYPE_UNIQUE_ID => {
                if value.len() > MAX_UNIQUE_ID {
                    return Err(ProxyError("v2 UNIQUE_ID TLV is longer than 128 bytes"));
                }
                tlvs.unique_id = Some(value.to_vec());
            }
            TYPE_SSL => tlvs.ssl = Some(ssl(value)?),
            _ => {} // NOOP, NETNS and unknown types: skipped, as the spec says
        }
        Ok(())
    })?;
    Ok(tlvs)
}

fn ssl(value: &[u8]) -> Result<SslTlv, ProxyError> {
    if value.len() < 5 {
        return Err(ProxyError("v2 SSL TLV is shorter than 5 bytes"));
    }
    let mut ssl = SslTlv {
        client: value[0],
        verify: u32::from_be_bytes([value[1], value[2], value[3], value[4]]),
        ..SslTlv::default()
    };
    walk(&value[5..], |kind, sub, _| {
        let what = "v2 SSL sub-TLV is not UTF-8";
        match kind {
            SUBTYPE_SSL_VERSION => ssl.version = Some(text(sub, what)?),
            SUBTYPE_SSL_CN => ssl.cn = Some(text(sub, what)?),
            SUBTYPE_SSL_CIPHER => ssl.cipher = Some(text(sub, what)?),
            SUBTYPE_SSL_SIG_ALG => ssl.sig_alg = Some(text(sub, what)?),
            SUBTYPE_SSL_KEY_ALG => ssl.key_alg = Some(text(sub, what)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok(ssl)
}
