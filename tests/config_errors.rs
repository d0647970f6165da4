//! Configuration mistakes stop `portcullis serve` before it accepts anything,
//! with a non-zero exit and a message naming the file, the key and the
//! problem; and a good file with relative certificate paths works from any
//! directory. The errors happen before a reactor exists, so they are checked
//! once; the good file is served by every compiled backend.

mod common;

use std::process::Command;
use std::time::Duration;

use common::tls::{
    cert, curl, curl_client_cert, curl_https, field, run, summary_counter, summary_line, TempDir,
};
use common::{backends, Server, BIN};

/// One `[[domains]]` entry with absolute paths into `certs/` unless the
/// caller passes its own lines.
fn domain(names: &str, cert_file: &str, key_file: &str, extra: &str) -> String {
    format!(
        "[[domains]]\nnames = {names}\ncert = \"{}\"\nkey = \"{}\"\n{extra}\n",
        cert_file, key_file
    )
}

/// Runs `serve --config FILE`; it must exit on its own, unsuccessfully,
/// with every `needle` in its standard error.
fn assert_refused(case: &str, text: &str, needles: &[&str]) {
    let dir = TempDir::new("config-error");
    let file = dir.write("portcullis.toml", text);
    let file = file.display().to_string();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config", &file, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info");
    let out = run(&mut command, b"", Duration::from_secs(10));
    let what = format!("{case}\n--- config\n{text}\n{}", out.all());
    assert!(!out.timed_out, "{case}: the server started anyway\n{what}");
    assert!(!out.stdout.contains("listening on"), "{what}");
    assert!(
        matches!(out.code, Some(code) if code != 0),
        "{case}: expected a non-zero exit\n{what}"
    );
    assert!(out.stderr.contains(&file), "{case}: file not named\n{what}");
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "{case}: the message lacks `{needle}`\n{what}"
        );
    }
}

#[test]
fn unknown_keys_are_refused() {
    assert_refused(
        "a misspelt top-level key",
        "sevrice = \"http\"\n",
        &["sevrice", "unknown field"],
    );
    let server = cert("server.pem");
    let key = cert("server.key");
    let ca = cert("ca.pem");
    assert_refused(
        "a misspelt domain key (would silently turn mTLS off)",
        &domain(
            "[\"mtls.localhost\"]",
            &server,
            &key,
            &format!("client_atuh = \"required\"\nclient_ca = \"{ca}\""),
        ),
        &["client_atuh", "unknown field"],
    );
    assert_refused(
        "a misspelt timeout key",
        "[timeouts]\nhandshake = 1\n",
        &["handshake", "unknown field"],
    );
}

#[test]
fn a_missing_certificate_file_is_named() {
    let dir = TempDir::new("missing-cert");
    let missing = dir.path.join("no-such-cert.pem").display().to_string();
    assert_refused(
        "a missing cert file",
        &domain("[\"localhost\"]", &missing, &cert("server.key"), ""),
        &["domains[0]", "cert", &missing, "cannot read"],
    );
    let missing_key = dir.path.join("no-such-key.pem").display().to_string();
    assert_refused(
        "a missing key file",
        &domain("[\"localhost\"]", &cert("server.pem"), &missing_key, ""),
        &["domains[0]", "key", &missing_key, "cannot read"],
    );
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let ecdsa_key = cert("server-ecdsa.key");
    assert_refused(
        "the ECDSA key with the RSA certificate",
        &domain("[\"localhost\"]", &cert("server.pem"), &ecdsa_key, ""),
        &["domains[0]", "key", &ecdsa_key, "does not match"],
    );
}

#[test]
fn required_client_auth_needs_a_client_ca() {
    let text = format!(
        "{}{}",
        domain(
            "[\"localhost\"]",
            &cert("server.pem"),
            &cert("server.key"),
            ""
        ),
        domain(
            "[\"mtls.localhost\"]",
            &cert("server.pem"),
            &cert("server.key"),
            "client_auth = \"required\""
        )
    );
    assert_refused(
        "client_auth required without client_ca",
        &text,
        &["domains[1]", "client_ca", "required"],
    );
    assert_refused(
        "an unknown client_auth value",
        &domain(
            "[\"localhost\"]",
            &cert("server.pem"),
            &cert("server.key"),
            "client_auth = \"mandatory\"",
        ),
        &["client_auth", "mandatory"],
    );
}

#[test]
fn malformed_wildcard_names_are_refused() {
    for name in [
        "foo.*.localhost",
        "*localhost",
        "*.*.localhost",
        "w*.localhost",
    ] {
        assert_refused(
            &format!("the name `{name}`"),
            &domain(
                &format!("[\"{name}\"]"),
                &cert("server.pem"),
                &cert("server.key"),
                "",
            ),
            &["domains[0]", "names", name, "wildcard"],
        );
    }
}

#[test]
fn a_good_config_with_relative_paths_works_for_every_backend() {
    let dir = TempDir::new("good-config");
    std::fs::create_dir(dir.path.join("tls")).unwrap();
    for name in ["server.pem", "server.key", "ca.pem"] {
        std::fs::copy(cert(name), dir.path.join("tls").join(name)).unwrap();
    }
    // Relative to the file's directory; `tls/` does not exist in the
    // directory the test (and so the server) runs in.
    assert!(!std::path::Path::new("tls/server.pem").exists());
    let config = dir.write(
        "portcullis.toml",
        "[timeouts]\nhandshake_secs = 5\n\n\
         [[domains]]\nnames = [\"localhost\", \"*.localhost\"]\n\
         cert = \"tls/server.pem\"\nkey = \"tls/server.key\"\n\n\
         [[domains]]\nnames = [\"mtls.localhost\"]\n\
         cert = \"tls/server.pem\"\nkey = \"tls/server.key\"\n\
         client_auth = \"required\"\nclient_ca = \"tls/ca.pem\"\n",
    );
    let config = config.display().to_string();
    let cert_args = curl_client_cert();
    let cert_args: Vec<&str> = cert_args.iter().map(String::as_str).collect();
    for backend in backends() {
        let server = Server::with_config(&config, &backend);
        let port = server.port();
        let out = curl(&[&format!("http://127.0.0.1:{port}/")]);
        assert_eq!(
            field(&out.stdout, "transport"),
            Some("plain"),
            "{}",
            out.all()
        );
        let out = curl_https(port, "localhost", "/", &[]);
        assert_eq!(
            field(&out.stdout, "transport"),
            Some("tls"),
            "{}",
            out.all()
        );
        let out = curl_https(port, "mtls.localhost", "/", &cert_args);
        assert_eq!(
            field(&out.stdout, "transport"),
            Some("mtls"),
            "{}",
            out.all()
        );
        assert_eq!(field(&out.stdout, "client_cn"), Some("dev-client"));
        assert_eq!(field(&out.stdout, "backend"), Some(backend.as_str()));
        let out = curl_https(port, "mtls.localhost", "/", &[]);
        assert!(
            !out.success(),
            "{backend}: mTLS without a cert\n{}",
            out.all()
        );

        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: exit code; log:\n{log}");
        assert!(
            !log.contains("DEVELOPMENT certificates"),
            "{backend}: the config's certificates were not the ones used\n{log}"
        );
        let summary = summary_line(&log);
        assert_eq!(summary_counter(&log, "mtls"), 1, "{summary}");
        assert_eq!(
            summary_counter(&log, "tls_handshake_failed"),
            1,
            "{summary}"
        );
    }
}
