//! Portcullis: one TCP port serving plaintext, TLS and mutual TLS, decided per
//! connection, on a hand-rolled reactor with `poll`, `epoll`, `kqueue`,
//! `uring` and `mio` backends (and a thread-per-connection baseline,
//! `engine::threads`, to compare them with).
//!
//! Read it in the order bytes flow: [`backends`] (readiness, one file per OS
//! mechanism), [`timers`] (deadlines), [`net`] (listeners and accepting),
//! [`engine`] (one worker's event loop and its connections), [`tls`] (the gate
//! that decides plain, TLS or mTLS), and [`service`] (echo, chat, HTTP,
//! multicast); [`udp`] serves datagrams on the same reactors. [`server`] starts
//! workers; [`admin`] serves metrics and run-time limits on a port of its
//! own; [`cli`] is the command line.

pub use backends;

pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod connection_info;
pub mod domains;
pub mod engine;
pub mod net;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod service;
pub mod supervisor;
pub mod timers;
pub mod tls;
pub mod udp;
