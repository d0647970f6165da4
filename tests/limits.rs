//! Resource limits: running out of descriptors must neither spin the CPU nor
//! stop the server from serving the connections it already has.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{backends, closed_by_server, pattern, read_exact, Server};

#[test]
fn out_of_descriptors_sheds_new_connections_without_spinning() {
    for backend in backends() {
        // A tiny descriptor limit and a connection limit above it, so that
        // accept itself hits EMFILE.
        let server = Server::start_with_fd_limit(
            &[
                "--service",
                "echo",
                "--no-tls",
                "--listen",
                "127.0.0.1:0",
                "--backend",
                &backend,
                "--max-conns",
                "1000",
            ],
            40,
        );
        let mut admitted = Vec::new();
        let mut shed = 0;
        let mut others: Vec<TcpStream> = Vec::new();
        for i in 0..80u64 {
            let mut client = server.connect();
            client.write_all(&pattern(i, 16)).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 16];
            match std::io::Read::read_exact(&mut client, &mut buf) {
                Ok(()) => {
                    assert_eq!(buf.to_vec(), pattern(i, 16));
                    admitted.push(client);
                }
                Err(_) => {
                    shed += 1;
                    others.push(client);
                }
            }
        }
        assert!(shed > 0, "{backend}: the limit was never reached");
        assert!(
            admitted.len() >= 20,
            "{backend}: only {} admitted",
            admitted.len()
        );
        for client in &mut others {
            assert!(
                closed_by_server(client, Duration::from_secs(5)),
                "{backend}: a shed client hangs"
            );
        }
        // At the limit, the server must be idle, not spinning on EMFILE.
        let before = server.cpu_time();
        std::thread::sleep(Duration::from_secs(1));
        let used = server.cpu_time() - before;
        assert!(
            used < Duration::from_millis(300),
            "{backend}: {used:?} of CPU in 1 s at the limit"
        );
        // Existing connections are still served.
        for (i, client) in admitted.iter_mut().enumerate() {
            let message = pattern(1000 + i as u64, 64);
            client.write_all(&message).unwrap();
            assert_eq!(read_exact(client, 64), message, "{backend}");
        }
        // Freed descriptors are used again.
        admitted.clear();
        others.clear();
        std::thread::sleep(Duration::from_millis(300));
        let mut again = server.connect();
        again.write_all(b"back").unwrap();
        assert_eq!(read_exact(&mut again, 4), b"back", "{backend}");
        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: {log}");
        assert!(
            log.contains("out of file descriptors"),
            "{backend}: no log line:\n{log}"
        );
        assert!(
            log.contains("out_of_descriptors="),
            "{backend}: no counter:\n{log}"
        );
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let dir = std::env::temp_dir().join(format!("portcullis-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("idle.toml");
    std::fs::write(&config, "service = \"echo\"\n[timeouts]\nidle_secs = 0.5\n").unwrap();
    for backend in backends() {
        let server = Server::with_config(config.to_str().unwrap(), &backend);
        let mut idle = server.connect();
        idle.write_all(b"hi").unwrap();
        assert_eq!(read_exact(&mut idle, 2), b"hi");
        let mut busy = server.connect();
        // The busy client keeps talking past the idle timeout and stays.
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(100));
            busy.write_all(&pattern(i, 8)).unwrap();
            assert_eq!(read_exact(&mut busy, 8), pattern(i, 8), "{backend}");
        }
        assert!(
            closed_by_server(&mut idle, Duration::from_secs(5)),
            "{backend}: idle connection kept"
        );
        busy.write_all(b"still here").unwrap();
        assert_eq!(read_exact(&mut busy, 10), b"still here", "{backend}");
        // Leave before the shutdown: the drain serves an open connection on,
        // so the idle timeout would end this one too.
        drop(busy);
        let (_, log) = server.stop();
        assert!(log.contains("idle_timeout=1"), "{backend}:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
