//! The OpenSSL side of ticket keys: the callback that encrypts a new
//! ticket under the current key, or finds the key of a returning one by
//! its name.
//!
//! The one idea: **OpenSSL does the ticket crypto; this only picks the key
//! and initialises AES-256-CBC and HMAC-SHA256 with it**, exactly as
//! OpenSSL's own ticket code would with its built-in key. The openssl
//! crates do not wrap `SSL_CTX_set_tlsext_ticket_key_evp_cb` (OpenSSL 3.0),
//! so it is declared here.

use std::ffi::{c_char, c_int, c_uchar};
use std::sync::{Arc, OnceLock};

use openssl::ssl::{SslContext, SslContextBuilder, SslRef};

use super::{now_secs, Secret, TicketKey, TicketKeys, KEY_LEN, NAME_LEN};

type TicketKeyCallback = unsafe extern "C" fn(
    ssl: *mut openssl_sys::SSL,
    key_name: *mut c_uchar,
    iv: *mut c_uchar,
    cipher: *mut openssl_sys::EVP_CIPHER_CTX,
    mac: *mut openssl_sys::EVP_MAC_CTX,
    encrypt: c_int,
) -> c_int;

extern "C" {
    // OpenSSL 3.0's ticket key callback (ssl.h); the openssl crates do not
    // wrap it.
    fn SSL_CTX_set_tlsext_ticket_key_evp_cb(
        ctx: *mut openssl_sys::SSL_CTX,
        callback: Option<TicketKeyCallback>,
    ) -> c_int;
    fn OSSL_PARAM_construct_utf8_string(
        key: *const c_char,
        buf: *mut c_char,
        bsize: libc::size_t,
    ) -> openssl_sys::OSSL_PARAM;
}

/// The context ex_data slot that holds each context's ring.
fn keys_index() -> Result<openssl::ex_data::Index<SslContext, Arc<TicketKeys>>, String> {
    static INDEX: OnceLock<Option<openssl::ex_data::Index<SslContext, Arc<TicketKeys>>>> =
        OnceLock::new();
    INDEX
        .get_or_init(|| SslContext::new_ex_index().ok())
        .ok_or_else(|| "no OpenSSL ex_data index for ticket keys".to_string())
}

/// Makes `b` encrypt and decrypt tickets with `keys`.
pub fn install(b: &mut SslContextBuilder, keys: Arc<TicketKeys>) -> Result<(), String> {
    b.set_ex_data(keys_index()?, keys);
    // SAFETY: `b.as_ptr()` is the live SSL_CTX being built; the callback is
    // a plain function with the signature ssl.h declares, and it finds its
    // keys through the ex_data set just above, which lives as long as the
    // context.
    let ok = unsafe { SSL_CTX_set_tlsext_ticket_key_evp_cb(b.as_ptr(), Some(ticket_key_callback)) };
    if ok == 1 {
        Ok(())
    } else {
        Err("OpenSSL refused the ticket key callback".to_string())
    }
}

/// Called by OpenSSL to encrypt a new ticket (`encrypt` = 1) or to find the
/// key of one a client brought back (0). Returns 1 (done), 2 (decrypted,
/// but issue a fresh ticket: always in TLS 1.3, and in TLS 1.2 for a
/// ticket under the previous key), 0 (no such key: full handshake) or -1.
unsafe extern "C" fn ticket_key_callback(
    ssl: *mut openssl_sys::SSL,
    key_name: *mut c_uchar,
    iv: *mut c_uchar,
    cipher: *mut openssl_sys::EVP_CIPHER_CTX,
    mac: *mut openssl_sys::EVP_MAC_CTX,
    encrypt: c_int,
) -> c_int {
    // SAFETY: OpenSSL passes the SSL being handshaked, which outlives the
    // call; an `&SslRef` is that pointer (the crate's foreign-type
    // references point at the C object), and it is only read here.
    let ssl: &SslRef = unsafe { &*(ssl as *const SslRef) };
    let Some(keys) = keys_index()
        .ok()
        .and_then(|index| ssl.ssl_context().ex_data(index))
    else {
        return -1;
    };
    // SAFETY: OpenSSL provides a 16-byte key name buffer (TLSEXT_KEYNAME_LENGTH).
    let name = unsafe { std::slice::from_raw_parts_mut(key_name, NAME_LEN) };
    let now = now_secs();
    // A TLS 1.3 client uses each ticket once (RFC 8446 §C.4), and OpenSSL
    // sends a fresh one after a resumption only when told to renew.
    let always_renew = ssl.version2() == Some(openssl::ssl::SslVersion::TLS1_3);
    let found = keys.with_ring(now, |ring| {
        let (index, key) = if encrypt == 1 {
            (0, ring.keys.first()?)
        } else {
            ring.keys
                .iter()
                .enumerate()
                .find(|(_, k)| k.name[..] == name[..])?
        };
        // SAFETY: `cipher` and `mac` are the contexts OpenSSL allocated for
        // this ticket; `iv` has room for EVP_MAX_IV_LENGTH (16) bytes, as
        // AES-256-CBC needs; the key bytes are copied by the init calls.
        let ready = unsafe { init_contexts(key, iv, cipher, mac, encrypt == 1) };
        if encrypt == 1 {
            name.copy_from_slice(&key.name);
        }
        Some(match (ready, index) {
            (false, _) => -1,
            (true, 0) if encrypt == 1 || !always_renew => 1,
            (true, _) => 2,
        })
    });
    match found {
        Some(Some(code)) => code,
        Some(None) => 0,
        None => -1,
    }
}

/// Sets up AES-256-CBC and HMAC-SHA256 with `key`, as OpenSSL's own ticket
/// code does. On encryption, fills `iv` with fresh random bytes first.
unsafe fn init_contexts(
    key: &TicketKey,
    iv: *mut c_uchar,
    cipher: *mut openssl_sys::EVP_CIPHER_CTX,
    mac: *mut openssl_sys::EVP_MAC_CTX,
    encrypt: bool,
) -> bool {
    use openssl_sys::*;
    // SAFETY: the caller guarantees the pointers (see ticket_key_callback).
    unsafe {
        if encrypt && RAND_bytes(iv, 16) != 1 {
            return false;
        }
        let started = if encrypt {
            EVP_EncryptInit_ex(
                cipher,
                EVP_aes_256_cbc(),
                std::ptr::null_mut(),
                key.aes.0.as_ptr(),
                iv,
            )
        } else {
            EVP_DecryptInit_ex(
                cipher,
                EVP_aes_256_cbc(),
                std::ptr::null_mut(),
                key.aes.0.as_ptr(),
                iv,
            )
        };
        if started != 1 {
            return false;
        }
        // A copy, because OSSL_PARAM wants a mutable pointer; wiped on drop.
        let mut hmac_key = Secret(key.hmac.0);
        let mut digest = *b"SHA256\0";
        let params = [
            OSSL_PARAM_construct_octet_string(
                c"key".as_ptr(),
                hmac_key.0.as_mut_ptr().cast(),
                KEY_LEN,
            ),
            OSSL_PARAM_construct_utf8_string(c"digest".as_ptr(), digest.as_mut_ptr().cast(), 0),
            OSSL_PARAM_construct_end(),
        ];
        EVP_MAC_CTX_set_params(mac, params.as_ptr()) == 1
    }
}
