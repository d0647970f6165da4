//! Access rules with nginx's semantics: `allow` or `deny` an address, a
//! CIDR or `all`; the first rule that matches decides, and a peer no rule
//! matches is allowed.
//!
//! The one idea: **compare addresses in one family.** An IPv4 client of a
//! dual-stack `[::]` listener arrives as `::ffff:10.1.2.3`; it is matched
//! as `10.1.2.3`, and a rule written as `::ffff:10.0.0.0/104` is turned
//! into `10.0.0.0/8`, so no rule can be bypassed, or missed, by going
//! through the other family.
//!
//! A check is a scan of the rules in order: O(rules), one AND and one
//! compare each. The rules are kept per family as plain integers and masks
//! (an IPv4 peer can only match IPv4 rules and `all`), so the scan is a
//! tight loop over a flat array (docs/edge.md: 1,000 rules against none).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// One rule: an action and what it matches (`None`: `all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub net: Option<IpNet>,
}

/// One rule as the scan sees it: `ip & mask == network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Masked<T> {
    network: T,
    mask: T,
    allow: bool,
}

/// A listener's rules, in order. Empty: everyone is allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRules {
    rules: Vec<Rule>,
    /// The rules an IPv4 peer can match (IPv4 networks and `all`), in order.
    v4: Vec<Masked<u32>>,
    /// The rules an IPv6 peer can match, in order.
    v6: Vec<Masked<u128>>,
}

impl AccessRules {
    /// Parses `["deny 192.168.1.1", "allow 192.168.1.0/24", "deny all"]`;
    /// an error names the entry (by index) and says what is wrong with it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AccessRules, String> {
        let mut rules = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let rule = parse_rule(entry.as_ref())
                .map_err(|e| format!("[{i}] `{}`: {e}", entry.as_ref()))?;
            rules.push(rule);
        }
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for rule in &rules {
            let allow = rule.action == Action::Allow;
            match rule.net {
                None => {
                    v4.push(Masked {
                        network: 0,
                        mask: 0,
                        allow,
                    });
                    v6.push(Masked {
                        network: 0,
                        mask: 0,
                        allow,
                    });
                }
                Some(IpNet::V4(net)) => v4.push(Masked {
                    network: u32::from(net.network()),
                    mask: u32::from(net.netmask()),
                    allow,
                }),
                Some(IpNet::V6(net)) => v6.push(Masked {
                    network: u128::from(net.network()),
                    mask: u128::from(net.netmask()),
                    allow,
                }),
            }
        }
        Ok(AccessRules { rules, v4, v6 })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether `ip` may connect: the first matching rule, else allow.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(v4) => first_match(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => first_match(&self.v6, u128::from(v6)),
        }
    }
}

fn first_match<T>(rules: &[Masked<T>], ip: T) -> bool
where
    T: Copy + PartialEq + std::ops::BitAnd<Output = T>,
{
    match rules.iter().find(|rule| ip & rule.mask == rule.network) {
        Some(rule) => rule.allow,
        None => true, // nginx: no rule matched, allowed
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it
/// stands for; every other address unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// A network as rules compare it: an IPv4-mapped IPv6 network (prefix 96
/// or longer inside `::ffff:0:0/96`) becomes the IPv4 network it covers.
pub fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.network().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(v4net);
            }
        }
    }
    net
}

/// An address (a host) or a CIDR whose host bits are zero, in canonical
/// form. Used by access rules and `trusted_proxies` alike.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let net = if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("`{text}` is not an address or a CIDR (such as 10.0.0.0/8)"))?;
        if net.network() != net.addr() {
            return Err(format!(
                "`{text}` has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        net
    } else {
        let ip: IpAddr = text
            .parse()
            .map_err(|_| format!("`{text}` is not an address or a CIDR (such as 10.0.0.0/8)"))?;
        IpNet::from(ip)
    };
    Ok(canonical_net(net))
}

fn parse_rule(entry: &str) -> Result<Rule, String> {
    let mut words = entry.split_whitespace();
    let action = match words.next() {
        Some("allow") => Action::Allow,
        Some("deny") => Action::Deny,
        Some(other) => return Err(format!("`{other}` is not `allow` or `deny`")),
        None => return Err("an empty rule; expected `allow ADDRESS` or `deny ADDRESS`".into()),
    };
    let Some(target) = words.next() else {
        return Err("no address; expected an address, a CIDR or `all`".into());
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected `{extra}` after the address"));
    }
    let net = match target {
        "all" => None,
        text => Some(parse_net(text)?),
    };
    Ok(Rule { action, net })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_first_match_wins_and_the_default_is_allow() {
        let rules =
            AccessRules::parse(&["deny 192.168.1.1", "allow 192.168.1.0/24", "deny all"]).unwrap();
        assert!(!rules.allows(ip("192.168.1.1")));
        assert!(rules.allows(ip("192.168.1.2")));
        assert!(!rules.allows(ip("10.0.0.1")));
        assert!(!rules.allows(ip("::1")), "`all` covers IPv6 too");
        let open = AccessRules::parse(&["deny 10.0.0.0/8"]).unwrap();
        assert!(open.allows(ip("192.168.1.1")), "no match: allowed");
        assert!(AccessRules::default().allows(ip("10.0.0.1")));
    }

    #[test]
    fn an_ipv4_mapped_peer_is_matched_as_ipv4() {
        let rules = AccessRules::parse(&["deny 10.0.0.0/8"]).unwrap();
        assert!(
            !rules.allows(ip("::ffff:10.1.2.3")),
            "no bypass through IPv6"
        );
        assert!(rules.allows(ip("::ffff:11.1.2.3")));
        // A rule written in the mapped form covers the IPv4 peer too.
        let rules = AccessRules::parse(&["deny ::ffff:10.0.0.0/104"]).unwrap();
        assert!(!rules.allows(ip("10.9.9.9")));
        assert!(!rules.allows(ip("::ffff:10.9.9.9")));
        let rules = AccessRules::parse(&["allow ::ffff:127.0.0.1", "deny all"]).unwrap();
        assert!(rules.allows(ip("127.0.0.1")));
        // Other IPv6 addresses are not confused with IPv4 ones.
        let rules = AccessRules::parse(&["deny 0.0.0.0/0"]).unwrap();
        assert!(rules.allows(ip("2001:db8::1")));
        assert!(!rules.allows(ip("::ffff:1.2.3.4")));
    }

    #[test]
    fn bad_rules_say_which_and_why() {
        let err = AccessRules::parse(&["allow 10.0.0.0/8", "permit all"]).unwrap_err();
        assert!(err.starts_with("[1] `permit all`:"), "{err}");
        assert!(err.contains("`permit` is not `allow` or `deny`"), "{err}");
        let err = AccessRules::parse(&["deny 10.0.0.1/8"]).unwrap_err();
        assert!(
            err.contains("host bits set; did you mean 10.0.0.0/8?"),
            "{err}"
        );
        let err = AccessRules::parse(&["deny 10.0.0.300"]).unwrap_err();
        assert!(err.contains("not an address or a CIDR"), "{err}");
        let err = AccessRules::parse(&["deny"]).unwrap_err();
        assert!(err.contains("no address"), "{err}");
        let err = AccessRules::parse(&["deny 1.2.3.4 5.6.7.8"]).unwrap_err();
        assert!(err.contains("unexpected `5.6.7.8`"), "{err}");
        let err = AccessRules::parse(&["deny 10.0.0.0/33"]).unwrap_err();
        assert!(err.contains("not an address or a CIDR"), "{err}");
    }

    /// The cost of a check with 1,000 rules against none, interleaved in
    /// rounds, medians printed (a measurement, run on purpose):
    /// `cargo test --release --lib access_rule_cost -- --ignored --nocapture`.
    /// The worst case: no rule matches, so every rule is looked at.
    #[test]
    #[ignore]
    fn access_rule_cost_1000_rules_against_none() {
        use std::time::Instant;
        let many: Vec<String> = (0..1000)
            .map(|i| format!("deny 10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        let many = AccessRules::parse(&many).unwrap();
        let none = AccessRules::default();
        let peers: Vec<IpAddr> = (0..1024u32)
            .map(|i| IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0200 + (i % 256))))
            .collect();
        let time = |rules: &AccessRules, checks: usize| {
            let start = Instant::now();
            let mut allowed = 0usize;
            for i in 0..checks {
                allowed += usize::from(rules.allows(std::hint::black_box(peers[i % peers.len()])));
            }
            assert_eq!(allowed, checks, "no rule matches these peers");
            start.elapsed().as_nanos() as f64 / checks as f64
        };
        let (mut with_none, mut with_many) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            with_none.push(time(&none, 2_000_000));
            with_many.push(time(&many, 20_000));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, b) = (median(&mut with_none), median(&mut with_many));
        eprintln!(
            "access check: no rules {a:.1} ns, 1000 rules {b:.0} ns (median of 7 interleaved rounds; {:.2} ns per rule)",
            (b - a) / 1000.0
        );
    }
}
