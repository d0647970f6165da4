//! Which protocol versions, cipher suites and key-exchange groups a domain
//! offers.
//!
//! OpenSSL's own default for TLS 1.2 still includes CBC suites and static
//! RSA key exchange (no forward secrecy, LUCKY13-class timing). The one
//! idea: **the defaults are Mozilla's "intermediate" profile, written out
//! here, so that what the server offers does not depend on how the system
//! OpenSSL was built**; `modern` drops TLS 1.2, and a domain may spell out
//! its own lists instead.
//!
//! | profile | versions | TLS 1.2 suites | TLS 1.3 suites | groups |
//! |---|---|---|---|---|
//! | `intermediate` (default) | 1.2, 1.3 | ECDHE with AES-GCM or ChaCha20-Poly1305 | all three | X25519, P-256, P-384 |
//! | `modern` | 1.3 | — | all three | X25519, P-256, P-384 |

use openssl::ssl::{SslContextBuilder, SslOptions, SslVersion};
use serde::{Deserialize, Deserializer};

/// TLS 1.2 suites of the intermediate profile: forward secret (ECDHE),
/// authenticated encryption only, ECDSA and RSA certificates alike.
pub const INTERMEDIATE_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
/// Every TLS 1.3 suite (all are AEAD and forward secret).
pub const TLS13_CIPHERSUITES: &str =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
/// Key-exchange groups, in preference order.
pub const DEFAULT_GROUPS: &str = "X25519:P-256:P-384";

/// A named set of defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// TLS 1.2 (ECDHE + AEAD only) and TLS 1.3.
    #[default]
    Intermediate,
    /// TLS 1.3 only.
    Modern,
}

impl Profile {
    pub fn parse(text: &str) -> Option<Profile> {
        match text {
            "intermediate" => Some(Profile::Intermediate),
            "modern" => Some(Profile::Modern),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Intermediate => "intermediate",
            Profile::Modern => "modern",
        }
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Profile::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "profile must be \"intermediate\" or \"modern\", not {text:?}"
            ))
        })
    }
}

/// A domain's own choices; what it leaves out comes from the profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CipherChoice {
    /// Overrides the gate-wide profile for this domain.
    pub profile: Option<Profile>,
    /// TLS 1.2 cipher list (OpenSSL syntax).
    pub ciphers: Option<String>,
    /// TLS 1.3 cipher suites (OpenSSL syntax).
    pub ciphersuites: Option<String>,
    /// Key-exchange groups (OpenSSL syntax, e.g. `X25519:P-256`).
    pub groups: Option<String>,
}

impl CipherChoice {
    /// Applies the choice to a server context, with `default` as the
    /// profile when the domain names none. Errors are `(key, problem)`.
    pub fn apply(
        &self,
        b: &mut SslContextBuilder,
        default: Profile,
    ) -> Result<(), (&'static str, String)> {
        let profile = self.profile.unwrap_or(default);
        let min = match profile {
            Profile::Intermediate => SslVersion::TLS1_2,
            Profile::Modern => SslVersion::TLS1_3,
        };
        if profile == Profile::Modern && self.ciphers.is_some() {
            return Err((
                "ciphers",
                "only TLS 1.2 uses this list, and profile \"modern\" is TLS 1.3 only".into(),
            ));
        }
        let openssl = |key: &'static str| move |e: openssl::error::ErrorStack| (key, e.to_string());
        b.set_min_proto_version(Some(min))
            .map_err(openssl("profile"))?;
        b.set_max_proto_version(Some(SslVersion::TLS1_3))
            .map_err(openssl("profile"))?;
        let ciphers = self.ciphers.as_deref().unwrap_or(INTERMEDIATE_CIPHERS);
        b.set_cipher_list(ciphers).map_err(|_| {
            (
                "ciphers",
                format!("OpenSSL accepts no cipher in `{ciphers}`"),
            )
        })?;
        let suites = self.ciphersuites.as_deref().unwrap_or(TLS13_CIPHERSUITES);
        if suites.is_empty() {
            return Err((
                "ciphersuites",
                "at least one TLS 1.3 suite is required".into(),
            ));
        }
        b.set_ciphersuites(suites)
            .map_err(|_| ("ciphersuites", format!("OpenSSL does not know `{suites}`")))?;
        let groups = self.groups.as_deref().unwrap_or(DEFAULT_GROUPS);
        b.set_groups_list(groups)
            .map_err(|_| ("groups", format!("OpenSSL does not know `{groups}`")))?;
        // The server's order decides, except that a client listing
        // ChaCha20 first (no AES hardware) gets it.
        b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE | SslOptions::PRIORITIZE_CHACHA);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ssl::SslMethod;

    /// The context's lowest version after applying `choice`.
    fn min_version(
        choice: &CipherChoice,
        default: Profile,
    ) -> Result<Option<SslVersion>, (&'static str, String)> {
        let mut b = SslContextBuilder::new(SslMethod::tls_server()).unwrap();
        choice.apply(&mut b, default)?;
        Ok(b.min_proto_version())
    }

    #[test]
    fn profiles_set_the_lowest_version_and_a_domain_may_pick_its_own() {
        let default = CipherChoice::default();
        assert_eq!(
            min_version(&default, Profile::Intermediate).unwrap(),
            Some(SslVersion::TLS1_2)
        );
        assert_eq!(
            min_version(&default, Profile::Modern).unwrap(),
            Some(SslVersion::TLS1_3)
        );
        let own = CipherChoice {
            profile: Some(Profile::Intermediate),
            ..CipherChoice::default()
        };
        assert_eq!(
            min_version(&own, Profile::Modern).unwrap(),
            Some(SslVersion::TLS1_2)
        );
    }

    #[test]
    fn bad_lists_name_their_key() {
        let modern_with_tls12_list = CipherChoice {
            ciphers: Some("ECDHE-RSA-AES128-GCM-SHA256".into()),
            ..CipherChoice::default()
        };
        let (key, _) = min_version(&modern_with_tls12_list, Profile::Modern).unwrap_err();
        assert_eq!(key, "ciphers");
        for (key, choice) in [
            (
                "ciphers",
                CipherChoice {
                    ciphers: Some("NOPE".into()),
                    ..Default::default()
                },
            ),
            (
                "ciphersuites",
                CipherChoice {
                    ciphersuites: Some("TLS_NOPE".into()),
                    ..Default::default()
                },
            ),
            (
                "groups",
                CipherChoice {
                    groups: Some("P-999".into()),
                    ..Default::default()
                },
            ),
        ] {
            let (got, problem) = min_version(&choice, Profile::Intermediate).unwrap_err();
            assert_eq!(got, key, "{problem}");
            assert!(
                problem.contains("NOPE") || problem.contains("P-999"),
                "{problem}"
            );
        }
        assert_eq!(Profile::parse("modern"), Some(Profile::Modern));
        assert_eq!(Profile::parse("old"), None);
    }
}
