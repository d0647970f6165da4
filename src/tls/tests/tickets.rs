//! Session tickets through real handshakes, in memory: a ticket survives
//! one rotation and not two, and gates sharing a key file (as processes
//! behind `SO_REUSEPORT` do) resume each other's tickets.

use std::time::Duration;

use crate::domains::ClientAuth;
use crate::tls::test_support::*;
use crate::tls::tickets::CLOCK_SKEW;
use crate::tls::{
    ClientConfig, ClientSession, ClientTls, GateOptions, KeyFile, SniFallback, TicketSettings,
    TlsGate, TlsSession, TlsVersion,
};

const ROTATION: Duration = Duration::from_secs(3600);

fn gate(key_file: Option<&std::path::Path>) -> TlsGate {
    TlsGate::new(
        &[domain(&["localhost"], ClientAuth::None, None)],
        &GateOptions {
            no_sni: SniFallback::Default("localhost".into()),
            tickets: TicketSettings {
                rotation: ROTATION,
                key_file: key_file.map(|p| p.to_path_buf()),
            },
            ..GateOptions::default()
        },
    )
    .unwrap()
}

fn ticket_client(version: TlsVersion) -> ClientTls {
    ClientConfig {
        min_version: Some(version),
        max_version: Some(version),
        session_tickets: true,
        ..client_config(ClientCert::None)
    }
    .build()
    .unwrap()
}

/// A full handshake with `gate`, closed in order; returns the ticket.
fn ticket_from(gate: &TlsGate, tls: &ClientTls) -> ClientSession {
    let mut pair = connected(gate, tls, Some("localhost"));
    pair.server.send(b"x").unwrap();
    pair.client.close();
    pair.server.close();
    let (c, s) = pair.run();
    c.unwrap();
    s.unwrap();
    pair.client.ssl_session().expect("a ticket")
}

/// Whether `gate` resumes `session`. Closes in order: OpenSSL marks a
/// session not resumable when its connection is freed without a shutdown.
fn resumes(gate: &TlsGate, tls: &ClientTls, session: &ClientSession) -> bool {
    let client = TlsSession::client(tls, Some("localhost"), Some(session)).unwrap();
    let mut pair = Pair::with_client(gate, client);
    let (c, s) = pair.run();
    c.unwrap();
    s.unwrap();
    pair.client.close();
    pair.server.close();
    let (c, s) = pair.run();
    c.unwrap();
    s.unwrap();
    pair.server.session_reused()
}

fn at_skew<T>(seconds: u64, f: impl FnOnce() -> T) -> T {
    CLOCK_SKEW.with(|c| c.set(seconds));
    let result = f();
    CLOCK_SKEW.with(|c| c.set(0));
    result
}

#[test]
fn a_ticket_survives_one_rotation_but_not_two() {
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let gate = gate(None);
        let tls = ticket_client(version);
        // One ticket per check: a TLS 1.3 client uses a ticket once.
        let tickets: Vec<ClientSession> = (0..3).map(|_| ticket_from(&gate, &tls)).collect();
        assert!(
            resumes(&gate, &tls, &tickets[0]),
            "{version:?}: same period"
        );
        let rotation = ROTATION.as_secs();
        assert!(
            at_skew(rotation, || resumes(&gate, &tls, &tickets[1])),
            "{version:?}: the previous key no longer decrypts"
        );
        assert!(
            !at_skew(2 * rotation, || resumes(&gate, &tls, &tickets[2])),
            "{version:?}: a key two rotations old still decrypts"
        );
        let full = gate.counters().full_handshakes();
        let resumed = gate.counters().resumed_handshakes();
        assert_eq!((full, resumed), (4, 2), "{version:?}");
    }
}

#[test]
fn gates_sharing_a_key_file_resume_each_others_tickets() {
    let dir = TempDir::new("shared-tickets");
    let path = dir.path.join("tickets.key");
    KeyFile::generate(&path).unwrap();
    let (one, two) = (gate(Some(&path)), gate(Some(&path)));
    let (alone, other) = (gate(None), gate(None));
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let tls = ticket_client(version);
        let session = ticket_from(&one, &tls);
        assert!(resumes(&two, &tls, &session), "{version:?}: shared file");
        let session = ticket_from(&alone, &tls);
        assert!(!resumes(&other, &tls, &session), "{version:?}: random keys");
    }
}

#[test]
fn a_world_readable_key_file_stops_the_gate_with_a_message() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("open-tickets");
    let path = dir.path.join("tickets.key");
    KeyFile::generate(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = TlsGate::new(
        &[domain(&["localhost"], ClientAuth::None, None)],
        &GateOptions {
            tickets: TicketSettings {
                key_file: Some(path.clone()),
                ..TicketSettings::default()
            },
            ..GateOptions::default()
        },
    )
    .unwrap_err();
    assert!(error.starts_with("tls: ticket_key_file: "), "{error}");
    assert!(
        error.contains(&path.display().to_string()) && error.contains("0644"),
        "{error}"
    );
}

#[test]
fn every_tls13_resumption_hands_out_a_fresh_ticket() {
    let gate = gate(None);
    let tls = ticket_client(TlsVersion::Tls13);
    let mut session = ticket_from(&gate, &tls);
    for round in 0..4 {
        let client = TlsSession::client(&tls, Some("localhost"), Some(&session)).unwrap();
        let mut pair = Pair::with_client(&gate, client);
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        assert!(pair.server.session_reused(), "round {round}");
        pair.client.close();
        pair.server.close();
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        session = pair.client.ssl_session().unwrap();
    }
}
