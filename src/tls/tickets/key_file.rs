//! The ticket key file: one secret, shared by every process serving a
//! port, readable by its owner only.
//!
//! The one idea: **the file holds a seed, not keys**; each process derives
//! the current, previous and next key of each domain from it (see the
//! parent module), so the file never needs rewriting for keys to rotate.
//! Replacing it (with [`KeyFile::generate`]) and restarting changes every
//! key at once.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use super::{Secret, SECRET_LEN};

/// The first non-comment line of a key file starts with this.
pub(crate) const FORMAT_TAG: &str = "portcullis-ticket-secret-v1";

/// The secret in a key file.
#[derive(Clone)]
pub struct KeyFile {
    secret: Arc<Secret>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyFile(..)")
    }
}

impl KeyFile {
    /// Writes a new key file with a fresh random secret, readable by its
    /// owner only, replacing `path` atomically (through a temporary file in
    /// the same directory) so a reader never sees half a file.
    pub fn generate(path: &Path) -> std::io::Result<()> {
        let mut secret = Secret([0u8; SECRET_LEN]);
        openssl::rand::rand_bytes(&mut secret.0).map_err(std::io::Error::other)?;
        let text = format!(
            "# Session-ticket secret for portcullis: whoever reads it can decrypt\n\
             # the TLS sessions it protects. Keep it mode 0600.\n{FORMAT_TAG} {}\n",
            hex(&secret.0)
        );
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    }

    pub(crate) fn secret(&self) -> Arc<Secret> {
        self.secret.clone()
    }

    /// Reads a key file, refusing one that others may read or write.
    /// Errors start with the path and say what to do.
    pub fn read(path: &Path) -> Result<KeyFile, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
                (true, true) => "its group and by everyone",
                (true, false) => "its group",
                _ => "everyone",
            };
            return Err(format!(
                "{shown}: the ticket key file is accessible by {who} (mode {mode:04o}); \
                 run `chmod 600 {shown}`"
            ));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let (Some(line), None) = (lines.next(), lines.next()) else {
            return Err(format!(
                "{shown}: expected exactly one line `{FORMAT_TAG} <64 hex digits>`"
            ));
        };
        let secret = line
            .strip_prefix(FORMAT_TAG)
            .map(str::trim)
            .and_then(unhex::<SECRET_LEN>)
            .ok_or_else(|| {
                format!("{shown}: the secret line must be `{FORMAT_TAG} <64 hex digits>`")
            })?;
        Ok(KeyFile {
            secret: Arc::new(Secret(secret)),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
