//! `bench connections`: open N concurrent connections, check each with one
//! echo, hold them, and measure what they cost the server.
//!
//! Two machine limits shape the plan, and both are worked around rather
//! than hit:
//!
//! * **Ephemeral ports.** One source address has about 28,000 ports towards
//!   one server address. Beyond half of them (the kernel's search for a
//!   free port slows as the range fills), connections are spread over
//!   127.0.0.2, 127.0.0.3, …:
//!   each socket is bound to its source address (port chosen at connect)
//!   before connecting. All of 127.0.0.0/8 is loopback on Linux.
//! * **Descriptors per process.** A process may hold only RLIMIT_NOFILE
//!   sockets. Beyond that the bench re-executes itself as child processes,
//!   each holding a share (`--child-share START:N`, hidden), reporting
//!   `READY` on stdout when its share is set up and holding until the parent
//!   closes its stdin.
//!
//! With `--server-pid`, the server's resident memory is read before any
//! connection and again while all are held: (RSS_hold − RSS_before) / N is
//! the server's memory per idle connection. The RESULT line's `msgs_per_s`
//! is connections set up (and checked) per second.
//!
//! The one idea: **set up in bounded batches.** Ten thousand simultaneous
//! `connect`s overflow the server's accept backlog and turn into SYN
//! retransmissions a second later; a few hundred in flight at a time
//! finishes sooner.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use backends::{Event, Events, Selector, Token};

use super::args::ConnectionsArgs;
use super::client::{wait_into, Buffers, Conn, Failure};
use super::cpu::{self, Snapshot};
use super::descriptors;
use super::os;
use super::pattern::Pattern;
use super::report::{self, Report};
use super::runner::{Counters, ProgressLine};
use super::target::Target;

/// Highest useful number of source addresses (127.0.0.2 ..= 127.0.0.254).
const MAX_SOURCES: usize = 253;
/// How long to let the server settle before reading its memory.
const SETTLE: Duration = Duration::from_millis(500);

struct Plan {
    target: Target,
    count: usize,
    hold: Duration,
    size: usize,
    per_process: usize,
    sources: Vec<IpAddr>,
    concurrency: usize,
    timeout: Duration,
}

pub fn run(args: &ConnectionsArgs) -> i32 {
    let plan = match super::prepare("connections", plan(args), &args.measure) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    if let Err(e) = os::catch_stop_signals() {
        eprintln!("portcullis bench connections: cannot catch signals: {e}");
        return 1;
    }
    if let Some(share) = &args.child_share {
        return match parse_share(share) {
            Ok((start, count)) => run_child(&plan, start, count),
            Err(message) => {
                eprintln!("portcullis bench connections: {message}");
                2
            }
        };
    }
    run_parent(&plan, &args.measure.server_pid)
}

fn plan(args: &ConnectionsArgs) -> Result<Plan, String> {
    if args.count == 0 || args.size == 0 || args.setup_concurrency == 0 {
        return Err("--count, --size and --setup-concurrency must be at least 1".into());
    }
    let target = Target::from_args(&args.target, false)?;
    // Children inherit the raised limit; only the parent tells the story.
    let budget = descriptors::raise_soft_limit()
        .map_err(|e| format!("cannot read the open-file limit (RLIMIT_NOFILE): {e}"))?;
    let per_process = match args.per_process {
        Some(0) => return Err("--per-process must be at least 1".into()),
        Some(n) if n > budget.per_process() => return Err(budget.refusal(n)),
        Some(n) => n,
        None => budget.per_process(),
    };
    if args.child_share.is_none() {
        eprintln!("portcullis bench connections: {}", budget.account());
        let processes = args.count.div_ceil(per_process);
        if processes > 1 {
            eprintln!(
                "portcullis bench connections: {} connections need {processes} processes of at \
                 most {per_process}",
                args.count
            );
        }
        if let Some(room) = descriptors::server_room(&args.measure.server_pid) {
            if let Some(warning) =
                descriptors::server_warning(&args.measure.server_pid, room, args.count)
            {
                eprintln!("portcullis bench connections: warning: {warning}");
            }
        }
    }
    // Use at most half of each address's ports: Linux's search for a free
    // port in connect() slows sharply as the range fills (measured here:
    // 19,000 connections from one address set up 5x slower than from two),
    // and TIME_WAIT entries and other programs need some too.
    let per_address = (os::ephemeral_ports() / 2).max(1);
    let wanted = match args.sources {
        Some(k) => k,
        None if args.count <= per_address => 0,
        None => args.count.div_ceil(per_address),
    };
    let sources = if wanted == 0 {
        Vec::new()
    } else {
        let loopback_v4 = matches!(target.addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
        if !loopback_v4 {
            return Err(format!(
                "{} connections need {wanted} source addresses, which only works against a \
                 127.x.x.x server (pass --sources 0 to use one address)",
                args.count
            ));
        }
        if wanted > MAX_SOURCES {
            return Err(format!("--sources: at most {MAX_SOURCES}"));
        }
        (0..wanted)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)))
            .collect()
    };
    Ok(Plan {
        target,
        count: args.count,
        hold: Duration::try_from_secs_f64(args.hold)
            .map_err(|_| "--hold: must be a number of seconds, 0 or more".to_string())?,
        size: args.size,
        per_process,
        sources,
        concurrency: args.setup_concurrency,
        timeout: super::seconds(args.timeout, "--timeout")?,
    })
}

fn parse_share(text: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--child-share: expected START:N, got `{text}`");
    let (start, count) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        start.parse().map_err(|_| bad())?,
        count.parse().map_err(|_| bad())?,
    ))
}

/// What one process's share came to.
#[derive(Debug, Default, Clone)]
struct ShareOutcome {
    ok: usize,
    failed: usize,
    /// Closed by the server (or failed) while held.
    dropped: usize,
    setup: Duration,
}

fn run_parent(plan: &Plan, server_pid: &[u32]) -> i32 {
    let rss_before = cpu::servers_resident_bytes(server_pid);
    let cpu_before = Snapshot::take(server_pid);
    let processes = plan.count.div_ceil(plan.per_process);
    let mut rss_hold = None;
    let mut cpu_setup = None;
    let on_ready = |outcome: &ShareOutcome, rss_hold: &mut Option<u64>| {
        if !server_pid.is_empty() {
            std::thread::sleep(SETTLE);
            *rss_hold = cpu::servers_resident_bytes(server_pid);
        }
        eprintln!(
            "portcullis bench connections: holding {} connections",
            outcome.ok
        );
    };
    let outcome = if processes <= 1 {
        let mut share = match Share::new(plan, 0, plan.count) {
            Ok(share) => share,
            Err(e) => {
                eprintln!("portcullis bench connections: {e}");
                return 1;
            }
        };
        share.set_up(&AtomicBool::new(false));
        cpu_setup = Some(cpu_before.until(&Snapshot::take(server_pid)));
        let mut outcome = share.outcome();
        on_ready(&outcome, &mut rss_hold);
        share.hold(Instant::now() + plan.hold, &AtomicBool::new(false));
        outcome.dropped = share.dropped;
        share.reset_all();
        outcome
    } else {
        match run_children(plan, processes, |outcome| {
            cpu_setup = Some(cpu_before.until(&Snapshot::take(server_pid)));
            on_ready(outcome, &mut rss_hold);
        }) {
            Ok(outcome) => outcome,
            Err(e) => {
                eprintln!("portcullis bench connections: {e}");
                return 1;
            }
        }
    };

    let errors = (outcome.failed + outcome.dropped) as u64;
    let setup_rate = report::rate(outcome.ok as f64, outcome.setup);
    let mut r = Report::new("connections");
    r.line("Server address", plan.target.addr);
    r.line("Transport", plan.target.describe());
    r.line("Connections", plan.count);
    r.line("Processes", processes);
    r.line(
        "Source addresses",
        match plan.sources.len() {
            0 => "default".to_string(),
            n => format!("127.0.0.2 .. 127.0.0.{}", n + 1),
        },
    );
    r.line("Hold", format!("{:.1} s", plan.hold.as_secs_f64()));
    r.blank();
    r.line("Errors", errors);
    r.blank();
    r.line("Connections ok", outcome.ok);
    r.line("Connections failed", outcome.failed);
    r.line("Dropped while held", outcome.dropped);
    r.line(
        "Setup time",
        format!(
            "{} ({} connections/s)",
            report::seconds(outcome.setup),
            report::fixed(setup_rate, 0)
        ),
    );
    r.headline(setup_rate, 0.0, errors);
    r.figure("transport", plan.target.transport());
    r.figure("connections", plan.count);
    r.figure("connections_ok", outcome.ok);
    r.figure("connections_failed", outcome.failed);
    r.figure("dropped", outcome.dropped);
    r.figure("processes", processes);
    r.figure("sources", plan.sources.len().max(1));
    r.figure("setup_s", report::fixed(outcome.setup.as_secs_f64(), 3));
    if let Some(ns) = cpu_setup.and_then(|u| u.server_ns_per(outcome.ok as u64)) {
        r.line(
            "Server CPU",
            format!("{} us per connection set up", report::fixed(ns / 1000.0, 1)),
        );
        r.figure("server_cpu_us_per_conn", report::fixed(ns / 1000.0, 1));
    }
    if let (Some(before), Some(hold)) = (rss_before, rss_hold) {
        let per_conn = (hold as f64 - before as f64) / outcome.ok.max(1) as f64;
        r.line("Server RSS before", report::bytes(before as f64));
        r.line("Server RSS holding", report::bytes(hold as f64));
        r.line(
            "Server memory",
            format!("{} bytes per connection", report::fixed(per_conn, 0)),
        );
        r.figure("rss_before_kib", before / 1024);
        r.figure("rss_hold_kib", hold / 1024);
        r.figure("rss_bytes_per_conn", report::fixed(per_conn, 0));
    }
    r.print()
}

/// A child: set up the share, say READY, hold until stdin closes (the
/// parent's signal, also sent by its death), say DONE.
fn run_child(plan: &Plan, start: usize, count: usize) -> i32 {
    let released = Arc::new(AtomicBool::new(false));
    {
        let released = released.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            released.store(true, Ordering::SeqCst);
        });
    }
    let mut share = match Share::new(plan, start, count) {
        Ok(share) => share,
        Err(e) => {
            eprintln!("portcullis bench connections (child {start}): {e}");
            return 1;
        }
    };
    share.set_up(&released);
    let o = share.outcome();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "READY ok={} failed={} setup_ns={}",
        o.ok,
        o.failed,
        o.setup.as_nanos()
    );
    let _ = out.flush();
    share.hold(
        Instant::now() + Duration::from_secs(86_400 * 365),
        &released,
    );
    share.reset_all();
    let _ = writeln!(out, "DONE dropped={}", share.dropped);
    let _ = out.flush();
    0
}

/// Spreads the count over `processes` children, calls `ready` once all
/// have set up, holds for the plan's time, then releases them.
fn run_children(
    plan: &Plan,
    processes: usize,
    mut ready: impl FnMut(&ShareOutcome),
) -> Result<ShareOutcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let (tx, rx) = mpsc::channel::<(usize, Option<String>)>();
    let mut children: Vec<Child> = Vec::new();
    for index in 0..processes {
        let start = index * plan.per_process;
        let count = plan.per_process.min(plan.count - start);
        let spawned = Command::new(&exe)
            .args(&args)
            .arg("--child-share")
            .arg(format!("{start}:{count}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                release(&mut children);
                return Err(format!("cannot start a child process: {e}"));
            }
        };
        if let Some(stdout) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send((index, Some(line))).is_err() {
                        return;
                    }
                }
                let _ = tx.send((index, None)); // the child's stdout closed
            });
        }
        children.push(child);
    }
    drop(tx);

    let mut total = ShareOutcome::default();
    let mut readied = vec![false; processes];
    let mut finished = vec![false; processes];
    let give_up = Instant::now() + plan.timeout + Duration::from_secs(10);
    let mut held_until: Option<Instant> = None;
    let mut released = false;
    while finished.iter().any(|f| !f) {
        if held_until.is_none() && readied.iter().all(|r| *r) {
            ready(&total);
            held_until = Some(Instant::now() + plan.hold);
        }
        let hold_over = held_until.is_some_and(|at| Instant::now() >= at);
        if !released && (hold_over || os::stop_requested() || Instant::now() >= give_up) {
            release(&mut children);
            released = true;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((index, Some(line))) => {
                let field = |key: &str| -> usize {
                    line.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("READY") && !readied[index] {
                    readied[index] = true;
                    total.ok += field("ok");
                    total.failed += field("failed");
                    total.setup = total
                        .setup
                        .max(Duration::from_nanos(field("setup_ns") as u64));
                } else if line.starts_with("DONE") {
                    total.dropped += field("dropped");
                }
            }
            Ok((index, None)) => {
                if !readied[index] {
                    // Died before setting up: its whole share failed.
                    readied[index] = true;
                    let start = index * plan.per_process;
                    total.failed += plan.per_process.min(plan.count - start);
                }
                finished[index] = true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if !released {
        release(&mut children);
    }
    for child in &mut children {
        let _ = child.wait();
    }
    Ok(total)
}

/// Closes the children's stdin: their signal to let go.
fn release(children: &mut [Child]) {
    for child in children {
        drop(child.stdin.take());
    }
}

/// Where a connection is.
enum Stage {
    /// Connecting, handshaking, or waiting for its check echo.
    Checking {
        received: usize,
    },
    Idle,
}

struct Held {
    id: usize,
    conn: Conn,
    stage: Stage,
}

/// One process's connections and their reactor.
struct Share<'p> {
    plan: &'p Plan,
    start: usize,
    count: usize,
    selector: Box<dyn Selector>,
    held: Vec<Option<Held>>,
    events: Events,
    ready: Vec<Event>,
    buffers: Buffers,
    message: Vec<u8>,
    ok: usize,
    failed: usize,
    dropped: usize,
    setting_up: usize,
    setup: Duration,
    progress: Counters,
}

impl<'p> Share<'p> {
    fn new(plan: &'p Plan, start: usize, count: usize) -> Result<Share<'p>, String> {
        let selector = plan
            .target
            .backend
            .open()
            .map_err(|e| format!("cannot open the reactor: {e}"))?;
        Ok(Share {
            plan,
            start,
            count,
            selector,
            held: Vec::with_capacity(count),
            events: Events::with_capacity(1024),
            ready: Vec::new(),
            buffers: Buffers::default(),
            message: vec![0; plan.size],
            ok: 0,
            failed: 0,
            dropped: 0,
            setting_up: 0,
            setup: Duration::ZERO,
            progress: Counters::default(),
        })
    }

    fn outcome(&self) -> ShareOutcome {
        ShareOutcome {
            ok: self.ok,
            failed: self.failed,
            dropped: self.dropped,
            setup: self.setup,
        }
    }

    /// Opens every connection of the share, at most `concurrency` at a
    /// time in setup, and checks each with one echo.
    fn set_up(&mut self, abandon: &AtomicBool) {
        let began = Instant::now();
        let deadline = began + self.plan.timeout;
        let mut progress = ProgressLine::new("connections", "set up");
        while self.held.len() < self.count || self.setting_up > 0 {
            if Instant::now() >= deadline || os::stop_requested() || abandon.load(Ordering::SeqCst)
            {
                self.abandon_setup();
                break;
            }
            while self.setting_up < self.plan.concurrency && self.held.len() < self.count {
                self.open_next();
            }
            self.pump(Duration::from_millis(100));
            self.progress.units.store(self.ok as u64, Ordering::Relaxed);
            self.progress
                .errors
                .store(self.failed as u64, Ordering::Relaxed);
            progress.tick(began, &self.progress);
        }
        progress.clear();
        self.setup = began.elapsed();
    }

    fn open_next(&mut self) {
        let slot = self.held.len();
        let id = self.start + slot;
        let source = (!self.plan.sources.is_empty())
            .then(|| self.plan.sources[id % self.plan.sources.len()]);
        let opened = self
            .plan
            .target
            .session(None)
            .and_then(|tls| Conn::connect(self.plan.target.addr, source, tls))
            .and_then(|conn| {
                conn.register(self.selector.as_mut(), Token(slot))
                    .map_err(Failure::Connect)?;
                Ok(conn)
            });
        match opened {
            Ok(conn) => {
                self.setting_up += 1;
                self.held.push(Some(Held {
                    id,
                    conn,
                    stage: Stage::Checking { received: 0 },
                }));
            }
            Err(failure) => {
                self.note_failure(id, &failure);
                self.failed += 1;
                self.held.push(None);
            }
        }
    }

    /// Holds until `until`, the stop signal or `release`, noticing
    /// connections the server closes.
    fn hold(&mut self, until: Instant, release: &AtomicBool) {
        while Instant::now() < until && !os::stop_requested() && !release.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            self.pump(left.min(Duration::from_millis(100)));
        }
    }

    /// One wait and its events.
    fn pump(&mut self, timeout: Duration) {
        if let Err(e) = wait_into(
            self.selector.as_mut(),
            &mut self.events,
            &mut self.ready,
            Some(timeout),
        ) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                eprintln!("portcullis bench connections: reactor wait failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        for i in 0..self.ready.len() {
            let event = self.ready[i];
            self.on_event(&event);
        }
    }

    fn on_event(&mut self, event: &Event) {
        let slot = event.token.0;
        let Some(held) = self.held.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let size = self.plan.size;
        let pattern = Pattern::new(held.id as u64);
        let outcome = (|| {
            let Held { conn, stage, .. } = held;
            let arrived = conn.on_event(event, &mut self.buffers, |data| match stage {
                Stage::Checking { received } => {
                    if *received + data.len() > size {
                        return Err(Failure::Corrupt("more bytes than were sent".into()));
                    }
                    if pattern.first_mismatch(*received as u64, data).is_some() {
                        return Err(Failure::Corrupt("the echo differs".into()));
                    }
                    *received += data.len();
                    Ok(())
                }
                // Nothing should arrive on an idle connection; ignore it.
                Stage::Idle => Ok(()),
            })?;
            if arrived.opened {
                pattern.fill(0, &mut self.message);
                conn.send(&self.message)?;
            }
            let checked = matches!(stage, Stage::Checking { received } if *received == size);
            if checked {
                *stage = Stage::Idle;
            }
            if arrived.eof {
                return Err(Failure::Closed("the connection ended".into()));
            }
            if !conn
                .rearm(self.selector.as_mut(), Token(slot))
                .map_err(Failure::Io)?
            {
                return Err(Failure::Closed("nothing left to do".into()));
            }
            Ok(checked)
        })();
        match outcome {
            Ok(true) => {
                self.ok += 1;
                self.setting_up -= 1;
            }
            Ok(false) => {}
            Err(failure) => {
                let Some(held) = self.held[slot].take() else {
                    return;
                };
                held.conn.deregister(self.selector.as_mut());
                held.conn.reset_on_drop();
                match held.stage {
                    Stage::Checking { .. } => {
                        self.note_failure(held.id, &failure);
                        self.failed += 1;
                        self.setting_up -= 1;
                    }
                    Stage::Idle => {
                        self.ok -= 1;
                        self.dropped += 1;
                    }
                }
            }
        }
    }

    /// Gives up on connections still being set up.
    fn abandon_setup(&mut self) {
        for slot in 0..self.held.len() {
            if matches!(
                &self.held[slot],
                Some(Held {
                    stage: Stage::Checking { .. },
                    ..
                })
            ) {
                if let Some(held) = self.held[slot].take() {
                    held.conn.deregister(self.selector.as_mut());
                    held.conn.reset_on_drop();
                    self.note_failure(held.id, &Failure::Timeout);
                    self.failed += 1;
                    self.setting_up -= 1;
                }
            }
        }
        // Connections never started count as failed too.
        self.failed += self.count - self.held.len();
    }

    /// Ends every held connection with a reset: thousands of graceful
    /// closes would leave thousands of TIME_WAIT entries holding ports.
    fn reset_all(&mut self) {
        for held in self.held.drain(..).flatten() {
            held.conn.deregister(self.selector.as_mut());
            held.conn.reset_on_drop();
        }
    }

    fn note_failure(&self, id: usize, failure: &Failure) {
        // The first few only: a refused server would otherwise print N lines.
        if self.failed < 5 {
            eprintln!("portcullis bench connections: connection {id}: {failure}");
        }
    }
}
