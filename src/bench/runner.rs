//! Running a scenario on several threads, each with its own reactor, and
//! measuring exactly the interval that matters.
//!
//! The one idea: **measure from a common starting line, not from process
//! start.** Connecting and TLS handshakes are not what an echo or multicast
//! run measures, so every thread first sets up its connections and arrives
//! at the [`StartLine`]; the last arrival fires it, every thread starts
//! sending, and the main thread reads the CPU clocks (ours and the
//! server's). When every thread has finished its measured part the clocks
//! are read again — before teardown, which is not measured either.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cpu::{Snapshot, Usage};
use super::os;

/// Fires once every expected participant has arrived.
#[derive(Debug)]
pub struct StartLine {
    expected: usize,
    arrived: AtomicUsize,
    fired_at: OnceLock<Instant>,
}

impl StartLine {
    pub fn new(expected: usize) -> StartLine {
        let line = StartLine {
            expected,
            arrived: AtomicUsize::new(0),
            fired_at: OnceLock::new(),
        };
        if expected == 0 {
            let _ = line.fired_at.set(Instant::now());
        }
        line
    }

    /// Counts `n` arrivals (a connection ready, or one that failed and will
    /// never be ready: either way nobody should wait for it).
    pub fn arrive(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.arrived.fetch_add(n, Ordering::AcqRel);
        if before < self.expected && before + n >= self.expected {
            let _ = self.fired_at.set(Instant::now());
        }
    }

    /// When the line fired, if it has.
    pub fn fired(&self) -> Option<Instant> {
        self.fired_at.get().copied()
    }
}

/// Progress figures threads publish about once per loop, for the progress
/// line; the final report uses each thread's own totals.
#[derive(Debug, Default)]
pub struct Counters {
    pub units: AtomicU64,
    pub errors: AtomicU64,
}

/// A thread's view of what it already added to the shared [`Counters`]:
/// threads keep plain local totals and publish the difference about once
/// per loop, so the hot path never touches a shared cache line.
#[derive(Debug, Default)]
pub struct Publisher {
    units: u64,
    errors: u64,
}

impl Publisher {
    pub fn publish(&mut self, counters: &Counters, units: u64, errors: u64) {
        if units > self.units {
            counters
                .units
                .fetch_add(units - self.units, Ordering::Relaxed);
            self.units = units;
        }
        if errors > self.errors {
            counters
                .errors
                .fetch_add(errors - self.errors, Ordering::Relaxed);
            self.errors = errors;
        }
    }
}

/// State shared by the threads of one run and the main thread.
#[derive(Debug)]
pub struct Shared {
    pub start: StartLine,
    pub counters: Counters,
    /// Threads whose measured interval is over.
    finished: AtomicUsize,
}

impl Shared {
    pub fn new(expected_arrivals: usize) -> Arc<Shared> {
        Arc::new(Shared {
            start: StartLine::new(expected_arrivals),
            counters: Counters::default(),
            finished: AtomicUsize::new(0),
        })
    }

    /// A thread calls this when its measured part is over.
    pub fn finish_measuring(&self) {
        self.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// Calls [`Shared::finish_measuring`] when dropped, so a thread that
/// returns early (an error) or panics still lets the run end.
pub struct FinishGuard {
    shared: Arc<Shared>,
    done: bool,
}

impl FinishGuard {
    pub fn new(shared: Arc<Shared>) -> FinishGuard {
        FinishGuard {
            shared,
            done: false,
        }
    }

    pub fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.shared.finish_measuring();
        }
    }
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What the main thread saw of a run.
pub struct Measured<R> {
    /// Each thread's result; `Err` for a thread that panicked.
    pub results: Vec<Result<R, String>>,
    /// CPU and wall time between the start line and the last thread
    /// finishing its measured part.
    pub usage: Usage,
}

/// Runs `body(thread_index)` on `threads` threads and measures the run.
/// `label` names the progress line (printed on a terminal only, for runs
/// longer than a few seconds), `unit` what `Counters::units` counts.
pub fn run_threads<R, F>(
    threads: usize,
    shared: &Arc<Shared>,
    server_pid: &[u32],
    label: &str,
    unit: &str,
    body: F,
) -> Measured<R>
where
    R: Send + 'static,
    F: Fn(usize) -> R + Send + Sync + 'static,
{
    let body = Arc::new(body);
    let handles: Vec<JoinHandle<R>> = (0..threads)
        .map(|index| {
            let body = body.clone();
            std::thread::Builder::new()
                .name(format!("bench-{index}"))
                .spawn(move || body(index))
                .expect("spawning a bench thread")
        })
        .collect();

    let launched = Instant::now();
    let mut progress = ProgressLine::new(label, unit);
    let mut begin: Option<Snapshot> = None;
    let mut end: Option<Snapshot> = None;
    loop {
        if begin.is_none() && shared.start.fired().is_some() {
            begin = Some(Snapshot::take(server_pid));
        }
        if end.is_none() && shared.finished.load(Ordering::Acquire) >= threads {
            end = Some(Snapshot::take(server_pid));
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        progress.tick(launched, &shared.counters);
        // Poll finely around the edges of the measured interval, coarsely
        // in between: this thread shares a core with the workers.
        let pause = if begin.is_none() || (end.is_none() && nearly_done(shared, threads)) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        };
        std::thread::sleep(pause);
    }
    progress.clear();
    let end = end.unwrap_or_else(|| Snapshot::take(server_pid));
    let begin = begin.unwrap_or(end);
    let results = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| "a bench thread panicked".to_string()))
        .collect();
    Measured {
        results,
        usage: begin.until(&end),
    }
}

fn nearly_done(shared: &Shared, threads: usize) -> bool {
    shared.finished.load(Ordering::Acquire) > 0 || threads == 1
}

/// A `\r`-rewritten status line on stderr, only when stderr is a terminal
/// (logs and pipes get the final report only), and only after a couple of
/// seconds (short runs need none).
pub struct ProgressLine {
    enabled: bool,
    label: String,
    unit: String,
    last: Option<Instant>,
    shown: bool,
}

impl ProgressLine {
    const AFTER: Duration = Duration::from_secs(2);
    const EVERY: Duration = Duration::from_millis(500);

    pub fn new(label: &str, unit: &str) -> ProgressLine {
        ProgressLine {
            enabled: os::stderr_is_tty(),
            label: label.to_string(),
            unit: unit.to_string(),
            last: None,
            shown: false,
        }
    }

    pub fn tick(&mut self, since: Instant, counters: &Counters) {
        let elapsed = since.elapsed();
        if !self.enabled || elapsed < Self::AFTER {
            return;
        }
        if self.last.is_some_and(|at| at.elapsed() < Self::EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{}: {:.1} s, {} {}, {} errors",
            self.label,
            elapsed.as_secs_f64(),
            counters.units.load(Ordering::Relaxed),
            self.unit,
            counters.errors.load(Ordering::Relaxed)
        );
        let _ = err.flush();
    }

    /// Erases the line before the report is printed.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}
