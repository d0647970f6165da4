//! Unit tests of ticket key rings and key files (the handshakes that use
//! them are tested in `tls::tests::tickets`).

use super::key_file::FORMAT_TAG;
use super::*;
use crate::tls::test_support::TempDir;
use std::os::unix::fs::PermissionsExt;

const HOUR: u64 = 3600;

fn now() -> u64 {
    now_secs()
}

#[test]
fn the_previous_key_still_decrypts_and_older_ones_do_not() {
    for file in [None, Some(test_file())] {
        let keys = TicketKeys::new("localhost", Duration::from_secs(HOUR), file.as_ref());
        let t = now() - now() % HOUR;
        let first = keys.encrypting_name(t).unwrap();
        assert_eq!(keys.accepts(&first, t), Some(Renew::No));
        let second = keys.encrypting_name(t + HOUR).unwrap();
        assert_ne!(first, second, "the key rotated");
        assert_eq!(keys.accepts(&second, t + HOUR), Some(Renew::No));
        assert_eq!(keys.accepts(&first, t + HOUR), Some(Renew::Yes));
        assert_eq!(keys.accepts(&first, t + 2 * HOUR), None);
        assert_eq!(keys.accepts(&second, t + 2 * HOUR), Some(Renew::Yes));
        assert_eq!(keys.accepts(&[0u8; 16], t + 2 * HOUR), None);
    }
}

fn test_file() -> KeyFile {
    let dir = TempDir::new("ticket-ring");
    let path = dir.path.join("tickets.key");
    KeyFile::generate(&path).unwrap();
    KeyFile::read(&path).unwrap()
}

#[test]
fn processes_sharing_a_key_file_derive_the_same_keys_per_domain() {
    let file = test_file();
    let rotation = Duration::from_secs(HOUR);
    let one = TicketKeys::new("localhost", rotation, Some(&file));
    let two = TicketKeys::new("localhost", rotation, Some(&file));
    let other = TicketKeys::new("mtls.localhost", rotation, Some(&file));
    let t = now();
    let name = one.encrypting_name(t).unwrap();
    assert_eq!(two.encrypting_name(t), Some(name));
    assert_eq!(two.accepts(&name, t), Some(Renew::No));
    assert_ne!(other.encrypting_name(t), Some(name));
    assert_eq!(
        other.accepts(&name, t),
        None,
        "a domain never takes another's ticket"
    );
    // A process a little ahead already uses the next key; one behind
    // accepts it.
    let ahead = one.encrypting_name(t + HOUR).unwrap();
    assert_eq!(two.accepts(&ahead, t), Some(Renew::Yes));
    // Random keys are per process.
    let random_one = TicketKeys::new("localhost", rotation, None);
    let random_two = TicketKeys::new("localhost", rotation, None);
    let random_name = random_one.encrypting_name(t).unwrap();
    assert_eq!(random_two.accepts(&random_name, t), None);
}

#[test]
fn a_generated_key_file_is_private_and_reads_back() {
    let dir = TempDir::new("ticket-file");
    let path = dir.path.join("tickets.key");
    KeyFile::generate(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(FORMAT_TAG), "{text}");
    KeyFile::read(&path).unwrap();
    // Generating again replaces the secret.
    let before = text;
    KeyFile::generate(&path).unwrap();
    assert_ne!(std::fs::read_to_string(&path).unwrap(), before);
}

#[test]
fn a_key_file_others_can_read_is_refused_with_path_and_fix() {
    let dir = TempDir::new("ticket-perms");
    let path = dir.path.join("tickets.key");
    KeyFile::generate(&path).unwrap();
    for (mode, who) in [
        (0o640, "its group"),
        (0o604, "everyone"),
        (0o644, "its group and by everyone"),
        (0o620, "its group"),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let error = KeyFile::read(&path).unwrap_err();
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        assert!(error.contains(&format!("accessible by {who} ")), "{error}");
        assert!(error.contains("chmod 600"), "{error}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    KeyFile::read(&path).unwrap();
}

#[test]
fn a_malformed_key_file_says_what_it_expects() {
    let dir = TempDir::new("ticket-format");
    for text in [
        "",
        "# only a comment\n",
        "portcullis-ticket-secret-v1 abcd\n",
        "portcullis-ticket-secret-v2 00\n",
        &format!(
            "{FORMAT_TAG} {}\n{FORMAT_TAG} {}\n",
            "0".repeat(64),
            "1".repeat(64)
        ),
        &format!("{FORMAT_TAG} {}\n", "g".repeat(64)),
    ] {
        let path = dir.path.join("bad.key");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = KeyFile::read(&path).unwrap_err();
        assert!(error.contains(FORMAT_TAG), "{text:?}: {error}");
    }
    let missing = KeyFile::read(&dir.path.join("missing.key")).unwrap_err();
    assert!(
        missing.contains("missing.key") && missing.contains("cannot read"),
        "{missing}"
    );
    let good = format!("# comment\n\n{FORMAT_TAG} {}\n", "ab".repeat(32));
    let path = dir.path.join("good.key");
    std::fs::write(&path, good).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    KeyFile::read(&path).unwrap();
}
