//! The echo service over plaintext, TLS and mutual TLS on the same port, for
//! every driver that runs here: the same bytes come back whatever the transport,
//! with all three connections open and interleaved.

mod common;

use std::io::{Read, Write};

use common::tls::{summary_counter, summary_line, tls_connect};
use common::{drivers, pattern, Server};

const SIZES: [usize; 5] = [1, 100, 4096, 16_385, 20_000];

fn round_trip<S: Read + Write>(stream: &mut S, seed: u64, size: usize, what: &str) {
    let message = pattern(seed, size);
    stream.write_all(&message).unwrap();
    stream.flush().unwrap();
    let mut back = vec![0; size];
    stream
        .read_exact(&mut back)
        .unwrap_or_else(|e| panic!("{what}: reading {size} bytes back: {e}"));
    assert!(back == message, "{what}: {size} bytes came back changed");
}

#[test]
fn echo_is_the_same_over_plain_tls_and_mtls() {
    for backend in drivers() {
        let server = Server::start(&[
            "--service",
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend,
        ]);
        let addr = server.addr();
        let mut plain = server.connect();
        let mut tls = tls_connect(addr, "localhost", None)
            .unwrap_or_else(|e| panic!("{backend}: TLS to localhost: {e}"));
        let mut mtls = tls_connect(addr, "mtls.localhost", Some(("client.pem", "client.key")))
            .unwrap_or_else(|e| panic!("{backend}: mTLS to mtls.localhost: {e}"));
        // Interleaved: each size on each transport before the next size.
        for (i, size) in SIZES.into_iter().enumerate() {
            let seed = i as u64 * 3;
            round_trip(&mut plain, seed, size, &format!("{backend} plain"));
            round_trip(&mut tls, seed + 1, size, &format!("{backend} tls"));
            round_trip(&mut mtls, seed + 2, size, &format!("{backend} mtls"));
        }
        // Bytes that look like a TLS record, inside each stream, are just
        // data to echo.
        let record_like = [0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0xff, 0x00];
        for (what, stream) in [
            ("plain", &mut plain as &mut dyn ReadWrite),
            ("tls", &mut tls),
            ("mtls", &mut mtls),
        ] {
            stream.write_all(&record_like).unwrap();
            let mut back = [0u8; 8];
            stream.read_exact(&mut back).unwrap();
            assert_eq!(back, record_like, "{backend} {what}");
        }
        // Without a client certificate the mTLS domain refuses the
        // handshake; the others go on.
        let refused = tls_connect(addr, "mtls.localhost", None).and_then(|mut s| {
            // TLS 1.3: the refusal may arrive after the client's side of
            // the handshake has finished, on the first read.
            s.write_all(b"x").map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).map_err(|e| e.to_string())
        });
        assert!(refused.is_err(), "{backend}: mTLS without a certificate");
        round_trip(&mut plain, 90, 3000, &format!("{backend} plain after"));
        round_trip(&mut tls, 91, 3000, &format!("{backend} tls after"));
        round_trip(&mut mtls, 92, 3000, &format!("{backend} mtls after"));
        drop((plain, tls, mtls));

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        let summary = summary_line(&log);
        for (key, want) in [("plain", 1), ("tls", 1), ("mtls", 1), ("accepted", 4)] {
            assert_eq!(summary_counter(&log, key), want, "{backend}: {summary}");
        }
        assert_eq!(
            summary_counter(&log, "tls_handshake_failed"),
            1,
            "{backend}: {summary}"
        );
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
