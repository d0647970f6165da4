//! Session-ticket keys: one ring per domain, rotated on a schedule, and
//! optionally derived from a key file that several processes share.
//!
//! A session ticket is the server's own state, encrypted under a key only
//! the server knows and handed to the client to bring back. Three things
//! follow, and this module is built around them:
//!
//! * **Per domain.** Each domain's context has its own ring, so a ticket
//!   made for one domain never even decrypts under another.
//! * **Rotated.** Whoever obtains a ticket key can decrypt every TLS 1.2
//!   session it protected, so keys change every `ticket_rotation_secs`
//!   (default 12 h). The previous key still decrypts (and the client gets a
//!   fresh ticket); older ones are gone.
//! * **Shared.** Processes behind `SO_REUSEPORT` must agree on the keys, or
//!   a ticket resumes only on the process that issued it. With a key file,
//!   every process derives the same keys from its secret: key *n* of a
//!   domain is HKDF-SHA256(secret, domain name, *n*), where *n* counts
//!   rotation periods since the Unix epoch. No process talks to another,
//!   and the keys still rotate. Without a file, keys are random per
//!   process and each old one is forgotten after one more period.
//!
//! The one idea: **a key is found by its 16-byte name**, which is carried
//! in every ticket, so decrypting needs no trial and an unknown name simply
//! means a full handshake. The file format and permissions are described
//! in `docs/tls.md`; [`KeyFile::generate`] writes a new one.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod callback;
mod key_file;

pub(crate) use callback::install;
pub use key_file::KeyFile;

/// How often keys change unless configured otherwise.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(12 * 3600);
const SECRET_LEN: usize = 32;
const NAME_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// Gate-wide ticket settings (`[tls]` in the config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketSettings {
    /// How long each key is the one that encrypts.
    pub rotation: Duration,
    /// Derive keys from this file's secret instead of random ones.
    pub key_file: Option<PathBuf>,
}

impl Default for TicketSettings {
    fn default() -> TicketSettings {
        TicketSettings {
            rotation: DEFAULT_ROTATION,
            key_file: None,
        }
    }
}

/// Bytes wiped when dropped, so keys do not linger in freed memory.
pub(crate) struct Secret<const N: usize = SECRET_LEN>(pub(crate) [u8; N]);

impl<const N: usize> Drop for Secret<N> {
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // SAFETY: `byte` is a valid, aligned, exclusive reference; the
            // volatile write only keeps the compiler from eliding the wipe.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

/// One ticket key: its name (in every ticket it made) and its two halves.
pub(crate) struct TicketKey {
    pub(crate) name: [u8; NAME_LEN],
    pub(crate) aes: Secret<KEY_LEN>,
    pub(crate) hmac: Secret<KEY_LEN>,
}

impl TicketKey {
    fn from_bytes(bytes: &[u8; NAME_LEN + 2 * KEY_LEN]) -> TicketKey {
        let mut key = TicketKey {
            name: [0; NAME_LEN],
            aes: Secret([0; KEY_LEN]),
            hmac: Secret([0; KEY_LEN]),
        };
        key.name.copy_from_slice(&bytes[..NAME_LEN]);
        key.aes
            .0
            .copy_from_slice(&bytes[NAME_LEN..NAME_LEN + KEY_LEN]);
        key.hmac.0.copy_from_slice(&bytes[NAME_LEN + KEY_LEN..]);
        key
    }
}

/// Where keys come from.
enum Source {
    Random,
    /// HKDF from a shared secret, separated by domain name.
    Derived {
        secret: Arc<Secret>,
        domain: String,
    },
}

/// The keys in force for one period: the encrypting one first.
pub(crate) struct Ring {
    period: u64,
    /// `[current, previous?, next?]`: previous still decrypts; next (only
    /// when derived) lets a process whose clock lags a little accept what
    /// a process already in the next period issued.
    pub(crate) keys: Vec<TicketKey>,
}

/// One domain's ticket keys.
pub struct TicketKeys {
    source: Source,
    rotation_secs: u64,
    ring: RwLock<Ring>,
}

impl TicketKeys {
    /// Keys for `domain` with `settings`; `file` is the loaded key file.
    pub fn new(domain: &str, rotation: Duration, file: Option<&KeyFile>) -> TicketKeys {
        let source = match file {
            Some(file) => Source::Derived {
                secret: file.secret(),
                domain: domain.to_string(),
            },
            None => Source::Random,
        };
        let rotation_secs = rotation.as_secs().max(1);
        let period = now_secs() / rotation_secs;
        let keys = TicketKeys {
            ring: RwLock::new(Ring {
                period,
                keys: Vec::new(),
            }),
            source,
            rotation_secs,
        };
        if let Ok(mut ring) = keys.ring.write() {
            *ring = keys.ring_for(period, None);
        }
        keys
    }

    /// The ring for `period`, keeping the last key of `old` as the
    /// previous one when it is exactly one period old (random keys).
    fn ring_for(&self, period: u64, old: Option<Ring>) -> Ring {
        let keys = match &self.source {
            Source::Derived { secret, domain } => {
                [Some(period), period.checked_sub(1), Some(period + 1)]
                    .into_iter()
                    .flatten()
                    .filter_map(|p| derive(secret, domain, p))
                    .collect()
            }
            Source::Random => {
                let mut keys: Vec<TicketKey> = random_key().into_iter().collect();
                if let Some(old) = old.filter(|o| o.period + 1 == period) {
                    keys.extend(old.keys.into_iter().take(1));
                }
                keys
            }
        };
        Ring { period, keys }
    }

    /// Runs `f` on the ring in force at `now` (seconds since the epoch),
    /// rotating first if a period boundary has passed.
    pub(crate) fn with_ring<T>(&self, now: u64, f: impl FnOnce(&Ring) -> T) -> Option<T> {
        let period = now / self.rotation_secs;
        {
            let ring = self.ring.read().ok()?;
            if ring.period == period {
                return Some(f(&ring));
            }
        }
        let mut ring = self.ring.write().ok()?;
        if ring.period != period {
            let old = std::mem::replace(
                &mut *ring,
                Ring {
                    period,
                    keys: Vec::new(),
                },
            );
            *ring = self.ring_for(period, Some(old));
        }
        Some(f(&ring))
    }

    /// The name of the key that encrypts at `now`.
    pub fn encrypting_name(&self, now: u64) -> Option<[u8; NAME_LEN]> {
        self.with_ring(now, |ring| ring.keys.first().map(|k| k.name))?
    }

    /// Whether a ticket made under key `name` still decrypts at `now`, and
    /// if so whether it should be renewed (made under an older key).
    pub fn accepts(&self, name: &[u8], now: u64) -> Option<Renew> {
        self.with_ring(now, |ring| {
            let index = ring.keys.iter().position(|k| k.name == name)?;
            Some(if index == 0 { Renew::No } else { Renew::Yes })
        })?
    }
}

/// Whether a decrypted ticket should be replaced by a fresh one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renew {
    No,
    Yes,
}

fn derive(secret: &Secret, domain: &str, period: u64) -> Option<TicketKey> {
    use openssl::md::Md;
    use openssl::pkey::Id;
    use openssl::pkey_ctx::PkeyCtx;
    let mut ctx = PkeyCtx::new_id(Id::HKDF).ok()?;
    ctx.derive_init().ok()?;
    ctx.set_hkdf_md(Md::sha256()).ok()?;
    ctx.set_hkdf_key(&secret.0).ok()?;
    ctx.add_hkdf_info(b"portcullis ticket key v1\0").ok()?;
    ctx.add_hkdf_info(domain.as_bytes()).ok()?;
    ctx.add_hkdf_info(&period.to_be_bytes()).ok()?;
    let mut out = Secret([0u8; NAME_LEN + 2 * KEY_LEN]);
    ctx.derive(Some(&mut out.0)).ok()?;
    Some(TicketKey::from_bytes(&out.0))
}

fn random_key() -> Option<TicketKey> {
    let mut bytes = Secret([0u8; NAME_LEN + 2 * KEY_LEN]);
    openssl::rand::rand_bytes(&mut bytes.0).ok()?;
    Some(TicketKey::from_bytes(&bytes.0))
}

#[cfg(not(test))]
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
thread_local! {
    /// Tests move this thread's ticket clock forward to cross rotations.
    pub(crate) static CLOCK_SKEW: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + CLOCK_SKEW.with(|c| c.get())
}

#[cfg(test)]
mod tests;
