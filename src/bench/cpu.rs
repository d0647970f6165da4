//! What the processes cost: CPU time of the server (from `/proc/PID/stat`)
//! and of the load generator itself (`getrusage`), and resident memory
//! (`/proc/PID/status`).
//!
//! The one idea: **on a small machine, throughput compares the load
//! generator as much as the server; CPU time per message compares the
//! server.** When client and server share two cores, whichever saturates
//! its core first sets the messages per second. The server's own CPU time
//! divided by the messages it handled does not depend on who was faster, so
//! it is the figure that ranks backends fairly.

use std::io;
use std::time::{Duration, Instant};

/// Clock ticks per second, the unit of `/proc/PID/stat`'s utime and stime.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100 // the value on every Linux in practice
    }
}

/// User plus system CPU time consumed so far by process `pid`.
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu(&stat, clock_ticks_per_second()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: unexpected format"),
        )
    })
}

/// utime + stime from a `/proc/PID/stat` line. The command name (field 2)
/// is in parentheses and may itself contain spaces and parentheses, so the
/// fields are counted from the *last* `)`.
fn parse_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state(3) ppid(4) ... cmajflt(13) utime(14) stime(15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1),
    ))
}

/// User plus system CPU time of this process, all threads.
pub fn own_cpu() -> Duration {
    // SAFETY: all-zeroes is a valid rusage; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time of a server made of one or more processes, added up; `None`
/// when there is none or one cannot be read.
pub fn servers_cpu(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| process_cpu(pid).ok()).sum()
}

/// Resident memory of one or more server processes, added up.
pub fn servers_resident_bytes(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| resident_bytes(pid).ok()).sum()
}

/// Resident set size of process `pid`, in bytes (`VmRSS`).
pub fn resident_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/proc/{pid}/status: no VmRSS"),
            )
        })
}

/// CPU clocks at one instant: wall, our own, and the server's when known.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    at: Instant,
    own: Duration,
    server: Option<Duration>,
}

impl Snapshot {
    /// Reads the clocks now. A server that cannot be read (exited, or not
    /// ours to see) gives `None` rather than failing the run.
    pub fn take(server_pids: &[u32]) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            own: own_cpu(),
            server: servers_cpu(server_pids),
        }
    }

    /// What was spent between `self` (earlier) and `later`.
    pub fn until(&self, later: &Snapshot) -> Usage {
        Usage {
            wall: later.at.saturating_duration_since(self.at),
            own: later.own.saturating_sub(self.own),
            server: match (self.server, later.server) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            },
        }
    }
}

/// Time spent over a measured interval.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub wall: Duration,
    pub own: Duration,
    pub server: Option<Duration>,
}

impl Usage {
    /// Our CPU time as a percentage of one core over the interval (above 100
    /// with several threads).
    pub fn client_cpu_percent(&self) -> f64 {
        percent(self.own, self.wall)
    }

    pub fn server_cpu_percent(&self) -> Option<f64> {
        self.server.map(|s| percent(s, self.wall))
    }

    /// Server CPU nanoseconds per unit of work (message, handshake).
    pub fn server_ns_per(&self, units: u64) -> Option<f64> {
        let server = self.server?;
        (units > 0).then(|| server.as_nanos() as f64 / units as f64)
    }
}

fn percent(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        100.0 * part.as_secs_f64() / whole.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn our_own_process_can_be_read_both_ways() {
        let pid = std::process::id();
        assert!(process_cpu(pid).is_ok());
        assert!(resident_bytes(pid).unwrap() > 0);
        let _ = own_cpu();
    }
}
