//! HTTP/2 (RFC 9113), spoken by the `http` service on the same port as
//! HTTP/1.1.
pub mod hpack;
