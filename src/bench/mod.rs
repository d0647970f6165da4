//! `portcullis bench SCENARIO`: a load generator built from the project's
//! own parts — the reactor ([`backends`]) and the TLS engine in client mode
//! ([`crate::tls::TlsSession`]) — so it doubles as the client side of the
//! library and as an example of using both.
//!
//! | scenario      | measures                                                |
//! |---------------|---------------------------------------------------------|
//! | `echo`        | round trips: messages/s, MiB/s, latency (pingpong)      |
//! | `multicast`   | how fast a server pushes a stream to many receivers     |
//! | `connections` | holding N connections; server memory per connection     |
//! | `handshakes`  | full and resumed TLS handshakes per second              |
//! | `udp-echo`    | datagram round trips: msgs/s, MiB/s, loss               |
//! | `udp-multicast` | a group stream: received, lost, out of order          |
//!
//! Read in this order: [`client`] (one connection's state machine), then
//! [`runner`] (threads, the start line, what is measured), then a scenario
//! ([`echo`] first), then [`report`].
//!
//! The one idea: **a load generator is a server turned inside out** — the
//! same one-shot readiness loop, the same "compute the interest after every
//! event" rule, the same bytes-in/bytes-out TLS engine — and it must be
//! cheaper per message than the server it measures, or it measures itself.
//! So it reports its own CPU use next to the server's.

pub mod args;
pub mod client;
pub mod connections;
pub mod cpu;
pub mod descriptors;
pub mod echo;
pub mod handshakes;
pub mod histogram;
pub mod multicast;
pub mod os;
pub mod pattern;
pub mod report;
pub mod runner;
pub mod target;
pub mod udp_args;
pub mod udp_echo;
pub mod udp_multicast;

pub use args::BenchArgs;

use args::{MeasureArgs, Scenario};

/// Runs a scenario; returns the process exit code (1 when errors were
/// counted, 2 for bad flags).
pub fn run(args: &BenchArgs) -> i32 {
    match &args.scenario {
        Scenario::Echo(a) => echo::run(a),
        Scenario::Multicast(a) => multicast::run(a),
        Scenario::Connections(a) => connections::run(a),
        Scenario::Handshakes(a) => handshakes::run(a),
        Scenario::UdpEcho(a) => udp_echo::run(a),
        Scenario::UdpMulticast(a) => udp_multicast::run(a),
    }
}

/// Applies `--pin` before any thread starts (threads inherit the mask).
/// The common start of every scenario: a valid plan, and the bench pinned
/// where `--pin` asks. On failure, prints why (naming the scenario) and
/// gives the exit code to return.
fn prepare<P>(scenario: &str, plan: Result<P, String>, measure: &MeasureArgs) -> Result<P, i32> {
    let ready = plan.and_then(|plan| pin(measure).map(|()| plan));
    ready.map_err(|message| {
        eprintln!("portcullis bench {scenario}: {message}");
        2
    })
}

fn pin(measure: &MeasureArgs) -> Result<(), String> {
    let Some(list) = &measure.pin else {
        return Ok(());
    };
    let cpus = os::parse_cpu_list(list)?;
    os::pin_to_cpus(&cpus).map_err(|e| format!("--pin {list}: {e}"))
}

/// Parses a positive number of seconds.
fn seconds(value: f64, flag: &str) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag}: must be a positive number of seconds"))
}
