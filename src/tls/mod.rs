//! placeholder while the TLS gate is written
