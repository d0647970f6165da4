//! Bad first bytes on the shared port, for every compiled backend. Each bad
//! connection is closed cleanly and for the right reason (the summary
//! counters say which), and a plaintext HTTP keep-alive connection opened
//! before them keeps working throughout. A ClientHello sent one byte at a
//! time is not bad input: it must complete a real handshake.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::tls::{
    assert_curl_still_works, client_hello, connector, dev_domains_toml, field, keep_alive_get,
    read_until_closed, summary_counter, summary_line, TempDir,
};
use common::{backends, pattern, Server};

/// The dev domains with a one-second handshake timeout.
fn quick_timeout_config(dir: &TempDir) -> String {
    let text = format!("[timeouts]\nhandshake_secs = 1\n\n{}", dev_domains_toml());
    dir.write("portcullis.toml", &text).display().to_string()
}

/// The keep-alive connection every step re-checks.
struct Witness {
    stream: TcpStream,
    requests: usize,
}

impl Witness {
    fn open(server: &Server) -> Witness {
        let mut witness = Witness {
            stream: server.connect(),
            requests: 0,
        };
        witness.check("at the start");
        witness
    }

    fn check(&mut self, after: &str) {
        let response = keep_alive_get(&mut self.stream, "localhost");
        self.requests += 1;
        assert_eq!(response.status, 200, "witness {after}: {response:?}");
        assert_eq!(field(&response.body, "transport"), Some("plain"), "{after}");
    }
}

/// A TCP stream that writes one byte per `write` call, with a pause after
/// each, so the server receives the handshake in one-byte pieces.
#[derive(Debug)]
struct Trickle(TcpStream);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.0.write(&buf[..1])?;
        std::thread::sleep(Duration::from_micros(150));
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[test]
fn bad_first_bytes_are_closed_cleanly_and_disturb_nothing() {
    let dir = TempDir::new("bad-input");
    let config = quick_timeout_config(&dir);
    let hello = client_hello("localhost");
    assert!(hello.len() > 100 && hello[0] == 0x16, "{hello:?}");
    for backend in backends() {
        let server = Server::with_config(&config, &backend);
        let mut witness = Witness::open(&server);

        // 1. Random garbage: the plain listener allows plaintext, so the
        // garbage goes to HTTP, which answers 400 and closes.
        let mut garbage = pattern(99, 2048);
        garbage[0] = 0x80;
        let mut conn = server.connect();
        conn.write_all(&garbage).unwrap();
        let (reply, closed) = read_until_closed(&mut conn, Duration::from_secs(5));
        let reply = String::from_utf8_lossy(&reply);
        assert!(closed, "{backend}: garbage: not closed; got {reply:?}");
        assert!(
            reply.starts_with("HTTP/1.1 400 "),
            "{backend}: garbage: {reply:?}"
        );
        drop(conn);
        witness.check("after garbage");

        // 2. A plausible TLS record header and ClientHello type, then
        // garbage: the TLS engine refuses it with an alert and closes.
        let mut tls_garbage = vec![0x16, 0x03, 0x01, 0x00, 0x40, 0x01];
        tls_garbage.extend(pattern(5, 63));
        let mut conn = server.connect();
        conn.write_all(&tls_garbage).unwrap();
        let (reply, closed) = read_until_closed(&mut conn, Duration::from_secs(5));
        assert!(closed, "{backend}: TLS garbage: not closed; got {reply:?}");
        assert_eq!(
            reply.first(),
            Some(&0x15),
            "{backend}: TLS garbage: expected an alert record, got {reply:?}"
        );
        drop(conn);
        witness.check("after TLS garbage");

        // 3. Half a real ClientHello, then silence: the handshake timeout
        // (1 s here) closes it.
        let mut conn = server.connect();
        let sent = Instant::now();
        conn.write_all(&hello[..hello.len() / 2]).unwrap();
        let (_, closed) = read_until_closed(&mut conn, Duration::from_secs(5));
        let waited = sent.elapsed();
        assert!(closed, "{backend}: truncated hello was never closed");
        assert!(
            waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
            "{backend}: truncated hello closed after {waited:?}, expected about 1 s"
        );
        drop(conn);
        witness.check("after a truncated ClientHello");

        // 4. A real handshake, one byte per segment, to completion.
        let tcp = server.connect();
        tcp.set_nodelay(true).unwrap();
        let started = Instant::now();
        let mut tls = connector(None, None)
            .connect("localhost", Trickle(tcp))
            .unwrap_or_else(|e| panic!("{backend}: byte-at-a-time handshake: {e}"));
        let handshake_time = started.elapsed();
        let response = keep_alive_get(&mut tls, "localhost");
        assert_eq!(response.status, 200, "{backend}: {response:?}");
        assert_eq!(field(&response.body, "transport"), Some("tls"));
        assert_eq!(field(&response.body, "sni"), Some("localhost"));
        drop(tls);
        witness.check("after a byte-at-a-time handshake");

        // 5. A TLS record header announcing more than 2^14 bytes cannot be
        // a ClientHello: classified as plaintext, answered 400 by HTTP and
        // closed at once (not left waiting for 64 KiB that never come).
        let mut conn = server.connect();
        let sent = Instant::now();
        conn.write_all(&[0x16, 0x03, 0x03, 0xFF, 0xFF]).unwrap();
        let (reply, closed) = read_until_closed(&mut conn, Duration::from_secs(5));
        let reply = String::from_utf8_lossy(&reply);
        assert!(closed, "{backend}: oversized record: not closed; {reply:?}");
        assert!(sent.elapsed() < Duration::from_secs(1), "{backend}: slow");
        assert!(reply.starts_with("HTTP/1.1 400 "), "{backend}: {reply:?}");
        drop(conn);
        witness.check("after an oversized record length");

        assert_curl_still_works(server.port(), &backend);
        witness.check("at the end");
        // Closed by us first: the server's shutdown would otherwise linger
        // (up to 2 s) waiting for this idle client to close its side.
        assert_eq!(witness.requests, 7, "{backend}: all on one connection");
        drop(witness);

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        let summary = summary_line(&log);
        assert_eq!(
            summary_counter(&log, "handshake_timeout"),
            1,
            "{backend}: {summary}"
        );
        assert_eq!(
            summary_counter(&log, "tls_handshake_failed"),
            1,
            "{backend}: {summary}"
        );
        // The two 400s are closed by the service after its answer (how
        // the TLS clients' own closes are counted is not this test's
        // business).
        assert!(summary_counter(&log, "service_closed") >= 2, "{summary}");
        // Witness, garbage, oversized; byte-at-a-time and curl.
        assert_eq!(summary_counter(&log, "plain"), 3, "{backend}: {summary}");
        assert_eq!(summary_counter(&log, "tls"), 2, "{backend}: {summary}");
        assert_eq!(summary_counter(&log, "accepted"), 7, "{backend}: {summary}");
        assert!(
            handshake_time < Duration::from_secs(1),
            "{backend}: trickled handshake took {handshake_time:?}"
        );
    }
}

#[test]
fn tls_only_refuses_plaintext_and_keeps_serving_tls() {
    for backend in backends() {
        let server = Server::start(&[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend,
            "--tls-only",
        ]);
        let addr = server.addr();
        // A TLS keep-alive connection opened before the bad ones.
        let mut witness = common::tls::tls_connect(addr, "localhost", None)
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        let response = keep_alive_get(&mut witness, "localhost");
        assert_eq!(field(&response.body, "transport"), Some("tls"));

        for (what, bytes) in [
            (
                "an HTTP request",
                &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
            ),
            (
                "an oversized record length",
                &[0x16, 0x03, 0x03, 0xFF, 0xFF][..],
            ),
        ] {
            let mut conn = server.connect();
            conn.write_all(bytes).unwrap();
            let (reply, closed) = read_until_closed(&mut conn, Duration::from_secs(5));
            assert!(closed, "{backend}: {what} on --tls-only was not closed");
            assert!(
                reply.is_empty(),
                "{backend}: {what} on --tls-only got an answer: {:?}",
                String::from_utf8_lossy(&reply)
            );
            let response = keep_alive_get(&mut witness, "localhost");
            assert_eq!(response.status, 200, "{backend}: after {what}");
        }
        assert_curl_still_works(server.port(), &backend);
        let http = common::tls::curl(&[&format!("http://127.0.0.1:{}/", server.port())]);
        assert!(!http.success(), "{backend}: curl over http\n{}", http.all());
        drop(witness);

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        let summary = summary_line(&log);
        assert_eq!(summary_counter(&log, "plaintext_refused"), 3, "{summary}");
        assert_eq!(summary_counter(&log, "plain"), 0, "{backend}: {summary}");
        assert_eq!(summary_counter(&log, "tls"), 2, "{backend}: {summary}");
    }
}
