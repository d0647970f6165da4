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
pub mod socket_activation;

use std::io;
use std::os::fd::AsRawFd;

/// Sets an integer socket option that socket2 has no setter for
/// (`TCP_DEFER_ACCEPT`, `IP_BIND_ADDRESS_NO_PORT`, …).
pub fn set_int_option(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the fd is open for the call (the caller lends us the socket),
    // and we pass a pointer to a live c_int with its exact size, as
    // setsockopt requires for integer options.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
