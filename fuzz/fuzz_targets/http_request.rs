//! Fuzzes the HTTP service with arbitrary bytes from a hostile client.
//!
//! The first input byte picks the transport (plain, TLS, mTLS) and where the
//! rest is split into two deliveries, so both "everything at once" and "a
//! request cut anywhere" are explored. The bytes are fed the way the engine
//! feeds them: whatever `on_data` leaves unconsumed is offered again in
//! front of the next delivery.
//!
//! Beyond "no panic", the target checks that the output is a sequence of
//! well-formed responses: a valid status line, one `Content-Length`, and a
//! body of exactly that length (or none, for `HEAD`).

#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use portcullis::connection_info::{ConnectionInfo, Transport};
use portcullis::domains::{ClientAuth, DomainRule, DomainRules, NameTable};
use portcullis::service::http::{Http, HttpLimits};
use portcullis::service::http2::Http2Options;
use portcullis::service::{Requests, Service, Session, SessionId};

fuzz_target!(|input: &[u8]| {
    let Some((&control, bytes)) = input.split_first() else {
        return;
    };
    let transport = [Transport::Plain, Transport::Tls, Transport::Mtls][usize::from(control % 3)];
    let split = bytes.len() * usize::from(control / 3) / 85;
    let (first, second) = bytes.split_at(split.min(bytes.len()));

    let info = connection(transport);
    // A small head limit so the 414 and 431 paths are reached often.
    let limits = HttpLimits {
        max_header_bytes: 512,
        max_requests_per_connection: Some(64),
    };
    // HTTP/1.1 only: input that opens with the HTTP/2 preface would get
    // frames back, which `http2_frames` checks instead.
    let http2 = Http2Options {
        h2c: false,
        ..Http2Options::default()
    };
    let mut http = Http::with_http2(Arc::new(rules()), limits, http2);
    let id = SessionId(1);
    let mut unconsumed = Vec::new();
    let mut output = Vec::new();
    for delivery in [first, second] {
        unconsumed.extend_from_slice(delivery);
        let mut requests = Requests::default();
        let mut session = Session::new(id, &info, &mut output, &mut requests);
        let consumed = http.on_data(&mut session, &unconsumed);
        assert!(consumed <= unconsumed.len(), "consumed more than offered");
        unconsumed.drain(..consumed);
        if requests.close {
            assert!(
                unconsumed.is_empty(),
                "a closing session leaves bytes behind"
            );
            break;
        }
    }
    http.on_close(id, &info);
    check_responses(&output);
});

fn rules() -> DomainRules {
    let mut names = NameTable::new();
    let listed = [
        ("localhost", ClientAuth::None),
        ("mtls.localhost", ClientAuth::Required),
        ("*.opt.localhost", ClientAuth::Optional),
    ];
    let mut rules = Vec::new();
    for (index, (name, client_auth)) in listed.into_iter().enumerate() {
        names.insert(name, index).expect("valid fixed names");
        rules.push(DomainRule {
            name: name.into(),
            client_auth,
        });
    }
    DomainRules {
        rules,
        names,
        fallback: Some(0),
    }
}

fn connection(transport: Transport) -> ConnectionInfo {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 8443));
    let mut info = ConnectionInfo::plain(addr, addr, "fuzz");
    info.transport = transport;
    if transport != Transport::Plain {
        let domain = if transport == Transport::Mtls {
            "mtls.localhost"
        } else {
            "localhost"
        };
        info.sni = Some(domain.to_string());
        info.domain = Some(domain.into());
    }
    if transport == Transport::Mtls {
        info.client_cn = Some("fuzz".to_string());
    }
    info
}

/// Walks `output` response by response, panicking on anything malformed.
fn check_responses(mut output: &[u8]) {
    while !output.is_empty() {
        let head_end = find(output, b"\r\n\r\n").expect("a response head ends with CRLFCRLF");
        let head = std::str::from_utf8(&output[..head_end]).expect("response heads are text");
        let mut lines = head.split("\r\n");
        check_status_line(lines.next().unwrap_or_default());
        let mut content_length = None;
        for line in lines {
            let (name, value) = line
                .split_once(": ")
                .expect("header lines are `name: value`");
            if name == "Content-Length" {
                assert!(content_length.is_none(), "one Content-Length per response");
                content_length = Some(value.parse::<usize>().expect("a numeric Content-Length"));
            }
        }
        let length = content_length.expect("every response states its length");
        output = &output[head_end + 4..];
        // A response to HEAD has no body: then what follows is the next
        // response or nothing. (No body this service sends starts that way.)
        if !output.is_empty() && !output.starts_with(b"HTTP/1.1 ") {
            assert!(
                output.len() >= length,
                "body shorter than its Content-Length"
            );
            output = &output[length..];
        }
    }
}

fn check_status_line(line: &str) {
    let rest = line
        .strip_prefix("HTTP/1.1 ")
        .expect("status line starts with HTTP/1.1");
    let (code, reason) = rest.split_once(' ').expect("status line has a reason");
    assert_eq!(code.len(), 3, "three-digit status code");
    let code: u16 = code.parse().expect("numeric status code");
    assert!((200..600).contains(&code), "status {code} out of range");
    assert!(!reason.is_empty(), "empty reason phrase");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
