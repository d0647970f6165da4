//! The few operating-system knobs a load generator needs: CPU pinning, the
//! ephemeral port range, "is stderr a terminal", and a stop flag raised by
//! SIGINT/SIGTERM. (The descriptor limit has a module of its own,
//! [`super::descriptors`].)
//!
//! The one idea: **a benchmark must know the limits of the machine it runs
//! on** — how many sockets one process may hold, how many source ports one
//! address has — and plan around them instead of discovering them as errors
//! halfway through a run.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Pins the calling thread, and every thread it starts afterwards, to the
/// given CPUs. Call it before spawning workers: threads inherit the mask.
pub fn pin_to_cpus(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array; all-zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let capacity = 8 * std::mem::size_of::<libc::cpu_set_t>();
    for &cpu in cpus {
        if cpu >= capacity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is beyond the {capacity} a cpu_set_t can name"),
            ));
        }
        // SAFETY: `cpu` is below the set's capacity (checked above), which is
        // the only requirement of CPU_SET.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 means the calling thread; `set` is a valid cpu_set_t of
    // the size passed, and the kernel only reads it.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Parses `--pin` values: `1`, `0,1` or `0-3`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("--pin: `{part}` is not a CPU number or range (e.g. 1, 0,1 or 0-3)");
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: usize = lo.trim().parse().map_err(|_| bad())?;
                let hi: usize = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err("--pin: no CPU given".to_string());
    }
    Ok(cpus)
}

/// How many ephemeral ports one source address has (Linux's
/// `ip_local_port_range`; the Linux default when it cannot be read).
pub fn ephemeral_ports() -> usize {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse::<usize>());
    match (fields.next(), fields.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if hi >= lo => hi - lo + 1,
        _ => 60_999 - 32_768 + 1,
    }
}

/// Whether stderr is a terminal, i.e. whether a `\r` progress line makes sense.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(libc::STDERR_FILENO) == 1 }
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // Only an atomic store: the one kind of work a signal handler may do.
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM raise [`stop_requested`] instead of killing the
/// process, so a holder of thousands of connections can close them in an
/// orderly way (and report) when a script stops it.
pub fn catch_stop_signals() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is given a zeroed struct with a valid handler
        // address; the handler only stores to an atomic, which is
        // async-signal-safe. No SA_RESTART, so a blocked wait returns EINTR
        // and the loop sees the flag at once.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`catch_stop_signals`].
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_singles_lists_and_ranges() {
        assert_eq!(parse_cpu_list("1").unwrap(), vec![1]);
        assert_eq!(parse_cpu_list("0,1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn limits_are_plausible() {
        assert!(ephemeral_ports() > 0);
    }
}
