//! Accepting connections: non-blocking, close-on-exec, tuned, and calm when
//! the process runs out of descriptors.
//!
//! The classic trap: at the descriptor limit, `accept` fails with `EMFILE`
//! but the pending connection stays in the kernel's queue, so the listener
//! stays readable and the loop spins at 100% CPU doing nothing. The one idea
//! here is the **reserve descriptor**: keep one spare descriptor open; when
//! `EMFILE` strikes, close it, accept the waiting connection, close that
//! connection at once (the client sees a clean close rather than a hang), and
//! take the spare back. Existing connections keep being served meanwhile.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// Options applied to every accepted socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptedSocketOptions {
    /// Disable Nagle's algorithm: a server answers small requests promptly
    /// and batches its own writes.
    pub nodelay: bool,
    /// TCP keepalive idle time; `None` leaves keepalive off.
    pub keepalive: Option<Duration>,
}

impl Default for AcceptedSocketOptions {
    fn default() -> Self {
        AcceptedSocketOptions {
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
        }
    }
}

/// Accepts one connection as a non-blocking, close-on-exec stream.
pub fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    accept_nonblocking(listener)
}

/// Linux and the BSDs can accept straight into the flags we want: one
/// system call instead of three. `accept4` also fills in the peer's address,
/// so no `getpeername` call is needed to learn it.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
fn accept_nonblocking(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (socket, addr) =
        SockRef::from(listener).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
    let peer = addr.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "accept4 returned an address that is not IPv4 or IPv6",
        )
    })?;
    Ok((socket.into(), peer))
}

/// macOS has no `accept4`; std's accept sets close-on-exec, and we add
/// non-blocking ourselves.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
fn accept_nonblocking(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept()?;
    stream.set_nonblocking(true)?;
    Ok((stream, peer))
}

/// Applies per-connection options. Failures are not fatal to the server: the
/// caller logs them and closes that one connection.
pub fn tune(stream: &TcpStream, options: &AcceptedSocketOptions) -> io::Result<()> {
    let socket = SockRef::from(stream);
    if options.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(idle) = options.keepalive {
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
    }
    Ok(())
}

/// Whether an accept error means "out of descriptors".
pub fn is_descriptor_exhaustion(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Whether an accept error concerns only the connection being accepted (it
/// was reset while queued, say), so accepting should simply continue.
pub fn is_per_connection_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNABORTED) | Some(libc::EPROTO) | Some(libc::EPERM) | Some(libc::EINTR)
    )
}

/// One spare descriptor, given up to shed a connection at the limit.
#[derive(Debug)]
pub struct ReserveFd {
    spare: Option<File>,
}

impl ReserveFd {
    pub fn new() -> ReserveFd {
        ReserveFd {
            spare: File::open("/dev/null").ok(),
        }
    }

    /// Frees the spare, accepts one waiting connection and closes it, then
    /// takes the spare back. Returns whether a connection was shed. Without a
    /// spare (someone else took the freed slot) it sheds nothing, and the
    /// caller must back off instead of retrying at once.
    pub fn shed_one(&mut self, listener: &TcpListener) -> bool {
        if self.spare.take().is_none() {
            self.spare = File::open("/dev/null").ok();
            return false;
        }
        let shed = accept(listener).is_ok(); // dropped: closed at once
        self.spare = File::open("/dev/null").ok();
        shed
    }
}

impl Default for ReserveFd {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn accepted_sockets_are_nonblocking_and_tuned() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, peer) = accept(&listener).unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        tune(&server, &AcceptedSocketOptions::default()).unwrap();
        assert!(server.nodelay().unwrap());
        let mut buf = [0u8; 4];
        let err = server.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"ping").unwrap();
        client.flush().unwrap();
        drop(client);
    }

    #[test]
    fn shedding_closes_the_waiting_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut reserve = ReserveFd::new();
        assert!(reserve.shed_one(&listener));
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1];
        // A clean close (0 bytes) or a reset: either way not a hang.
        match client.read(&mut buf) {
            Ok(0) => {}
            Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset),
            Ok(n) => panic!("read {n} bytes from a shed connection"),
        }
    }

    #[test]
    fn error_classes() {
        assert!(is_descriptor_exhaustion(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(is_descriptor_exhaustion(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!is_descriptor_exhaustion(&io::Error::from_raw_os_error(
            libc::EAGAIN
        )));
        assert!(is_per_connection_error(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
