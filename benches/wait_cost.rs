//! The cost of one wait against idle registered descriptors, per driver.
//!
//! One descriptor is busy; `idle` others are registered and never ready.
//! A round is what a server does for one message on the busy one: write a
//! byte to it (the peer's part), wait until it is reported, read the byte,
//! re-arm. For `poll` the wait walks every registered descriptor, so the
//! round grows with `idle`; `epoll` and `uring` keep the interest list in
//! the kernel, so it stays flat, and `uring` also carries the re-arm inside
//! the wait's system call. For `threads` the "registration" is a thread
//! asleep in `ppoll` on an idle socket, and the round is a wake-up of the
//! busy connection's own thread and its answer: two context switches that
//! the event loops do not pay.
//!
//! ```text
//! cargo bench --bench wait_cost -- [--idle 0,1000,...] [--rounds N] [--drivers epoll,uring,...]
//! ```
//!
//! Prints CSV on stdout: `driver,idle,rep,ns_per_round`. Each point runs
//! `--rounds` rounds or one second, whichever ends first. Points are
//! interleaved (every driver at one size, then the next size) so that drift
//! on a shared machine hits every driver alike.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use portcullis::backends::{BackendKind, Events, Interest, Token};

fn main() {
    let mut idle_points = vec![0usize, 1000, 5000, 10_000, 19_000];
    let mut rounds = 20_000usize;
    let mut reps = 3usize;
    let mut drivers: Vec<String> = BackendKind::available()
        .iter()
        .map(|k| k.name().to_string())
        .chain(["threads".to_string()])
        .collect();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match arg.as_str() {
            "--idle" => idle_points = value().split(',').map(|n| n.parse().unwrap()).collect(),
            "--rounds" => rounds = value().parse().unwrap(),
            "--reps" => reps = value().parse().unwrap(),
            "--drivers" => drivers = value().split(',').map(str::to_string).collect(),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    raise_fd_limit();
    println!("driver,idle,rep,ns_per_round");
    for rep in 1..=reps {
        for &idle in &idle_points {
            for driver in &drivers {
                let ns = match driver.as_str() {
                    "threads" => threads(idle, rounds / 4),
                    name => readiness(
                        BackendKind::from_name(name).expect("a backend"),
                        idle,
                        rounds,
                    ),
                };
                println!("{driver},{idle},{rep},{ns:.0}");
            }
        }
    }
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    (a, b)
}

/// Nanoseconds per round with `idle` idle descriptors registered.
fn readiness(kind: BackendKind, idle: usize, rounds: usize) -> f64 {
    let mut selector = kind.open().expect("open the selector");
    // Both ends of idle pairs are registered: `idle` descriptors, idle/2 pairs.
    let idle_pairs: Vec<_> = (0..idle.div_ceil(2)).map(|_| pair()).collect();
    let mut registered = 0;
    for (i, (a, b)) in idle_pairs.iter().enumerate() {
        for (j, end) in [a, b].into_iter().enumerate() {
            if registered < idle {
                selector
                    .register(end.as_raw_fd(), Token(2 * i + j), Interest::READABLE)
                    .unwrap();
                registered += 1;
            }
        }
    }
    let (mut busy, mut peer) = pair();
    let token = Token(usize::MAX / 2);
    selector
        .register(busy.as_raw_fd(), token, Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(64);
    let mut buf = [0u8; 16];
    let mut round = |selector: &mut Box<dyn portcullis::backends::Selector>| {
        peer.write_all(&[1]).unwrap();
        loop {
            selector.wait(&mut events, None).unwrap();
            if events.iter().any(|e| e.token == token) {
                break;
            }
        }
        let _ = busy.read(&mut buf).unwrap();
        selector
            .reregister(busy.as_raw_fd(), token, Interest::READABLE)
            .unwrap();
    };
    for _ in 0..(rounds / 10).min(100) {
        round(&mut selector);
    }
    let started = Instant::now();
    let mut done = 0;
    // Bounded in time too: poll at 19,000 descriptors is slow by design.
    while done < rounds && started.elapsed() < BUDGET {
        round(&mut selector);
        done += 1;
    }
    started.elapsed().as_nanos() as f64 / done as f64
}

/// The longest one point may take.
const BUDGET: Duration = Duration::from_secs(1);

/// Nanoseconds per round with `idle` threads asleep in `ppoll`.
#[cfg(target_os = "linux")]
fn threads(idle: usize, rounds: usize) -> f64 {
    use portcullis::engine::threads::wake::{self, WaitMask, Woken};

    // Every idle thread sleeps on the one idle socket (a descriptor each
    // would exceed the descriptor limit at 19,000 threads); it is woken
    // once, at the end, to let them all go.
    let (idle_end, mut idle_peer) = UnixStream::pair().unwrap();
    let idle_fd = idle_end.as_raw_fd();
    let most = portcullis::engine::threads::thread_budget();
    if idle > most {
        eprintln!(
            "wait_cost: threads: {idle} idle threads would exceed vm.max_map_count \
             (each thread maps a stack, a guard page and a signal stack): about {most} fit"
        );
        return f64::NAN;
    }
    let mut sleepers = Vec::with_capacity(idle);
    for _ in 0..idle {
        let spawned = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mask = WaitMask::block_in_this_thread().unwrap();
                while !matches!(
                    wake::wait(idle_fd, libc::POLLIN, None, &mask).unwrap(),
                    Woken::Ready(_)
                ) {}
            });
        match spawned {
            Ok(sleeper) => sleepers.push(sleeper),
            Err(err) => {
                // The machine's limit on threads (or on memory maps) is a
                // finding too: say where it was met, and measure nothing.
                eprintln!(
                    "wait_cost: threads: could not start idle thread {}: {err}",
                    sleepers.len() + 1
                );
                idle_peer.write_all(b"x").unwrap();
                for sleeper in sleepers {
                    sleeper.join().unwrap();
                }
                return f64::NAN;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(200)); // let them fall asleep

    // The busy connection's thread: wait, read, answer.
    let (mut server_end, mut client) = UnixStream::pair().unwrap();
    let responder = std::thread::spawn(move || {
        let mask = WaitMask::block_in_this_thread().unwrap();
        let mut buf = [0u8; 16];
        loop {
            wake::wait(server_end.as_raw_fd(), libc::POLLIN, None, &mask).unwrap();
            match server_end.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => server_end.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let mut buf = [0u8; 1];
    let mut round = || {
        client.write_all(&[1]).unwrap();
        client.read_exact(&mut buf).unwrap();
    };
    for _ in 0..rounds / 10 {
        round();
    }
    let started = Instant::now();
    let mut done = 0;
    while done < rounds && started.elapsed() < BUDGET {
        round();
        done += 1;
    }
    let ns = started.elapsed().as_nanos() as f64 / done as f64;
    drop(client);
    responder.join().unwrap();
    idle_peer.write_all(b"x").unwrap();
    for sleeper in sleepers {
        sleeper.join().unwrap();
    }
    drop(idle_end);
    ns
}

#[cfg(not(target_os = "linux"))]
fn threads(_: usize, _: usize) -> f64 {
    f64::NAN
}

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill, then to pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
