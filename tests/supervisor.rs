//! `portcullis serve --processes N`: a supervisor and N worker processes on
//! one port. A worker killed with SIGKILL is restarted, and clients lose at
//! most the connections it held; SIGHUP to the supervisor reloads every
//! worker; SIGTERM drains them all.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::pattern;
use common::tls::{cert, run, TempDir, PROCESS_TIMEOUT};
use common::watched::Proc;

/// The address and worker pids from `portcullis: N processes on ADDR (pids ...)`.
fn group(server: &mut Proc, n: usize) -> (SocketAddr, Vec<u32>) {
    let line = server.wait_for(true, &format!("portcullis: {n} processes on "));
    let rest = line.split(" processes on ").nth(1).unwrap();
    let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
    let pids = rest
        .split("(pids ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let pids = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    (addr, pids)
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Which process holds the server side of each client connection: the
/// socket's inode from /proc/net/tcp, then the pid whose fds include it.
fn holders(server: SocketAddr, clients: &[TcpStream], pids: &[u32]) -> Vec<Option<u32>> {
    let mut inode_of_client_port = HashMap::new();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port =
            |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
        if port(fields[1]) == server.port() {
            inode_of_client_port.insert(port(fields[2]), fields[9].to_string());
        }
    }
    let mut owner = HashMap::new();
    for &pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.display().to_string();
                if let Some(inode) = target.strip_prefix("socket:[") {
                    owner.insert(inode.trim_end_matches(']').to_string(), pid);
                }
            }
        }
    }
    clients
        .iter()
        .map(|c| {
            let port = c.local_addr().unwrap().port();
            inode_of_client_port
                .get(&port)
                .and_then(|inode| owner.get(inode).copied())
        })
        .collect()
}

fn echoes(stream: &mut TcpStream, seed: u64) -> bool {
    let data = pattern(seed, 200);
    if stream.write_all(&data).is_err() {
        return false;
    }
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).is_ok() && back == data
}

#[test]
fn a_killed_worker_process_is_restarted_and_only_its_connections_fail() {
    let mut server = Proc::start(&[
        "--processes",
        "3",
        "--service",
        "echo",
        "--no-tls",
        "--listen",
        "127.0.0.1:0",
    ]);
    let (addr, pids) = group(&mut server, 3);
    assert_eq!(pids.len(), 3);
    let mut clients: Vec<TcpStream> = (0..30).map(|_| connect(addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        assert!(echoes(client, i as u64), "client {i} before the kill");
    }
    let held = holders(addr, &clients, &pids);
    assert!(
        held.iter().all(Option::is_some),
        "every connection has a holder: {held:?}"
    );
    let victim = pids[1];
    let victims = held.iter().filter(|h| **h == Some(victim)).count();
    assert!(
        victims > 0,
        "the kernel gave the victim no connection: {held:?}"
    );

    // SAFETY: kill takes plain integers; the pid is a worker of our server.
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    // Connections made while it is down queue on its socket, which the
    // supervisor keeps open, and are served once it is back.
    let during: Vec<TcpStream> = (0..12).map(|_| connect(addr)).collect();
    let ended = server.wait_for(false, &format!("(pid {victim}) ended"));
    assert!(ended.contains("restarting"), "{ended}");
    let started = server.wait_until(false, "a restart", |l| {
        l.contains("worker process 1 started (pid ") && !l.contains(&format!("(pid {victim})"))
    });
    assert!(!alive(victim));

    for (i, (client, holder)) in clients.iter_mut().zip(&held).enumerate() {
        let ok = echoes(client, 100 + i as u64);
        if *holder == Some(victim) {
            assert!(
                !ok,
                "client {i} was held by the killed process yet still echoes"
            );
        } else {
            assert!(ok, "client {i} lost although another process held it");
        }
    }
    for (i, mut client) in during.into_iter().enumerate() {
        assert!(
            echoes(&mut client, 200 + i as u64),
            "client {i} made during the restart"
        );
    }
    for i in 0..30 {
        let mut client = connect(addr);
        assert!(
            echoes(&mut client, 300 + i),
            "new client {i} after the restart"
        );
    }

    server.signal(libc::SIGTERM);
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", server.seen());
    let log = server.seen();
    assert!(log.contains("restarts=1"), "{started}\n{log}");
    for pid in pids {
        assert!(!alive(pid), "worker {pid} outlived the supervisor");
    }
}

/// The serial `openssl s_client` sees at `addr`.
fn served_serial(addr: SocketAddr) -> String {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-CAfile", &cert("ca.pem")]);
    let out = run(&mut command, b"", PROCESS_TIMEOUT);
    let mut x509 = Command::new("openssl");
    x509.args(["x509", "-noout", "-serial"]);
    run(&mut x509, out.stdout.as_bytes(), PROCESS_TIMEOUT)
        .stdout
        .trim()
        .to_string()
}

#[test]
fn sighup_to_the_supervisor_reloads_every_worker_process() {
    let dir = TempDir::new("supervisor-reload");
    dir.copy_cert("server.pem");
    dir.copy_cert("server.key");
    let config = dir.write(
        "portcullis.toml",
        "service = \"echo\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [[domains]]\nnames = [\"localhost\"]\ncert = \"server.pem\"\nkey = \"server.key\"\n",
    );
    let config = config.display().to_string();
    let mut server = Proc::start(&["--processes", "2", "--config", &config]);
    let (addr, _) = group(&mut server, 2);
    let before = served_serial(addr);
    assert!(before.starts_with("serial="), "{before}");
    let mut live = common::tls::tls_connect(addr, "localhost", None).unwrap();
    live.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    live.read_exact(&mut back).unwrap();

    std::fs::copy(cert("server-ecdsa.pem"), dir.path.join("server.pem")).unwrap();
    std::fs::copy(cert("server-ecdsa.key"), dir.path.join("server.key")).unwrap();
    server.signal(libc::SIGHUP);
    for _ in 0..2 {
        server.wait_for(false, "] reloaded ");
    }
    let after = served_serial(addr);
    assert_ne!(before, after);
    for _ in 0..8 {
        assert_eq!(
            served_serial(addr),
            after,
            "every process serves the new cert"
        );
    }
    live.write_all(b"pong").unwrap();
    live.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"pong", "a connection from before the reload");
}

#[test]
fn workers_drain_and_exit_when_the_supervisor_is_killed_outright() {
    let mut server = Proc::start(&[
        "--processes",
        "2",
        "--service",
        "echo",
        "--no-tls",
        "--listen",
        "127.0.0.1:0",
    ]);
    let (addr, pids) = group(&mut server, 2);
    assert!(echoes(&mut connect(addr), 1));
    server.signal(libc::SIGKILL);
    server.child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "orphaned workers kept running"
    );
}
