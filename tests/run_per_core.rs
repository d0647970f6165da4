//! `scripts/run-per-core.sh`: several server processes on one port behind
//! SO_REUSEPORT, all stopped together by one signal to the script.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{pattern, read_exact, BIN};

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn processes_share_the_port_and_stop_together() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run-per-core.sh");
    let mut child = Command::new("bash")
        .args([
            script,
            "3",
            "--service",
            "echo",
            "--no-tls",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("PORTCULLIS_BIN", BIN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start run-per-core.sh");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (addr, pids) = loop {
        let line = lines.next().expect("the script ended early").unwrap();
        if let Some(rest) = line.strip_prefix("portcullis: 3 processes on ") {
            let addr: std::net::SocketAddr =
                rest.split_whitespace().next().unwrap().parse().unwrap();
            let pids: Vec<u32> = rest
                .split("(pids ")
                .nth(1)
                .unwrap()
                .split(')')
                .next()
                .unwrap()
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
            break (addr, pids);
        }
    };
    assert_eq!(pids.len(), 3);
    // Give the two later processes a moment to bind, then spread clients.
    std::thread::sleep(Duration::from_millis(500));
    let mut clients: Vec<_> = (0..30)
        .map(|_| {
            let s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.write_all(&pattern(i as u64, 100)).unwrap();
        assert_eq!(read_exact(client, 100), pattern(i as u64, 100));
    }
    drop(clients);
    // SIGTERM to the script stops every process it started.
    // SAFETY: kill takes plain integers; the pid is the script we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    while pids.iter().any(|&pid| alive(pid)) && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    assert!(
        pids.iter().all(|&pid| !alive(pid)),
        "server processes outlived the script"
    );
}

#[test]
fn the_binary_is_found_under_cargo_target_dir_and_the_overrides_are_documented() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run-per-core.sh");
    let help = Command::new("bash")
        .args([script, "--help"])
        .output()
        .expect("run-per-core.sh --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("PORTCULLIS_BIN"), "{help}");
    assert!(help.contains("CARGO_TARGET_DIR"), "{help}");

    // A target directory elsewhere, as CARGO_TARGET_DIR names it, whose
    // release/portcullis leaves a mark and runs the binary under test: the
    // script must run that one, not target/ in the repository.
    let target = std::env::temp_dir().join(format!("run-per-core-target-{}", std::process::id()));
    std::fs::create_dir_all(target.join("release")).unwrap();
    let mark = target.join("used");
    let wrapper = target.join("release/portcullis");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ntouch '{}'\nexec '{BIN}' \"$@\"\n",
            mark.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut child = Command::new("bash")
        .args([
            script,
            "1",
            "--service",
            "echo",
            "--no-tls",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("PORTCULLIS_BIN")
        .env("CARGO_TARGET_DIR", &target)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start run-per-core.sh");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.starts_with("portcullis: 1 processes on "));
    // SAFETY: kill takes plain integers; the pid is the script we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    let used = mark.exists();
    let _ = std::fs::remove_dir_all(&target);
    assert!(started.is_some(), "the script did not start the server");
    assert!(
        used,
        "the script did not run $CARGO_TARGET_DIR/release/portcullis"
    );
}
