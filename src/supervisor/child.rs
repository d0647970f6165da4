//! Starting one worker process with its sockets at descriptors 3, 4, …
//!
//! The worker is this same binary running `serve` with the supervisor's own
//! arguments minus `--processes`, handed its listening sockets by the
//! socket-activation protocol (`net::socket_activation`). `LISTEN_PID` must
//! be the worker's pid, which exists only after `fork`; setting a variable
//! between `fork` and `exec` is not async-signal-safe (it may allocate), so
//! a shell sets it and `exec`s the worker, keeping its pid:
//! `sh -c 'LISTEN_PID=$$ exec "$0" "$@"' portcullis serve …`.
//!
//! The one idea: **between `fork` and `exec` only descriptor calls**. The
//! sockets are first duplicated above the target range (close-on-exec), so
//! moving them down to 3, 4, … cannot overwrite one not yet moved; `dup2`
//! then clears close-on-exec on the copy the worker keeps.

use std::ffi::OsString;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use crate::net::socket_activation::LISTEN_FDS_START;

/// The arguments after the program name, without `--processes N`
/// (`--processes=N` too), for the worker processes.
pub fn worker_arguments(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args.into_iter().skip(1) {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg == "--processes" {
            skip_value = true;
            continue;
        }
        if arg.to_str().is_some_and(|a| a.starts_with("--processes=")) {
            continue;
        }
        out.push(arg);
    }
    out
}

/// Starts `program ARGS` with `sockets` at descriptors 3, 4, … and the
/// variables that describe them, plus `env`.
pub fn spawn(
    program: &Path,
    args: &[OsString],
    sockets: &[Arc<TcpListener>],
    env: &[(&str, OsString)],
) -> io::Result<Child> {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(program)
        .args(args)
        .env("LISTEN_FDS", sockets.len().to_string())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let sources: Vec<RawFd> = sockets.iter().map(|s| s.as_raw_fd()).collect();
    // Allocated before fork: the child only writes into it.
    let mut parked: Vec<RawFd> = vec![-1; sources.len()];
    let above = LISTEN_FDS_START + sources.len() as RawFd;
    // SAFETY: the closure runs between fork and exec and calls only fcntl,
    // dup2 and prctl (async-signal-safe) on descriptors this process owns,
    // writing into `parked`, which was allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            for (i, &fd) in sources.iter().enumerate() {
                parked[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above);
                if parked[i] < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (i, &fd) in parked.iter().enumerate() {
                if libc::dup2(fd, LISTEN_FDS_START + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // A supervisor killed outright (SIGKILL, OOM) cannot forward
            // anything: have the kernel ask its workers to drain instead.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_processes_flag_is_dropped_and_everything_else_kept() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            worker_arguments(args(&[
                "portcullis",
                "serve",
                "--processes",
                "4",
                "--listen",
                "127.0.0.1:0",
                "--processes=auto",
                "--no-tls"
            ])),
            args(&["serve", "--listen", "127.0.0.1:0", "--no-tls"])
        );
    }
}
