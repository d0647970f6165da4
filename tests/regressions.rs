//! Regression tests for engine defects found in review: half-close spinning,
//! missed re-arms, resets at close, and timers that cut TLS clients short.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{backends, backends_of_model, closed_by_server, pattern, Server};

fn echo(backend: &str, extra: &[&str]) -> Server {
    Server::service("echo", backend, extra)
}

/// A client whose receive buffer is tiny, so the server's echo piles up.
fn small_window_client(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Bytes sent on `stream` that the peer has not acknowledged yet (Linux).
fn unacked(stream: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one c_int through the valid pointer.
    unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    n
}

/// Finding 1, at the reactor: a registration re-armed with WRITABLE only,
/// on a socket whose send buffer is full and whose peer has half-closed,
/// fires again on every wait (epoll adds EPOLLRDHUP to every registration,
/// and RDHUP is a standing condition). This is exactly what the engine
/// re-arms with when it has output queued and does not want to read
/// (back-pressure, `closing`, or `read_closed`).
#[test]
fn write_only_registration_does_not_fire_forever_after_peer_half_close() {
    use backends::{BackendKind, Events, Interest, Token};
    use std::os::fd::AsRawFd;
    let mut failures = Vec::new();
    // A reactor-level test: the completion driver has no registrations.
    for name in backends_of_model("readiness") {
        let kind = BackendKind::from_name(&name).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server_side, _) = listener.accept().unwrap();
        server_side.set_nonblocking(true).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match server_side.write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        peer.shutdown(Shutdown::Write).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut selector = kind.open().unwrap();
        let fd = server_side.as_raw_fd();
        selector.register(fd, Token(7), Interest::WRITABLE).unwrap();
        let mut events = Events::with_capacity(8);
        let mut fired = 0;
        let start = Instant::now();
        for _ in 0..50 {
            selector
                .wait(&mut events, Some(Duration::from_millis(10)))
                .unwrap();
            if !events.is_empty() {
                fired += 1;
            }
            selector
                .reregister(fd, Token(7), Interest::WRITABLE)
                .unwrap();
        }
        if fired > 1 {
            failures.push(format!(
                "{name}: a WRITABLE-only registration on an unwritable socket fired {fired} \
                 times in {:?} because the peer half-closed (a busy loop for the engine)",
                start.elapsed()
            ));
        }
        drop(peer);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Finding 1, end to end: a client that sends a lot, half-closes and does
/// not read its echo makes the epoll worker spin at 100% CPU until the
/// write timeout (30 s by default).
#[test]
fn half_closed_peer_with_unread_output_does_not_spin_the_cpu() {
    let mut failures = Vec::new();
    for backend in backends() {
        let server = echo(&backend, &["--no-tls"]);
        let mut client = small_window_client(server.addr());
        client.set_nonblocking(true).unwrap();
        let message = pattern(1, 4 * 1024 * 1024);
        let mut off = 0;
        let deadline = Instant::now() + Duration::from_secs(3);
        while off < message.len() && Instant::now() < deadline {
            match client.write(&message[off..]) {
                Ok(n) => off += n,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        assert_eq!(off, message.len(), "{backend}: could not send the message");
        client.shutdown(Shutdown::Write).unwrap();
        // Wait until everything, FIN included, has reached the server.
        let deadline = Instant::now() + Duration::from_secs(3);
        while unacked(&client) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        let before = server.cpu_time();
        std::thread::sleep(Duration::from_millis(700));
        let used = server.cpu_time() - before;
        client.set_nonblocking(false).unwrap();
        let mut echoed = Vec::new();
        client.read_to_end(&mut echoed).unwrap();
        assert!(echoed == message, "{backend}: echo differs");
        if used >= Duration::from_millis(200) {
            failures.push(format!(
                "{backend}: server burned {used:?} of CPU in 700 ms while a half-closed \
                 client was not reading"
            ));
        }
        drop(server);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Finding 2: on a plaintext-only listener (`--no-tls`, or `tls = false`)
/// `admit` registers READABLE and runs `on_connect`, but never re-arms with
/// `Connection::interest()`. Multicast's first batch sets `wants_drained`
/// (needs WRITABLE) and may leave output queued: the stream stops after one
/// batch, forever.
#[test]
fn multicast_on_a_plaintext_only_listener_keeps_streaming() {
    let mut failures = Vec::new();
    for backend in backends() {
        let server = Server::start(&[
            "--service",
            "multicast",
            "--no-tls",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend,
        ]);
        let mut client = server.connect();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        let start = Instant::now();
        while total < 1024 * 1024 && start.elapsed() < Duration::from_secs(5) {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(_) => break,
            }
        }
        if total < 1024 * 1024 {
            failures.push(format!("{backend}: multicast stalled after {total} bytes"));
        }
        drop(server);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Finding 3: with `plaintext_after` (chat, multicast), a connection whose
/// first bytes are a *partial* TLS record header is closed as
/// `handshake_timeout` when the plaintext grace (300 ms) ends, instead of
/// being given `handshake_secs` (10 s) to finish its ClientHello.
#[test]
fn a_partial_tls_prefix_gets_the_handshake_timeout_not_the_plaintext_grace() {
    let backend = &backends()[0];
    // A built-in TLS gate with a short handshake timeout: the default dev
    // domains plus `[timeouts] handshake_secs = 2`.
    let dir = std::env::temp_dir().join(format!("portcullis-prefix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/certs");
    let config = dir.join("prefix.toml");
    std::fs::write(
        &config,
        format!(
            "service = \"chat\"\n[timeouts]\nhandshake_secs = 2\n\n[[domains]]\n\
             names = [\"localhost\"]\ncert = \"{certs}/server.pem\"\nkey = \"{certs}/server.key\"\n"
        ),
    )
    .unwrap();
    let server = Server::with_config(config.to_str().unwrap(), backend);
    let mut client = server.connect();
    // The first three bytes of every TLS ClientHello record.
    client.write_all(&[0x16, 0x03, 0x01]).unwrap();
    // Past the 300 ms plaintext grace: still open, and not greeted as a
    // plaintext chat member.
    client
        .set_read_timeout(Some(Duration::from_millis(1200)))
        .unwrap();
    let mut buf = [0u8; 64];
    match client.read(&mut buf) {
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut => {}
        Ok(0) => {
            panic!("{backend}: a TLS client mid-ClientHello was closed after the plaintext grace")
        }
        Ok(n) => panic!(
            "{backend}: greeted as plaintext: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("{backend}: {e}"),
    }
    // Then the handshake timeout (2 s) closes it.
    let closed = closed_by_server(&mut client, Duration::from_secs(5));
    let (_, log) = server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        closed,
        "{backend}: the handshake timeout never fired; log:\n{log}"
    );
    assert!(
        log.contains("handshake_timeout=1"),
        "{backend}: not counted; log:\n{log}"
    );
}

/// Finding 4: shutdown (and every other close with unread input) calls
/// close(2) while the peer's bytes sit unread in the receive buffer. Linux
/// then sends RST and discards the send queue, so output the server
/// "flushed" (and, for TLS, its close_notify) never arrives and the client
/// sees ECONNRESET instead of the end of the stream.
#[test]
fn shutdown_ends_a_busy_connection_with_eof_not_reset() {
    let backend = &backends()[0];
    let server = echo(backend, &["--no-tls"]);
    let mut client = server.connect();
    // Send until the server applies back-pressure and the kernel buffers on
    // both sides are full; read nothing yet.
    client.set_nonblocking(true).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut stalls = 0;
    let mut sent = 0usize;
    while stalls < 10 {
        match client.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stalls += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    client.set_nonblocking(false).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = client.try_clone().unwrap();
    let reading = std::thread::spawn(move || {
        // Start reading once shutdown has begun.
        std::thread::sleep(Duration::from_millis(300));
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0usize;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (got, Ok(())),
                Ok(n) => got += n,
                Err(e) => return (got, Err(e)),
            }
        }
    });
    let (code, log) = server.stop();
    let (got, end) = reading.join().unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        end.is_ok(),
        "sent {sent}, got {got} bytes back, then {end:?} instead of a clean end of stream"
    );
}
