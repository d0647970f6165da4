//! Starting and stopping a server: listeners, worker threads, signals.
//!
//! Workers share nothing: each gets its own selector and its own listening
//! socket on the same port (`SO_REUSEPORT`), so the kernel spreads
//! connections between them and no lock sits on the accept path. The one idea
//! for shutdown: **signals are received by one thread, synchronously**. The
//! main thread blocks SIGINT and SIGTERM before any worker exists (so every
//! thread inherits the block); a helper thread then waits for them with
//! `sigwait` while the main thread also watches for a worker that ended on
//! its own. No async-signal-safety puzzles, and the workers are told through
//! their wakers, which is exactly what wakers are for.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::counters::WorkerCounters;
use crate::engine::edge::EdgeSettings;
use crate::engine::{
    CompletionOptions, ConnectionLimits, Driver, ListenerSetup, Shared, Worker, WorkerSetup,
};
use crate::net::accept::AcceptedSocketOptions;
use crate::net::listener::{self, ListenerOptions};
use crate::service::http2::Http2Counters;
use crate::service::ServiceFactory;
use crate::tls::TlsGate;
use crate::udp::{DatagramSetup, UdpSettings};

/// One listening address and what it admits.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    pub options: ListenerOptions,
    pub allow_plaintext: bool,
    /// Serve TLS on this port (needs a gate).
    pub tls: bool,
    /// Access rules, limits, rates and the PROXY protocol.
    pub edge: EdgeSettings,
    /// A socket handed over already listening (systemd socket activation,
    /// or the supervisor; see `net::socket_activation`): used instead of
    /// binding `options.addr`.
    pub inherited: Option<Arc<std::net::TcpListener>>,
}

/// Everything needed to start a server.
pub struct ServerSettings {
    pub listeners: Vec<ListenerSettings>,
    /// The I/O driver: a readiness backend, the completion driver, or a
    /// thread per connection.
    pub driver: Driver,
    /// Ring and buffer sizes, for the completion driver.
    pub completion: CompletionOptions,
    pub workers: usize,
    pub max_connections: usize,
    pub service_name: String,
    pub service: ServiceFactory,
    pub gate: Option<Arc<TlsGate>>,
    pub limits: ConnectionLimits,
    pub socket_options: AcceptedSocketOptions,
    pub shutdown_grace: Duration,
    /// The HTTP/2 counters the `http` service's instances share, for the
    /// shutdown summary (and, later, metrics). `None` for other services.
    pub http2_counters: Option<Arc<Http2Counters>>,
    /// UDP sockets and their datagram service, if any (see `udp`).
    pub udp: Option<UdpSettings>,
    /// The admin port (metrics, stats, run-time limits), if any.
    pub admin: Option<crate::admin::AdminSettings>,
}

impl ServerSettings {
    /// A plaintext-only server on `addr` with the best backend, one worker
    /// and default limits: the smallest way to run a service of your own.
    pub fn plaintext(
        addr: SocketAddr,
        service_name: &str,
        service: ServiceFactory,
    ) -> ServerSettings {
        ServerSettings {
            listeners: vec![ListenerSettings {
                options: ListenerOptions::new(addr),
                allow_plaintext: true,
                tls: false,
                edge: EdgeSettings::default(),
                inherited: None,
            }],
            driver: Driver::best(),
            completion: CompletionOptions::default(),
            workers: 1,
            max_connections: 10_000,
            service_name: service_name.to_string(),
            service,
            gate: None,
            limits: ConnectionLimits::default(),
            socket_options: AcceptedSocketOptions::default(),
            shutdown_grace: Duration::from_secs(5),
            http2_counters: None,
            udp: None,
            admin: None,
        }
    }
}

impl ServerSettings {
    /// A UDP-only server on `addr` with the best backend, one worker and
    /// default batches: the smallest way to run a datagram service of your
    /// own. There is no TCP listener, so no TCP service is ever called.
    pub fn datagrams(
        addr: SocketAddr,
        service_name: &str,
        service: crate::udp::DatagramServiceFactory,
    ) -> ServerSettings {
        let tcp: ServiceFactory = std::sync::Arc::new(|| {
            Box::new(crate::service::echo::Echo) as Box<dyn crate::service::Service>
        });
        let mut settings = ServerSettings::plaintext(addr, service_name, tcp);
        settings.listeners.clear();
        settings.udp = Some(UdpSettings {
            sockets: vec![crate::udp::socket::UdpSocketOptions::new(addr)],
            description: format!("service {service_name}"),
            service,
            options: crate::udp::EndpointOptions::default(),
            counters: Arc::new(crate::udp::UdpCounters::new()),
            first_worker_only: false,
        });
        settings
    }
}

/// A running server: its real addresses, and how to stop it.
pub struct ServerHandle {
    addresses: Vec<SocketAddr>,
    udp_addresses: Vec<SocketAddr>,
    admin_address: Option<SocketAddr>,
    shared: Arc<Shared>,
    counters: Vec<Arc<WorkerCounters>>,
    wakers: Vec<backends::Waker>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl ServerHandle {
    /// The bound addresses, with real ports where port 0 was asked for, in
    /// the order the listeners were given.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The bound UDP addresses, with real ports, in the order given.
    pub fn udp_addresses(&self) -> &[SocketAddr] {
        &self.udp_addresses
    }

    /// The admin port's bound address, if it is on.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin_address
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Every worker's counters, in worker order (for metrics).
    pub fn counters(&self) -> &[Arc<WorkerCounters>] {
        &self.counters
    }

    /// Asks every worker to stop accepting, flush and exit.
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        for waker in &self.wakers {
            if let Err(err) = waker.wake() {
                log::warn!("cannot wake a worker for shutdown: {err}");
            }
        }
    }

    /// Whether some worker has already ended (it failed, or it was stopped).
    pub fn any_worker_ended(&self) -> bool {
        self.threads.iter().any(|t| t.is_finished())
    }

    /// Waits for every worker; returns the first error any of them hit.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")));
            if let Err(err) = outcome {
                log::error!("worker failed: {err}");
                if result.is_ok() {
                    result = Err(err);
                }
            }
        }
        result
    }
}

/// Starts the server under its driver. One `match`: a new driver is one
/// more arm.
pub fn start(settings: ServerSettings) -> io::Result<ServerHandle> {
    match settings.driver {
        Driver::Readiness(_) | Driver::Completion => start_event_loops(settings),
        Driver::Threads => start_threads(settings),
    }
}

/// Binds every listener once and starts the acceptor of the
/// thread-per-connection driver (`engine::threads`).
#[cfg(target_os = "linux")]
fn start_threads(settings: ServerSettings) -> io::Result<ServerHandle> {
    if settings.udp.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the threads driver serves TCP only; serve UDP with a readiness backend \
             (see `portcullis backends`)",
        ));
    }
    if settings.listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no listener configured: give a TCP address",
        ));
    }
    if settings.admin.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the admin port reports the event-loop drivers' per-worker counters; \
             the threads driver keeps none: serve it without --admin",
        ));
    }
    if settings.workers > 1 {
        log::info!("threads: --workers does not apply (every connection has its own thread)");
    }
    let sockets = bind_all(&settings.listeners, 1)?.remove(0);
    let addresses = sockets
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<Vec<_>>>()?;
    let edges: Vec<Arc<crate::engine::EdgePolicy>> = settings
        .listeners
        .iter()
        .zip(&addresses)
        .map(|(spec, local)| Arc::new(spec.edge.build(*local, settings.max_connections)))
        .collect();
    let policies = addresses
        .iter()
        .zip(&settings.listeners)
        .zip(&edges)
        .enumerate()
        .map(
            |(index, ((&local, spec), edge))| crate::engine::ListenerPolicy {
                local,
                counters: index,
                edge: edge.clone(),
                allow_plaintext: spec.allow_plaintext || !spec.tls,
                tls: if spec.tls {
                    settings.gate.clone()
                } else {
                    None
                },
            },
        )
        .collect();
    let budget = crate::engine::threads::thread_budget();
    let max_connections = settings.max_connections.min(budget);
    if max_connections < settings.max_connections {
        log::warn!(
            "threads: at most {budget} connections (one thread each, about four memory maps \
             per thread against vm.max_map_count), not {}",
            settings.max_connections
        );
    }
    let shared = Arc::new(Shared::with_listeners(
        max_connections,
        edges.iter().map(|edge| edge.limits.clone()).collect(),
    ));
    let setup = crate::engine::threads::Setup {
        service: settings.service.clone(),
        policies,
        limits: settings.limits.clone(),
        socket_options: settings.socket_options,
        shutdown_grace: settings.shutdown_grace,
        shared: shared.clone(),
    };
    let (waker, acceptor) = crate::engine::threads::start(sockets, setup)?;
    Ok(ServerHandle {
        addresses,
        udp_addresses: Vec::new(),
        admin_address: None,
        shared,
        counters: Vec::new(),
        wakers: vec![waker],
        threads: vec![acceptor],
    })
}

#[cfg(not(target_os = "linux"))]
fn start_threads(_: ServerSettings) -> io::Result<ServerHandle> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        Driver::Threads.availability().unwrap_err(),
    ))
}

/// Binds every listener for every worker and starts the event-loop workers:
/// readiness (over a selector) or completion (over an io_uring).
fn start_event_loops(settings: ServerSettings) -> io::Result<ServerHandle> {
    if settings.listeners.is_empty() && settings.udp.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no listener configured: give a TCP or a UDP address",
        ));
    }
    let workers = settings.workers.max(1);
    let per_worker = bind_all(&settings.listeners, workers)?;
    let addresses = per_worker[0]
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<Vec<_>>>()?;
    let mut udp_per_worker = match &settings.udp {
        Some(udp) => {
            let serving = if udp.first_worker_only { 1 } else { workers };
            crate::udp::socket::bind_for_workers(&udp.sockets, serving)?
        }
        None => Vec::new(),
    };
    let udp_addresses = match udp_per_worker.first() {
        Some(sockets) => sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<io::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let mut udp_per_worker = udp_per_worker.drain(..);

    let edges: Vec<Arc<crate::engine::EdgePolicy>> = settings
        .listeners
        .iter()
        .zip(&addresses)
        .map(|(spec, local)| Arc::new(spec.edge.build(*local, settings.max_connections)))
        .collect();
    let shared = Arc::new(Shared::with_listeners(
        settings.max_connections,
        edges.iter().map(|edge| edge.limits.clone()).collect(),
    ));
    let counters: Vec<Arc<WorkerCounters>> = (0..workers)
        .map(|id| Arc::new(WorkerCounters::new(id, settings.listeners.len())))
        .collect();
    // Bound before any worker runs, so that a taken admin port fails the
    // start-up instead of leaving a server nobody can watch.
    let admin_address = match &settings.admin {
        Some(admin) => {
            let source = crate::admin::snapshot::Source {
                shared: shared.clone(),
                workers: counters.clone(),
                listeners: addresses.clone(),
                backend: settings.driver.name(),
                started: std::time::Instant::now(),
            };
            let handle =
                crate::admin::start(admin.address, admin.access.clone(), source).map_err(|e| {
                    io::Error::new(e.kind(), format!("admin port {}: {e}", admin.address))
                })?;
            Some(handle.local_addr())
        }
        None => None,
    };
    let mut ios = Vec::with_capacity(workers);
    for _ in 0..workers {
        ios.push(WorkerIo::open(settings.driver, settings.udp.is_some())?);
    }
    let wakers: Vec<backends::Waker> = ios.iter().map(WorkerIo::waker).collect();
    if workers > 1 {
        let _ = shared.hub.set(crate::engine::hub::Hub::new(wakers.clone()));
    }
    let _ = shared
        .control
        .set(crate::engine::control::Controls::new(wakers.clone()));

    let mut threads = Vec::with_capacity(workers);
    for (id, (io, sockets)) in ios.into_iter().zip(per_worker).enumerate() {
        let listeners = sockets
            .into_iter()
            .zip(settings.listeners.iter().zip(&edges))
            .map(|(listener, (spec, edge))| ListenerSetup {
                listener,
                edge: edge.clone(),
                allow_plaintext: spec.allow_plaintext || !spec.tls,
                tls: if spec.tls {
                    settings.gate.clone()
                } else {
                    None
                },
            })
            .collect();
        let factory = settings.service.clone();
        let limits = settings.limits.clone();
        let socket_options = settings.socket_options;
        let shutdown_grace = settings.shutdown_grace;
        let completion = settings.completion;
        let shared = shared.clone();
        let worker_counters = counters[id].clone();
        let datagrams = match (&settings.udp, udp_per_worker.next()) {
            (Some(udp), Some(sockets)) => Some(DatagramSetup {
                sockets,
                service: udp.service.clone(),
                options: udp.options,
                counters: udp.counters.clone(),
            }),
            _ => None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("portcullis-worker-{id}"))
            .spawn(move || {
                let setup = WorkerSetup {
                    id,
                    listeners,
                    service: factory(),
                    limits,
                    socket_options,
                    shutdown_grace,
                    shared,
                    datagrams,
                    counters: worker_counters,
                };
                io.run(setup, completion)
            })?;
        threads.push(thread);
    }
    Ok(ServerHandle {
        addresses,
        udp_addresses,
        admin_address,
        shared,
        counters,
        wakers,
        threads,
    })
}

/// What a worker thread does its I/O with.
enum WorkerIo {
    Readiness(Box<dyn backends::Selector>),
    /// The completion driver's waker and its eventfd (the ring itself is
    /// made on the worker's thread: it is single-issuer).
    #[cfg(target_os = "linux")]
    Completion(backends::Waker, std::os::fd::RawFd),
}

impl WorkerIo {
    fn open(driver: Driver, udp: bool) -> io::Result<WorkerIo> {
        match driver {
            Driver::Readiness(kind) => Ok(WorkerIo::Readiness(kind.open()?)),
            #[cfg(target_os = "linux")]
            Driver::Completion => {
                if udp {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "--backend uring-completion serves TCP only; UDP sockets (--udp, udp- services) need a readiness backend such as epoll",
                    ));
                }
                crate::engine::completion::probe().map_err(|why| {
                    io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("--backend uring-completion: {why}"),
                    )
                })?;
                let (waker, fd) = backends::Waker::eventfd()?;
                Ok(WorkerIo::Completion(waker, fd))
            }
            #[cfg(not(target_os = "linux"))]
            Driver::Completion => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "--backend uring-completion: io_uring exists on Linux only",
            )),
            Driver::Threads => unreachable!("the threads driver runs no event loop"),
        }
    }

    fn waker(&self) -> backends::Waker {
        match self {
            WorkerIo::Readiness(selector) => selector.waker(),
            #[cfg(target_os = "linux")]
            WorkerIo::Completion(waker, _) => waker.clone(),
        }
    }

    fn run(self, setup: WorkerSetup, completion: CompletionOptions) -> io::Result<()> {
        match self {
            WorkerIo::Readiness(selector) => Worker::new(selector, setup)?.run(),
            #[cfg(target_os = "linux")]
            WorkerIo::Completion(waker, fd) => {
                crate::engine::completion::Worker::new(setup, completion, waker, fd)?.run()
            }
        }
    }
}

/// Opens each listener once per worker. With several workers, the first
/// socket learns the real port (when 0 was asked for) and the others join it
/// through `SO_REUSEPORT`.
pub(crate) fn bind_all(
    listeners: &[ListenerSettings],
    workers: usize,
) -> io::Result<Vec<Vec<std::net::TcpListener>>> {
    let mut per_worker: Vec<Vec<std::net::TcpListener>> =
        (0..workers).map(|_| Vec::new()).collect();
    for spec in listeners {
        if let Some(socket) = &spec.inherited {
            // Every worker watches the one socket it was given, each
            // through a descriptor of its own.
            for sockets in per_worker.iter_mut() {
                sockets.push(socket.try_clone()?);
            }
            continue;
        }
        let mut options = spec.options.clone();
        options.reuse_port |= workers > 1;
        let first = listener::bind(&options)?;
        options.addr = first.local_addr()?;
        per_worker[0].push(first);
        for sockets in per_worker.iter_mut().skip(1) {
            sockets.push(listener::bind(&options)?);
        }
    }
    Ok(per_worker)
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every
/// thread it creates afterwards. Call before `start`.
pub fn block_shutdown_signals() -> io::Result<()> {
    let set = shutdown_signal_set();
    // SAFETY: `set` is an initialised sigset_t; a null old-set is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Why [`wait_for_shutdown`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum StopCause {
    Signal(&'static str),
    /// A worker ended on its own: it failed (see its log line), and a server
    /// missing a worker must not go on looking healthy.
    WorkerEnded,
}

/// Waits for SIGINT or SIGTERM, or for a worker to end by itself; SIGHUP
/// is logged and otherwise ignored (see [`wait_for_shutdown_or_reload`]).
/// Call [`block_shutdown_signals`] before [`start`].
pub fn wait_for_shutdown(handle: &ServerHandle) -> io::Result<StopCause> {
    wait_for_shutdown_or_reload(handle, || {
        log::info!("SIGHUP received: this server has nothing to reload")
    })
}

/// Waits for SIGINT or SIGTERM, or for a worker to end by itself; calls
/// `on_reload` on this thread for each SIGHUP. Call
/// [`block_shutdown_signals`] before [`start`]. A helper thread does the
/// `sigwait`, so this thread can also keep an eye on the workers.
pub fn wait_for_shutdown_or_reload(
    handle: &ServerHandle,
    mut on_reload: impl FnMut(),
) -> io::Result<StopCause> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("portcullis-signals".into())
        .spawn(move || loop {
            let signal = wait_for_shutdown_signal();
            let last = !matches!(signal, Ok("SIGHUP"));
            if tx.send(signal).is_err() || last {
                return;
            }
        })?;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok("SIGHUP")) => on_reload(),
            Ok(signal) => return signal.map(StopCause::Signal),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if handle.any_worker_ended() => {
                return Ok(StopCause::WorkerEnded)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("the signal thread ended"))
            }
        }
    }
}

/// Waits until SIGINT, SIGTERM or SIGHUP arrives; returns the signal's name.
pub fn wait_for_shutdown_signal() -> io::Result<&'static str> {
    let set = shutdown_signal_set();
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` is initialised and `signal` is a valid out-pointer.
    let rc = unsafe { libc::sigwait(&set, &mut signal) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "SIGTERM",
    })
}

fn shutdown_signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set before sigaddset reads
    // it; both only write inside `set`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}
