//! The chat service: greet each member, then broadcast every message to all.
//!
//! This is CppServer's chat scenario, and the reason the service interface
//! has `broadcast`. A message is one line (up to `\n`); a member's partial
//! line waits until its end arrives, so lines from different members never
//! interleave mid-line, and each member's lines reach everyone in the order
//! they were sent. The one idea: **a broadcast never waits for the slowest
//! member** — the engine queues the line for each member and drops a member
//! whose queue passes a hard limit, so one stalled reader cannot stall the
//! room or grow the server's memory without bound.

use super::{Service, Session};

/// The longest line accepted; a member that sends more without a newline is
/// closed (the engine's input limit also applies).
pub const MAX_LINE: usize = 16 * 1024;

pub const GREETING: &[u8] = b"welcome to portcullis chat: every line you send goes to everyone\n";

#[derive(Debug, Default)]
pub struct Chat;

impl Service for Chat {
    fn on_connect(&mut self, session: &mut Session<'_>) {
        session.send(GREETING);
    }

    fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize {
        // Broadcast every complete line at once, as one message: lines of one
        // read stay together and in order.
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete > 0 {
            session.broadcast(&data[..complete]);
        }
        if data.len() - complete > MAX_LINE {
            session.close();
            return data.len();
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection_info::ConnectionInfo;
    use crate::service::{Requests, SessionId};

    fn run(data: &[u8]) -> (usize, Requests, Vec<u8>) {
        let info = ConnectionInfo::plain(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "test",
        );
        let mut output = Vec::new();
        let mut requests = Requests::default();
        let consumed = {
            let mut session = Session::new(SessionId(1), &info, &mut output, &mut requests);
            Chat.on_data(&mut session, data)
        };
        (consumed, requests, output)
    }

    #[test]
    fn complete_lines_are_broadcast_together_and_partial_lines_wait() {
        let (consumed, requests, output) = run(b"one\ntwo\nthr");
        assert_eq!(consumed, 8);
        assert_eq!(requests.broadcasts.len(), 1);
        assert_eq!(&requests.broadcasts[0][..], b"one\ntwo\n");
        assert!(output.is_empty(), "chat never echoes privately");
    }

    #[test]
    fn a_partial_line_is_left_unconsumed() {
        let (consumed, requests, _) = run(b"no newline yet");
        assert_eq!(consumed, 0);
        assert!(requests.broadcasts.is_empty());
    }

    #[test]
    fn an_endless_line_closes_the_member() {
        let (_, requests, _) = run(&vec![b'x'; MAX_LINE + 1]);
        assert!(requests.close);
    }
}
