//! `[admin]` in the config file, and the checks it gets at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::access::{AccessPolicy, Token};

/// `[admin]`: the admin port (metrics, stats, run-time limits). Off unless
/// an address is given here or with `--admin`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where to serve it, e.g. `127.0.0.1:9090`. Never a listener's port.
    pub address: Option<SocketAddr>,
    /// A file holding the token that state-changing requests must send as
    /// `Authorization: Bearer <token>`. Mode 0600.
    pub token_file: Option<PathBuf>,
    /// Serve peers other than loopback. Default: false.
    #[serde(default)]
    pub allow_remote: bool,
}

impl AdminConfig {
    /// Makes a relative token path relative to the config file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(file) = &mut self.token_file {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
    }

    /// The access rules, reading the token file. Errors name the file, the
    /// key and the problem.
    pub fn access(&self, origin: &str) -> Result<AccessPolicy, String> {
        let token = match &self.token_file {
            Some(path) => {
                Some(Token::read(path).map_err(|e| format!("{origin}: admin.token_file: {e}"))?)
            }
            None => None,
        };
        Ok(AccessPolicy {
            allow_remote: self.allow_remote,
            token,
        })
    }
}

/// Refuses an admin address that would share a port with a listener: the
/// admin API must never be reachable on the public port.
pub fn check_apart(admin: SocketAddr, listeners: &[SocketAddr], key: &str) -> Result<(), String> {
    if admin.port() == 0 {
        return Ok(());
    }
    for (i, listener) in listeners.iter().enumerate() {
        let overlap = admin.ip() == listener.ip()
            || admin.ip().is_unspecified()
            || listener.ip().is_unspecified();
        if admin.port() == listener.port() && overlap {
            return Err(format!(
                "{key}: {admin} is the port of listener {i} ({listener}); the admin port \
                 must be a port of its own"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_port_must_not_be_a_listeners_port() {
        let l: Vec<SocketAddr> = vec!["0.0.0.0:8443".parse().unwrap()];
        let err = check_apart("127.0.0.1:8443".parse().unwrap(), &l, "--admin").unwrap_err();
        assert!(
            err.starts_with("--admin: ") && err.contains("listener 0"),
            "{err}"
        );
        assert!(check_apart("127.0.0.1:9090".parse().unwrap(), &l, "--admin").is_ok());
        assert!(check_apart("127.0.0.1:0".parse().unwrap(), &l, "--admin").is_ok());
    }
}
