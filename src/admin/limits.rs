//! `POST /limits`: limits changed while the server runs (eSockd's
//! `set_max_clients`).
//!
//! The body is what `portcullis limits set` takes on its command line:
//! `key=value` pairs separated by `&`, spaces or newlines. Today the one
//! key is the global `max_connections`. The one idea: **a lower limit
//! applies to admission, never to connections already open** — workers
//! compare the count of open connections with the limit only when a new
//! connection arrives (`Env::admit`), so lowering it below the number open
//! refuses newcomers until enough of the open ones have ended by
//! themselves.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::engine::Shared;

/// The limits in force, as `GET /limits` and `POST /limits` answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u64,
    pub open_connections: u64,
}

impl Limits {
    pub fn read(shared: &Shared) -> Limits {
        Limits {
            max_connections: shared.max_connections.load(Ordering::Relaxed) as u64,
            open_connections: shared.open_connections.load(Ordering::Relaxed) as u64,
        }
    }
}

/// One change a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    MaxConnections(usize),
}

/// Parses `key=value` pairs; errors name the key and the problem.
pub fn parse(body: &str) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    for pair in body
        .split(|c: char| c == '&' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("`{pair}`: expected key=value"));
        };
        match key {
            "max_connections" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("max_connections: `{value}` is not a whole number"))?;
                if n == 0 {
                    return Err("max_connections: must be at least 1".into());
                }
                changes.push(Change::MaxConnections(n));
            }
            other => {
                return Err(format!(
                    "`{other}`: unknown limit; the one that can change at run time is \
                     max_connections"
                ))
            }
        }
    }
    if changes.is_empty() {
        return Err("nothing to change: give max_connections=N".into());
    }
    Ok(changes)
}

/// Applies `changes`; returns a log line describing them.
pub fn apply(shared: &Shared, changes: &[Change]) -> String {
    let mut described = Vec::new();
    for change in changes {
        match *change {
            Change::MaxConnections(n) => {
                let before = shared.max_connections.swap(n, Ordering::Relaxed);
                described.push(format!("max_connections {before} -> {n}"));
            }
        }
    }
    described.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_and_mistakes_name_the_key() {
        assert_eq!(
            parse("max_connections=12\n").unwrap(),
            vec![Change::MaxConnections(12)]
        );
        assert!(parse("max_connections=0")
            .unwrap_err()
            .contains("at least 1"));
        assert!(parse("max_connections=lots")
            .unwrap_err()
            .contains("max_connections"));
        assert!(parse("max_conns=3").unwrap_err().contains("max_conns"));
        assert!(parse("").unwrap_err().contains("nothing to change"));
        let shared = Shared::new(5);
        assert_eq!(
            apply(&shared, &[Change::MaxConnections(9)]),
            "max_connections 5 -> 9"
        );
        assert_eq!(Limits::read(&shared).max_connections, 9);
    }
}
