//! Who may use the admin port, and what for.
//!
//! Two rules, checked in this order:
//!
//! 1. **Peers.** Only loopback peers are served unless the config says
//!    `allow_remote = true`; anyone else gets `403` before a byte of their
//!    request is read.
//! 2. **Changes.** A request that changes state (`POST`) must carry
//!    `Authorization: Bearer <token>` when `token_file` is configured. With
//!    no token configured, only loopback peers may change anything.
//!
//! The one idea: **compare secrets in constant time**. The token is checked
//! with OpenSSL's `CRYPTO_memcmp` over SHA-256 digests of both sides, so
//! neither the position of the first wrong byte nor the token's length
//! shows in the time a refusal takes.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A secret the admin API compares requests against.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn new(secret: &[u8]) -> Token {
        Token {
            digest: openssl::sha::sha256(secret),
        }
    }

    /// Reads a token file: one line, at least 16 characters, readable by
    /// its owner only. Errors start with the path.
    pub fn read(path: &Path) -> Result<Token, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown}: the admin token file is accessible by others than its owner \
                 (mode {mode:04o}); run `chmod 600 {shown}`"
            ));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let secret = text.trim();
        if secret.len() < 16 || secret.contains(char::is_whitespace) {
            return Err(format!(
                "{shown}: the admin token must be one word of at least 16 characters"
            ));
        }
        Ok(Token::new(secret.as_bytes()))
    }

    /// Whether `given` is the token, in time independent of where it
    /// differs.
    pub fn matches(&self, given: &[u8]) -> bool {
        openssl::memcmp::eq(&self.digest, &openssl::sha::sha256(given))
    }
}

/// The admin port's access rules.
#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    pub allow_remote: bool,
    pub token: Option<Token>,
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// 403: the peer is not loopback and remote peers are not allowed.
    NotLoopback,
    /// 403: a change from another host with no token configured.
    RemoteChange,
    /// 401: the token is missing or wrong.
    BadToken,
}

impl Refused {
    pub fn status(self) -> u16 {
        match self {
            Refused::NotLoopback | Refused::RemoteChange => 403,
            Refused::BadToken => 401,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refused::NotLoopback => {
                "the admin port serves loopback peers only (see admin.allow_remote)"
            }
            Refused::RemoteChange => "changes from other hosts need a token (see admin.token_file)",
            Refused::BadToken => "this request needs `Authorization: Bearer <admin token>`",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Refused::NotLoopback => "not_loopback",
            Refused::RemoteChange => "remote_change",
            Refused::BadToken => "bad_token",
        }
    }
}

/// Whether an address is this host's loopback, IPv4-mapped forms included.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl AccessPolicy {
    /// Rule 1: may `peer` talk to the admin port at all?
    pub fn check_peer(&self, peer: SocketAddr) -> Result<(), Refused> {
        if self.allow_remote || is_loopback(peer.ip()) {
            Ok(())
        } else {
            Err(Refused::NotLoopback)
        }
    }

    /// Rule 2: may `peer` make a change, given its `Authorization` header?
    pub fn check_change(
        &self,
        peer: SocketAddr,
        authorization: Option<&str>,
    ) -> Result<(), Refused> {
        match &self.token {
            Some(token) => {
                let given = authorization
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .map(str::trim)
                    .unwrap_or("");
                if token.matches(given.as_bytes()) {
                    Ok(())
                } else {
                    Err(Refused::BadToken)
                }
            }
            None if is_loopback(peer.ip()) => Ok(()),
            None => Err(Refused::RemoteChange),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_loopback_peers_unless_remote_is_allowed() {
        let policy = AccessPolicy::default();
        assert!(policy.check_peer(addr("127.0.0.1:1")).is_ok());
        assert!(policy.check_peer(addr("127.8.9.1:1")).is_ok());
        assert!(policy.check_peer(addr("[::1]:1")).is_ok());
        assert!(policy.check_peer(addr("[::ffff:127.0.0.1]:1")).is_ok());
        assert_eq!(
            policy.check_peer(addr("192.0.2.7:1")),
            Err(Refused::NotLoopback)
        );
        assert_eq!(
            policy.check_peer(addr("[::ffff:192.0.2.7]:1")),
            Err(Refused::NotLoopback)
        );
        let open = AccessPolicy {
            allow_remote: true,
            token: None,
        };
        assert!(open.check_peer(addr("192.0.2.7:1")).is_ok());
        assert_eq!(
            open.check_change(addr("192.0.2.7:1"), None),
            Err(Refused::RemoteChange),
            "no token: remote peers may read but not change"
        );
        assert!(open.check_change(addr("127.0.0.1:1"), None).is_ok());
    }

    #[test]
    fn a_configured_token_is_required_for_changes() {
        let policy = AccessPolicy {
            allow_remote: false,
            token: Some(Token::new(b"0123456789abcdef")),
        };
        let local = addr("127.0.0.1:1");
        assert!(policy
            .check_change(local, Some("Bearer 0123456789abcdef"))
            .is_ok());
        for wrong in [
            None,
            Some("Bearer 0123456789abcdeg"),
            Some("Bearer 0123456789abcdef0"),
            Some("Bearer "),
            Some("Basic 0123456789abcdef"),
        ] {
            assert_eq!(
                policy.check_change(local, wrong),
                Err(Refused::BadToken),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("portcullis-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Token::read(&path).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::read(&path).unwrap().matches(b"0123456789abcdef"));
        std::fs::write(&path, "short\n").unwrap();
        assert!(Token::read(&path).unwrap_err().contains("at least 16"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
