//! HTTP/2 against real clients — curl, nghttp and h2load — over h2c, TLS
//! and mTLS on one port, and the coalescing check: one TLS connection
//! admitted as `localhost` asking, on a second stream, for `mtls.localhost`.

mod common;

use std::process::Command;

use common::h2::H2Client;
use common::tls::{cert, curl, curl_client_cert, field, run, TempDir, PROCESS_TIMEOUT};
use common::{backends, Server};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

/// `curl` asking for HTTP/2 by name (the helper asks for HTTP/1.1).
fn curl_h2(args: &[&str]) -> common::tls::Output {
    let mut all = vec![
        "--http2",
        "-w",
        "\nversion=%{http_version}\nstatus=%{http_code}\n",
    ];
    all.extend_from_slice(args);
    curl(&all)
}

#[test]
fn curl_speaks_http2_over_tls_mtls_and_h2c_on_every_backend() {
    for backend in backends() {
        let server = Server::service("http", &backend, &[]);
        let port = server.port();
        let ca = cert("ca.pem");

        let out = curl_h2(&[
            "--http2-prior-knowledge",
            &format!("http://127.0.0.1:{port}/"),
        ]);
        assert!(out.success(), "{backend}: h2c\n{}", out.all());
        assert_eq!(field(&out.stdout, "version"), Some("2"), "{}", out.all());
        assert_eq!(field(&out.stdout, "transport"), Some("plain"));
        assert_eq!(field(&out.stdout, "alpn"), Some("-"));

        let resolve = format!("localhost:{port}:127.0.0.1");
        let url = format!("https://localhost:{port}/");
        let out = curl_h2(&["--cacert", &ca, "--resolve", &resolve, &url]);
        assert!(out.success(), "{backend}: tls\n{}", out.all());
        assert_eq!(field(&out.stdout, "version"), Some("2"));
        assert_eq!(field(&out.stdout, "transport"), Some("tls"));
        assert_eq!(field(&out.stdout, "alpn"), Some("h2"));

        let resolve = format!("mtls.localhost:{port}:127.0.0.1");
        let url = format!("https://mtls.localhost:{port}/");
        let client = curl_client_cert();
        let mut args = vec!["--cacert", &ca, "--resolve", &resolve];
        args.extend(client.iter().map(String::as_str));
        args.push(&url);
        let out = curl_h2(&args);
        assert!(out.success(), "{backend}: mtls\n{}", out.all());
        assert_eq!(field(&out.stdout, "version"), Some("2"));
        assert_eq!(field(&out.stdout, "transport"), Some("mtls"));
        assert_eq!(field(&out.stdout, "client_cn"), Some("dev-client"));

        // HTTP/1.1 still works beside both.
        let out = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
        assert_eq!(out.stdout, "ok\n", "{backend}\n{}", out.all());
    }
}

#[test]
fn h2c_cannot_reach_a_domain_that_requires_a_client_certificate() {
    let server = Server::service("http", &common::backends()[0], &[]);
    let url = format!("http://127.0.0.1:{}/", server.port());
    let out = curl_h2(&[
        "--http2-prior-knowledge",
        "-H",
        "Host: mtls.localhost",
        &url,
    ]);
    assert_eq!(field(&out.stdout, "status"), Some("403"), "{}", out.all());
    assert!(!out.stdout.contains("transport="), "{}", out.all());
}

#[test]
fn a_coalesced_stream_for_another_domain_gets_421() {
    let server = Server::service("http", &common::backends()[0], &[]);
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_ca_file(cert("ca.pem")).unwrap();
    builder.set_verify(SslVerifyMode::PEER);
    builder.set_alpn_protos(b"\x02h2").unwrap();
    let tcp = server.connect();
    let tls = builder
        .build()
        .connect("localhost", tcp)
        .expect("TLS handshake as localhost");
    assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
    let mut client = H2Client::open(tls, &[]);
    let (status, body) = client.get(1, "localhost", "/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(field(&body, "domain"), Some("localhost"));
    // Same connection, a name the certificate also covers.
    let (status, body) = client.get(3, "mtls.localhost", "/");
    assert_eq!(status, 421, "{body}");
    assert!(!body.contains("transport="), "no content on a 421: {body}");
    // And the connection is still good for its own domain.
    assert_eq!(
        client.get(5, "localhost", "/healthz"),
        (200, "ok\n".to_string())
    );
}

/// A server whose TLS default (for clients that send no SNI, as nghttp
/// does when given an IP address) is the mTLS domain.
fn mtls_default_server() -> (Server, TempDir) {
    let dir = TempDir::new("h2-mtls");
    let path = |name: &str| cert(name);
    let config = format!(
        "[tls]\nunknown_sni = \"mtls.localhost\"\nno_sni = \"mtls.localhost\"\n\n\
         [[domains]]\nnames = [\"localhost\"]\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [[domains]]\nnames = [\"mtls.localhost\"]\ncert = \"{}\"\nkey = \"{}\"\n\
         client_auth = \"required\"\nclient_ca = \"{}\"\n",
        path("server.pem"),
        path("server.key"),
        path("server.pem"),
        path("server.key"),
        path("ca.pem"),
    );
    let file = dir.write("portcullis.toml", &config);
    let server = Server::with_config(file.to_str().unwrap(), &common::backends()[0]);
    (server, dir)
}

fn nghttp(args: &[&str]) -> common::tls::Output {
    let mut command = Command::new("nghttp");
    command.args(["-t", "10"]).args(args);
    run(&mut command, b"", PROCESS_TIMEOUT)
}

#[test]
fn nghttp_gets_reports_over_h2c_tls_and_mtls() {
    let server = Server::service("http", &common::backends()[0], &[]);
    let port = server.port();
    let out = nghttp(&[&format!("http://127.0.0.1:{port}/")]);
    assert!(out.success(), "h2c\n{}", out.all());
    assert_eq!(
        field(&out.stdout, "transport"),
        Some("plain"),
        "{}",
        out.all()
    );
    let out = nghttp(&[&format!("https://localhost:{port}/")]);
    assert!(out.success(), "tls\n{}", out.all());
    assert_eq!(
        field(&out.stdout, "transport"),
        Some("tls"),
        "{}",
        out.all()
    );
    assert_eq!(field(&out.stdout, "alpn"), Some("h2"));

    let (server, _dir) = mtls_default_server();
    let url = format!("https://127.0.0.1:{}/", server.port());
    let (pem, key) = (cert("client.pem"), cert("client.key"));
    let out = nghttp(&["--cert", &pem, "--key", &key, &url]);
    assert!(out.success(), "mtls\n{}", out.all());
    assert_eq!(
        field(&out.stdout, "transport"),
        Some("mtls"),
        "{}",
        out.all()
    );
    assert_eq!(field(&out.stdout, "domain"), Some("mtls.localhost"));
    // Without a certificate the handshake is refused.
    let out = nghttp(&[&url]);
    assert!(!out.stdout.contains("transport="), "{}", out.all());
}

fn h2load(args: &[&str]) -> common::tls::Output {
    let mut command = Command::new("h2load");
    command
        .args(["-n", "400", "-c", "4", "-m", "10", "-T", "10"])
        .args(args);
    run(&mut command, b"", PROCESS_TIMEOUT)
}

/// Asserts that h2load's report says every request got a 2xx.
fn assert_all_succeeded(out: &common::tls::Output, what: &str) {
    assert!(out.success(), "{what}\n{}", out.all());
    assert!(
        out.stdout.contains("400 succeeded, 0 failed, 0 errored") && out.stdout.contains("400 2xx"),
        "{what}\n{}",
        out.all()
    );
}

#[test]
fn h2load_streams_all_succeed_over_h2c_and_tls() {
    for backend in backends() {
        let server = Server::service("http", &backend, &[]);
        let port = server.port();
        let out = h2load(&[&format!("http://127.0.0.1:{port}/healthz")]);
        assert_all_succeeded(&out, &format!("{backend} h2c"));
        let out = h2load(&[&format!("https://localhost:{port}/")]);
        assert_all_succeeded(&out, &format!("{backend} tls"));
        assert!(
            out.stdout.contains("Application protocol: h2"),
            "{}",
            out.all()
        );
        let (_, log) = server.stop();
        assert_eq!(common::h2::http2_counter(&log, "streams"), 800, "{log}");
        assert_eq!(
            common::h2::http2_counter(&log, "connections_h2c"),
            4,
            "{log}"
        );
        assert_eq!(
            common::h2::http2_counter(&log, "connections_h2"),
            4,
            "{log}"
        );
    }
}

#[test]
fn http2_can_be_turned_off_for_plaintext_and_tls() {
    let dir = TempDir::new("h2-off");
    let config = format!(
        "[http2]\nh2c = false\n\n[tls]\nalpn = [\"http/1.1\"]\n\n{}",
        common::tls::dev_domains_toml()
    );
    let file = dir.write("portcullis.toml", &config);
    let server = Server::with_config(file.to_str().unwrap(), &common::backends()[0]);
    let port = server.port();
    let out = curl_h2(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert!(
        !out.stdout.contains("transport="),
        "h2c must be refused\n{}",
        out.all()
    );
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = cert("ca.pem");
    let out = curl_h2(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        &format!("https://localhost:{port}/"),
    ]);
    assert_eq!(field(&out.stdout, "version"), Some("1.1"), "{}", out.all());
    assert_eq!(field(&out.stdout, "alpn"), Some("http/1.1"));
}
