//! Reads the server name and ALPN offer out of a ClientHello record, before
//! any TLS state exists.
//!
//! The event loop already holds a connection's whole first record before it
//! creates a TLS session (see [`first_record_len`](super::first_record_len)).
//! Reading the SNI from those bytes lets the gate pick the domain first and
//! create the `SSL` from that domain's own context, as rustls's `Acceptor`
//! does, instead of starting on a neutral context and switching inside an
//! OpenSSL callback. The one idea: **this parser does no I/O and allocates
//! nothing; it walks length-prefixed vectors and either borrows the two
//! fields the gate needs or says, with the alert to send, why the bytes are
//! not a ClientHello it will serve.** OpenSSL parses the same bytes again
//! afterwards and remains the judge of everything else.
//!
//! What is refused, and how (the label is the counter and the log word):
//!
//! | input | label | alert |
//! |---|---|---|
//! | a handshake message other than ClientHello | `not_client_hello` | unexpected_message |
//! | a ClientHello longer than its record (split over several) | `client_hello_fragmented` | handshake_failure |
//! | truncated or inconsistent lengths, bad ALPN list, repeated extension | `client_hello_malformed` | decode_error (repeats: illegal_parameter) |
//! | two `server_name` extensions, or two host names | `sni_duplicated` | illegal_parameter |
//! | an empty host name | `sni_empty` | decode_error |
//! | a host name over 255 bytes | `sni_too_long` | unrecognized_name |
//! | a host name containing a NUL byte | `sni_nul_byte` | unrecognized_name |
//!
//! **A ClientHello split over several records is refused, not reassembled.**
//! RFC 8446 allows it, but every mainstream client sends its ClientHello in
//! one record (it is well under the 16 KiB record limit), and reassembling
//! would mean holding several records from a peer that has not yet proved
//! anything, which is the memory the engine's hold-one-record rule exists
//! to avoid.

use super::error::{TlsError, TlsErrorKind};

/// The most a host name can be on the wire: a DNS name is at most 255
/// octets (RFC 1035 §2.3.4).
pub const MAX_HOST_NAME: usize = 255;

const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXTENSION_SERVER_NAME: u16 = 0;
const EXTENSION_ALPN: u16 = 16;
const NAME_TYPE_HOST_NAME: u8 = 0;

/// What the gate reads from a ClientHello. Borrowed from the record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The host name from the `server_name` extension, as sent: non-empty,
    /// at most [`MAX_HOST_NAME`] bytes, no NUL. Not necessarily ASCII or
    /// UTF-8; a name that is not simply matches no domain.
    pub server_name: Option<&'a [u8]>,
    /// The `application_layer_protocol_negotiation` list as on the wire
    /// (each name prefixed by its length), already checked to be well
    /// formed; walk it with [`ClientHello::alpn`].
    alpn_list: Option<&'a [u8]>,
}

impl<'a> ClientHello<'a> {
    /// The host name as text, when it is UTF-8.
    pub fn server_name_str(&self) -> Option<&'a str> {
        self.server_name.and_then(|n| std::str::from_utf8(n).ok())
    }

    /// The protocols offered through ALPN, in the client's order.
    pub fn alpn(&self) -> impl Iterator<Item = &'a [u8]> {
        let mut rest = self.alpn_list.unwrap_or(&[]);
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let (name, tail) = tail.split_at(usize::from(len));
            rest = tail;
            Some(name)
        })
    }
}

/// Parses the ClientHello in the first record of `bytes` (which starts with
/// the record header; bytes after the first record are ignored).
pub fn parse(bytes: &[u8]) -> Result<ClientHello<'_>, TlsError> {
    let mut record = Reader::new(bytes);
    let content_type = record.u8()?;
    let _legacy_version = record.take(2)?;
    let fragment = record.vector16()?;
    if content_type != CONTENT_TYPE_HANDSHAKE {
        return Err(fail(
            TlsErrorKind::NotClientHello,
            "the first record is not a handshake record",
        ));
    }
    let mut message = Reader::new(fragment);
    let message_type = message.u8()?;
    if message_type != HANDSHAKE_CLIENT_HELLO {
        return Err(fail(
            TlsErrorKind::NotClientHello,
            "the first handshake message is not a ClientHello",
        ));
    }
    let length = message.u24()?;
    let body = message.rest();
    if length > body.len() {
        return Err(fail(
            TlsErrorKind::FragmentedClientHello,
            "the ClientHello continues past its first record; split ClientHellos are refused",
        ));
    }
    if length < body.len() {
        return Err(fail(
            TlsErrorKind::MalformedClientHello,
            "bytes follow the ClientHello inside its record",
        ));
    }
    parse_body(body)
}

/// The ClientHello body (RFC 8446 §4.1.2; TLS 1.2's is the same shape).
fn parse_body(body: &[u8]) -> Result<ClientHello<'_>, TlsError> {
    let mut hello = Reader::new(body);
    let _legacy_version = hello.take(2)?;
    let _random = hello.take(32)?;
    let session_id = hello.vector8()?;
    if session_id.len() > 32 {
        return Err(malformed("the legacy session id is longer than 32 bytes"));
    }
    let suites = hello.vector16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(malformed("the cipher suite list is empty or odd-sized"));
    }
    if hello.vector8()?.is_empty() {
        return Err(malformed("the compression method list is empty"));
    }
    let mut found = ClientHello::default();
    if hello.is_empty() {
        // TLS 1.2 allows a ClientHello without extensions: no name, no ALPN.
        return Ok(found);
    }
    let mut extensions = Reader::new(hello.vector16()?);
    if !hello.is_empty() {
        return Err(malformed("bytes follow the extension list"));
    }
    // One bit per extension type: repeats are found in one pass without
    // allocating, however many extensions a hostile hello carries.
    let mut seen = [0u64; 1024];
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vector16()?;
        let (word, bit) = (usize::from(kind / 64), kind % 64);
        if seen[word] & (1 << bit) != 0 {
            return Err(if kind == EXTENSION_SERVER_NAME {
                fail(TlsErrorKind::DuplicateSni, "two server_name extensions")
            } else {
                fail(
                    TlsErrorKind::MalformedClientHello,
                    format!("extension {kind} appears twice"),
                )
            });
        }
        seen[word] |= 1 << bit;
        match kind {
            EXTENSION_SERVER_NAME => found.server_name = Some(host_name(data)?),
            EXTENSION_ALPN => found.alpn_list = Some(alpn_list(data)?),
            _ => {}
        }
    }
    Ok(found)
}

/// The single host name of a `server_name` extension (RFC 6066 §3). Like
/// OpenSSL, only a list of exactly one `host_name` entry is accepted.
pub(crate) fn host_name(data: &[u8]) -> Result<&[u8], TlsError> {
    let mut extension = Reader::new(data);
    let mut list = Reader::new(extension.vector16()?);
    if !extension.is_empty() || list.is_empty() {
        return Err(malformed("the server_name extension is malformed"));
    }
    if list.u8()? != NAME_TYPE_HOST_NAME {
        return Err(malformed("the server_name entry is not a host name"));
    }
    let name = list.vector16()?;
    if !list.is_empty() {
        return Err(if list.u8()? == NAME_TYPE_HOST_NAME {
            fail(TlsErrorKind::DuplicateSni, "two host names in server_name")
        } else {
            malformed("the server_name list has more than one entry")
        });
    }
    if name.is_empty() {
        return Err(fail(TlsErrorKind::EmptySni, "the host name is empty"));
    }
    if name.len() > MAX_HOST_NAME {
        return Err(fail(
            TlsErrorKind::OversizedSni,
            format!("the host name is {} bytes long", name.len()),
        ));
    }
    if name.contains(&0) {
        return Err(fail(
            TlsErrorKind::SniNulByte,
            "the host name contains a NUL byte",
        ));
    }
    Ok(name)
}

/// Checks an ALPN `protocol_name_list` (RFC 7301 §3.1): at least one name,
/// each 1 to 255 bytes. Returns the list's content.
fn alpn_list(data: &[u8]) -> Result<&[u8], TlsError> {
    let mut extension = Reader::new(data);
    let list = extension.vector16()?;
    if !extension.is_empty() || list.is_empty() {
        return Err(malformed("the ALPN extension is malformed"));
    }
    let mut names = Reader::new(list);
    while !names.is_empty() {
        if names.vector8()?.is_empty() {
            return Err(malformed("an ALPN protocol name is empty"));
        }
    }
    Ok(list)
}

fn fail(kind: TlsErrorKind, message: impl Into<String>) -> TlsError {
    TlsError::new(kind, message)
}

fn malformed(message: &str) -> TlsError {
    fail(TlsErrorKind::MalformedClientHello, message)
}

/// A cursor over bytes that never reads past the end: every short read is
/// a `client_hello_malformed` error.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TlsError> {
        if self.bytes.len() < n {
            return Err(malformed("a length runs past the end of the ClientHello"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, TlsError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, TlsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Result<usize, TlsError> {
        let b = self.take(3)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    fn vector8(&mut self) -> Result<&'a [u8], TlsError> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    fn vector16(&mut self) -> Result<&'a [u8], TlsError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

#[cfg(test)]
#[path = "client_hello_tests.rs"]
mod tests;
