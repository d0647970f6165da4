//! What a completion is for: the 64 bits every submission carries back.
//!
//! The kernel returns each operation's `user_data` untouched in its
//! completion, and that is all a completion says about where it belongs.
//! Connections live in slab slots that are reused, and an operation can
//! complete long after the connection that started it is gone, so the one
//! idea here is the readiness driver's token rule made stricter: **a
//! completion names an operation, a slot and the slot's generation**, and
//! one whose generation is not the slot's current one is dropped (after
//! giving back any buffer it holds).
//!
//! ```text
//!   63    61 60                          32 31                           0
//!   ┌──────┬──────────────────────────────┬──────────────────────────────┐
//!   │  op  │         generation           │      slot key / listener     │
//!   └──────┴──────────────────────────────┴──────────────────────────────┘
//! ```

/// Generations wrap within 29 bits.
pub const GENERATION_MASK: u32 = (1 << 29) - 1;

/// The operation a completion finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The multishot accept of listener `key`.
    Accept = 1,
    /// A connection's multishot receive.
    Recv = 2,
    /// A connection's one send in flight.
    Send = 3,
    /// A cancellation request (its own result is of no interest).
    Cancel = 4,
    /// The multishot poll of the waker's eventfd.
    Wake = 5,
}

/// A decoded `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserData {
    pub op: Op,
    pub key: usize,
    pub generation: u32,
}

impl UserData {
    pub fn new(op: Op, key: usize, generation: u32) -> UserData {
        debug_assert!(key <= u32::MAX as usize && generation <= GENERATION_MASK);
        UserData {
            op,
            key,
            generation,
        }
    }

    pub fn encode(self) -> u64 {
        ((self.op as u64) << 61)
            | (u64::from(self.generation & GENERATION_MASK) << 32)
            | (self.key as u64 & 0xffff_ffff)
    }

    /// `None` for a value no submission of this driver carries.
    pub fn decode(raw: u64) -> Option<UserData> {
        let op = match raw >> 61 {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Cancel,
            5 => Op::Wake,
            _ => return None,
        };
        Some(UserData {
            op,
            key: (raw & 0xffff_ffff) as usize,
            generation: ((raw >> 32) as u32) & GENERATION_MASK,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_keeps_op_key_and_generation_apart() {
        for op in [Op::Accept, Op::Recv, Op::Send, Op::Cancel, Op::Wake] {
            for (key, generation) in [(0, 0), (7, 1), (u32::MAX as usize, GENERATION_MASK)] {
                let ud = UserData::new(op, key, generation);
                assert_eq!(UserData::decode(ud.encode()), Some(ud));
            }
        }
        // The same slot in two generations is two different names.
        let old = UserData::new(Op::Recv, 7, 1).encode();
        let new = UserData::new(Op::Recv, 7, 2).encode();
        assert_ne!(old, new);
        assert_eq!(UserData::decode(0), None, "zero is never submitted");
        assert_eq!(UserData::decode(7 << 61), None);
    }
}
