//! Running `portcullis bench` from a test, and echo fixtures that watch how
//! a bench client writes.
//!
//! [`bench`] runs the real binary and parses its RESULT line. An
//! [`EchoFixture`] is a std::net echo server that withholds its echoes
//! until a chosen number of bytes is waiting, and records, per connection,
//! the most bytes ever sent to it and not yet echoed, and the data segments
//! the kernel received (`TCP_INFO`): the two things that tell the modes of
//! `bench echo` apart.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::BIN;

pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub result: HashMap<String, String>,
}

impl Outcome {
    pub fn get(&self, key: &str) -> &str {
        self.result
            .get(key)
            .unwrap_or_else(|| panic!("no `{key}` in RESULT; stdout:\n{}", self.stdout))
    }

    pub fn number(&self, key: &str) -> f64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("`{key}` is not a number; stdout:\n{}", self.stdout))
    }

    /// Exit 0, errors=0, and the figures every scenario reports.
    pub fn assert_clean(&self, scenario: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert_eq!(self.get("scenario"), scenario);
        assert_eq!(self.number("errors"), 0.0);
        assert!(self.number("msgs_per_s") > 0.0, "{}", self.stdout);
        self.number("mib_per_s");
    }
}

/// Runs `portcullis bench ARGS` and parses its last line.
pub fn bench(args: &[&str]) -> Outcome {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run portcullis bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("RESULT "),
        "the last line is not RESULT:\n{stdout}\nstderr:\n{stderr}"
    );
    let result = last
        .split_whitespace()
        .skip(1)
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    Outcome {
        code: out.status.code(),
        stdout,
        stderr,
        result,
    }
}

/// What a fixture saw of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    pub received: u64,
    /// The most bytes received and not yet echoed, measured after letting
    /// the client send all it would.
    pub most_unechoed: u64,
    /// Segments carrying data that the kernel received (`TCP_INFO`).
    pub data_segments: u64,
}

/// An echo server that echoes only once `batch` bytes are waiting (or the
/// client has finished sending), so a client that keeps sending without
/// echoes shows it.
pub struct EchoFixture {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// How long the fixture keeps listening, once a batch is complete, for
/// bytes beyond it: a client that overruns its window has sent them by then.
const OVERRUN_WAIT: Duration = Duration::from_millis(30);

impl EchoFixture {
    pub fn start(batch: u64) -> EchoFixture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fixture");
        let addr = listener.local_addr().expect("fixture address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let all = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let all = all.clone();
                std::thread::spawn(move || {
                    let seen = serve(stream, batch);
                    all.lock().expect("fixture lock").push(seen);
                });
            }
        });
        EchoFixture { addr, seen }
    }

    /// What was seen of each connection, once `connections` have closed
    /// (the bench has exited by then, but the fixture's threads may still
    /// be reading the last FIN).
    pub fn seen(&self, connections: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.seen.lock().expect("fixture lock").clone();
            if seen.len() >= connections || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn serve(mut stream: TcpStream, batch: u64) -> Seen {
    let mut seen = Seen::default();
    let mut waiting: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut finished = false;
    while !finished {
        // Collect until a batch is waiting or the client stops sending.
        stream.set_read_timeout(None).expect("blocking read");
        while (waiting.len() as u64) < batch {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    finished = true;
                    break;
                }
                Ok(n) => waiting.extend_from_slice(&buf[..n]),
            }
        }
        // Anything beyond the batch that the client sends unprompted.
        if !finished {
            stream
                .set_read_timeout(Some(OVERRUN_WAIT))
                .expect("read timeout");
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        finished = true;
                        break;
                    }
                    Ok(n) => waiting.extend_from_slice(&buf[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break
                    }
                    Err(_) => {
                        finished = true;
                        break;
                    }
                }
            }
        }
        seen.received += waiting.len() as u64;
        seen.most_unechoed = seen.most_unechoed.max(waiting.len() as u64);
        if stream.write_all(&waiting).is_err() {
            break;
        }
        waiting.clear();
    }
    seen.data_segments = data_segments_in(&stream);
    seen
}

/// `tcpi_data_segs_in` of a connected socket (0 where unavailable).
fn data_segments_in(stream: &TcpStream) -> u64 {
    // SAFETY: tcp_info is plain integers; all-zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the descriptor is a live TCP socket owned by `stream`; `info`
    // and `len` describe a writable buffer of `len` bytes, and the kernel
    // writes at most that many.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        u64::from(info.tcpi_data_segs_in)
    } else {
        0
    }
}
