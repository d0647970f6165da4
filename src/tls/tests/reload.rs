//! Replacing the domain table: new connections see the new table, live
//! ones keep the context they were created with.

use crate::domains::ClientAuth;
use crate::tls::dev_certs::CA_PEM;
use crate::tls::test_support::*;
use crate::tls::TlsSession;

#[test]
fn a_swapped_table_serves_new_connections_and_spares_live_ones() {
    let gate = three_domain_gate();
    // A connection mid-handshake under the old table...
    let tls = client(ClientCert::None);
    let live_client = TlsSession::client(&tls, Some("localhost"), None).unwrap();
    let mut live = Pair::with_client(&gate, live_client);
    // ...and an established one.
    let mut open = connected(&gate, &tls, Some("localhost"));

    // The new table: `localhost` now requires a client certificate, and
    // `optional.localhost` is gone.
    gate.replace_domains(&[
        domain(&["localhost"], ClientAuth::Required, Some(CA_PEM)),
        domain(&["mtls.localhost"], ClientAuth::Required, Some(CA_PEM)),
    ])
    .unwrap();

    let (c, s) = live.run();
    c.unwrap();
    s.expect("the live handshake finishes under the old policy");
    assert_eq!(
        live.server.info(&base_info()).domain.as_deref(),
        Some("localhost")
    );
    open.client.send(b"still here").unwrap();
    let (c, s) = open.run();
    c.unwrap();
    s.unwrap();
    assert_eq!(open.server_plain, b"still here");

    // New connections get the new policy.
    let mut fresh = Pair::new(&gate, &tls, Some("localhost"));
    let (_, server) = fresh.run();
    assert_eq!(server.unwrap_err().reason(), "no_client_cert");
    let rules = gate.domain_rules();
    assert!(rules.for_name("optional.localhost").is_none());
    assert_eq!(
        rules.for_name("localhost").map(|r| r.client_auth),
        Some(ClientAuth::Required)
    );
    // A table that does not build leaves the current one in place.
    let error = gate.replace_domains(&[]).unwrap_err();
    assert!(error.contains("at least one domain"), "{error}");
    connected(&gate, &client(ClientCert::Dev), Some("localhost"));
}
