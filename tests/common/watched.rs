//! A server process whose every output line is kept, for tests that wait
//! for lines printed long after start-up (a reload's, a supervisor's).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::server_binary;

/// A server whose every output line is kept, so the test can wait for
/// lines a reload prints long after start-up.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<(bool, String)>,
    seen: Vec<(bool, String)>,
    /// Which of `seen` a wait has already returned.
    used: Vec<bool>,
}

impl Proc {
    pub fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(server_binary())
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info")
            .spawn()
            .expect("spawn portcullis");
        let (tx, lines) = mpsc::channel();
        for (is_stdout, stream) in [
            (
                true,
                Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            ),
            (false, Box::new(child.stderr.take().unwrap())),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send((is_stdout, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            child,
            lines,
            seen: Vec::new(),
            used: Vec::new(),
        }
    }

    /// Waits for a line (stdout when `stdout`) containing `needle`, after
    /// the ones already returned; returns it.
    pub fn wait_for(&mut self, stdout: bool, needle: &str) -> String {
        self.wait_until(stdout, needle, |line| line.contains(needle))
    }

    pub fn wait_until(&mut self, stdout: bool, what: &str, test: impl Fn(&str) -> bool) -> String {
        // Lines arrive from two pipes, so one printed later may be read
        // first: look through what came but was not yet returned.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = (0..self.seen.len())
                .find(|&i| !self.used[i] && self.seen[i].0 == stdout && test(&self.seen[i].1));
            if let Some(i) = found {
                self.used[i] = true;
                return self.seen[i].1.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line);
                    self.used.push(false);
                }
                Err(_) => panic!(
                    "no line with {what:?}; seen:\n{}",
                    self.seen
                        .iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// The addresses of the next `n` `listening on` lines.
    pub fn listening(&mut self, n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|_| {
                let line = self.wait_for(true, "listening on ");
                let rest = line.split("listening on ").nth(1).unwrap();
                rest.split_whitespace().next().unwrap().parse().unwrap()
            })
            .collect()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes plain integers; the pid is our own child.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// SIGHUP, then the reload's outcome line from the log.
    pub fn reload(&mut self) -> String {
        self.signal(libc::SIGHUP);
        self.wait_until(false, "reload outcome", |line| {
            line.contains("reload refused") || line.contains("] reloaded ")
        })
    }

    /// Every line seen so far, stdout and stderr, in order of arrival.
    pub fn seen(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
            self.used.push(false);
        }
        self.seen
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
