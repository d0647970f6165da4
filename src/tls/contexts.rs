//! Builds each domain's OpenSSL context: certificate, client-certificate
//! policy, ciphers, ALPN, session cache and ticket keys.
//!
//! Every connection's `SSL` is created from the context of the domain the
//! gate chose from the ClientHello, so everything the domain enforces is
//! simply *in* its context: nothing is switched or copied mid-handshake.
//! The one idea: **a context is a complete, self-contained policy**, and
//! its session id context digests that policy, so OpenSSL never resumes a
//! session under a policy it was not made under (the nginx CVE-2025-23419
//! class: a session made without a client certificate resuming into a
//! domain that requires one). Tickets cannot cross either: each context has
//! its own ticket keys.
//!
//! One check stays inside the handshake: the ClientHello callback compares
//! the server name OpenSSL sees with the one the gate parsed. For the first
//! ClientHello they are the same bytes; for the ClientHello a client
//! repeats after a HelloRetryRequest, a different name is refused
//! (`sni_changed`), since the connection's domain was fixed by the first.

use std::sync::{Arc, OnceLock};

use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::ssl::{
    AlpnError, ClientHelloResponse, Ssl, SslAlert, SslContext, SslContextBuilder, SslMethod,
    SslMode, SslOptions, SslRef, SslSessionCacheMode, SslVerifyMode,
};

use crate::domains::ClientAuth;

use super::client_hello;
use super::domain::Domain;
use super::error::{TlsError, TlsErrorKind};
use super::profile::Profile;
use super::tickets::{self, KeyFile, TicketKeys, TicketSettings};

/// How long a certificate chain the gate will verify.
const VERIFY_DEPTH: u32 = 8;
/// Sessions kept per domain for TLS 1.2 id-based resumption (tickets need
/// no cache). Each entry is a few hundred bytes plus any client certificate.
const SESSION_CACHE_SIZE: i32 = 10_000;
/// TLS 1.3 tickets sent per full handshake; clients reuse one at a time.
const TICKETS_PER_HANDSHAKE: usize = 1;

/// What every domain context shares.
pub(crate) struct ContextSettings<'a> {
    /// ALPN protocols in server preference order.
    pub alpn: &'a Arc<Vec<Vec<u8>>>,
    /// The profile for domains that name none.
    pub profile: Profile,
    pub tickets: &'a TicketSettings,
    /// The loaded `tickets.key_file`, if configured.
    pub key_file: Option<&'a KeyFile>,
}

/// What the ClientHello callback compares against, stored in each `SSL`.
#[derive(Debug, Default)]
pub(crate) struct HelloCheck {
    /// The host name the gate parsed from the first ClientHello.
    pub expected: Option<Box<[u8]>>,
    /// A later ClientHello named another server.
    pub sni_changed: bool,
}

/// The process-wide `SSL` ex_data slot for [`HelloCheck`]. OpenSSL never
/// frees ex_data indexes, so one is made once, not per context.
pub(crate) fn hello_check_index() -> Result<openssl::ex_data::Index<Ssl, HelloCheck>, TlsError> {
    static INDEX: OnceLock<Option<openssl::ex_data::Index<Ssl, HelloCheck>>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index().ok())
        .ok_or_else(|| TlsError::new(TlsErrorKind::Internal, "no OpenSSL ex_data index"))
}

/// The context for `domain`, the `index`th of its table. Errors are
/// `key: problem`, to be prefixed with the domain's origin.
pub(crate) fn domain_context(
    domain: &Domain,
    index: usize,
    settings: &ContextSettings<'_>,
) -> Result<SslContext, String> {
    let e = |e: ErrorStack| e.to_string();
    let mut b = SslContextBuilder::new(SslMethod::tls_server()).map_err(e)?;
    domain
        .ciphers
        .apply(&mut b, settings.profile)
        .map_err(|(key, problem)| format!("{key}: {problem}"))?;
    b.set_options(SslOptions::NO_RENEGOTIATION);
    // Frees OpenSSL's 16 KiB+ record buffers whenever they are empty: the
    // dominant cost of an idle connection otherwise.
    b.set_mode(SslMode::RELEASE_BUFFERS);
    b.set_session_cache_mode(SslSessionCacheMode::SERVER);
    b.set_session_cache_size(SESSION_CACHE_SIZE);
    b.set_num_tickets(TICKETS_PER_HANDSHAKE).map_err(e)?;
    let keys = TicketKeys::new(domain.name(), settings.tickets.rotation, settings.key_file);
    tickets::install(&mut b, Arc::new(keys)).map_err(|p| format!("tickets: {p}"))?;

    let mut chain = domain.chain.iter();
    if let Some(leaf) = chain.next() {
        b.set_certificate(leaf).map_err(|e| format!("cert: {e}"))?;
    }
    for extra in chain {
        b.add_extra_chain_cert(extra.clone())
            .map_err(|e| format!("cert: {e}"))?;
    }
    b.set_private_key(&domain.key)
        .map_err(|e| format!("key: {e}"))?;
    b.check_private_key().map_err(|e| format!("key: {e}"))?;
    let mut ca_digests = Vec::new();
    for ca in &domain.client_ca {
        b.cert_store_mut()
            .add_cert(ca.clone())
            .map_err(|e| format!("client_ca: {e}"))?;
        b.add_client_ca(ca).map_err(|e| format!("client_ca: {e}"))?;
        ca_digests.extend_from_slice(&ca.digest(MessageDigest::sha256()).map_err(e)?);
    }
    b.set_verify(verify_mode(domain.client_auth));
    b.set_verify_depth(VERIFY_DEPTH);
    let sid = session_id_context(&[
        b"portcullis domain",
        &(index as u64).to_be_bytes(),
        domain.names.join(",").as_bytes(),
        domain.client_auth.as_str().as_bytes(),
        &ca_digests,
    ])?;
    b.set_session_id_context(&sid).map_err(e)?;

    let alpn = settings.alpn.clone();
    b.set_alpn_select_callback(move |_ssl, client| {
        select_alpn(&alpn, client).ok_or(AlpnError::NOACK)
    });
    b.set_client_hello_callback(check_client_hello);
    Ok(b.build())
}

pub(crate) fn verify_mode(auth: ClientAuth) -> SslVerifyMode {
    match auth {
        ClientAuth::None => SslVerifyMode::NONE,
        ClientAuth::Optional => SslVerifyMode::PEER,
        ClientAuth::Required => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
    }
}

/// The ClientHello callback: OpenSSL's view of the server name must be the
/// one the domain was chosen by.
fn check_client_hello(
    ssl: &mut SslRef,
    alert: &mut SslAlert,
) -> Result<ClientHelloResponse, ErrorStack> {
    let Ok(slot) = hello_check_index() else {
        *alert = SslAlert::INTERNAL_ERROR;
        return Err(ErrorStack::get());
    };
    let seen = client_hello_server_name(ssl);
    let Some(check) = ssl.ex_data_mut(slot) else {
        // Every SSL the gate makes carries a check; one without it was not
        // admitted by the gate.
        *alert = SslAlert::INTERNAL_ERROR;
        return Err(ErrorStack::get());
    };
    if seen.as_deref() == check.expected.as_deref() {
        return Ok(ClientHelloResponse::SUCCESS);
    }
    check.sni_changed = true;
    *alert = SslAlert::ILLEGAL_PARAMETER;
    Err(ErrorStack::get())
}

/// The host name in the ClientHello being processed, from the raw
/// server_name extension; `None` when absent or unparsable (OpenSSL then
/// refuses a malformed one itself).
fn client_hello_server_name(ssl: &mut SslRef) -> Option<Vec<u8>> {
    const TLSEXT_TYPE_SERVER_NAME: u32 = 0;
    let mut data: *const u8 = std::ptr::null();
    let mut len: usize = 0;
    // SAFETY: an `&mut SslRef` is the `SSL*` itself (the openssl crate's
    // foreign-type references point at the C object), and this runs inside
    // the ClientHello callback, the only time SSL_client_hello_get0_ext may
    // be called. On success OpenSSL points `data` at `len` bytes it owns
    // until the callback returns; they are copied out before that.
    let extension = unsafe {
        let raw = ssl as *mut SslRef as *mut openssl_sys::SSL;
        if openssl_sys::SSL_client_hello_get0_ext(raw, TLSEXT_TYPE_SERVER_NAME, &mut data, &mut len)
            != 1
            || data.is_null()
        {
            return None;
        }
        std::slice::from_raw_parts(data, len)
    };
    client_hello::host_name(extension).ok().map(<[u8]>::to_vec)
}

/// The first of our protocols (server preference) that the client offers,
/// as a slice of the client's list (OpenSSL wants a pointer into it).
pub(crate) fn select_alpn<'a>(ours: &[Vec<u8>], client: &'a [u8]) -> Option<&'a [u8]> {
    let mut offered = Vec::new();
    let mut rest = client;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || tail.len() < len {
            return None;
        }
        offered.push(&tail[..len]);
        rest = &tail[len..];
    }
    ours.iter()
        .find_map(|want| offered.iter().find(|p| **p == want.as_slice()).copied())
}

/// A session id context: OpenSSL resumes a session only under the context
/// it was created with. It digests everything that makes up the policy, so
/// two domains never share one (SSL_MAX_SID_CTX_LENGTH is 32 = SHA-256).
fn session_id_context(parts: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut hasher = Hasher::new(MessageDigest::sha256()).map_err(|e| e.to_string())?;
    for part in parts {
        hasher
            .update(&(part.len() as u64).to_be_bytes())
            .map_err(|e| e.to_string())?;
        hasher.update(part).map_err(|e| e.to_string())?;
    }
    Ok(hasher.finish().map_err(|e| e.to_string())?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_prefers_the_servers_order_and_tolerates_garbage() {
        let ours = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        assert_eq!(select_alpn(&ours, b"\x08http/1.1\x02h2"), Some(&b"h2"[..]));
        assert_eq!(select_alpn(&ours, b"\x08http/1.1"), Some(&b"http/1.1"[..]));
        assert_eq!(select_alpn(&ours, b"\x06spdy/3"), None);
        assert_eq!(select_alpn(&ours, b"\x09http/1.1"), None);
        assert_eq!(select_alpn(&ours, b"\x00"), None);
        assert_eq!(select_alpn(&ours, b""), None);
    }
}
