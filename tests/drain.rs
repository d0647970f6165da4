//! Graceful drain on SIGTERM: the listeners close at once, connections
//! already open are served on until they leave or `shutdown_grace_secs`
//! runs out, and then TLS clients get `close_notify` — checked with
//! `openssl s_client -msg`, which prints every TLS message it receives, and
//! with the openssl crate's client, which tells a clean TLS shutdown from
//! a bare TCP close. `/metrics` shows the drain while it lasts.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use openssl::ssl::ShutdownState;

use common::admin::{self, scrape, scrape_until, sum};
use common::tls::{cert, dev_domains_toml, run, tls_connect, TempDir, PROCESS_TIMEOUT};
use common::{backends, pattern, read_exact, send_sigterm};

const GRACE_SECS: f64 = 2.0;

#[test]
fn sigterm_drains_open_connections_then_says_close_notify() {
    let backend = &backends()[0];
    let dir = TempDir::new("drain");
    let config = dir.write(
        "portcullis.toml",
        &format!(
            "service = \"echo\"\n[timeouts]\nshutdown_grace_secs = {GRACE_SECS}\n\n{}",
            dev_domains_toml()
        ),
    );
    let config = config.display().to_string();
    let (server, admin) = admin::start(
        &[
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
        ],
        1,
    );
    let addr = server.addr();

    let mut plain = server.connect();
    let mut leaver = server.connect();
    let mut tls = tls_connect(addr, "localhost", None).unwrap();
    for (i, stream) in [&mut plain, &mut leaver].into_iter().enumerate() {
        let message = pattern(i as u64, 100);
        stream.write_all(&message).unwrap();
        assert_eq!(read_exact(stream, 100), message);
    }
    tls.write_all(b"before").unwrap();
    let mut buf = [0u8; 6];
    tls.read_exact(&mut buf).unwrap();
    // A real TLS client that stays until the server closes: -ign_eof keeps
    // it reading after its input ends; -msg prints each message received.
    let port = addr.port();
    let s_client = std::thread::spawn(move || {
        let mut command = Command::new("openssl");
        command
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-CAfile", &cert("ca.pem"), "-verify_return_error"])
            .args(["-servername", "localhost", "-ign_eof", "-msg"]);
        run(&mut command, b"hello\n", PROCESS_TIMEOUT)
    });
    scrape_until(admin, |s| sum(s, "portcullis_connections_open", &[]) == 4.0);
    let before = scrape(admin);
    assert_eq!(sum(&before, "portcullis_draining", &[]), 0.0);

    send_sigterm(&server);
    let started = Instant::now();
    let s = scrape_until(admin, |s| sum(s, "portcullis_draining", &[]) == 1.0);
    assert_eq!(
        sum(&s, "portcullis_draining", &[]),
        1.0,
        "the drain does not show"
    );
    assert_eq!(
        sum(&s, "portcullis_connections_open", &[]),
        4.0,
        "every open connection remains while draining"
    );
    // No new connections: the listener is closed.
    let refused = std::net::TcpStream::connect(addr);
    assert!(refused.is_err(), "a connection was accepted while draining");
    // Open connections are still served during the drain.
    let message = pattern(9, 1000);
    plain.write_all(&message).unwrap();
    assert_eq!(read_exact(&mut plain, 1000), message);
    tls.write_all(b"during").unwrap();
    tls.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"during");
    // One leaves by itself: the remaining count goes down.
    drop(leaver);
    let s = scrape_until(admin, |s| sum(s, "portcullis_connections_open", &[]) == 3.0);
    assert_eq!(sum(&s, "portcullis_connections_open", &[]), 3.0);
    assert_eq!(
        sum(&s, "portcullis_connections_active", &[("transport", "tls")]),
        2.0
    );

    // The grace ends: a clean TLS shutdown, then the end of the stream.
    let mut rest = Vec::new();
    tls.get_mut()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let end = tls.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(end.is_ok(), "not a clean TLS close: {end:?}");
    assert!(
        tls.get_shutdown().contains(ShutdownState::RECEIVED),
        "no close_notify"
    );
    assert!(
        waited >= Duration::from_secs_f64(GRACE_SECS * 0.9),
        "closed after {waited:?}, before the grace period ended"
    );
    let out = s_client.join().unwrap();
    // `<<<` marks what s_client received (`>>>` what it sent).
    let received_close_notify = out
        .stdout
        .lines()
        .any(|l| l.starts_with("<<<") && l.contains("Alert") && l.contains("close_notify"));
    assert!(
        received_close_notify,
        "s_client received no close_notify\n{}",
        out.all()
    );
    let mut tail = Vec::new();
    assert_eq!(plain.read_to_end(&mut tail).unwrap(), 0, "plaintext: EOF");

    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("shutdown=3"), "{log}");
}
