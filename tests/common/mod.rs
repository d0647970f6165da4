//! Starting a real `portcullis` process for a test, on 127.0.0.1 port 0.
//!
//! Every integration test talks to the real binary over real sockets: the
//! server prints `listening on ADDR` with the port the kernel picked, the
//! test reads it, connects, and stops the server with SIGTERM when done.

#![allow(dead_code)]

pub mod admin;
pub mod bench;
pub mod h2;
pub mod tls;
pub mod udp;
pub mod watched;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// The binary [`Server`] starts: this build, or the one named by
/// `PORTCULLIS_TEST_SERVER`, so a regression test can be run against an
/// older build to watch it fail.
pub fn server_binary() -> String {
    std::env::var("PORTCULLIS_TEST_SERVER").unwrap_or_else(|_| BIN.to_string())
}

/// The event-loop drivers of the binary under test that run on this
/// machine: the readiness backends and the io_uring completion driver. Every
/// feature (UDP aside) works under each of them.
pub fn backends() -> Vec<String> {
    listed()
        .into_iter()
        .filter(|(_, model)| model != "threads")
        .map(|(name, _)| name)
        .collect()
}

/// The runnable backends of one model: `readiness`, `completion` or
/// `threads`.
#[allow(dead_code)]
pub fn backends_of_model(model: &str) -> Vec<String> {
    listed()
        .into_iter()
        .filter(|(_, m)| m == model)
        .map(|(name, _)| name)
        .collect()
}

/// Every driver that runs on this machine, whatever its model, the
/// thread-per-connection baseline included. The end-to-end echo, chat and
/// TLS tests run against all of them.
#[allow(dead_code)]
pub fn drivers() -> Vec<String> {
    listed().into_iter().map(|(name, _)| name).collect()
}

/// `portcullis backends`: (name, model) of each line that says it runs here.
fn listed() -> Vec<(String, String)> {
    let out = Command::new(server_binary())
        .arg("backends")
        .output()
        .expect("run portcullis backends");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [name, model, "yes", ..] => Some((name.to_string(), model.to_string())),
                // An older build (PORTCULLIS_TEST_SERVER) lists names only,
                // all of them readiness backends compiled in.
                [name] => Some((name.to_string(), "readiness".to_string())),
                _ => None,
            }
        })
        .collect()
}

/// A running server process; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub addrs: Vec<SocketAddr>,
    /// UDP sockets, from the `udp listening on` lines.
    pub udp_addrs: Vec<SocketAddr>,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `portcullis serve ARGS` (add `--listen 127.0.0.1:0` yourself)
    /// and waits for every `listening on` line: one per `--listen` (or one
    /// when there is none, except for the `udp-` services, which listen on
    /// TCP only when asked), and one `udp listening on` per `--udp` (or one
    /// for a `udp-` service given none).
    pub fn start(args: &[&str]) -> Server {
        Self::start_with_env(args, &[])
    }

    /// Starts `portcullis serve ARGS` and waits for exactly `tcp` TCP and
    /// `udp` UDP `listening on` lines (for config files that list them).
    pub fn start_expecting(args: &[&str], tcp: usize, udp: usize) -> Server {
        Self::start_command(args, &[], None, Some((tcp, udp)))
    }

    /// Starts `SERVICE` on 127.0.0.1 port 0 with `BACKEND`, plus `extra`
    /// flags: the usual shape of a test server.
    pub fn service(service: &str, backend: &str, extra: &[&str]) -> Server {
        let mut args = vec![
            "--service",
            service,
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
        ];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// Starts the server from a config file on 127.0.0.1 port 0 with
    /// `BACKEND`.
    pub fn with_config(config: &str, backend: &str) -> Server {
        Server::start(&[
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
        ])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_command(args, env, None, None)
    }

    /// Starts the server with its open-file limit lowered to `fds`.
    pub fn start_with_fd_limit(args: &[&str], fds: u64) -> Server {
        Self::start_command(args, &[], Some(fds), None)
    }

    fn start_command(
        args: &[&str],
        env: &[(&str, &str)],
        fd_limit: Option<u64>,
        expected: Option<(usize, usize)>,
    ) -> Server {
        let (listeners, udp_sockets) = expected.unwrap_or_else(|| announced_sockets(args));
        let mut command = Command::new(server_binary());
        if let Some(fds) = fd_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure runs in the child between fork and exec and
            // calls only setrlimit, which is async-signal-safe; it touches
            // no memory shared with the parent.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: fds as libc::rlim_t,
                        rlim_max: fds as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        command
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn portcullis");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr: SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
                    let udp = line.contains("udp listening on ");
                    if tx.send((udp, addr)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut addrs = Vec::new();
        let mut udp_addrs = Vec::new();
        for _ in 0..listeners + udp_sockets {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok((false, addr)) => addrs.push(addr),
                Ok((true, addr)) => udp_addrs.push(addr),
                Err(_) => {
                    let _ = child.kill();
                    let log: Vec<String> = err_rx.try_iter().collect();
                    panic!(
                        "server did not announce its address; stderr:\n{}",
                        log.join("\n")
                    );
                }
            }
        }
        assert_eq!(
            (addrs.len(), udp_addrs.len()),
            (listeners, udp_sockets),
            "the server announced other sockets than expected"
        );
        Server {
            child,
            addrs,
            udp_addrs,
            stderr: err_rx,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The first UDP socket's address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addrs[0]
    }

    pub fn port(&self) -> u16 {
        self.addrs[0].port()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// Sends SIGTERM and waits; returns the exit code and the log.
    pub fn stop(mut self) -> (Option<i32>, String) {
        self.terminate();
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(15));
        // The reader thread may still be forwarding the last lines (the
        // summary among them) after the process exited: drain until it
        // sees end of file and hangs up, within a bound.
        let mut log = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => log.push(line),
                Err(_) => break,
            }
        }
        (status, log.join("\n"))
    }

    /// Log lines so far.
    pub fn log_so_far(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    fn terminate(&self) {
        send_signal(self.pid() as i32, libc::SIGTERM);
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf takes an integer and reads no memory of ours.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
            if wait_with_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// How many TCP and UDP `listening on` lines `serve ARGS` prints, when
/// the sockets come from flags (see [`Server::start`]).
fn announced_sockets(args: &[&str]) -> (usize, usize) {
    let count = |flag: &str| args.iter().filter(|a| **a == flag).count();
    let udp_service = args
        .windows(2)
        .any(|w| w[0] == "--service" && w[1].starts_with("udp-"));
    let tcp = match count("--listen") {
        0 if udp_service => 0,
        0 => 1,
        n => n,
    };
    let udp = match count("--udp") {
        0 => usize::from(udp_service),
        n => n,
    };
    (tcp, udp)
}

/// Sends SIGTERM without waiting, so a test can watch the server shut
/// down from a client's side.
pub fn send_sigterm(server: &Server) {
    send_signal(server.pid() as i32, libc::SIGTERM);
}

fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill takes plain integers; `pid` is a child this test spawned.
    unsafe {
        libc::kill(pid, signal);
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// How many workers say, in their exit line (`worker N: served M
/// connections`), that they served at least one connection.
pub fn workers_that_served(log: &str) -> usize {
    log.lines()
        .filter_map(|line| line.split("served ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|count| count.parse::<u64>().is_ok_and(|n| n > 0))
        .count()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Reads exactly `len` bytes.
pub fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).expect("read_exact");
    buf
}

/// Whether the server closed this connection (EOF or reset) within `timeout`.
pub fn closed_by_server(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
