//! `portcullis serve`: from flags and config file to a running server.
//!
//! Precedence is the usual one — command-line flag, then config file, then
//! built-in default — and every decision is made here, before any socket is
//! opened, so a bad combination fails at start-up with a message naming the
//! flag or key. The one idea: **the defaults must be useful on their own**:
//! with no flags and no file the server serves HTTP on 127.0.0.1:8443 over
//! plaintext, TLS and mTLS with embedded development certificates.

use std::io::Write;
use std::sync::Arc;

use crate::cli::ServeArgs;
use crate::config::{Config, ConfigError, DEFAULT_LISTEN, SERVICES};
use crate::engine::{CompletionOptions, Driver};
use crate::net::listener::ListenerOptions;
use crate::reload::Reloader;
use crate::server::{self, ListenerSettings, ServerSettings, StopCause};
use crate::service::http::live_rules::LiveRules;
use crate::service::http::{Http, HttpLimits};
use crate::service::http2::{Http2Counters, Http2Options};
use crate::service::{chat::Chat, echo::Echo, multicast::Multicast, Service, ServiceFactory};
use crate::tls::TlsGate;

/// Descriptors kept free for listeners, the selector, logs and the reserve.
const DESCRIPTOR_RESERVE: usize = 64;

/// Builds the server's settings from flags and the optional config file.
pub fn settings(args: &ServeArgs) -> Result<ServerSettings, ConfigError> {
    prepare(args).map(|prepared| prepared.settings)
}

/// The settings, and the cell through which a reload replaces the rules
/// the `http` service checks `Host` against.
pub struct Prepared {
    pub settings: ServerSettings,
    pub rules: Arc<LiveRules>,
}

/// Builds the settings (see [`settings`]); a reload calls this again with
/// the same flags, so flags keep overriding the file.
pub fn prepare(args: &ServeArgs) -> Result<Prepared, ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::parse("", "built-in defaults")?,
    };
    if config.tls.ticket_key_file.is_none() {
        // A worker process of `--processes`: the supervisor's shared secret.
        if let Some(path) = std::env::var_os(crate::supervisor::tickets::ENV) {
            config.tls.ticket_key_file = Some(path.into());
        }
    }
    let service_name = args
        .service
        .clone()
        .or_else(|| config.service.clone())
        .unwrap_or_else(|| "http".to_string());
    if !SERVICES.contains(&service_name.as_str()) {
        return Err(ConfigError(format!(
            "--service: unknown service `{service_name}`; expected one of {}",
            SERVICES.join(", ")
        )));
    }
    let driver = match args.backend.as_deref().or(config.backend.as_deref()) {
        Some(name) => Driver::parse(name).map_err(|e| ConfigError(format!("--backend: {e}")))?,
        None => Driver::best(),
    };
    let workers = args.workers.or(config.workers).unwrap_or(1);
    if workers == 0 {
        return Err(ConfigError("--workers: must be at least 1".into()));
    }
    let max_connections = args
        .max_conns
        .or(config.max_connections)
        .unwrap_or_else(default_max_connections);
    if max_connections == 0 {
        return Err(ConfigError("--max-conns: must be at least 1".into()));
    }

    let origin = args
        .config
        .as_ref()
        .map_or_else(|| "config".to_string(), |p| p.display().to_string());
    // `udp-echo` is echo over UDP only (TCP when asked for); see cli::udp.
    let (tcp_service, udp_only) = super::udp::tcp_side(&service_name);
    let udp = super::udp::settings(args, &config, &service_name, &origin)?;
    let tcp_wanted = !(udp_only && args.listen.is_empty() && config.listeners.is_empty());
    let gate = if args.no_tls || !tcp_wanted {
        None
    } else if !config.domains.is_empty() {
        Some(Arc::new(
            TlsGate::from_config(&config.domains, &config.tls, &origin).map_err(ConfigError)?,
        ))
    } else if args.config.is_none() {
        let tickets = crate::tls::setup::options_from_config(&[], &config.tls).tickets;
        Some(Arc::new(
            TlsGate::development_with(tickets).map_err(ConfigError)?,
        ))
    } else {
        None
    };

    let speaks_first = tcp_service == "chat" || tcp_service == "multicast";
    let mut limits = config.connection_limits();
    if speaks_first && limits.plaintext_after.is_none() {
        limits.plaintext_after = Some(crate::config::DEFAULT_PLAINTEXT_AFTER);
    }
    let listeners = if tcp_wanted {
        listener_settings(
            args,
            &config,
            gate.is_some(),
            workers,
            speaks_first,
            &origin,
        )?
    } else {
        Vec::new()
    };

    let rules = Arc::new(LiveRules::new(Arc::new(
        gate.as_ref().map(|g| g.domain_rules()).unwrap_or_default(),
    )));
    let http_limits = HttpLimits {
        max_header_bytes: config
            .limits
            .max_header_bytes
            .unwrap_or(HttpLimits::default().max_header_bytes),
        ..HttpLimits::default()
    };
    let http2 = Http2Options {
        h2c: config.http2.h2c.unwrap_or(true),
        limits: config.http2.limits(),
        counters: Arc::new(Http2Counters::new()),
    };
    let http2_counters = (tcp_service == "http").then(|| http2.counters.clone());
    let multicast_size = args.multicast_size.or(config.multicast.size).unwrap_or(32);
    let service = service_factory(
        tcp_service,
        rules.clone(),
        http_limits,
        http2,
        multicast_size,
    );
    let admin = super::admin_flags::settings(args, &config, &origin, &listeners)?;

    let mut completion = CompletionOptions::default();
    if let Some(buffers) = args.uring_buffers {
        if !buffers.is_power_of_two() || buffers > 32768 {
            return Err(ConfigError(format!(
                "--uring-buffers: {buffers} is not a power of two up to 32768"
            )));
        }
        completion.buffers = buffers;
    }
    if let Some(size) = args.uring_buffer_size {
        if !(64..=1 << 24).contains(&size) {
            return Err(ConfigError(format!(
                "--uring-buffer-size: {size} is not between 64 and 16777216 bytes"
            )));
        }
        completion.buffer_size = size;
    }
    if let Some(entries) = args.uring_entries {
        if !(8..=32768).contains(&entries) {
            return Err(ConfigError(format!(
                "--uring-entries: {entries} is not between 8 and 32768"
            )));
        }
        completion.entries = entries;
    }

    let settings = ServerSettings {
        listeners,
        driver,
        completion,
        workers,
        max_connections,
        service_name,
        service,
        gate,
        limits,
        socket_options: config.socket_options(),
        shutdown_grace: config.shutdown_grace(),
        http2_counters,
        udp,
        admin,
    };
    Ok(Prepared { settings, rules })
}

fn listener_settings(
    args: &ServeArgs,
    config: &Config,
    tls_available: bool,
    workers: usize,
    speaks_first: bool,
    origin: &str,
) -> Result<Vec<ListenerSettings>, ConfigError> {
    if args.tls_only && !tls_available {
        return Err(ConfigError(
            "--tls-only: no TLS domains are configured".into(),
        ));
    }
    let from_flags = |addr| {
        let mut options = ListenerOptions::new(addr);
        options.reuse_port = workers > 1 || args.reuse_port;
        options.defer_accept_secs = (!speaks_first).then_some(DEFER_ACCEPT_SECS);
        ListenerSettings {
            options,
            allow_plaintext: !args.tls_only,
            tls: tls_available,
            edge: Default::default(),
            inherited: None,
        }
    };
    let inherited = crate::net::socket_activation::inherited().map_err(ConfigError)?;
    if !args.listen.is_empty() {
        let listeners = args.listen.iter().copied().map(from_flags).collect();
        return super::activation::attach(listeners, inherited);
    }
    if config.listeners.is_empty() {
        if !inherited.is_empty() {
            // Nothing names addresses: serve every socket handed over.
            let listeners = inherited.iter().map(|s| from_flags(s.local)).collect();
            return super::activation::attach(listeners, inherited);
        }
        let addr = DEFAULT_LISTEN.parse().expect("the default address parses");
        return Ok(vec![from_flags(addr)]);
    }
    let listeners = config
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut options = ListenerOptions::new(l.address);
            options.backlog = l.backlog.unwrap_or(options.backlog);
            options.reuse_port = l.reuse_port.unwrap_or(workers > 1) || args.reuse_port;
            options.ipv6_only = l.ipv6_only;
            options.defer_accept_secs = l
                .defer_accept
                .unwrap_or(!speaks_first)
                .then_some(DEFER_ACCEPT_SECS);
            let tls = tls_available && l.tls.unwrap_or(true);
            // Checked when the file was loaded; the error is kept anyway.
            let edge = l
                .edge_settings(i)
                .map_err(|(key, problem)| ConfigError(format!("{origin}: {key}: {problem}")))?;
            Ok(ListenerSettings {
                options,
                allow_plaintext: (l.plaintext && !args.tls_only) || !tls,
                tls,
                edge,
                inherited: None,
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    super::activation::attach(listeners, inherited)
}

/// How long the kernel holds a silent connection before waking `accept`.
const DEFER_ACCEPT_SECS: u32 = 5;

fn service_factory(
    name: &str,
    rules: Arc<LiveRules>,
    http: HttpLimits,
    http2: Http2Options,
    multicast_size: usize,
) -> ServiceFactory {
    match name {
        "echo" => Arc::new(|| Box::new(Echo) as Box<dyn Service>),
        "chat" => Arc::new(|| Box::new(Chat) as Box<dyn Service>),
        "multicast" => {
            Arc::new(move || Box::new(Multicast::new(multicast_size)) as Box<dyn Service>)
        }
        // Every worker's instance shares `http2.counters`.
        _ => Arc::new(move || {
            Box::new(Http::with_live_rules(
                rules.clone(),
                http.clone(),
                http2.clone(),
            )) as Box<dyn Service>
        }),
    }
}

/// The descriptor limit minus a reserve, so that `--max-conns` refuses
/// cleanly before `accept` ever sees EMFILE.
fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer for getrlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return 100_000;
    }
    (limit.rlim_cur as usize)
        .saturating_sub(DESCRIPTOR_RESERVE)
        .max(1)
}

/// A server that holds connections wants every descriptor it may have, as
/// nginx's `worker_rlimit_nofile` gives it: the soft limit is raised to the
/// hard one (no privilege needed), so that a shell's usual 1,024 does not
/// cap it. The bench client does the same, with the same function.
fn raise_open_file_limit() {
    match crate::bench::descriptors::raise_soft_limit() {
        Ok(budget) if budget.found < budget.soft => log::info!(
            "open-file limit raised from {} to {} (the hard limit)",
            budget.found,
            budget.soft
        ),
        Ok(_) => {}
        Err(err) => log::warn!("cannot raise the open-file limit: {err}"),
    }
}

/// What a listener admits, as the `listening on` line says it.
pub fn describe_listener(listener: &ListenerSettings) -> &'static str {
    match (listener.allow_plaintext, listener.tls) {
        (true, true) => "plaintext+tls",
        (false, true) => "tls only",
        _ => "plaintext only",
    }
}

/// Runs the server until SIGINT or SIGTERM, reloading on SIGHUP; returns
/// the process exit code.
pub fn run(args: &ServeArgs) -> i32 {
    raise_open_file_limit();
    if let Some(processes) = args.processes {
        return crate::supervisor::run(args, processes);
    }
    let Prepared { settings, rules } = match prepare(args) {
        Ok(prepared) => prepared,
        Err(err) => {
            eprintln!("portcullis: {err}");
            return 2;
        }
    };
    if let Err(err) = server::block_shutdown_signals() {
        eprintln!("portcullis: cannot block shutdown signals: {err}");
        return 1;
    }
    let describe: Vec<&str> = settings.listeners.iter().map(describe_listener).collect();
    let (service, backend, workers) = (
        settings.service_name.clone(),
        settings.driver,
        settings.workers,
    );
    let http2_counters = settings.http2_counters.clone();
    let tls_counters = settings.gate.as_ref().map(|g| g.counters().clone());
    let udp = settings
        .udp
        .as_ref()
        .map(|u| (u.description.clone(), u.counters.clone()));
    let reloader = Reloader::prepare(args, &settings, rules);
    let handle = match server::start(settings) {
        Ok(handle) => handle,
        Err(err) => {
            eprintln!("portcullis: {err}");
            return 1;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        for (addr, transports) in handle.addresses().iter().zip(&describe) {
            let _ = writeln!(
                out,
                "portcullis: listening on {addr} ({transports}; service {service}; backend {backend}; {workers} worker{}; pid {})",
                if workers == 1 { "" } else { "s" },
                std::process::id()
            );
        }
        if let Some(admin) = handle.admin_address() {
            let _ = writeln!(
                out,
                "portcullis: admin listening on {admin} (/metrics, /stats, /limits)"
            );
        }
        if let Some((description, _)) = &udp {
            for addr in handle.udp_addresses() {
                let _ = writeln!(
                    out,
                    "portcullis: udp listening on {addr} ({description}; backend {backend})"
                );
            }
        }
        let _ = out.flush();
    }
    let mut reloader = reloader.attach(&handle);
    match server::wait_for_shutdown_or_reload(&handle, || reloader.reload_and_log()) {
        Ok(StopCause::Signal(signal)) => {
            log::info!("{signal} received: stopping accepting, flushing, exiting")
        }
        Ok(StopCause::WorkerEnded) => {
            log::error!("a worker stopped unexpectedly; stopping the others")
        }
        Err(err) => log::error!("waiting for signals failed: {err}; stopping"),
    }
    handle.request_stop();
    let stats = handle.shared().clone();
    let result = handle.join();
    log::info!("{}", stats.stats.summary());
    for listener in &stats.listeners {
        let refused = listener.refusal_summary();
        if !refused.is_empty() {
            log::info!("listener {} refused: {refused}", listener.local);
        }
    }
    if let Some(counters) = tls_counters {
        log::info!("{}", counters.summary());
    }
    if let Some(counters) = &http2_counters {
        log::info!("{}", counters.summary());
    }
    if let Some((_, counters)) = &udp {
        log::info!("{}", counters.summary());
    }
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("portcullis: {err}");
            1
        }
    }
}
