//! Tests of the HTTP/1.1 side of the service: requests, pipelining,
//! persistence, limits, and the gate's 421 and 403.

use super::*;
use crate::service::Requests;

/// A connection to a fresh `Http`, driven the way the engine drives it:
/// what `on_data` does not consume is offered again with the next bytes.
struct Client {
    http: Http,
    info: ConnectionInfo,
    unconsumed: Vec<u8>,
    closed: bool,
}

const ID: SessionId = SessionId(7);

impl Client {
    fn new(info: ConnectionInfo) -> Client {
        Client::with_limits(info, HttpLimits::default())
    }

    fn with_limits(info: ConnectionInfo, limits: HttpLimits) -> Client {
        let rules = Arc::new(policy::tests::rules(true));
        Client {
            http: Http::new(rules, limits),
            info,
            unconsumed: Vec::new(),
            closed: false,
        }
    }

    /// Delivers `bytes`; returns what the service sent back.
    fn send(&mut self, bytes: &str) -> String {
        self.send_bytes(bytes.as_bytes())
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> String {
        assert!(!self.closed, "sending on a closed session");
        self.unconsumed.extend_from_slice(bytes);
        let mut output = Vec::new();
        let mut requests = Requests::default();
        let mut session = Session::new(ID, &self.info, &mut output, &mut requests);
        let consumed = self.http.on_data(&mut session, &self.unconsumed);
        assert!(consumed <= self.unconsumed.len());
        self.unconsumed.drain(..consumed);
        self.closed = requests.close;
        String::from_utf8(output).expect("responses are text")
    }
}

fn addr(text: &str) -> std::net::SocketAddr {
    text.parse().unwrap()
}

fn plain() -> ConnectionInfo {
    ConnectionInfo::plain(addr("127.0.0.1:50000"), addr("127.0.0.1:8443"), "test")
}

fn tls(domain: &str) -> ConnectionInfo {
    ConnectionInfo {
        transport: Transport::Tls,
        sni: Some(domain.to_string()),
        alpn: Some("http/1.1".to_string()),
        domain: Some(domain.into()),
        ..plain()
    }
}

fn mtls(domain: &str) -> ConnectionInfo {
    ConnectionInfo {
        transport: Transport::Mtls,
        client_cn: Some("alice".to_string()),
        client_fingerprint: Some("ab:cd".to_string()),
        ..tls(domain)
    }
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

/// The status codes in `output`, in order. Splits on response heads;
/// none of this service's bodies contains one.
fn statuses(output: &str) -> Vec<u16> {
    output
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| output.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

fn body(output: &str) -> &str {
    output.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[test]
fn get_root_reports_the_connection() {
    let mut client = Client::new(plain());
    let output = client.send(&get("/", "localhost"));
    let body = "transport=plain\ndomain=-\nsni=-\nalpn=-\nclient_cn=-\nclient_fingerprint=-\nhost=localhost\nbackend=test\nclient_addr=127.0.0.1:50000\npeer_addr=127.0.0.1:50000\n";
    let expected = format!(
        "HTTP/1.1 200 OK\r\nServer: portcullis\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(output, expected);
    assert!(!client.closed);
    assert!(client.unconsumed.is_empty());
}

#[test]
fn healthz_says_ok() {
    let output = Client::new(plain()).send(&get("/healthz?probe=1", "localhost"));
    assert_eq!(statuses(&output), [200]);
    assert_eq!(body(&output), "ok\n");
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    for path in ["/", "/healthz", "/missing"] {
        let got = Client::new(plain()).send(&get(path, "localhost"));
        let head =
            Client::new(plain()).send(&format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        let (get_head, get_body) = got.split_once("\r\n\r\n").unwrap();
        assert!(!get_body.is_empty());
        assert_eq!(head, format!("{get_head}\r\n\r\n"), "{path}");
    }
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let mut client = Client::new(plain());
    let three = [get("/healthz", "a"), get("/nope", "a"), get("/", "a")].concat();
    let output = client.send(&three);
    assert_eq!(statuses(&output), [200, 404, 200]);
    assert!(
        output.ends_with("backend=test\nclient_addr=127.0.0.1:50000\npeer_addr=127.0.0.1:50000\n")
    );
    assert!(client.unconsumed.is_empty());
    assert!(!client.closed);
}

#[test]
fn a_partial_request_is_left_unconsumed_until_complete() {
    let request = "GET /healthz HTTP/1.1\r\nHost: localhost:8443\r\nUser-Agent: t\r\n\r\n";
    for pipelined in ["", "GET / HT"] {
        let text = format!("{request}{pipelined}");
        let mut client = Client::new(plain());
        for (at, byte) in request.bytes().enumerate() {
            let output = client.send_bytes(&[byte]);
            if at + 1 < request.len() {
                assert_eq!(output, "", "answered early at byte {at}");
                assert_eq!(
                    client.unconsumed.len(),
                    at + 1,
                    "consumed early at byte {at}"
                );
            } else {
                assert_eq!(statuses(&output), [200]);
                assert!(client.unconsumed.is_empty());
            }
        }
        // Whatever followed stays unconsumed.
        let output = client.send(&text[request.len()..]);
        assert_eq!(output, "");
        assert_eq!(client.unconsumed, pipelined.as_bytes());
    }
}

#[test]
fn http_1_1_keeps_the_connection_unless_told_to_close() {
    let mut client = Client::new(plain());
    let output = client.send(&get("/healthz", "a"));
    assert!(!output.contains("Connection:"));
    assert!(!client.closed);

    let close = "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let output = client.send(&format!("{close}{}", get("/", "a")));
    assert_eq!(
        statuses(&output),
        [200],
        "nothing after the last request is answered"
    );
    assert!(output.contains("\r\nConnection: close\r\n"));
    assert!(client.closed);
    assert!(client.unconsumed.is_empty());
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let mut client = Client::new(plain());
    let output = client.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(output.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(output.contains("\r\nConnection: keep-alive\r\n"));
    assert!(!client.closed);
    let output = client.send("GET /healthz HTTP/1.0\r\n\r\n");
    assert!(output.contains("\r\nConnection: close\r\n"));
    assert!(client.closed);
}

#[test]
fn malformed_requests_get_400_and_close() {
    for bad in [
        "GET /healthz\r\n\r\n",
        "GET  /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX: b\r\n folded\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
        "GET /h\x7fz HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /healthz HTTP/1.1\nHost: a\n\n",
        "GET /healthz HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let mut client = Client::new(plain());
        let output = client.send(&format!("{bad}{}", get("/", "a")));
        assert_eq!(statuses(&output), [400], "{bad:?}");
        assert!(output.contains("\r\nConnection: close\r\n"), "{bad:?}");
        assert!(client.closed, "{bad:?}");
        assert!(client.unconsumed.is_empty(), "{bad:?}");
    }
}

#[test]
fn an_oversized_head_gets_431_without_waiting_for_its_end() {
    let limits = HttpLimits {
        max_header_bytes: 256,
        ..HttpLimits::default()
    };
    let head = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "y".repeat(300));

    let mut all_at_once = Client::with_limits(plain(), limits.clone());
    let output = all_at_once.send(&head);
    assert_eq!(statuses(&output), [431]);
    assert!(all_at_once.closed);

    let mut in_pieces = Client::with_limits(plain(), limits);
    let mut sent = 0;
    for piece in head.as_bytes().chunks(10) {
        let output = in_pieces.send_bytes(piece);
        sent += piece.len();
        if sent < 256 {
            assert_eq!(output, "", "refused early, after {sent} bytes");
        } else {
            assert_eq!(statuses(&output), [431], "after {sent} bytes");
            break;
        }
    }
    assert!(in_pieces.closed);
}

#[test]
fn a_request_line_longer_than_the_limit_gets_414() {
    let limits = HttpLimits {
        max_header_bytes: 64,
        ..HttpLimits::default()
    };
    let mut client = Client::with_limits(plain(), limits);
    let output = client.send(&format!("GET /{}", "a".repeat(100)));
    assert_eq!(statuses(&output), [414]);
    assert!(client.closed);
}

#[test]
fn other_versions_get_505_and_close() {
    let mut client = Client::new(plain());
    // Judged from the request line alone.
    let output = client.send("GET / HTTP/2.0\r\n");
    assert_eq!(statuses(&output), [505]);
    assert!(client.closed);
}

#[test]
fn unknown_paths_get_404_and_the_connection_survives() {
    let mut client = Client::new(plain());
    let output = client.send(&get("/nope", "a"));
    assert_eq!(statuses(&output), [404]);
    assert!(!output.contains("Connection:"));
    assert!(!client.closed);
    assert_eq!(statuses(&client.send(&get("/", "a"))), [200]);
}

#[test]
fn post_is_answered_like_get_and_its_body_dropped() {
    let mut client = Client::new(plain());
    let output = client.send(&format!(
        "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello{}",
        get("/nope", "a")
    ));
    assert_eq!(statuses(&output), [200, 404]);
    assert!(output.contains("\r\n\r\nok\n"));
}

#[test]
fn other_methods_get_405_or_501_and_the_connection_survives() {
    let mut client = Client::new(plain());
    let output = client.send("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(statuses(&output), [405]);
    assert!(output.contains("\r\nAllow: GET, HEAD, POST\r\n"));
    assert_eq!(
        statuses(&client.send("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")),
        [405]
    );
    assert_eq!(
        statuses(&client.send("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n")),
        [405]
    );
    let output = client.send("BREW / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(statuses(&output), [501]);
    assert!(!output.contains("Allow:"));
    assert_eq!(
        statuses(&client.send("get / HTTP/1.1\r\nHost: a\r\n\r\n")),
        [501]
    );
    assert!(!client.closed);
    assert_eq!(statuses(&client.send(&get("/healthz", "a"))), [200]);
}

#[test]
fn transfer_encoding_gets_501_and_close() {
    let mut client = Client::new(plain());
    let output =
        client.send("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(statuses(&output), [501]);
    assert!(output.contains("\r\nConnection: close\r\n"));
    assert!(client.closed);
}

#[test]
fn a_host_other_than_the_handshake_domain_gets_421() {
    let mut client = Client::new(tls("localhost"));
    for request in [
        get("/", "mtls.localhost"),
        get("/healthz", "a.opt.localhost:8443"),
        "GET http://mtls.localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
    ] {
        let output = client.send(&request);
        assert_eq!(statuses(&output), [421], "{request:?}");
        assert!(!output.contains("transport="), "no content on a 421");
    }
    assert!(!client.closed, "421 leaves the connection usable");
    assert_eq!(statuses(&client.send(&get("/", "localhost"))), [200]);
}

#[test]
fn a_required_domain_is_never_served_without_a_client_certificate() {
    // Plaintext on the shared port, naming the mTLS domain.
    let mut plain_client = Client::new(plain());
    let output = plain_client.send(&get("/", "mtls.localhost:8443"));
    assert_eq!(statuses(&output), [403]);
    assert!(!output.contains("transport="));
    assert!(!plain_client.closed);
    // TLS for the mTLS domain without a verified certificate (the gate
    // should never admit this; the service refuses it all the same).
    let output = Client::new(tls("mtls.localhost")).send(&get("/", "mtls.localhost"));
    assert_eq!(statuses(&output), [403]);
    // TLS admitted for another domain cannot name it either.
    let output = Client::new(tls("localhost")).send(&get("/", "mtls.localhost"));
    assert_eq!(statuses(&output), [421]);
}

#[test]
fn mtls_reaches_the_required_domain_with_its_client_name() {
    let output = Client::new(mtls("mtls.localhost")).send(&get("/", "mtls.localhost"));
    assert_eq!(statuses(&output), [200]);
    let body = body(&output);
    assert!(body.contains("transport=mtls\n"));
    assert!(body.contains("domain=mtls.localhost\n"));
    assert!(body.contains("sni=mtls.localhost\n"));
    assert!(body.contains("alpn=http/1.1\n"));
    assert!(body.contains("client_cn=alice\n"));
    assert!(body.contains("client_fingerprint=ab:cd\n"));
}

#[test]
fn host_ports_ipv6_literals_and_case_are_understood() {
    let ok = |info: ConnectionInfo, host: &str| {
        let output = Client::new(info).send(&get("/", host));
        assert_eq!(statuses(&output), [200], "{host}");
        assert!(body(&output).contains(&format!("host={host}\n")), "{host}");
    };
    ok(tls("localhost"), "localhost:8443");
    ok(tls("localhost"), "LocalHost");
    ok(tls("localhost"), "localhost.:8443");
    ok(mtls("mtls.localhost"), "MTLS.localhost:8443");
    ok(tls("*.opt.localhost"), "Any.OPT.localhost");
    // An IP literal matches no listed name, so it resolves to the
    // fallback (`localhost`), as a handshake without SNI would.
    ok(tls("localhost"), "[::1]:8443");
    ok(tls("localhost"), "127.0.0.1");
    ok(plain(), "[::1]:8443");
    let output = Client::new(tls("mtls.localhost")).send(&get("/", "[::1]:8443"));
    assert_eq!(statuses(&output), [421]);
}

#[test]
fn a_discarded_body_keeps_pipelining_in_sync() {
    let mut client = Client::new(plain());
    // The body looks like a request; it must not be answered as one.
    let smuggled = get("/nope", "a");
    let with_body = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let output = client.send(&format!("{with_body}{}", get("/", "a")));
    assert_eq!(statuses(&output), [200, 200]);
    assert!(client.unconsumed.is_empty());

    // The same with the body arriving in pieces.
    let mut client = Client::new(plain());
    let output = client.send("GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234");
    assert_eq!(statuses(&output), [200]);
    assert!(
        client.unconsumed.is_empty(),
        "body bytes are consumed as they come"
    );
    assert_eq!(client.send("567"), "");
    let output = client.send(&format!("89{}", get("/nope", "a")));
    assert_eq!(statuses(&output), [404]);
}

#[test]
fn a_body_too_large_to_discard_gets_413_and_close() {
    let mut client = Client::new(plain());
    let request = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        MAX_DISCARDED_BODY + 1
    );
    let output = client.send(&request);
    assert_eq!(statuses(&output), [413]);
    assert!(client.closed);
}

#[test]
fn the_request_limit_closes_the_connection() {
    let limits = HttpLimits {
        max_requests_per_connection: Some(2),
        ..HttpLimits::default()
    };
    let mut client = Client::with_limits(plain(), limits);
    let output = client.send(&[get("/", "a"), get("/", "a"), get("/", "a")].concat());
    assert_eq!(statuses(&output), [200, 200]);
    assert_eq!(output.matches("Connection: close").count(), 1);
    assert!(client.closed);
}

#[test]
fn empty_lines_before_a_request_are_ignored() {
    let mut client = Client::new(plain());
    assert_eq!(client.send("\r"), "");
    let output = client.send(&format!("\n\r\n{}", get("/healthz", "a")));
    assert_eq!(statuses(&output), [200]);
}

#[test]
fn session_state_is_dropped_on_close() {
    let mut client = Client::new(plain());
    client.send("GET / HTT");
    assert_eq!(client.http.sessions.len(), 1);
    client.http.on_close(ID, &client.info);
    assert!(client.http.sessions.is_empty());
}
