//! `curl` against the built-in configuration, for every compiled backend:
//! plaintext, TLS and mutual TLS on one port, HTTP keep-alive over each, and
//! the checks that keep a request on the domain its handshake was for.

mod common;

use common::tls::{
    cert, curl, curl_client_cert, curl_https, field, get_request, s_client, status_of,
    summary_counter, summary_line,
};
use common::{backends, Server};

fn http_server(backend: &str) -> Server {
    Server::start(&["--listen", "127.0.0.1:0", "--backend", backend])
}

/// SHA-256 of the DER of `certs/client.pem`, as the server prints it.
fn client_fingerprint() -> String {
    let pem = std::fs::read(cert("client.pem")).unwrap();
    let x509 = openssl::x509::X509::from_pem(&pem).unwrap();
    let digest = x509.digest(openssl::hash::MessageDigest::sha256()).unwrap();
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn curl_gets_plain_tls_and_mtls_on_one_port() {
    let fingerprint = client_fingerprint();
    for backend in backends() {
        let server = http_server(&backend);
        let port = server.port();

        let out = curl(&[&format!("http://127.0.0.1:{port}/")]);
        assert!(out.success(), "{backend}: plaintext\n{}", out.all());
        let body = &out.stdout;
        assert_eq!(field(body, "transport"), Some("plain"), "{backend}: {body}");
        assert_eq!(field(body, "sni"), Some("-"), "{backend}: {body}");
        assert_eq!(field(body, "alpn"), Some("-"), "{backend}: {body}");
        assert_eq!(field(body, "client_cn"), Some("-"), "{backend}: {body}");
        assert_eq!(
            field(body, "host"),
            Some(format!("127.0.0.1:{port}").as_str())
        );
        assert_eq!(field(body, "backend"), Some(backend.as_str()), "{body}");

        let out = curl_https(port, "localhost", "/", &[]);
        assert!(out.success(), "{backend}: tls\n{}", out.all());
        let body = &out.stdout;
        assert_eq!(field(body, "transport"), Some("tls"), "{backend}: {body}");
        assert_eq!(field(body, "domain"), Some("localhost"), "{body}");
        assert_eq!(field(body, "sni"), Some("localhost"), "{backend}: {body}");
        assert_eq!(field(body, "alpn"), Some("http/1.1"), "{backend}: {body}");
        assert_eq!(field(body, "client_cn"), Some("-"), "{backend}: {body}");
        assert_eq!(field(body, "client_fingerprint"), Some("-"), "{body}");
        assert_eq!(field(body, "backend"), Some(backend.as_str()), "{body}");

        let cert_args = curl_client_cert();
        let cert_args: Vec<&str> = cert_args.iter().map(String::as_str).collect();
        let out = curl_https(port, "mtls.localhost", "/", &cert_args);
        assert!(out.success(), "{backend}: mtls\n{}", out.all());
        let body = &out.stdout;
        assert_eq!(field(body, "transport"), Some("mtls"), "{backend}: {body}");
        assert_eq!(field(body, "domain"), Some("mtls.localhost"), "{body}");
        assert_eq!(field(body, "sni"), Some("mtls.localhost"), "{body}");
        assert_eq!(field(body, "alpn"), Some("http/1.1"), "{backend}: {body}");
        assert_eq!(field(body, "client_cn"), Some("dev-client"), "{body}");
        assert_eq!(
            field(body, "client_fingerprint"),
            Some(fingerprint.as_str()),
            "{body}"
        );
        assert_eq!(field(body, "backend"), Some(backend.as_str()), "{body}");

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        let summary = summary_line(&log);
        for (key, want) in [("accepted", 3), ("plain", 1), ("tls", 1), ("mtls", 1)] {
            assert_eq!(summary_counter(&log, key), want, "{backend}: {summary}");
        }
    }
}

/// The `NUM_CONNECTS=` values curl printed, one per URL.
fn num_connects(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("NUM_CONNECTS="))
        .map(|n| n.trim().parse().unwrap())
        .collect()
}

#[test]
fn curl_reuses_one_connection_for_two_requests_on_every_transport() {
    const WRITE_OUT: &str = "NUM_CONNECTS=%{num_connects}\n";
    for backend in backends() {
        let server = http_server(&backend);
        let port = server.port();
        let cert_args = curl_client_cert();
        let cert_args: Vec<&str> = cert_args.iter().map(String::as_str).collect();

        let plain = format!("http://127.0.0.1:{port}/");
        let out = curl(&["-w", WRITE_OUT, &plain, &plain]);
        assert!(out.success(), "{backend}: plaintext\n{}", out.all());
        assert_eq!(
            num_connects(&out.stdout),
            [1, 0],
            "{backend}: {}",
            out.all()
        );
        assert_eq!(out.stdout.matches("transport=plain").count(), 2);

        let tls = format!("https://localhost:{port}/");
        let out = curl_https(port, "localhost", "/", &["-w", WRITE_OUT, &tls]);
        assert!(out.success(), "{backend}: tls\n{}", out.all());
        assert_eq!(
            num_connects(&out.stdout),
            [1, 0],
            "{backend}: {}",
            out.all()
        );
        assert_eq!(out.stdout.matches("transport=tls").count(), 2);

        let mtls = format!("https://mtls.localhost:{port}/");
        let mut args = cert_args.clone();
        args.extend(["-w", WRITE_OUT, &mtls]);
        let out = curl_https(port, "mtls.localhost", "/", &args);
        assert!(out.success(), "{backend}: mtls\n{}", out.all());
        assert_eq!(
            num_connects(&out.stdout),
            [1, 0],
            "{backend}: {}",
            out.all()
        );
        assert_eq!(out.stdout.matches("client_cn=dev-client").count(), 2);

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        // Six requests, three connections.
        assert_eq!(
            summary_counter(&log, "accepted"),
            3,
            "{}",
            summary_line(&log)
        );
    }
}

/// Asserts an answer is a refusal with `status` and carries no report.
fn assert_refused(out: &common::tls::Output, status: u16, what: &str) {
    assert_eq!(
        status_of(&out.stdout),
        Some(status),
        "{what}\n{}",
        out.all()
    );
    assert!(
        !out.stdout.contains("transport="),
        "{what}: a refused request got the report\n{}",
        out.all()
    );
}

#[test]
fn requests_cannot_leave_the_domain_their_handshake_was_for() {
    for backend in backends() {
        let server = http_server(&backend);
        let port = server.port();
        let cert_args = curl_client_cert();
        let cert_args: Vec<&str> = cert_args.iter().map(String::as_str).collect();

        // SNI localhost (no client certificate needed), Host mtls.localhost.
        let out = curl_https(
            port,
            "localhost",
            "/",
            &["-i", "-H", "Host: mtls.localhost"],
        );
        assert_refused(&out, 421, &format!("{backend}: SNI localhost, Host mtls"));

        // No SNI (curl to an IP address sends none), Host mtls.localhost.
        let ip_url = format!("https://127.0.0.1:{port}/");
        let ca = cert("ca.pem");
        let out = curl(&["-i", "--cacert", &ca, "-H", "Host: mtls.localhost", &ip_url]);
        assert_refused(&out, 421, &format!("{backend}: no SNI (curl), Host mtls"));
        let out = s_client(port, &["-noservername"], &get_request("mtls.localhost"));
        assert_refused(
            &out,
            421,
            &format!("{backend}: no SNI (s_client), Host mtls"),
        );
        // The same connection without the lie is served by the default domain.
        let out = curl(&["--cacert", &ca, &ip_url]);
        assert_eq!(
            field(&out.stdout, "transport"),
            Some("tls"),
            "{}",
            out.all()
        );
        assert_eq!(field(&out.stdout, "sni"), Some("-"), "{}", out.all());
        assert_eq!(field(&out.stdout, "domain"), Some("localhost"));

        // The other way round: an mTLS connection naming the open domain.
        let mut args = cert_args.clone();
        args.extend(["-i", "-H", "Host: localhost"]);
        let out = curl_https(port, "mtls.localhost", "/", &args);
        assert_refused(&out, 421, &format!("{backend}: mTLS, Host localhost"));

        // Plaintext naming the mTLS domain: 403, however the name is spelled.
        for host in [
            "mtls.localhost",
            "MTLS.LocalHost",
            "mtls.localhost.",
            &format!("mtls.localhost:{port}"),
        ] {
            let header = format!("Host: {host}");
            let url = format!("http://127.0.0.1:{port}/");
            let out = curl(&["-i", "-H", &header, &url]);
            assert_refused(&out, 403, &format!("{backend}: plaintext, {header}"));
        }
        // TLS for the mTLS domain without a certificate never gets as far
        // as HTTP: the handshake itself fails.
        let out = curl_https(port, "mtls.localhost", "/", &["-i"]);
        assert!(
            !out.success(),
            "{backend}: mtls without cert\n{}",
            out.all()
        );
        assert!(!out.stdout.contains("transport="), "{}", out.all());

        // A client certificate offered to `localhost` (client_auth none):
        // the server never asks for one (no CertificateRequest), so curl
        // sends none and the connection is plain TLS with no client_cn.
        let out = curl_https(port, "localhost", "/", &cert_args);
        assert!(out.success(), "{backend}: localhost + cert\n{}", out.all());
        assert_eq!(
            field(&out.stdout, "transport"),
            Some("tls"),
            "{}",
            out.all()
        );
        assert_eq!(field(&out.stdout, "client_cn"), Some("-"), "{}", out.all());
        assert_eq!(field(&out.stdout, "client_fingerprint"), Some("-"));
        // Same with s_client, which would send the certificate if asked.
        let out = s_client(
            port,
            &[
                "-servername",
                "localhost",
                "-cert",
                &cert("client.pem"),
                "-key",
                &cert("client.key"),
            ],
            &get_request("localhost"),
        );
        assert_eq!(
            field(&out.stdout, "transport"),
            Some("tls"),
            "{}",
            out.all()
        );
        assert_eq!(field(&out.stdout, "client_cn"), Some("-"), "{}", out.all());
        assert!(
            !out.stdout
                .contains("Acceptable client certificate CA names"),
            "{backend}: localhost asked for a client certificate\n{}",
            out.all()
        );

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        assert_eq!(summary_counter(&log, "mtls"), 1, "{}", summary_line(&log));
    }
}
