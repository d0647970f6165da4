//! ICMP errors on an unconnected UDP socket: asked for, then drained.
//!
//! When a reply goes to a port nobody listens on, the peer's kernel answers
//! with ICMP port unreachable. Linux ignores it for an unconnected socket
//! unless `IP_RECVERR` is set; with it, the next receive fails with
//! `ECONNREFUSED` and the report waits in the socket's *error queue*. That
//! queue must be read (`MSG_ERRQUEUE`), or its entries hold receive-buffer
//! memory and keep the socket reported as ready forever. The one idea:
//! **an error report is data too** — ask for it so it can be counted and
//! logged, and always drain what was asked for. Other systems report
//! nothing for unconnected sockets, and the functions here do nothing.

use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Error-queue entries read per drain, at most: the queue is bounded by
/// the receive buffer, and the loop must be too.
pub const DRAIN_LIMIT: usize = 64;

/// Whether a receive error is an ICMP report about an earlier send, not a
/// fault of this socket.
pub fn is_unreachable(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH)
    )
}

/// Asks the kernel to report ICMP errors on `socket` (IPv4 and, for an
/// IPv6 socket, IPv6 too).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn report_icmp_errors(socket: &socket2::Socket, ipv6: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    let set = |level, name| {
        // SAFETY: `on` is a c_int that lives across the call, and its size is
        // passed; setsockopt only reads it.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    if ipv6 {
        set(libc::IPPROTO_IPV6, libc::IPV6_RECVERR)?;
        // A dual-stack socket also carries IPv4; not every kernel accepts
        // the IPv4 option on an IPv6 socket, and IPv6 reports still work.
        let _ = set(libc::IPPROTO_IP, libc::IP_RECVERR);
        Ok(())
    } else {
        set(libc::IPPROTO_IP, libc::IP_RECVERR)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn report_icmp_errors(_socket: &socket2::Socket, _ipv6: bool) -> std::io::Result<()> {
    Ok(())
}

/// What a drain found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub reports: usize,
    /// Where the first reported datagram was going.
    pub first_destination: Option<SocketAddr>,
}

/// Reads and discards up to [`DRAIN_LIMIT`] error reports from `fd`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn drain(fd: RawFd) -> Drained {
    let mut found = Drained::default();
    // The report carries the start of the offending datagram and a control
    // message; neither is needed beyond the destination address.
    let mut data = [0u8; 64];
    let mut control = [0u8; 256];
    for _ in 0..DRAIN_LIMIT {
        let mut destination = super::empty_storage();
        let mut iovec = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain old data; zeroed is valid.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_name = &mut destination as *mut libc::sockaddr_storage as *mut _;
        header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_iov = &mut iovec;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = control.len() as _;
        // SAFETY: every pointer in `header` refers to a local buffer of the
        // stated size that outlives the call.
        let rc = unsafe { libc::recvmsg(fd, &mut header, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break; // EAGAIN: the queue is empty
        }
        found.reports += 1;
        if found.first_destination.is_none() {
            found.first_destination = super::to_socket_addr(&destination, header.msg_namelen);
        }
    }
    found
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn drain(_fd: RawFd) -> Drained {
    Drained::default()
}
