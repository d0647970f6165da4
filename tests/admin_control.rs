//! The admin port's controls and guards: `portcullis limits` changes the
//! connection limit while the server runs (lowering it keeps open
//! connections, raising it admits again), the token protects changes,
//! non-loopback peers are refused, the admin port cannot be a listener's
//! port, and `portcullis stats` prints the table with rates.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::admin::{self, curl, scrape, scrape_until, status_and_body, sum};
use common::tls::{run, Output, TempDir, PROCESS_TIMEOUT};
use common::{backends, closed_by_server, pattern, read_exact, Server, BIN};

fn cli(args: &[&str]) -> Output {
    run(Command::new(BIN).args(args), b"", PROCESS_TIMEOUT)
}

fn echo_server(extra: &[&str]) -> (Server, SocketAddr) {
    let backend = &backends()[0];
    let mut args = vec![
        "--service",
        "echo",
        "--no-tls",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        backend,
    ];
    args.extend_from_slice(extra);
    admin::start(&args, 1)
}

fn echoes(stream: &mut TcpStream, seed: u64) -> bool {
    let message = pattern(seed, 64);
    stream.write_all(&message).is_ok() && read_exact(stream, 64) == message
}

/// Connects and sends a byte; whether the server closes it at once.
fn refused(server: &Server) -> bool {
    let mut stream = server.connect();
    stream.write_all(b"x").unwrap();
    closed_by_server(&mut stream, Duration::from_secs(2))
}

#[test]
fn limits_change_at_run_time_and_open_connections_stay() {
    let (server, admin) = echo_server(&["--max-conns", "10", "--workers", "2"]);
    let addr = admin.to_string();
    let mut open: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    for (i, stream) in open.iter_mut().enumerate() {
        assert!(echoes(stream, i as u64));
    }

    // Lower the limit below what is open: nothing open is dropped.
    let out = cli(&["limits", "set", "max_connections=2", "--addr", &addr]);
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stdout.contains("\"max_connections\": 2"),
        "{}",
        out.all()
    );
    for (i, stream) in open.iter_mut().enumerate() {
        assert!(echoes(stream, 10 + i as u64), "connection {i} was dropped");
    }
    assert!(
        refused(&server),
        "a new connection was admitted over the limit"
    );
    // Two leave: 2 open, still at the limit.
    for stream in open.drain(..2) {
        drop(stream);
    }
    let s = scrape_until(admin, |s| sum(s, "portcullis_connections_open", &[]) == 2.0);
    assert_eq!(sum(&s, "portcullis_max_connections", &[]), 2.0);
    assert!(refused(&server));
    // One more leaves: there is room for one.
    drop(open.pop());
    scrape_until(admin, |s| sum(s, "portcullis_connections_open", &[]) == 1.0);
    let mut admitted = server.connect();
    assert!(echoes(&mut admitted, 20));
    assert!(refused(&server));

    // Raise it: new connections are admitted again.
    let out = cli(&["limits", "set", "max_connections=10", "--addr", &addr]);
    assert!(out.success(), "{}", out.all());
    let mut more: Vec<TcpStream> = (0..5).map(|_| server.connect()).collect();
    for (i, stream) in more.iter_mut().enumerate() {
        assert!(echoes(stream, 30 + i as u64), "not admitted after raising");
    }
    let s = scrape(admin);
    assert_eq!(
        sum(
            &s,
            "portcullis_connections_refused_total",
            &[("reason", "max_connections")]
        ),
        3.0
    );
    let out = cli(&["limits", "show", "--addr", &addr]);
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stdout.contains("\"max_connections\": 10"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("\"open_connections\": 7"),
        "{}",
        out.all()
    );
    // A bad value is refused by the command itself, naming the key.
    let out = cli(&["limits", "set", "max_connections=0", "--addr", &addr]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("max_connections"), "{}", out.all());
    let (_, log) = server.stop();
    assert!(log.contains("max_connections 10 -> 2"), "{log}");
}

const TOKEN: &str = "s3cret-admin-token-0123456789";

#[test]
fn a_configured_token_guards_changes_but_not_reading() {
    let dir = TempDir::new("admin-token");
    let token = dir.write("admin.token", &format!("{TOKEN}\n"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = dir.write("wrong.token", "not-the-admin-token-000\n");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.write("portcullis.toml", "[admin]\ntoken_file = \"admin.token\"\n");
    let config = config.display().to_string();
    let (server, admin) = echo_server(&["--config", &config, "--max-conns", "50"]);
    let addr = admin.to_string();

    let post = |args: &[&str]| {
        let mut all = vec!["-X", "POST", "--data", "max_connections=7"];
        all.extend_from_slice(args);
        status_and_body(&curl(admin, "/limits", &all))
    };
    assert_eq!(post(&[]).0, 401, "no token");
    assert_eq!(post(&["-H", "Authorization: Bearer wrong"]).0, 401);
    let close = format!("Authorization: Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    assert_eq!(post(&["-H", &close]).0, 401, "all but the last character");
    assert_eq!(sum(&scrape(admin), "portcullis_max_connections", &[]), 50.0);
    let right = format!("Authorization: Bearer {TOKEN}");
    let (status, body) = post(&["-H", &right]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(sum(&scrape(admin), "portcullis_max_connections", &[]), 7.0);

    // The command reads the same file; a wrong one is refused by the server.
    let wrong = wrong.display().to_string();
    let out = cli(&[
        "limits",
        "set",
        "max_connections=9",
        "--addr",
        &addr,
        "--token-file",
        &wrong,
    ]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.stderr.contains("401"), "{}", out.all());
    let good = token.display().to_string();
    let out = cli(&[
        "limits",
        "set",
        "max_connections=9",
        "--addr",
        &addr,
        "--token-file",
        &good,
    ]);
    assert!(out.success(), "{}", out.all());
    // Reading needs no token.
    assert_eq!(status_and_body(&curl(admin, "/stats", &[])).0, 200);
    let s = scrape(admin);
    assert_eq!(sum(&s, "portcullis_max_connections", &[]), 9.0);
    assert_eq!(
        sum(
            &s,
            "portcullis_admin_requests_total",
            &[("outcome", "refused_token")]
        ),
        4.0
    );
    let (_, log) = server.stop();
    assert!(log.contains("refused a change"), "{log}");
}

#[test]
fn bad_admin_settings_stop_the_start_naming_the_problem() {
    let dir = TempDir::new("admin-bad");
    let token = dir.write("admin.token", &format!("{TOKEN}\n"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.write(
        "portcullis.toml",
        "[admin]\naddress = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n",
    );
    let out = cli(&[
        "serve",
        "--service",
        "echo",
        "--no-tls",
        "--listen",
        "127.0.0.1:0",
        "--config",
        &config.display().to_string(),
    ]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("admin.token_file"), "{}", out.all());
    assert!(out.stderr.contains("admin.token"), "{}", out.all());
    assert!(out.stderr.contains("chmod 600"), "{}", out.all());

    let config = dir.write("typo.toml", "[admin]\nadress = \"127.0.0.1:0\"\n");
    let out = cli(&["serve", "--config", &config.display().to_string()]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("adress"), "{}", out.all());

    // Never the public port.
    let out = cli(&[
        "serve",
        "--service",
        "echo",
        "--no-tls",
        "--listen",
        "127.0.0.1:18443",
        "--admin",
        "127.0.0.1:18443",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("--admin"), "{}", out.all());
    assert!(out.stderr.contains("port of its own"), "{}", out.all());
}

/// A non-loopback IPv4 address of this host, if it has one.
fn non_loopback_ipv4() -> Option<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `list`; it is freed below
    // with freeifaddrs and only read in between.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*entry };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its type.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found = Some(IpAddr::V4(ip));
                    break;
                }
            }
        }
        entry = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[test]
fn peers_other_than_loopback_are_refused_unless_allowed() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("skipped: this host has no IPv4 address besides loopback");
        return;
    };
    let backend = &backends()[0];
    let base = [
        "--service",
        "echo",
        "--no-tls",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        backend.as_str(),
    ];
    let mut args = base.to_vec();
    args.extend(["--admin", "0.0.0.0:0"]);
    let mut server = Server::start_expecting(&args, 2, 0);
    let port = server.addrs.pop().unwrap().port();
    let remote = SocketAddr::new(ip, port);
    let local: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, body) = status_and_body(&curl(remote, "/metrics", &[]));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("loopback"), "{body}");
    assert_eq!(status_and_body(&curl(local, "/metrics", &[])).0, 200);
    let (_, log) = server.stop();
    assert!(log.contains(&format!("refused {ip}")), "{log}");

    // allow_remote: other hosts may read, but not change without a token.
    let dir = TempDir::new("admin-remote");
    let config = dir.write("portcullis.toml", "[admin]\nallow_remote = true\n");
    let config = config.display().to_string();
    let mut args = base.to_vec();
    args.extend(["--config", &config, "--admin", "0.0.0.0:0"]);
    let mut server = Server::start_expecting(&args, 2, 0);
    let port = server.addrs.pop().unwrap().port();
    let remote = SocketAddr::new(ip, port);
    assert_eq!(status_and_body(&curl(remote, "/metrics", &[])).0, 200);
    let (status, body) = status_and_body(&curl(
        remote,
        "/limits",
        &["-X", "POST", "--data", "max_connections=3"],
    ));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("token"), "{body}");
}

#[test]
fn stats_prints_a_table_with_rates() {
    let (server, admin) = echo_server(&["--workers", "2"]);
    let addr = admin.to_string();
    // The command reads at once, then again a second later; the load
    // happens in between.
    let command = std::thread::spawn(move || cli(&["stats", "--addr", &addr]));
    std::thread::sleep(Duration::from_millis(300));
    let mut clients: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for (i, stream) in clients.iter_mut().enumerate() {
        assert!(echoes(stream, i as u64));
    }
    let out = command.join().unwrap();
    assert!(out.success(), "{}", out.all());
    let table = &out.stdout;
    assert!(table.contains("draining: no"), "{table}");
    assert!(
        table.contains(&format!("listener 0 {}: accepted 3 (", server.addr())),
        "{table}"
    );
    let rate: f64 = table
        .split("accepted 3 (")
        .nth(1)
        .and_then(|rest| rest.split("/s)").next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate\n{table}"));
    assert!(
        rate > 1.0 && rate <= 4.0,
        "3 connections in about 1 s: {rate}/s\n{table}"
    );
    let plain = table
        .lines()
        .find(|l| l.trim_start().starts_with("plain"))
        .unwrap_or_else(|| panic!("no plain row\n{table}"));
    let columns: Vec<&str> = plain.split_whitespace().collect();
    assert_eq!(columns[1], "3", "active: {plain}");
    assert_eq!(columns[2], "3", "admitted: {plain}");
    assert!(table.contains("192 B"), "3 x 64 bytes in and out\n{table}");
    let spread = table
        .lines()
        .find_map(|l| l.trim().strip_prefix("active per worker: "))
        .unwrap_or_else(|| panic!("no spread line\n{table}"));
    let total: u64 = spread
        .split(", ")
        .map(|w| w.split(": ").nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 3, "{table}");

    // --watch prints a table per interval, --count of them.
    let addr = admin.to_string();
    let out = cli(&["stats", "--addr", &addr, "--watch", "0.2", "--count", "2"]);
    assert!(out.success(), "{}", out.all());
    assert_eq!(out.stdout.matches("rates over").count(), 2, "{}", out.all());
    // No server there: a clear error.
    let out = cli(&["stats", "--addr", "127.0.0.1:1"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.stderr.contains("cannot reach"), "{}", out.all());
}

#[test]
fn a_listeners_own_limit_changes_at_run_time_and_leaves_the_others_alone() {
    let backend = &backends()[0];
    let (server, admin) = admin::start(
        &[
            "--service",
            "echo",
            "--no-tls",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
        ],
        2,
    );
    let addr = admin.to_string();
    let (first, second) = (server.addrs[0], server.addrs[1]);
    let connect = |to: SocketAddr| {
        let stream = TcpStream::connect(to).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    let refused_on = |to: SocketAddr| {
        let mut stream = connect(to);
        stream.write_all(b"x").unwrap();
        closed_by_server(&mut stream, Duration::from_secs(2))
    };
    let mut open: Vec<TcpStream> = (0..2).map(|_| connect(second)).collect();
    for (i, stream) in open.iter_mut().enumerate() {
        assert!(echoes(stream, i as u64));
    }
    // Listener 1 (by index) down to 1, below the 2 it holds.
    let out = cli(&[
        "limits",
        "set",
        "max_connections=1",
        "--listener",
        "1",
        "--addr",
        &addr,
    ]);
    assert!(out.success(), "{}", out.all());
    for (i, stream) in open.iter_mut().enumerate() {
        assert!(echoes(stream, 10 + i as u64), "connection {i} was dropped");
    }
    assert!(refused_on(second), "listener 1 admitted over its limit");
    let mut other = connect(first);
    assert!(echoes(&mut other, 20), "listener 0 is not limited");
    let s = scrape(admin);
    assert_eq!(
        sum(
            &s,
            "portcullis_connections_refused_total",
            &[("listener", "1"), ("reason", "listener_max_connections")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "portcullis_listener_max_connections",
            &[("listener", "1")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "portcullis_listener_max_connections",
            &[("listener", "0")]
        ),
        f64::INFINITY
    );
    assert_eq!(
        sum(
            &s,
            "portcullis_listener_connections_open",
            &[("listener", "1")]
        ),
        2.0
    );
    // Lifted again (by address): admitted.
    let out = cli(&[
        "limits",
        "set",
        "max_connections=unlimited",
        "--listener",
        &second.to_string(),
        "--addr",
        &addr,
    ]);
    assert!(out.success(), "{}", out.all());
    let mut again = connect(second);
    assert!(echoes(&mut again, 30), "not admitted once lifted");
    // An unknown listener is refused by the server, naming it.
    let out = cli(&[
        "limits",
        "set",
        "max_connections=5",
        "--listener",
        "7",
        "--addr",
        &addr,
    ]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.stderr.contains("no listener `7`"), "{}", out.all());
    let out = cli(&["limits", "show", "--addr", &addr]);
    assert!(out.success(), "{}", out.all());
    let limits: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        limits["listeners"][1]["max_connections"],
        serde_json::Value::Null
    );
    assert_eq!(limits["listeners"][1]["open_connections"], 3);
}
