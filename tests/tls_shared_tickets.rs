//! Server processes on one port behind SO_REUSEPORT sharing ticket keys: a
//! client's ticket resumes whichever process the kernel hands the
//! connection to. Eight processes (`scripts/run-per-core.sh 8`) share a
//! configured key file; four (`--processes 4`) share the secret their
//! supervisor generates, with no file configured. Independent processes
//! with random keys, the control, resume a ticket only on the process that
//! issued it, about one time in four.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::tls::{dev_domains_toml, run, TempDir};
use common::BIN;

/// Starts the script with `config`; returns it and the shared address.
fn start_group(config: &str) -> (std::process::Child, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run-per-core.sh");
    let mut child = Command::new("bash")
        .args([script, "8", "--service", "echo", "--config", config])
        .args(["--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_BIN", BIN)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start run-per-core.sh");
    let addr = announced(&mut child, "portcullis: 8 processes on ");
    (child, addr)
}

/// The address after `marker` in the first stdout line that holds it.
fn announced(child: &mut std::process::Child, marker: &str) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the server ended early").unwrap();
        if let Some(rest) = line.split(marker).nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    }
}

/// `n` independent processes with `--reuse-port`, the way they were run
/// before the supervisor: each with keys of its own.
fn start_independent(n: usize, config: &str) -> (Vec<std::process::Child>, String) {
    let start = |listen: &str| {
        Command::new(BIN)
            .args([
                "serve",
                "--service",
                "echo",
                "--config",
                config,
                "--reuse-port",
            ])
            .args(["--listen", listen])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start portcullis")
    };
    let mut first = start("127.0.0.1:0");
    let addr = announced(&mut first, "listening on ");
    let mut children = vec![first];
    for _ in 1..n {
        let mut child = start(&addr);
        announced(&mut child, "listening on ");
        children.push(child);
    }
    (children, addr)
}

fn stop_group(mut child: std::process::Child) {
    // SAFETY: kill takes plain integers; the pid is the script we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

/// (resumed, offered but not resumed) for `version` against `addr`.
fn resumption(addr: &str, version: &str) -> (f64, f64) {
    let mut command = Command::new(BIN);
    command.args([
        "bench",
        "handshakes",
        "--addr",
        addr,
        "--phases",
        "resumed",
        "--tls-version",
        version,
        "--concurrency",
        "8",
        "--duration",
        "1.5",
    ]);
    let out = run(&mut command, b"", std::time::Duration::from_secs(30));
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line\n{}", out.all()));
    let field = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .parse()
            .unwrap()
    };
    let seconds = 1.5;
    (field("resumed_per_s") * seconds, field("not_resumed"))
}

#[test]
fn processes_sharing_a_ticket_key_file_resume_each_others_tickets() {
    let dir = TempDir::new("shared-tickets");
    portcullis::tls::KeyFile::generate(&dir.path.join("tickets.key")).unwrap();
    let shared = format!(
        "[tls]\nticket_key_file = \"tickets.key\"\n\n{}",
        dev_domains_toml()
    );
    let shared = dir.write("shared.toml", &shared).display().to_string();
    let alone = dir
        .write("alone.toml", &dev_domains_toml())
        .display()
        .to_string();

    let (group, addr) = start_group(&shared);
    let mut figures = Vec::new();
    for version in ["1.2", "1.3"] {
        let (resumed, missed) = resumption(&addr, version);
        let share = resumed / (resumed + missed);
        eprintln!(
            "shared key file, TLS {version}: {resumed:.0} resumed, {missed:.0} not ({share:.4})"
        );
        figures.push((version, resumed, missed, share));
    }
    stop_group(group);
    let (group, addr) = start_independent(4, &alone);
    let (resumed, missed) = resumption(&addr, "1.3");
    for child in group {
        stop_group(child);
    }
    let share_alone = resumed / (resumed + missed);
    eprintln!("random keys per process, TLS 1.3: {resumed:.0} resumed, {missed:.0} not ({share_alone:.4})");

    for (version, resumed, missed, share) in figures {
        assert!(
            resumed >= 100.0,
            "TLS {version}: too few handshakes to judge"
        );
        assert!(
            share >= 0.99,
            "TLS {version}: only {share:.4} of offered tickets resumed ({resumed} vs {missed})"
        );
    }
    assert!(
        share_alone < 0.5,
        "without a shared file {share_alone:.4} resumed: the test does not spread connections"
    );
}

/// The measure: with `--processes 4` and no key file configured,
/// at least 99 % of offered tickets resume, and the connections were spread
/// over the processes (their exit lines say how many each served).
#[test]
fn the_supervisors_worker_processes_share_its_ticket_secret() {
    let dir = TempDir::new("supervisor-tickets");
    let config = dir
        .write("dev.toml", &dev_domains_toml())
        .display()
        .to_string();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--processes",
            "4",
            "--service",
            "echo",
            "--config",
            &config,
        ])
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis --processes 4");
    let addr = announced(&mut child, "portcullis: 4 processes on ");
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        text
    });
    let mut figures = Vec::new();
    for version in ["1.2", "1.3"] {
        let (resumed, missed) = resumption(&addr, version);
        let share = resumed / (resumed + missed);
        eprintln!(
            "--processes 4, TLS {version}: {resumed:.0} resumed, {missed:.0} not ({share:.4})"
        );
        figures.push((version, resumed, missed, share));
    }
    stop_group(child);
    let log = log.join().unwrap();
    let serving = common::workers_that_served(&log);
    assert!(
        serving >= 2,
        "connections reached {serving} of 4 processes\n{log}"
    );
    for (version, resumed, missed, share) in figures {
        assert!(
            resumed >= 100.0,
            "TLS {version}: too few handshakes to judge"
        );
        assert!(
            share >= 0.99,
            "TLS {version}: only {share:.4} of offered tickets resumed ({resumed} vs {missed})"
        );
    }
}
