//! The two security decisions every request passes before any content is
//! served, each a small pure function over facts the server already holds.
//!
//! 1. **Does the request match the handshake that admitted it?** A TLS
//!    handshake is made for one domain: the client's SNI chose the policy,
//!    the certificate, and whether a client certificate was demanded. The
//!    `Host` header arrives later, inside the encrypted stream, and the
//!    client can write anything there. Without this check a client admitted
//!    by `public.example` (no client certificate needed) could send
//!    `Host: admin.example` and be served a domain whose handshake would
//!    have demanded a certificate. Connection reuse across names (HTTP
//!    connection coalescing) produces the same mismatch innocently. Either
//!    way the answer is 421 Misdirected Request: "not on this connection".
//!
//! 2. **Does the connection meet the domain's client-certificate demand?** A
//!    domain whose policy *requires* a client certificate must never be
//!    served without one, whatever the path by which the request got here:
//!    plaintext on the shared port (where `Host` is the only claim), or TLS
//!    admitted for that domain without a verified certificate. The answer is
//!    403, and never the content.
//!
//! Both use [`DomainRules::resolve`], the same lookup the TLS gate uses for
//! SNI, so the handshake and the request cannot be judged by two different
//! matching rules.

use crate::connection_info::Transport;
use crate::domains::{ClientAuth, DomainRule, DomainRules};

/// The request names a domain other than the one its TLS handshake was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Misdirected;

/// The domain rule that governs a request, or [`Misdirected`].
///
/// - TLS and mTLS: the rule that admitted the handshake (`admitted_domain`
///   is its name). A `Host` that resolves to a different rule, or to none,
///   is misdirected. No `Host` (HTTP/1.0) claims nothing beyond what the
///   handshake established.
/// - Plaintext: there was no handshake, so the `Host` is all there is; it
///   resolves exactly as an SNI would (listed name, else the fallback). No
///   rule at all means no policy applies.
///
/// `host_name` is the bare name: port and IPv6 brackets already removed.
pub(super) fn governing_rule<'r>(
    rules: &'r DomainRules,
    transport: Transport,
    admitted_domain: Option<&str>,
    host_name: Option<&str>,
) -> Result<Option<&'r DomainRule>, Misdirected> {
    match transport {
        Transport::Plain => Ok(match host_name {
            Some(name) => rules.resolve(name),
            None => fallback_rule(rules),
        }),
        Transport::Tls | Transport::Mtls => {
            // Fail closed: a TLS connection whose admitting rule we cannot
            // find is treated as matching nothing.
            let admitted = admitted_domain
                .and_then(|name| rule_named(rules, name))
                .ok_or(Misdirected)?;
            if let Some(name) = host_name {
                let requested = rules.resolve(name).ok_or(Misdirected)?;
                if requested.name != admitted.name {
                    return Err(Misdirected);
                }
            }
            Ok(Some(admitted))
        }
    }
}

/// Whether `transport` satisfies the governing rule's client-certificate
/// demand. Only a `Required` rule can refuse; `Optional` admits either way,
/// exactly as the handshake does.
pub(super) fn client_auth_satisfied(rule: Option<&DomainRule>, transport: Transport) -> bool {
    match rule {
        Some(rule) if rule.client_auth == ClientAuth::Required => transport == Transport::Mtls,
        _ => true,
    }
}

/// The rule for names no rule lists (and for requests that name nothing).
fn fallback_rule(rules: &DomainRules) -> Option<&DomainRule> {
    rules.fallback.and_then(|index| rules.rules.get(index))
}

/// Rule names are unique (each is the policy's first configured name), so
/// this finds the rule `ConnectionInfo::domain` refers to.
fn rule_named<'r>(rules: &'r DomainRules, name: &str) -> Option<&'r DomainRule> {
    rules.rules.iter().find(|rule| &*rule.name == name)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domains::NameTable;

    /// `localhost` (no client certificates), `mtls.localhost` (required),
    /// `*.opt.localhost` (optional); `localhost` is also the fallback when
    /// `with_fallback`.
    pub(in crate::service::http) fn rules(with_fallback: bool) -> DomainRules {
        let mut names = NameTable::new();
        names.insert("localhost", 0).unwrap();
        names.insert("mtls.localhost", 1).unwrap();
        names.insert("*.opt.localhost", 2).unwrap();
        let rule = |name: &str, client_auth| DomainRule {
            name: name.into(),
            client_auth,
        };
        DomainRules {
            rules: vec![
                rule("localhost", ClientAuth::None),
                rule("mtls.localhost", ClientAuth::Required),
                rule("*.opt.localhost", ClientAuth::Optional),
            ],
            names,
            fallback: with_fallback.then_some(0),
        }
    }

    fn name_of(
        rule: Result<Option<&DomainRule>, Misdirected>,
    ) -> Result<Option<&str>, Misdirected> {
        rule.map(|rule| rule.map(|rule| &*rule.name))
    }

    #[test]
    fn a_tls_request_for_the_admitting_domain_is_governed_by_it() {
        let rules = rules(true);
        for host in [Some("localhost"), Some("LOCALHOST."), None] {
            let rule = governing_rule(&rules, Transport::Tls, Some("localhost"), host);
            assert_eq!(name_of(rule), Ok(Some("localhost")), "{host:?}");
        }
        let rule = governing_rule(
            &rules,
            Transport::Tls,
            Some("*.opt.localhost"),
            Some("a.opt.localhost"),
        );
        assert_eq!(name_of(rule), Ok(Some("*.opt.localhost")));
    }

    #[test]
    fn a_tls_request_for_another_domain_is_misdirected() {
        let rules = rules(true);
        // The attack: admitted without a client certificate, asking for the
        // domain that requires one.
        let rule = governing_rule(
            &rules,
            Transport::Tls,
            Some("localhost"),
            Some("mtls.localhost"),
        );
        assert_eq!(rule, Err(Misdirected));
        // And the reverse direction is no better.
        let rule = governing_rule(
            &rules,
            Transport::Mtls,
            Some("mtls.localhost"),
            Some("localhost"),
        );
        assert_eq!(rule, Err(Misdirected));
    }

    #[test]
    fn unlisted_names_resolve_to_the_fallback_like_a_handshake_would() {
        let with = rules(true);
        let rule = governing_rule(
            &with,
            Transport::Tls,
            Some("localhost"),
            Some("unknown.test"),
        );
        assert_eq!(name_of(rule), Ok(Some("localhost")));
        let rule = governing_rule(&with, Transport::Tls, Some("localhost"), Some("::1"));
        assert_eq!(name_of(rule), Ok(Some("localhost")));
        let without = rules(false);
        let rule = governing_rule(
            &without,
            Transport::Tls,
            Some("localhost"),
            Some("unknown.test"),
        );
        assert_eq!(rule, Err(Misdirected));
    }

    #[test]
    fn a_tls_connection_without_a_known_admitting_domain_matches_nothing() {
        let rules = rules(true);
        assert_eq!(
            governing_rule(&rules, Transport::Tls, None, Some("localhost")),
            Err(Misdirected)
        );
        assert_eq!(
            governing_rule(&rules, Transport::Tls, Some("gone"), None),
            Err(Misdirected)
        );
    }

    #[test]
    fn plaintext_is_governed_by_what_its_host_resolves_to() {
        let with = rules(true);
        let rule = governing_rule(&with, Transport::Plain, None, Some("mtls.localhost"));
        assert_eq!(name_of(rule), Ok(Some("mtls.localhost")));
        let rule = governing_rule(&with, Transport::Plain, None, None);
        assert_eq!(name_of(rule), Ok(Some("localhost")));
        let without = rules(false);
        let rule = governing_rule(&without, Transport::Plain, None, Some("unknown.test"));
        assert_eq!(name_of(rule), Ok(None));
    }

    #[test]
    fn only_mtls_satisfies_a_required_domain() {
        let rules = rules(true);
        let [none, required, optional] = [&rules.rules[0], &rules.rules[1], &rules.rules[2]];
        for transport in [Transport::Plain, Transport::Tls, Transport::Mtls] {
            assert!(client_auth_satisfied(None, transport));
            assert!(client_auth_satisfied(Some(none), transport));
            assert!(client_auth_satisfied(Some(optional), transport));
            assert_eq!(
                client_auth_satisfied(Some(required), transport),
                transport == Transport::Mtls
            );
        }
    }
}
