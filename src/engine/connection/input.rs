//! Bytes received and not yet consumed, held in a box so that the usual
//! case — nothing left over — costs a connection one pointer.
//!
//! Most connections consume everything they receive at once; only a partial
//! request, a first TLS record still arriving, or input a service left until
//! its output drains waits here. The one idea: **pay for a buffer only while
//! it holds something** — an empty leftover is a null pointer, not a `Vec`'s
//! three words, which matters at a hundred thousand idle connections.

use std::ops::Deref;

/// Unconsumed input; empty means no allocation at all.
// A `Vec` is three words even when empty; the box is the point here.
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
pub struct Leftover(Option<Box<Vec<u8>>>);

impl Leftover {
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.0
                .get_or_insert_with(Default::default)
                .extend_from_slice(bytes);
        }
    }

    /// Takes the bytes out, leaving nothing behind.
    pub fn take(&mut self) -> Vec<u8> {
        self.0.take().map(|bytes| *bytes).unwrap_or_default()
    }

    /// Holds `bytes` (nothing, if it is empty).
    pub fn set(&mut self, bytes: Vec<u8>) {
        self.0 = (!bytes.is_empty()).then(|| Box::new(bytes));
    }

    pub fn clear(&mut self) {
        self.0 = None;
    }
}

impl Deref for Leftover {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_leftover_owns_nothing_and_one_word_is_its_cost() {
        assert_eq!(
            std::mem::size_of::<Leftover>(),
            std::mem::size_of::<usize>()
        );
        let mut left = Leftover::default();
        left.extend_from_slice(b"");
        assert!(left.0.is_none());
        left.extend_from_slice(b"GET /");
        left.extend_from_slice(b" HTTP/1.1");
        assert_eq!(&*left, b"GET / HTTP/1.1");
        let taken = left.take();
        assert_eq!(taken, b"GET / HTTP/1.1");
        assert!(left.is_empty() && left.0.is_none());
        left.set(Vec::new());
        assert!(left.0.is_none(), "setting nothing allocates nothing");
    }
}
