//! One conformance suite, run unchanged against every backend.
//!
//! The crate documentation states a contract (one-shot readiness, errors as
//! readiness, wake-ups that are not events, ...). This file is that contract
//! written as tests, and the one idea to take away is that **each test is a
//! plain function of a `BackendKind`**: the `backend_tests!` macro at the end
//! stamps out one module per backend (`epoll::hang_up_is_readable`,
//! `poll::hang_up_is_readable`, ...), so a failure names the backend, and a
//! backend that is not compiled into this build (or, like `uring`, cannot
//! run on this machine) reports its tests as passed with a printed note
//! rather than vanishing.
//!
//! Only the public API and std sockets are used. Tests that must see an event
//! wait up to [`PATIENCE`] for it (loaded CI machines are slow); tests that
//! must see *no* event watch for [`QUIET`], which keeps the suite fast.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use backends::{BackendKind, Event, Events, Interest, Selector, Token};

/// How long an event that must come may take.
const PATIENCE: Duration = Duration::from_secs(2);
/// How long we watch for an event that must not come.
const QUIET: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------- helpers

fn run(kind: BackendKind, test: fn(BackendKind)) {
    if !kind.is_compiled() {
        eprintln!("note: backend `{kind}` is not compiled into this build; test skipped");
        return;
    }
    if let Err(why) = kind.availability() {
        eprintln!("note: backend `{kind}` cannot run on this machine ({why}); test skipped");
        return;
    }
    test(kind);
}

fn open(kind: BackendKind) -> Box<dyn Selector> {
    let selector = kind
        .open()
        .unwrap_or_else(|err| panic!("opening {kind}: {err}"));
    assert_eq!(selector.kind(), kind);
    selector
}

fn unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// A connected loopback TCP pair: (client, accepted server side).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    (client, server)
}

/// Waits until `count` events have arrived in total, across as many waits as
/// it takes, and returns them. Fails on a second event for a token (one-shot)
/// or when they do not all arrive within [`PATIENCE`].
fn collect(selector: &mut dyn Selector, count: usize, capacity: usize) -> Vec<Event> {
    let deadline = Instant::now() + PATIENCE;
    let mut events = Events::with_capacity(capacity);
    let mut seen: Vec<Event> = Vec::new();
    while seen.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {count} events within {PATIENCE:?}: {seen:?}",
            seen.len()
        );
        selector.wait(&mut events, Some(left)).unwrap();
        assert!(
            events.len() <= capacity,
            "{} events for capacity {capacity}",
            events.len()
        );
        for event in &events {
            assert!(
                seen.iter().all(|e| e.token != event.token),
                "second event for {:?} without reregister: {event:?} after {seen:?}",
                event.token
            );
            seen.push(*event);
        }
    }
    seen
}

/// The single event for `token`; fails if any other token shows up.
fn expect_one(selector: &mut dyn Selector, token: Token) -> Event {
    let events = collect(selector, 1, 16);
    assert_eq!(events[0].token, token, "{events:?}");
    events[0]
}

/// Watches for [`QUIET`] and fails on any event.
fn expect_quiet(selector: &mut dyn Selector) {
    let deadline = Instant::now() + QUIET;
    let mut events = Events::with_capacity(16);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        selector.wait(&mut events, Some(left)).unwrap();
        assert!(
            events.is_empty(),
            "unexpected events: {:?}",
            events.iter().collect::<Vec<_>>()
        );
    }
}

fn tokens(events: &[Event]) -> BTreeSet<usize> {
    events.iter().map(|e| e.token.0).collect()
}

// ------------------------------------------------------------------ tests

fn readiness_after_connect(kind: BackendKind) {
    let mut sel = open(kind);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    sel.register(listener.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    expect_quiet(&mut *sel);

    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_nonblocking(true).unwrap();
    sel.register(client.as_raw_fd(), Token(2), Interest::WRITABLE)
        .unwrap();

    let events = collect(&mut *sel, 2, 16);
    assert_eq!(tokens(&events), BTreeSet::from([1, 2]));
    for event in events {
        match event.token {
            Token(1) => assert!(event.readable, "listener: {event:?}"),
            _ => assert!(event.writable, "client: {event:?}"),
        }
    }
    // The readable listener really has a connection waiting.
    listener.accept().unwrap();
}

fn readable_after_peer_writes(kind: BackendKind) {
    let mut sel = open(kind);
    let (mut a, mut b) = unix_pair();
    sel.register(a.as_raw_fd(), Token(7), Interest::READABLE)
        .unwrap();
    expect_quiet(&mut *sel);
    b.write_all(b"hello").unwrap();
    let event = expect_one(&mut *sel, Token(7));
    assert!(event.readable, "{event:?}");
    let mut buf = [0; 16];
    assert_eq!(a.read(&mut buf).unwrap(), 5);
}

fn writable_event(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, _b) = unix_pair();
    sel.register(a.as_raw_fd(), Token(3), Interest::WRITABLE)
        .unwrap();
    let event = expect_one(&mut *sel, Token(3));
    assert!(event.writable, "{event:?}");
}

fn one_shot_until_reregister(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, mut b) = unix_pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    b.write_all(b"x").unwrap();
    expect_one(&mut *sel, Token(1));
    // Still readable (nothing was read), but disarmed: no second event, not
    // even when more data arrives.
    expect_quiet(&mut *sel);
    b.write_all(b"y").unwrap();
    expect_quiet(&mut *sel);
    // Re-arming a descriptor that is still ready reports it, although no new
    // data arrives after the re-arm.
    sel.reregister(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    let event = expect_one(&mut *sel, Token(1));
    assert!(event.readable, "{event:?}");
    expect_quiet(&mut *sel);
}

fn rearm_after_draining_reports_new_data(kind: BackendKind) {
    let mut sel = open(kind);
    let (mut a, mut b) = unix_pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    let mut buf = [0; 64];
    for round in 0..3u8 {
        b.write_all(&[round]).unwrap();
        expect_one(&mut *sel, Token(1));
        assert_eq!(a.read(&mut buf).unwrap(), 1);
        assert_eq!(a.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        sel.reregister(a.as_raw_fd(), Token(1), Interest::READABLE)
            .unwrap();
    }
}

fn reregister_changes_interest_and_token(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, _b) = unix_pair();
    // Nothing to read: quiet.
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    expect_quiet(&mut *sel);
    // Same fd, now waiting for the (always available) write space, under a
    // new token: the event carries the new token.
    sel.reregister(a.as_raw_fd(), Token(2), Interest::WRITABLE)
        .unwrap();
    let event = expect_one(&mut *sel, Token(2));
    assert!(event.writable, "{event:?}");
    // And back: shrinking to READABLE must stop the write readiness.
    sel.reregister(a.as_raw_fd(), Token(3), Interest::READABLE)
        .unwrap();
    expect_quiet(&mut *sel);
}

fn both_directions_arrive_as_one_event(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, mut b) = unix_pair();
    b.write_all(b"x").unwrap();
    sel.register(a.as_raw_fd(), Token(5), Interest::BOTH)
        .unwrap();
    // Readable and writable at once: one event, and then the *whole*
    // registration is disarmed, not just the direction that was reported.
    let mut seen = collect(&mut *sel, 1, 16);
    expect_quiet(&mut *sel);
    assert_eq!(seen.len(), 1);
    let event = seen.remove(0);
    assert_eq!(event.token, Token(5));
    assert!(event.readable && event.writable, "{event:?}");
    sel.reregister(a.as_raw_fd(), Token(5), Interest::BOTH)
        .unwrap();
    expect_one(&mut *sel, Token(5));
}

fn deregister_stops_events_and_allows_registering_again(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, mut b) = unix_pair();
    let fd = a.as_raw_fd();
    sel.register(fd, Token(1), Interest::READABLE).unwrap();
    b.write_all(b"x").unwrap();
    sel.deregister(fd).unwrap();
    expect_quiet(&mut *sel);
    // Gone for good: re-arming or removing it again is an error.
    assert_eq!(
        sel.reregister(fd, Token(1), Interest::READABLE)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(sel.deregister(fd).unwrap_err().kind(), ErrorKind::NotFound);
    // But it can be registered afresh, and reports the pending data.
    sel.register(fd, Token(9), Interest::READABLE).unwrap();
    let event = expect_one(&mut *sel, Token(9));
    assert!(event.readable, "{event:?}");
    sel.deregister(fd).unwrap();
}

fn unknown_fds_are_errors(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, _b) = unix_pair();
    let fd: RawFd = a.as_raw_fd();
    assert_eq!(
        sel.reregister(fd, Token(1), Interest::READABLE)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(sel.deregister(fd).unwrap_err().kind(), ErrorKind::NotFound);
}

fn registering_twice_fails(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, _b) = unix_pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    let err = sel
        .register(a.as_raw_fd(), Token(2), Interest::WRITABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    // The failed attempt changed nothing: still READABLE under Token(1).
    expect_quiet(&mut *sel);
    sel.deregister(a.as_raw_fd()).unwrap();
}

fn hang_up_is_readable(kind: BackendKind) {
    let mut sel = open(kind);
    let (mut unix, unix_peer) = unix_pair();
    let (mut tcp, tcp_peer) = tcp_pair();
    sel.register(unix.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    sel.register(tcp.as_raw_fd(), Token(2), Interest::READABLE)
        .unwrap();
    expect_quiet(&mut *sel);
    drop(unix_peer);
    drop(tcp_peer);
    let events = collect(&mut *sel, 2, 16);
    assert_eq!(tokens(&events), BTreeSet::from([1, 2]));
    assert!(events.iter().all(|e| e.readable), "{events:?}");
    // ... and the read it invites returns end of file.
    let mut buf = [0; 8];
    assert_eq!(unix.read(&mut buf).unwrap(), 0);
    assert_eq!(tcp.read(&mut buf).unwrap(), 0);
}

/// Writes to `peer` after [`PATIENCE`] unless told to stop first, so that a
/// broken waker fails the test (with an unexpected event) instead of hanging
/// it in a `wait(None)`.
fn watchdog(mut peer: UnixStream) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        if stopped.recv_timeout(PATIENCE) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = peer.write_all(b"watchdog");
        }
    });
    (stop, handle)
}

fn waker_interrupts_a_blocking_wait(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, b) = unix_pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    let (stop, dog) = watchdog(b);

    let waker = sel.waker();
    let delay = Duration::from_millis(100);
    let waking = thread::spawn(move || {
        thread::sleep(delay);
        waker.wake().unwrap();
    });
    let start = Instant::now();
    let mut events = Events::with_capacity(16);
    sel.wait(&mut events, None).unwrap();
    let elapsed = start.elapsed();
    stop.send(()).unwrap();
    dog.join().unwrap();
    waking.join().unwrap();

    assert!(
        events.is_empty(),
        "a wake-up is not an event (or the waker failed and the watchdog fired): {:?}",
        events.iter().collect::<Vec<_>>()
    );
    assert!(
        elapsed >= delay - Duration::from_millis(5),
        "returned before the wake: {elapsed:?}"
    );
    assert!(
        elapsed < PATIENCE,
        "the wake did not interrupt the wait: {elapsed:?}"
    );
}

fn wakes_collapse_and_are_not_events(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, mut b) = unix_pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    let waker = sel.waker();
    let mut events = Events::with_capacity(16);

    // Three wakes before the wait: one early return, then nothing pending.
    for _ in 0..3 {
        waker.wake().unwrap();
    }
    let start = Instant::now();
    sel.wait(&mut events, Some(PATIENCE)).unwrap();
    assert!(events.is_empty(), "{:?}", events.iter().collect::<Vec<_>>());
    assert!(
        start.elapsed() < PATIENCE / 2,
        "woken wait blocked: {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    sel.wait(&mut events, Some(QUIET)).unwrap();
    assert!(events.is_empty());
    assert!(
        start.elapsed() >= QUIET,
        "a wake was left over: {:?}",
        start.elapsed()
    );

    // A wake together with real readiness: only the registration is reported.
    b.write_all(b"x").unwrap();
    waker.wake().unwrap();
    let event = expect_one(&mut *sel, Token(1));
    assert!(event.readable);

    // The waker may outlive the selector without harm.
    drop(sel);
    let _ = waker.wake();
}

fn timeouts_are_honoured(kind: BackendKind) {
    let mut sel = open(kind);
    let (a, _b) = unix_pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(16);

    let timeout = Duration::from_millis(50);
    let start = Instant::now();
    sel.wait(&mut events, Some(timeout)).unwrap();
    let elapsed = start.elapsed();
    assert!(events.is_empty());
    assert!(elapsed >= timeout, "returned early: {elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_millis(200),
        "returned late: {elapsed:?}"
    );

    // Sub-millisecond timeouts round up, never down to a busy zero.
    let tiny = Duration::from_micros(300);
    let start = Instant::now();
    sel.wait(&mut events, Some(tiny)).unwrap();
    assert!(
        start.elapsed() >= tiny,
        "returned early: {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    sel.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty());
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "zero timeout blocked: {:?}",
        start.elapsed()
    );
}

fn small_capacity_reports_everything_eventually(kind: BackendKind) {
    let mut sel = open(kind);
    let mut pairs: Vec<(UnixStream, UnixStream)> = (0..8).map(|_| unix_pair()).collect();
    for (i, (a, b)) in pairs.iter_mut().enumerate() {
        sel.register(a.as_raw_fd(), Token(i), Interest::READABLE)
            .unwrap();
        b.write_all(b"x").unwrap();
    }
    // Capacity 3 for 8 ready registrations: at least three waits, each within
    // capacity, every token exactly once.
    let events = collect(&mut *sel, 8, 3);
    assert_eq!(tokens(&events), (0..8).collect());
    expect_quiet(&mut *sel);
}

/// Only one test at a time may hold ten thousand descriptors.
static MANY_FDS: Mutex<()> = Mutex::new(());

/// Raises the soft descriptor limit towards `wanted` as far as the system
/// allows, and returns the soft limit in force.
// `rlim_t` is u64 on Linux and macOS but i64 on FreeBSD, so the casts stay.
#[allow(clippy::unnecessary_cast)]
fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    let hard = limit.rlim_max as u64;
    // macOS refuses a soft limit above OPEN_MAX (10240) even when the hard
    // limit is unlimited, so that is the fallback.
    for target in [wanted.min(hard), 10_240.min(hard)] {
        if limit.rlim_cur as u64 >= target {
            break;
        }
        let raised = libc::rlimit {
            rlim_cur: target as libc::rlim_t,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; failure leaves the limit as is.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
            break;
        }
    }
    limit.rlim_cur as u64
}

fn ten_thousand_registrations(kind: BackendKind) {
    let _one_at_a_time = MANY_FDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    const WANTED_FDS: usize = 10_000;
    // Headroom for the other tests running in parallel and the harness.
    const HEADROOM: u64 = 400;
    let limit = raise_fd_limit(WANTED_FDS as u64 + HEADROOM);
    let fds = (limit.saturating_sub(HEADROOM) as usize).min(WANTED_FDS) / 2 * 2;
    if fds < WANTED_FDS {
        eprintln!("note: descriptor limit {limit}; registering {fds} fds instead of {WANTED_FDS}");
    }
    assert!(
        fds >= 100,
        "descriptor limit {limit} is too low for this test"
    );

    let mut sel = open(kind);
    // Register both ends of every pair: fds / 2 socketpairs, fds registrations.
    let pairs: Vec<(UnixStream, UnixStream)> = (0..fds / 2).map(|_| unix_pair()).collect();
    let socket = |token: usize| -> &UnixStream {
        let (a, b) = &pairs[token / 2];
        if token % 2 == 0 {
            a
        } else {
            b
        }
    };
    for token in 0..fds {
        sel.register(socket(token).as_raw_fd(), Token(token), Interest::READABLE)
            .unwrap();
    }
    expect_quiet(&mut *sel);

    // Writing on one end makes the *other* end readable; the token of the
    // other end of `t` is `t ^ 1`.
    let ready = [0, fds / 3 + 1, fds - 1];
    for token in ready {
        socket(token ^ 1).write_all(b"x").unwrap();
    }
    let events = collect(&mut *sel, ready.len(), 1024);
    assert_eq!(tokens(&events), BTreeSet::from(ready));
    expect_quiet(&mut *sel);

    // Tearing down in an order that moves slots around in index-based
    // backends (every other one first, then the rest).
    for token in (0..fds).step_by(2).chain((1..fds).step_by(2)) {
        sel.deregister(socket(token).as_raw_fd()).unwrap();
    }
    expect_quiet(&mut *sel);
}

// ------------------------------------------------------ one module per backend

/// `backend_tests!(poll, Poll)` makes `mod poll` with one `#[test]` per test
/// function above, each running that function against `BackendKind::Poll`.
macro_rules! backend_tests {
    ($module:ident, $kind:ident) => {
        mod $module {
            backend_tests!(@each $kind;
                readiness_after_connect,
                readable_after_peer_writes,
                writable_event,
                one_shot_until_reregister,
                rearm_after_draining_reports_new_data,
                reregister_changes_interest_and_token,
                both_directions_arrive_as_one_event,
                deregister_stops_events_and_allows_registering_again,
                unknown_fds_are_errors,
                registering_twice_fails,
                hang_up_is_readable,
                waker_interrupts_a_blocking_wait,
                wakes_collapse_and_are_not_events,
                timeouts_are_honoured,
                small_capacity_reports_everything_eventually,
                ten_thousand_registrations,
            );
        }
    };
    (@each $kind:ident; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                super::run(backends::BackendKind::$kind, super::$test);
            }
        )*
    };
}

backend_tests!(epoll, Epoll);
backend_tests!(kqueue, Kqueue);
backend_tests!(mio, Mio);
backend_tests!(poll, Poll);
backend_tests!(uring, Uring);

/// Every backend this build contains is covered by a module above.
#[test]
fn every_compiled_backend_has_a_module() {
    let covered = [
        BackendKind::Epoll,
        BackendKind::Kqueue,
        BackendKind::Mio,
        BackendKind::Poll,
        BackendKind::Uring,
    ];
    for kind in BackendKind::compiled() {
        assert!(covered.contains(&kind), "no conformance module for {kind}");
    }
}
