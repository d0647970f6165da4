//! `bench handshakes`: TLS handshakes per second, full and resumed.
//!
//! `--concurrency` slots (spread over `--threads` reactors) each run one
//! connection after another for `--duration` seconds: connect, handshake,
//! send close_notify, read until the server closes, start again. The
//! `full` phase offers no session, so every handshake does the public-key
//! work; the `resumed` phase offers a saved session (each slot primes one
//! with a full handshake, not counted, and refreshes it from every resumed
//! connection), so the server skips the certificate signature.
//!
//! The one idea: **let the server close first.** The side that closes
//! first keeps the connection in TIME_WAIT for a minute; tens of thousands
//! of short connections closed by the client would use up its ephemeral
//! ports within one run. Waiting for the server's close after our
//! close_notify costs one more event per connection and leaves the
//! TIME_WAIT entries on the server's side, where they cost no ports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{Event, Events, Selector, Token};

use super::args::{HandshakePhases, HandshakesArgs};
use super::client::{wait_into, Buffers, Conn, Failure};
use super::cpu::Usage;
use super::report::{self, Report};
use super::runner::{self, FinishGuard, Publisher, Shared};
use super::target::Target;
use crate::tls::ClientSession;

struct Plan {
    target: Target,
    concurrency: usize,
    threads: usize,
    duration: Duration,
}

/// One phase's totals.
#[derive(Default)]
struct PhaseResult {
    /// Handshakes completed (resumed ones only, in the resumed phase).
    completed: u64,
    /// Resumed phase: connections that offered a session but got a full
    /// handshake (the server declined). Not errors, but telling.
    not_resumed: u64,
    errors: u64,
    failures: Vec<String>,
    version: Option<&'static str>,
}

impl PhaseResult {
    fn merge(&mut self, other: PhaseResult) {
        self.completed += other.completed;
        self.not_resumed += other.not_resumed;
        self.errors += other.errors;
        self.version = self.version.or(other.version);
        for f in other.failures {
            self.note(f);
        }
    }

    fn note(&mut self, failure: String) {
        if self.failures.len() < 5 {
            self.failures.push(failure);
        }
    }
}

pub fn run(args: &HandshakesArgs) -> i32 {
    let plan = match super::prepare("handshakes", plan(args), &args.measure) {
        Ok(plan) => Arc::new(plan),
        Err(code) => return code,
    };
    let phases: &[bool] = match args.phases {
        HandshakePhases::Full => &[false],
        HandshakePhases::Resumed => &[true],
        HandshakePhases::Both => &[false, true],
    };
    let mut results: Vec<(bool, PhaseResult, Usage)> = Vec::new();
    for &resume in phases {
        let (result, usage) = run_phase(&plan, resume, &args.measure.server_pid);
        results.push((resume, result, usage));
    }

    let mut r = Report::new("handshakes");
    r.line("Server address", plan.target.addr);
    r.line("Server name", &plan.target.sni);
    r.line("Client backend", plan.target.backend);
    r.line("Working threads", plan.threads);
    r.line("Concurrency", plan.concurrency);
    r.line(
        "Seconds per phase",
        format!("{:.1}", plan.duration.as_secs_f64()),
    );
    if let Some(version) = results.iter().find_map(|(_, p, _)| p.version) {
        r.line("Protocol", version);
        r.figure("version", version);
    }
    let errors: u64 = results.iter().map(|(_, p, _)| p.errors).sum();
    r.blank();
    r.line("Errors", errors);
    let mut headline = 0.0;
    for (resume, phase, usage) in &results {
        for failure in &phase.failures {
            eprintln!("portcullis bench handshakes: {failure}");
        }
        let name = if *resume { "resumed" } else { "full" };
        let per_s = report::rate(phase.completed as f64, usage.wall);
        r.blank();
        r.line(
            format!("{name} handshakes"),
            format!("{} in {}", phase.completed, report::seconds(usage.wall)),
        );
        r.line(
            format!("{name} handshake rate"),
            format!("{} handshakes/s", report::fixed(per_s, 0)),
        );
        if *resume {
            r.line("Offered but not resumed", phase.not_resumed);
            r.figure("resumed_per_s", report::fixed(per_s, 0));
            r.figure("not_resumed", phase.not_resumed);
        } else {
            r.figure("handshakes_per_s", report::fixed(per_s, 0));
        }
        if headline == 0.0 {
            headline = per_s;
        }
        let client = usage.client_cpu_percent();
        r.line(
            format!("{name} client CPU"),
            format!("{client:.1} % of one core"),
        );
        if let (Some(pct), Some(ns)) = (
            usage.server_cpu_percent(),
            usage.server_ns_per(phase.completed),
        ) {
            let us = report::fixed(ns / 1000.0, 1);
            r.line(
                format!("{name} server CPU"),
                format!("{pct:.1} % of one core, {us} us/handshake"),
            );
            let key = if *resume {
                "server_cpu_us_per_resumed"
            } else {
                "server_cpu_us_per_full"
            };
            r.figure(key, us);
        }
    }
    // msgs_per_s carries the first phase's handshakes per second.
    r.headline(headline, 0.0, errors);
    r.figure("concurrency", plan.concurrency);
    r.figure("threads", plan.threads);
    r.figure("client_backend", plan.target.backend);
    r.print()
}

fn plan(args: &HandshakesArgs) -> Result<Plan, String> {
    if args.concurrency == 0 || args.threads == 0 {
        return Err("--concurrency and --threads must be at least 1".into());
    }
    Ok(Plan {
        target: Target::from_args(&args.target, true)?,
        concurrency: args.concurrency,
        threads: args.threads.min(args.concurrency),
        duration: super::seconds(args.duration, "--duration")?,
    })
}

fn run_phase(plan: &Arc<Plan>, resume: bool, server_pid: &[u32]) -> (PhaseResult, Usage) {
    // Every thread starts at once: the start line waits for threads, not
    // connections, since connecting is what is measured.
    let shared = Shared::new(plan.threads);
    let measured = {
        let (plan, shared2) = (plan.clone(), shared.clone());
        runner::run_threads(
            plan.threads,
            &shared,
            server_pid,
            if resume {
                "resumed handshakes"
            } else {
                "full handshakes"
            },
            "handshakes",
            move |index| run_thread(index, &plan, &shared2, resume),
        )
    };
    let mut total = PhaseResult::default();
    for result in measured.results {
        match result {
            Ok(r) => total.merge(r),
            Err(panic) => {
                total.errors += 1;
                total.note(panic);
            }
        }
    }
    (total, measured.usage)
}

/// One slot: at most one connection at a time.
struct Slot {
    conn: Option<Conn>,
    /// The session to offer (resumed phase).
    session: Option<ClientSession>,
    /// Whether the current connection offered a session.
    offered: bool,
    /// close_notify sent: waiting for the server to close.
    closing: bool,
}

fn run_thread(index: usize, plan: &Plan, shared: &Arc<Shared>, resume: bool) -> PhaseResult {
    let mut guard = FinishGuard::new(shared.clone());
    let mut result = PhaseResult::default();
    let slots = (index..plan.concurrency).step_by(plan.threads).count();
    let mut selector = match plan.target.backend.open() {
        Ok(selector) => selector,
        Err(e) => {
            shared.start.arrive(1);
            result.errors += 1;
            result.note(format!("cannot open the reactor: {e}"));
            return result;
        }
    };
    let mut slots: Vec<Slot> = (0..slots)
        .map(|_| Slot {
            conn: None,
            session: None,
            offered: false,
            closing: false,
        })
        .collect();
    shared.start.arrive(1);
    while shared.start.fired().is_none() {
        std::thread::sleep(Duration::from_micros(200));
    }
    let end = Instant::now() + plan.duration;
    let mut events = Events::with_capacity(1024);
    let mut ready: Vec<Event> = Vec::new();
    let mut buffers = Buffers::default();
    let mut publisher = Publisher::default();
    // A server refusing everything must not turn into a busy loop.
    let error_budget = 1000 + 10 * plan.concurrency as u64;

    while Instant::now() < end && result.errors < error_budget {
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.conn.is_none() {
                if let Err(failure) = start(slot, plan, selector.as_mut(), Token(i), resume) {
                    result.errors += 1;
                    result.note(failure.to_string());
                }
            }
        }
        let timeout = end.saturating_duration_since(Instant::now());
        if let Err(e) = wait_into(selector.as_mut(), &mut events, &mut ready, Some(timeout)) {
            result.errors += 1;
            result.note(format!("reactor wait failed: {e}"));
            break;
        }
        let now = Instant::now();
        for event in &ready {
            let Some(slot) = slots.get_mut(event.token.0) else {
                continue;
            };
            match step(slot, event, &mut buffers, selector.as_mut()) {
                Ok(false) => {}
                Ok(true) if now >= end => {} // finished after time: not counted
                Ok(true) => {
                    let Some(conn) = slot.conn.take() else {
                        continue;
                    };
                    let reused = conn.session().is_some_and(|s| s.session_reused());
                    if result.version.is_none() {
                        result.version = conn.session().map(|s| s.version());
                    }
                    if resume {
                        match (slot.offered, reused) {
                            (true, true) => result.completed += 1,
                            (true, false) => result.not_resumed += 1,
                            (false, _) => {} // the priming handshake
                        }
                        // A fresh ticket for next time (TLS 1.3 sends one
                        // per connection).
                        if let Some(session) = conn.session().and_then(|s| s.ssl_session()) {
                            slot.session = Some(session);
                        }
                    } else {
                        result.completed += 1;
                    }
                    conn.deregister(selector.as_mut());
                }
                Err(failure) => {
                    result.errors += 1;
                    result.note(failure.to_string());
                    if let Some(conn) = slot.conn.take() {
                        conn.deregister(selector.as_mut());
                        conn.reset_on_drop();
                    }
                }
            }
        }
        publisher.publish(&shared.counters, result.completed, result.errors);
    }
    guard.finish();
    for slot in &mut slots {
        if let Some(conn) = slot.conn.take() {
            conn.deregister(selector.as_mut());
            conn.reset_on_drop();
        }
    }
    result
}

fn start(
    slot: &mut Slot,
    plan: &Plan,
    selector: &mut dyn Selector,
    token: Token,
    resume: bool,
) -> Result<(), Failure> {
    let offer = if resume { slot.session.as_ref() } else { None };
    let tls = plan.target.session(offer)?;
    let conn = Conn::connect(plan.target.addr, None, tls)?;
    conn.register(selector, token).map_err(Failure::Connect)?;
    slot.offered = offer.is_some();
    slot.closing = false;
    slot.conn = Some(conn);
    Ok(())
}

/// Advances a slot's connection; true when the server has closed after a
/// completed handshake.
fn step(
    slot: &mut Slot,
    event: &Event,
    buffers: &mut Buffers,
    selector: &mut dyn Selector,
) -> Result<bool, Failure> {
    let Some(conn) = slot.conn.as_mut() else {
        return Ok(false);
    };
    // Plaintext after the handshake is unexpected but harmless: dropped.
    let arrived = conn.on_event(event, buffers, |_| Ok(()))?;
    if arrived.opened {
        conn.close_notify()?;
        slot.closing = true;
    }
    if arrived.eof {
        return if slot.closing {
            Ok(true)
        } else {
            Err(Failure::Closed("before the handshake completed".into()))
        };
    }
    if !conn.rearm(selector, event.token).map_err(Failure::Io)? {
        return Err(Failure::Closed("nothing left to do".into()));
    }
    Ok(false)
}
