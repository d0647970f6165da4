//! Builds ClientHello records byte by byte, for tests that need hellos no
//! real client would send (duplicated or empty names, split records).
//!
//! The one idea: **start from a well-formed hello and break exactly one
//! thing**, so a test that expects a refusal proves the refusal came from
//! that thing.

/// A ClientHello under construction: the extensions, in order.
#[derive(Clone, Debug, Default)]
pub struct HelloBuilder {
    pub extensions: Vec<(u16, Vec<u8>)>,
}

impl HelloBuilder {
    /// A hello naming `sni` (if any) and offering `http/1.1`, plus the
    /// TLS 1.3 extensions OpenSSL needs to answer it.
    pub fn new(sni: Option<&[u8]>) -> HelloBuilder {
        let mut builder = HelloBuilder::default();
        if let Some(name) = sni {
            builder.extensions.push((0, server_name(&[(0, name)])));
        }
        builder.extensions.push((16, alpn(&[b"http/1.1"])));
        builder
    }

    pub fn with(mut self, kind: u16, data: Vec<u8>) -> HelloBuilder {
        self.extensions.push((kind, data));
        self
    }

    /// The handshake message: type, 24-bit length, body.
    pub fn message(&self) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x5a; 32]); // random
        body.push(0); // empty legacy session id
        body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f]); // two suites
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        let mut extensions = Vec::new();
        for (kind, data) in &self.extensions {
            extensions.extend_from_slice(&kind.to_be_bytes());
            extensions.extend_from_slice(&(data.len() as u16).to_be_bytes());
            extensions.extend_from_slice(data);
        }
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(&extensions);
        let mut message = vec![0x01];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        message
    }

    /// The message in one handshake record.
    pub fn record(&self) -> Vec<u8> {
        record(&self.message())
    }
}

/// A handshake record (type 22, version TLS 1.0 as clients send) around
/// `fragment`.
pub fn record(fragment: &[u8]) -> Vec<u8> {
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
    record.extend_from_slice(fragment);
    record
}

/// A `server_name` extension body with the given `(name_type, name)`
/// entries.
pub fn server_name(entries: &[(u8, &[u8])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (kind, name) in entries {
        list.push(*kind);
        list.extend_from_slice(&(name.len() as u16).to_be_bytes());
        list.extend_from_slice(name);
    }
    let mut data = (list.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    data
}

/// An ALPN extension body offering `names`.
pub fn alpn(names: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.push(name.len() as u8);
        list.extend_from_slice(name);
    }
    let mut data = (list.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    data
}
