//! Sockets: how listeners are opened and tuned, and how connections are
//! accepted without ever blocking or spinning.

pub mod accept;
pub mod listener;
pub mod queues;
