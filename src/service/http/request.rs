//! Reading one request head: finding where it ends, then parsing it strictly.
//!
//! Strictness is a security property here, not pedantry. Wherever two HTTP
//! parsers could disagree about where a request ends (a bare LF, a folded
//! header line, two `Content-Length`s, `Transfer-Encoding` next to
//! `Content-Length`), a proxy in front of this server and the server itself
//! could see *different requests* in the same bytes: request smuggling. So
//! this parser never guesses; anything ambiguous is rejected and the
//! connection closed.
//!
//! Two steps, kept apart on purpose:
//! - [`HeadScanner`] looks at raw bytes as they trickle in and answers
//!   "complete", "not yet", or "never" (too large, bare CR/LF, a bad request
//!   line) without waiting for the whole head.
//! - [`parse_head`] turns a complete head into a [`Request`], borrowing from
//!   the input: no allocation per request.

use std::str;

/// The HTTP versions this server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Version {
    Http10,
    Http11,
}

/// Why a request is refused before it reaches routing. Every rejection
/// closes the connection: after any of them we can no longer be sure where
/// the next request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rejection {
    /// 400, with a short description of what was wrong.
    BadRequest(&'static str),
    /// 413: a body larger than we are willing to read and throw away.
    BodyTooLarge,
    /// 414: the request line alone does not fit in the head limit.
    UriTooLong,
    /// 431: the header section does not end within the head limit.
    HeadTooLarge,
    /// 501: `Transfer-Encoding`, which this server does not implement.
    TransferCodingNotImplemented,
    /// 505: a well-formed version other than HTTP/1.0 and HTTP/1.1.
    VersionNotSupported,
}

use Rejection::BadRequest;

/// A `Host` value (or the authority of an absolute-form target) split into
/// what was sent and the bare name a domain policy is looked up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Host<'a> {
    /// As sent, port included: `example.com:8443`, `[::1]:8443`.
    pub raw: &'a str,
    /// Without port or brackets: `example.com`, `::1`.
    pub name: &'a str,
}

/// A parsed request head. Everything borrows from the received bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Request<'a> {
    pub method: &'a str,
    /// The target's path without its query: `/`, `/healthz`; `*` for
    /// `OPTIONS *`; empty for `CONNECT host:port`.
    pub path: &'a str,
    pub version: Version,
    /// The host the request is for: the authority of an absolute-form
    /// target, else the `Host` header. `None` when neither names one.
    pub host: Option<Host<'a>>,
    /// Body bytes that follow the head (0 without `Content-Length`).
    pub content_length: u64,
    /// `Connection: close` was sent.
    pub close_requested: bool,
    /// `Connection: keep-alive` was sent (meaningful for HTTP/1.0).
    pub keep_alive_requested: bool,
}

impl Request<'_> {
    /// Whether the client expects the connection to stay open afterwards:
    /// HTTP/1.1 persists unless told otherwise, HTTP/1.0 only when asked.
    pub fn wants_keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.close_requested,
            Version::Http10 => self.keep_alive_requested && !self.close_requested,
        }
    }
}

/// What [`HeadScanner::scan`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scan {
    /// The head is the first this many bytes, final CRLFCRLF included.
    Complete(usize),
    /// No verdict yet: wait for more bytes.
    Incomplete,
    /// No more bytes can make this a valid request.
    Rejected(Rejection),
}

/// Finds the end of a request head incrementally.
///
/// The engine offers the same unconsumed bytes again, with more appended,
/// until we consume them. Rescanning from the start each time would cost
/// O(limit²) against a client that sends one byte at a time, so the scanner
/// remembers how far it got. It must be reset whenever the start of the
/// unconsumed bytes moves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct HeadScanner {
    scanned: usize,
    request_line_done: bool,
}

impl HeadScanner {
    /// Scans `data` (which starts at the request line) looking only at the
    /// first `limit` bytes: a head that has not ended there never will fit.
    ///
    /// Line endings: CRLF only. A bare LF or bare CR is rejected (RFC 9112
    /// allows either rejecting or tolerating a bare LF; tolerating it is what
    /// lets a lenient proxy and this server split lines differently).
    pub fn scan(&mut self, data: &[u8], limit: usize) -> Scan {
        let window = &data[..data.len().min(limit)];
        // Step back one byte: a CR that ended the previous call could not be
        // checked for its LF then. Revisiting any other byte changes nothing.
        let start = self.scanned.saturating_sub(1).min(window.len());
        for i in start..window.len() {
            let byte = window[i];
            match byte {
                b'\n' => {
                    if i == 0 || window[i - 1] != b'\r' {
                        return Scan::Rejected(BadRequest("bare LF; lines must end in CRLF"));
                    }
                    if !self.request_line_done {
                        // Judge the request line as soon as it is whole, so a
                        // wrong version or method is answered at once.
                        self.request_line_done = true;
                        if let Err(rejection) = parse_request_line(&window[..i - 1]) {
                            return Scan::Rejected(rejection);
                        }
                    } else if window[..=i].ends_with(b"\r\n\r\n") {
                        return Scan::Complete(i + 1);
                    }
                }
                b'\r' if window.get(i + 1).is_some_and(|next| *next != b'\n') => {
                    return Scan::Rejected(BadRequest("bare CR; lines must end in CRLF"));
                }
                // A CR followed by LF, or the last byte so far (its partner
                // is checked when it arrives).
                b'\r' => {}
                _ if !self.request_line_done && !is_request_line_byte(byte) => {
                    return Scan::Rejected(BadRequest("invalid byte in request line"));
                }
                _ => {}
            }
        }
        self.scanned = window.len();
        if data.len() < limit {
            Scan::Incomplete
        } else if self.request_line_done {
            Scan::Rejected(Rejection::HeadTooLarge)
        } else {
            Scan::Rejected(Rejection::UriTooLong)
        }
    }
}

/// How many bytes of empty lines (CRLF pairs) start `data`. RFC 9112 asks
/// servers to ignore at least one empty line before a request line, which
/// some clients send after a body.
pub(super) fn empty_lines_len(data: &[u8]) -> usize {
    data.chunks_exact(2)
        .take_while(|pair| *pair == b"\r\n")
        .count()
        * 2
}

/// Parses a complete head, as delimited by [`HeadScanner`].
pub(super) fn parse_head(head: &[u8]) -> Result<Request<'_>, Rejection> {
    let text = head
        .strip_suffix(b"\r\n\r\n")
        .ok_or(BadRequest("head does not end with an empty line"))?;
    let mut lines = text
        .split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = parse_request_line(lines.next().unwrap_or_default())?;

    let mut fields = Fields::default();
    for line in lines {
        let (name, value) = parse_field_line(line)?;
        fields.add(name, value)?;
    }

    if fields.transfer_encoding {
        // Message framing we cannot follow. Next to Content-Length (or in
        // HTTP/1.0, which has no transfer codings) it is the classic
        // smuggling shape, so that is a malformed request, not a missing
        // feature.
        return Err(
            if fields.content_length.is_some() || request_line.version == Version::Http10 {
                BadRequest("Transfer-Encoding with Content-Length or in HTTP/1.0")
            } else {
                Rejection::TransferCodingNotImplemented
            },
        );
    }
    if request_line.version == Version::Http11 && fields.host_count == 0 {
        return Err(BadRequest("HTTP/1.1 request without Host"));
    }
    let header_host = match fields.host {
        Some(value) if !value.is_empty() => {
            Some(parse_authority(value).ok_or(BadRequest("invalid Host"))?)
        }
        _ => None,
    };
    let target = parse_target(request_line.method, request_line.target)?;

    Ok(Request {
        method: request_line.method,
        path: target.path,
        version: request_line.version,
        // RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
        host: target.authority.or(header_host),
        content_length: fields.content_length.unwrap_or(0),
        close_requested: fields.close,
        keep_alive_requested: fields.keep_alive,
    })
}

/// `method SP request-target SP HTTP-version`, single spaces, nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RequestLine<'a> {
    method: &'a str,
    target: &'a str,
    version: Version,
}

fn parse_request_line(line: &[u8]) -> Result<RequestLine<'_>, Rejection> {
    if !line.iter().all(|byte| is_request_line_byte(*byte)) {
        return Err(BadRequest("invalid byte in request line"));
    }
    let line = str::from_utf8(line).map_err(|_| BadRequest("invalid byte in request line"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest("request line is not `method target version`"));
    };
    if !is_token(method.as_bytes()) {
        return Err(BadRequest("invalid method"));
    }
    // Spaces were split off and other controls refused above; a fragment
    // is never sent to a server.
    if target.is_empty() || target.contains('#') {
        return Err(BadRequest("invalid request target"));
    }
    let version = parse_version(version)?;
    Ok(RequestLine {
        method,
        target,
        version,
    })
}

/// HTTP/1.0 and HTTP/1.1 are spoken; any other well-formed version is 505.
/// (RFC 9110 suggests treating HTTP/1.2+ as 1.1; this server is deliberately
/// narrower and says so with 505.)
fn parse_version(text: &str) -> Result<Version, Rejection> {
    match text.as_bytes() {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(Rejection::VersionNotSupported)
        }
        _ => Err(BadRequest("malformed HTTP version")),
    }
}

/// The routing-relevant parts of a request target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Target<'a> {
    path: &'a str,
    authority: Option<Host<'a>>,
}

/// Accepts the four request-target forms of RFC 9112 §3.2: origin
/// (`/path?q`), absolute (`http://host/path`), asterisk (`*`), and
/// authority (`host:port`, only with CONNECT).
fn parse_target<'a>(method: &str, target: &'a str) -> Result<Target<'a>, Rejection> {
    if target.starts_with('/') {
        return Ok(Target {
            path: path_without_query(target),
            authority: None,
        });
    }
    if target == "*" {
        return Ok(Target {
            path: target,
            authority: None,
        });
    }
    if let Some((scheme, rest)) = target.split_once("://") {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(BadRequest(
                "absolute-form target with a scheme other than http(s)",
            ));
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let authority = parse_authority(authority)
            .ok_or(BadRequest("invalid authority in absolute-form target"))?;
        let path = path_without_query(path);
        return Ok(Target {
            path: if path.is_empty() { "/" } else { path },
            authority: Some(authority),
        });
    }
    if method == "CONNECT" {
        let authority = parse_authority(target).ok_or(BadRequest("invalid CONNECT target"))?;
        return Ok(Target {
            path: "",
            authority: Some(authority),
        });
    }
    Err(BadRequest("invalid request target"))
}

fn path_without_query(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// Splits `host[:port]` or `[v6]:port` into the bare name, or `None` when it
/// is not a valid authority. User info (`user@host`) is refused: it has no
/// place in an HTTP authority and is a favourite of spoofing tricks.
pub(crate) fn parse_authority(text: &str) -> Option<Host<'_>> {
    let (name, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (literal, after) = bracketed.split_once(']')?;
        let is_ipv6 = literal.contains(':')
            && literal
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.');
        if !is_ipv6 {
            return None;
        }
        (literal, after)
    } else {
        let name_end = text.find(':').unwrap_or(text.len());
        let (name, port) = text.split_at(name_end);
        if name.is_empty() || !name.bytes().all(is_reg_name_byte) {
            return None;
        }
        (name, port)
    };
    let port_is_valid = match port.strip_prefix(':') {
        Some(digits) => digits.len() <= 5 && digits.bytes().all(|byte| byte.is_ascii_digit()),
        None => port.is_empty(),
    };
    port_is_valid.then_some(Host { raw: text, name })
}

/// One header line, split at the colon: `(name, value with OWS trimmed)`.
fn parse_field_line(line: &[u8]) -> Result<(&str, &[u8]), Rejection> {
    if line
        .first()
        .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
    {
        return Err(BadRequest(
            "obs-fold (a header line starting with whitespace)",
        ));
    }
    let colon = line
        .iter()
        .position(|byte| *byte == b':')
        .ok_or(BadRequest("header line without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name
        .last()
        .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
    {
        // RFC 9112 §5.1: MUST be rejected; lenient parsers disagree on it.
        return Err(BadRequest("whitespace between header name and colon"));
    }
    if !is_token(name) {
        return Err(BadRequest("invalid header name"));
    }
    let value = trim_ows(value);
    if !value.iter().all(|byte| is_field_value_byte(*byte)) {
        return Err(BadRequest("invalid byte in header value"));
    }
    let name = str::from_utf8(name).map_err(|_| BadRequest("invalid header name"))?;
    Ok((name, value))
}

/// The header fields this server acts on. Others are checked for syntax
/// and otherwise ignored.
#[derive(Debug, Default)]
struct Fields<'a> {
    host: Option<&'a str>,
    host_count: usize,
    content_length: Option<u64>,
    transfer_encoding: bool,
    close: bool,
    keep_alive: bool,
}

impl<'a> Fields<'a> {
    fn add(&mut self, name: &str, value: &'a [u8]) -> Result<(), Rejection> {
        if name.eq_ignore_ascii_case("host") {
            self.host_count += 1;
            if self.host_count > 1 {
                return Err(BadRequest("more than one Host"));
            }
            self.host = Some(ascii(value).ok_or(BadRequest("invalid Host"))?);
        } else if name.eq_ignore_ascii_case("content-length") {
            if self.content_length.is_some() {
                return Err(BadRequest("more than one Content-Length"));
            }
            let length = ascii(value).and_then(parse_content_length);
            self.content_length = Some(length.ok_or(BadRequest("invalid Content-Length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for option in ascii(value).unwrap_or_default().split(',') {
                let option = option.trim_matches([' ', '\t']);
                self.close |= option.eq_ignore_ascii_case("close");
                self.keep_alive |= option.eq_ignore_ascii_case("keep-alive");
            }
        }
        Ok(())
    }
}

/// Digits only: no sign, no list (`5, 5`), no whitespace inside, no
/// overflow.
fn parse_content_length(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn ascii(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        str::from_utf8(bytes).ok()
    } else {
        None
    }
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Visible ASCII and space: what a request line may contain.
fn is_request_line_byte(byte: u8) -> bool {
    (0x20..=0x7e).contains(&byte)
}

/// RFC 9110 `field-vchar` plus inner spaces: no control characters, CR and
/// LF included, so a value can never smuggle in a line of its own.
fn is_field_value_byte(byte: u8) -> bool {
    byte == b'\t' || byte == b' ' || (0x21..=0x7e).contains(&byte) || byte >= 0x80
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|byte| is_tchar(*byte))
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 3986 `reg-name`: unreserved, percent signs and sub-delims.
fn is_reg_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request<'_>, Rejection> {
        parse_head(text.as_bytes())
    }

    fn scan_all(text: &str, limit: usize) -> Scan {
        HeadScanner::default().scan(text.as_bytes(), limit)
    }

    #[test]
    fn a_simple_get_parses() {
        let request = parse("GET /healthz?x=1 HTTP/1.1\r\nHost: Example.com:80\r\n\r\n").unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/healthz");
        assert_eq!(request.version, Version::Http11);
        assert_eq!(
            request.host,
            Some(Host {
                raw: "Example.com:80",
                name: "Example.com"
            })
        );
        assert_eq!(request.content_length, 0);
        assert!(request.wants_keep_alive());
    }

    #[test]
    fn the_scanner_finds_the_end_of_the_head_and_no_more() {
        let text = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET";
        assert_eq!(scan_all(text, 8192), Scan::Complete(text.len() - 3));
        assert_eq!(
            scan_all("GET / HTTP/1.1\r\nHost: a\r\n", 8192),
            Scan::Incomplete
        );
    }

    #[test]
    fn the_scanner_resumes_where_it_stopped() {
        let text = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut scanner = HeadScanner::default();
        for end in 1..text.len() {
            assert_eq!(
                scanner.scan(&text[..end], 8192),
                Scan::Incomplete,
                "at {end}"
            );
        }
        assert_eq!(scanner.scan(text, 8192), Scan::Complete(text.len()));
    }

    #[test]
    fn a_cr_split_from_what_follows_it_is_still_checked() {
        let mut scanner = HeadScanner::default();
        assert_eq!(scanner.scan(b"GET / HTTP/1.1\r", 8192), Scan::Incomplete);
        assert!(matches!(
            scanner.scan(b"GET / HTTP/1.1\rX", 8192),
            Scan::Rejected(BadRequest(_))
        ));
    }

    #[test]
    fn bare_line_endings_are_rejected_as_soon_as_seen() {
        for text in [
            "GET / HTTP/1.1\n",
            "GET / HTTP/1.1\r\nHost: a\n",
            "GET / HTTP/1.1\r\nA: b\rc",
        ] {
            assert!(
                matches!(scan_all(text, 8192), Scan::Rejected(BadRequest(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_bad_request_line_is_judged_before_the_head_ends() {
        assert_eq!(
            scan_all("GET / HTTP/2.0\r\n", 8192),
            Scan::Rejected(Rejection::VersionNotSupported)
        );
        assert!(matches!(
            scan_all("GET /\r\n", 8192),
            Scan::Rejected(BadRequest(_))
        ));
        assert!(matches!(
            scan_all("GET /\x01", 8192),
            Scan::Rejected(BadRequest(_))
        ));
    }

    #[test]
    fn heads_that_cannot_fit_are_refused_without_waiting() {
        let long_header = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(100));
        assert_eq!(
            scan_all(&long_header, 64),
            Scan::Rejected(Rejection::HeadTooLarge)
        );
        let long_target = format!("GET /{}", "a".repeat(100));
        assert_eq!(
            scan_all(&long_target, 64),
            Scan::Rejected(Rejection::UriTooLong)
        );
        // A head of exactly the limit fits.
        let exact = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(scan_all(exact, exact.len()), Scan::Complete(exact.len()));
        assert_eq!(
            scan_all(exact, exact.len() - 1),
            Scan::Rejected(Rejection::HeadTooLarge)
        );
    }

    #[test]
    fn leading_empty_lines_are_measured_in_whole_crlfs() {
        assert_eq!(empty_lines_len(b"\r\n\r\nGET"), 4);
        assert_eq!(empty_lines_len(b"\r\n\r"), 2);
        assert_eq!(empty_lines_len(b"GET"), 0);
    }

    #[test]
    fn malformed_request_lines_are_bad_requests() {
        for line in [
            "GET  / HTTP/1.1",
            "GET / HTTP/1.1 ",
            " GET / HTTP/1.1",
            "GET /",
            "G(T / HTTP/1.1",
            "GET /a#frag HTTP/1.1",
            "GET / http/1.1",
            "GET / HTTP/1.10",
            "GET / HTTP/1",
            "GET nothing HTTP/1.1",
        ] {
            let head = format!("{line}\r\nHost: a\r\n\r\n");
            assert!(matches!(parse(&head), Err(BadRequest(_))), "{line:?}");
        }
    }

    #[test]
    fn other_versions_are_not_supported() {
        for version in ["HTTP/0.9", "HTTP/1.2", "HTTP/2.0", "HTTP/3.0"] {
            let head = format!("GET / {version}\r\nHost: a\r\n\r\n");
            assert_eq!(
                parse(&head),
                Err(Rejection::VersionNotSupported),
                "{version}"
            );
        }
    }

    #[test]
    fn malformed_header_lines_are_bad_requests() {
        for field in [
            "Host : a",
            "Host\t: a",
            " X: folded",
            "\tX: folded",
            "NoColon",
            ": empty-name",
            "Bad Name: x",
            "X: a\x00b",
            "X: a\x7fb",
        ] {
            let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{field}\r\n\r\n");
            assert!(matches!(parse(&head), Err(BadRequest(_))), "{field:?}");
        }
    }

    #[test]
    fn header_values_lose_surrounding_whitespace_and_may_hold_obs_text() {
        assert_eq!(
            parse_field_line(b"X: \t v a \t").unwrap(),
            ("X", &b"v a"[..])
        );
        assert!(parse_field_line(b"X: caf\xc3\xa9").is_ok());
        assert_eq!(parse_field_line(b"X:").unwrap(), ("X", &b""[..]));
    }

    #[test]
    fn host_is_required_once_in_http_1_1() {
        assert!(matches!(
            parse("GET / HTTP/1.1\r\n\r\n"),
            Err(BadRequest(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            Err(BadRequest(_))
        ));
        assert_eq!(parse("GET / HTTP/1.0\r\n\r\n").unwrap().host, None);
        // An empty Host is allowed and names nothing.
        assert_eq!(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n").unwrap().host, None);
    }

    #[test]
    fn authorities_split_into_name_and_port() {
        let name = |text| parse_authority(text).map(|host| host.name);
        assert_eq!(name("localhost"), Some("localhost"));
        assert_eq!(name("localhost:8443"), Some("localhost"));
        assert_eq!(name("localhost:"), Some("localhost"));
        assert_eq!(name("[::1]"), Some("::1"));
        assert_eq!(name("[::1]:8443"), Some("::1"));
        assert_eq!(name("127.0.0.1:80"), Some("127.0.0.1"));
        for bad in [
            "",
            ":80",
            "a b",
            "a:b",
            "a:1:2",
            "a:123456",
            "[::1",
            "[::1]x",
            "[zz]",
            "[1.2.3.4]",
            "user@host",
            "a/b",
            "[::1]:x",
        ] {
            assert_eq!(name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_length_must_be_one_plain_number() {
        let with =
            |fields: &str| parse_head_owned(&format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n"));
        assert_eq!(with("Content-Length: 5\r\n"), Ok(5));
        assert_eq!(with("Content-Length:  0 \r\n"), Ok(0));
        for bad in [
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length: 5\r\ncontent-length: 6\r\n",
            "Content-Length: 5, 5\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: \r\n",
            "Content-Length: 1 2\r\n",
            "Content-Length: 99999999999999999999999\r\n",
        ] {
            assert!(matches!(with(bad), Err(BadRequest(_))), "{bad:?}");
        }
    }

    fn parse_head_owned(head: &str) -> Result<u64, Rejection> {
        parse_head(head.as_bytes()).map(|request| request.content_length)
    }

    #[test]
    fn transfer_encoding_is_not_implemented_and_ambiguous_framing_is_bad() {
        let te = "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(te), Err(Rejection::TransferCodingNotImplemented));
        let both =
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(parse(both), Err(BadRequest(_))));
        let old = "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse(old), Err(BadRequest(_))));
    }

    #[test]
    fn connection_options_decide_persistence() {
        let keeps = |head: &str| parse(head).unwrap().wants_keep_alive();
        assert!(keeps("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!keeps(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"
        ));
        assert!(!keeps(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n"
        ));
        assert!(!keeps("GET / HTTP/1.0\r\n\r\n"));
        assert!(keeps("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!keeps(
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
    }

    #[test]
    fn every_target_form_is_understood() {
        let target = |method, target: &'static str| parse_target(method, target);
        assert_eq!(target("GET", "/a?b").unwrap().path, "/a");
        let absolute = target("GET", "http://Example.com:8080?x").unwrap();
        assert_eq!(absolute.path, "/");
        assert_eq!(
            absolute.authority.map(|host| host.name),
            Some("Example.com")
        );
        assert_eq!(
            target("GET", "HTTPS://[::1]:1/healthz").unwrap().path,
            "/healthz"
        );
        assert_eq!(target("OPTIONS", "*").unwrap().path, "*");
        assert_eq!(
            target("CONNECT", "a.example:443")
                .unwrap()
                .authority
                .map(|host| host.name),
            Some("a.example")
        );
        for bad in ["ftp://a/", "http://user@a/", "http:///x", "a.example:443"] {
            assert!(target("GET", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_absolute_form_authority_overrides_host() {
        let request =
            parse("GET http://mtls.localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        assert_eq!(request.host.map(|host| host.name), Some("mtls.localhost"));
    }
}
