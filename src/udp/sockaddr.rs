//! Reading the peer address the kernel wrote into a `sockaddr_storage`.
//!
//! `recvmmsg` and `recvmsg` fill raw C address structures; the service
//! interface speaks [`SocketAddr`]. Sending goes the other way through
//! `socket2::SockAddr`, which already does it; receiving needs this one
//! conversion, kept here with its checks. The one idea: **trust the family
//! and the length the kernel reports, nothing else** — an address whose
//! family is neither IPv4 nor IPv6, or whose length is too short for its
//! family, is `None`, never a guess.

use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The peer address in `storage`, `len` bytes of which the kernel wrote.
pub fn to_socket_addr(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, the
            // length says all of it was written, and sockaddr_storage is
            // large and aligned enough for any sockaddr type.
            let v4 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                u32::from_be(v6.sin6_flowinfo),
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// An all-zero address buffer, ready for the kernel to fill.
pub fn empty_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid
    // (AF_UNSPEC) value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `addr` the way the kernel would, through socket2.
    fn storage_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        let raw = socket2::SockAddr::from(addr);
        let mut storage = empty_storage();
        // SAFETY: `raw` points at `raw.len()` initialised bytes, fewer than
        // sockaddr_storage holds; the regions do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                raw.as_ptr() as *const u8,
                &mut storage as *mut _ as *mut u8,
                raw.len() as usize,
            );
        }
        (storage, raw.len())
    }

    #[test]
    fn both_families_round_trip() {
        for text in [
            "127.0.0.1:8443",
            "[::1]:53",
            "[fe80::1%7]:9",
            "[::ffff:10.0.0.1]:1",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            let (storage, len) = storage_of(addr);
            assert_eq!(to_socket_addr(&storage, len), Some(addr), "{text}");
        }
    }

    #[test]
    fn a_short_or_unknown_address_is_none() {
        let (storage, len) = storage_of("[::1]:53".parse().unwrap());
        assert_eq!(to_socket_addr(&storage, len - 1), None);
        assert_eq!(to_socket_addr(&empty_storage(), 128), None);
    }
}
