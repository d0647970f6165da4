//! The engine's deadlines and bounds against the real binary: one test per
//! defect the connection core was rebuilt to fix. Each of them failed on the
//! engine before it (run them against an older build with
//! `PORTCULLIS_TEST_SERVER=path/to/portcullis`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{backends, backends_of_model, closed_by_server, Server};

/// A config file for one test, removed on drop.
struct Config {
    dir: PathBuf,
    path: PathBuf,
}

impl Config {
    fn new(name: &str, text: &str) -> Config {
        let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        Config { dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection admitted through the plaintext grace (chat speaks first)
/// used to escape every later deadline, so a silent client held its slot
/// forever.
#[test]
fn a_silent_chat_client_is_closed_for_idleness() {
    // TLS on the port, so the server waits for first bytes and admits a
    // client that says nothing through the plaintext grace.
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/certs");
    let config = Config::new(
        "silent-chat",
        &format!(
            "service = \"chat\"\n[timeouts]\nidle_secs = 1\n\n[[domains]]\n\
             names = [\"localhost\"]\ncert = \"{certs}/server.pem\"\nkey = \"{certs}/server.key\"\n"
        ),
    );
    for backend in backends() {
        let server = Server::with_config(config.path(), &backend);
        let mut client = server.connect();
        let mut greeting = [0u8; 16];
        client.read_exact(&mut greeting).unwrap();
        let greeted = Instant::now();
        let closed = closed_by_server(&mut client, Duration::from_secs(6));
        let waited = greeted.elapsed();
        let (_, log) = server.stop();
        assert!(closed, "{backend}: a silent member was never closed");
        assert!(
            waited < Duration::from_secs(2),
            "{backend}: closed {waited:?} after the greeting, not within 2 s"
        );
        assert!(log.contains("idle_timeout=1"), "{backend}: {log}");
    }
}

/// The write-stall deadline used to be refreshed by anything the peer sent,
/// so a peer that trickled a byte now and then and never read kept a full
/// output queue alive forever.
#[test]
fn a_peer_that_trickles_but_never_reads_is_closed_at_write_secs() {
    // A high-water mark far above what is sent, so the server keeps reading
    // (and echoing into its queue) the trickled bytes.
    let config = Config::new(
        "trickle",
        "service = \"echo\"\n[timeouts]\nwrite_secs = 1\nidle_secs = 60\n\
         [limits]\noutput_high_water = 67108864\noutput_hard_limit = 134217728\n",
    );
    for backend in backends() {
        let server = Server::with_config(config.path(), &backend);
        let mut client = small_receive_buffer(&server);
        // Far more than the kernel buffers hold: the rest waits in the
        // server's queue, because this client never reads.
        let bulk = vec![b'x'; 1 << 20];
        for _ in 0..4 {
            client.write_all(&bulk).unwrap();
        }
        let stalled = Instant::now();
        let mut closed_after = None;
        while stalled.elapsed() < Duration::from_secs(8) {
            std::thread::sleep(Duration::from_millis(300));
            if client.write_all(b"z").is_err() {
                closed_after = Some(stalled.elapsed());
                break;
            }
        }
        let (_, log) = server.stop();
        let closed_after =
            closed_after.unwrap_or_else(|| panic!("{backend}: never closed; log:\n{log}"));
        assert!(
            closed_after < Duration::from_secs(4),
            "{backend}: closed after {closed_after:?} with write_secs = 1"
        );
        assert!(log.contains("write_timeout=1"), "{backend}: {log}");
    }
}

/// A lingering close used to be extended by every byte the peer trickled,
/// so it could last forever. Now it has a total budget (`linger_secs`,
/// 2 s by default).
#[test]
fn a_lingering_close_ends_on_time_however_the_peer_trickles() {
    for backend in backends() {
        let server = Server::service("chat", &backend, &["--no-tls"]);
        let mut client = server.connect();
        let mut greeting = [0u8; 16];
        client.read_exact(&mut greeting).unwrap();
        // A line longer than chat allows: the server closes this member,
        // with the rest of these bytes still unread in its socket, so it
        // sends FIN and lingers rather than reset.
        client.write_all(&vec![b'x'; 256 * 1024]).unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap(); // up to the server's FIN
        let fin = Instant::now();
        let mut gone_after = None;
        while fin.elapsed() < Duration::from_secs(8) {
            std::thread::sleep(Duration::from_millis(200));
            if client.write_all(b"trickle").is_err() {
                gone_after = Some(fin.elapsed());
                break;
            }
        }
        let (_, log) = server.stop();
        let gone_after = gone_after.unwrap_or_else(|| panic!("{backend}: lingered past 8 s"));
        assert!(
            gone_after < Duration::from_secs(4),
            "{backend}: lingered {gone_after:?} with the 2 s linger budget"
        );
        assert!(log.contains("linger_timeout=1"), "{backend}: {log}");
    }
}

/// The HTTP service used to answer every complete pipelined request in one
/// call: a client that pipelines and never reads made the server queue
/// eight times what it sent.
#[test]
fn pipelined_requests_from_a_client_that_never_reads_stay_bounded() {
    let high_water = 256 * 1024;
    let completion = backends_of_model("completion");
    for backend in backends() {
        // A completion driver's multishot receive reads ahead into the
        // buffer ring until the connection stops wanting input: a ring
        // (here 2 × 64 KiB) may wait in the slot while the connection holds
        // the previous one as unconsumed input, and its one send in flight
        // is a copy (at most 64 KiB); with the allocator's slack, 1 MiB is
        // allowed. Such a client sends 4 MiB, so that reading everything it
        // sends would still fail.
        let (extra, read_ahead, sent): (&[&str], u64, usize) = if completion.contains(&backend) {
            (&["--no-tls", "--uring-buffers", "2"], 1 << 20, 4 << 20)
        } else {
            (&["--no-tls"], 0, 1 << 20)
        };
        let server = Server::service("http", &backend, extra);
        let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let pipeline = request.repeat(sent / request.len());
        // Warm up with a client that does read: the worker's buffers and
        // allocator arenas are then in place, and what grows afterwards is
        // what the server holds for the one that does not.
        let mut warm = server.connect();
        let reader = {
            let mut warm = warm.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut sink = [0u8; 65536];
                while warm.read(&mut sink).is_ok_and(|n| n > 0) {}
            })
        };
        warm.write_all(&pipeline).unwrap();
        warm.shutdown(std::net::Shutdown::Write).unwrap();
        reader.join().unwrap();
        let before = server.rss_kib();
        let mut client = small_receive_buffer(&server);
        client
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        // The server stops reading once its queue is full, so the write
        // blocks part way; what matters is what the server holds meanwhile.
        let _ = client.write_all(&pipeline);
        std::thread::sleep(Duration::from_millis(500));
        let grown = server.rss_kib().saturating_sub(before) * 1024;
        eprintln!("{backend}: RSS grew {grown} bytes");
        drop(client);
        let _ = server.stop();
        let bound = 2 * high_water as u64 + read_ahead;
        assert!(
            grown < bound,
            "{backend}: RSS grew {grown} bytes for one client (bound {bound} bytes)"
        );
    }
}

/// A client socket whose receive buffer is as small as the kernel allows,
/// so that what the server sends backs up into the server's own queue.
fn small_receive_buffer(server: &Server) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}
