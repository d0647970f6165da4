//! `bench udp-multicast`: N receivers join a group and count what arrives.
//!
//! Against `serve --service udp-multicast`, which streams numbered
//! datagrams to a group (CppServer's multicast server). Each receiver is a
//! socket of its own that joins the group on `--multicast-if`; once every
//! receiver has its first datagram the start line fires, and each thread
//! counts for `--duration`: datagrams received, lost (numbers skipped) and
//! out of order (a number below one already seen). Every datagram is
//! checked in full ([`StreamDatagram`]).
//!
//! The one idea: **the numbers are the whole protocol**. The server does not
//! know its receivers, so only the receivers can say what the network
//! delivered; a gap in the numbers is a loss, a step back is a reordering,
//! and nothing else needs to be agreed on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{BackendKind, Events, Interest, Token};

mod receiver;

use super::report::{self, Report};
use super::runner::{self, FinishGuard, Publisher, Shared};
use super::udp_args::UdpMulticastArgs;
use crate::udp::batch::{IoMode, RecvBatch, RecvStop};
use crate::udp::multicast::StreamDatagram;
use crate::udp::socket::{join_group, parse_interface, MulticastInterface};
use receiver::{Counts, Receiver};

/// How long receivers may wait for their first datagram.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
const RECEIVER_BUFFER: usize = 4 * 1024 * 1024;

struct Plan {
    group: std::net::SocketAddr,
    interface: MulticastInterface,
    clients: usize,
    size: usize,
    duration: Duration,
    threads: usize,
    batch: usize,
    backend: BackendKind,
}

pub fn run(args: &UdpMulticastArgs) -> i32 {
    let plan = match super::prepare("udp-multicast", plan(args), &args.measure) {
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
            "udp-multicast",
            "datagrams",
            move |index| run_thread(index, &plan, &shared2),
        )
    };
    let mut total = Counts::default();
    for result in measured.results {
        match result {
            Ok(counts) => total.add(counts),
            Err(panic) => total.fail(panic),
        }
    }
    for failure in &total.failures {
        eprintln!("portcullis bench udp-multicast: {failure}");
    }
    let usage = measured.usage;
    let expected = total.received + total.lost;
    let loss_pct = if expected == 0 {
        0.0
    } else {
        100.0 * total.lost as f64 / expected as f64
    };
    let msgs_per_s = report::rate(total.received as f64, usage.wall);
    let mib_per_s =
        report::rate((total.received * plan.size as u64) as f64, usage.wall) / report::MIB;
    let stream_rate = report::rate(total.widest_span as f64, usage.wall);

    let mut r = Report::new("udp-multicast");
    r.line("Group", plan.group);
    r.line("Joined on", plan.interface);
    r.line("Client backend", plan.backend);
    r.line("Working threads", plan.threads);
    r.line("Working clients", plan.clients);
    r.line("Message size", plan.size);
    r.line(
        "Seconds to benchmarking",
        format!("{:.1}", plan.duration.as_secs_f64()),
    );
    r.blank();
    r.line("Errors", total.errors);
    r.blank();
    r.line("Total time", report::seconds(usage.wall));
    r.line(
        "Total data",
        report::bytes((total.received * plan.size as u64) as f64),
    );
    r.line("Total messages", total.received);
    r.line("Data throughput", format!("{mib_per_s:.3} MiB/s"));
    r.line(
        "Message throughput",
        format!("{} msg/s", report::fixed(msgs_per_s, 0)),
    );
    r.line(
        "Stream rate",
        format!(
            "{} datagrams/s sent by the server",
            report::fixed(stream_rate, 0)
        ),
    );
    r.line(
        "Datagrams",
        format!(
            "{} received, {} lost ({loss_pct:.3} %), {} out of order",
            total.received, total.lost, total.out_of_order
        ),
    );
    r.headline(msgs_per_s, mib_per_s, total.errors);
    r.figure("client_backend", plan.backend);
    r.figure("clients", plan.clients);
    r.figure("threads", plan.threads);
    r.figure("size", plan.size);
    r.figure("messages", total.received);
    r.figure("lost", total.lost);
    r.figure("loss_pct", report::fixed(loss_pct, 3));
    r.figure("out_of_order", total.out_of_order);
    r.figure("stream_per_s", report::fixed(stream_rate, 0));
    r.figure("seconds", report::fixed(usage.wall.as_secs_f64(), 3));
    r.cpu(&usage, total.received, "msg", "server_cpu_ns_per_msg");
    r.print()
}

fn plan(args: &UdpMulticastArgs) -> Result<Plan, String> {
    if args.clients == 0 || args.threads == 0 || args.batch == 0 {
        return Err("--clients, --threads and --batch must be at least 1".into());
    }
    if !args.group.ip().is_multicast() {
        return Err(format!(
            "--group: {} is not a multicast address",
            args.group.ip()
        ));
    }
    if args.size < StreamDatagram::MIN_SIZE {
        return Err(format!(
            "--size: {} is below 8 (the sequence number)",
            args.size
        ));
    }
    let interface = match &args.multicast_if {
        Some(text) => {
            parse_interface(text, args.group).map_err(|e| format!("--multicast-if: {e}"))?
        }
        None if args.group.is_ipv4() => MulticastInterface::V4(std::net::Ipv4Addr::LOCALHOST),
        None => MulticastInterface::Default,
    };
    let backend = match &args.client_backend {
        Some(name) => {
            backends::parse_backend(name).map_err(|e| format!("--client-backend: {e}"))?
        }
        None => BackendKind::best(),
    };
    Ok(Plan {
        group: args.group,
        interface,
        clients: args.clients,
        size: args.size,
        duration: super::seconds(args.duration, "--duration")?,
        threads: args.threads.min(args.clients),
        batch: args.batch,
        backend,
    })
}

fn run_thread(index: usize, plan: &Plan, shared: &Arc<Shared>) -> Counts {
    let mut guard = FinishGuard::new(shared.clone());
    let mut totals = Counts::default();
    let mine: Vec<usize> = (index..plan.clients).step_by(plan.threads).collect();
    let mut selector = match plan.backend.open() {
        Ok(selector) => selector,
        Err(e) => {
            shared.start.arrive(mine.len());
            totals.fail(format!("cannot open the reactor: {e}"));
            return totals;
        }
    };
    let mut receivers = Vec::new();
    for id in mine {
        let joined =
            join_group(plan.group, plan.interface, Some(RECEIVER_BUFFER)).and_then(|socket| {
                selector.register(
                    socket_fd(&socket),
                    Token(receivers.len()),
                    Interest::READABLE,
                )?;
                Ok(socket)
            });
        match joined {
            Ok(socket) => receivers.push(Receiver {
                id,
                socket,
                expected: None,
                counts: Counts::default(),
                first_in_window: None,
                arrived: false,
                failed: false,
            }),
            Err(e) => {
                shared.start.arrive(1);
                totals.fail(format!(
                    "receiver {id}: cannot join {} on {}: {e}",
                    plan.group, plan.interface
                ));
            }
        }
    }
    let settle_by = Instant::now() + SETTLE_LIMIT;
    let mut window: Option<Instant> = None;
    let mut batch = RecvBatch::new(plan.batch, plan.size);
    let mut events = Events::with_capacity(1024);
    let mut publisher = Publisher::default();
    loop {
        let now = Instant::now();
        if window.is_none() && shared.start.fired().is_some() {
            window = Some(now);
        }
        match window {
            Some(began) if now >= began + plan.duration => break,
            None if now >= settle_by => {
                for r in receivers.iter_mut().filter(|r| !r.arrived) {
                    r.arrived = true;
                    shared.start.arrive(1);
                    totals.fail(format!(
                        "receiver {}: nothing arrived from {}",
                        r.id, plan.group
                    ));
                }
            }
            _ => {}
        }
        let timeout = match window {
            Some(began) => (began + plan.duration).saturating_duration_since(now),
            None => Duration::from_millis(1),
        };
        if let Err(e) = selector.wait(&mut events, Some(timeout)) {
            totals.fail(format!("reactor wait failed: {e}"));
            shared
                .start
                .arrive(receivers.iter().filter(|r| !r.arrived).count());
            break;
        }
        let counting = window.is_some();
        for event in events.iter() {
            let Some(receiver) = receivers.get_mut(event.token.0).filter(|r| !r.failed) else {
                continue;
            };
            let outcome = drain(receiver, &mut batch, plan.size, counting).and_then(|()| {
                selector
                    .reregister(socket_fd(&receiver.socket), event.token, Interest::READABLE)
                    .map_err(|e| format!("cannot re-arm: {e}"))
            });
            if !receiver.arrived && (receiver.expected.is_some() || outcome.is_err()) {
                receiver.arrived = true;
                shared.start.arrive(1);
            }
            if let Err(what) = outcome {
                receiver.failed = true;
                let _ = selector.deregister(socket_fd(&receiver.socket));
                totals.fail(format!("receiver {}: {what}", receiver.id));
            }
        }
        let received: u64 = receivers.iter().map(|r| r.counts.received).sum();
        publisher.publish(&shared.counters, received, totals.errors);
    }
    guard.finish();
    for receiver in receivers {
        totals.add(receiver.counts);
    }
    totals
}

/// Receives and checks what is waiting for `receiver`.
fn drain(
    receiver: &mut Receiver,
    batch: &mut RecvBatch,
    size: usize,
    counting: bool,
) -> Result<(), String> {
    for _ in 0..8 {
        let pass = batch.receive(socket_fd(&receiver.socket), IoMode::Batched);
        for i in 0..pass.datagrams {
            let datagram = batch.get(i);
            if datagram.truncated {
                return Err(format!("a datagram larger than --size {size}"));
            }
            let seq = StreamDatagram::check(datagram.bytes, size)?;
            receiver.count(seq, counting);
        }
        match pass.stop {
            RecvStop::Full => {}
            RecvStop::Drained => return Ok(()),
            RecvStop::Failed(e) => return Err(format!("receive failed: {e}")),
        }
    }
    Ok(())
}

fn socket_fd(socket: &std::net::UdpSocket) -> std::os::fd::RawFd {
    std::os::fd::AsRawFd::as_raw_fd(socket)
}
