//! From a decoded header list to a request, by RFC 9113 §8's rules.
//!
//! HTTP/2 moved the request line into pseudo-header fields (`:method`,
//! `:scheme`, `:authority`, `:path`) and made field names lowercase, so
//! many HTTP/1.1 parsing questions disappear — and new ones appear: a
//! pseudo-header after a regular field, twice, or unknown; an `:authority`
//! that disagrees with `Host`; HTTP/1.1's connection-specific fields, which
//! mean nothing here and once let requests be smuggled through proxies that
//! downgrade to HTTP/1.1. The one idea: **anything ambiguous is malformed**
//! (a stream error, PROTOCOL_ERROR), for the reason the HTTP/1.1 parser is
//! strict: two readers of the same request must never see different
//! requests — least of all the TLS gate's check of which host it is for.
//!
//! Fields arrive one by one from the HPACK decoder ([`RequestHead::add`]);
//! the decoded size is counted as they come, so a header list past the
//! limit (an HPACK bomb, whose few octets index one large entry over and
//! over) is noted and its fields no longer stored, while decoding goes on
//! to keep the HPACK tables in step.

use crate::service::http::{parse_authority, Host};

use super::hpack::ENTRY_OVERHEAD;

/// A request, ready to be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without its query.
    pub path: String,
    /// `:authority`, else `Host`, as sent.
    pub authority: Option<String>,
    pub content_length: Option<u64>,
}

impl Request {
    /// The host the gate judges: name without port or brackets.
    pub fn host(&self) -> Option<Host<'_>> {
        self.authority.as_deref().and_then(parse_authority)
    }
}

/// Why a header list is not a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Stream error PROTOCOL_ERROR, with what was wrong.
    Malformed(&'static str),
    /// The decoded list is over the limit: 431.
    TooLarge,
}

/// A header list being received; trailers use the same checks with no
/// pseudo-headers allowed.
#[derive(Debug, Default)]
pub struct RequestHead {
    method: Option<String>,
    scheme: bool,
    path: Option<String>,
    authority: Option<String>,
    host: Option<String>,
    content_length: Option<u64>,
    regular_seen: bool,
    trailers: bool,
    decoded_size: usize,
    limit: usize,
    error: Option<Refusal>,
}

impl RequestHead {
    pub fn new(limit: usize) -> RequestHead {
        RequestHead {
            limit,
            ..RequestHead::default()
        }
    }

    pub fn trailers(limit: usize) -> RequestHead {
        RequestHead {
            trailers: true,
            ..RequestHead::new(limit)
        }
    }

    /// Takes one decoded field. Never fails: the first problem is kept and
    /// reported by [`finish`](Self::finish), after the whole block is decoded.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        self.decoded_size += name.len() + value.len() + ENTRY_OVERHEAD;
        if self.decoded_size > self.limit && self.error.is_none() {
            self.error = Some(Refusal::TooLarge);
        }
        if self.error.is_some() {
            return;
        }
        if let Err(reason) = self.check(name, value) {
            self.error = Some(Refusal::Malformed(reason));
        }
    }

    fn check(&mut self, name: &[u8], value: &[u8]) -> Result<(), &'static str> {
        if !valid_value(value) {
            return Err("invalid field value");
        }
        let value = std::str::from_utf8(value).ok();
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.trailers {
                return Err("pseudo-header in trailers");
            }
            if self.regular_seen {
                return Err("pseudo-header after a regular field");
            }
            let slot = match pseudo {
                b"method" => &mut self.method,
                b"path" => &mut self.path,
                b"authority" => &mut self.authority,
                b"scheme" => {
                    if std::mem::replace(&mut self.scheme, true) {
                        return Err("duplicate :scheme");
                    }
                    return Ok(());
                }
                _ => return Err("unknown or response pseudo-header"),
            };
            if slot.is_some() {
                return Err("duplicate pseudo-header");
            }
            *slot = Some(value.ok_or("pseudo-header is not UTF-8")?.to_string());
            return Ok(());
        }
        self.regular_seen = true;
        if !valid_name(name) {
            return Err("invalid field name (uppercase, or a forbidden octet)");
        }
        match name {
            b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding"
            | b"upgrade" => Err("connection-specific field"),
            b"te" if value != Some("trailers") => Err("te other than trailers"),
            b"content-length" => {
                let length = value
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                    .ok_or("invalid content-length")?;
                match self.content_length.replace(length) {
                    Some(earlier) if earlier != length => Err("conflicting content-length"),
                    _ => Ok(()),
                }
            }
            b"host" if !self.trailers => {
                if self.host.is_some() {
                    return Err("more than one host");
                }
                self.host = Some(value.ok_or("host is not UTF-8")?.to_string());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The request, once the whole block is decoded.
    pub fn finish(self) -> Result<Request, Refusal> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let method = self.method.ok_or(Refusal::Malformed("missing :method"))?;
        let connect = method == "CONNECT";
        let path = match self.path {
            Some(path) if connect => Err(Refusal::Malformed(if path.is_empty() {
                "empty :path"
            } else {
                ":path in CONNECT"
            }))?,
            None if connect => String::new(),
            None => return Err(Refusal::Malformed("missing :path")),
            Some(path) if path.is_empty() => return Err(Refusal::Malformed("empty :path")),
            Some(path) if !(path.starts_with('/') || (path == "*" && method == "OPTIONS")) => {
                return Err(Refusal::Malformed(":path is not origin-form"))
            }
            Some(path) => path,
        };
        if !connect && !self.scheme {
            return Err(Refusal::Malformed("missing :scheme"));
        }
        if connect && (self.scheme || self.authority.is_none()) {
            return Err(Refusal::Malformed(
                "CONNECT needs :authority and no :scheme",
            ));
        }
        // The gate judges one host; two that disagree would let two readers
        // of this request judge different ones.
        let authority = match (self.authority, self.host) {
            (Some(authority), Some(host)) if !host.eq_ignore_ascii_case(&authority) => {
                return Err(Refusal::Malformed(":authority and host disagree"))
            }
            (Some(authority), _) => Some(authority),
            (None, host) => host,
        };
        if let Some(authority) = authority.as_deref().filter(|a| !a.is_empty()) {
            if parse_authority(authority).is_none() {
                return Err(Refusal::Malformed("invalid :authority"));
            }
        }
        let path = path
            .split_once('?')
            .map_or(path.as_str(), |(path, _)| path)
            .to_string();
        Ok(Request {
            method,
            path,
            authority: authority.filter(|a| !a.is_empty()),
            content_length: self.content_length,
        })
    }

    /// For trailers: whether they were acceptable.
    pub fn finish_trailers(self) -> Result<(), Refusal> {
        self.error.map_or(Ok(()), Err)
    }
}

/// RFC 9113 §8.2.1: no uppercase, no controls, space, DEL or non-ASCII,
/// and not empty.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b > 0x20 && b < 0x7f && !b.is_ascii_uppercase() && b != b':')
}

/// RFC 9113 §8.2.1: no NUL, CR or LF, and no leading or trailing space or tab.
fn valid_value(value: &[u8]) -> bool {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
        && !edge(value.first())
        && !edge(value.last())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &[(&str, &str)]) -> Result<Request, Refusal> {
        let mut head = RequestHead::new(16_384);
        for (name, value) in fields {
            head.add(name.as_bytes(), value.as_bytes());
        }
        head.finish()
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost:8443"),
        (":path", "/healthz?x=1"),
    ];

    #[test]
    fn a_plain_get_becomes_a_request() {
        let request = head(&GET).unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/healthz");
        assert_eq!(request.authority.as_deref(), Some("localhost:8443"));
        assert_eq!(request.host().map(|h| h.name), Some("localhost"));
    }

    #[test]
    fn host_stands_in_for_a_missing_authority_and_must_agree_with_one() {
        let without: Vec<_> = GET
            .iter()
            .copied()
            .filter(|(n, _)| *n != ":authority")
            .collect();
        let mut with_host = without.clone();
        with_host.push(("host", "mtls.localhost"));
        assert_eq!(
            head(&with_host).unwrap().authority.as_deref(),
            Some("mtls.localhost")
        );
        let mut both = GET.to_vec();
        both.push(("host", "mtls.localhost"));
        assert!(matches!(head(&both), Err(Refusal::Malformed(_))));
        assert_eq!(head(&without).unwrap().authority, None);
    }

    #[test]
    fn every_rfc_9113_malformation_is_refused() {
        let with = |extra: &[(&'static str, &'static str)], drop: &str| {
            let mut fields: Vec<(&str, &str)> =
                GET.iter().copied().filter(|(n, _)| *n != drop).collect();
            fields.extend_from_slice(extra);
            head(&fields)
        };
        for (extra, drop) in [
            (&[("Upper", "x")][..], ""),
            (&[("connection", "close")], ""),
            (&[("transfer-encoding", "chunked")], ""),
            (&[("te", "gzip")], ""),
            (&[("x", " padded")], ""),
            (&[("x", "a\nb")], ""),
            (&[(":method", "GET")], ""),
            (&[(":status", "200")], ""),
            (&[(":unknown", "x")], ""),
            (&[("content-length", "1"), ("content-length", "2")], ""),
            (&[("content-length", "-1")], ""),
            (&[], ":method"),
            (&[], ":scheme"),
            (&[], ":path"),
        ] {
            assert!(
                matches!(with(extra, drop), Err(Refusal::Malformed(_))),
                "{extra:?} -{drop}"
            );
        }
        // A pseudo-header after a regular field.
        let mut late = vec![("x", "1")];
        late.extend(GET);
        assert!(matches!(head(&late), Err(Refusal::Malformed(_))));
        let mut empty_path = GET.to_vec();
        empty_path[3] = (":path", "");
        assert!(matches!(head(&empty_path), Err(Refusal::Malformed(_))));
        assert!(with(&[("te", "trailers")], "").is_ok());
    }

    #[test]
    fn a_header_list_over_the_limit_is_too_large_however_it_was_encoded() {
        let mut head = RequestHead::new(100);
        for (name, value) in GET {
            head.add(name.as_bytes(), value.as_bytes());
        }
        head.add(b"cookie", &[b'x'; 60]);
        assert_eq!(head.finish(), Err(Refusal::TooLarge));
    }

    #[test]
    fn trailers_may_not_carry_pseudo_headers() {
        let mut trailers = RequestHead::trailers(1000);
        trailers.add(b"x-checksum", b"1");
        assert_eq!(trailers.finish_trailers(), Ok(()));
        let mut trailers = RequestHead::trailers(1000);
        trailers.add(b":path", b"/");
        assert!(trailers.finish_trailers().is_err());
    }
}
