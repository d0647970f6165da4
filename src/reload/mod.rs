//! Reloading a running server (SIGHUP, and later the admin API): re-read
//! the config file and every certificate, key and CA it names, then swap
//! the new configuration in without dropping a connection.
//!
//! A reload is two halves, and the one idea is the wall between them:
//! **everything that can fail happens before anything changes.** The first
//! half builds the new configuration exactly as start-up does
//! ([`cli::serve::prepare`], so a flag still overrides the file), loading
//! and checking every file, and binds the sockets of listeners the reload
//! adds. Any error there — a file that does not parse, a key that does not
//! match its certificate, an unreadable CA, an address in use — returns
//! with the old configuration untouched, and the error names the file, the
//! key and the problem. Only then does the second half, which cannot fail,
//! post each worker its new state (`engine::control`): new connections get
//! the new gate, policies and limits; live connections keep the policy
//! number, and so the gate and certificates, they were admitted with
//! (`engine::policies`).
//!
//! What a reload cannot change (the service, the backend, the number of
//! workers, UDP sockets) is reported as a warning and kept as it was.
//!
//! [`cli::serve::prepare`]: crate::cli::serve::prepare

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::Driver;

use crate::cli::serve::{describe_listener, prepare};
use crate::cli::ServeArgs;
use crate::engine::control::{ListenerChange, ListenerId, Reconfigure};
use crate::engine::edge::limits::UNLIMITED;
use crate::engine::edge::{EdgePolicy, EdgeSettings, ListenerLimits};
use crate::engine::{ListenerPolicy, Shared};
use crate::server::{self, ListenerSettings, ServerHandle, ServerSettings};
use crate::service::http::live_rules::LiveRules;
use crate::tls::{TlsCounters, TlsGate};

/// How long [`Reloader::reload`] waits for every worker to apply it.
const APPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A listener as the running server has it.
struct Active {
    id: ListenerId,
    /// The address the configuration asked for (port 0 stays 0), which is
    /// how a reload recognises the same listener.
    configured: SocketAddr,
    /// The bound address.
    local: SocketAddr,
    /// Its edge settings, and the counts its policies share (open
    /// connections, per-client table) across workers and across reloads.
    edge: EdgeSettings,
    limits: Arc<ListenerLimits>,
}

/// What start-up fixed and a reload cannot change.
struct Fixed {
    service: String,
    backend: Driver,
    workers: usize,
    udp: bool,
}

/// Re-reads the configuration and installs it in a running server.
pub struct Reloader {
    args: ServeArgs,
    shared: Arc<Shared>,
    listeners: Vec<Active>,
    next_id: ListenerId,
    counters: Option<Arc<TlsCounters>>,
    rules: Arc<LiveRules>,
    fixed: Fixed,
}

/// A [`Reloader`] waiting for its server to start.
pub struct PendingReloader {
    args: ServeArgs,
    configured: Vec<(SocketAddr, EdgeSettings)>,
    counters: Option<Arc<TlsCounters>>,
    rules: Arc<LiveRules>,
    fixed: Fixed,
}

impl PendingReloader {
    /// The reloader of the running server `handle`.
    pub fn attach(self, handle: &ServerHandle) -> Reloader {
        let shared = handle.shared();
        let listeners: Vec<Active> = self
            .configured
            .into_iter()
            .zip(handle.addresses())
            .zip(&shared.listeners)
            .enumerate()
            .map(|(id, (((configured, edge), local), limits))| Active {
                id: id as ListenerId,
                configured,
                local: *local,
                edge,
                limits: limits.clone(),
            })
            .collect();
        Reloader {
            args: self.args,
            shared: handle.shared().clone(),
            next_id: listeners.len() as ListenerId,
            listeners,
            counters: self.counters,
            rules: self.rules,
            fixed: self.fixed,
        }
    }
}

/// What a reload did, for the log line (and the admin API's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Where the configuration came from.
    pub origin: String,
    pub listeners: usize,
    pub opened: Vec<SocketAddr>,
    pub closed: Vec<SocketAddr>,
    /// TLS domains now served (0: no TLS).
    pub domains: usize,
    pub max_connections: usize,
    /// Changes the reload did not apply, and why.
    pub warnings: Vec<String>,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        write!(
            f,
            "reloaded {}: {} listeners, {} domains, max_connections {}",
            self.origin, self.listeners, self.domains, self.max_connections
        )?;
        if !self.opened.is_empty() {
            write!(f, "; opened {}", list(&self.opened))?;
        }
        if !self.closed.is_empty() {
            write!(f, "; closed {}", list(&self.closed))?;
        }
        Ok(())
    }
}

/// Why a reload was refused; the old configuration is still serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadError(pub String);

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReloadError {}

impl Reloader {
    /// What a reloader must know of `settings` before they go to
    /// [`server::start`]; `rules` is the cell the `http` service reads.
    /// Finish with [`PendingReloader::attach`] once the server runs.
    pub fn prepare(
        args: &ServeArgs,
        settings: &ServerSettings,
        rules: Arc<LiveRules>,
    ) -> PendingReloader {
        PendingReloader {
            args: args.clone(),
            configured: settings
                .listeners
                .iter()
                .map(|l| (l.options.addr, l.edge.clone()))
                .collect(),
            counters: settings.gate.as_ref().map(|g| g.counters().clone()),
            rules,
            fixed: Fixed {
                service: settings.service_name.clone(),
                backend: settings.driver,
                workers: settings.workers.max(1),
                udp: settings.udp.is_some(),
            },
        }
    }

    /// Reloads and logs the outcome; what SIGHUP does.
    pub fn reload_and_log(&mut self) {
        match self.reload() {
            Ok(summary) => {
                for warning in &summary.warnings {
                    log::warn!("reload: {warning}");
                }
                log::info!("{summary}");
            }
            Err(err) => log::error!("reload refused, the old configuration keeps serving: {err}"),
        }
    }

    /// Re-reads the configuration and installs it; on error nothing has
    /// changed. See the module documentation.
    pub fn reload(&mut self) -> Result<ReloadSummary, ReloadError> {
        // Half one: build and check everything; nothing changes yet.
        let prepared = prepare(&self.args).map_err(|e| ReloadError(e.0))?;
        let new = prepared.settings;
        let warnings = self.unchangeable(&new);
        let gate = new.gate.as_ref().map(|gate| {
            let gate = TlsGate::clone(gate);
            Arc::new(match &self.counters {
                Some(counters) => gate.with_counters(counters.clone()),
                None => gate,
            })
        });
        let workers = self.fixed.workers;
        let mut kept = vec![false; self.listeners.len()];
        let mut plan = Vec::with_capacity(new.listeners.len());
        for spec in &new.listeners {
            let existing = self
                .listeners
                .iter()
                .enumerate()
                .find(|(i, a)| !kept[*i] && a.configured == spec.options.addr)
                .map(|(i, _)| i);
            match existing {
                Some(i) => {
                    kept[i] = true;
                    plan.push(Planned::Kept(i));
                }
                None => plan.push(Planned::Opened(bind(spec, workers)?)),
            }
        }

        // Half two: it cannot fail; post every worker its new state.
        let mut next: Vec<Active> = Vec::with_capacity(plan.len());
        let mut per_worker: Vec<Vec<ListenerChange>> = (0..workers).map(|_| Vec::new()).collect();
        let mut opened = Vec::new();
        for (spec, planned) in new.listeners.iter().zip(plan) {
            let mut policy = listener_policy(spec, gate.as_ref(), new.max_connections);
            let (active, mut sockets) = match planned {
                Planned::Kept(i) => {
                    let a = &self.listeners[i];
                    policy.local = a.local;
                    let limits =
                        carry_limits(&a.edge, &a.limits, &spec.edge, a.local, new.max_connections);
                    policy.edge = Arc::new(EdgePolicy {
                        limits: limits.clone(),
                        ..spec.edge.build(a.local, new.max_connections)
                    });
                    let active = Active {
                        id: a.id,
                        configured: a.configured,
                        local: a.local,
                        edge: spec.edge.clone(),
                        limits,
                    };
                    (active, Vec::new())
                }
                Planned::Opened((local, sockets)) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    opened.push((local, spec));
                    policy.local = local;
                    policy.edge = Arc::new(spec.edge.build(local, new.max_connections));
                    let active = Active {
                        id,
                        configured: spec.options.addr,
                        local,
                        edge: spec.edge.clone(),
                        limits: policy.edge.limits.clone(),
                    };
                    (active, sockets.into_iter().map(Some).collect())
                }
            };
            // Start-up listeners' ids are their counter blocks; a listener a
            // reload opens has none (it counts as unlisted).
            policy.counters = active.id as usize;
            for (worker, changes) in per_worker.iter_mut().enumerate() {
                changes.push(ListenerChange {
                    id: active.id,
                    socket: sockets.get_mut(worker).and_then(Option::take),
                    policy: policy.clone(),
                });
            }
            next.push(active);
        }
        let closed: Vec<SocketAddr> = self
            .listeners
            .iter()
            .zip(&kept)
            .filter(|(_, kept)| !**kept)
            .map(|(a, _)| a.local)
            .collect();
        self.shared.set_max_connections(new.max_connections);
        if let Some(controls) = self.shared.control.get() {
            let messages = per_worker
                .into_iter()
                .map(|listeners| Reconfigure {
                    listeners,
                    limits: new.limits.clone(),
                    socket_options: new.socket_options,
                    shutdown_grace: new.shutdown_grace,
                })
                .collect();
            let seq = controls.post_all(messages);
            // Done means done: a connection made after `reload` returns
            // gets the new configuration in every worker.
            if !controls.wait_applied(seq, APPLY_TIMEOUT) {
                log::warn!(
                    "reload: some worker did not apply the new configuration within {APPLY_TIMEOUT:?}; it will when its loop next runs"
                );
            }
        }
        self.rules.replace(Arc::new(
            gate.as_ref().map(|g| g.domain_rules()).unwrap_or_default(),
        ));
        self.listeners = next;
        self.announce(&opened, &closed);
        Ok(ReloadSummary {
            origin: self.args.config.as_ref().map_or_else(
                || "the command line (no config file)".to_string(),
                |p| p.display().to_string(),
            ),
            listeners: self.listeners.len(),
            opened: opened.iter().map(|(a, _)| *a).collect(),
            closed,
            domains: gate.as_ref().map_or(0, |g| g.domain_rules().rules.len()),
            max_connections: self.shared.max_connections(),
            warnings,
        })
    }

    /// Warnings for the settings a reload cannot change.
    fn unchangeable(&self, new: &ServerSettings) -> Vec<String> {
        let mut warnings = Vec::new();
        let fixed = &self.fixed;
        if new.service_name != fixed.service {
            warnings.push(format!(
                "service: changing `{}` to `{}` needs a restart; still serving `{}`",
                fixed.service, new.service_name, fixed.service
            ));
        }
        if new.driver != fixed.backend {
            warnings.push(format!(
                "backend: changing {} to {} needs a restart",
                fixed.backend, new.driver
            ));
        }
        if new.workers.max(1) != fixed.workers {
            warnings.push(format!(
                "workers: changing {} to {} needs a restart",
                fixed.workers, new.workers
            ));
        }
        if new.udp.is_some() || fixed.udp {
            warnings.push("udp: UDP sockets are not reloaded; they stay as they were".into());
        }
        warnings
    }

    /// The same `listening on` lines as start-up, for listeners a reload
    /// opened (scripts and tests read the port from them), and one line per
    /// listener closed.
    fn announce(&self, opened: &[(SocketAddr, &ListenerSettings)], closed: &[SocketAddr]) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let workers = self.fixed.workers;
        for (addr, spec) in opened {
            let _ = writeln!(
                out,
                "portcullis: listening on {addr} ({}; service {}; backend {}; {workers} worker{})",
                describe_listener(spec),
                self.fixed.service,
                self.fixed.backend,
                if workers == 1 { "" } else { "s" }
            );
        }
        for addr in closed {
            let _ = writeln!(out, "portcullis: stopped listening on {addr}");
        }
        let _ = out.flush();
    }
}

/// What new connections on listener `spec` get: the same rule as
/// `server::start`'s. The caller sets the bound address and the edge
/// policy (see [`carry_limits`]).
fn listener_policy(
    spec: &ListenerSettings,
    gate: Option<&Arc<TlsGate>>,
    max_connections: usize,
) -> ListenerPolicy {
    let local = spec.options.addr;
    ListenerPolicy {
        local,
        allow_plaintext: spec.allow_plaintext || !spec.tls,
        tls: if spec.tls { gate.cloned() } else { None },
        edge: Arc::new(spec.edge.build(local, max_connections)),
        counters: usize::MAX, // set by the caller
    }
}

/// The counts a kept listener's new policy shares. The access rules, rates
/// and PROXY settings are simply the new ones, but the counts must go on:
/// if the new policy counted open connections from zero, a listener
/// `max_connections` would admit that many again on top of the live ones.
/// So the old counts are kept and only the limit changes (lowering it
/// never closes a connection). A changed per-client limit or accept rate
/// needs a table built for it: the counts then start afresh (each live
/// connection still gives its count back to the table it took it from).
fn carry_limits(
    old: &EdgeSettings,
    limits: &Arc<ListenerLimits>,
    new: &EdgeSettings,
    local: SocketAddr,
    max_connections: usize,
) -> Arc<ListenerLimits> {
    let same_table = old.max_connections_per_client == new.max_connections_per_client
        && old.accept_rate_per_client == new.accept_rate_per_client;
    if !same_table {
        log::warn!("reload: {local}: per-client limits changed; per-client counts start afresh");
        return spec_limits(new, local, max_connections);
    }
    limits
        .max_connections
        .store(new.max_connections.unwrap_or(UNLIMITED), Ordering::Release);
    limits.clone()
}

fn spec_limits(
    edge: &EdgeSettings,
    local: SocketAddr,
    max_connections: usize,
) -> Arc<ListenerLimits> {
    edge.build(local, max_connections).limits
}

enum Planned {
    /// The running listener at this index stays.
    Kept(usize),
    /// Newly bound: the real address and one socket per worker.
    Opened((SocketAddr, Vec<TcpListener>)),
}

/// Binds a listener the reload adds, once per worker.
fn bind(
    spec: &ListenerSettings,
    workers: usize,
) -> Result<(SocketAddr, Vec<TcpListener>), ReloadError> {
    let fail = |err: std::io::Error| {
        ReloadError(format!(
            "listeners: cannot listen on {}: {err}",
            spec.options.addr
        ))
    };
    let per_worker = server::bind_all(std::slice::from_ref(spec), workers).map_err(fail)?;
    let sockets: Vec<TcpListener> = per_worker.into_iter().flatten().collect();
    let local = sockets[0].local_addr().map_err(fail)?;
    Ok((local, sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The admin API will call `reload` from its own thread, behind a
    /// mutex: the reloader must be movable there.
    #[test]
    fn a_reloader_can_be_handed_to_another_thread() {
        fn send<T: Send>() {}
        send::<Reloader>();
        send::<ReloadSummary>();
        send::<ReloadError>();
    }

    #[test]
    fn the_summary_names_the_file_and_what_changed() {
        let summary = ReloadSummary {
            origin: "site.toml".into(),
            listeners: 2,
            opened: vec!["127.0.0.1:9000".parse().unwrap()],
            closed: vec!["127.0.0.1:9001".parse().unwrap()],
            domains: 3,
            max_connections: 100,
            warnings: Vec::new(),
        };
        assert_eq!(
            summary.to_string(),
            "reloaded site.toml: 2 listeners, 3 domains, max_connections 100; \
             opened 127.0.0.1:9000; closed 127.0.0.1:9001"
        );
    }
}
