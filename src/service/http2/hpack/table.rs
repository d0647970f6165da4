//! The two tables HPACK indexes into (RFC 7541 §2.3): the static table of
//! 61 common fields every endpoint knows, and the dynamic table each
//! decoder builds from what the peer told it to remember.
//!
//! The one idea of the dynamic table: **its size is measured the way the
//! RFC measures it** — name length + value length + 32 per entry — and it
//! is bounded by a maximum *we* advertised, so however a peer fills it, the
//! memory it holds is at most that many bytes plus bookkeeping. New entries
//! go in front (index 62 is the newest); the oldest are evicted to make room,
//! and an entry larger than the whole table empties it (§4.4).

use std::collections::VecDeque;

/// RFC 7541 Appendix A, index 1 first.
#[rustfmt::skip]
pub const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// What each entry costs on top of its name and value (§4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// A remembered field: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// One decoder's dynamic table.
#[derive(Debug)]
pub struct DynamicTable {
    /// Newest first, as the index counts them.
    entries: VecDeque<Entry>,
    /// Sum of entry sizes, by the RFC's measure.
    size: usize,
    /// The current maximum, set by the peer's size updates.
    max_size: usize,
}

impl DynamicTable {
    pub fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes the maximum, evicting what no longer fits.
    pub fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Adds a field as the newest entry (§4.4).
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front((name.into(), value.into()));
        self.size += size;
    }

    /// The entry at dynamic position `position` (0 is the newest).
    pub fn get(&self, position: usize) -> Option<(&[u8], &[u8])> {
        self.entries
            .get(position)
            .map(|(name, value)| (&name[..], &value[..]))
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            match self.entries.pop_back() {
                Some((name, value)) => self.size -= name.len() + value.len() + ENTRY_OVERHEAD,
                None => break,
            }
        }
    }
}

/// Looks up a field by its HPACK index: 1..=61 static, then dynamic.
pub fn lookup(dynamic: &DynamicTable, index: usize) -> Option<(&[u8], &[u8])> {
    match index {
        0 => None,
        1..=61 => Some(STATIC_TABLE[index - 1]),
        _ => dynamic.get(index - 62),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_table_has_the_rfc_entries_at_the_rfc_indexes() {
        let table = DynamicTable::new(4096);
        assert_eq!(lookup(&table, 1), Some((&b":authority"[..], &b""[..])));
        assert_eq!(lookup(&table, 2), Some((&b":method"[..], &b"GET"[..])));
        assert_eq!(lookup(&table, 8), Some((&b":status"[..], &b"200"[..])));
        assert_eq!(
            lookup(&table, 61),
            Some((&b"www-authenticate"[..], &b""[..]))
        );
        assert_eq!(lookup(&table, 0), None);
        assert_eq!(lookup(&table, 62), None);
    }

    #[test]
    fn entries_are_evicted_oldest_first_and_oversized_ones_empty_the_table() {
        let mut table = DynamicTable::new(100);
        table.insert(b"a", b"1"); // 34
        table.insert(b"b", b"2"); // 68
        assert_eq!(table.get(0), Some((&b"b"[..], &b"2"[..])));
        table.insert(b"c", b"3"); // 102 > 100: "a" goes
        assert_eq!(table.len(), 2);
        assert_eq!(table.get(1), Some((&b"b"[..], &b"2"[..])));
        assert_eq!(table.size(), 68);
        table.insert(&[b'x'; 80], b"");
        assert!(table.is_empty());
        assert_eq!(table.size(), 0);
    }

    #[test]
    fn shrinking_the_maximum_evicts() {
        let mut table = DynamicTable::new(4096);
        table.insert(b"a", b"1");
        table.insert(b"b", b"2");
        table.set_max_size(40);
        assert_eq!(table.len(), 1);
        table.set_max_size(0);
        assert!(table.is_empty());
    }
}
