//! When io_uring cannot be set up, `--backend uring` is refused at start-up
//! with the reason and the backends that do run, `portcullis backends` says
//! `no` with the reason, and the default backend is unaffected.
//!
//! The machine is not changed for this: each server runs under a seccomp
//! filter, installed in the child between fork and exec, that fails
//! `io_uring_setup` with the errno a hardened system gives (`EPERM` for
//! `kernel.io_uring_disabled` or a container's policy, `ENOSYS` for a kernel
//! without io_uring). The one idea: **the real probe meets the real
//! failure**, so the test covers the code that runs on such a machine.

#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{backends, server_binary};

/// A classic BPF program for seccomp: `io_uring_setup` fails with `errno`,
/// every other system call is allowed.
fn filter(errno: u32) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K (0)
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.nr is the first field.
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 0, 1, libc::SYS_io_uring_setup as u32),
        op(RET_K, 0, 0, RET_ERRNO | errno),
        op(RET_K, 0, 0, RET_ALLOW),
    ]
}

/// `portcullis ARGS` with `io_uring_setup` failing with `errno`.
fn without_io_uring(errno: i32, args: &[&str]) -> Command {
    let mut command = Command::new(server_binary());
    command.args(args);
    let program = filter(errno as u32);
    // SAFETY: the closure runs in the child between fork and exec. It only
    // calls prctl, which is async-signal-safe, and reads `program`, which
    // the child's copy of the parent's memory holds unchanged.
    unsafe {
        command.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

fn run(mut command: Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .expect("run portcullis")
}

fn uring_is_built_and_runs() -> bool {
    backends().iter().any(|b| b == "uring")
}

#[test]
fn asking_for_uring_fails_at_start_up_with_the_reason_and_the_choices() {
    if !uring_is_built_and_runs() {
        eprintln!("note: uring does not run on this machine even unfiltered; skipped");
        return;
    }
    for (errno, reason) in [
        (libc::EPERM, "io_uring_setup is not permitted"),
        (libc::ENOSYS, "this kernel has no io_uring"),
    ] {
        let out = run(without_io_uring(
            errno,
            &[
                "serve",
                "--service",
                "echo",
                "--backend",
                "uring",
                "--listen",
                "127.0.0.1:0",
            ],
        ));
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{stderr}");
        assert!(!out.status.success(), "started without io_uring: {stderr}");
        assert!(
            stderr.contains("backend `uring` cannot run on this machine")
                && stderr.contains(reason),
            "{stderr}"
        );
        let choices = stderr
            .rsplit("available: ")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap();
        let choices: Vec<&str> = choices.split(", ").collect();
        assert!(
            choices.contains(&"epoll") && choices.contains(&"threads"),
            "{stderr}"
        );
        assert!(!choices.contains(&"uring"), "{stderr}");
    }
}

#[test]
fn the_listing_says_no_with_the_reason() {
    if !uring_is_built_and_runs() {
        return;
    }
    let out = run(without_io_uring(libc::EPERM, &["backends"]));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("uring "))
        .unwrap_or_else(|| panic!("no uring line:\n{stdout}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[..3], ["uring", "readiness", "no"], "{line}");
    assert!(line.contains("not permitted"), "{line}");
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some("yes")),
        "{stdout}"
    );
}

/// The default never lands on a backend that cannot run: the same filter,
/// no `--backend`, and the server starts and serves.
#[test]
fn the_default_backend_starts_without_io_uring() {
    if !uring_is_built_and_runs() {
        return;
    }
    let mut command = without_io_uring(
        libc::EPERM,
        &["serve", "--service", "echo", "--listen", "127.0.0.1:0"],
    );
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start portcullis");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"));
    let result = std::panic::catch_unwind(|| {
        assert!(line.contains("backend epoll"), "{line}");
        echo_once(addr);
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn echo_once(addr: SocketAddr) {
    use std::io::{Read, Write};
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}
