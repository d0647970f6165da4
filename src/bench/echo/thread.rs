//! One bench thread: its share of the echo clients on its own reactor,
//! from connecting to the last verified echo.
//!
//! The loop is the server's, turned inside out: wait for readiness, let
//! each ready client read, verify and send what its mode allows, then
//! re-arm it with what it wants now. Two clocks bound it — `--duration`
//! (stop sending, keep verifying what is in flight) and `--timeout`
//! (give up and count unfinished clients as errors).
//!
//! The one idea: **a thread knows why it stopped.** When `--duration`
//! fires while some client still had messages to send, the run was ended by
//! time; when every client finished its share first, by `--messages`. The
//! report says which, because the two kinds of run are read differently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{Event, Events, Selector, Token};

use super::super::client::{wait_into, Buffers, Conn, Failure};
use super::super::histogram::Histogram;
use super::super::runner::{FinishGuard, Publisher, Shared};
use super::client::{EchoClient, Step, SCRATCH_BYTES};
use super::plan::Plan;
use super::ThreadResult;
use crate::bench::args::EchoMode;

/// How often a thread publishes its progress for the progress line.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// The clients of one thread, by slot (the reactor token); `None` once a
/// client has finished or failed.
type Slots = Vec<Option<EchoClient>>;

pub fn run_thread(index: usize, plan: &Plan, shared: &Arc<Shared>) -> ThreadResult {
    let mut guard = FinishGuard::new(shared.clone());
    let mine: Vec<usize> = (index..plan.clients).step_by(plan.threads).collect();
    let mut result = ThreadResult::default();
    // Kept apart from `result` so client callbacks can record into it
    // while `result` is borrowed for failures.
    let mut histogram = (plan.mode == EchoMode::Pingpong).then(Histogram::new);
    let mut selector = match plan.target.backend.open() {
        Ok(selector) => selector,
        Err(e) => {
            shared.start.arrive(mine.len());
            result.errors += mine.len() as u64;
            result.note(format!(
                "cannot open the {} reactor: {e}",
                plan.target.backend
            ));
            return result;
        }
    };
    let mut clients: Slots = Vec::with_capacity(mine.len());
    for (slot, &id) in mine.iter().enumerate() {
        match open_client(selector.as_mut(), plan, id, Token(slot)) {
            Ok(client) => clients.push(Some(client)),
            Err(failure) => {
                shared.start.arrive(1);
                result.errors += 1;
                result.note(format!("client {id}: {failure}"));
                clients.push(None);
            }
        }
    }

    let deadline = Instant::now() + plan.timeout;
    let mut events = Events::with_capacity(1024);
    let mut ready: Vec<Event> = Vec::new();
    let mut buffers = Buffers::default();
    // At least one whole message, so cppserver-v1 writes each in one call.
    let window_bytes = plan.window.saturating_mul(plan.size);
    let scratch_len = window_bytes.min(SCRATCH_BYTES as u64).max(plan.size);
    let mut scratch = vec![0u8; scratch_len as usize];
    // Started: the start line has fired. Sending: started, and --duration
    // (if any) not yet over.
    let mut started = false;
    let mut sending = false;
    let mut stop_at: Option<Instant> = None;
    let mut publisher = Publisher::default();
    let mut last_publish = Instant::now();

    loop {
        let now = Instant::now();
        if !started {
            if let Some(fired) = shared.start.fired() {
                started = true;
                sending = true;
                stop_at = plan.duration().map(|d| fired + d);
                // Everyone starts at once; later sends follow the mode.
                for slot in 0..clients.len() {
                    let mut f = |c: &mut EchoClient| c.start(&mut scratch, plan);
                    with_client(
                        &mut clients,
                        slot,
                        selector.as_mut(),
                        plan,
                        true,
                        &mut result,
                        &mut f,
                    );
                }
            }
        }
        if stop_at.is_some_and(|at| now >= at) {
            stop_at = None;
            // Time is up: send nothing more, wait only for what is in flight.
            for slot in 0..clients.len() {
                let mut cut = false;
                let mut f = |c: &mut EchoClient| {
                    cut = c.stop_sending();
                    Ok(Step {
                        opened: false,
                        done: c.is_done(),
                    })
                };
                with_client(
                    &mut clients,
                    slot,
                    selector.as_mut(),
                    plan,
                    false,
                    &mut result,
                    &mut f,
                );
                result.ended_by_duration |= cut;
            }
            sending = false;
        }
        let active = clients.iter().flatten().count();
        if active == 0 {
            break;
        }
        if now >= deadline {
            shared
                .start
                .arrive(clients.iter().flatten().filter(|c| !c.arrived).count());
            for client in clients.iter_mut().filter_map(Option::take) {
                client.conn.deregister(selector.as_mut());
                result.add_totals(&client);
                result.errors += 1;
                result.timed_out = true;
                result.note(format!("client {}: {}", client.id, Failure::Timeout));
            }
            break;
        }
        let timeout = if started {
            let until = stop_at.map_or(deadline, |at| at.min(deadline));
            until.saturating_duration_since(now)
        } else {
            // Waiting for the start line, which other threads may fire.
            Duration::from_millis(1)
        };
        if let Err(e) = wait_into(selector.as_mut(), &mut events, &mut ready, Some(timeout)) {
            result.errors += active as u64;
            result.note(format!("reactor wait failed: {e}"));
            shared
                .start
                .arrive(clients.iter().flatten().filter(|c| !c.arrived).count());
            break;
        }
        for event in &ready {
            let slot = event.token.0;
            let mut f = |c: &mut EchoClient| {
                c.on_event(
                    event,
                    &mut buffers,
                    &mut scratch,
                    plan,
                    sending,
                    &mut histogram,
                )
            };
            if with_client(
                &mut clients,
                slot,
                selector.as_mut(),
                plan,
                sending,
                &mut result,
                &mut f,
            ) {
                shared.start.arrive(1);
            }
        }
        // The progress line needs a figure a few times a second, not per loop.
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = Instant::now();
            let in_flight: u64 = clients.iter().flatten().map(|c| c.received).sum();
            let units = (result.echoed + in_flight) / plan.size;
            publisher.publish(&shared.counters, units, result.errors);
        }
    }
    guard.finish();
    result.histogram = histogram;
    result
}

/// Runs `f` on the client in `slot` (if any), then re-arms it, or retires
/// it when it is done or failed. Returns whether the client has just
/// reached the start line: opened, or failed before opening.
fn with_client(
    clients: &mut Slots,
    slot: usize,
    selector: &mut dyn Selector,
    plan: &Plan,
    sending: bool,
    result: &mut ThreadResult,
    f: &mut dyn FnMut(&mut EchoClient) -> Result<Step, Failure>,
) -> bool {
    let Some(client) = clients.get_mut(slot).and_then(Option::as_mut) else {
        return false; // stale event for a retired client
    };
    let outcome = f(client).and_then(|step| {
        let wants_writable = client.waits_for_writability(plan, sending);
        if !step.done
            && !client
                .conn
                .rearm_for(selector, Token(slot), wants_writable)
                .map_err(Failure::Io)?
        {
            return Err(Failure::Closed(
                "the connection has nothing left to do".into(),
            ));
        }
        Ok(step)
    });
    let (arrives, retire) = match outcome {
        Ok(step) => {
            let arrives = step.opened && !client.arrived;
            (arrives, step.done.then_some(None))
        }
        // A client that failed before opening still counts at the start
        // line: nobody must wait for it.
        Err(failure) => (!client.arrived, Some(Some(failure))),
    };
    if arrives {
        client.arrived = true;
    }
    if let Some(failure) = retire {
        if let Some(mut client) = clients[slot].take() {
            result.add_totals(&client);
            if failure.is_none() {
                // Polite end of a finished TLS client; errors no longer matter.
                let _ = client.conn.close_notify();
            }
            client.conn.deregister(selector);
            if let Some(failure) = failure {
                result.errors += 1;
                result.note(format!("client {}: {failure}", client.id));
            }
        }
    }
    arrives
}

fn open_client(
    selector: &mut dyn Selector,
    plan: &Plan,
    id: usize,
    token: Token,
) -> Result<EchoClient, Failure> {
    let tls = plan.target.session(None)?;
    let conn = Conn::connect(plan.target.addr, None, tls)?;
    conn.register(selector, token).map_err(Failure::Connect)?;
    Ok(EchoClient::new(id, conn, plan.goal_for(id)))
}
