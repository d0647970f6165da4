//! `bench echo`: CppServer's round-trip scenarios, with every byte verified.
//!
//! C clients, spread over T threads (each its own reactor), connect; when
//! all are ready the start line fires and they send S-byte messages that
//! the server echoes. What a client sends, and when, is the `--mode`, each
//! named after the CppServer client it reproduces (see [`client`]):
//!
//! * **cppserver-v1** — CppServer's original round-trip client
//!   (`performance/tcp_echo_client.cpp` and `ssl_echo_client.cpp` up to
//!   March 2019): `--messages` in total, split across clients; each client
//!   writes one message per completed write, never waits for echoes, and
//!   finishes once its share has come back.
//! * **cppserver-v2** — today's CppServer client (the same files since
//!   April 2019): `--window` messages in flight per client, one new message
//!   per echoed message, for `--duration`.
//! * **pingpong** — one message in flight per client; the round trip of
//!   each goes into a histogram (p50, p90, p99, max).
//!
//! The bench's earlier default, `stream`, kept 8 KiB in flight per client:
//! cppserver-v2 with a window in bytes instead of messages. It reproduced
//! neither CppServer client, so its figures could be held against neither;
//! `--mode cppserver-v2 --window 256` is the same load for 32-byte messages.
//!
//! `--messages` bounds a run when given, `--duration` when given; with both,
//! the first reached ends it and the report says which ([`plan`]).
//!
//! The one idea: **verification must cost less than the thing measured.**
//! Each client's bytes are a function of (client, offset)
//! ([`super::pattern::Pattern`]), so checking an echoed byte is a comparison
//! against a regenerated word — no copy of what was sent is kept. A wrong
//! byte, an early close or a socket error fails that client and counts as
//! an error.

mod client;
pub mod plan;
mod report;
mod thread;

use std::sync::Arc;

use super::args::EchoArgs;
use super::histogram::Histogram;
use super::runner;
use client::EchoClient;
use runner::Shared;

pub fn run(args: &EchoArgs) -> i32 {
    let plan = match super::prepare("echo", plan::plan(args), &args.measure) {
        Ok(plan) => Arc::new(plan),
        Err(code) => return code,
    };
    let shared = Shared::new(plan.clients);
    let measured = {
        let (plan, shared2) = (plan.clone(), shared.clone());
        runner::run_threads(
            plan.threads,
            &shared,
            &args.measure.server_pid,
            "echo",
            "messages",
            move |index| thread::run_thread(index, &plan, &shared2),
        )
    };

    let mut total = ThreadResult::default();
    for result in measured.results {
        match result {
            Ok(result) => total.merge(result),
            Err(panic) => {
                total.errors += 1;
                total.note(panic);
            }
        }
    }
    for failure in &total.failures {
        eprintln!("portcullis bench echo: {failure}");
    }
    report::build(&plan, &total, &measured.usage).print()
}

/// What ended a run, as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// Every client's share of --messages was echoed.
    Messages,
    /// --duration passed while clients still had messages to send.
    Duration,
    /// --timeout passed with clients unfinished (counted as errors).
    Timeout,
    /// Every client that did not fail finished; some failed.
    Errors,
}

impl EndedBy {
    pub fn name(self) -> &'static str {
        match self {
            EndedBy::Messages => "messages",
            EndedBy::Duration => "duration",
            EndedBy::Timeout => "timeout",
            EndedBy::Errors => "errors",
        }
    }
}

/// One thread's totals (and, merged, the run's).
#[derive(Default)]
pub struct ThreadResult {
    /// Bytes echoed back and verified.
    pub echoed: u64,
    /// Bytes sent.
    pub sent: u64,
    /// Write calls that moved bytes, after the start line.
    pub writes: u64,
    pub errors: u64,
    /// --duration cut some client's share short.
    pub ended_by_duration: bool,
    /// --timeout passed with clients unfinished.
    pub timed_out: bool,
    pub histogram: Option<Histogram>,
    /// The first few failures, for stderr.
    pub failures: Vec<String>,
}

impl ThreadResult {
    const FAILURES_KEPT: usize = 5;

    pub fn note(&mut self, failure: String) {
        if self.failures.len() < Self::FAILURES_KEPT {
            self.failures.push(failure);
        }
    }

    /// Adds what a retired client did.
    fn add_totals(&mut self, client: &EchoClient) {
        self.echoed += client.received;
        self.sent += client.sent;
        self.writes += client.writes_in_run();
    }

    fn merge(&mut self, other: ThreadResult) {
        self.echoed += other.echoed;
        self.sent += other.sent;
        self.writes += other.writes;
        self.errors += other.errors;
        self.ended_by_duration |= other.ended_by_duration;
        self.timed_out |= other.timed_out;
        for failure in other.failures {
            self.note(failure);
        }
        match (&mut self.histogram, other.histogram) {
            (Some(mine), Some(theirs)) => mine.merge(&theirs),
            (mine @ None, theirs) => *mine = theirs,
            _ => {}
        }
    }

    pub fn ended_by(&self) -> EndedBy {
        if self.timed_out {
            EndedBy::Timeout
        } else if self.ended_by_duration {
            EndedBy::Duration
        } else if self.errors > 0 {
            EndedBy::Errors
        } else {
            EndedBy::Messages
        }
    }
}
