//! The admin port: metrics, stats and run-time limits, on a port of its own.
//!
//! | path | method | answer |
//! |---|---|---|
//! | `/metrics` | GET | every counter, Prometheus text format (`prometheus.rs`) |
//! | `/stats` | GET | the same reading as JSON (`snapshot.rs`), for `portcullis stats` |
//! | `/limits` | GET | the limits in force |
//! | `/limits` | POST | change the global or a listener's `max_connections` (`limits.rs`); needs the token when one is configured |
//!
//! It is served by one thread of its own with a blocking `TcpListener`, not
//! by a worker's reactor. The one idea: **keep the operator's traffic off
//! the data path**. A scrape arrives every few seconds and is answered in
//! microseconds; on a reactor it would need a second protocol stack beside
//! the connection engine, and each scrape would delay that worker's
//! connections by the time it takes to render. On its own thread it costs
//! the workers nothing but the relaxed loads of their counters, it sleeps
//! in `accept` the rest of the time, and the admin port keeps answering
//! while the workers drain at shutdown. Requests are served one at a time
//! with short socket timeouts ([`IO_TIMEOUT`]), so a stuck client delays
//! the next scrape by at most that, and never holds memory.
//!
//! Access (`access.rs`): loopback peers only unless `allow_remote`, and a
//! token for anything that changes state when `token_file` is set.

pub mod access;
pub mod client;
pub mod config;
pub mod http;
pub mod limits;
pub mod prometheus;
pub mod snapshot;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use access::{AccessPolicy, Refused};
use http::{ReadError, Request, Response};
use snapshot::Source;

use crate::engine::counters::Tally;

/// Read and write timeout on each admin connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// How the admin thread's own requests ended, for its own metrics.
#[derive(Debug, Default)]
struct AdminCounters {
    ok: Tally,
    refused_peer: Tally,
    refused_token: Tally,
    bad_request: Tally,
    not_found: Tally,
}

/// Where to serve the admin port and who may use it.
#[derive(Clone, Debug)]
pub struct AdminSettings {
    pub address: SocketAddr,
    pub access: AccessPolicy,
}

/// A running admin port.
pub struct AdminHandle {
    local: SocketAddr,
}

impl AdminHandle {
    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Binds `address` and starts the admin thread. It runs as long as the
/// process does.
pub fn start(address: SocketAddr, access: AccessPolicy, source: Source) -> io::Result<AdminHandle> {
    let listener = TcpListener::bind(address)?;
    let local = listener.local_addr()?;
    let state = Arc::new(State {
        access,
        source,
        counters: AdminCounters::default(),
    });
    std::thread::Builder::new()
        .name("portcullis-admin".into())
        .spawn(move || serve(listener, state))?;
    Ok(AdminHandle { local })
}

struct State {
    access: AccessPolicy,
    source: Source,
    counters: AdminCounters,
}

fn serve(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => handle(stream, &state),
            Err(err) => {
                log::warn!("admin: accept failed: {err}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn handle(mut stream: TcpStream, state: &State) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let response = match state.access.check_peer(peer) {
        Err(refused) => {
            log::warn!("admin: refused {peer}: {}", refused.message());
            refusal(state, refused)
        }
        Ok(()) => match http::read_request(&mut stream) {
            Ok(request) => route(&request, peer, state),
            Err(ReadError::Io(err)) => {
                log::debug!("admin: reading from {peer} failed: {err}");
                state.counters.bad_request.incr();
                return;
            }
            Err(ReadError::Bad(message)) => {
                log::info!("admin: bad request from {peer}: {message}");
                state.counters.bad_request.incr();
                Response::text(400, message)
            }
            Err(ReadError::TooLarge) => {
                log::info!("admin: oversized request from {peer}");
                state.counters.bad_request.incr();
                Response::text(413, "request too large")
            }
        },
    };
    if let Err(err) = response.write_to(&mut stream) {
        log::debug!("admin: writing to {peer} failed: {err}");
    }
}

fn refusal(state: &State, refused: Refused) -> Response {
    match refused {
        Refused::BadToken => state.counters.refused_token.incr(),
        _ => state.counters.refused_peer.incr(),
    }
    Response::text(refused.status(), refused.message())
}

fn route(request: &Request, peer: SocketAddr, state: &State) -> Response {
    let response = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/metrics") => {
            let mut body = prometheus::render(&state.source.snapshot());
            render_own(&mut body, &state.counters);
            Response::new(200, prometheus::CONTENT_TYPE, body)
        }
        ("GET", "/stats") => json(&state.source.snapshot()),
        ("GET", "/limits") => json(&limits::Limits::read(&state.source.shared)),
        ("POST", "/limits") => {
            if let Err(refused) = state
                .access
                .check_change(peer, request.header("authorization"))
            {
                log::warn!("admin: refused a change from {peer}: {}", refused.message());
                return refusal(state, refused);
            }
            let body = String::from_utf8_lossy(&request.body);
            match limits::parse(&body).and_then(|c| limits::apply(&state.source.shared, &c)) {
                Ok(what) => {
                    log::info!("admin: {peer} changed limits: {what}");
                    json(&limits::Limits::read(&state.source.shared))
                }
                Err(message) => {
                    log::info!("admin: bad limits from {peer}: {message}");
                    state.counters.bad_request.incr();
                    return Response::text(400, &message);
                }
            }
        }
        (_, "/metrics" | "/stats" | "/limits") => {
            state.counters.bad_request.incr();
            return Response::text(405, "method not allowed here");
        }
        _ => {
            state.counters.not_found.incr();
            return Response::text(404, "not found: try /metrics, /stats or /limits");
        }
    };
    state.counters.ok.incr();
    response
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            Response::new(200, "application/json", body)
        }
        Err(err) => Response::text(500, &format!("cannot encode: {err}")),
    }
}

/// The admin port's own requests, appended to `/metrics`.
fn render_own(out: &mut String, c: &AdminCounters) {
    use std::fmt::Write as _;
    let name = "portcullis_admin_requests_total";
    let _ = writeln!(out, "# HELP {name} Requests to the admin port, by outcome.");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (outcome, tally) in [
        ("ok", &c.ok),
        ("refused_peer", &c.refused_peer),
        ("refused_token", &c.refused_token),
        ("bad_request", &c.bad_request),
        ("not_found", &c.not_found),
    ] {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", tally.get());
    }
}
