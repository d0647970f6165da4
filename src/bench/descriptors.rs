//! How many sockets `bench connections` may hold, worked out before the
//! first connect: this process's open-file limit (RLIMIT_NOFILE), raised
//! as far as it may go, and the server's, read from `/proc/PID/limits`.
//!
//! A process may raise its soft limit up to its hard limit without any
//! privilege, so the bench does that itself rather than asking for
//! `ulimit -n`. What it cannot do is go past the hard limit, or raise the
//! server's: then it says exactly how many connections fit, and why.
//!
//! The one idea: **a limit found before the run is a sentence; found during
//! it, eighteen thousand errors.** At the usual soft limit of 1,024, a run
//! of 19,000 connections used to fail 18,040 of them one by one.

use std::io;

/// Descriptors kept free in each process for the selector, stdio and pipes
/// (the server keeps the same reserve below its own limit).
pub const RESERVE: u64 = 64;

/// This process's open-file limit, after trying to raise it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The soft limit found at start.
    pub found: u64,
    /// The soft limit now (the hard limit, when raising worked).
    pub soft: u64,
    pub hard: u64,
}

impl Budget {
    /// Sockets one bench process may hold.
    pub fn per_process(&self) -> usize {
        self.soft.saturating_sub(RESERVE).max(1) as usize
    }

    /// The one-line account of the limit, for stderr: what was raised, or
    /// why it could not be.
    pub fn account(&self) -> String {
        let why = format!(
            "{} per process: the open-file limit (RLIMIT_NOFILE) of {} less {RESERVE} kept for \
             the reactor, stdio and pipes",
            self.per_process(),
            self.soft
        );
        if self.soft > self.found {
            format!(
                "raised the open-file soft limit from {} to the hard limit {}; {why}",
                self.found, self.soft
            )
        } else {
            format!("{why} (the hard limit; only root can raise it: ulimit -Hn, or LimitNOFILE= under systemd)")
        }
    }

    /// The error for `--per-process N` beyond what a process may hold.
    pub fn refusal(&self, wanted: usize) -> String {
        format!(
            "--per-process {wanted}: a bench process may hold only {} connections (open-file \
             limit {}, hard limit {}, less {RESERVE} reserved); lower --per-process, or raise \
             the hard limit as root (ulimit -Hn)",
            self.per_process(),
            self.soft,
            self.hard
        )
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (or to the kernel's
/// `fs.nr_open` when the hard limit is unlimited) and reports the result.
/// Child processes started afterwards inherit the raised limit.
pub fn raise_soft_limit() -> io::Result<Budget> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer for getrlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let found = finite(limit.rlim_cur);
    let hard = finite(limit.rlim_max);
    if found >= hard {
        return Ok(Budget {
            found,
            soft: found,
            hard,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: hard as libc::rlim_t,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the
    // hard one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Budget {
        found,
        soft: hard,
        hard,
    })
}

/// RLIM_INFINITY as the most a process can actually open: `fs.nr_open`.
// rlim_t is u64 on Linux and macOS but i64 on FreeBSD: the cast is not
// redundant everywhere.
#[allow(clippy::unnecessary_cast)]
fn finite(value: libc::rlim_t) -> u64 {
    if value == libc::RLIM_INFINITY {
        nr_open()
    } else {
        value as u64
    }
}

fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// Connections the server processes `pids` can accept at most, by their
/// open-file soft limits less the server's reserve; `None` when a limit
/// cannot be read (not Linux, or not ours to see).
pub fn server_room(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
            parse_open_files(&text).map(|soft| soft.saturating_sub(RESERVE))
        })
        .sum()
}

/// The soft "Max open files" of a `/proc/PID/limits` text.
fn parse_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(nr_open()),
        number => number.parse().ok(),
    }
}

/// The warning when `count` connections exceed what the server can accept.
pub fn server_warning(pids: &[u32], room: u64, count: usize) -> Option<String> {
    let count = count as u64;
    (count > room).then(|| {
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        format!(
            "the server (pid {}) can accept about {room} connections by its open-file limit, so \
             about {} of the {count} will be refused; start it after `ulimit -n {}` (or raise \
             it live: prlimit --pid PID --nofile=N)",
            list.join(", "),
            count - room,
            count + RESERVE
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let budget = raise_soft_limit().expect("getrlimit");
        assert_eq!(budget.soft, budget.hard);
        assert!(budget.soft >= budget.found);
        // Raising again changes nothing.
        let again = raise_soft_limit().expect("getrlimit");
        assert_eq!(again.found, again.soft);
    }

    #[test]
    fn accounts_say_how_many_and_why() {
        let stuck = Budget {
            found: 1024,
            soft: 1024,
            hard: 1024,
        };
        assert_eq!(stuck.per_process(), 960);
        assert!(
            stuck.account().contains("960 per process"),
            "{}",
            stuck.account()
        );
        assert!(stuck.account().contains("ulimit -Hn"));
        assert!(stuck.refusal(10_000).contains("only 960"));
        let raised = Budget {
            found: 1024,
            soft: 524_288,
            hard: 524_288,
        };
        assert!(raised
            .account()
            .starts_with("raised the open-file soft limit from 1024"));
    }

    #[test]
    fn the_server_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files(text), Some(1024));
        let own = server_room(&[std::process::id()]).expect("our own limits");
        assert!(own > 0);
        let warning = server_warning(&[42], 960, 19_000).expect("too many");
        assert!(warning.contains("about 18040 of the 19000"), "{warning}");
        assert!(server_warning(&[42], 960, 900).is_none());
    }
}
