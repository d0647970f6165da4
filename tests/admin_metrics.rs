//! `/metrics` scraped during real load and read with a real Prometheus
//! parser: every counter moves as the load says — plaintext, TLS and mTLS
//! echo connections, a failed handshake, a resumed session, and connections
//! refused by `--max-conns` — per listener, per worker and per transport.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::admin::{self, scrape, scrape_until, sum};
use common::tls::{cert, run, tls_connect, TempDir, PROCESS_TIMEOUT};
use common::{backends, closed_by_server, pattern};

const PLAIN: usize = 3;
const TLS: usize = 2;
const MTLS: usize = 1;
const REFUSED: usize = 4;
const MESSAGE: usize = 1000;

fn echo<S: Read + Write>(stream: &mut S, seed: u64) {
    let message = pattern(seed, MESSAGE);
    stream.write_all(&message).unwrap();
    stream.flush().unwrap();
    let mut back = vec![0; MESSAGE];
    stream.read_exact(&mut back).unwrap();
    assert!(back == message, "the echo changed the bytes");
}

/// `openssl s_client` over TLS 1.2 with session ids, saving or offering the
/// session in `file`; it sends one line and leaves at the end of its input.
fn s_client_session(port: u16, file: &std::path::Path, resume: bool) -> String {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-CAfile", &cert("ca.pem"), "-verify_return_error"])
        .args(["-servername", "localhost", "-tls1_2", "-no_ticket"])
        .arg(if resume { "-sess_in" } else { "-sess_out" })
        .arg(file);
    let out = run(&mut command, b"hello\n", PROCESS_TIMEOUT);
    assert!(out.success(), "s_client\n{}", out.all());
    out.stdout
}

#[test]
fn every_counter_moves_as_the_load_says() {
    let backend = &backends()[0];
    let max = (PLAIN + TLS + MTLS).to_string();
    let (server, admin) = admin::start(
        &[
            "--service",
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
            "--workers",
            "2",
            "--max-conns",
            &max,
        ],
        1,
    );
    let addr = server.addr();
    let first = scrape(admin);
    assert_eq!(
        sum(
            &first,
            "portcullis_build_info",
            &[("backend", backend.as_str())]
        ),
        1.0
    );
    assert_eq!(
        sum(&first, "portcullis_connections_accepted_total", &[]),
        0.0
    );
    assert_eq!(
        sum(&first, "portcullis_max_connections", &[]),
        max.parse::<f64>().unwrap()
    );

    // 1. A handshake that fails: mtls.localhost without a client certificate.
    let failed = tls_connect(addr, "mtls.localhost", None);
    if let Ok(mut stream) = failed {
        // TLS 1.3: the client finished first; the server's refusal arrives
        // as an alert on the first read.
        let _ = stream.write_all(b"x");
        let mut buf = [0u8; 16];
        assert!(stream.read(&mut buf).map_or(true, |n| n == 0));
    }
    let s = scrape_until(admin, |s| {
        sum(s, "portcullis_tls_handshakes_failed_total", &[]) >= 1.0
            && sum(s, "portcullis_connections_open", &[]) == 0.0
    });
    assert_eq!(
        sum(
            &s,
            "portcullis_tls_handshakes_failed_total",
            &[("reason", "no_client_cert")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "portcullis_connections_closed_total",
            &[("transport", "none"), ("reason", "tls_handshake_failed")]
        ),
        1.0
    );

    // 2. The load: plaintext, TLS and mTLS connections, echoing at once
    // while /metrics is scraped.
    let mut plain: Vec<TcpStream> = (0..PLAIN).map(|_| server.connect()).collect();
    let mut tls: Vec<_> = (0..TLS)
        .map(|_| tls_connect(addr, "localhost", None).unwrap())
        .collect();
    let mut mtls: Vec<_> = (0..MTLS)
        .map(|_| tls_connect(addr, "mtls.localhost", Some(("client.pem", "client.key"))).unwrap())
        .collect();
    // The plaintext clients echo until five scrapes have been taken.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let mut plain: Vec<TcpStream> = plain.iter().map(|s| s.try_clone().unwrap()).collect();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::Acquire) {
                for (i, stream) in plain.iter_mut().enumerate() {
                    echo(stream, (rounds * 10 + i) as u64);
                }
                rounds += 1;
            }
            rounds
        })
    };
    let mut last_in = 0.0;
    for _ in 0..5 {
        let s = scrape(admin);
        let now_in = sum(
            &s,
            "portcullis_received_bytes_total",
            &[("transport", "plain")],
        );
        assert!(
            now_in >= last_in,
            "bytes in went back: {last_in} then {now_in}"
        );
        last_in = now_in;
    }
    stop.store(true, Ordering::Release);
    let rounds = load.join().unwrap();
    assert!(last_in > 0.0, "the scrapes saw none of the load");
    for (i, stream) in tls.iter_mut().enumerate() {
        echo(stream, 1000 + i as u64);
    }
    for (i, stream) in mtls.iter_mut().enumerate() {
        echo(stream, 2000 + i as u64);
    }

    // 3. Refused: the limit is full, so these are accepted and closed.
    for _ in 0..REFUSED {
        let mut extra = server.connect();
        // A byte, so that TCP_DEFER_ACCEPT hands the connection over.
        extra.write_all(b"x").unwrap();
        assert!(closed_by_server(&mut extra, Duration::from_secs(5)));
    }

    let s = scrape_until(admin, |s| {
        sum(s, "portcullis_connections_refused_total", &[]) >= REFUSED as f64
    });
    let n = |metric: &str, labels: &[(&str, &str)]| sum(&s, metric, labels);
    let accepted = 1 + PLAIN + TLS + MTLS + REFUSED;
    assert_eq!(
        n("portcullis_connections_accepted_total", &[]),
        accepted as f64
    );
    assert_eq!(
        n(
            "portcullis_connections_refused_total",
            &[("reason", "max_connections")]
        ),
        REFUSED as f64
    );
    assert_eq!(
        n("portcullis_connections_refused_total", &[]),
        REFUSED as f64
    );
    for (transport, count) in [("plain", PLAIN), ("tls", TLS), ("mtls", MTLS)] {
        let t = [("transport", transport)];
        assert_eq!(
            n("portcullis_connections_admitted_total", &t),
            count as f64,
            "{transport}"
        );
        assert_eq!(
            n("portcullis_connections_active", &t),
            count as f64,
            "{transport}"
        );
    }
    assert_eq!(
        n("portcullis_connections_active", &[("transport", "none")]),
        0.0
    );
    assert_eq!(
        n("portcullis_connections_open", &[]),
        (PLAIN + TLS + MTLS) as f64
    );
    assert_eq!(
        n(
            "portcullis_tls_handshakes_completed_total",
            &[("transport", "tls")]
        ),
        TLS as f64
    );
    assert_eq!(
        n(
            "portcullis_tls_handshakes_completed_total",
            &[("transport", "mtls")]
        ),
        MTLS as f64
    );
    assert_eq!(n("portcullis_tls_handshakes_resumed_total", &[]), 0.0);
    // Plaintext bytes are exactly what the clients sent and read back.
    let echoed = (PLAIN * rounds * MESSAGE) as f64;
    let plain_t = [("transport", "plain")];
    assert_eq!(n("portcullis_received_bytes_total", &plain_t), echoed);
    assert_eq!(n("portcullis_sent_bytes_total", &plain_t), echoed);
    // TLS bytes carry records, so more than the plaintext; the handshakes
    // themselves are counted under `none`.
    for (transport, count) in [("tls", TLS), ("mtls", MTLS)] {
        let t = [("transport", transport)];
        let payload = (count * MESSAGE) as f64;
        assert!(
            n("portcullis_received_bytes_total", &t) > payload,
            "{transport}"
        );
        assert!(
            n("portcullis_sent_bytes_total", &t) > payload,
            "{transport}"
        );
    }
    assert!(n("portcullis_received_bytes_total", &[("transport", "none")]) > 0.0);
    // Every series names its listener, address and worker; both workers
    // are there, and their sums are the totals above.
    let address = addr.to_string();
    for sample in s
        .samples
        .iter()
        .filter(|x| x.metric == "portcullis_connections_accepted_total")
    {
        assert_eq!(sample.labels.get("listener"), Some("0"));
        assert_eq!(sample.labels.get("address"), Some(address.as_str()));
    }
    let per_worker: f64 = ["0", "1"]
        .iter()
        .map(|w| n("portcullis_connections_accepted_total", &[("worker", w)]))
        .sum();
    assert_eq!(per_worker, accepted as f64);

    // 4. Everyone leaves; every ending is counted where it was admitted.
    drop(tls);
    drop(mtls);
    for stream in &mut plain {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    for stream in &mut plain {
        assert!(closed_by_server(stream, Duration::from_secs(5)));
    }
    let s = scrape_until(admin, |s| sum(s, "portcullis_connections_open", &[]) == 0.0);
    let n = |metric: &str, labels: &[(&str, &str)]| sum(&s, metric, labels);
    for (transport, count) in [("plain", PLAIN), ("tls", TLS), ("mtls", MTLS)] {
        let t = [("transport", transport)];
        assert_eq!(n("portcullis_connections_active", &t), 0.0, "{transport}");
        assert_eq!(
            n("portcullis_connections_closed_total", &t),
            count as f64,
            "{transport}"
        );
    }
    assert_eq!(
        n(
            "portcullis_connections_closed_total",
            &[("transport", "plain"), ("reason", "peer_closed")]
        ),
        PLAIN as f64
    );

    // 5. A session resumed (TLS 1.2 session id, with openssl s_client).
    let dir = TempDir::new("metrics-resume");
    let file = dir.path.join("session.pem");
    let first = s_client_session(addr.port(), &file, false);
    assert!(first.contains("New, TLSv1.2"), "{first}");
    let second = s_client_session(addr.port(), &file, true);
    assert!(second.contains("Reused, TLSv1.2"), "{second}");
    let s = scrape_until(admin, |s| {
        sum(s, "portcullis_tls_handshakes_resumed_total", &[]) >= 1.0
    });
    assert_eq!(
        sum(
            &s,
            "portcullis_tls_handshakes_resumed_total",
            &[("transport", "tls")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "portcullis_tls_handshakes_completed_total",
            &[("transport", "tls")]
        ),
        (TLS + 2) as f64
    );
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn stats_is_the_same_reading_as_json() {
    let backend = &backends()[0];
    let (server, admin) = admin::start(
        &[
            "--service",
            "echo",
            "--no-tls",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
        ],
        1,
    );
    let mut client = server.connect();
    echo(&mut client, 7);
    let out = admin::curl(admin, "/stats", &[]);
    let (status, body) = admin::status_and_body(&out);
    assert_eq!(status, 200, "{}", out.all());
    assert!(out.stdout.contains("application/json"), "{}", out.all());
    let stats: portcullis::admin::snapshot::Snapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(stats.backend, *backend);
    assert!(!stats.draining);
    assert_eq!(stats.open_connections, 1);
    let totals = stats.listeners[0].totals();
    assert_eq!(totals.accepted, 1);
    assert_eq!(totals.transports["plain"].active, 1);
    assert_eq!(totals.transports["plain"].bytes_in, MESSAGE as u64);
    assert_eq!(totals.transports["plain"].bytes_out, MESSAGE as u64);
    // Anything else is a 404 or a 405, and the port keeps serving.
    let (status, _) = admin::status_and_body(&admin::curl(admin, "/nothing", &[]));
    assert_eq!(status, 404);
    let (status, _) = admin::status_and_body(&admin::curl(admin, "/metrics", &["-X", "DELETE"]));
    assert_eq!(status, 405);
    let s = scrape(admin);
    assert_eq!(
        sum(
            &s,
            "portcullis_admin_requests_total",
            &[("outcome", "not_found")]
        ),
        1.0
    );
}
