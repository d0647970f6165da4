//! Session resumption with `openssl s_client -sess_out / -sess_in`, for
//! every compiled backend: a session resumes within its domain, and a
//! session made for `localhost` (no client certificate) can never be used to
//! reach `mtls.localhost` without one — the nginx CVE-2025-23419 class —
//! over TLS 1.2 session ids, TLS 1.2 tickets and TLS 1.3 tickets.

mod common;

use std::path::Path;

use common::tls::{
    cert, field, get_request, s_client, status_of, summary_counter, summary_line, Output, TempDir,
};
use common::{backends, Server};

/// (name, s_client flags): the three ways a session comes back.
const KINDS: [(&str, &[&str]); 3] = [
    ("TLS 1.2 session id", &["-tls1_2", "-no_ticket"]),
    ("TLS 1.2 ticket", &["-tls1_2"]),
    ("TLS 1.3 ticket", &["-tls1_3"]),
];

/// A full handshake with SNI `localhost` whose session is saved to `file`.
/// The request is answered before the server closes, so a TLS 1.3 ticket
/// (sent after the handshake) is read and saved too.
fn establish(port: u16, flags: &[&str], file: &Path, what: &str) {
    let file = file.display().to_string();
    let mut args = flags.to_vec();
    args.extend(["-servername", "localhost", "-sess_out", &file]);
    let out = s_client(port, &args, &get_request("localhost"));
    assert!(out.success(), "{what}: first connection\n{}", out.all());
    assert!(out.stdout.contains("New, TLSv1."), "{what}\n{}", out.all());
    assert_eq!(
        field(&out.stdout, "transport"),
        Some("tls"),
        "{}",
        out.all()
    );
    let saved = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(
        saved > 0,
        "{what}: s_client saved no session\n{}",
        out.all()
    );
}

/// Offers the session in `file` with SNI `sni` and a request for `sni`.
fn resume(port: u16, flags: &[&str], file: &Path, sni: &str, extra: &[&str]) -> Output {
    let file = file.display().to_string();
    let mut args = flags.to_vec();
    args.extend(["-servername", sni, "-sess_in", &file]);
    args.extend_from_slice(extra);
    s_client(port, &args, &get_request(sni))
}

/// What s_client prints when the server sends a CertificateRequest.
const CERT_REQUEST: &str = "Acceptable client certificate CA names";

fn reused(out: &Output) -> bool {
    out.stdout.contains("Reused, TLSv1.")
}

#[test]
fn a_session_resumes_within_its_domain() {
    for backend in backends() {
        let server = Server::start(&["--listen", "127.0.0.1:0", "--backend", &backend]);
        let port = server.port();
        let dir = TempDir::new("resume-same");
        for (i, (kind, flags)) in KINDS.into_iter().enumerate() {
            let what = format!("{backend}: {kind}");
            let file = dir.path.join(format!("session-{i}.pem"));
            establish(port, flags, &file, &what);
            let out = resume(port, flags, &file, "localhost", &[]);
            assert!(
                reused(&out),
                "{what}: the session was not resumed\n{}",
                out.all()
            );
            assert_eq!(status_of(&out.stdout), Some(200), "{what}\n{}", out.all());
            assert_eq!(field(&out.stdout, "transport"), Some("tls"), "{what}");
            assert_eq!(field(&out.stdout, "domain"), Some("localhost"), "{what}");
        }
        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        assert_eq!(summary_counter(&log, "tls"), 6, "{}", summary_line(&log));
    }
}

/// The security property: whatever happens to the handshake, a request
/// for the mTLS domain is never served on a connection that resumed a
/// session made without a client certificate.
#[test]
fn a_localhost_session_never_admits_a_client_to_the_mtls_domain() {
    for backend in backends() {
        let server = Server::start(&["--listen", "127.0.0.1:0", "--backend", &backend]);
        let port = server.port();
        let dir = TempDir::new("resume-cross");
        for (i, (kind, flags)) in KINDS.into_iter().enumerate() {
            let what = format!("{backend}: {kind}: localhost session offered to mtls.localhost");
            let file = dir.path.join(format!("session-{i}.pem"));
            establish(port, flags, &file, &what);
            let out = resume(port, flags, &file, "mtls.localhost", &[]);
            assert!(!out.timed_out, "{what}: s_client hung\n{}", out.all());
            assert_ne!(
                field(&out.stdout, "transport"),
                Some("mtls"),
                "{what}: ADMITTED TO mTLS WITHOUT A CERTIFICATE\n{}",
                out.all()
            );
            assert!(
                !out.stdout.contains("HTTP/1.1 200"),
                "{what}: the mTLS domain's request was answered 200\n{}",
                out.all()
            );
            assert!(
                !out.stdout.contains("client_cn=dev-client"),
                "{what}\n{}",
                out.all()
            );
        }
        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        assert_eq!(summary_counter(&log, "mtls"), 0, "{}", summary_line(&log));
    }
}

/// Stricter, and what `src/tls/policy.rs` documents ("OpenSSL refuses to
/// resume a session whose context differs"; RFC 6066 §3: a server "MUST NOT
/// accept the request to resume the session if the server_name extension
/// contains a different name"): a session made for `localhost` is not
/// resumed under SNI `mtls.localhost`. A full handshake follows instead,
/// which demands the certificate: without one it fails, with the right one
/// the client is admitted as mTLS.
#[test]
fn a_session_is_not_resumed_under_another_domains_sni() {
    let client_cert = cert("client.pem");
    let client_key = cert("client.key");
    let with_cert = ["-cert", client_cert.as_str(), "-key", client_key.as_str()];
    let mut failures = Vec::new();
    for backend in backends() {
        let server = Server::start(&["--listen", "127.0.0.1:0", "--backend", &backend]);
        let port = server.port();
        let dir = TempDir::new("resume-strict");
        for (i, (kind, flags)) in KINDS.into_iter().enumerate() {
            let file = dir.path.join(format!("session-{i}.pem"));
            establish(port, flags, &file, kind);

            let what = format!("{backend}: {kind}: localhost session, SNI mtls, no cert");
            let out = resume(port, flags, &file, "mtls.localhost", &[]);
            if reused(&out) {
                failures.push(format!("{what}: the session was resumed\n{}", out.all()));
            } else if out.success() || out.stdout.contains("HTTP/1.1") {
                failures.push(format!(
                    "{what}: full handshake did not fail\n{}",
                    out.all()
                ));
            } else if !out.stdout.contains(CERT_REQUEST) {
                failures.push(format!(
                    "{what}: the full handshake did not ask for a certificate\n{}",
                    out.all()
                ));
            }

            let what = format!("{backend}: {kind}: localhost session, SNI mtls, with cert");
            let out = resume(port, flags, &file, "mtls.localhost", &with_cert);
            if reused(&out) || field(&out.stdout, "transport") != Some("mtls") {
                failures.push(format!(
                    "{what}: expected a full handshake admitting mTLS\n{}",
                    out.all()
                ));
            }
        }
        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n\n{}",
        failures.len(),
        backends().len() * KINDS.len() * 2,
        failures.join("\n\n")
    );
}
