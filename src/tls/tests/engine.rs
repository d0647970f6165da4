//! The byte-driven engine under stress, in memory: odd deliveries, big
//! transfers, early data, orderly closes, garbage and renegotiation.

use std::io;

use crate::tls::test_support::*;
use crate::tls::{Progress, TlsVersion};

#[test]
fn forced_versions_are_negotiated() {
    let gate = three_domain_gate();
    for (version, name) in [
        (TlsVersion::Tls12, "TLSv1.2"),
        (TlsVersion::Tls13, "TLSv1.3"),
    ] {
        let pair = connected(
            &gate,
            &client_with_version(ClientCert::None, version),
            Some("localhost"),
        );
        assert_eq!(pair.server.version(), name);
        assert_eq!(pair.client.version(), name);
    }
}

#[test]
fn handshake_and_data_survive_one_byte_delivery() {
    let gate = three_domain_gate();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let tls = client_with_version(ClientCert::Dev, version);
        let mut pair = Pair::new(&gate, &tls, Some("mtls.localhost"));
        let (c, s) = pair.run_with_chunk(1);
        c.unwrap();
        s.unwrap();
        assert!(pair.server_progress.handshake_complete);
        pair.client.send(b"one byte at a time").unwrap();
        pair.server.send(b"and back").unwrap();
        let (c, s) = pair.run_with_chunk(1);
        c.unwrap();
        s.unwrap();
        assert_eq!(pair.server_plain, b"one byte at a time");
        assert_eq!(pair.client_plain, b"and back");
    }
}

#[test]
fn a_record_split_in_two_at_every_point_decrypts() {
    let gate = three_domain_gate();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let mut pair = connected(
            &gate,
            &client_with_version(ClientCert::None, version),
            Some("localhost"),
        );
        let message = b"a record split at every boundary";
        pair.client.send(message).unwrap();
        let record_len = pair.client.outgoing().len();
        assert!(record_len > message.len());
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        assert_eq!(pair.server_plain, message);
        // Equal plaintexts give equal-length records: record i is split
        // at byte i, so one connection covers every split point.
        for split in 0..=record_len {
            pair.client.send(message).unwrap();
            let record = pair.client.outgoing().to_vec();
            pair.client.consume_outgoing(record.len());
            assert_eq!(record.len(), record_len);
            let mut plain = Vec::new();
            pair.server.receive(&record[..split]);
            pair.server.process(&mut plain).unwrap();
            if split < record_len {
                assert!(plain.is_empty(), "{version:?} split {split}");
            }
            pair.server.receive(&record[split..]);
            pair.server.process(&mut plain).unwrap();
            assert_eq!(plain, message, "{version:?} split {split}");
        }
    }
}

#[test]
fn fill_incoming_reads_straight_into_the_buffer() {
    let gate = three_domain_gate();
    let mut pair = connected(&gate, &client(ClientCert::None), Some("localhost"));
    pair.client.send(b"via fill_incoming").unwrap();
    let wire = pair.client.outgoing().to_vec();
    pair.client.consume_outgoing(wire.len());
    let mut offered = 0;
    let n = pair
        .server
        .fill_incoming(|buf| {
            offered = buf.len();
            buf[..wire.len()].copy_from_slice(&wire);
            Ok(wire.len())
        })
        .unwrap();
    assert_eq!(n, wire.len());
    assert!(offered >= (1 << 14) + 5);
    let would_block = pair
        .server
        .fill_incoming(|_| Err(io::ErrorKind::WouldBlock.into()));
    assert_eq!(would_block.unwrap_err().kind(), io::ErrorKind::WouldBlock);
    let mut plain = Vec::new();
    pair.server.process(&mut plain).unwrap();
    assert_eq!(plain, b"via fill_incoming");
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn four_mebibytes_each_way_arrive_intact() {
    let gate = three_domain_gate();
    let mut pair = connected(&gate, &client(ClientCert::None), Some("localhost"));
    let up = pattern(4 << 20, 1);
    let down = pattern(4 << 20, 2);
    pair.client.send(&up).unwrap();
    pair.server.send(&down).unwrap();
    // Realistic socket-sized pieces.
    let (c, s) = pair.run_with_chunk(64 * 1024);
    c.unwrap();
    s.unwrap();
    assert!(pair.server_plain == up, "upload corrupted");
    assert!(pair.client_plain == down, "download corrupted");
}

#[test]
fn data_sent_before_the_handshake_is_flushed_after_it() {
    let gate = three_domain_gate();
    let mut pair = Pair::new(&gate, &client(ClientCert::None), Some("localhost"));
    pair.client.send(b"early request").unwrap();
    pair.server.send(b"greeting").unwrap();
    let (c, s) = pair.run();
    c.unwrap();
    s.unwrap();
    assert_eq!(pair.server_plain, b"early request");
    assert_eq!(pair.client_plain, b"greeting");
}

#[test]
fn close_notify_is_seen_from_either_side() {
    let gate = three_domain_gate();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let tls = client_with_version(ClientCert::None, version);
        let mut pair = connected(&gate, &tls, Some("localhost"));
        pair.client.send(b"last words").unwrap();
        pair.client.close();
        assert_eq!(pair.client.send(b"more").unwrap_err().reason(), "closed");
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        assert_eq!(pair.server_plain, b"last words");
        assert!(pair.server_progress.peer_closed && pair.server.peer_closed());
        assert!(!pair.client_progress.peer_closed);

        let mut pair = connected(&gate, &tls, Some("localhost"));
        pair.server.close();
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        assert!(pair.client_progress.peer_closed, "{version:?}");
    }
}

#[test]
fn garbage_after_a_plausible_header_is_refused_or_a_clean_error() {
    let gate = three_domain_gate();
    let garbage_bodies: [&[u8]; 4] = [
        &[0xff; 64],
        &[0x00; 64],
        b"\x01\x00\x00\x3cGET / HTTP/1.1\r\nHost: localhost\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxx",
        &[0x01, 0xff, 0xff, 0xff, 0x03, 0x03, 0x00, 0x00],
    ];
    for body in garbage_bodies {
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend_from_slice(&(body.len() as u16).to_be_bytes());
        record.extend_from_slice(body);
        let refusal = gate.accept(&record).expect_err("garbage is refused");
        assert!(
            [
                "not_client_hello",
                "client_hello_malformed",
                "client_hello_fragmented"
            ]
            .contains(&refusal.error().reason()),
            "{refusal}"
        );
    }
    // Pseudo-random garbage of many lengths, as one held record.
    for len in [1usize, 5, 17, 100, 1000, 5000] {
        let body = pattern(len, len as u32);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend_from_slice(&(body.len() as u16).to_be_bytes());
        record.extend_from_slice(&body);
        match gate.accept(&record) {
            Err(refusal) => assert!(!refusal.error().reason().is_empty()),
            // Parsed by luck: OpenSSL must then refuse it, never panic.
            Ok(mut server) => {
                let result: Result<Progress, _> = server.process(&mut Vec::new());
                assert!(result.is_err() || !result.unwrap().handshake_complete);
            }
        }
    }
}

#[test]
fn an_oversized_record_after_the_handshake_is_a_bad_record() {
    let gate = three_domain_gate();
    // An application-data header claiming more than a record may hold.
    let mut pair = connected(&gate, &client(ClientCert::None), Some("localhost"));
    pair.server.receive(&[0x17, 0x03, 0x03, 0xff, 0xff]);
    let error = pair.server.process(&mut Vec::new()).unwrap_err();
    assert_eq!(error.reason(), "bad_record", "{error}");
    assert!(!pair.server.outgoing().is_empty(), "an alert is queued");
    assert_eq!(
        gate.counters()
            .failures(crate::tls::TlsErrorKind::BadRecord),
        1
    );
}

#[test]
fn renegotiation_is_refused() {
    extern "C" {
        fn SSL_renegotiate(ssl: *mut openssl_sys::SSL) -> std::os::raw::c_int;
    }
    let gate = three_domain_gate();
    let tls = client_with_version(ClientCert::None, TlsVersion::Tls12);
    let mut pair = connected(&gate, &tls, Some("localhost"));
    let ssl: *const openssl::ssl::SslRef = pair.client.ssl();
    // SAFETY: an `&SslRef` is the `SSL*` itself (the openssl crate's
    // foreign-type references are the raw pointer), the SSL is alive for
    // the call, and SSL_renegotiate only sets a flag on a TLS 1.2 client
    // so that its next I/O sends a new ClientHello.
    let marked = unsafe { SSL_renegotiate(ssl as *mut openssl_sys::SSL) };
    assert_eq!(marked, 1);
    // The client's next write starts the renegotiation.
    pair.client.send(b"x").unwrap();
    let (client_result, server_result) = pair.run();
    // The server never renegotiates: it refuses (no_renegotiation
    // warning), which the OpenSSL client treats as fatal.
    // "no renegotiation" is the server's refusal as the client saw it.
    let refusal = client_result.expect_err("client should see the refusal");
    assert!(refusal.message().contains("no renegotiation"), "{refusal}");
    // The client then aborts, so the server sees its fatal alert.
    if let Err(error) = server_result {
        assert!(error.message().contains("alert"), "{error}");
    }
    assert!(pair.server_plain.is_empty());
}
