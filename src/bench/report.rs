//! The report: a human block in the shape of CppServer's performance
//! clients, then one machine-readable `RESULT` line.
//!
//! The one idea: **one report, two readers.** People read the labelled
//! block; scripts read only the last line, `RESULT scenario=<name>
//! msgs_per_s=<n> mib_per_s=<n> errors=<n>` followed by the scenario's own
//! `key=value` figures, which never contain spaces, so `bench.sh` can split
//! it with nothing more than `tr`.

use std::fmt::Display;
use std::time::Duration;

use super::cpu::Usage;

pub struct Report {
    scenario: &'static str,
    human: Vec<(String, String)>,
    msgs_per_s: f64,
    mib_per_s: f64,
    errors: u64,
    figures: Vec<(&'static str, String)>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            human: Vec::new(),
            msgs_per_s: 0.0,
            mib_per_s: 0.0,
            errors: 0,
            figures: Vec::new(),
        }
    }

    /// A `Label: value` line of the human block (an empty label makes a
    /// blank line).
    pub fn line(&mut self, label: impl Into<String>, value: impl Display) {
        self.human.push((label.into(), value.to_string()));
    }

    pub fn blank(&mut self) {
        self.human.push((String::new(), String::new()));
    }

    /// The three figures every scenario reports.
    pub fn headline(&mut self, msgs_per_s: f64, mib_per_s: f64, errors: u64) {
        self.msgs_per_s = msgs_per_s;
        self.mib_per_s = mib_per_s;
        self.errors = errors;
    }

    /// A scenario-specific `key=value` for the RESULT line.
    pub fn figure(&mut self, key: &'static str, value: impl Display) {
        let value = value.to_string().replace(char::is_whitespace, "_");
        self.figures.push((key, value));
    }

    /// Adds client CPU, and server CPU per `unit` when the server's PID was
    /// given, to both parts of the report.
    pub fn cpu(&mut self, usage: &Usage, units: u64, unit: &str, key: &'static str) {
        let client = usage.client_cpu_percent();
        self.line("Client CPU", format!("{client:.1} % of one core"));
        self.figure("client_cpu_pct", format!("{client:.1}"));
        if let (Some(pct), Some(ns)) = (usage.server_cpu_percent(), usage.server_ns_per(units)) {
            // /proc counts CPU time in clock ticks (10 ms): say so when the
            // interval held too few of them for the figure to mean much.
            let coarse = usage.server.is_some_and(|s| s < Duration::from_secs(1));
            self.line(
                "Server CPU",
                format!(
                    "{pct:.1} % of one core, {} ns/{unit}{}",
                    fixed(ns, 0),
                    if coarse {
                        " (coarse: under a second of CPU, counted in clock ticks)"
                    } else {
                        ""
                    }
                ),
            );
            self.figure("server_cpu_pct", format!("{pct:.1}"));
            self.figure(key, fixed(ns, 0));
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The whole report as text: the human block, a blank line, RESULT.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (label, value) in &self.human {
            if label.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("{label}: {value}\n"));
            }
        }
        out.push('\n');
        out.push_str(&format!(
            "RESULT scenario={} msgs_per_s={} mib_per_s={} errors={}",
            self.scenario,
            fixed(self.msgs_per_s, 0),
            fixed(self.mib_per_s, 3),
            self.errors
        ));
        for (key, value) in &self.figures {
            out.push_str(&format!(" {key}={value}"));
        }
        out.push('\n');
        out
    }

    /// Prints the report on stdout and returns the exit code: 1 when any
    /// error was counted.
    pub fn print(&self) -> i32 {
        print!("{}", self.render());
        if self.errors > 0 {
            1
        } else {
            0
        }
    }
}

/// A number with `decimals` places and no exponent (RESULT values must
/// parse as plain decimals).
pub fn fixed(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "0".to_string()
    }
}

/// Bytes in the largest binary unit that keeps the number at least 1.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} bytes")
    } else {
        format!("{value:.3} {}", UNITS[unit])
    }
}

pub fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// `count / wall` per second; zero for an empty interval.
pub fn rate(count: f64, wall: Duration) -> f64 {
    if wall.is_zero() {
        0.0
    } else {
        count / wall.as_secs_f64()
    }
}

pub const MIB: f64 = 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_last_and_splits_on_spaces() {
        let mut report = Report::new("echo");
        report.line("Total time", "1.000 s");
        report.headline(1234.6, 0.5, 2);
        report.figure("mode", "ping pong");
        let text = report.render();
        let last = text.lines().last().unwrap();
        assert_eq!(
            last,
            "RESULT scenario=echo msgs_per_s=1235 mib_per_s=0.500 errors=2 mode=ping_pong"
        );
        assert_eq!(report.errors(), 2);
    }

    #[test]
    fn byte_counts_pick_a_readable_unit() {
        assert_eq!(bytes(512.0), "512 bytes");
        assert_eq!(bytes(1536.0), "1.500 KiB");
        assert_eq!(bytes(3.0 * MIB), "3.000 MiB");
    }
}
