//! The engine: connections that do no I/O, run by drivers that do.
//!
//! ```text
//!   driver (readiness/)             connection (connection/)         service
//!   ─────────────────────           ─────────────────────────        ───────
//!   wait for readiness      ──►     handle_input(bytes, now)  ──►    on_data
//!   read / write / accept   ◄──     transmit(), next(),       ◄──    send, close,
//!   timers                          deadline()                       broadcast
//! ```
//!
//! A [`Connection`] holds one connection's logic: the stages its bytes go
//! through (sniff, TLS, service), its output queue and back-pressure, and
//! its deadlines. It is fed bytes, end of input and the time, and answers
//! with bytes to send, the readiness it needs, its next deadline, or a
//! close with a [`CloseReason`]. It never makes a system call, so it runs
//! unchanged under any driver, and its tests choose every byte and instant.
//!
//! A driver owns the sockets and the clock. [`readiness::Worker`] is the one
//! built on a [`backends::Selector`]: wait, read until `EAGAIN`, write, re-arm.
//! What every driver shares besides its I/O — the service instance, limits,
//! listener policies, counters, admission — is in [`worker`].
//!
//! The one idea: **I/O at the edge, logic in the middle.** A completion
//! driver (io_uring), a datagram socket or a PROXY-protocol stage changes
//! one side of this picture, never both. UDP sockets are served by
//! [`crate::udp::Endpoint`]s, which the readiness driver registers next to
//! the listeners (`readiness/datagrams.rs`).
//!
//! | file | job |
//! |---|---|
//! | `connection/mod.rs` | the connection's state and the driver-facing API |
//! | `connection/stages.rs` | the pipeline: sniff → TLS → service |
//! | `connection/proxy_stage.rs` | the PROXY header in front of it, and the checks on the real client |
//! | `connection/deadlines.rs` | every time limit, stated once |
//! | `connection/output.rs` | the output queue: partial writes without memmove |
//! | `context.rs` | what a driver lends a connection per call (time is an argument) |
//! | `limits.rs` | the byte and time bounds |
//! | `edge/` | access rules, per-listener and per-client limits, rates, PROXY policy |
//! | `buffers.rs` | the per-worker buffer pool and scratch space |
//! | `worker.rs` | a worker's state apart from its sockets; admission |
//! | `readiness/` | the readiness driver: loop, accepting, socket I/O, UDP sockets, tokens |
//! | `driver.rs` | the drivers by name (`--backend`): readiness backends, `threads` |
//! | `threads/` | the thread-per-connection baseline: acceptor, blocking connection threads |
//! | `completion/` | the io_uring completion driver: multishot accept and receive, buffer ring, cancellation |
//! | `driver.rs` | which driver `--backend` names, its model and availability |
//! | `hub.rs` | broadcasts across workers, with push-back when an inbox fills |
//! | `control.rs` | reconfiguring running workers (reload): a mailbox per worker |
//! | `policies.rs` | listener policies a reload replaces while live connections keep theirs |
//! | `stats.rs` | a counter for every reason a connection ends |
//! | `counters.rs` | per-worker counters for metrics, summed only when read |

pub mod buffers;
#[cfg(target_os = "linux")]
pub mod completion;
pub mod connection;
pub mod context;
pub mod control;
pub mod counters;
pub mod driver;
pub mod edge;
pub mod hub;
pub mod limits;
pub mod policies;
pub mod readiness;
pub mod stats;
#[cfg(target_os = "linux")]
pub mod threads;
pub mod worker;

pub use connection::{Connection, Next, Stage};
pub use context::{Context, ListenerPolicy};
pub use driver::{CompletionOptions, Driver};
pub use edge::{EdgePolicy, ListenerLimits};
pub use limits::ConnectionLimits;
pub use readiness::Worker;
pub use stats::{CloseReason, Stats};
pub use worker::{Admitted, Env, ListenerSetup, Shared, WorkerSetup};
