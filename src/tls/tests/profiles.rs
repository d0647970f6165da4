//! What the default profile lets a client negotiate, in memory: only
//! forward-secret AEAD suites over TLS 1.2, anything TLS 1.3 offers, and
//! with `modern` no TLS 1.2 at all.

use crate::domains::ClientAuth;
use crate::tls::test_support::*;
use crate::tls::{ClientConfig, GateOptions, Profile, SniFallback, TlsGate, TlsVersion};

fn tls12_client(ciphers: &str) -> crate::tls::ClientTls {
    ClientConfig {
        ciphers: Some(ciphers.to_string()),
        min_version: Some(TlsVersion::Tls12),
        max_version: Some(TlsVersion::Tls12),
        ..client_config(ClientCert::None)
    }
    .build()
    .unwrap()
}

fn gate(profile: Profile) -> TlsGate {
    TlsGate::new(
        &[domain(&["localhost"], ClientAuth::None, None)],
        &GateOptions {
            no_sni: SniFallback::Default("localhost".into()),
            profile,
            ..GateOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn intermediate_refuses_cbc_and_static_rsa_and_accepts_ecdhe_aead() {
    let gate = gate(Profile::Intermediate);
    for refused in [
        "AES128-SHA",
        "AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA384",
    ] {
        let mut pair = Pair::new(&gate, &tls12_client(refused), Some("localhost"));
        let (_, server) = pair.run();
        let error = server.expect_err(refused);
        assert_eq!(error.reason(), "handshake_failed", "{refused}: {error}");
    }
    for accepted in ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"] {
        let pair = connected(&gate, &tls12_client(accepted), Some("localhost"));
        assert_eq!(
            pair.server.ssl().current_cipher().map(|c| c.name()),
            Some(accepted)
        );
    }
    // TLS 1.3 works as well.
    connected(
        &gate,
        &client_with_version(ClientCert::None, TlsVersion::Tls13),
        Some("localhost"),
    );
}

#[test]
fn modern_refuses_tls12_and_serves_tls13() {
    let gate = gate(Profile::Modern);
    let mut pair = Pair::new(
        &gate,
        &client_with_version(ClientCert::None, TlsVersion::Tls12),
        Some("localhost"),
    );
    let (_, server) = pair.run();
    assert_eq!(server.unwrap_err().reason(), "handshake_failed");
    let pair = connected(
        &gate,
        &client_with_version(ClientCert::None, TlsVersion::Tls13),
        Some("localhost"),
    );
    assert_eq!(pair.server.version(), "TLSv1.3");
}
