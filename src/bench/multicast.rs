//! `bench multicast`: how fast a server pushes a stream to many receivers.
//!
//! Against `serve --service multicast`, which sends fixed-size messages
//! (default 32 bytes, the last one `'\n'`) to every client as fast as it
//! drains them. C receivers connect; once every one has its first bytes the
//! start line fires, and each thread counts what its receivers get for
//! `--duration` seconds. Messages/s is bytes / `--size`.
//!
//! The one idea: **a receiver's only job is to drain, so make checking
//! nearly free.** Framing is verified by looking at one byte per message —
//! the one that must be `'\n'` — found by arithmetic on the stream offset,
//! never by scanning for newlines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{Event, Events, Token};

use super::args::MulticastArgs;
use super::client::{wait_into, Buffers, Conn, Failure};
use super::report::{self, Report};
use super::runner::{self, FinishGuard, Publisher, Shared};
use super::target::Target;

struct Plan {
    target: Target,
    clients: usize,
    threads: usize,
    size: u64,
    duration: Duration,
    /// How long receivers may take to get their first bytes.
    settle_limit: Duration,
}

pub fn run(args: &MulticastArgs) -> i32 {
    let plan = match super::prepare("multicast", plan(args), &args.measure) {
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
            "multicast",
            "messages",
            move |index| run_thread(index, &plan, &shared2),
        )
    };

    let mut counted = 0u64;
    let mut rate = 0.0;
    let mut errors = 0u64;
    let mut failures = Vec::new();
    for result in measured.results {
        match result {
            Ok(t) => {
                counted += t.counted;
                rate += report::rate(t.counted as f64, t.interval);
                errors += t.errors;
                failures.extend(t.failures);
            }
            Err(panic) => {
                errors += 1;
                failures.push(panic);
            }
        }
    }
    for failure in failures.iter().take(5) {
        eprintln!("portcullis bench multicast: {failure}");
    }
    let usage = measured.usage;
    let messages = counted / plan.size;
    let msgs_per_s = rate / plan.size as f64;
    let mib_per_s = rate / report::MIB;

    let mut r = Report::new("multicast");
    r.line("Server address", plan.target.addr);
    r.line("Transport", plan.target.describe());
    r.line("Client backend", plan.target.backend);
    r.line("Working threads", plan.threads);
    r.line("Working clients", plan.clients);
    r.line("Message size", plan.size);
    r.line(
        "Seconds to benchmarking",
        format!("{:.1}", plan.duration.as_secs_f64()),
    );
    r.blank();
    r.line("Errors", errors);
    r.blank();
    r.line("Total time", report::seconds(usage.wall));
    r.line("Total data", report::bytes(counted as f64));
    r.line("Total messages", messages);
    r.line("Data throughput", format!("{mib_per_s:.3} MiB/s"));
    r.line(
        "Message throughput",
        format!("{} msg/s", report::fixed(msgs_per_s, 0)),
    );
    r.headline(msgs_per_s, mib_per_s, errors);
    r.figure("transport", plan.target.transport());
    r.figure("client_backend", plan.target.backend);
    r.figure("clients", plan.clients);
    r.figure("threads", plan.threads);
    r.figure("size", plan.size);
    r.figure("messages", messages);
    r.figure("seconds", report::fixed(usage.wall.as_secs_f64(), 3));
    r.cpu(&usage, messages, "msg", "server_cpu_ns_per_msg");
    r.print()
}

fn plan(args: &MulticastArgs) -> Result<Plan, String> {
    if args.clients == 0 || args.size == 0 || args.threads == 0 {
        return Err("--clients, --size and --threads must be at least 1".into());
    }
    Ok(Plan {
        target: Target::from_args(&args.target, false)?,
        clients: args.clients,
        threads: args.threads.min(args.clients),
        size: args.size as u64,
        duration: super::seconds(args.duration, "--duration")?,
        settle_limit: Duration::from_secs(30),
    })
}

#[derive(Default)]
struct ThreadResult {
    /// Bytes received inside this thread's measured interval.
    counted: u64,
    interval: Duration,
    errors: u64,
    failures: Vec<String>,
}

struct Receiver {
    id: usize,
    conn: Conn,
    /// Stream offset: bytes received so far.
    received: u64,
    arrived: bool,
}

impl Receiver {
    /// Handles an event; returns the bytes that arrived.
    fn on_event(
        &mut self,
        event: &Event,
        buffers: &mut Buffers,
        size: u64,
    ) -> Result<u64, Failure> {
        let before = self.received;
        let received = &mut self.received;
        let arrived = self.conn.on_event(event, buffers, |data| {
            check_framing(*received, data, size)?;
            *received += data.len() as u64;
            Ok(())
        })?;
        if arrived.eof {
            return Err(Failure::Closed(format!(
                "the stream ended after {} bytes",
                self.received
            )));
        }
        Ok(self.received - before)
    }
}

/// Checks that every byte at a message's last position is `'\n'`, visiting
/// only those bytes.
fn check_framing(offset: u64, data: &[u8], size: u64) -> Result<(), Failure> {
    // Index in `data` of the first byte at stream position ≡ size-1 (mod size).
    let first = ((size - 1) - offset % size) as usize;
    for i in (first..data.len()).step_by(size as usize) {
        if data[i] != b'\n' {
            return Err(Failure::Corrupt(format!(
                "byte {} should end a {size}-byte message but is {:#04x}",
                offset + i as u64,
                data[i]
            )));
        }
    }
    Ok(())
}

fn run_thread(index: usize, plan: &Plan, shared: &Arc<Shared>) -> ThreadResult {
    let mut guard = FinishGuard::new(shared.clone());
    let mine: Vec<usize> = (index..plan.clients).step_by(plan.threads).collect();
    let mut result = ThreadResult::default();
    let fail = |result: &mut ThreadResult, what: String| {
        result.errors += 1;
        if result.failures.len() < 5 {
            result.failures.push(what);
        }
    };
    let mut selector = match plan.target.backend.open() {
        Ok(selector) => selector,
        Err(e) => {
            shared.start.arrive(mine.len());
            for _ in &mine {
                fail(&mut result, format!("cannot open the reactor: {e}"));
            }
            return result;
        }
    };
    let mut receivers: Vec<Option<Receiver>> = Vec::with_capacity(mine.len());
    for (slot, &id) in mine.iter().enumerate() {
        let opened = plan
            .target
            .session(None)
            .and_then(|tls| Conn::connect(plan.target.addr, None, tls))
            .and_then(|conn| {
                conn.register(selector.as_mut(), Token(slot))
                    .map_err(Failure::Connect)?;
                Ok(conn)
            });
        match opened {
            Ok(conn) => receivers.push(Some(Receiver {
                id,
                conn,
                received: 0,
                arrived: false,
            })),
            Err(failure) => {
                shared.start.arrive(1);
                fail(&mut result, format!("receiver {id}: {failure}"));
                receivers.push(None);
            }
        }
    }

    let settle_by = Instant::now() + plan.settle_limit;
    let mut events = Events::with_capacity(1024);
    let mut ready: Vec<Event> = Vec::new();
    let mut buffers = Buffers::default();
    // (when counting began, bytes received before it)
    let mut window: Option<(Instant, u64)> = None;
    let mut total = 0u64;
    let mut publisher = Publisher::default();
    loop {
        let now = Instant::now();
        if window.is_none() && shared.start.fired().is_some() {
            window = Some((now, total));
        }
        if let Some((began, base)) = window {
            if now >= began + plan.duration {
                result.counted = total - base;
                result.interval = now - began;
                break;
            }
        } else if now >= settle_by {
            // Receivers that never got a byte: give up on them so the
            // others can start.
            for r in receivers.iter_mut().flatten().filter(|r| !r.arrived) {
                r.arrived = true;
                shared.start.arrive(1);
                fail(&mut result, format!("receiver {}: no data", r.id));
            }
        }
        if receivers.iter().flatten().count() == 0 && window.is_some() {
            break;
        }
        let timeout = match window {
            Some((began, _)) => (began + plan.duration).saturating_duration_since(now),
            None => Duration::from_millis(1),
        };
        if let Err(e) = wait_into(selector.as_mut(), &mut events, &mut ready, Some(timeout)) {
            fail(&mut result, format!("reactor wait failed: {e}"));
            shared
                .start
                .arrive(receivers.iter().flatten().filter(|r| !r.arrived).count());
            break;
        }
        for event in &ready {
            let slot = event.token.0;
            let Some(receiver) = receivers.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let outcome = receiver
                .on_event(event, &mut buffers, plan.size)
                .and_then(|n| {
                    if !receiver
                        .conn
                        .rearm(selector.as_mut(), Token(slot))
                        .map_err(Failure::Io)?
                    {
                        return Err(Failure::Closed("nothing left to read".into()));
                    }
                    Ok(n)
                });
            match outcome {
                Ok(n) => {
                    total += n;
                    if n > 0 && !receiver.arrived {
                        receiver.arrived = true;
                        shared.start.arrive(1);
                    }
                }
                Err(failure) => {
                    if !receiver.arrived {
                        receiver.arrived = true;
                        shared.start.arrive(1);
                    }
                    fail(&mut result, format!("receiver {}: {failure}", receiver.id));
                    receiver.conn.deregister(selector.as_mut());
                    receivers[slot] = None;
                }
            }
        }
        let units = total / plan.size;
        publisher.publish(&shared.counters, units, result.errors);
    }
    guard.finish();
    // The server never stops sending, so a graceful close would wait
    // forever: reset instead (which also leaves no TIME_WAIT behind).
    for receiver in receivers.into_iter().flatten() {
        receiver.conn.deregister(selector.as_mut());
        receiver.conn.reset_on_drop();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_checked_at_message_ends_across_chunk_boundaries() {
        let stream: Vec<u8> = b"abc\n".repeat(10);
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert!(check_framing(0, a, 4).is_ok());
            assert!(check_framing(split as u64, b, 4).is_ok());
        }
        let mut bad = stream.clone();
        bad[7] = b'x';
        assert!(check_framing(0, &bad, 4).is_err());
        assert!(check_framing(1, &stream[1..], 4).is_ok());
        assert!(check_framing(0, &stream[1..], 4).is_err());
    }
}
