//! Reload on SIGHUP, against the real binary and real clients: a new
//! certificate is served to new connections (its serial read with `openssl
//! s_client`) while a connection opened before keeps echoing byte-exact; a
//! bad file, a key that does not match its certificate or an unreadable CA
//! leaves the old configuration serving and logs file, key and problem;
//! listeners a reload adds accept and listeners it removes stop accepting,
//! while the others keep serving.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::pattern;
use common::tls::{cert, run, TempDir, PROCESS_TIMEOUT};
use common::watched::Proc;

/// The serial of the certificate `openssl s_client` is shown at `addr`.
fn served_serial(addr: SocketAddr) -> String {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-CAfile", &cert("ca.pem")])
        .arg("-verify_return_error");
    let out = run(&mut command, b"", PROCESS_TIMEOUT);
    assert!(out.success(), "s_client failed\n{}", out.all());
    let mut x509 = Command::new("openssl");
    x509.args(["x509", "-noout", "-serial"]);
    let parsed = run(&mut x509, out.stdout.as_bytes(), PROCESS_TIMEOUT);
    assert!(parsed.success(), "no certificate shown\n{}", out.all());
    parsed.stdout.trim().to_string()
}

fn file_serial(name: &str) -> String {
    let mut x509 = Command::new("openssl");
    x509.args(["x509", "-noout", "-serial", "-in", &cert(name)]);
    run(&mut x509, b"", PROCESS_TIMEOUT)
        .stdout
        .trim()
        .to_string()
}

/// A TLS connection to `addr` with SNI localhost, verified against the dev CA.
fn tls(addr: SocketAddr) -> openssl::ssl::SslStream<TcpStream> {
    common::tls::tls_connect(addr, "localhost", None).expect("TLS handshake")
}

/// Writes `size` bytes of the test pattern and reads them back.
fn assert_echoes<S: Read + Write>(stream: &mut S, size: usize, what: &str) {
    let data = pattern(size as u64, size);
    let mut back = vec![0u8; size];
    for (sent, got) in data.chunks(16 * 1024).zip(back.chunks_mut(16 * 1024)) {
        stream.write_all(sent).unwrap();
        stream
            .read_exact(got)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    assert!(back == data, "{what}: the echo differs");
}

fn plain(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn config(dir: &TempDir, listeners: &[&str], domain: &str) -> String {
    let mut text = String::from("service = \"echo\"\n");
    for address in listeners {
        // No TCP_DEFER_ACCEPT: a silent connection is accepted at once, so
        // a test can hold one that was admitted before a reload.
        text.push_str(&format!(
            "\n[[listeners]]\naddress = \"{address}\"\ndefer_accept = false\n"
        ));
    }
    text.push_str(domain);
    dir.write("portcullis.toml", &text).display().to_string()
}

fn domain(cert_file: &str, key_file: &str, extra: &str) -> String {
    format!(
        "\n[[domains]]\nnames = [\"localhost\"]\ncert = \"{cert_file}\"\nkey = \"{key_file}\"\n{extra}"
    )
}

#[test]
fn a_new_certificate_is_served_while_an_old_connection_keeps_echoing() {
    let dir = TempDir::new("reload-cert");
    dir.copy_cert("server.pem");
    dir.copy_cert("server.key");
    let path = config(
        &dir,
        &["127.0.0.1:0"],
        &domain("server.pem", "server.key", ""),
    );
    let mut server = Proc::start(&["--config", &path, "--workers", "2"]);
    let addr = server.listening(1)[0];
    let old = file_serial("server.pem");
    assert_eq!(served_serial(addr), old);
    let mut before = tls(addr);
    assert_echoes(&mut before, 4096, "before the reload");
    // Admitted before the reload, its handshake only after: it still gets
    // the policy (the gate, the certificate) it was admitted under.
    let silent = plain(addr);
    std::thread::sleep(Duration::from_millis(300));

    // Same file names, new contents: the reload must re-read the files.
    dir.copy_cert("server-ecdsa.pem");
    dir.copy_cert("server-ecdsa.key");
    std::fs::rename(
        dir.path.join("server-ecdsa.pem"),
        dir.path.join("server.pem"),
    )
    .unwrap();
    std::fs::rename(
        dir.path.join("server-ecdsa.key"),
        dir.path.join("server.key"),
    )
    .unwrap();
    let line = server.reload();
    assert!(line.contains("reloaded"), "{line}");

    let new = file_serial("server-ecdsa.pem");
    assert_ne!(old, new);
    // Both workers serve the new certificate: ask several times.
    for _ in 0..6 {
        assert_eq!(
            served_serial(addr),
            new,
            "a new connection gets the new cert"
        );
    }
    assert_echoes(
        &mut before,
        1 << 20,
        "the connection opened before the reload",
    );
    let mut late = common::tls::connector(None, None)
        .connect("localhost", silent)
        .expect("the handshake of a connection admitted before the reload");
    let late_serial = late
        .ssl()
        .peer_certificate()
        .unwrap()
        .serial_number()
        .to_bn()
        .unwrap();
    assert_eq!(
        format!("serial={}", late_serial.to_hex_str().unwrap()),
        old,
        "admitted before the reload, handshaken after: the old policy's certificate"
    );
    assert_echoes(&mut late, 1000, "a connection admitted before the reload");
    let serial = before
        .ssl()
        .peer_certificate()
        .unwrap()
        .serial_number()
        .to_bn()
        .unwrap();
    assert_eq!(format!("serial={}", serial.to_hex_str().unwrap()), old);
}

#[test]
fn a_bad_reload_keeps_the_old_configuration_and_says_why() {
    let dir = TempDir::new("reload-bad");
    for name in ["server.pem", "server.key", "server-ecdsa.key", "ca.pem"] {
        dir.copy_cert(name);
    }
    dir.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let good = domain("server.pem", "server.key", "");
    let path = config(&dir, &["127.0.0.1:0"], &good);
    let mut server = Proc::start(&["--config", &path]);
    let addr = server.listening(1)[0];
    let serial = file_serial("server.pem");
    let mut live = tls(addr);

    let optional_ca = |ca: &str| format!("client_auth = \"optional\"\nclient_ca = \"{ca}\"\n");
    let cases = [
        (
            "a certificate that does not parse",
            domain("garbage.pem", "server.key", ""),
            vec!["domains[0]: cert", "garbage.pem"],
        ),
        (
            "a key that does not match its certificate",
            domain("server.pem", "server-ecdsa.key", ""),
            vec!["domains[0]: key", "server-ecdsa.key", "does not match"],
        ),
        (
            "an unreadable CA",
            domain("server.pem", "server.key", &optional_ca("missing-ca.pem")),
            vec!["domains[0]: client_ca", "missing-ca.pem", "cannot read"],
        ),
        (
            "a file that does not parse",
            "\n[[domains]\nnames = 1\n".to_string(),
            vec!["portcullis.toml"],
        ),
    ];
    for (what, text, expected) in cases {
        config(&dir, &["127.0.0.1:0"], &text);
        let line = server.reload();
        assert!(line.contains("reload refused"), "{what}: {line}");
        assert!(
            line.contains("portcullis.toml"),
            "{what}: names the file: {line}"
        );
        for needle in expected {
            assert!(
                line.contains(needle),
                "{what}: {needle:?} missing in {line}"
            );
        }
        assert_eq!(
            served_serial(addr),
            serial,
            "{what}: the old cert still serves"
        );
        assert_echoes(&mut tls(addr), 1000, what);
        assert_echoes(&mut live, 1000, what);
    }
    // And a good file after the bad ones is taken.
    config(&dir, &["127.0.0.1:0"], &good);
    let line = server.reload();
    assert!(line.contains("reloaded"), "{line}");
}

/// With every backend: opening and closing listeners is registering and
/// deregistering them with the reactor.
#[test]
fn listeners_a_reload_adds_accept_and_ones_it_removes_stop() {
    // The readiness driver's backends: the completion and threads drivers
    // do not read the control mailbox yet (see docs/operations.md).
    for backend in common::backends() {
        if backend.contains("completion") || backend == "threads" {
            continue;
        }
        listeners_open_and_close(&backend);
    }
}

fn listeners_open_and_close(backend: &str) {
    let dir = TempDir::new("reload-listeners");
    let path = config(&dir, &["127.0.0.1:0", "127.0.0.2:0"], "");
    let mut server = Proc::start(&[
        "--config",
        &path,
        "--workers",
        "2",
        "--no-tls",
        "--backend",
        backend,
    ]);
    let addrs = server.listening(2);
    let (first, removed) = (addrs[0], addrs[1]);
    let mut on_first = plain(first);
    let mut on_removed = plain(removed);
    assert_echoes(&mut on_first, 1000, "first listener");
    assert_echoes(&mut on_removed, 1000, "second listener");

    config(&dir, &["127.0.0.1:0", "127.0.0.3:0"], "");
    server.signal(libc::SIGHUP);
    let added = server.listening(1)[0];
    assert_eq!(added.ip().to_string(), "127.0.0.3");
    let closed = server.wait_for(true, "stopped listening on");
    assert!(closed.contains(&removed.to_string()), "{closed}");
    let line = server.wait_for(false, "reloaded");
    assert!(line.contains("2 listeners"), "{line}");

    for _ in 0..4 {
        assert_echoes(
            &mut plain(added),
            1000,
            &format!("{backend}: the added listener"),
        );
        assert_echoes(
            &mut plain(first),
            1000,
            &format!("{backend}: the listener that stayed"),
        );
    }
    // Every worker closed its socket: nothing listens there any more.
    let err = TcpStream::connect(removed).expect_err("the removed listener still accepts");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // Connections it admitted are untouched.
    assert_echoes(
        &mut on_removed,
        64 * 1024,
        "a connection of the removed listener",
    );
    assert_echoes(
        &mut on_first,
        64 * 1024,
        "a connection of the kept listener",
    );
}

/// The status line's code of a plaintext `GET /` for `host`.
fn plain_get_status(addr: SocketAddr, host: &str) -> String {
    let mut s = plain(addr);
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_http_service_checks_hosts_against_the_reloaded_domains() {
    let dir = TempDir::new("reload-http");
    for name in ["server.pem", "server.key", "ca.pem"] {
        dir.copy_cert(name);
    }
    let localhost = domain("server.pem", "server.key", "");
    let mut text = String::from("service = \"http\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n");
    text.push_str(&localhost);
    let path = dir.write("portcullis.toml", &text).display().to_string();
    let mut server = Proc::start(&["--config", &path]);
    let addr = server.listening(1)[0];
    let before = plain_get_status(addr, "secure.localhost");
    assert!(before.contains(" 200 "), "{before}");

    // secure.localhost now requires a client certificate: a plaintext
    // request for it must be refused by the rules the service reads.
    text.push_str(
        "\n[[domains]]\nnames = [\"secure.localhost\"]\ncert = \"server.pem\"\n\
         key = \"server.key\"\nclient_auth = \"required\"\nclient_ca = \"ca.pem\"\n",
    );
    dir.write("portcullis.toml", &text);
    let line = server.reload();
    assert!(line.contains("2 domains"), "{line}");
    let after = plain_get_status(addr, "secure.localhost");
    assert!(after.contains(" 403 "), "{after}");
    let other = plain_get_status(addr, "localhost");
    assert!(other.contains(" 200 "), "{other}");
}

#[test]
fn a_lower_connection_limit_refuses_new_connections_and_keeps_open_ones() {
    let dir = TempDir::new("reload-limits");
    let write = |max: usize| {
        dir.write(
            "portcullis.toml",
            &format!(
                "service = \"echo\"\nmax_connections = {max}\n\n\
                 [[listeners]]\naddress = \"127.0.0.1:0\"\n"
            ),
        )
        .display()
        .to_string()
    };
    let path = write(10);
    let mut server = Proc::start(&["--config", &path, "--no-tls"]);
    let addr = server.listening(1)[0];
    let mut open: Vec<TcpStream> = (0..3).map(|_| plain(addr)).collect();
    for s in &mut open {
        assert_echoes(s, 100, "before");
    }
    write(2);
    let line = server.reload();
    assert!(line.contains("max_connections 2"), "{line}");
    let mut refused = plain(addr);
    let _ = refused.write_all(b"x");
    let mut buf = [0u8; 1];
    let got = refused.read(&mut buf);
    assert!(
        matches!(got, Ok(0)) || got.is_err(),
        "a connection over the new limit is closed: {got:?}"
    );
    for s in &mut open {
        assert_echoes(s, 100, "a connection open before the lower limit");
    }
    write(10);
    server.reload();
    assert_echoes(&mut plain(addr), 100, "after raising the limit again");
}

/// Whether the server closes a new connection at once (a refusal at
/// accept) rather than echoing.
fn refused(addr: SocketAddr) -> bool {
    let mut s = plain(addr);
    let _ = s.write_all(b"ping");
    let mut buf = [0u8; 4];
    !matches!(s.read_exact(&mut buf), Ok(()))
}

#[test]
fn listener_access_rules_and_limits_reload_and_keep_their_counts() {
    let dir = TempDir::new("reload-edge");
    let write = |extra: &str| {
        let text =
            format!("service = \"echo\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n{extra}");
        dir.write("portcullis.toml", &text).display().to_string()
    };
    let path = write("max_connections = 3\n");
    let mut server = Proc::start(&["--config", &path, "--no-tls", "--workers", "2"]);
    let addr = server.listening(1)[0];
    let mut open: Vec<TcpStream> = (0..2).map(|_| plain(addr)).collect();
    for s in &mut open {
        assert_echoes(s, 100, "before");
    }

    // The two live connections still count against the listener's limit:
    // a reload that lowers it to 2 leaves no room.
    write("max_connections = 2\n");
    let line = server.reload();
    assert!(line.contains("reloaded"), "{line}");
    assert!(
        refused(addr),
        "the lowered listener limit counts the live connections"
    );
    for s in &mut open {
        assert_echoes(s, 100, "a live connection under the lower listener limit");
    }

    // Access rules: loopback is now denied; live connections stay.
    write("access = [\"deny 127.0.0.1\", \"allow all\"]\n");
    server.reload();
    assert!(refused(addr), "a denied client is refused after the reload");
    for s in &mut open {
        assert_echoes(s, 100, "a live connection admitted before the deny");
    }
    write("");
    server.reload();
    assert_echoes(&mut plain(addr), 100, "allowed again");
}
