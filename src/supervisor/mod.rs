//! `portcullis serve --processes N`: N worker processes on one port, kept
//! running by a supervisor.
//!
//! Threads share one descriptor limit and die together; processes do not.
//! The supervisor binds every listener once per worker process with
//! `SO_REUSEPORT` and keeps the sockets ([`sockets`]), generates the
//! session-ticket secret they share ([`tickets`]), and starts each process
//! with its sockets through the socket-activation protocol ([`child`]).
//! Then it only watches:
//!
//! * a process that exits on its own is logged, counted and restarted
//!   after a back-off ([`backoff`]) with the same sockets; the others never
//!   notice;
//! * SIGHUP is forwarded to every process, each of which reloads;
//! * SIGTERM or SIGINT is forwarded as SIGTERM, so every process drains;
//!   the supervisor waits for them (SIGKILL after the grace period and a
//!   margin) and exits.
//!
//! The one idea: **the supervisor holds everything that must outlive a
//! worker** — the listening sockets and the ticket secret — and nothing
//! else: it never accepts a connection, so a worker's crash costs exactly
//! the connections that worker held.

pub mod backoff;
pub mod child;
pub mod sockets;
pub mod tickets;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::Child;
use std::str::FromStr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::cli::serve::{describe_listener, prepare};
use crate::cli::ServeArgs;
use crate::server;

/// `--processes N` or `--processes auto` (one per core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    Auto,
    Count(usize),
}

impl FromStr for Processes {
    type Err = String;

    fn from_str(text: &str) -> Result<Processes, String> {
        if text == "auto" {
            return Ok(Processes::Auto);
        }
        match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Processes::Count(n)),
            _ => Err(format!(
                "`{text}` is neither `auto` nor a number of processes (1 or more)"
            )),
        }
    }
}

impl Processes {
    pub fn count(self) -> usize {
        match self {
            Processes::Count(n) => n,
            Processes::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// How long after the grace period a draining process gets before SIGKILL.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// One worker process slot.
struct Worker {
    index: usize,
    process: Option<Child>,
    started: Instant,
    restart_at: Option<Instant>,
    backoff: backoff::Backoff,
}

/// Runs the supervisor until SIGTERM or SIGINT; returns the exit code.
pub fn run(args: &ServeArgs, processes: Processes) -> i32 {
    let count = processes.count();
    // Load and check everything once here, so a bad config fails at once
    // rather than in N restart loops.
    let settings = match prepare(args) {
        Ok(prepared) => prepared.settings,
        Err(err) => {
            eprintln!("portcullis: {err}");
            return 2;
        }
    };
    if settings.udp.is_some() {
        eprintln!(
            "portcullis: --processes: UDP sockets are not supervised; serve UDP with --workers"
        );
        return 2;
    }
    if let Err(err) = server::block_shutdown_signals() {
        eprintln!("portcullis: cannot block signals: {err}");
        return 1;
    }
    let group = match sockets::bind(&settings.listeners, count) {
        Ok(group) => group,
        Err(err) => {
            eprintln!("portcullis: {err}");
            return 1;
        }
    };
    let tickets = match tickets::SharedTickets::create(&tickets::SharedTickets::default_parent()) {
        Ok(tickets) => tickets,
        Err(err) => {
            eprintln!("portcullis: cannot write the shared ticket key file: {err}");
            return 1;
        }
    };
    let program = match std::env::current_exe() {
        Ok(path) => path,
        Err(err) => {
            eprintln!("portcullis: cannot find this program to start workers: {err}");
            return 1;
        }
    };
    let mut worker_args = child::worker_arguments(std::env::args_os());
    // Listeners a reload adds are bound by each process itself: on one port.
    if !worker_args.iter().any(|a| a == "--reuse-port") {
        worker_args.push("--reuse-port".into());
    }
    let launcher = Launcher {
        program,
        args: worker_args,
        env: vec![(tickets::ENV, tickets.file().as_os_str().to_owned())],
        sockets: group.per_process,
    };
    let grace = settings.shutdown_grace;
    let describe: Vec<&str> = settings.listeners.iter().map(describe_listener).collect();
    let (service, backend) = (settings.service_name.clone(), settings.driver);
    drop(settings); // the workers build their own; keep no certificates here

    let mut workers: Vec<Worker> = (0..count)
        .map(|index| Worker {
            index,
            process: None,
            started: Instant::now(),
            restart_at: Some(Instant::now()),
            backoff: backoff::Backoff::default(),
        })
        .collect();
    for worker in &mut workers {
        launcher.start(worker);
    }
    {
        let mut out = std::io::stdout().lock();
        for (addr, transports) in group.addresses.iter().zip(&describe) {
            let _ = writeln!(
                out,
                "portcullis: listening on {addr} ({transports}; service {service}; backend {backend}; {count} processes)"
            );
        }
        let pids: Vec<String> = workers
            .iter()
            .filter_map(|w| w.process.as_ref().map(|p| p.id().to_string()))
            .collect();
        let _ = writeln!(
            out,
            "portcullis: {count} processes on {} (pids {}); supervisor pid {}",
            group
                .addresses
                .first()
                .map_or_else(|| "no address".to_string(), |a| a.to_string()),
            pids.join(" "),
            std::process::id()
        );
        let _ = out.flush();
    }

    let signals = match signal_thread() {
        Ok(signals) => signals,
        Err(err) => {
            log::error!("cannot start the signal thread: {err}");
            stop_all(&mut workers, grace);
            return 1;
        }
    };
    let mut restarts = 0u64;
    let cause = loop {
        match signals.recv_timeout(Duration::from_millis(100)) {
            Ok("SIGHUP") => {
                let n = signal_all(&workers, libc::SIGHUP);
                log::info!("SIGHUP: forwarded to {n} worker processes, which reload");
            }
            Ok(signal) => break signal.to_string(),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break "the signal thread ended".into(),
        }
        let now = Instant::now();
        for worker in &mut workers {
            if let Some(process) = &mut worker.process {
                if let Ok(Some(status)) = process.try_wait() {
                    let pid = process.id();
                    worker.process = None;
                    restarts += 1;
                    let delay = worker.backoff.after_crash(now - worker.started);
                    worker.restart_at = Some(now + delay);
                    log::error!(
                        "worker process {} (pid {pid}) ended: {status}; restarting it in {delay:?} \
                         (restart {restarts} of this supervisor)",
                        worker.index
                    );
                }
            }
            if worker.restart_at.is_some_and(|at| at <= now) {
                launcher.start(worker);
            }
        }
    };
    log::info!("{cause} received: draining {count} worker processes");
    stop_all(&mut workers, grace);
    log::info!("supervisor: {count} worker processes stopped; restarts={restarts}");
    drop(tickets);
    0
}

/// What starting (and restarting) a worker process takes.
struct Launcher {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    sockets: Vec<Vec<std::sync::Arc<std::net::TcpListener>>>,
}

impl Launcher {
    fn start(&self, worker: &mut Worker) {
        worker.started = Instant::now();
        match child::spawn(
            &self.program,
            &self.args,
            &self.sockets[worker.index],
            &self.env,
        ) {
            Ok(process) => {
                log::info!(
                    "worker process {} started (pid {})",
                    worker.index,
                    process.id()
                );
                worker.process = Some(process);
                worker.restart_at = None;
            }
            Err(err) => {
                let delay = worker.backoff.after_crash(Duration::ZERO);
                log::error!(
                    "cannot start worker process {}: {err}; retrying in {delay:?}",
                    worker.index
                );
                worker.restart_at = Some(Instant::now() + delay);
            }
        }
    }
}

/// Sends `signal` to every running worker process; returns how many.
fn signal_all(workers: &[Worker], signal: libc::c_int) -> usize {
    let mut sent = 0;
    for process in workers.iter().filter_map(|w| w.process.as_ref()) {
        // SAFETY: kill takes plain integers; the pid is a child we started
        // and have not reaped, so it cannot name another process.
        if unsafe { libc::kill(process.id() as libc::pid_t, signal) } == 0 {
            sent += 1;
        }
    }
    sent
}

/// SIGTERM to every process, then waits for all of them: each drains for
/// up to `grace`; any still running after a margin more is killed.
fn stop_all(workers: &mut [Worker], grace: Duration) {
    signal_all(workers, libc::SIGTERM);
    let deadline = Instant::now() + grace + STOP_MARGIN;
    loop {
        let mut running = 0;
        for worker in workers.iter_mut() {
            if let Some(process) = &mut worker.process {
                match process.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            log::warn!("worker process {} ended: {status}", worker.index);
                        }
                        worker.process = None;
                    }
                    _ => running += 1,
                }
            }
        }
        if running == 0 {
            return;
        }
        if Instant::now() >= deadline {
            for worker in workers.iter_mut() {
                if let Some(mut process) = worker.process.take() {
                    log::error!(
                        "worker process {} (pid {}) did not drain in time: killed",
                        worker.index,
                        process.id()
                    );
                    let _ = process.kill();
                    let _ = process.wait();
                }
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A thread that waits for SIGINT, SIGTERM and SIGHUP (blocked in every
/// thread) and passes each on.
fn signal_thread() -> std::io::Result<mpsc::Receiver<&'static str>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("portcullis-signals".into())
        .spawn(move || loop {
            match server::wait_for_shutdown_signal() {
                Ok(signal) => {
                    if tx.send(signal).is_err() || signal != "SIGHUP" {
                        return;
                    }
                }
                Err(err) => {
                    log::error!("waiting for signals failed: {err}");
                    return;
                }
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_parse_as_auto_or_a_positive_count() {
        assert_eq!("auto".parse(), Ok(Processes::Auto));
        assert_eq!("4".parse(), Ok(Processes::Count(4)));
        assert!("0".parse::<Processes>().is_err());
        assert!("many".parse::<Processes>().is_err());
        assert!(Processes::Auto.count() >= 1);
    }
}
