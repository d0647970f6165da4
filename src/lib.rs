//! Portcullis: one TCP port serving plaintext, TLS and mutual TLS, decided per
//! connection, on a hand-rolled reactor with `poll`, `epoll`, `kqueue` and
//! `mio` backends.
//!
//! Read it in the order bytes flow: [`backends`] (readiness), `reactor`
//! (timers on top), `net` (listeners and accepting), `engine` (one worker's
//! event loop and its connections), [`tls`] (the gate that decides plain, TLS
//! or mTLS), and [`service`] (echo, chat, HTTP).

pub use backends;

pub mod connection_info;
pub mod domains;
pub mod service;
pub mod tls;
