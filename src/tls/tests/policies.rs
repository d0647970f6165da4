//! Domain policies end to end, in memory: each domain reports the right
//! facts, enforces its own client-certificate rule with its own CA, and
//! never resumes a session made under another domain.

use crate::connection_info::Transport;
use crate::domains::ClientAuth;
use crate::tls::dev_certs::{CA_PEM, CLIENT_CERT_PEM, OTHER_CA_PEM, OTHER_CLIENT_CERT_PEM};
use crate::tls::session::fingerprint;
use crate::tls::test_support::*;
use crate::tls::{
    ClientConfig, GateOptions, SniFallback, TlsError, TlsGate, TlsSession, TlsVersion,
};
use openssl::x509::X509;

fn cert_fingerprint(pem: &[u8]) -> String {
    fingerprint(&X509::from_pem(pem).expect("pem")).expect("digest")
}

/// Drives a handshake that the server is expected to refuse, stopping at
/// the server's error so the test can look at what it left to send.
fn until_server_fails(pair: &mut Pair) -> TlsError {
    for _ in 0..100 {
        let _ = pair.client.process(&mut pair.client_plain);
        shuttle(&mut pair.client, &mut pair.server, usize::MAX);
        if let Err(e) = pair.server.process(&mut pair.server_plain) {
            return e;
        }
        // The client may finish (TLS 1.3) or fail once the alert lands.
        shuttle(&mut pair.server, &mut pair.client, usize::MAX);
    }
    panic!("the server never failed");
}

#[test]
fn each_policy_reports_the_right_facts() {
    let gate = three_domain_gate();
    let cases = [
        ("localhost", ClientCert::None, Transport::Tls),
        ("localhost", ClientCert::Dev, Transport::Tls),
        ("optional.localhost", ClientCert::None, Transport::Tls),
        ("optional.localhost", ClientCert::Dev, Transport::Mtls),
        ("mtls.localhost", ClientCert::Dev, Transport::Mtls),
    ];
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        for (sni, cert, transport) in cases {
            let pair = connected(&gate, &client_with_version(cert, version), Some(sni));
            let info = pair.server.info(&base_info());
            let what = format!("{sni} {cert:?} {version:?}");
            assert_eq!(info.transport, transport, "{what}");
            assert_eq!(info.sni.as_deref(), Some(sni), "{what}");
            assert_eq!(info.domain.as_deref(), Some(sni), "{what}");
            assert_eq!(info.alpn.as_deref(), Some("http/1.1"), "{what}");
            if transport == Transport::Mtls {
                assert_eq!(info.client_cn.as_deref(), Some("dev-client"), "{what}");
                let expected = cert_fingerprint(CLIENT_CERT_PEM);
                assert_eq!(info.client_fingerprint.as_deref(), Some(expected.as_str()));
                assert_eq!(expected.len(), 32 * 3 - 1);
                assert!(expected
                    .bytes()
                    .all(|b| b == b':' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            } else {
                // A certificate nobody asked for is not reported.
                assert_eq!(info.client_cn, None, "{what}");
                assert_eq!(info.client_fingerprint, None, "{what}");
            }
            let client_info = pair.client.info(&base_info());
            assert_eq!(client_info.transport, Transport::Tls);
            assert_eq!(client_info.alpn.as_deref(), Some("http/1.1"));
        }
    }
}

#[test]
fn a_required_certificate_that_is_missing_fails_with_an_alert_to_flush() {
    let gate = three_domain_gate();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let mut pair = Pair::new(
            &gate,
            &client_with_version(ClientCert::None, version),
            Some("mtls.localhost"),
        );
        let error = until_server_fails(&mut pair);
        assert_eq!(error.reason(), "no_client_cert", "{version:?}: {error}");
        assert!(
            !pair.server.outgoing().is_empty(),
            "{version:?}: alert must be queued"
        );
        // The error sticks, and the client learns from the alert.
        assert_eq!(pair.server.process(&mut Vec::new()).unwrap_err(), error);
        shuttle(&mut pair.server, &mut pair.client, usize::MAX);
        // TLS 1.2 fails the client's handshake; a TLS 1.3 client has
        // already finished when the server's verdict arrives.
        let client_error = pair.client.process(&mut Vec::new()).unwrap_err();
        assert!(client_error.message().contains("alert"), "{client_error}");
        let expected = match version {
            TlsVersion::Tls12 => "handshake_failed",
            TlsVersion::Tls13 => "protocol_error",
        };
        assert_eq!(client_error.reason(), expected, "{client_error}");
    }
}

#[test]
fn a_certificate_from_a_foreign_ca_is_rejected() {
    let gate = three_domain_gate();
    for sni in ["optional.localhost", "mtls.localhost"] {
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let mut pair = Pair::new(
                &gate,
                &client_with_version(ClientCert::Foreign, version),
                Some(sni),
            );
            let error = until_server_fails(&mut pair);
            assert_eq!(
                error.reason(),
                "bad_client_cert",
                "{sni} {version:?}: {error}"
            );
            assert!(!pair.server.outgoing().is_empty());
        }
    }
    // ...while a domain without client auth ignores it entirely.
    let pair = connected(&gate, &client(ClientCert::Foreign), Some("localhost"));
    let info = pair.server.info(&base_info());
    assert_eq!(info.transport, Transport::Tls);
    assert_eq!(info.client_fingerprint, None);
    assert_ne!(
        Some(cert_fingerprint(OTHER_CLIENT_CERT_PEM)),
        info.client_fingerprint
    );
}

#[test]
fn sni_fallbacks_default_or_reject() {
    let gate = three_domain_gate();
    // No SNI: defaults to localhost.
    let pair = connected(&gate, &client(ClientCert::None), None);
    let info = pair.server.info(&base_info());
    assert_eq!(info.domain.as_deref(), Some("localhost"));
    assert_eq!(info.sni, None);
    // Unknown SNI: rejected with unrecognized_name.
    let tls = crate::tls::ClientConfig {
        verify_hostname: false,
        ..client_config(ClientCert::None)
    }
    .build()
    .unwrap();
    // The gate refuses before any TLS state exists, with the alert the
    // client reads as "unrecognized name".
    let mut client = TlsSession::client(&tls, Some("nosuch.example"), None).unwrap();
    client.process(&mut Vec::new()).unwrap();
    let refusal = gate.accept(client.outgoing()).unwrap_err();
    assert_eq!(refusal.error().reason(), "unknown_sni", "{refusal}");
    client.receive(&refusal.alert_record());
    let client_error = client.process(&mut Vec::new()).unwrap_err();
    assert!(
        client_error.message().contains("unrecognized name"),
        "{client_error}"
    );
    // The development gate defaults unknown names to localhost instead.
    let dev = TlsGate::development().unwrap();
    let pair = connected(&dev, &tls, Some("nosuch.example"));
    assert_eq!(
        pair.server.info(&base_info()).domain.as_deref(),
        Some("localhost")
    );
}

fn two_ca_gate(dev_first: bool) -> TlsGate {
    let dev = domain(&["dev.localhost"], ClientAuth::Required, Some(CA_PEM));
    let other = domain(
        &["other.localhost"],
        ClientAuth::Required,
        Some(OTHER_CA_PEM),
    );
    let domains = if dev_first {
        [dev, other]
    } else {
        [other, dev]
    };
    let options = GateOptions {
        no_sni: SniFallback::Default("dev.localhost".to_string()),
        ..GateOptions::default()
    };
    TlsGate::new(&domains, &options).unwrap()
}

#[test]
fn the_selected_domains_ca_is_the_one_that_verifies() {
    for dev_first in [true, false] {
        let gate = two_ca_gate(dev_first);
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for (sni, cert, admitted_cn) in [
                ("dev.localhost", ClientCert::Dev, Some("dev-client")),
                ("dev.localhost", ClientCert::Foreign, None),
                ("other.localhost", ClientCert::Foreign, Some("intruder")),
                ("other.localhost", ClientCert::Dev, None),
            ] {
                let what = format!("dev_first={dev_first} {version:?} {sni} {cert:?}");
                let mut pair = Pair::new(&gate, &client_with_version(cert, version), Some(sni));
                let (_, server) = pair.run();
                match admitted_cn {
                    Some(cn) => {
                        server.unwrap();
                        let info = pair.server.info(&base_info());
                        assert_eq!(info.transport, Transport::Mtls, "{what}");
                        assert_eq!(info.client_cn.as_deref(), Some(cn), "{what}");
                        assert_eq!(info.domain.as_deref(), Some(sni), "{what}");
                    }
                    None => {
                        let error = server.expect_err(&what);
                        assert_eq!(error.reason(), "bad_client_cert", "{what}: {error}");
                    }
                }
            }
        }
    }
}

/// Connects, lets the client take in any ticket, and returns the session.
fn saved_session(
    gate: &TlsGate,
    tls: &crate::tls::ClientTls,
    sni: &str,
) -> crate::tls::ClientSession {
    let mut pair = connected(gate, tls, Some(sni));
    // A TLS 1.3 ticket is sent after the handshake; pass it over.
    pair.server.send(b"hello").unwrap();
    let (c, s) = pair.run();
    c.unwrap();
    s.unwrap();
    assert_eq!(pair.client_plain, b"hello");
    // OpenSSL drops a session from the cache when its connection is
    // freed without an orderly shutdown, so close like a real server.
    pair.client.close();
    pair.server.close();
    let (c, s) = pair.run();
    c.unwrap();
    s.unwrap();
    pair.client.ssl_session().expect("a session to resume")
}

fn resume(
    gate: &TlsGate,
    tls: &crate::tls::ClientTls,
    sni: &str,
    session: &crate::tls::ClientSession,
) -> (Pair, Result<(), TlsError>) {
    let client = TlsSession::client(tls, Some(sni), Some(session)).unwrap();
    let mut pair = Pair::with_client(gate, client);
    let (_, server) = pair.run();
    (pair, server)
}

/// (name, version, tickets): the three ways a session can come back.
const RESUMPTION_KINDS: [(&str, TlsVersion, bool); 3] = [
    ("TLS 1.2 session id", TlsVersion::Tls12, false),
    ("TLS 1.2 ticket", TlsVersion::Tls12, true),
    ("TLS 1.3 ticket", TlsVersion::Tls13, true),
];

fn resumption_client(version: TlsVersion, tickets: bool) -> crate::tls::ClientTls {
    ClientConfig {
        min_version: Some(version),
        max_version: Some(version),
        session_tickets: tickets,
        ..client_config(ClientCert::None)
    }
    .build()
    .unwrap()
}

#[test]
fn a_session_resumes_within_its_domain() {
    let gate = TlsGate::development().unwrap();
    for (kind, version, tickets) in RESUMPTION_KINDS {
        let tls = resumption_client(version, tickets);
        let session = saved_session(&gate, &tls, "localhost");
        let (pair, server) = resume(&gate, &tls, "localhost", &session);
        server.unwrap();
        assert!(
            pair.client.session_reused(),
            "{kind}: client did not resume"
        );
        assert!(
            pair.server.session_reused(),
            "{kind}: server did not resume"
        );
        assert_eq!(
            pair.server.info(&base_info()).domain.as_deref(),
            Some("localhost")
        );
    }
}

#[test]
fn a_session_never_resumes_into_a_domain_that_requires_client_certs() {
    let gate = TlsGate::development().unwrap();
    for (kind, version, tickets) in RESUMPTION_KINDS {
        let tls = resumption_client(version, tickets);
        let session = saved_session(&gate, &tls, "localhost");
        let (pair, server) = resume(&gate, &tls, "mtls.localhost", &session);
        // OpenSSL itself must refuse the session (not just our
        // post-handshake check), and the full handshake then fails for
        // want of a client certificate.
        assert!(
            !pair.server.session_reused(),
            "{kind}: resumed across domains"
        );
        let error = server.expect_err(kind);
        assert_eq!(error.reason(), "no_client_cert", "{kind}: {error}");
    }
}

#[test]
fn an_mtls_session_does_not_resume_into_another_domain_either() {
    let gate = TlsGate::development().unwrap();
    for (kind, version, tickets) in RESUMPTION_KINDS {
        let tls = ClientConfig {
            min_version: Some(version),
            max_version: Some(version),
            session_tickets: tickets,
            ..client_config(ClientCert::Dev)
        }
        .build()
        .unwrap();
        let session = saved_session(&gate, &tls, "mtls.localhost");
        let (pair, server) = resume(&gate, &tls, "mtls.localhost", &session);
        server.unwrap();
        assert!(pair.server.session_reused(), "{kind}");
        assert_eq!(
            pair.server.info(&base_info()).transport,
            Transport::Mtls,
            "{kind}"
        );
        let (pair, server) = resume(&gate, &tls, "localhost", &session);
        server.unwrap();
        assert!(
            !pair.server.session_reused(),
            "{kind}: resumed across domains"
        );
        assert_eq!(
            pair.server.info(&base_info()).domain.as_deref(),
            Some("localhost")
        );
    }
}

#[test]
fn the_development_gate_describes_its_domains() {
    let gate = TlsGate::development().unwrap();
    let rules = gate.domain_rules();
    assert_eq!(rules.rules.len(), 2);
    assert_eq!(
        rules.for_name("localhost").unwrap().client_auth,
        ClientAuth::None
    );
    assert_eq!(
        rules.for_name("x.localhost").unwrap().name.as_ref(),
        "localhost"
    );
    let mtls = rules.for_name("MTLS.localhost.").unwrap();
    assert_eq!(
        (mtls.name.as_ref(), mtls.client_auth),
        ("mtls.localhost", ClientAuth::Required)
    );
    assert_eq!(rules.fallback, Some(0));
    // A client connecting by address sends no SNI and gets localhost.
    let tls = ClientConfig {
        verify_hostname: true,
        ..client_config(ClientCert::None)
    }
    .build()
    .unwrap();
    let pair = connected(&gate, &tls, Some("127.0.0.1"));
    let info = pair.server.info(&base_info());
    assert_eq!(
        (info.sni, info.domain.as_deref()),
        (None, Some("localhost"))
    );
}
