//! The helper scripts do what their `--help` says.

use std::path::Path;
use std::process::Command;

fn run(script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new("bash").arg(path).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fingerprint(pem: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn gen_certs_keeps_what_exists_and_force_makes_everything_anew() {
    let dir = std::env::temp_dir().join(format!("portcullis-gen-certs-{}", std::process::id()));
    let dir_arg = dir.to_str().unwrap();
    run("gen-certs.sh", &[dir_arg]);
    let first = fingerprint(&dir.join("server.pem"));
    let again = run("gen-certs.sh", &[dir_arg]);
    assert!(
        !again.contains("created"),
        "a second run re-created files: {again}"
    );
    assert_eq!(fingerprint(&dir.join("server.pem")), first);
    let forced = run("gen-certs.sh", &["--force", dir_arg]);
    assert!(forced.contains("created"), "{forced}");
    assert_ne!(fingerprint(&dir.join("server.pem")), first);
    let _ = std::fs::remove_dir_all(&dir);
}
