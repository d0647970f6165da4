//! Helpers for tests that talk to the server with real TLS clients: `curl`
//! and `openssl s_client` run as processes (always with a timeout, killed by
//! their own PID if they overrun), the openssl crate as an in-process client,
//! temporary config files, and reading the server's summary counters.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openssl::ssl::{
    HandshakeError, SslConnector, SslFiletype, SslMethod, SslStream, SslVerifyMode, SslVersion,
};

/// How long any external client may run before it is killed.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(15);

/// The repository's `certs/` directory.
pub fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("certs")
}

/// Absolute path of a file in `certs/`, as a string for command lines.
pub fn cert(name: &str) -> String {
    certs_dir().join(name).display().to_string()
}

/// What a finished (or killed) external process produced.
#[derive(Debug)]
pub struct Output {
    /// Exit code; `None` when killed (by us or by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit={:?} timed_out={} elapsed={:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.timed_out, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `command` with `stdin` as its whole input, for at most `timeout`;
/// a child that overruns is killed through its own handle (its PID).
pub fn run(command: &mut Command, stdin: &[u8], timeout: Duration) -> Output {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
        // Dropping `input` closes the pipe: the child sees end of input.
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Output {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// `curl -sS --http1.1` with a time limit and no proxy, plus `args`. The
/// server offers `h2` first, which curl would take over TLS; these helpers
/// test HTTP/1.1, and `tests/http2.rs` asks for HTTP/2 by name.
pub fn curl(args: &[&str]) -> Output {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "10", "--noproxy", "*", "--http1.1"])
        .args(args);
    run(&mut command, b"", PROCESS_TIMEOUT)
}

/// `curl` over TLS to `https://HOST:PORT/PATH`, with HOST resolved to
/// 127.0.0.1 and the dev CA trusted, plus `extra` (e.g. `--cert`).
pub fn curl_https(port: u16, host: &str, path: &str, extra: &[&str]) -> Output {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}{path}");
    let ca = cert("ca.pem");
    let mut args = vec!["--cacert", &ca, "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// The client-certificate arguments for curl: `certs/client.pem` (CN
/// dev-client, from the dev CA).
pub fn curl_client_cert() -> Vec<String> {
    vec![
        "--cert".into(),
        cert("client.pem"),
        "--key".into(),
        cert("client.key"),
    ]
}

/// Asserts that a plain `curl https://localhost:PORT/` works: the server
/// is still healthy after whatever the test just did to it.
pub fn assert_curl_still_works(port: u16, context: &str) {
    let out = curl_https(port, "localhost", "/", &[]);
    assert!(
        out.success() && field(&out.stdout, "transport") == Some("tls"),
        "{context}: a normal curl request afterwards failed:\n{}",
        out.all()
    );
}

/// `openssl s_client -connect 127.0.0.1:PORT -CAfile ca.pem
/// -verify_return_error -ign_eof ARGS`, fed `input` on stdin. With
/// `-ign_eof` it reads until the server closes, so requests should say
/// `Connection: close`.
pub fn s_client(port: u16, args: &[&str], input: &[u8]) -> Output {
    let mut command = Command::new("openssl");
    command
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(cert("ca.pem"))
        .arg("-verify_return_error")
        .arg("-ign_eof")
        .args(args);
    run(&mut command, input, PROCESS_TIMEOUT)
}

/// An HTTP/1.1 `GET /` for `host` that asks the server to close afterwards.
pub fn get_request(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// The value of a `key=value` line in a `GET /` report.
pub fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.lines().find_map(|line| {
        line.trim_end_matches('\r')
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// The status code of the first HTTP response in `text`.
pub fn status_of(text: &str) -> Option<u16> {
    let start = text.find("HTTP/1.")?;
    text[start..].split_whitespace().nth(1)?.parse().ok()
}

/// A counter from the server's final summary line (`accepted=.. plain=..
/// closed: handshake_timeout=..`); 0 when the reason is not listed.
pub fn summary_counter(log: &str, key: &str) -> u64 {
    let Some(line) = log
        .lines()
        .rev()
        .find(|l| l.contains("accepted=") && l.contains("closed:"))
    else {
        panic!("no summary line in the server log:\n{log}");
    };
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
        .map_or(0, |n| n.parse().unwrap())
}

/// The summary line itself, for assertion messages.
pub fn summary_line(log: &str) -> &str {
    log.lines()
        .rev()
        .find(|l| l.contains("accepted=") && l.contains("closed:"))
        .unwrap_or("<no summary line>")
}

// ----- raw HTTP over a TcpStream -------------------------------------------

/// One HTTP response: status, head (lines) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Reads one response framed by `Content-Length` from `stream`.
pub fn read_response<S: Read>(stream: &mut S) -> Response {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            Ok(_) => panic!(
                "connection closed inside a response head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Err(e) => panic!(
                "reading a response head: {e}; so far: {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = status_of(&head).expect("a status line");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            if !name.eq_ignore_ascii_case("content-length") {
                return None;
            }
            value.trim().parse().ok()
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("response body");
    Response {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends a keep-alive `GET /` for `host` and reads the answer.
pub fn keep_alive_get<S: Read + Write>(stream: &mut S, host: &str) -> Response {
    stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .expect("send request");
    read_response(stream)
}

/// Everything the peer sends until it closes (EOF or reset) or `timeout`;
/// returns the bytes and whether it closed.
pub fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (all, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (all, true),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (all, true),
            Err(_) => return (all, false),
        }
    }
}

// ----- the openssl crate as a client -----------------------------------------

/// A TLS client configuration: the dev CA trusted, optionally a client
/// certificate (`("client.pem", "client.key")` from `certs/`), optionally
/// pinned to one protocol version.
pub fn connector(client_cert: Option<(&str, &str)>, version: Option<SslVersion>) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(cert("ca.pem")).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    if let Some((pem, key)) = client_cert {
        b.set_certificate_chain_file(cert(pem)).unwrap();
        b.set_private_key_file(cert(key), SslFiletype::PEM).unwrap();
    }
    if let Some(v) = version {
        b.set_min_proto_version(Some(v)).unwrap();
        b.set_max_proto_version(Some(v)).unwrap();
    }
    b.build()
}

/// Connects to `addr` and handshakes with SNI `sni` (checking the server's
/// certificate against that name).
pub fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    client_cert: Option<(&str, &str)>,
) -> Result<SslStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    connector(client_cert, None)
        .connect(sni, tcp)
        .map_err(|e| e.to_string())
}

/// A stream that captures what is written and never has anything to read:
/// running a client handshake over it yields the ClientHello bytes.
#[derive(Debug, Default)]
struct Capture {
    written: Vec<u8>,
}

impl Read for Capture {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The bytes of a real ClientHello for SNI `sni`, made by OpenSSL.
pub fn client_hello(sni: &str) -> Vec<u8> {
    match connector(None, None).connect(sni, Capture::default()) {
        Err(HandshakeError::WouldBlock(mid)) => mid.get_ref().written.clone(),
        Err(e) => panic!("building a ClientHello: {e}"),
        Ok(_) => panic!("a handshake cannot complete without a server"),
    }
}

// ----- temporary directories and config files --------------------------------

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "portcullis-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    /// Writes `text` to `name` inside the directory; returns the full path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Copies `certs/NAME` into the directory.
    pub fn copy_cert(&self, name: &str) {
        std::fs::copy(certs_dir().join(name), self.path.join(name)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `[[domains]]` equivalent to the built-in development gate (absolute
/// paths into `certs/`): `localhost` and `*.localhost` without client
/// certificates, listed first so it is the default for unknown and missing
/// SNI, and `mtls.localhost` requiring a certificate from `ca.pem`.
pub fn dev_domains_toml() -> String {
    let path = |name: &str| cert(name).replace('\\', "\\\\");
    format!(
        "[[domains]]\nnames = [\"localhost\", \"*.localhost\"]\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [[domains]]\nnames = [\"mtls.localhost\"]\ncert = \"{}\"\nkey = \"{}\"\n\
         client_auth = \"required\"\nclient_ca = \"{}\"\n",
        path("server.pem"),
        path("server.key"),
        path("server.pem"),
        path("server.key"),
        path("ca.pem"),
    )
}
