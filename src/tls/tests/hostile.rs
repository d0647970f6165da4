//! Hostile ClientHellos, in memory: each is refused before any TLS state
//! exists, with the alert the parser's table promises and its own counter,
//! and a well-behaved client is served right after. Also the one hostile
//! case only OpenSSL can see: a ClientHello repeated after a
//! HelloRetryRequest that names another server.

use crate::domains::ClientAuth;
use crate::tls::hello_builder::{record, server_name, HelloBuilder};
use crate::tls::test_support::*;
use crate::tls::{
    Alert, CipherChoice, ClientConfig, GateOptions, SniFallback, TlsErrorKind, TlsGate, TlsSession,
    TlsVersion,
};

/// Refuses `bytes` and checks the label, the alert and the counter.
fn assert_refused(gate: &TlsGate, bytes: &[u8], label: &str, alert: Alert) {
    let kind = TlsErrorKind::ALL
        .into_iter()
        .find(|k| k.reason() == label)
        .expect("a known label");
    let before = gate.counters().failures(kind);
    let refusal = gate.accept(bytes).expect_err(label);
    assert_eq!(refusal.error().reason(), label, "{refusal}");
    assert_eq!(refusal.alert(), alert, "{label}");
    assert_eq!(
        refusal.alert_record()[..6],
        [0x15, 3, 3, 0, 2, 2],
        "{label}"
    );
    assert_eq!(gate.counters().failures(kind), before + 1, "{label}");
    // And the next, well-behaved client is served.
    connected(gate, &client(ClientCert::None), Some("localhost"));
}

#[test]
fn each_hostile_client_hello_gets_its_alert_and_counter() {
    let gate = three_domain_gate();
    let duplicated = HelloBuilder::new(Some(b"localhost"))
        .with(0, server_name(&[(0, b"mtls.localhost")]))
        .record();
    assert_refused(
        &gate,
        &duplicated,
        "sni_duplicated",
        Alert::IllegalParameter,
    );
    let empty = HelloBuilder::new(Some(b"")).record();
    assert_refused(&gate, &empty, "sni_empty", Alert::DecodeError);
    let long = HelloBuilder::new(Some(&[b'a'; 300])).record();
    assert_refused(&gate, &long, "sni_too_long", Alert::UnrecognizedName);
    let nul = HelloBuilder::new(Some(b"localhost\0.evil")).record();
    assert_refused(&gate, &nul, "sni_nul_byte", Alert::UnrecognizedName);
    let mut server_hello = HelloBuilder::new(Some(b"localhost")).message();
    server_hello[0] = 2;
    assert_refused(
        &gate,
        &record(&server_hello),
        "not_client_hello",
        Alert::UnexpectedMessage,
    );
    let message = HelloBuilder::new(Some(b"localhost")).message();
    let (first, rest) = message.split_at(40);
    let mut split = record(first);
    split.extend(record(rest));
    assert_refused(
        &gate,
        &split,
        "client_hello_fragmented",
        Alert::HandshakeFailure,
    );
    // The three-domain gate rejects names it does not list.
    let unknown = HelloBuilder::new(Some(b"nosuch.example")).record();
    assert_refused(&gate, &unknown, "unknown_sni", Alert::UnrecognizedName);
    let summary = gate.counters().summary();
    for label in [
        "sni_duplicated",
        "sni_empty",
        "unknown_sni",
        "client_hello_fragmented",
    ] {
        assert!(summary.contains(&format!("{label}=1")), "{summary}");
    }
}

#[test]
fn no_sni_with_reject_is_refused_as_unknown() {
    let gate = TlsGate::new(
        &[domain(&["localhost"], ClientAuth::None, None)],
        &GateOptions::default(),
    )
    .unwrap();
    let bare = HelloBuilder::new(None).record();
    let refusal = gate.accept(&bare).unwrap_err();
    assert_eq!(refusal.error().reason(), "unknown_sni");
    assert!(refusal.error().message().contains("no_sni"), "{refusal}");
}

/// Two domains whose names differ in their first label only, both
/// accepting only P-256, so a client whose first key share is X25519 gets
/// a HelloRetryRequest.
fn retry_gate() -> TlsGate {
    let p256_only = CipherChoice {
        groups: Some("P-256".to_string()),
        ..CipherChoice::default()
    };
    TlsGate::new(
        &[
            domain(&["one.localhost"], ClientAuth::None, None).with_ciphers(p256_only.clone()),
            domain(&["two.localhost"], ClientAuth::None, None).with_ciphers(p256_only),
        ],
        &GateOptions {
            unknown_sni: SniFallback::Reject,
            no_sni: SniFallback::Reject,
            ..GateOptions::default()
        },
    )
    .unwrap()
}

fn retrying_client() -> crate::tls::ClientTls {
    ClientConfig {
        groups: Some("X25519:P-256".to_string()),
        min_version: Some(TlsVersion::Tls13),
        ..client_config(ClientCert::None)
    }
    .build()
    .unwrap()
}

#[test]
fn a_hello_retry_with_the_same_name_completes() {
    let gate = retry_gate();
    let pair = connected(&gate, &retrying_client(), Some("one.localhost"));
    let info = pair.server.info(&base_info());
    assert_eq!(info.domain.as_deref(), Some("one.localhost"));
    assert_eq!(gate.counters().full_handshakes(), 1);
}

#[test]
fn a_hello_retry_naming_another_server_is_refused() {
    let gate = retry_gate();
    let client = TlsSession::client(&retrying_client(), Some("one.localhost"), None).unwrap();
    let mut pair = Pair::with_client(&gate, client);
    // The server answers the first hello with a HelloRetryRequest.
    pair.server.process(&mut Vec::new()).unwrap();
    shuttle(&mut pair.server, &mut pair.client, usize::MAX);
    pair.client.process(&mut Vec::new()).unwrap();
    let second = pair.client.outgoing().to_vec();
    pair.client.consume_outgoing(second.len());
    let at = second
        .windows(13)
        .position(|w| w == b"one.localhost")
        .expect("the second hello names the server again");
    let mut forged = second.clone();
    forged[at..at + 3].copy_from_slice(b"two");
    pair.server.receive(&forged);
    let error = pair.server.process(&mut Vec::new()).unwrap_err();
    assert_eq!(error.reason(), "sni_changed", "{error}");
    assert_eq!(gate.counters().failures(TlsErrorKind::SniChanged), 1);
    let alert = pair.server.outgoing();
    assert!(!alert.is_empty(), "an alert is queued");
    // The unchanged second hello would have completed the handshake.
    let gate = retry_gate();
    connected(&gate, &retrying_client(), Some("two.localhost"));
}
