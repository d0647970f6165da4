//! The parser against the specification's examples and against every way
//! a header can be wrong, whole and byte by byte.

use super::*;

fn v2(command: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command);
    h.push(fam);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn tcp4_body(tlvs: &[u8]) -> Vec<u8> {
    let mut b = vec![192, 0, 2, 1, 198, 51, 100, 2];
    b.extend_from_slice(&56324u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b.extend_from_slice(tlvs);
    b
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&(value.len() as u16).to_be_bytes());
    t.extend_from_slice(value);
    t
}

fn invalid(bytes: &[u8], versions: Versions) -> &'static str {
    match parse(bytes, versions) {
        Parsed::Invalid(err) => err.0,
        other => panic!("expected invalid, got {other:?}"),
    }
}

/// Every strict prefix of a valid header needs more; the whole parses.
fn parses_only_whole(bytes: &[u8], versions: Versions) -> (Header, usize) {
    for n in 0..bytes.len() {
        assert_eq!(
            parse(&bytes[..n], versions),
            Parsed::NeedMore,
            "prefix of {n} bytes"
        );
    }
    match parse(bytes, versions) {
        Parsed::Header(h, n) => (*h, n),
        other => panic!("{other:?}"),
    }
}

#[test]
fn v1_tcp4_tcp6_and_unknown() {
    let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
    let (h, n) = parses_only_whole(&line[..line.len() - 5], Versions::Any);
    assert_eq!(n, line.len() - 5);
    assert_eq!(h.version, 1);
    assert_eq!(h.source, Some("192.0.2.1:56324".parse().unwrap()));
    assert_eq!(h.destination, Some("198.51.100.2:443".parse().unwrap()));
    assert!(matches!(parse(line, Versions::V1), Parsed::Header(_, 45)));
    let line = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
    let (h, _) = parses_only_whole(line, Versions::V1);
    assert_eq!(h.source, Some("[2001:db8::1]:1".parse().unwrap()));
    let (h, n) = parses_only_whole(b"PROXY UNKNOWN ffff:f::1 whatever\r\n", Versions::Any);
    assert_eq!((h.source, n), (None, 34));
    let (h, _) = parses_only_whole(b"PROXY UNKNOWN\r\n", Versions::Any);
    assert_eq!(h.source, None);
}

#[test]
fn v1_is_strict() {
    let cases: &[&[u8]] = &[
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\rX",
        b"PROXY TCP4  192.0.2.1 198.51.100.2 56324 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
        b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 065535 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n",
        b"PROXY TCP4 192.0.2.01 198.51.100.2 1 443\r\n",
        b"PROXY UDP4 192.0.2.1 198.51.100.2 1 443\r\n",
        b"PROXY UNKNOWNX\r\n",
    ];
    for case in cases {
        invalid(case, Versions::Any);
    }
    // A line without CRLF within 107 bytes, however it continues.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(106, b'a');
    assert_eq!(parse(&long, Versions::V1), Parsed::NeedMore);
    long.push(b'\r');
    assert!(invalid(&long, Versions::V1).contains("107"));
    long.push(b'\n');
    assert!(invalid(&long, Versions::V1).contains("107"));
    let mut fits = b"PROXY UNKNOWN ".to_vec();
    fits.resize(105, b'a');
    fits.extend_from_slice(b"\r\n");
    assert!(matches!(parse(&fits, Versions::V1), Parsed::Header(_, 107)));
}

#[test]
fn v2_tcp4_with_tlvs() {
    let mut ssl = vec![0x05, 0, 0, 0, 0];
    ssl.extend(tlv(0x21, b"TLSv1.3"));
    ssl.extend(tlv(0x22, b"client.example"));
    let mut tlvs = tlv(0x01, b"h2");
    tlvs.extend(tlv(0x02, b"example.com"));
    tlvs.extend(tlv(0x05, b"id-1"));
    tlvs.extend(tlv(0x20, &ssl));
    tlvs.extend(tlv(0x04, b"\0\0")); // NOOP
    tlvs.extend(tlv(0xe0, b"custom")); // unknown: skipped
    let header = v2(1, 0x11, &tcp4_body(&tlvs));
    let (h, n) = parses_only_whole(&header, Versions::V2);
    assert_eq!(n, header.len());
    assert_eq!(h.source, Some("192.0.2.1:56324".parse().unwrap()));
    assert_eq!(h.tlvs.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h.tlvs.authority.as_deref(), Some("example.com"));
    assert_eq!(h.tlvs.unique_id.as_deref(), Some(&b"id-1"[..]));
    let ssl = h.tlvs.ssl.unwrap();
    assert!(ssl.is_tls() && ssl.client_cert_verified());
    assert_eq!(ssl.version.as_deref(), Some("TLSv1.3"));
    assert_eq!(ssl.cn.as_deref(), Some("client.example"));
}

#[test]
fn v2_tcp6_local_and_unspec() {
    let mut body = vec![0u8; 36];
    body[15] = 1; // ::1
    body[31] = 2;
    body[32..34].copy_from_slice(&1234u16.to_be_bytes());
    let (h, _) = parses_only_whole(&v2(1, 0x21, &body), Versions::Any);
    assert_eq!(h.source, Some("[::1]:1234".parse().unwrap()));
    // LOCAL: the length is honoured even with an address block inside.
    let local = v2(0, 0x11, &tcp4_body(&[]));
    let mut stream = local.clone();
    stream.extend_from_slice(b"GET /");
    match parse(&stream, Versions::V2) {
        Parsed::Header(h, n) => assert_eq!((h.source, n), (None, local.len())),
        other => panic!("{other:?}"),
    }
    let (h, _) = parses_only_whole(&v2(1, 0x00, b""), Versions::V2);
    assert_eq!(h.source, None);
    let (h, _) = parses_only_whole(&v2(1, 0x31, &[0; 216]), Versions::V2);
    assert_eq!(h.source, None, "a Unix source is no IP address");
}

#[test]
fn v2_is_strict() {
    let mut bad_version = v2(1, 0x11, &tcp4_body(&[]));
    bad_version[12] = 0x11;
    assert!(invalid(&bad_version, Versions::V2).contains("version"));
    let mut bad_command = v2(1, 0x11, &tcp4_body(&[]));
    bad_command[12] = 0x22;
    assert!(invalid(&bad_command, Versions::V2).contains("command"));
    assert!(invalid(&v2(1, 0x12, &tcp4_body(&[])), Versions::V2).contains("DGRAM"));
    assert!(invalid(&v2(1, 0x41, &tcp4_body(&[])), Versions::V2).contains("unknown"));
    assert!(invalid(&v2(1, 0x10, &tcp4_body(&[])), Versions::V2).contains("disagree"));
    assert!(invalid(&v2(1, 0x11, &[0; 11]), Versions::V2).contains("too short"));
    assert!(invalid(&v2(1, 0x21, &[0; 35]), Versions::V2).contains("too short"));
    let overrun = tcp4_body(&[0x02, 0, 9, b'a']);
    assert!(invalid(&v2(1, 0x11, &overrun), Versions::V2).contains("overruns"));
    let stub = tcp4_body(&[0x02, 0]);
    assert!(invalid(&v2(1, 0x11, &stub), Versions::V2).contains("overruns"));
    let long_id = tcp4_body(&tlv(0x05, &[b'x'; 129]));
    assert!(invalid(&v2(1, 0x11, &long_id), Versions::V2).contains("128"));
    let bad_ssl = tcp4_body(&tlv(0x20, &[1, 0, 0]));
    assert!(invalid(&v2(1, 0x11, &bad_ssl), Versions::V2).contains("SSL"));
    let bad_authority = tcp4_body(&tlv(0x02, &[0xff]));
    assert!(invalid(&v2(1, 0x11, &bad_authority), Versions::V2).contains("UTF-8"));
    // A length larger than what follows is never processed: more is needed.
    let mut truncated = v2(1, 0x11, &tcp4_body(&[]));
    truncated[15] += 10;
    assert_eq!(parse(&truncated, Versions::V2), Parsed::NeedMore);
    // The wrong version for the listener.
    assert!(invalid(&v2(1, 0x11, &tcp4_body(&[])), Versions::V1).contains("only v1"));
    assert!(invalid(b"PROXY UNKNOWN\r\n", Versions::V2).contains("only v2"));
    assert!(invalid(b"GET / HTTP/1.1\r\n", Versions::Any).contains("no PROXY"));
}

#[test]
fn v2_crc32c_must_match() {
    let mut body = tcp4_body(&tlv(0x03, &[0, 0, 0, 0]));
    let header = v2(1, 0x11, &body);
    let crc = crc32c::crc32c(&header);
    let at = body.len() - 4;
    body[at..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        parse(&v2(1, 0x11, &body), Versions::V2),
        Parsed::Header(..)
    ));
    body[at] ^= 1;
    assert!(invalid(&v2(1, 0x11, &body), Versions::V2).contains("CRC32C"));
}

#[test]
fn signatures_are_recognised_from_their_first_byte() {
    assert_eq!(signature(b""), Signature::Partial);
    assert_eq!(signature(b"PRO"), Signature::Partial);
    assert_eq!(signature(b"PROXY "), Signature::V1);
    assert_eq!(signature(b"\r\n\r\n\0"), Signature::Partial);
    assert_eq!(signature(&V2_SIGNATURE), Signature::V2);
    assert_eq!(signature(b"POST /"), Signature::No);
    assert_eq!(signature(b"\x16\x03\x01"), Signature::No);
}
