//! Sockets: how listeners are opened and tuned (`listener`), how connections
//! are accepted (`accept`), and what the kernel still holds for a connection
//! being closed (`queues`).
//!
//! The one idea: everything here is a thin, named wrapper around a socket
//! option or system call, so the engine reads as policy ("accept until
//! EAGAIN", "close at once when nothing is in flight") rather than as ioctl
//! and setsockopt calls.

pub mod accept;
pub mod listener;
pub mod queues;
