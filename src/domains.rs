//! Domain policies and how a server name (SNI or `Host`) finds its policy.
//!
//! A policy says, for a set of names, which certificate to present and how
//! much to trust a client: no client certificate, an optional one, or a
//! required one. The TLS gate looks names up here from the ClientHello's SNI,
//! and the HTTP service looks up the `Host` header here too, so both sides of
//! the "does the request match the handshake" check use **one matching rule**:
//! exact names first, then the longest matching `*.suffix` wildcard (one label
//! deep, as in RFC 6125), compared case-insensitively without a trailing dot.

use std::sync::Arc;

/// How much a domain demands of a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ClientAuth {
    /// Never ask for one.
    #[default]
    None,
    /// Ask; verify it if sent; admit the connection either way.
    Optional,
    /// Ask, and refuse the handshake unless a certificate from the domain's
    /// CA is presented.
    Required,
}

impl ClientAuth {
    pub fn parse(text: &str) -> Option<ClientAuth> {
        match text {
            "none" => Some(ClientAuth::None),
            "optional" => Some(ClientAuth::Optional),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        }
    }
}

/// Lowercases a name and strips one trailing dot, so `LocalHost.` and
/// `localhost` are the same name. Returns `None` for names no policy can
/// match (empty, or with characters outside a DNS name).
pub fn normalize_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*' || b == b'_');
    valid.then(|| name.to_ascii_lowercase())
}

/// Maps server names to an index into a list of policies.
#[derive(Clone, Debug, Default)]
pub struct NameTable {
    exact: Vec<(String, usize)>,
    /// `(".example.com", index)` for the pattern `*.example.com`.
    wildcard_suffixes: Vec<(String, usize)>,
}

impl NameTable {
    pub fn new() -> NameTable {
        NameTable::default()
    }

    /// Adds a name or a `*.suffix` pattern for policy `index`. Returns an error
    /// message for a malformed pattern or a name already taken.
    pub fn insert(&mut self, pattern: &str, index: usize) -> Result<(), String> {
        let normalized = normalize_name(pattern)
            .ok_or_else(|| format!("`{pattern}` is not a valid server name"))?;
        let (list, key) = if let Some(suffix) = normalized.strip_prefix('*') {
            if !suffix.starts_with('.') || suffix.len() < 2 || suffix[1..].contains('*') {
                return Err(format!(
                    "`{pattern}`: a wildcard must be a whole leftmost label, as in `*.example.com`"
                ));
            }
            (&mut self.wildcard_suffixes, suffix.to_string())
        } else if normalized.contains('*') {
            return Err(format!(
                "`{pattern}`: a wildcard must be a whole leftmost label, as in `*.example.com`"
            ));
        } else {
            (&mut self.exact, normalized)
        };
        if list.iter().any(|(existing, _)| *existing == key) {
            return Err(format!("`{pattern}` is listed by more than one domain"));
        }
        list.push((key, index));
        Ok(())
    }

    /// Finds the policy for a server name: an exact name first, then the
    /// longest wildcard whose suffix matches exactly one extra label.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        let name = normalize_name(name)?;
        if name.contains('*') {
            return None;
        }
        if let Some((_, index)) = self.exact.iter().find(|(n, _)| *n == name) {
            return Some(*index);
        }
        self.wildcard_suffixes
            .iter()
            .filter(|(suffix, _)| {
                name.len() > suffix.len()
                    && name.ends_with(suffix.as_str())
                    && !name[..name.len() - suffix.len()].contains('.')
            })
            .max_by_key(|(suffix, _)| suffix.len())
            .map(|(_, index)| *index)
    }
}

/// The part of a domain policy that services need: its display name and what
/// it demands. (Certificates live with the TLS gate.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRule {
    /// The policy's first configured name, used in logs and `ConnectionInfo`.
    pub name: Arc<str>,
    pub client_auth: ClientAuth,
}

/// Every domain's rule plus the name table, shared read-only by all workers.
#[derive(Clone, Debug, Default)]
pub struct DomainRules {
    pub rules: Vec<DomainRule>,
    pub names: NameTable,
    /// The policy that serves names no policy lists (and TLS clients that
    /// send no SNI); `None` when such names are rejected.
    pub fallback: Option<usize>,
}

impl DomainRules {
    /// The rule for a server name, if any policy lists it.
    pub fn for_name(&self, name: &str) -> Option<&DomainRule> {
        self.names.lookup(name).map(|i| &self.rules[i])
    }

    /// The rule that would admit a TLS handshake for `name`: the listed
    /// policy, else the fallback. This is the rule to compare a `Host` header
    /// against, because it is the one the handshake would have used.
    pub fn resolve(&self, name: &str) -> Option<&DomainRule> {
        self.names
            .lookup(name)
            .or(self.fallback)
            .map(|i| &self.rules[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NameTable {
        let mut t = NameTable::new();
        t.insert("localhost", 0).unwrap();
        t.insert("mtls.localhost", 1).unwrap();
        t.insert("*.localhost", 2).unwrap();
        t.insert("*.a.example.com", 3).unwrap();
        t.insert("*.example.com", 4).unwrap();
        t
    }

    #[test]
    fn exact_names_win_over_wildcards() {
        let t = table();
        assert_eq!(t.lookup("mtls.localhost"), Some(1));
        assert_eq!(t.lookup("MTLS.LocalHost."), Some(1));
        assert_eq!(t.lookup("other.localhost"), Some(2));
        assert_eq!(t.lookup("localhost"), Some(0));
    }

    #[test]
    fn wildcards_cover_exactly_one_label_and_prefer_the_longest_suffix() {
        let t = table();
        assert_eq!(t.lookup("x.a.example.com"), Some(3));
        assert_eq!(t.lookup("a.example.com"), Some(4));
        assert_eq!(t.lookup("y.x.a.example.com"), None);
        assert_eq!(t.lookup("example.com"), None);
        assert_eq!(t.lookup(".localhost"), None);
    }

    #[test]
    fn malformed_names_match_nothing() {
        let t = table();
        assert_eq!(t.lookup(""), None);
        assert_eq!(t.lookup("*.localhost"), None);
        assert_eq!(t.lookup("local host"), None);
        assert_eq!(t.lookup("localhost:443"), None);
    }

    #[test]
    fn bad_patterns_and_duplicates_are_rejected() {
        let mut t = table();
        assert!(t.insert("a.*.com", 9).is_err());
        assert!(t.insert("*", 9).is_err());
        assert!(t.insert("**.com", 9).is_err());
        assert!(t
            .insert("LOCALHOST", 9)
            .unwrap_err()
            .contains("more than one"));
    }

    #[test]
    fn client_auth_parses_its_three_words() {
        for auth in [ClientAuth::None, ClientAuth::Optional, ClientAuth::Required] {
            assert_eq!(ClientAuth::parse(auth.as_str()), Some(auth));
        }
        assert_eq!(ClientAuth::parse("sometimes"), None);
    }
}
