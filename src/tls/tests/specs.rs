//! Domain specs: loading from files, strict TOML, and errors that name the
//! origin, the key and the problem.

use std::path::{Path, PathBuf};

use crate::domains::ClientAuth;
use crate::tls::{DomainSpec, GateOptions, SniFallback, TlsGate};

fn spec(dir: &Path, cert: &str, key: &str, auth: ClientAuth, ca: Option<&str>) -> DomainSpec {
    DomainSpec {
        names: vec!["localhost".to_string()],
        cert: dir.join(cert),
        key: dir.join(key),
        client_auth: auth,
        client_ca: ca.map(|c| dir.join(c)),
        profile: None,
        ciphers: None,
        ciphersuites: None,
        groups: None,
    }
}

fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("certs")
}

#[test]
fn specs_load_from_files_and_errors_name_origin_key_and_problem() {
    let dir = certs_dir();
    let origin = "portcullis.toml: domains[1]";
    let ok = spec(
        &dir,
        "server.pem",
        "server.key",
        ClientAuth::Required,
        Some("ca.pem"),
    );
    ok.load(origin).unwrap();
    let err = |s: DomainSpec| s.load(origin).unwrap_err();

    let e = err(spec(
        &dir,
        "missing.pem",
        "server.key",
        ClientAuth::None,
        None,
    ));
    assert!(
        e.starts_with("portcullis.toml: domains[1]: cert: cannot read "),
        "{e}"
    );
    assert!(
        e.contains("missing.pem") && e.contains("No such file"),
        "{e}"
    );
    let e = err(spec(
        &dir,
        "README.md",
        "server.key",
        ClientAuth::None,
        None,
    ));
    assert!(
        e.contains(": cert: ") && e.contains("no certificate"),
        "{e}"
    );
    let e = err(spec(
        &dir,
        "server.pem",
        "README.md",
        ClientAuth::None,
        None,
    ));
    assert!(
        e.contains(": key: ") && e.contains("not a PEM private key"),
        "{e}"
    );
    let e = err(spec(
        &dir,
        "server.pem",
        "client.key",
        ClientAuth::None,
        None,
    ));
    assert!(e.contains(": key: ") && e.contains("does not match"), "{e}");
    let e = err(spec(
        &dir,
        "server.pem",
        "server.key",
        ClientAuth::Required,
        None,
    ));
    assert!(e.contains(": client_ca: required"), "{e}");
    let e = err(spec(
        &dir,
        "server.pem",
        "server.key",
        ClientAuth::Optional,
        Some("README.md"),
    ));
    assert!(
        e.contains(": client_ca: ") && e.contains("no certificates"),
        "{e}"
    );
    let e = err(spec(
        &dir,
        "server.pem",
        "server.key",
        ClientAuth::None,
        Some("ca.pem"),
    ));
    assert!(
        e.contains(": client_ca: ") && e.contains("client_auth is \"none\""),
        "{e}"
    );
    for (names, problem) in [
        (vec![], "at least one"),
        (vec!["a.*.example"], "wildcard"),
        (vec!["::1"], "IP address"),
        (vec!["bad name"], "not a valid server name"),
    ] {
        let mut s = ok.clone();
        s.names = names.into_iter().map(String::from).collect();
        let e = err(s);
        assert!(
            e.starts_with(&format!("{origin}: names: ")) && e.contains(problem),
            "{e}"
        );
    }
    // Duplicates across domains name the later domain.
    let a = ok.clone();
    let mut b = ok.clone();
    b.names = vec!["LOCALHOST".to_string()];
    let specs = [
        ("f.toml: domains[0]".to_string(), a),
        ("f.toml: domains[1]".to_string(), b),
    ];
    let e = TlsGate::from_specs(&specs, &GateOptions::default()).unwrap_err();
    assert!(
        e.starts_with("f.toml: domains[1]: names: ") && e.contains("more than one"),
        "{e}"
    );
    // A default that no domain lists.
    let options = GateOptions {
        unknown_sni: SniFallback::Default("nosuch".to_string()),
        ..GateOptions::default()
    };
    let e = TlsGate::from_specs(&specs[..1], &options).unwrap_err();
    assert!(e.contains("unknown_sni") && e.contains("nosuch"), "{e}");
}

#[test]
fn specs_parse_strictly_from_toml() {
    let text = "names = [\"localhost\"]\ncert = \"a.pem\"\nkey = \"a.key\"\n";
    let spec: DomainSpec = toml::from_str(text).unwrap();
    assert_eq!(spec.client_auth, ClientAuth::None);
    assert_eq!(spec.client_ca, None);
    let spec: DomainSpec = toml::from_str(&format!(
        "{text}client_auth = \"required\"\nclient_ca = \"ca.pem\"\n"
    ))
    .unwrap();
    assert_eq!(spec.client_auth, ClientAuth::Required);
    let e =
        toml::from_str::<DomainSpec>(&format!("{text}client_auth = \"sometimes\"\n")).unwrap_err();
    assert!(e.to_string().contains("client_auth"), "{e}");
    let e =
        toml::from_str::<DomainSpec>(&format!("{text}client_atuh = \"required\"\n")).unwrap_err();
    assert!(e.to_string().contains("client_atuh"), "{e}");
    let mut spec = spec;
    spec.resolve_paths(Path::new("/etc/portcullis"));
    assert_eq!(spec.cert, Path::new("/etc/portcullis/a.pem"));
    assert_eq!(
        spec.client_ca.as_deref(),
        Some(Path::new("/etc/portcullis/ca.pem"))
    );
}
