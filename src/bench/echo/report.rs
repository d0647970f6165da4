//! The echo report: CppServer's labels where CppServer has one, so a run can
//! be read beside CppServer's own output, plus what CppServer does not
//! print — what bounded and what ended the run, writes per message, and
//! CPU on both sides.
//!
//! The one idea: **say what produced the figure.** A messages-per-second
//! figure without its mode, its bound and its writes per message cannot be
//! compared with another one, so all three are in both the human block and
//! the RESULT line.

use super::super::args::EchoMode;
use super::super::cpu::Usage;
use super::super::report::{self, Report};
use super::plan::Plan;
use super::{EndedBy, ThreadResult};

pub fn build(plan: &Plan, total: &ThreadResult, usage: &Usage) -> Report {
    let messages = total.echoed / plan.size;
    let msgs_per_s = report::rate(messages as f64, usage.wall);
    let mib_per_s = report::rate(total.echoed as f64, usage.wall) / report::MIB;
    let ended_by = total.ended_by();

    let mut r = Report::new("echo");
    r.line("Server address", plan.target.addr);
    r.line("Transport", plan.target.describe());
    r.line("Client backend", plan.target.backend);
    r.line("Working threads", plan.threads);
    r.line("Working clients", plan.clients);
    r.line("Mode", plan.mode_line());
    r.line("Message size", plan.size);
    if let Some(m) = plan.messages() {
        r.line("Messages to send", m);
    }
    if let Some(d) = plan.duration() {
        r.line("Seconds to send for", format!("{:.1}", d.as_secs_f64()));
    }
    r.line("Bounded by", plan.bounds());
    r.line("Ended by", ended_by_line(plan, ended_by));
    r.blank();
    r.line("Errors", total.errors);
    r.blank();
    r.line("Total time", report::seconds(usage.wall));
    r.line("Total data", report::bytes(total.echoed as f64));
    r.line("Total messages", messages);
    r.line("Data throughput", format!("{mib_per_s:.3} MiB/s"));
    if messages > 0 {
        let ns = usage.wall.as_nanos() as f64 / messages as f64;
        r.line("Message latency", format!("{} ns", report::fixed(ns, 0)));
    }
    r.line(
        "Message throughput",
        format!("{} msg/s", report::fixed(msgs_per_s, 0)),
    );
    let sent_messages = total.sent / plan.size;
    let per_write = if total.writes > 0 {
        sent_messages as f64 / total.writes as f64
    } else {
        0.0
    };
    r.line(
        "Writes",
        format!(
            "{} for {sent_messages} messages sent ({} messages per write)",
            total.writes,
            report::fixed(per_write, 2)
        ),
    );

    r.headline(msgs_per_s, mib_per_s, total.errors);
    r.figure("mode", plan.mode.name());
    r.figure("transport", plan.target.transport());
    r.figure("client_backend", plan.target.backend);
    r.figure("clients", plan.clients);
    r.figure("threads", plan.threads);
    r.figure("size", plan.size);
    if plan.mode == EchoMode::CppserverV2 {
        r.figure("window", plan.window);
    }
    r.figure("messages", messages);
    r.figure("sent", sent_messages);
    r.figure("writes", total.writes);
    r.figure("msgs_per_write", report::fixed(per_write, 2));
    r.figure("ended_by", ended_by.name());
    r.figure("seconds", report::fixed(usage.wall.as_secs_f64(), 3));
    if let Some(h) = total.histogram.as_ref().filter(|h| h.count() > 0) {
        let us = |ns: u64| report::fixed(ns as f64 / 1000.0, 1);
        let (p50, p90, p99, max) = (
            h.quantile(0.50),
            h.quantile(0.90),
            h.quantile(0.99),
            h.max(),
        );
        r.line(
            "Round trip",
            format!(
                "p50 {} us, p90 {} us, p99 {} us, max {} us",
                us(p50),
                us(p90),
                us(p99),
                us(max)
            ),
        );
        r.figure("p50_us", us(p50));
        r.figure("p90_us", us(p90));
        r.figure("p99_us", us(p99));
        r.figure("max_us", us(max));
    }
    r.cpu(usage, messages, "msg", "server_cpu_ns_per_msg");
    r
}

fn ended_by_line(plan: &Plan, ended_by: EndedBy) -> String {
    match ended_by {
        EndedBy::Messages => "--messages: every client's share was echoed".into(),
        EndedBy::Duration => format!(
            "--duration: sending stopped after {:.1} s and what was in flight was awaited",
            plan.duration().map_or(0.0, |d| d.as_secs_f64())
        ),
        EndedBy::Timeout => format!(
            "--timeout: clients unfinished after {:.1} s were counted as errors",
            plan.timeout.as_secs_f64()
        ),
        EndedBy::Errors => "errors: the clients that did not fail finished their shares".into(),
    }
}
