//! Fuzzes the HTTP/2 frame parser and the connection above it with bytes
//! from a hostile client.
//!
//! First, `frame::parse` walks the raw input frame by frame: it must never
//! panic and never claim more octets than it was given. Then the same bytes
//! follow a valid preface and SETTINGS into an HTTP/2 connection of the
//! `http` service (the first byte picks the transport, and where the input
//! is split into two deliveries), fed the way the engine feeds them; beyond
//! "no panic", everything the server writes must be whole, parseable frames.

#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use portcullis::connection_info::{ConnectionInfo, Transport};
use portcullis::domains::{ClientAuth, DomainRule, DomainRules, NameTable};
use portcullis::service::http::{Http, HttpLimits};
use portcullis::service::http2::frame::{self, Parsed};
use portcullis::service::http2::preface::PREFACE;
use portcullis::service::{Requests, Service, Session, SessionId};

fuzz_target!(|input: &[u8]| {
    let mut rest = input;
    while let Ok(Parsed::Frame(_, used)) = frame::parse(rest, 16_384) {
        assert!(
            used > 0 && used <= rest.len(),
            "parse claimed {used} of {}",
            rest.len()
        );
        rest = &rest[used..];
    }

    let Some((&control, bytes)) = input.split_first() else {
        return;
    };
    let info = connection(control % 3);
    let split = bytes.len() * usize::from(control / 3) / 85;
    let (first, second) = bytes.split_at(split.min(bytes.len()));
    let mut opening = PREFACE.to_vec();
    opening.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    opening.extend_from_slice(first);

    let mut http = Http::new(Arc::new(rules()), HttpLimits::default());
    let id = SessionId(1);
    let mut output = Vec::new();
    let mut requests = Requests::default();
    http.on_connect(&mut Session::new(id, &info, &mut output, &mut requests));
    let mut unconsumed = Vec::new();
    for delivery in [&opening[..], second] {
        unconsumed.extend_from_slice(delivery);
        let mut requests = Requests::default();
        let mut session = Session::new(id, &info, &mut output, &mut requests);
        let consumed = http.on_data(&mut session, &unconsumed);
        assert!(consumed <= unconsumed.len(), "consumed more than offered");
        unconsumed.drain(..consumed);
        if requests.close {
            break;
        }
    }
    let mut written = &output[..];
    while !written.is_empty() {
        match frame::parse(written, 1 << 24) {
            Ok(Parsed::Frame(_, used)) => written = &written[used..],
            other => panic!("the server wrote something that is not a frame: {other:?}"),
        }
    }
    http.on_close(id, &info);
});

fn rules() -> DomainRules {
    let mut names = NameTable::new();
    let mut rules = Vec::new();
    for (index, (name, client_auth)) in [
        ("localhost", ClientAuth::None),
        ("mtls.localhost", ClientAuth::Required),
    ]
    .into_iter()
    .enumerate()
    {
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

/// 0: h2c; 1: TLS with ALPN h2; 2: mTLS with ALPN h2.
fn connection(kind: u8) -> ConnectionInfo {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 8443));
    let mut info = ConnectionInfo::plain(addr, addr, "fuzz");
    if kind > 0 {
        info.transport = if kind == 1 {
            Transport::Tls
        } else {
            Transport::Mtls
        };
        let domain = if kind == 1 {
            "localhost"
        } else {
            "mtls.localhost"
        };
        info.sni = Some(domain.to_string());
        info.domain = Some(domain.into());
        info.alpn = Some("h2".to_string());
    }
    info
}
