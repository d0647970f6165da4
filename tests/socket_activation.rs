//! systemd socket activation, from a small launcher: the test binds a
//! listening socket, puts it at descriptor 3 in the child (`pre_exec`), and
//! sets `LISTEN_FDS=1` and `LISTEN_PID` to the child's own pid (known only
//! in the child, so a shell sets it and `exec`s the server, keeping the
//! pid). The server must serve that socket instead of binding one: same
//! port, and connections queued before it started are served.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::BIN;

/// Starts `serve ARGS` with `listener` at descriptor 3 and the
/// activation variables; `pid` is `$$` (the server's own) or a fixed one.
fn launch(listener: &TcpListener, pid: &str, args: &[&str]) -> Child {
    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("LISTEN_PID={pid} exec \"$0\" \"$@\""))
        .arg(BIN)
        .arg("serve")
        .args(args)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "echo")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only calls dup2 and fcntl,
    // which are async-signal-safe, on descriptors this process owns.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself would keep close-on-exec set.
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().expect("spawn sh")
}

/// The address of the `listening on` line, or the log if the server exits.
fn announced(child: &mut Child) -> Result<SocketAddr, String> {
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(rest) = line.split("listening on ").nth(1) {
            return Ok(rest.split_whitespace().next().unwrap().parse().unwrap());
        }
    }
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    Err(log)
}

fn stop(mut child: Child) -> Option<i32> {
    // SAFETY: kill takes plain integers; the pid is our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap().code()
}

#[test]
fn an_inherited_socket_is_served_instead_of_binding() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Queued before the server exists: the socket outlives processes.
    let mut early = TcpStream::connect(addr).unwrap();
    early.write_all(b"queued before start\n").unwrap();
    early
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let args = ["--service", "echo", "--no-tls", "--listen", "127.0.0.1:0"];
    let mut child = launch(&listener, "$$", &args);
    drop(listener); // the server holds it now
    let served = announced(&mut child).expect("the server started");
    assert_eq!(
        served, addr,
        "the inherited socket is served, not a new one"
    );

    let mut echoed = [0u8; 20];
    early.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"queued before start\n");
    let mut late = TcpStream::connect(addr).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    late.write_all(b"after").unwrap();
    let mut back = [0u8; 5];
    late.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"after");

    // Close-on-exec is set on the adopted descriptor.
    let info = std::fs::read_to_string(format!("/proc/{}/fdinfo/3", child.id())).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
        .unwrap();
    assert_ne!(flags & libc::O_CLOEXEC as u32, 0, "fd 3 flags {flags:o}");
    assert_eq!(stop(child), Some(0));
}

#[test]
fn variables_meant_for_another_process_are_ignored() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let args = ["--service", "echo", "--no-tls", "--listen", "127.0.0.1:0"];
    let mut child = launch(&listener, "1", &args);
    let served = announced(&mut child).expect("the server started");
    assert_ne!(
        served, addr,
        "LISTEN_PID names another process: bind as usual"
    );
    assert_eq!(stop(child), Some(0));
}

#[test]
fn a_socket_no_listener_is_configured_for_is_an_error_naming_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let args = ["--service", "echo", "--no-tls", "--listen", "127.0.0.2:0"];
    let mut child = launch(&listener, "$$", &args);
    let log = announced(&mut child).expect_err("the server must refuse to start");
    assert!(
        log.contains("LISTEN_FDS: descriptor 3 (echo)") && log.contains("127.0.0.2:0"),
        "{log}"
    );
    assert_eq!(child.wait().unwrap().code(), Some(2));
}
