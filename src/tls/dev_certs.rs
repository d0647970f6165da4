//! The development certificates, embedded in the binary.
//!
//! `TlsGate::development()` lets `portcullis` serve TLS and mTLS with no
//! configuration at all, which is what a first run and the test suite want.
//! The one idea: **these are public test fixtures compiled in for
//! convenience, never secrets** — the gate logs a warning whenever they are
//! used. They come from `certs/` (regenerate with `scripts/gen-certs.sh`,
//! then rebuild).

/// The development CA (trusted for client certificates by `mtls.localhost`).
pub const CA_PEM: &[u8] = include_bytes!("../../certs/ca.pem");
/// RSA-2048 server certificate for localhost names, signed by the dev CA.
pub const SERVER_CERT_PEM: &[u8] = include_bytes!("../../certs/server.pem");
/// Private key of [`SERVER_CERT_PEM`].
pub const SERVER_KEY_PEM: &[u8] = include_bytes!("../../certs/server.key");
/// ECDSA P-256 server certificate with the same names.
pub const SERVER_ECDSA_CERT_PEM: &[u8] = include_bytes!("../../certs/server-ecdsa.pem");
/// Private key of [`SERVER_ECDSA_CERT_PEM`].
pub const SERVER_ECDSA_KEY_PEM: &[u8] = include_bytes!("../../certs/server-ecdsa.key");
/// Client certificate `CN=dev-client`, signed by the dev CA.
pub const CLIENT_CERT_PEM: &[u8] = include_bytes!("../../certs/client.pem");
/// Private key of [`CLIENT_CERT_PEM`].
pub const CLIENT_KEY_PEM: &[u8] = include_bytes!("../../certs/client.key");
/// An unrelated CA, trusted by nothing in the development gate.
pub const OTHER_CA_PEM: &[u8] = include_bytes!("../../certs/other-ca.pem");
/// Client certificate `CN=intruder`, signed by [`OTHER_CA_PEM`].
pub const OTHER_CLIENT_CERT_PEM: &[u8] = include_bytes!("../../certs/other-client.pem");
/// Private key of [`OTHER_CLIENT_CERT_PEM`].
pub const OTHER_CLIENT_KEY_PEM: &[u8] = include_bytes!("../../certs/other-client.key");
