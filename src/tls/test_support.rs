//! Test helpers: a client engine and a server engine wired back to back in
//! memory, plus ready-made gates and client configurations from `certs/`.
//!
//! The one idea: **a "network" is just moving `outgoing()` of one engine
//! into `receive()` of the other**, so tests can split, delay, corrupt or
//! drop bytes at will.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::connection_info::ConnectionInfo;
use crate::domains::ClientAuth;

use super::dev_certs::*;
use super::{
    ClientConfig, ClientTls, Domain, GateOptions, Pem, Progress, SniFallback, TlsError, TlsGate,
    TlsSession, TlsVersion,
};

/// Which client certificate a test client presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCert {
    None,
    Dev,
    Foreign,
}

pub fn client_config(cert: ClientCert) -> ClientConfig {
    let (cert, key) = match cert {
        ClientCert::None => (None, None),
        ClientCert::Dev => (Some(CLIENT_CERT_PEM), Some(CLIENT_KEY_PEM)),
        ClientCert::Foreign => (Some(OTHER_CLIENT_CERT_PEM), Some(OTHER_CLIENT_KEY_PEM)),
    };
    ClientConfig {
        ca: Some(Pem::Bytes(CA_PEM.to_vec())),
        cert: cert.map(|c| Pem::Bytes(c.to_vec())),
        key: key.map(|k| Pem::Bytes(k.to_vec())),
        // OpenSSL refuses `*.localhost` (a wildcard over a single label), so
        // test names like `optional.localhost` would fail the name check;
        // client.rs tests the name check on its own.
        verify_hostname: false,
        ..ClientConfig::default()
    }
}

pub fn client(cert: ClientCert) -> ClientTls {
    client_config(cert).build().expect("client config")
}

pub fn client_with_version(cert: ClientCert, version: TlsVersion) -> ClientTls {
    ClientConfig {
        min_version: Some(version),
        max_version: Some(version),
        ..client_config(cert)
    }
    .build()
    .expect("client config")
}

/// A domain serving the dev server certificate for `names`.
pub fn domain(names: &[&str], auth: ClientAuth, ca: Option<&[u8]>) -> Domain {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    Domain::from_pem(
        "test",
        &names,
        (SERVER_CERT_PEM, "server.pem"),
        (SERVER_KEY_PEM, "server.key"),
        auth,
        ca.map(|pem| (pem, "ca.pem")),
    )
    .expect("test domain")
}

/// `localhost` (none), `optional.localhost` (optional, dev CA),
/// `mtls.localhost` (required, dev CA); unknown SNI rejected, no SNI goes
/// to `localhost`.
pub fn three_domain_gate() -> TlsGate {
    TlsGate::new(
        &[
            domain(&["localhost"], ClientAuth::None, None),
            domain(&["optional.localhost"], ClientAuth::Optional, Some(CA_PEM)),
            domain(&["mtls.localhost"], ClientAuth::Required, Some(CA_PEM)),
        ],
        &GateOptions {
            unknown_sni: SniFallback::Reject,
            no_sni: SniFallback::Default("localhost".to_string()),
            ..GateOptions::default()
        },
    )
    .expect("gate")
}

pub fn base_info() -> ConnectionInfo {
    let addr: SocketAddr = "127.0.0.1:1".parse().expect("address");
    ConnectionInfo::plain(addr, addr, "test")
}

/// Both ends of an in-memory connection and what each has decrypted.
pub struct Pair {
    pub client: TlsSession,
    pub server: TlsSession,
    pub client_plain: Vec<u8>,
    pub server_plain: Vec<u8>,
    pub client_progress: Progress,
    pub server_progress: Progress,
}

impl Pair {
    pub fn new(gate: &TlsGate, tls: &ClientTls, sni: Option<&str>) -> Pair {
        Pair::with_client(
            gate,
            TlsSession::client(tls, sni, None).expect("client session"),
        )
    }

    /// Runs the client until its ClientHello is out, and admits it through
    /// the gate, as the event loop does with a connection's first record.
    pub fn with_client(gate: &TlsGate, mut client: TlsSession) -> Pair {
        client.process(&mut Vec::new()).expect("client hello");
        let hello = client.outgoing().to_vec();
        client.consume_outgoing(hello.len());
        let server = gate.accept(&hello).expect("the gate admits the hello");
        Pair {
            client,
            server,
            client_plain: Vec::new(),
            server_plain: Vec::new(),
            client_progress: Progress::default(),
            server_progress: Progress::default(),
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    /// Returns the first error of (client, server), if any.
    pub fn run(&mut self) -> (Result<(), TlsError>, Result<(), TlsError>) {
        self.run_with_chunk(usize::MAX)
    }

    /// Like [`Pair::run`], delivering at most `chunk` bytes per `receive`.
    pub fn run_with_chunk(&mut self, chunk: usize) -> (Result<(), TlsError>, Result<(), TlsError>) {
        let mut client_result = Ok(());
        let mut server_result = Ok(());
        for _ in 0..1_000_000 {
            if client_result.is_ok() {
                match self.client.process(&mut self.client_plain) {
                    Ok(p) => merge(&mut self.client_progress, p),
                    Err(e) => client_result = Err(e),
                }
            }
            let mut moved = shuttle(&mut self.client, &mut self.server, chunk);
            if server_result.is_ok() {
                match self.server.process(&mut self.server_plain) {
                    Ok(p) => merge(&mut self.server_progress, p),
                    Err(e) => server_result = Err(e),
                }
            }
            moved |= shuttle(&mut self.server, &mut self.client, chunk);
            if !moved {
                break;
            }
        }
        (client_result, server_result)
    }
}

fn merge(into: &mut Progress, p: Progress) {
    into.handshake_complete |= p.handshake_complete;
    into.just_completed |= p.just_completed;
    into.peer_closed |= p.peer_closed;
}

/// Moves up to `chunk` bytes of `from`'s outgoing ciphertext into `to`.
pub fn shuttle(from: &mut TlsSession, to: &mut TlsSession, chunk: usize) -> bool {
    let n = from.outgoing().len().min(chunk);
    if n == 0 {
        return false;
    }
    to.receive(&from.outgoing()[..n]);
    from.consume_outgoing(n);
    true
}

/// Handshakes a fresh pair to completion, panicking on failure.
pub fn connected(gate: &TlsGate, tls: &ClientTls, sni: Option<&str>) -> Pair {
    let mut pair = Pair::new(gate, tls, sni);
    let (c, s) = pair.run();
    c.expect("client handshake");
    s.expect("server handshake");
    assert!(pair.client_progress.handshake_complete && pair.server_progress.handshake_complete);
    pair
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "portcullis-unit-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
