//! A real HAProxy in front of Portcullis, speaking the PROXY protocol:
//! `send-proxy-v2` (with a CRC32C) and `send-proxy` (v1), over plaintext,
//! TLS and mutual TLS (HAProxy passes TLS through in TCP mode; Portcullis
//! terminates it after the header). Each request's client binds its own
//! source address in 127.0.0.0/8, so the test can tell the address HAProxy
//! saw from HAProxy's own: the HTTP service must report the first as
//! `client_addr=` and the second as `peer_addr=`.
//!
//! `.ci/run` installs HAProxy when it is missing.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tls::{cert, curl, curl_client_cert, field};
use common::Server;

/// A HAProxy process; killed (by its PID) on drop.
struct Haproxy {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts HAProxy on a free loopback port, forwarding to `backend_port`
/// with `server_options` (`send-proxy-v2 ...` or `send-proxy`).
fn haproxy(backend_port: u16, server_options: &str) -> Haproxy {
    assert!(
        Command::new("haproxy").arg("-v").output().is_ok(),
        "haproxy is not installed (.ci/run installs it from Debian's packages)"
    );
    let dir = std::env::temp_dir().join(format!(
        "portcullis-haproxy-{}-{backend_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for _ in 0..5 {
        let port = free_port();
        let config = dir.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n  maxconn 100\n\
                 defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
                 frontend edge\n  bind 127.0.0.1:{port}\n  default_backend portcullis\n\
                 backend portcullis\n  server p1 127.0.0.1:{backend_port} {server_options}\n"
            ),
        )
        .unwrap();
        let mut child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn haproxy");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken meanwhile: try another
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Haproxy {
                    child,
                    port,
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("haproxy did not start");
}

/// Portcullis with the dev certificates, PROXY `mode` from 127.0.0.1 only.
fn portcullis(mode: &str) -> Server {
    let dir =
        std::env::temp_dir().join(format!("portcullis-haproxy-{}-{mode}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("portcullis.toml");
    std::fs::write(
        &path,
        format!(
            "service = \"http\"\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\ndefer_accept = false\n\
             proxy_protocol = \"{mode}\"\ntrusted_proxies = [\"127.0.0.1\"]\n\
             [tls]\nalpn = [\"http/1.1\"]\n\
             [[domains]]\nnames = [\"localhost\"]\ncert = \"{server}\"\nkey = \"{key}\"\nclient_auth = \"none\"\n\
             [[domains]]\nnames = [\"mtls.localhost\"]\ncert = \"{server}\"\nkey = \"{key}\"\n\
             client_auth = \"required\"\nclient_ca = \"{ca}\"\n",
            server = cert("server.pem"),
            key = cert("server.key"),
            ca = cert("ca.pem"),
        ),
    )
    .unwrap();
    Server::start_expecting(&["--config", path.to_str().unwrap()], 1, 0)
}

/// `curl` from source address `source` through HAProxy on `port`.
fn through(port: u16, source: &str, scheme: &str, host: &str, extra: &[String]) -> String {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("{scheme}://{host}:{port}/");
    let ca = cert("ca.pem");
    let mut args: Vec<&str> = vec![
        "--interface",
        source,
        "--resolve",
        &resolve,
        "--cacert",
        &ca,
    ];
    args.extend(extra.iter().map(String::as_str));
    args.push(&url);
    let out = curl(&args);
    assert!(out.success(), "{url} from {source}:\n{}", out.all());
    out.stdout
}

fn check_all_transports(mode: &str, server_options: &str) {
    let server = portcullis(mode);
    let proxy = haproxy(server.port(), server_options);
    let cases = [
        ("127.0.0.11", "http", "localhost", vec![], "plain", "-"),
        ("127.0.0.12", "https", "localhost", vec![], "tls", "-"),
        (
            "127.0.0.13",
            "https",
            "mtls.localhost",
            curl_client_cert(),
            "mtls",
            "dev-client",
        ),
    ];
    for (source, scheme, host, extra, transport, cn) in cases {
        let body = through(proxy.port, source, scheme, host, &extra);
        assert_eq!(field(&body, "transport"), Some(transport), "{mode}: {body}");
        assert_eq!(field(&body, "client_cn"), Some(cn), "{mode}: {body}");
        let client = field(&body, "client_addr").unwrap();
        assert!(
            client.starts_with(&format!("{source}:")),
            "{mode} {transport}: HAProxy saw {source}, the report says {client}:\n{body}"
        );
        let peer = field(&body, "peer_addr").unwrap();
        assert!(
            peer.starts_with("127.0.0.1:"),
            "{mode}: the peer is HAProxy: {body}"
        );
    }
    // A client that reaches Portcullis directly is its own client...
    let direct = through(server.port(), "127.0.0.15", "http", "localhost", &[]);
    assert!(
        field(&direct, "client_addr")
            .unwrap()
            .starts_with("127.0.0.15:"),
        "{direct}"
    );
    assert_eq!(field(&direct, "client_addr"), field(&direct, "peer_addr"));
    // ...but from a trusted proxy's address, a header is required.
    let headerless = curl(&[&format!("http://127.0.0.1:{}/", server.port())]);
    assert!(!headerless.success(), "{mode}: served without a header");
    let (_, log) = server.stop();
    assert!(log.contains("proxy_invalid=1"), "{mode}:\n{log}");
    drop(proxy);
}

#[test]
fn haproxy_send_proxy_v2_over_plaintext_tls_and_mtls() {
    check_all_transports("v2", "send-proxy-v2 proxy-v2-options crc32c");
}

#[test]
fn haproxy_send_proxy_v1_over_plaintext_tls_and_mtls() {
    check_all_transports("v1", "send-proxy");
}

#[test]
fn a_listener_that_accepts_any_version_takes_both() {
    let server = portcullis("any");
    for options in ["send-proxy-v2", "send-proxy"] {
        let proxy = haproxy(server.port(), options);
        let body = through(proxy.port, "127.0.0.14", "http", "localhost", &[]);
        assert!(
            field(&body, "client_addr")
                .unwrap()
                .starts_with("127.0.0.14:"),
            "{options}: {body}"
        );
    }
}

#[test]
fn the_demo_script_puts_haproxy_in_front_of_n_processes_and_stops_them_all() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/haproxy-demo.sh");
    let (front, back) = (free_port(), free_port());
    let mut child = Command::new(script)
        .arg("2")
        .env("PORTCULLIS_BIN", common::BIN)
        .env("HAPROXY_PORT", front.to_string())
        .env("BACKEND_PORT", back.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start haproxy-demo.sh");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(
        line.starts_with(&format!(
            "haproxy-demo: HAProxy on 127.0.0.1:{front} in front of 2 portcullis processes"
        )),
        "{line}"
    );
    let pids: Vec<i32> = line
        .split("(pids ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "two servers and HAProxy: {line}");
    for source in ["127.0.0.21", "127.0.0.22"] {
        let body = through(front, source, "http", "localhost", &[]);
        assert!(
            field(&body, "client_addr")
                .unwrap()
                .starts_with(&format!("{source}:")),
            "{body}"
        );
    }
    let body = through(front, "127.0.0.23", "https", "localhost", &[]);
    assert_eq!(field(&body, "transport"), Some("tls"), "{body}");
    // Ctrl-C stops everything it started.
    // SAFETY: kill with a PID this test started and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_some(),
        "the script did not stop"
    );
    for pid in pids {
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "process {pid} outlived the script");
    }
}
