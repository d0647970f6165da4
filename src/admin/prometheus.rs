//! `/metrics`: a [`Snapshot`] in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! Formatted by hand rather than with the `prometheus-client` crate: that
//! crate's model is a registry of metrics that *own* their atomics, which
//! every worker would then share — exactly the shared cache line on the hot
//! path that `engine::counters` exists to avoid. Using it here would mean
//! building its constant-metric objects from our own per-worker sums on
//! every scrape, only to have it print lines. The format itself is small:
//! `# HELP`, `# TYPE`, then `name{label="value",…} number` with three
//! escapes in label values. The one idea: **emit every series, zeros
//! included**, for every listener, worker, transport and reason, so that a
//! series exists from the first scrape and `rate()` never starts from a gap.

use std::fmt::Write as _;

use super::snapshot::{LaneSnapshot, Snapshot, WorkerSnapshot};

/// The Content-Type of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Renders every family of the snapshot.
pub fn render(snap: &Snapshot) -> String {
    let mut w = Writer { out: String::new() };
    w.family(
        "portcullis_build_info",
        "gauge",
        "The running build and its reactor backend (always 1).",
    );
    w.sample(
        "portcullis_build_info",
        &[("version", &snap.version), ("backend", &snap.backend)],
        1,
    );
    w.family(
        "portcullis_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    w.sample(
        "portcullis_uptime_seconds",
        &[],
        format!("{:.3}", snap.uptime_secs),
    );
    w.family(
        "portcullis_draining",
        "gauge",
        "1 while the server is shutting down: no new connections, open ones finishing.",
    );
    w.sample("portcullis_draining", &[], u8::from(snap.draining));
    w.family(
        "portcullis_connections_open",
        "gauge",
        "Connections open now across all workers (while draining: those remaining).",
    );
    w.sample("portcullis_connections_open", &[], snap.open_connections);
    w.family(
        "portcullis_max_connections",
        "gauge",
        "The global connection limit in force.",
    );
    w.sample("portcullis_max_connections", &[], snap.max_connections);

    w.family(
        "portcullis_listener_max_connections",
        "gauge",
        "A listener's own connection limit (+Inf: none, the global one applies).",
    );
    for l in &snap.listeners {
        let index = l.index.to_string();
        let labels = [
            ("listener", index.as_str()),
            ("address", l.address.as_str()),
        ];
        match l.max_connections {
            Some(n) => w.sample("portcullis_listener_max_connections", &labels, n),
            None => w.sample("portcullis_listener_max_connections", &labels, "+Inf"),
        }
    }
    w.family(
        "portcullis_listener_connections_open",
        "gauge",
        "Connections open on a listener now, across workers.",
    );
    for l in &snap.listeners {
        let index = l.index.to_string();
        let labels = [
            ("listener", index.as_str()),
            ("address", l.address.as_str()),
        ];
        w.sample(
            "portcullis_listener_connections_open",
            &labels,
            l.open_connections,
        );
    }

    let mut per = |name: &str, kind: &str, help: &str, rows: &dyn Fn(&WorkerSnapshot) -> Rows| {
        per_worker(&mut w, snap, name, kind, help, rows)
    };
    per(
        "portcullis_connections_accepted_total",
        "counter",
        "Connections accepted from the listen queue.",
        &|ws| vec![(vec![], ws.accepted)],
    );
    per(
        "portcullis_connections_refused_total",
        "counter",
        "Connections accepted and closed at once, never admitted, by reason.",
        &|ws| {
            ws.refused
                .iter()
                .map(|(r, v)| (vec![("reason", r.clone())], *v))
                .collect()
        },
    );
    let lanes = |ws: &WorkerSnapshot, admitted_only: bool, get: &dyn Fn(&LaneSnapshot) -> u64| {
        ws.transports
            .iter()
            .filter(|(t, _)| !admitted_only || t.as_str() != "none")
            .map(|(t, lane)| (vec![("transport", t.clone())], get(lane)))
            .collect::<Vec<_>>()
    };
    per(
        "portcullis_connections_admitted_total",
        "counter",
        "Connections admitted, by transport.",
        &|ws| lanes(ws, true, &|l| l.admitted),
    );
    per(
        "portcullis_connections_active",
        "gauge",
        "Connections open now, by transport (none: not admitted yet).",
        &|ws| lanes(ws, false, &|l| l.active),
    );
    per(
        "portcullis_connections_closed_total",
        "counter",
        "Connections that ended, by transport at the end and by reason.",
        &|ws| {
            ws.transports
                .iter()
                .flat_map(|(t, lane)| {
                    lane.closed.iter().map(move |(r, v)| {
                        (vec![("transport", t.clone()), ("reason", r.clone())], *v)
                    })
                })
                .collect()
        },
    );
    let tls_lanes = |ws: &WorkerSnapshot, get: &dyn Fn(&LaneSnapshot) -> u64| {
        ws.transports
            .iter()
            .filter(|(t, _)| t.as_str() == "tls" || t.as_str() == "mtls")
            .map(|(t, lane)| (vec![("transport", t.clone())], get(lane)))
            .collect::<Vec<_>>()
    };
    per(
        "portcullis_tls_handshakes_completed_total",
        "counter",
        "TLS handshakes completed, by transport admitted.",
        &|ws| tls_lanes(ws, &|l| l.handshakes),
    );
    per(
        "portcullis_tls_handshakes_resumed_total",
        "counter",
        "TLS handshakes completed by resuming a session, by transport admitted.",
        &|ws| tls_lanes(ws, &|l| l.handshakes_resumed),
    );
    per(
        "portcullis_tls_handshakes_failed_total",
        "counter",
        "TLS handshakes that failed or were refused, by reason.",
        &|ws| {
            ws.handshakes_failed
                .iter()
                .map(|(r, v)| (vec![("reason", r.clone())], *v))
                .collect()
        },
    );
    per(
        "portcullis_received_bytes_total",
        "counter",
        "Bytes read from connections, by transport (none: before admission).",
        &|ws| lanes(ws, false, &|l| l.bytes_in),
    );
    per(
        "portcullis_sent_bytes_total",
        "counter",
        "Bytes written to connections, by transport (none: before admission).",
        &|ws| lanes(ws, false, &|l| l.bytes_out),
    );
    w.out
}

/// Extra labels and a value, for one series of one listener on one worker.
type Rows = Vec<(Vec<(&'static str, String)>, u64)>;

/// One family with a series per listener, worker and whatever `rows` adds.
fn per_worker(
    w: &mut Writer,
    snap: &Snapshot,
    name: &str,
    kind: &str,
    help: &str,
    rows: &dyn Fn(&WorkerSnapshot) -> Rows,
) {
    w.family(name, kind, help);
    for listener in &snap.listeners {
        let index = listener.index.to_string();
        for worker in &listener.workers {
            let id = worker.worker.to_string();
            for (extra, value) in rows(worker) {
                let mut labels: Vec<(&str, &str)> = vec![
                    ("listener", &index),
                    ("address", &listener.address),
                    ("worker", &id),
                ];
                labels.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
                w.sample(name, &labels, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::admin::snapshot::Source;
    use crate::engine::counters::WorkerCounters;
    use crate::engine::Shared;
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;

    /// The rules of the format a lenient parser would not catch: each
    /// family is declared once, before its samples and with a known type;
    /// every sample belongs to the family declared last; no series repeats;
    /// every value is a number.
    #[test]
    fn the_exposition_is_well_formed_and_every_series_is_unique() {
        let workers: Vec<_> = (0..2)
            .map(|w| Arc::new(WorkerCounters::new(w, 2)))
            .collect();
        let source = Source {
            shared: Arc::new(Shared::new(9)),
            workers,
            listeners: vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()],
            backend: "test",
            started: std::time::Instant::now(),
        };
        let text = render(&source.snapshot());
        let mut declared = HashMap::new();
        let mut current = String::new();
        let mut series = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert!(
                    declared.insert(name.to_string(), kind).is_none(),
                    "{name} twice"
                );
                current = name.to_string();
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "a sample outside its family: {line}");
            let (key, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.insert(key.to_string()), "repeated series: {key}");
        }
        // 2 listeners x 2 workers x 16 reasons x 4 lanes of closes.
        let closes = series
            .iter()
            .filter(|s| s.starts_with("portcullis_connections_closed_total{"))
            .count();
        assert_eq!(closes, 2 * 2 * crate::engine::CloseReason::ALL.len() * 4);
        assert_eq!(declared["portcullis_connections_active"], "gauge");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
    }
}
