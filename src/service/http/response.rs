//! Writing responses: a status, a few fixed headers, and a body whose length
//! is always stated up front.
//!
//! Every response carries `Content-Length`, so the client always knows where
//! it ends without the server closing the connection; that is what makes
//! keep-alive and pipelining work. A response to `HEAD` states the length
//! the `GET` body would have and sends no body. No `Date` header is sent, so
//! output is byte-for-byte deterministic (RFC 9110 asks origin servers that
//! have a clock for one; a deliberate omission here).

use std::fmt::Write as _;

use crate::connection_info::ConnectionInfo;

/// The statuses this server produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    ContentTooLarge,
    UriTooLong,
    MisdirectedRequest,
    HeaderFieldsTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::MisdirectedRequest => 421,
            Status::HeaderFieldsTooLarge => 431,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::ContentTooLarge => "Content Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::MisdirectedRequest => "Misdirected Request",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// The methods this server serves, as `Allow` lists them with a 405.
pub(crate) const ALLOWED_METHODS: &str = "GET, HEAD, POST";

/// What to answer, before deciding how the connection continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: Status,
    pub body: String,
    /// Send `Allow:` [`ALLOWED_METHODS`] (required with 405).
    pub allow: bool,
}

impl Response {
    pub fn ok(body: String) -> Response {
        Response {
            status: Status::Ok,
            body,
            allow: false,
        }
    }

    /// An error whose body is its status line, plus `detail` when there is
    /// one worth telling the client (which rule its request broke).
    pub fn error(status: Status, detail: Option<&str>) -> Response {
        let mut body = format!("{} {}", status.code(), status.reason());
        if let Some(detail) = detail {
            let _ = write!(body, ": {detail}");
        }
        body.push('\n');
        Response {
            status,
            body,
            allow: status == Status::MethodNotAllowed,
        }
    }
}

/// What the `Connection` header says about the connection's future.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Persistence {
    /// HTTP/1.1 default: stays open, no header needed.
    Implicit,
    /// `Connection: keep-alive`, which an HTTP/1.0 client needs to hear.
    KeepAlive,
    /// `Connection: close`: this is the last response.
    Close,
}

/// Serializes `response`; with `head_only` the body is left out but its
/// length still stated.
pub(super) fn render(response: &Response, persistence: Persistence, head_only: bool) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nServer: portcullis\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
        response.status.code(),
        response.status.reason(),
        response.body.len()
    );
    if response.allow {
        head.push_str("Allow: ");
        head.push_str(ALLOWED_METHODS);
        head.push_str("\r\n");
    }
    match persistence {
        Persistence::Implicit => {}
        Persistence::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
        Persistence::Close => head.push_str("Connection: close\r\n"),
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend_from_slice(response.body.as_bytes());
    }
    bytes
}

/// The body of `GET /`: what the server knows about this connection, one
/// `key=value` per line, `-` for what is absent.
pub(super) fn connection_report(info: &ConnectionInfo, host: Option<&str>) -> String {
    let client = info.client.to_string();
    let peer = info.peer.to_string();
    let facts = [
        ("transport", Some(info.transport.as_str())),
        ("domain", info.domain.as_deref()),
        ("sni", info.sni.as_deref()),
        ("alpn", info.alpn.as_deref()),
        ("client_cn", info.client_cn.as_deref()),
        ("client_fingerprint", info.client_fingerprint.as_deref()),
        ("host", host),
        ("backend", Some(info.backend)),
        // The real client (a trusted proxy's PROXY header says who), and
        // the TCP peer (the client itself, or the proxy).
        ("client_addr", Some(client.as_str())),
        ("peer_addr", Some(peer.as_str())),
    ];
    let mut body = String::new();
    for (key, value) in facts {
        let _ = writeln!(body, "{key}={}", printable(value));
    }
    body
}

/// `-` for nothing; otherwise the value with control characters replaced,
/// because a certificate's common name is chosen by whoever made the
/// certificate and must not be able to add lines of its own to the report.
fn printable(value: Option<&str>) -> String {
    match value {
        None | Some("") => "-".to_string(),
        Some(value) => value
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_states_its_length_even_without_a_body() {
        let response = Response::ok("ok\n".to_string());
        let full = render(&response, Persistence::Implicit, false);
        assert_eq!(
            full,
            b"HTTP/1.1 200 OK\r\nServer: portcullis\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nok\n"
        );
        let head = render(&response, Persistence::Implicit, true);
        assert_eq!(head, &full[..full.len() - 3]);
    }

    #[test]
    fn persistence_and_allow_become_headers() {
        let response = Response::error(Status::MethodNotAllowed, None);
        let text = String::from_utf8(render(&response, Persistence::Close, false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("\r\nAllow: GET, HEAD, POST\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        let text = String::from_utf8(render(&response, Persistence::KeepAlive, false)).unwrap();
        assert!(text.contains("\r\nConnection: keep-alive\r\n"));
    }

    #[test]
    fn report_values_cannot_forge_lines() {
        assert_eq!(printable(None), "-");
        assert_eq!(printable(Some("")), "-");
        assert_eq!(printable(Some("eve\ntransport=mtls")), "eve?transport=mtls");
    }
}
