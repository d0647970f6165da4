//! `bench udp-echo`: CppServer's UDP echo client, with every reply verified
//! and every loss counted.
//!
//! C clients, spread over T threads (each its own reactor), each with a
//! socket of its own. When every thread is ready the start line fires; each
//! client sends M datagrams at once, then one more for every reply, for
//! `--duration` seconds. Then sending stops, replies still in flight get
//! `--drain` seconds to arrive, and whatever has not come back is lost —
//! UDP may drop, and a benchmark that hid it would flatter the server.
//!
//! The one idea: **a datagram names itself**. Its first 8 bytes are its
//! number and the rest is the client's [`Pattern`] at an offset computed
//! from that number, so a reply is checked in full without keeping what
//! was sent, and arrives in any order: a late one is counted out of order,
//! a changed or foreign one is an error. Clients send and receive in
//! batches ([`crate::udp::batch`]) so that the load generator costs less
//! per datagram than the server it measures.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{BackendKind, Events, Interest, Token};

mod client;

use super::report::{self, Report};
use super::runner::{self, FinishGuard, Publisher, Shared};
use super::udp_args::UdpEchoArgs;
use crate::udp::batch::{IoMode, RecvBatch, RecvStop, SendBatch};
use client::{Client, Totals};

/// Receive passes per readiness event of one client.
const PASSES_PER_EVENT: usize = 8;

struct Plan {
    addr: SocketAddr,
    clients: usize,
    messages: usize,
    size: usize,
    duration: Duration,
    drain: Duration,
    threads: usize,
    batch: usize,
    backend: BackendKind,
}

pub fn run(args: &UdpEchoArgs) -> i32 {
    let plan = match super::prepare("udp-echo", plan(args), &args.measure) {
        Ok(plan) => Arc::new(plan),
        Err(code) => return code,
    };
    let shared = Shared::new(plan.threads);
    let measured = {
        let (plan, shared2) = (plan.clone(), shared.clone());
        runner::run_threads(
            plan.threads,
            &shared,
            &args.measure.server_pid,
            "udp-echo",
            "replies",
            move |index| run_thread(index, &plan, &shared2),
        )
    };
    let mut total = Totals::default();
    for result in measured.results {
        match result {
            Ok(t) => total.add(t),
            Err(panic) => total.fail(panic),
        }
    }
    if total.sent > 0 && total.received == 0 {
        total.fail(format!(
            "no reply at all: is `portcullis serve --service udp-echo` serving {}?",
            plan.addr
        ));
    }
    for failure in &total.failures {
        eprintln!("portcullis bench udp-echo: {failure}");
    }
    report(&plan, &total, &measured.usage)
}

fn report(plan: &Plan, total: &Totals, usage: &super::cpu::Usage) -> i32 {
    let lost = total.sent.saturating_sub(total.received);
    let loss_pct = if total.sent == 0 {
        0.0
    } else {
        100.0 * lost as f64 / total.sent as f64
    };
    let msgs_per_s = report::rate(total.in_window as f64, usage.wall);
    let bytes = total.in_window * plan.size as u64;
    let mib_per_s = report::rate(bytes as f64, usage.wall) / report::MIB;
    let mut r = Report::new("udp-echo");
    r.line("Server address", plan.addr);
    r.line("Client backend", plan.backend);
    r.line("Working threads", plan.threads);
    r.line("Working clients", plan.clients);
    r.line("Working messages", plan.messages);
    r.line("Message size", plan.size);
    r.line(
        "Seconds to benchmarking",
        format!("{:.1}", plan.duration.as_secs_f64()),
    );
    r.blank();
    r.line("Errors", total.errors);
    r.blank();
    r.line("Total time", report::seconds(usage.wall));
    r.line("Total data", report::bytes(bytes as f64));
    r.line("Total messages", total.in_window);
    r.line("Data throughput", format!("{mib_per_s:.3} MiB/s"));
    r.line(
        "Message throughput",
        format!("{} msg/s", report::fixed(msgs_per_s, 0)),
    );
    r.line(
        "Datagrams",
        format!(
            "{} sent, {} replies ({} after the sending stopped), {lost} lost ({loss_pct:.3} %), \
             {} out of order, {} dropped by our own full send buffer",
            total.sent,
            total.received,
            total.received - total.in_window.min(total.received),
            total.out_of_order,
            total.send_dropped
        ),
    );
    r.headline(msgs_per_s, mib_per_s, total.errors);
    r.figure("client_backend", plan.backend);
    r.figure("clients", plan.clients);
    r.figure("threads", plan.threads);
    r.figure("in_flight", plan.messages);
    r.figure("size", plan.size);
    r.figure("messages", total.in_window);
    r.figure("sent", total.sent);
    r.figure("received", total.received);
    r.figure("lost", lost);
    r.figure("loss_pct", report::fixed(loss_pct, 3));
    r.figure("out_of_order", total.out_of_order);
    r.figure("seconds", report::fixed(usage.wall.as_secs_f64(), 3));
    r.cpu(usage, total.in_window, "msg", "server_cpu_ns_per_msg");
    r.print()
}

fn plan(args: &UdpEchoArgs) -> Result<Plan, String> {
    if args.clients == 0 || args.messages == 0 || args.threads == 0 || args.batch == 0 {
        return Err("--clients, --messages, --threads and --batch must be at least 1".into());
    }
    if !(8..=65_507).contains(&args.size) {
        return Err(format!(
            "--size: {} is outside 8 to 65507 (each datagram carries its 8-byte number)",
            args.size
        ));
    }
    let backend = match &args.client_backend {
        Some(name) => {
            backends::parse_backend(name).map_err(|e| format!("--client-backend: {e}"))?
        }
        None => BackendKind::best(),
    };
    Ok(Plan {
        addr: args.addr,
        clients: args.clients,
        messages: args.messages,
        size: args.size,
        duration: super::seconds(args.duration, "--duration")?,
        drain: Duration::try_from_secs_f64(args.drain)
            .map_err(|_| "--drain: must be a number of seconds".to_string())?,
        threads: args.threads.min(args.clients),
        batch: args.batch,
        backend,
    })
}

fn run_thread(index: usize, plan: &Plan, shared: &Arc<Shared>) -> Totals {
    let mut guard = FinishGuard::new(shared.clone());
    let mut totals = Totals::default();
    let mut clients = Vec::new();
    let mut selector = match plan.backend.open() {
        Ok(selector) => selector,
        Err(e) => {
            shared.start.arrive(1);
            totals.fail(format!("cannot open the reactor: {e}"));
            return totals;
        }
    };
    for id in (index..plan.clients).step_by(plan.threads) {
        let token = Token(clients.len());
        match Client::open(id, plan.addr).and_then(|c| {
            selector.register(c.socket.as_raw_fd(), token, Interest::READABLE)?;
            Ok(c)
        }) {
            Ok(client) => clients.push(client),
            Err(e) => totals.fail(format!("client {id}: cannot open a socket: {e}")),
        }
    }
    shared.start.arrive(1);
    while shared.start.fired().is_none() {
        std::thread::sleep(Duration::from_micros(200));
    }
    let mut recv = RecvBatch::new(plan.batch, plan.size);
    let mut send = SendBatch::new(plan.batch);
    let mut scratch = vec![0u8; plan.size];
    let started = Instant::now();
    let stop_sending = started + plan.duration;
    for client in &mut clients {
        for _ in 0..plan.messages {
            if send.is_full() {
                flush(&mut send, client, &mut totals);
            }
            client.queue(&mut send, plan.addr, &mut scratch);
        }
        flush(&mut send, client, &mut totals);
    }
    let mut events = Events::with_capacity(1024);
    let mut publisher = Publisher::default();
    let mut drain_until = None;
    loop {
        let now = Instant::now();
        if drain_until.is_none() && now >= stop_sending {
            guard.finish();
            totals.in_window = clients.iter().map(|c| c.received).sum();
            drain_until = Some(now + plan.drain);
        }
        let sending = drain_until.is_none();
        if let Some(until) = drain_until {
            let all_back = clients.iter().all(|c| c.failed || c.received >= c.next);
            if now >= until || all_back {
                break;
            }
        }
        let timeout = drain_until
            .unwrap_or(stop_sending)
            .saturating_duration_since(now);
        if let Err(e) = selector.wait(&mut events, Some(timeout)) {
            totals.fail(format!("reactor wait failed: {e}"));
            break;
        }
        for event in events.iter() {
            let Some(client) = clients.get_mut(event.token.0).filter(|c| !c.failed) else {
                continue;
            };
            if let Err(what) = serve(
                client,
                plan,
                sending,
                &mut recv,
                &mut send,
                &mut scratch,
                &mut totals,
            ) {
                client.failed = true;
                let _ = selector.deregister(client.socket.as_raw_fd());
                totals.fail(format!("client {}: {what}", client.id));
                continue;
            }
            if let Err(e) =
                selector.reregister(client.socket.as_raw_fd(), event.token, Interest::READABLE)
            {
                client.failed = true;
                totals.fail(format!("client {}: cannot re-arm: {e}", client.id));
            }
        }
        let received: u64 = clients.iter().map(|c| c.received).sum();
        publisher.publish(&shared.counters, received, totals.errors);
    }
    guard.finish();
    totals.received = clients.iter().map(|c| c.received).sum();
    totals
}

/// Receives what arrived for `client`, checks it, and (while `sending`)
/// answers each reply with the next datagram.
fn serve(
    client: &mut Client,
    plan: &Plan,
    sending: bool,
    recv: &mut RecvBatch,
    send: &mut SendBatch,
    scratch: &mut [u8],
    totals: &mut Totals,
) -> Result<(), String> {
    for _ in 0..PASSES_PER_EVENT {
        let pass = recv.receive(client.socket.as_raw_fd(), IoMode::Batched);
        for i in 0..pass.datagrams {
            let reply = recv.get(i);
            if reply.peer != Some(plan.addr) {
                continue; // not from the server: not ours to count
            }
            if reply.truncated {
                return Err(format!(
                    "a reply longer than the {}-byte datagrams sent",
                    plan.size
                ));
            }
            if client.check(reply.bytes, plan.size)? {
                totals.out_of_order += 1;
            }
            if sending {
                client.queue(send, plan.addr, scratch);
            }
        }
        flush(send, client, totals);
        match pass.stop {
            RecvStop::Full => {}
            RecvStop::Drained => return Ok(()),
            RecvStop::Failed(e) => return Err(format!("receive failed: {e}")),
        }
    }
    Ok(())
}

fn flush(send: &mut SendBatch, client: &mut Client, totals: &mut Totals) {
    if send.is_empty() {
        return;
    }
    let report = send.flush(client.socket.as_raw_fd(), IoMode::Batched);
    totals.sent += report.sent;
    totals.send_dropped += report.dropped_full;
    // A full buffer drops the end of the batch: those numbers never left,
    // so they are sent again rather than waited for.
    client.next -= report.dropped_full;
    if let Some((err, _)) = report.first_failure {
        totals.fail(format!(
            "client {}: the kernel refused {} datagrams to the server: {err}",
            client.id, report.failed
        ));
    }
}
