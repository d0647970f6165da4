//! The echo service over plaintext, against every driver that runs here
//! (the readiness backends and `threads`): integrity with one and with a
//! thousand clients, large messages through partial writes, clients that
//! misbehave, the connection limit, and shutdown.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{backends, closed_by_server, drivers, pattern, read_exact, Server};

fn echo_server(backend: &str, extra: &[&str]) -> Server {
    Server::service("echo", backend, extra)
}

#[test]
fn one_client_gets_every_byte_back() {
    for backend in drivers() {
        let server = echo_server(&backend, &[]);
        let mut client = server.connect();
        for (i, size) in [1usize, 32, 1000, 65_536, 200_000].into_iter().enumerate() {
            let message = pattern(i as u64, size);
            client.write_all(&message).unwrap();
            assert_eq!(
                read_exact(&mut client, size),
                message,
                "{backend}: size {size}"
            );
        }
        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
    }
}

#[test]
fn a_thousand_concurrent_clients_each_get_their_own_bytes() {
    const CLIENTS: usize = 1000;
    const THREADS: usize = 8;
    const ROUNDS: usize = 3;
    for backend in drivers() {
        let server = echo_server(&backend, &[]);
        let addr = server.addr();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut clients: Vec<TcpStream> = (0..CLIENTS / THREADS)
                        .map(|_| {
                            let s = TcpStream::connect(addr).unwrap();
                            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                            s
                        })
                        .collect();
                    for round in 0..ROUNDS {
                        // Every client sends before any reads: all are in
                        // flight on the server at once.
                        for (i, client) in clients.iter_mut().enumerate() {
                            let seed = (t * 100_000 + i * 10 + round) as u64;
                            client.write_all(&pattern(seed, 32 + i % 200)).unwrap();
                        }
                        for (i, client) in clients.iter_mut().enumerate() {
                            let seed = (t * 100_000 + i * 10 + round) as u64;
                            let expected = pattern(seed, 32 + i % 200);
                            assert_eq!(read_exact(client, expected.len()), expected);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread
                .join()
                .unwrap_or_else(|_| panic!("{backend}: a client thread failed"));
        }
    }
}

#[test]
fn a_four_mebibyte_message_survives_partial_writes() {
    const SIZE: usize = 4 * 1024 * 1024;
    for backend in drivers() {
        let server = echo_server(&backend, &[]);
        let client = server.connect();
        let mut reader = client.try_clone().unwrap();
        let message = pattern(42, SIZE);
        let to_send = message.clone();
        let mut writer = client;
        let sender = std::thread::spawn(move || writer.write_all(&to_send).unwrap());
        let echoed = read_exact(&mut reader, SIZE);
        sender.join().unwrap();
        assert!(echoed == message, "{backend}: 4 MiB echo differs");
    }
}

#[test]
fn a_client_that_never_reads_is_paused_not_buffered_and_others_keep_going() {
    for backend in drivers() {
        let server = echo_server(&backend, &[]);
        let rss_before = server.rss_kib();
        // The hog sends as much as the sockets will take and reads nothing.
        let mut hog = server.connect();
        hog.set_nonblocking(true).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        let mut stalls = 0;
        while sent < 256 * 1024 * 1024 && stalls < 50 {
            match hog.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    stalls += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{backend}: hog write failed: {e}"),
            }
        }
        // The server stopped reading: the hog could not push much more than
        // the kernel buffers on both sides plus the server's high-water mark.
        assert!(
            sent < 64 * 1024 * 1024,
            "{backend}: server kept reading ({sent} bytes)"
        );
        let grown = server.rss_kib().saturating_sub(rss_before);
        assert!(grown < 16 * 1024, "{backend}: server grew by {grown} KiB");
        // Meanwhile another client is served normally.
        let mut other = server.connect();
        for i in 0..100 {
            let message = pattern(i, 32);
            other.write_all(&message).unwrap();
            assert_eq!(read_exact(&mut other, 32), message, "{backend}");
        }
    }
}

#[test]
fn resets_in_the_middle_of_a_write_disturb_nobody_else() {
    for backend in drivers() {
        let server = echo_server(&backend, &[]);
        let mut bystander = server.connect();
        for i in 0..20 {
            let mut victim = server.connect();
            victim.write_all(&pattern(i, 512 * 1024)).unwrap_or(());
            // SO_LINGER 0 turns close into a reset while the server is still
            // writing the echo back.
            socket2::SockRef::from(&victim)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(victim);
            let message = pattern(1000 + i, 100);
            bystander.write_all(&message).unwrap();
            assert_eq!(read_exact(&mut bystander, 100), message, "{backend}");
        }
        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: {log}");
        assert!(!log.contains("panicked"), "{backend}: {log}");
    }
}

#[test]
fn max_conns_refuses_the_extra_connection_and_serves_the_rest() {
    for backend in drivers() {
        let server = echo_server(&backend, &["--max-conns", "3"]);
        let mut admitted: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
        for (i, client) in admitted.iter_mut().enumerate() {
            client.write_all(&pattern(i as u64, 10)).unwrap();
            assert_eq!(read_exact(client, 10), pattern(i as u64, 10));
        }
        let mut extra = server.connect();
        let _ = extra.write_all(b"anyone there?");
        assert!(
            closed_by_server(&mut extra, Duration::from_secs(10)),
            "{backend}: extra connection not refused"
        );
        for (i, client) in admitted.iter_mut().enumerate() {
            client.write_all(&pattern(10 + i as u64, 10)).unwrap();
            assert_eq!(
                read_exact(client, 10),
                pattern(10 + i as u64, 10),
                "{backend}"
            );
        }
        // A slot freed is a slot reusable.
        drop(admitted.pop());
        std::thread::sleep(Duration::from_millis(200));
        let mut again = server.connect();
        again.write_all(b"hi").unwrap();
        assert_eq!(read_exact(&mut again, 2), b"hi");
        let (_, log) = server.stop();
        assert!(
            log.contains("max_connections=1"),
            "{backend}: counter missing from summary:\n{log}"
        );
    }
}

#[test]
fn half_close_still_gets_the_whole_echo() {
    for backend in drivers() {
        let server = echo_server(&backend, &[]);
        let mut client = server.connect();
        let message = pattern(7, 100_000);
        client.write_all(&message).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut echoed = Vec::new();
        client.read_to_end(&mut echoed).unwrap();
        assert!(
            echoed == message,
            "{backend}: {} of {} bytes",
            echoed.len(),
            message.len()
        );
    }
}

#[test]
fn several_workers_serve_one_port() {
    let server = echo_server(&backends()[0], &["--workers", "3"]);
    let mut clients: Vec<TcpStream> = (0..30).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.write_all(&pattern(i as u64, 64)).unwrap();
        assert_eq!(read_exact(client, 64), pattern(i as u64, 64));
    }
    drop(clients);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0));
    let serving = common::workers_that_served(&log);
    assert!(serving >= 2, "only {serving} worker(s) served; log:\n{log}");
}

#[test]
fn an_unknown_backend_is_refused_with_the_list_of_choices() {
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--backend", "nosuch", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown backend `nosuch`"), "{stderr}");
    for backend in drivers() {
        assert!(
            stderr.contains(&backend),
            "{stderr} does not list {backend}"
        );
    }
}
