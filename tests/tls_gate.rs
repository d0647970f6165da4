//! The TLS gate end to end, against the real binary: every hostile
//! ClientHello gets its alert, its counter and its log line while a
//! keep-alive client and curl keep working; `openssl s_client` with an
//! unknown name gets `unrecognized_name`; a ClientHello repeated after a
//! HelloRetryRequest with another name (forged between a real OpenSSL
//! client and the server) is refused; a development key in a config file
//! is warned about; a readable ticket key file stops start-up.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::tls::{
    assert_curl_still_works, cert, dev_domains_toml, keep_alive_get, read_until_closed, run,
    s_client, TempDir,
};
use common::{Server, BIN};
use portcullis::tls::hello_builder::{record, server_name, HelloBuilder};

/// The development domains, with names no domain lists rejected.
fn rejecting_config(dir: &TempDir) -> String {
    let text = format!("[tls]\nunknown_sni = \"reject\"\n\n{}", dev_domains_toml());
    dir.write("portcullis.toml", &text).display().to_string()
}

/// A counter from the server's `tls: full=.. failed: label=n` line.
fn tls_counter(log: &str, label: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("tls: full="))
        .unwrap_or_else(|| panic!("no TLS summary line in the log:\n{log}"));
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(label)?.strip_prefix('='))
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn hostile_client_hellos_get_an_alert_a_counter_and_a_log_line() {
    let dir = TempDir::new("hostile-hellos");
    let config = rejecting_config(&dir);
    let server = Server::with_config(&config, "epoll");
    let mut witness = server.connect();
    assert_eq!(keep_alive_get(&mut witness, "localhost").status, 200);

    let mut not_a_hello = HelloBuilder::new(Some(b"localhost")).message();
    not_a_hello[0] = 2;
    let message = HelloBuilder::new(Some(b"localhost")).message();
    let mut split = record(&message[..50]);
    split.extend(record(&message[50..]));
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        (
            "sni_duplicated",
            HelloBuilder::new(Some(b"localhost"))
                .with(0, server_name(&[(0, b"localhost")]))
                .record(),
            47,
        ),
        ("sni_empty", HelloBuilder::new(Some(b"")).record(), 50),
        (
            "sni_too_long",
            HelloBuilder::new(Some(&[b'a'; 256])).record(),
            112,
        ),
        (
            "sni_nul_byte",
            HelloBuilder::new(Some(b"local\0host")).record(),
            112,
        ),
        ("not_client_hello", record(&not_a_hello), 10),
        ("client_hello_fragmented", split, 40),
        (
            "unknown_sni",
            HelloBuilder::new(Some(b"nosuch.example")).record(),
            112,
        ),
    ];
    for (label, bytes, alert) in &cases {
        let mut conn = server.connect();
        conn.write_all(bytes).unwrap();
        let (reply, closed) = read_until_closed(&mut conn, Duration::from_secs(5));
        assert!(closed, "{label}: not closed");
        assert_eq!(
            reply,
            [0x15, 3, 3, 0, 2, 2, *alert],
            "{label}: expected a fatal alert {alert}"
        );
        assert_eq!(
            keep_alive_get(&mut witness, "localhost").status,
            200,
            "after {label}"
        );
    }
    assert_curl_still_works(server.port(), "after the hostile hellos");
    drop(witness);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    for (label, _, _) in &cases {
        assert_eq!(tls_counter(&log, label), 1, "{label}\n{log}");
        assert!(
            log.contains(&format!("TLS {label} (")),
            "{label}: no log line\n{log}"
        );
    }
    assert_eq!(tls_counter(&log, "full"), 1, "curl's handshake\n{log}");
}

#[test]
fn s_client_with_an_unknown_name_is_told_unrecognized_name() {
    let dir = TempDir::new("s-client-unknown");
    let config = rejecting_config(&dir);
    let server = Server::with_config(&config, "epoll");
    let out = s_client(server.port(), &["-servername", "nosuch.example"], b"");
    assert!(!out.success(), "{}", out.all());
    assert!(
        out.all().contains("unrecognized name"),
        "s_client did not see the alert\n{}",
        out.all()
    );
    let known = s_client(
        server.port(),
        &["-servername", "localhost"],
        &common::tls::get_request("localhost"),
    );
    assert!(known.stdout.contains("HTTP/1.1 200"), "{}", known.all());
    let (_, log) = server.stop();
    assert_eq!(tls_counter(&log, "unknown_sni"), 1, "{log}");
}

/// A TCP stream that rewrites the first occurrence of `from` in what the
/// client writes after it has read something (i.e. in the ClientHello sent
/// after the server's HelloRetryRequest).
#[derive(Debug)]
struct ForgeSecondHello {
    tcp: TcpStream,
    has_read: bool,
    from: &'static [u8],
    to: &'static [u8],
    forged: bool,
}

impl Read for ForgeSecondHello {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.has_read = true;
        self.tcp.read(buf)
    }
}

impl Write for ForgeSecondHello {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = buf.to_vec();
        if self.has_read && !self.forged {
            if let Some(at) = bytes.windows(self.from.len()).position(|w| w == self.from) {
                bytes[at..at + self.to.len()].copy_from_slice(self.to);
                self.forged = true;
            }
        }
        self.tcp.write_all(&bytes)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

#[test]
fn a_hello_retry_naming_another_server_is_refused_end_to_end() {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
    let dir = TempDir::new("hrr-sni");
    // Two domains with names of equal length; P-256 only, so a client
    // whose first key share is X25519 is sent a HelloRetryRequest.
    let text = format!(
        "[[domains]]\nnames = [\"one.localhost\"]\ncert = \"{0}\"\nkey = \"{1}\"\n\
         groups = \"P-256\"\n\n[[domains]]\nnames = [\"two.localhost\"]\n\
         cert = \"{0}\"\nkey = \"{1}\"\ngroups = \"P-256\"\n",
        cert("server.pem"),
        cert("server.key")
    );
    let config = dir.write("portcullis.toml", &text).display().to_string();
    let server = Server::with_config(&config, "epoll");
    let connect = |forge: bool| {
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        b.set_groups_list("X25519:P-256").unwrap();
        b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
        let tcp = server.connect();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let stream = ForgeSecondHello {
            tcp,
            has_read: false,
            from: b"one.localhost",
            to: b"two",
            // Without forging, behave as if the rewrite were already done.
            forged: !forge,
        };
        b.build()
            .configure()
            .unwrap()
            .verify_hostname(false)
            .connect("one.localhost", stream)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    connect(false).expect("a retried hello with the same name completes");
    let error = connect(true).expect_err("a retried hello with another name is refused");
    assert!(error.contains("illegal parameter"), "{error}");
    let (_, log) = server.stop();
    assert_eq!(tls_counter(&log, "sni_changed"), 1, "{log}");
}

#[test]
fn a_development_key_copied_elsewhere_is_warned_about() {
    let dir = TempDir::new("dev-key");
    dir.copy_cert("server.pem");
    std::fs::copy(cert("server.key"), dir.path.join("production.key")).unwrap();
    let text =
        "[[domains]]\nnames = [\"localhost\"]\ncert = \"server.pem\"\nkey = \"production.key\"\n";
    let config = dir.write("portcullis.toml", text).display().to_string();
    let server = Server::with_config(&config, "epoll");
    let (_, log) = server.stop();
    assert!(
        log.contains("production.key is the development key certs/server.key"),
        "no warning:\n{log}"
    );
}

#[test]
fn a_ticket_key_file_others_can_read_stops_start_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("ticket-perms-e2e");
    let key = dir.path.join("tickets.key");
    portcullis::tls::KeyFile::generate(&key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let text = format!(
        "[tls]\nticket_key_file = \"tickets.key\"\n\n{}",
        dev_domains_toml()
    );
    let file = dir.write("portcullis.toml", &text).display().to_string();
    let mut command = Command::new(BIN);
    command.args(["serve", "--config", &file, "--listen", "127.0.0.1:0"]);
    let out = run(&mut command, b"", Duration::from_secs(10));
    assert_eq!(out.code, Some(2), "{}", out.all());
    for needle in [
        file.as_str(),
        "tls.ticket_key_file",
        &key.display().to_string(),
        "accessible by its group",
        "chmod 600",
    ] {
        assert!(out.stderr.contains(needle), "lacks {needle}\n{}", out.all());
    }
}
