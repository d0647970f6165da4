//! The echo service: every byte a client sends comes back unchanged.
//!
//! The smallest useful service, and the one the benchmarks measure: with no
//! protocol work of its own, its cost *is* the engine's cost per message.

use super::{Service, Session};

#[derive(Debug, Default)]
pub struct Echo;

impl Service for Echo {
    fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize {
        session.send(data);
        data.len()
    }
}
