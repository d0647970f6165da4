//! Helpers for tests of the admin port: a server started with `--admin`,
//! `/metrics` scraped with curl and read with a real Prometheus parser
//! (`prometheus-parse`), and sums over the series that match some labels.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use super::tls::{run, Output, PROCESS_TIMEOUT};
use super::Server;

/// A server with its admin port on 127.0.0.1 port 0. `listeners` is the
/// number of TCP listeners the arguments give; the admin line comes after
/// them, so it is the last address announced.
pub fn start(args: &[&str], listeners: usize) -> (Server, SocketAddr) {
    let mut all = args.to_vec();
    all.extend(["--admin", "127.0.0.1:0"]);
    let mut server = Server::start_expecting(&all, listeners + 1, 0);
    let admin = server.addrs.pop().unwrap();
    (server, admin)
}

/// `curl` against the admin port: `curl -sS -i ARGS http://ADDR/PATH`.
pub fn curl(admin: SocketAddr, path: &str, args: &[&str]) -> Output {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "-i", "--max-time", "10"])
        .args(args)
        .arg(format!("http://{admin}{path}"));
    run(&mut command, b"", PROCESS_TIMEOUT)
}

/// The status code and the body of a curl answer (`-i`).
pub fn status_and_body(out: &Output) -> (u16, String) {
    assert!(out.success(), "curl failed\n{}", out.all());
    let text = out.stdout.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line\n{}", out.all()));
    (status, body.to_string())
}

/// Scrapes `/metrics` and parses it as Prometheus would.
pub fn scrape(admin: SocketAddr) -> prometheus_parse::Scrape {
    let out = curl(admin, "/metrics", &[]);
    let (status, body) = status_and_body(&out);
    assert_eq!(status, 200, "{}", out.all());
    assert!(
        out.stdout.contains("text/plain; version=0.0.4"),
        "{}",
        out.all()
    );
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("a Prometheus text-format parser reads /metrics")
}

/// The sum of `metric` over every series whose labels include `labels`.
pub fn sum(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let mut found = false;
    let total = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .inspect(|_| found = true)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{metric}: unexpected value {other:?}"),
        })
        .sum();
    assert!(found, "no series named {metric} in /metrics");
    total
}

/// Polls `/metrics` until `ready` holds, for up to 10 s; returns the last
/// scrape (the caller asserts on it).
pub fn scrape_until(
    admin: SocketAddr,
    ready: impl Fn(&prometheus_parse::Scrape) -> bool,
) -> prometheus_parse::Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = scrape(admin);
        if ready(&scrape) || Instant::now() > deadline {
            return scrape;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
