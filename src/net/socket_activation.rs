//! Listening sockets handed over by whoever started us: systemd socket
//! activation, or `portcullis serve --processes N`'s supervisor.
//!
//! The protocol (systemd's `sd_listen_fds`, done by hand: it is a few
//! environment variables): `LISTEN_FDS=n` says descriptors 3 to 3+n-1 are
//! listening sockets; `LISTEN_PID` must be our own pid, or the variables
//! were meant for a parent and were inherited by mistake; `LISTEN_FDNAMES`
//! optionally names them, colon-separated. We then set close-on-exec on each
//! (they arrive without it, so that exec could pass them on) and remove the
//! variables, so nothing we start believes they are its own.
//!
//! The one idea: **the sockets exist before the process does**, so a
//! restart never closes the port: connections queue in the kernel while
//! the process is away, and are served when it is back. That is why the
//! supervisor binds the sockets itself and passes them to each worker
//! process it starts or restarts.
//!
//! The sockets are taken from the environment once per process and kept
//! (see [`inherited`]): a reload asks again and must get the same answer.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::{Arc, OnceLock};

/// The first inherited descriptor (after stdin, stdout and stderr).
pub const LISTEN_FDS_START: RawFd = 3;

/// One listening socket passed to us.
#[derive(Debug, Clone)]
pub struct Inherited {
    pub socket: Arc<TcpListener>,
    pub local: SocketAddr,
    /// Its `LISTEN_FDNAMES` entry, if one was given.
    pub name: Option<String>,
    pub fd: RawFd,
}

/// The sockets passed to this process, taken from the environment on the
/// first call (which also removes the variables); the same list on every
/// later call. Call it before starting threads: it edits the environment.
pub fn inherited() -> Result<&'static [Inherited], String> {
    static TAKEN: OnceLock<Result<Vec<Inherited>, String>> = OnceLock::new();
    match TAKEN.get_or_init(take_from_env) {
        Ok(list) => Ok(list),
        Err(err) => Err(err.clone()),
    }
}

fn take_from_env() -> Result<Vec<Inherited>, String> {
    let fds = std::env::var("LISTEN_FDS").ok();
    let pid = std::env::var("LISTEN_PID").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    if fds.is_none() {
        return Ok(Vec::new());
    }
    // Whatever they said, they are not for anything we start.
    for key in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(key);
    }
    let parsed = parse(fds.as_deref(), pid.as_deref(), std::process::id())?;
    let names: Vec<&str> = names
        .as_deref()
        .map_or(Vec::new(), |n| n.split(':').collect());
    (0..parsed)
        .map(|i| {
            let fd = LISTEN_FDS_START + i as RawFd;
            adopt(
                fd,
                names
                    .get(i)
                    .filter(|n| !n.is_empty())
                    .map(|n| n.to_string()),
            )
        })
        .collect()
}

/// How many descriptors `LISTEN_FDS` passes to process `own_pid`: 0 when
/// `LISTEN_PID` names another process (the variables were inherited, not
/// meant for us).
pub fn parse(fds: Option<&str>, pid: Option<&str>, own_pid: u32) -> Result<usize, String> {
    let Some(fds) = fds else { return Ok(0) };
    let Some(pid) = pid else {
        return Err("LISTEN_FDS is set but LISTEN_PID is not: both are needed".into());
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID: `{pid}` is not a process id"))?;
    if pid != own_pid {
        log::warn!("LISTEN_FDS is for process {pid}, not this one ({own_pid}): ignored");
        return Ok(0);
    }
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS: `{fds}` is not a number of descriptors"))?;
    if count > 1024 {
        return Err(format!("LISTEN_FDS: {count} descriptors is not plausible"));
    }
    Ok(count)
}

/// Checks that `fd` is a listening TCP socket and takes ownership of it.
fn adopt(fd: RawFd, name: Option<String>) -> Result<Inherited, String> {
    let what = match &name {
        Some(name) => format!("LISTEN_FDS: descriptor {fd} ({name})"),
        None => format!("LISTEN_FDS: descriptor {fd}"),
    };
    // SAFETY: fcntl on an integer descriptor touches no memory of ours; an
    // fd that is not open makes it fail with EBADF, which we report.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(format!("{what}: {}", io::Error::last_os_error()));
    }
    let listening = int_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)
        .map_err(|e| format!("{what}: not a socket: {e}"))?;
    let kind = int_option(fd, libc::SOL_SOCKET, libc::SO_TYPE)
        .map_err(|e| format!("{what}: not a socket: {e}"))?;
    if kind != libc::SOCK_STREAM || listening == 0 {
        return Err(format!("{what}: not a listening TCP socket"));
    }
    // SAFETY: as above; FD_CLOEXEC keeps it from leaking into what we exec.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(format!("{what}: {}", io::Error::last_os_error()));
    }
    // SAFETY: the protocol hands descriptors 3..3+n to this process alone,
    // and `inherited` takes them once, so nothing else owns or closes `fd`.
    let socket = unsafe { TcpListener::from_raw_fd(fd) };
    let local = socket
        .local_addr()
        .map_err(|e| format!("{what}: not a TCP socket: {e}"))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(Inherited {
        socket: Arc::new(socket),
        local,
        name,
        fd,
    })
}

fn int_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes getsockopt is
    // told; a bad fd makes the call fail rather than touch anything else.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an inherited socket bound to `local` serves a listener
/// configured at `configured`: same address, where a configured port 0
/// matches any port (the launcher picked it).
pub fn serves(configured: SocketAddr, local: SocketAddr) -> bool {
    configured.ip() == local.ip() && (configured.port() == 0 || configured.port() == local.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_are_for_one_process_only() {
        assert_eq!(parse(None, None, 7), Ok(0));
        assert_eq!(parse(Some("2"), Some("7"), 7), Ok(2));
        assert_eq!(
            parse(Some("2"), Some("8"), 7),
            Ok(0),
            "meant for another pid"
        );
        assert!(parse(Some("2"), None, 7)
            .unwrap_err()
            .contains("LISTEN_PID"));
        assert!(parse(Some("x"), Some("7"), 7)
            .unwrap_err()
            .contains("LISTEN_FDS"));
        assert!(parse(Some("2"), Some("me"), 7)
            .unwrap_err()
            .contains("LISTEN_PID"));
    }

    #[test]
    fn a_configured_port_zero_matches_any_port_on_its_address() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(serves(at("127.0.0.1:0"), at("127.0.0.1:9000")));
        assert!(serves(at("127.0.0.1:9000"), at("127.0.0.1:9000")));
        assert!(!serves(at("127.0.0.1:9001"), at("127.0.0.1:9000")));
        assert!(!serves(at("127.0.0.2:0"), at("127.0.0.1:9000")));
    }

    #[test]
    fn a_descriptor_that_is_not_a_listening_socket_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        use std::os::fd::AsRawFd;
        let err = int_option(client.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ACCEPTCONN).unwrap();
        assert_eq!(err, 0, "a connected socket does not listen");
        assert_ne!(
            int_option(listener.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ACCEPTCONN).unwrap(),
            0
        );
    }
}
