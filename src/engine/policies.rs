//! Listener policies that outlive a reload for the connections that use
//! them.
//!
//! A connection names its listener's policy by a small number (a `u16` in
//! its slot) and looks it up in the worker's table whenever it needs it: at
//! the first bytes (plaintext or TLS?), at the handshake (which gate?), when
//! reporting its local address. A reload must not change what a live
//! connection sees, yet new connections must get the new policy at once.
//! The one idea: **a reload never edits a policy, it adds one**; each
//! listener points at its *current* policy, each connection keeps the number
//! it was admitted with, and a replaced policy is freed when the last
//! connection using it closes (its number is then reused).

use super::context::ListenerPolicy;

/// The policies of one worker, with how many live connections use each.
pub struct PolicyTable {
    policies: Vec<ListenerPolicy>,
    users: Vec<u32>,
    state: Vec<State>,
    free: Vec<u16>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// A listener points at it: new connections acquire it.
    Current,
    /// Only the connections holding it keep it alive.
    Retired,
    /// On the free list.
    Free,
}

/// A connection stores its policy number in 16 bits.
const MAX_POLICIES: usize = 1 << 16;

impl PolicyTable {
    /// A table whose policy `i` is listener `i`'s, all current.
    pub fn new(policies: Vec<ListenerPolicy>) -> PolicyTable {
        let n = policies.len();
        PolicyTable {
            policies,
            users: vec![0; n],
            state: vec![State::Current; n],
            free: Vec::new(),
        }
    }

    /// Every policy by number, as connections index them.
    pub fn as_slice(&self) -> &[ListenerPolicy] {
        &self.policies
    }

    pub fn get(&self, number: usize) -> Option<&ListenerPolicy> {
        self.policies.get(number)
    }

    /// Adds a current policy; returns its number, or `None` when 65,536
    /// policies are still in use (each live connection pins one).
    pub fn insert(&mut self, policy: ListenerPolicy) -> Option<usize> {
        if let Some(number) = self.free.pop() {
            let number = usize::from(number);
            self.policies[number] = policy;
            self.users[number] = 0;
            self.state[number] = State::Current;
            return Some(number);
        }
        if self.policies.len() >= MAX_POLICIES {
            return None;
        }
        self.policies.push(policy);
        self.users.push(0);
        self.state.push(State::Current);
        Some(self.policies.len() - 1)
    }

    /// A connection admitted under policy `number`.
    pub fn acquire(&mut self, number: usize) {
        self.users[number] += 1;
    }

    /// A connection admitted under policy `number` has closed.
    pub fn release(&mut self, number: usize) {
        self.users[number] = self.users[number].saturating_sub(1);
        self.free_if_unused(number);
    }

    /// No listener points at policy `number` any more: it lives only for
    /// the connections that hold it.
    pub fn retire(&mut self, number: usize) {
        if self.state[number] == State::Current {
            self.state[number] = State::Retired;
            self.free_if_unused(number);
        }
    }

    fn free_if_unused(&mut self, number: usize) {
        if self.users[number] == 0 && self.state[number] == State::Retired {
            // Drop the gate (and so the old certificates) now rather than
            // when the number is reused.
            self.policies[number].tls = None;
            self.state[number] = State::Free;
            self.free.push(number as u16);
        }
    }

    /// Policies still held by a listener or a connection.
    pub fn in_use(&self) -> usize {
        self.policies.len() - self.free.len()
    }
}

impl std::ops::Index<usize> for PolicyTable {
    type Output = ListenerPolicy;

    fn index(&self, number: usize) -> &ListenerPolicy {
        &self.policies[number]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(plain: bool) -> ListenerPolicy {
        let local = "127.0.0.1:1".parse().unwrap();
        ListenerPolicy {
            local,
            allow_plaintext: plain,
            tls: None,
            edge: std::sync::Arc::new(crate::engine::EdgePolicy::open(local)),
            counters: 0,
        }
    }

    #[test]
    fn a_replaced_policy_lives_until_its_last_connection_closes() {
        let mut table = PolicyTable::new(vec![policy(true)]);
        table.acquire(0);
        let new = table.insert(policy(false)).unwrap();
        assert_eq!(new, 1);
        table.retire(0);
        assert!(
            table[0].allow_plaintext,
            "the live connection still sees it"
        );
        assert_eq!(table.in_use(), 2);
        table.release(0);
        assert_eq!(table.in_use(), 1, "freed with its last connection");
        let reused = table.insert(policy(true)).unwrap();
        assert_eq!(reused, 0, "a freed number is reused");
        assert!(!table[new].allow_plaintext);
    }

    #[test]
    fn an_unused_retired_policy_is_freed_at_once() {
        let mut table = PolicyTable::new(vec![policy(true), policy(true)]);
        table.retire(1);
        assert_eq!(table.in_use(), 1);
        table.retire(1);
        assert_eq!(table.in_use(), 1, "retiring twice frees once");
    }
}
