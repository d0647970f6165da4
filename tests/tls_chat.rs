//! The chat service behind the TLS gate: members over plaintext, TLS and
//! mutual TLS share one room on one port, for every driver that runs here. The
//! greeting waits for the handshake; a plaintext member that waits to be
//! spoken to is greeted after the short plaintext grace.

mod common;

use std::io::{BufRead, BufReader, Read, Write};

use common::tls::tls_connect;
use common::{drivers, Server};

const GREETING: &str = "welcome to portcullis chat";

fn read_line<S: Read>(reader: &mut BufReader<S>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a chat line");
    line
}

#[test]
fn plain_tls_and_mtls_members_share_one_room() {
    for backend in drivers() {
        let server = Server::start(&[
            "--service",
            "chat",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend,
        ]);
        let addr = server.addr();
        let mut plain = BufReader::new(server.connect());
        let mut tls = BufReader::new(
            tls_connect(addr, "localhost", None).unwrap_or_else(|e| panic!("{backend}: TLS: {e}")),
        );
        let mut mtls = BufReader::new(
            tls_connect(addr, "mtls.localhost", Some(("client.pem", "client.key")))
                .unwrap_or_else(|e| panic!("{backend}: mTLS: {e}")),
        );
        for (name, greeting) in [
            ("plain", read_line(&mut plain)),
            ("tls", read_line(&mut tls)),
            ("mtls", read_line(&mut mtls)),
        ] {
            assert!(
                greeting.starts_with(GREETING),
                "{backend}: {name} greeted with {greeting:?}"
            );
        }
        plain.get_mut().write_all(b"from plain\n").unwrap();
        for reader in [&mut tls as &mut dyn BufReadLine, &mut mtls] {
            assert_eq!(reader.line(), "from plain\n", "{backend}");
        }
        assert_eq!(
            read_line(&mut plain),
            "from plain\n",
            "{backend}: the sender hears itself"
        );
        tls.get_mut().write_all(b"from tls\n").unwrap();
        tls.get_mut().flush().unwrap();
        mtls.get_mut().write_all(b"from mtls\n").unwrap();
        mtls.get_mut().flush().unwrap();
        // Each member hears both lines, each exactly once.
        for reader in [&mut plain as &mut dyn BufReadLine, &mut tls, &mut mtls] {
            let mut heard = [reader.line(), reader.line()];
            heard.sort();
            assert_eq!(
                heard,
                ["from mtls\n".to_string(), "from tls\n".to_string()],
                "{backend}"
            );
        }
        drop((plain, tls, mtls));
        let (code, log) = server.stop();
        assert_eq!(code, Some(0), "{backend}: {log}");
    }
}

/// Lets one loop read lines from plaintext and TLS members alike.
trait BufReadLine {
    fn line(&mut self) -> String;
}

impl<S: Read> BufReadLine for BufReader<S> {
    fn line(&mut self) -> String {
        read_line(self)
    }
}
