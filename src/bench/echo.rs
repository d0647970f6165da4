//! `bench echo`: CppServer's round-trip scenario, with every byte verified.
//!
//! C clients, spread over T threads (each its own reactor), connect; when
//! all are ready the start line fires and they send M messages of S bytes in
//! total. Two modes:
//!
//! * **stream** (default, CppServer's client): a client keeps writing
//!   messages as long as fewer than `--window` bytes (default 8 KiB) are
//!   unacknowledged, i.e. sent but not yet echoed back, and finishes when
//!   all its messages have returned. Whatever the window allows goes out in
//!   one write, so the next message leaves as soon as the previous ones are
//!   on the socket and the window has room. The window bounds memory on both sides
//!   — without it a fast client would pile megabytes into the server's
//!   output queue — while still keeping many messages in flight, so the run
//!   measures throughput, not round-trip time.
//! * **pingpong**: exactly one message in flight per client; the time from
//!   writing a message to receiving its last byte goes into a histogram
//!   (p50, p90, p99, max).
//!
//! The one idea: **verification must cost less than the thing measured.**
//! Each client's bytes are a function of (client, offset) ([`Pattern`]), so
//! checking an echoed byte is a comparison against a regenerated word — no
//! copy of what was sent is kept. A wrong byte, an early close or a socket
//! error fails that client and counts as an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{Event, Events, Selector, Token};

use super::args::{EchoArgs, EchoMode};
use super::client::{wait_into, Buffers, Conn, Failure};
use super::histogram::Histogram;
use super::pattern::Pattern;
use super::report::{self, Report};
use super::runner::{self, FinishGuard, Publisher, Shared};
use super::target::Target;

/// How often a thread publishes its progress for the progress line.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// What every thread needs to know about the run.
struct Plan {
    target: Target,
    clients: usize,
    threads: usize,
    messages: u64,
    size: u64,
    /// Bytes a client may have unacknowledged (one message in pingpong).
    window: u64,
    pingpong: bool,
    duration: Option<Duration>,
    timeout: Duration,
}

impl Plan {
    /// Messages for client `index`: the total split evenly, the remainder
    /// going one each to the first clients.
    fn messages_for(&self, index: usize) -> u64 {
        let clients = self.clients as u64;
        let base = self.messages / clients;
        base + u64::from((index as u64) < self.messages % clients)
    }
}

pub fn run(args: &EchoArgs) -> i32 {
    let plan = match super::prepare("echo", plan(args), &args.measure) {
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
            move |index| run_thread(index, &plan, &shared2),
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

    let usage = measured.usage;
    let messages = total.echoed / plan.size;
    let msgs_per_s = report::rate(messages as f64, usage.wall);
    let mib_per_s = report::rate(total.echoed as f64, usage.wall) / report::MIB;

    let mut r = Report::new("echo");
    r.line("Server address", plan.target.addr);
    r.line("Transport", transport_line(&plan.target));
    r.line("Client backend", plan.target.backend);
    r.line("Working threads", plan.threads);
    r.line("Working clients", plan.clients);
    r.line("Working messages", plan.messages);
    r.line("Message size", plan.size);
    match plan.pingpong {
        true => r.line("Mode", "pingpong (one message in flight per client)"),
        false => r.line(
            "Mode",
            format!(
                "stream ({} bytes in flight per client at most)",
                plan.window
            ),
        ),
    }
    if let Some(d) = plan.duration {
        r.line("Seconds to benchmarking", format!("{:.1}", d.as_secs_f64()));
    }
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
    r.headline(msgs_per_s, mib_per_s, total.errors);
    r.figure("mode", if plan.pingpong { "pingpong" } else { "stream" });
    r.figure("transport", plan.target.transport());
    r.figure("client_backend", plan.target.backend);
    r.figure("clients", plan.clients);
    r.figure("threads", plan.threads);
    r.figure("size", plan.size);
    r.figure("messages", messages);
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
    r.cpu(&usage, messages, "msg", "server_cpu_ns_per_msg");
    r.print()
}

fn plan(args: &EchoArgs) -> Result<Plan, String> {
    if args.clients == 0 || args.size == 0 || args.threads == 0 {
        return Err("--clients, --size and --threads must be at least 1".into());
    }
    let target = Target::from_args(&args.target, false)?;
    let size = args.size as u64;
    let pingpong = args.mode == EchoMode::Pingpong;
    let window = if pingpong {
        size
    } else {
        (args.window as u64).div_ceil(size).max(1) * size
    };
    Ok(Plan {
        target,
        clients: args.clients,
        threads: args.threads.min(args.clients),
        messages: args.messages,
        size,
        window,
        pingpong,
        duration: args
            .duration
            .map(|d| super::seconds(d, "--duration"))
            .transpose()?,
        timeout: super::seconds(args.timeout, "--timeout")?,
    })
}

pub(super) fn transport_line(target: &Target) -> String {
    match &target.tls {
        Some(_) => format!("TLS (SNI {})", target.sni),
        None => "plain".to_string(),
    }
}

/// One thread's totals.
#[derive(Default)]
struct ThreadResult {
    /// Bytes echoed back and verified.
    echoed: u64,
    errors: u64,
    histogram: Option<Histogram>,
    /// The first few failures, for stderr.
    failures: Vec<String>,
}

impl ThreadResult {
    const FAILURES_KEPT: usize = 5;

    fn note(&mut self, failure: String) {
        if self.failures.len() < Self::FAILURES_KEPT {
            self.failures.push(failure);
        }
    }

    fn merge(&mut self, other: ThreadResult) {
        self.echoed += other.echoed;
        self.errors += other.errors;
        for failure in other.failures {
            self.note(failure);
        }
        match (&mut self.histogram, other.histogram) {
            (Some(mine), Some(theirs)) => mine.merge(&theirs),
            (mine @ None, theirs) => *mine = theirs,
            _ => {}
        }
    }
}

/// One client: its connection and how far it has got.
struct EchoClient {
    id: usize,
    conn: Conn,
    pattern: Pattern,
    /// Bytes this client will send (messages × size; lowered to what was
    /// sent when --duration ends the run).
    goal: u64,
    sent: u64,
    received: u64,
    /// When the message in flight was written (pingpong).
    sent_at: Instant,
    /// Counted at the start line (ready, or failed).
    arrived: bool,
}

/// What an event did to a client.
#[derive(Default)]
struct Step {
    opened: bool,
    done: bool,
}

impl EchoClient {
    fn on_event(
        &mut self,
        event: &Event,
        buffers: &mut Buffers,
        scratch: &mut [u8],
        plan: &Plan,
        sending: bool,
        histogram: &mut Option<Histogram>,
    ) -> Result<Step, Failure> {
        let EchoClient {
            conn,
            pattern,
            sent,
            received,
            sent_at,
            ..
        } = self;
        let arrived = conn.on_event(event, buffers, |data| {
            let end = *received + data.len() as u64;
            if end > *sent {
                return Err(Failure::Corrupt(format!(
                    "{end} bytes came back but only {sent} were sent"
                )));
            }
            if let Some(at) = pattern.first_mismatch(*received, data) {
                return Err(Failure::Corrupt(format!(
                    "echoed byte {} differs from the byte sent",
                    *received + at as u64
                )));
            }
            if let Some(h) = histogram.as_mut() {
                if end == *sent {
                    // One message in flight: its last byte just arrived.
                    h.record(sent_at.elapsed().as_nanos() as u64);
                }
            }
            *received = end;
            Ok(())
        })?;
        let mut step = Step {
            opened: arrived.opened,
            done: false,
        };
        if sending {
            self.top_up(scratch, plan)?;
        }
        step.done = self.is_done();
        if arrived.eof && !step.done {
            return Err(Failure::Closed(format!(
                "after {} of {} bytes were echoed",
                self.received, self.goal
            )));
        }
        Ok(step)
    }

    /// Sends as many whole messages as the window and the goal allow.
    fn top_up(&mut self, scratch: &mut [u8], plan: &Plan) -> Result<(), Failure> {
        if !self.conn.is_open() {
            return Ok(());
        }
        let in_flight = self.sent - self.received;
        let room = plan
            .window
            .saturating_sub(in_flight)
            .min(self.goal - self.sent);
        let n = (room / plan.size * plan.size) as usize;
        if n == 0 {
            return Ok(());
        }
        let bytes = &mut scratch[..n];
        self.pattern.fill(self.sent, bytes);
        self.conn.send(bytes)?;
        self.sent += n as u64;
        self.sent_at = Instant::now();
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.conn.is_open() && self.sent == self.goal && self.received == self.goal
    }
}

/// One thread: its share of the clients on its own reactor.
fn run_thread(index: usize, plan: &Plan, shared: &Arc<Shared>) -> ThreadResult {
    let mut guard = FinishGuard::new(shared.clone());
    let mine: Vec<usize> = (index..plan.clients).step_by(plan.threads).collect();
    let mut result = ThreadResult::default();
    // Kept apart from `result` so client callbacks can record into it
    // while `result` is borrowed for failures.
    let mut histogram = plan.pingpong.then(Histogram::new);
    let mut selector = match plan.target.backend.open() {
        Ok(selector) => selector,
        Err(e) => {
            shared.start.arrive(mine.len());
            result.errors += mine.len() as u64;
            result.note(format!(
                "cannot open the {} reactor: {e}",
                plan.target.backend
            ));
            return result;
        }
    };
    let mut clients: Vec<Option<EchoClient>> = Vec::with_capacity(mine.len());
    for (slot, &id) in mine.iter().enumerate() {
        match open_client(selector.as_mut(), plan, id, Token(slot)) {
            Ok(client) => clients.push(Some(client)),
            Err(failure) => {
                shared.start.arrive(1);
                result.errors += 1;
                result.note(format!("client {id}: {failure}"));
                clients.push(None);
            }
        }
    }
    let mut active = clients.iter().flatten().count();

    let deadline = Instant::now() + plan.timeout;
    let mut events = Events::with_capacity(1024);
    let mut ready: Vec<Event> = Vec::new();
    let mut buffers = Buffers::default();
    let mut scratch = vec![0u8; plan.window as usize];
    let mut sending = false;
    let mut stop_at: Option<Instant> = None;
    let mut publisher = Publisher::default();
    let mut last_publish = Instant::now();

    while active > 0 {
        let now = Instant::now();
        if !sending {
            if let Some(fired) = shared.start.fired() {
                sending = true;
                stop_at = plan.duration.map(|d| fired + d);
                // Everyone starts at once; later sends are driven by echoes.
                for slot in 0..clients.len() {
                    with_client(&mut clients, slot, selector.as_mut(), &mut result, |c| {
                        c.top_up(&mut scratch, plan).map(|()| Step {
                            opened: false,
                            done: c.is_done(),
                        })
                    });
                }
            }
        }
        if stop_at.is_some_and(|at| now >= at) {
            stop_at = None;
            // Time is up: send nothing more, wait only for what is in flight.
            for slot in 0..clients.len() {
                with_client(&mut clients, slot, selector.as_mut(), &mut result, |c| {
                    c.goal = c.sent;
                    Ok(Step {
                        opened: false,
                        done: c.is_done(),
                    })
                });
            }
        }
        active = clients.iter().flatten().count();
        if active == 0 {
            break;
        }
        if now >= deadline {
            shared
                .start
                .arrive(clients.iter().flatten().filter(|c| !c.arrived).count());
            for client in clients.iter_mut().filter_map(Option::take) {
                client.conn.deregister(selector.as_mut());
                result.echoed += client.received;
                result.errors += 1;
                result.note(format!("client {}: {}", client.id, Failure::Timeout));
            }
            break;
        }
        let timeout = if sending {
            let until = stop_at.map_or(deadline, |at| at.min(deadline));
            until.saturating_duration_since(now)
        } else {
            // Waiting for the start line, which other threads may fire.
            Duration::from_millis(1)
        };
        if let Err(e) = wait_into(selector.as_mut(), &mut events, &mut ready, Some(timeout)) {
            result.errors += active as u64;
            result.note(format!("reactor wait failed: {e}"));
            shared
                .start
                .arrive(clients.iter().flatten().filter(|c| !c.arrived).count());
            break;
        }
        for event in &ready {
            let slot = event.token.0;
            let arrives = with_client(&mut clients, slot, selector.as_mut(), &mut result, |c| {
                c.on_event(
                    event,
                    &mut buffers,
                    &mut scratch,
                    plan,
                    sending,
                    &mut histogram,
                )
            });
            if arrives {
                shared.start.arrive(1);
            }
        }
        // The progress line needs a figure a few times a second, not per loop.
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = Instant::now();
            let in_flight: u64 = clients.iter().flatten().map(|c| c.received).sum();
            let units = (result.echoed + in_flight) / plan.size;
            publisher.publish(&shared.counters, units, result.errors);
        }
    }
    guard.finish();
    result.histogram = histogram;
    result
}

/// Runs `f` on the client in `slot` (if any), then re-arms it, or retires
/// it when it is done or failed. Returns whether the client has just
/// reached the start line: opened, or failed before opening.
fn with_client(
    clients: &mut [Option<EchoClient>],
    slot: usize,
    selector: &mut dyn Selector,
    result: &mut ThreadResult,
    f: impl FnOnce(&mut EchoClient) -> Result<Step, Failure>,
) -> bool {
    let Some(client) = clients.get_mut(slot).and_then(Option::as_mut) else {
        return false; // stale event for a retired client
    };
    let outcome = f(client).and_then(|step| {
        if !step.done
            && !client
                .conn
                .rearm(selector, Token(slot))
                .map_err(Failure::Io)?
        {
            return Err(Failure::Closed(
                "the connection has nothing left to do".into(),
            ));
        }
        Ok(step)
    });
    let (arrives, retire) = match outcome {
        Ok(step) => {
            let arrives = step.opened && !client.arrived;
            (arrives, step.done.then_some(None))
        }
        // A client that failed before opening still counts at the start
        // line: nobody must wait for it.
        Err(failure) => (!client.arrived, Some(Some(failure))),
    };
    if arrives {
        client.arrived = true;
    }
    if let Some(failure) = retire {
        if let Some(mut client) = clients[slot].take() {
            if failure.is_none() {
                // Polite end of a finished TLS client; errors no longer matter.
                let _ = client.conn.close_notify();
            }
            client.conn.deregister(selector);
            result.echoed += client.received;
            if let Some(failure) = failure {
                result.errors += 1;
                result.note(format!("client {}: {failure}", client.id));
            }
        }
    }
    arrives
}

fn open_client(
    selector: &mut dyn Selector,
    plan: &Plan,
    id: usize,
    token: Token,
) -> Result<EchoClient, Failure> {
    let tls = plan.target.session(None)?;
    let conn = Conn::connect(plan.target.addr, None, tls)?;
    conn.register(selector, token).map_err(Failure::Connect)?;
    let goal = plan.messages_for(id) * plan.size;
    Ok(EchoClient {
        id,
        conn,
        pattern: Pattern::new(id as u64),
        goal,
        sent: 0,
        received: 0,
        sent_at: Instant::now(),
        arrived: false,
    })
}
