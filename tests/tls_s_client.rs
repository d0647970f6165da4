//! `openssl s_client` against the server, for every compiled backend: SNI
//! present, absent and unknown; client certificates from the wrong CA or
//! missing, over TLS 1.3 and 1.2; and `[tls] unknown_sni / no_sni =
//! "reject"`. After every refused handshake a normal `curl` request on the
//! same server must still succeed.

mod common;

use common::tls::{
    assert_curl_still_works, cert, dev_domains_toml, field, get_request, s_client, summary_counter,
    summary_line, Output, TempDir,
};
use common::{backends, Server};

fn assert_served(out: &Output, transport: &str, sni: &str, what: &str) {
    assert!(out.success(), "{what}\n{}", out.all());
    assert!(
        out.stdout.contains("HTTP/1.1 200 OK"),
        "{what}\n{}",
        out.all()
    );
    assert!(
        out.stdout.contains("Verify return code: 0 (ok)"),
        "{what}: the server's certificate did not verify\n{}",
        out.all()
    );
    assert_eq!(
        field(&out.stdout, "transport"),
        Some(transport),
        "{what}\n{}",
        out.all()
    );
    assert_eq!(
        field(&out.stdout, "sni"),
        Some(sni),
        "{what}\n{}",
        out.all()
    );
}

/// The handshake failed with a TLS alert whose description contains
/// `alert` (as s_client prints it), and nothing was served.
fn assert_rejected(out: &Output, alert: &str, what: &str) {
    assert!(!out.success(), "{what}: s_client succeeded\n{}", out.all());
    assert!(!out.timed_out, "{what}: s_client hung\n{}", out.all());
    assert!(
        !out.stdout.contains("transport="),
        "{what}: something was served\n{}",
        out.all()
    );
    assert!(
        out.stderr.contains(alert),
        "{what}: expected an alert `{alert}`\n{}",
        out.all()
    );
}

#[test]
fn s_client_with_and_without_sni_and_with_bad_client_certificates() {
    let other = (cert("other-client.pem"), cert("other-client.key"));
    let good = (cert("client.pem"), cert("client.key"));
    for backend in backends() {
        let server = Server::start(&["--listen", "127.0.0.1:0", "--backend", &backend]);
        let port = server.port();

        let out = s_client(
            port,
            &["-servername", "localhost"],
            &get_request("localhost"),
        );
        assert_served(
            &out,
            "tls",
            "localhost",
            &format!("{backend}: SNI localhost"),
        );
        assert_curl_still_works(port, &format!("{backend}: after SNI localhost"));

        let out = s_client(port, &["-noservername"], &get_request("localhost"));
        assert_served(&out, "tls", "-", &format!("{backend}: no SNI"));
        assert_eq!(field(&out.stdout, "domain"), Some("localhost"));
        assert_curl_still_works(port, &format!("{backend}: after no SNI"));

        // An SNI no domain lists is served by the default (first) domain.
        let out = s_client(
            port,
            &["-servername", "unknown.example"],
            &get_request("unknown.example"),
        );
        assert_served(
            &out,
            "tls",
            "unknown.example",
            &format!("{backend}: unknown"),
        );
        assert_eq!(field(&out.stdout, "domain"), Some("localhost"));
        assert_curl_still_works(port, &format!("{backend}: after unknown SNI"));

        for version in ["-tls1_3", "-tls1_2"] {
            let what = format!("{backend} {version}: other CA's client cert on mtls");
            let out = s_client(
                port,
                &[
                    version,
                    "-servername",
                    "mtls.localhost",
                    "-cert",
                    &other.0,
                    "-key",
                    &other.1,
                ],
                &get_request("mtls.localhost"),
            );
            assert_rejected(&out, "alert unknown ca", &what);
            assert_curl_still_works(port, &format!("after {what}"));

            let what = format!("{backend} {version}: no client cert on mtls");
            let out = s_client(
                port,
                &[version, "-servername", "mtls.localhost"],
                &get_request("mtls.localhost"),
            );
            let alert = if version == "-tls1_3" {
                "alert certificate required"
            } else {
                "alert handshake failure"
            };
            assert_rejected(&out, alert, &what);
            assert_curl_still_works(port, &format!("after {what}"));

            // The right certificate is admitted, over either version.
            let out = s_client(
                port,
                &[
                    version,
                    "-servername",
                    "mtls.localhost",
                    "-cert",
                    &good.0,
                    "-key",
                    &good.1,
                ],
                &get_request("mtls.localhost"),
            );
            let what = format!("{backend} {version}: dev client cert on mtls");
            assert_served(&out, "mtls", "mtls.localhost", &what);
            assert_eq!(field(&out.stdout, "client_cn"), Some("dev-client"));
        }

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        let summary = summary_line(&log);
        assert_eq!(
            summary_counter(&log, "tls_handshake_failed"),
            4,
            "{summary}"
        );
        assert_eq!(summary_counter(&log, "mtls"), 2, "{summary}");
        // 3 s_client and 7 curl.
        assert_eq!(summary_counter(&log, "tls"), 10, "{summary}");
    }
}

#[test]
fn unknown_and_missing_sni_can_be_rejected_by_config() {
    let dir = TempDir::new("sni-reject");
    let config = dir.write(
        "portcullis.toml",
        &format!(
            "[tls]\nunknown_sni = \"reject\"\nno_sni = \"reject\"\n\n{}",
            dev_domains_toml()
        ),
    );
    let config = config.display().to_string();
    for backend in backends() {
        let server = Server::with_config(&config, &backend);
        let port = server.port();

        let out = s_client(
            port,
            &["-servername", "unknown.example"],
            &get_request("unknown.example"),
        );
        assert_rejected(
            &out,
            "unrecognized name",
            &format!("{backend}: unknown SNI"),
        );
        assert_curl_still_works(port, &format!("{backend}: after unknown SNI"));

        let out = s_client(port, &["-noservername"], &get_request("localhost"));
        assert_rejected(&out, "unrecognized name", &format!("{backend}: no SNI"));
        assert_curl_still_works(port, &format!("{backend}: after no SNI"));

        // Listed names, exact and wildcard, are still served.
        for sni in ["localhost", "www.localhost"] {
            let out = s_client(port, &["-servername", sni], &get_request(sni));
            assert_served(&out, "tls", sni, &format!("{backend}: SNI {sni}"));
            assert_eq!(field(&out.stdout, "domain"), Some("localhost"));
        }

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        let summary = summary_line(&log);
        assert_eq!(
            summary_counter(&log, "tls_handshake_failed"),
            2,
            "{summary}"
        );
        assert_eq!(summary_counter(&log, "tls"), 4, "{summary}");
    }
}
