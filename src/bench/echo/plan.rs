//! What an echo run will do, worked out from the flags before any socket
//! is opened: the mode, each client's share, and what ends the run.
//!
//! The one idea: **a run ends on the bound the user gave.** `--messages`
//! bounds it when given, `--duration` when given, and with both the first
//! one reached wins. Only when neither is given does the mode choose, and
//! it chooses what the CppServer client it reproduces does: the original
//! client sends a fixed number of messages (1,000,000), today's runs for a
//! fixed time (10 seconds). A default bound must never silently cut short a
//! bound the user asked for.

use std::time::Duration;

use super::super::args::{EchoArgs, EchoMode};
use super::super::target::Target;

/// CppServer's original client: 1,000,000 messages in total (its -m).
pub const V1_DEFAULT_MESSAGES: u64 = 1_000_000;
/// CppServer's current client: 10 seconds (its -z).
pub const V2_DEFAULT_SECONDS: u64 = 10;
/// The shortest time limit: room for set-up and the last echoes.
const MIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed after --duration for what is in flight to come back.
const DRAIN_ALLOWANCE: Duration = Duration::from_secs(60);

/// What ends the sending: always at least one bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// This many messages in total, split across clients.
    Messages(u64),
    /// Sending stops after this long.
    Duration(Duration),
    /// Whichever comes first.
    Either(u64, Duration),
}

/// What every thread needs to know about the run.
pub struct Plan {
    pub target: Target,
    pub mode: EchoMode,
    pub clients: usize,
    pub threads: usize,
    pub bound: Bound,
    pub size: u64,
    /// Messages a client may have in flight: --window in cppserver-v2, one
    /// in pingpong. cppserver-v1 has no window (it never waits for echoes).
    pub window: u64,
    pub timeout: Duration,
}

impl Plan {
    /// Messages in total across clients, when bounded.
    pub fn messages(&self) -> Option<u64> {
        match self.bound {
            Bound::Messages(m) | Bound::Either(m, _) => Some(m),
            Bound::Duration(_) => None,
        }
    }

    /// How long clients send, when bounded.
    pub fn duration(&self) -> Option<Duration> {
        match self.bound {
            Bound::Duration(d) | Bound::Either(_, d) => Some(d),
            Bound::Messages(_) => None,
        }
    }

    /// Bytes client `index` is to send: its share of --messages (the total
    /// split evenly, the remainder one each to the first clients), or
    /// unbounded (`u64::MAX`) when only time bounds the run.
    pub fn goal_for(&self, index: usize) -> u64 {
        let Some(total) = self.messages() else {
            return u64::MAX;
        };
        let clients = self.clients as u64;
        let share = total / clients + u64::from((index as u64) < total % clients);
        share.saturating_mul(self.size)
    }

    /// One line for the report: what bounds the run.
    pub fn bounds(&self) -> String {
        match self.bound {
            Bound::Either(m, d) => format!(
                "{m} messages or {:.1} s, whichever comes first",
                d.as_secs_f64()
            ),
            Bound::Messages(m) => format!("{m} messages"),
            Bound::Duration(d) => format!("{:.1} s", d.as_secs_f64()),
        }
    }

    /// The mode, as the report describes it.
    pub fn mode_line(&self) -> String {
        match self.mode {
            EchoMode::CppserverV1 => {
                "cppserver-v1 (one message per completed write, never waiting for echoes)".into()
            }
            EchoMode::CppserverV2 => format!(
                "cppserver-v2 ({} messages in flight per client, one sent per echo)",
                self.window
            ),
            EchoMode::Pingpong => "pingpong (one message in flight per client)".into(),
        }
    }
}

pub fn plan(args: &EchoArgs) -> Result<Plan, String> {
    if args.clients == 0 || args.size == 0 || args.threads == 0 {
        return Err("--clients, --size and --threads must be at least 1".into());
    }
    if args.mode == EchoMode::CppserverV2 && args.window == 0 {
        return Err("--window must be at least 1 message".into());
    }
    if args.messages == Some(0) {
        return Err("--messages must be at least 1".into());
    }
    let target = Target::from_args(&args.target, false)?;
    let duration = args
        .duration
        .map(|d| super::super::seconds(d, "--duration"))
        .transpose()?;
    let timeout = args
        .timeout
        .map(|t| super::super::seconds(t, "--timeout"))
        .transpose()?;
    let bound = match (args.messages, duration) {
        (Some(m), Some(d)) => Bound::Either(m, d),
        (Some(m), None) => Bound::Messages(m),
        (None, Some(d)) => Bound::Duration(d),
        (None, None) if args.mode == EchoMode::CppserverV1 => Bound::Messages(V1_DEFAULT_MESSAGES),
        (None, None) => Bound::Duration(Duration::from_secs(V2_DEFAULT_SECONDS)),
    };
    let timeout = timeout.unwrap_or_else(|| match bound {
        Bound::Duration(d) | Bound::Either(_, d) => (d + DRAIN_ALLOWANCE).max(MIN_TIMEOUT),
        Bound::Messages(_) => MIN_TIMEOUT,
    });
    let window = match args.mode {
        EchoMode::CppserverV2 => args.window as u64,
        EchoMode::Pingpong => 1,
        // Never consulted: cppserver-v1 sends on write completions.
        EchoMode::CppserverV1 => u64::MAX,
    };
    Ok(Plan {
        target,
        mode: args.mode,
        clients: args.clients,
        threads: args.threads.min(args.clients),
        bound,
        size: args.size as u64,
        window,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        echo: EchoArgs,
    }

    fn plan_of(flags: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(std::iter::once("echo").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        plan(&cli.echo)
    }

    #[test]
    fn each_mode_defaults_to_the_bound_of_the_client_it_reproduces() {
        let v1 = plan_of(&["--mode", "cppserver-v1"]).unwrap();
        assert_eq!(v1.bound, Bound::Messages(V1_DEFAULT_MESSAGES));
        let ten = Duration::from_secs(V2_DEFAULT_SECONDS);
        for mode in ["cppserver-v2", "pingpong"] {
            assert_eq!(
                plan_of(&["--mode", mode]).unwrap().bound,
                Bound::Duration(ten)
            );
        }
        assert_eq!(plan_of(&[]).unwrap().mode, EchoMode::CppserverV2);
        assert_eq!(plan_of(&[]).unwrap().window, 1000);
    }

    #[test]
    fn a_bound_given_is_never_cut_short_by_a_default() {
        // --duration alone: no default message count applies, in any mode.
        let timed = plan_of(&["--mode", "cppserver-v1", "--duration", "5"]).unwrap();
        assert_eq!(timed.bound, Bound::Duration(Duration::from_secs(5)));
        assert_eq!(timed.goal_for(0), u64::MAX);
        // --messages alone: no default duration.
        let counted = plan_of(&["--messages", "500"]).unwrap();
        assert_eq!(counted.bound, Bound::Messages(500));
        // Both: whichever comes first.
        let both = plan_of(&["--messages", "500", "--duration", "2"]).unwrap();
        assert_eq!(both.bound, Bound::Either(500, Duration::from_secs(2)));
        assert_eq!(both.messages(), Some(500));
        assert_eq!(both.duration(), Some(Duration::from_secs(2)));
        // A long --duration gets a time limit beyond it.
        let long = plan_of(&["--duration", "300"]).unwrap();
        assert!(long.timeout > Duration::from_secs(300));
    }

    #[test]
    fn shares_split_the_total_with_the_remainder_going_first() {
        let p = plan_of(&["--messages", "10", "--clients", "4", "--size", "3"]).unwrap();
        let shares: Vec<u64> = (0..4).map(|i| p.goal_for(i) / 3).collect();
        assert_eq!(shares, [3, 3, 2, 2]);
    }

    #[test]
    fn meaningless_flags_are_refused() {
        assert!(plan_of(&["--window", "0"]).is_err());
        assert!(plan_of(&["--messages", "0"]).is_err());
        assert!(plan_of(&["--clients", "0"]).is_err());
        assert!(plan_of(&["--duration", "0"]).is_err());
        assert!(plan_of(&["--mode", "stream"]).is_err());
    }
}
