//! The session-ticket secret the supervisor shares with its worker
//! processes, so that a ticket issued by one resumes on any other.
//!
//! The kernel hands each new connection to any of the processes behind
//! `SO_REUSEPORT`; with keys of their own, a client's ticket would resume
//! only one time in N. The supervisor generates one secret and writes it as
//! a ticket key file (`tls::KeyFile`, the format `[tls] ticket_key_file`
//! reads, mode 0600) in a directory of its own (mode 0700); each worker
//! process is told the path in [`ENV`] and uses it unless its config names
//! a key file. The one idea: **the secret outlives the worker processes but
//! not the supervisor**: a restarted worker reads the same file, so tickets
//! survive its crash, and the directory is removed when the supervisor
//! exits.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::tls::KeyFile;

/// The variable that tells a worker process where the secret is.
pub const ENV: &str = "PORTCULLIS_TICKET_KEY_FILE";

/// A private directory holding the key file; removed on drop.
pub struct SharedTickets {
    dir: PathBuf,
    file: PathBuf,
}

impl SharedTickets {
    /// Generates a fresh secret under `parent` (the runtime or temp dir).
    pub fn create(parent: &Path) -> std::io::Result<SharedTickets> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = parent.join(format!("portcullis-{}-{nanos}", std::process::id()));
        // 0700, and `create` (not `create_all`) fails if it exists: nobody
        // else can have prepared it for us.
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let file = dir.join("tickets.key");
        if let Err(err) = KeyFile::generate(&file) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(err);
        }
        Ok(SharedTickets { dir, file })
    }

    /// Where the secret is: `$XDG_RUNTIME_DIR` when set (a per-user tmpfs),
    /// else the temp directory.
    pub fn default_parent() -> PathBuf {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir)
    }

    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl Drop for SharedTickets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_secret_is_private_readable_and_gone_with_the_supervisor() {
        let tickets = SharedTickets::create(&std::env::temp_dir()).unwrap();
        let mode = std::fs::metadata(tickets.file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir = tickets.file().parent().unwrap().to_path_buf();
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        KeyFile::read(tickets.file()).expect("a worker can read it");
        drop(tickets);
        assert!(!dir.exists());
    }
}
