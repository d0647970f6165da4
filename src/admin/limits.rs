//! `POST /limits`: limits changed while the server runs (eSockd's
//! `set_max_clients`).
//!
//! The body is what `portcullis limits set` takes on its command line:
//! `key=value` pairs separated by `&`, spaces or newlines:
//! `max_connections=N` changes the global limit, and with
//! `listener=INDEX|ADDRESS` the limit of that listener instead (`unlimited`
//! lifts a listener's own limit). The one idea: **a lower limit applies to
//! admission, never to connections already open** — workers compare the
//! count of open connections with the limits only when a new connection
//! arrives (`Env::admit`), so lowering one below the number open refuses
//! newcomers until enough of the open ones have ended by themselves.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::engine::edge::limits::UNLIMITED;
use crate::engine::Shared;

/// The limits in force, as `GET /limits` and `POST /limits` answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u64,
    pub open_connections: u64,
    pub listeners: Vec<ListenerLimit>,
}

/// One listener's own limit (`None`: none of its own, the global applies).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListenerLimit {
    pub index: usize,
    pub address: String,
    pub max_connections: Option<u64>,
    pub open_connections: u64,
}

impl Limits {
    pub fn read(shared: &Shared) -> Limits {
        Limits {
            max_connections: shared.max_connections.load(Ordering::Relaxed) as u64,
            open_connections: shared.open_connections.load(Ordering::Relaxed) as u64,
            listeners: shared
                .listeners
                .iter()
                .enumerate()
                .map(|(index, l)| ListenerLimit {
                    index,
                    address: l.local.to_string(),
                    max_connections: match l.max_connections.load(Ordering::Relaxed) {
                        UNLIMITED => None,
                        n => Some(n as u64),
                    },
                    open_connections: l.open() as u64,
                })
                .collect(),
        }
    }
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The new limit; `None` lifts a listener's own limit.
    pub max_connections: Option<usize>,
    /// `None`: the global limit; otherwise a listener's index or address.
    pub listener: Option<String>,
}

/// Parses `key=value` pairs; errors name the key and the problem.
pub fn parse(body: &str) -> Result<Change, String> {
    let mut max_connections = None;
    let mut listener = None;
    for pair in body
        .split(|c: char| c == '&' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("`{pair}`: expected key=value"));
        };
        match key {
            "max_connections" if value == "unlimited" => max_connections = Some(None),
            "max_connections" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("max_connections: `{value}` is not a whole number"))?;
                if n == 0 {
                    return Err("max_connections: must be at least 1".into());
                }
                max_connections = Some(Some(n));
            }
            "listener" if !value.is_empty() => listener = Some(value.to_string()),
            other => {
                return Err(format!(
                    "`{other}`: unknown limit; what can change at run time is \
                     max_connections, globally or for one listener=INDEX|ADDRESS"
                ))
            }
        }
    }
    let Some(max_connections) = max_connections else {
        return Err("nothing to change: give max_connections=N".into());
    };
    if max_connections.is_none() && listener.is_none() {
        return Err("max_connections: `unlimited` is for one listener (listener=…)".into());
    }
    Ok(Change {
        max_connections,
        listener,
    })
}

/// Applies `change`; returns a log line describing it, or why it cannot
/// apply.
pub fn apply(shared: &Shared, change: &Change) -> Result<String, String> {
    let Some(which) = &change.listener else {
        let n = change.max_connections.unwrap_or(UNLIMITED);
        check_client_tables(shared, None, n)?;
        let before = shared.max_connections.swap(n, Ordering::Relaxed);
        return Ok(format!("max_connections {before} -> {n}"));
    };
    let index = shared
        .listeners
        .iter()
        .enumerate()
        .find(|(i, l)| i.to_string() == *which || l.local.to_string() == *which)
        .map(|(i, _)| i)
        .ok_or_else(|| {
            format!(
                "listener: no listener `{which}`; give its index (0 to {}) or its address",
                shared.listeners.len().saturating_sub(1)
            )
        })?;
    let n = change.max_connections.unwrap_or(UNLIMITED);
    check_client_tables(shared, Some(index), n)?;
    let limits = &shared.listeners[index];
    let before = limits.max_connections.swap(n, Ordering::Relaxed);
    let show = |n: usize| match n {
        UNLIMITED => "unlimited".to_string(),
        n => n.to_string(),
    };
    Ok(format!(
        "listener {index} ({}) max_connections {} -> {}",
        limits.local,
        show(before),
        show(n)
    ))
}

/// A listener with per-client limits keeps a table sized, at start-up, for
/// the connections it could hold then; it must stay larger than what it
/// can hold (see `engine::edge::clients`). Refuses a change that would
/// break that for any listener, naming the listener.
fn check_client_tables(
    shared: &Shared,
    changing: Option<usize>,
    new_max: usize,
) -> Result<(), String> {
    let global = match changing {
        None => new_max,
        Some(_) => shared.max_connections.load(Ordering::Relaxed),
    };
    for (i, l) in shared.listeners.iter().enumerate() {
        let Some(capacity) = l.client_capacity() else {
            continue;
        };
        let own = match changing {
            Some(index) if index == i => new_max,
            _ => l.max_connections.load(Ordering::Relaxed),
        };
        let holds = own.min(global);
        if holds >= capacity {
            return Err(format!(
                "max_connections: listener {i} ({}) keeps per-client limits in a table \
                 sized for fewer than {capacity} connections; a limit of {holds} there \
                 needs a restart",
                l.local
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::edge::ListenerLimits;
    use std::sync::Arc;

    fn shared() -> Shared {
        let a = Arc::new(ListenerLimits::unlimited("127.0.0.1:1".parse().unwrap()));
        let b = Arc::new(ListenerLimits::new(
            "127.0.0.1:2".parse().unwrap(),
            Some(10),
            Some(2),
            None,
            100,
        ));
        Shared::with_listeners(50, vec![a, b])
    }

    #[test]
    fn pairs_parse_and_mistakes_name_the_key() {
        assert_eq!(
            parse("max_connections=12\n").unwrap(),
            Change {
                max_connections: Some(12),
                listener: None
            }
        );
        assert_eq!(
            parse("max_connections=3&listener=127.0.0.1:2").unwrap(),
            Change {
                max_connections: Some(3),
                listener: Some("127.0.0.1:2".into())
            }
        );
        assert!(parse("max_connections=0")
            .unwrap_err()
            .contains("at least 1"));
        assert!(parse("max_connections=lots")
            .unwrap_err()
            .contains("max_connections"));
        assert!(parse("max_conns=3").unwrap_err().contains("max_conns"));
        assert!(parse("").unwrap_err().contains("nothing to change"));
        assert!(parse("max_connections=unlimited")
            .unwrap_err()
            .contains("one listener"));
    }

    #[test]
    fn changes_apply_globally_or_to_one_listener() {
        let shared = shared();
        let change = |body: &str| apply(&shared, &parse(body).unwrap());
        assert_eq!(
            change("max_connections=9").unwrap(),
            "max_connections 50 -> 9"
        );
        assert_eq!(
            change("max_connections=5 listener=0").unwrap(),
            "listener 0 (127.0.0.1:1) max_connections unlimited -> 5"
        );
        assert_eq!(
            change("max_connections=unlimited listener=127.0.0.1:1").unwrap(),
            "listener 0 (127.0.0.1:1) max_connections 5 -> unlimited"
        );
        let limits = Limits::read(&shared);
        assert_eq!(limits.max_connections, 9);
        assert_eq!(limits.listeners[0].max_connections, None);
        assert_eq!(limits.listeners[1].max_connections, Some(10));
        assert!(change("max_connections=5 listener=7")
            .unwrap_err()
            .contains("no listener `7`"));
    }

    #[test]
    fn a_per_client_table_bounds_how_far_a_limit_may_rise() {
        let shared = shared();
        let change = |body: &str| apply(&shared, &parse(body).unwrap());
        // Listener 1 tracks clients in a table of 100 entries; its own
        // limit of 10 holds it below that whatever the global limit.
        assert!(change("max_connections=5000").is_ok());
        assert!(change("max_connections=99 listener=1").is_ok());
        let err = change("max_connections=100 listener=1").unwrap_err();
        assert!(
            err.contains("listener 1") && err.contains("restart"),
            "{err}"
        );
        assert!(change("max_connections=unlimited listener=1").is_err());
        // With a global limit below the table, unlimited there is fine...
        assert!(change("max_connections=60").is_ok());
        assert!(change("max_connections=unlimited listener=1").is_ok());
        // ...and then the global limit may not rise past the table.
        let err = change("max_connections=5000").unwrap_err();
        assert!(err.contains("listener 1"), "{err}");
        assert_eq!(Limits::read(&shared).max_connections, 60);
    }
}
