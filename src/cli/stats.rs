//! `portcullis stats`: a running server's counters as a table for a person.
//!
//! It reads `/stats` from the admin port twice, an interval apart, and
//! prints totals with the rate of each over that interval; `--watch`
//! repeats every interval, each table's rates covering the interval since
//! the one before. The one idea: **rates come from two readings of
//! monotonic counters**, never from the server's idea of time, so a table
//! is exact over the interval the client measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use clap::Args;

use crate::admin::client::{self, DEFAULT_ADDR};
use crate::admin::snapshot::{Snapshot, Totals};

#[derive(Debug, Args, Clone)]
pub struct StatsArgs {
    /// The server's admin port.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,

    /// Refresh every SECS seconds (default 2) until interrupted.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<f64>,

    /// With --watch: stop after this many tables.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
}

/// The interval of a single table (no `--watch`).
const ONE_SHOT_INTERVAL: Duration = Duration::from_secs(1);

pub fn run(args: &StatsArgs) -> i32 {
    let interval = match args.watch {
        Some(secs) if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) => {
            eprintln!("portcullis stats: --watch: {secs} is not a number of seconds above 0");
            return 2;
        }
        Some(secs) => Duration::from_secs_f64(secs),
        None => ONE_SHOT_INTERVAL,
    };
    let tables = match args.watch {
        Some(_) => args.count.unwrap_or(u64::MAX),
        None => 1,
    };
    let mut previous = match fetch(&args.addr) {
        Ok(sample) => sample,
        Err(err) => {
            eprintln!("portcullis stats: {err}");
            return 1;
        }
    };
    for shown in 0..tables {
        std::thread::sleep(interval);
        let current = match fetch(&args.addr) {
            Ok(sample) => sample,
            Err(err) => {
                eprintln!("portcullis stats: {err}");
                return 1;
            }
        };
        let elapsed = current.1.duration_since(previous.1);
        if shown > 0 {
            println!();
        }
        print!("{}", table(&previous.0, &current.0, elapsed));
        previous = current;
    }
    0
}

fn fetch(addr: &str) -> Result<(Snapshot, Instant), String> {
    let answer = client::request(addr, "GET", "/stats", "", None)?;
    let at = Instant::now();
    if answer.status != 200 {
        return Err(format!("{addr}: {} {}", answer.status, answer.body.trim()));
    }
    let snapshot =
        serde_json::from_str(&answer.body).map_err(|e| format!("{addr}: bad /stats: {e}"))?;
    Ok((snapshot, at))
}

/// Bytes for a person: B, KiB, MiB, GiB.
fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

/// `reason=n (r/s)` for every reason that is not zero.
fn reasons(now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, secs: f64) -> String {
    let mut line = String::new();
    for (reason, &n) in now.iter().filter(|(_, n)| **n > 0) {
        let was = before.get(reason).copied().unwrap_or(0);
        let _ = write!(line, " {reason}={n} ({:.1}/s)", rate(n, was, secs));
    }
    if line.is_empty() {
        line.push_str(" none");
    }
    line
}

/// The table for two readings `elapsed` apart.
pub fn table(before: &Snapshot, now: &Snapshot, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "portcullis {} ({}), up {:.0} s; open {} of max {}; draining: {}; rates over {secs:.1} s",
        now.version,
        now.backend,
        now.uptime_secs,
        now.open_connections,
        now.max_connections,
        if now.draining { "yes" } else { "no" },
    );
    for listener in &now.listeners {
        let t = listener.totals();
        let b = before
            .listeners
            .iter()
            .find(|l| l.index == listener.index)
            .map(|l| l.totals())
            .unwrap_or_default();
        let refused: u64 = t.refused.values().sum();
        let refused_before: u64 = b.refused.values().sum();
        let _ = writeln!(
            out,
            "\nlistener {} {}{}: accepted {} ({:.1}/s), refused {} ({:.1}/s), {} worker{}",
            listener.index,
            listener.address,
            match listener.max_connections {
                Some(max) => format!(" (open {} of max {max})", listener.open_connections),
                None => String::new(),
            },
            t.accepted,
            rate(t.accepted, b.accepted, secs),
            refused,
            rate(refused, refused_before, secs),
            listener.workers.len(),
            if listener.workers.len() == 1 { "" } else { "s" },
        );
        let _ = writeln!(
            out,
            "  {:<9} {:>7} {:>9} {:>8} {:>10} {:>12} {:>10} {:>12} {:>10} {:>8}",
            "transport",
            "active",
            "admitted",
            "adm/s",
            "bytes in",
            "in/s",
            "bytes out",
            "out/s",
            "handshakes",
            "resumed"
        );
        lanes(&mut out, &t, &b, secs);
        if listener.workers.len() > 1 {
            // How the kernel spread the connections between the workers.
            let spread: Vec<String> = listener
                .workers
                .iter()
                .map(|w| {
                    let active: u64 = w.transports.values().map(|l| l.active).sum();
                    format!("{}: {active}", w.worker)
                })
                .collect();
            let _ = writeln!(out, "  active per worker: {}", spread.join(", "));
        }
        let _ = writeln!(out, "  refused:{}", reasons(&t.refused, &b.refused, secs));
        let mut closed = BTreeMap::new();
        let mut closed_before = BTreeMap::new();
        for (into, from) in [(&mut closed, &t), (&mut closed_before, &b)] {
            for lane in from.transports.values() {
                for (reason, n) in &lane.closed {
                    *into.entry(reason.clone()).or_insert(0) += n;
                }
            }
        }
        let _ = writeln!(out, "  closed:{}", reasons(&closed, &closed_before, secs));
        let _ = writeln!(
            out,
            "  handshakes failed:{}",
            reasons(&t.handshakes_failed, &b.handshakes_failed, secs)
        );
    }
    out
}

fn lanes(out: &mut String, t: &Totals, b: &Totals, secs: f64) {
    for name in ["plain", "tls", "mtls", "none"] {
        let Some(lane) = t.transports.get(name) else {
            continue;
        };
        let was = b.transports.get(name).cloned().unwrap_or_default();
        let tls = name == "tls" || name == "mtls";
        let dash = || "-".to_string();
        let _ = writeln!(
            out,
            "  {:<9} {:>7} {:>9} {:>8} {:>10} {:>12} {:>10} {:>12} {:>10} {:>8}",
            name,
            lane.active,
            if name == "none" {
                dash()
            } else {
                lane.admitted.to_string()
            },
            if name == "none" {
                dash()
            } else {
                format!("{:.1}", rate(lane.admitted, was.admitted, secs))
            },
            bytes(lane.bytes_in as f64),
            format!("{}/s", bytes(rate(lane.bytes_in, was.bytes_in, secs))),
            bytes(lane.bytes_out as f64),
            format!("{}/s", bytes(rate(lane.bytes_out, was.bytes_out, secs))),
            if tls {
                lane.handshakes.to_string()
            } else {
                dash()
            },
            if tls {
                lane.handshakes_resumed.to_string()
            } else {
                dash()
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }
}
