//! Unit tests of the ClientHello parser: real hellos parse, and each
//! malformed case from the gate's list is refused with its own label.

use super::*;
use crate::tls::hello_builder::{alpn, record, server_name, HelloBuilder};
use crate::tls::test_support::{client, ClientCert};
use crate::tls::TlsSession;

fn refused(bytes: &[u8]) -> &'static str {
    parse(bytes).expect_err("a refusal").reason()
}

/// The first flight of our own client engine, as the server receives it.
fn real_hello(sni: Option<&str>) -> Vec<u8> {
    let mut session = TlsSession::client(&client(ClientCert::None), sni, None).unwrap();
    session.process(&mut Vec::new()).unwrap();
    session.outgoing().to_vec()
}

#[test]
fn a_real_client_hello_yields_its_name_and_alpn() {
    let bytes = real_hello(Some("mtls.localhost"));
    let hello = parse(&bytes).unwrap();
    assert_eq!(hello.server_name_str(), Some("mtls.localhost"));
    assert_eq!(hello.alpn().collect::<Vec<_>>(), vec![&b"http/1.1"[..]]);
    let hello_without = real_hello(None);
    assert_eq!(parse(&hello_without).unwrap().server_name, None);
}

#[test]
fn built_hellos_parse_and_no_extensions_means_no_name() {
    let hello = HelloBuilder::new(Some(b"localhost"))
        .with(16 + 1000, vec![1, 2, 3])
        .record();
    let parsed = parse(&hello).unwrap();
    assert_eq!(parsed.server_name, Some(&b"localhost"[..]));
    let mut bare = HelloBuilder::default().message();
    // Drop the (empty) extension list altogether, as TLS 1.2 allows.
    bare.truncate(bare.len() - 2);
    let len = (bare.len() - 4) as u32;
    bare[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
    assert_eq!(parse(&record(&bare)).unwrap(), ClientHello::default());
}

#[test]
fn a_duplicated_sni_extension_or_host_name_is_refused() {
    let twice = HelloBuilder::new(Some(b"localhost"))
        .with(0, server_name(&[(0, b"mtls.localhost")]))
        .record();
    assert_eq!(refused(&twice), "sni_duplicated");
    let two_names = HelloBuilder::default()
        .with(0, server_name(&[(0, b"localhost"), (0, b"mtls.localhost")]))
        .record();
    assert_eq!(refused(&two_names), "sni_duplicated");
    let other_type = HelloBuilder::default()
        .with(0, server_name(&[(0, b"localhost"), (7, b"x")]))
        .record();
    assert_eq!(refused(&other_type), "client_hello_malformed");
    let alpn_twice = HelloBuilder::new(None).with(16, alpn(&[b"h2"])).record();
    assert_eq!(refused(&alpn_twice), "client_hello_malformed");
}

#[test]
fn empty_oversized_and_nul_names_are_refused() {
    assert_eq!(refused(&HelloBuilder::new(Some(b"")).record()), "sni_empty");
    let longest = vec![b'a'; MAX_HOST_NAME];
    assert!(parse(&HelloBuilder::new(Some(&longest)).record()).is_ok());
    let too_long = vec![b'a'; MAX_HOST_NAME + 1];
    assert_eq!(
        refused(&HelloBuilder::new(Some(&too_long)).record()),
        "sni_too_long"
    );
    assert_eq!(
        refused(&HelloBuilder::new(Some(b"local\0host")).record()),
        "sni_nul_byte"
    );
    // Not UTF-8 is not refused here: such a name simply matches no domain.
    let latin1 = HelloBuilder::new(Some(b"caf\xe9.example")).record();
    assert_eq!(parse(&latin1).unwrap().server_name_str(), None);
}

#[test]
fn a_handshake_record_that_is_not_a_client_hello_is_refused() {
    let mut message = HelloBuilder::new(Some(b"localhost")).message();
    message[0] = 0x02; // ServerHello
    assert_eq!(refused(&record(&message)), "not_client_hello");
    let mut alert = HelloBuilder::new(Some(b"localhost")).record();
    alert[0] = 0x15;
    assert_eq!(refused(&alert), "not_client_hello");
}

#[test]
fn a_client_hello_split_over_two_records_is_refused() {
    let message = HelloBuilder::new(Some(b"localhost")).message();
    let (first, second) = message.split_at(message.len() / 2);
    let mut bytes = record(first);
    bytes.extend(record(second));
    assert_eq!(refused(&bytes), "client_hello_fragmented");
    // And bytes after the hello inside its own record are not ignored.
    let mut padded = message.clone();
    padded.push(0);
    assert_eq!(refused(&record(&padded)), "client_hello_malformed");
    // Bytes after the first record are the next record's business.
    let mut then_ccs = record(&message);
    then_ccs.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
    assert!(parse(&then_ccs).is_ok());
}

#[test]
fn every_truncation_and_every_single_byte_change_is_handled() {
    let hello = real_hello(Some("localhost"));
    for end in 0..hello.len() {
        let mut cut = hello[..end].to_vec();
        // Keep the record header consistent with what is there, as the
        // engine only ever passes whole records.
        if cut.len() >= 5 {
            let len = (cut.len() - 5) as u16;
            cut[3..5].copy_from_slice(&len.to_be_bytes());
        }
        assert!(parse(&cut).is_err(), "a hello cut at {end} parsed");
    }
    for at in 0..hello.len() {
        for value in [0x00, 0x01, 0x7f, 0xff] {
            let mut changed = hello.clone();
            changed[at] = value;
            // Any verdict will do; what matters is that there is one.
            let _ = parse(&changed);
        }
    }
}

#[test]
fn malformed_alpn_is_refused() {
    let empty_name = HelloBuilder::default().with(16, alpn(&[b""])).record();
    assert_eq!(refused(&empty_name), "client_hello_malformed");
    let empty_list = HelloBuilder::default().with(16, vec![0, 0]).record();
    assert_eq!(refused(&empty_list), "client_hello_malformed");
    let overrun = HelloBuilder::default()
        .with(16, vec![0, 3, 5, b'h', b'2'])
        .record();
    assert_eq!(refused(&overrun), "client_hello_malformed");
}
