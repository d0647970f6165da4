//! How many bytes sit in a socket's kernel queues.
//!
//! Closing a TCP socket is only orderly (a FIN) when nothing the peer sent
//! is left unread; otherwise the kernel sends a reset, and a reset makes the
//! peer's kernel throw away whatever of ours it had not yet delivered. The
//! one idea: **ask the kernel instead of guessing** — when nothing is unread
//! on our side and nothing is unacknowledged on the way out, closing at once
//! cannot lose a byte, and a lingering close would only waste time.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Bytes received but not read (`FIONREAD`), and bytes sent but not yet
/// acknowledged by the peer (`SIOCOUTQ`, Linux only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queues {
    pub unread: usize,
    pub unacknowledged: Option<usize>,
}

impl Queues {
    /// Whether closing now is certain to lose nothing.
    pub fn is_quiet(&self) -> bool {
        self.unread == 0 && self.unacknowledged == Some(0)
    }
}

pub fn queues(stream: &TcpStream) -> io::Result<Queues> {
    Ok(Queues {
        unread: ioctl_count(stream, libc::FIONREAD)?,
        unacknowledged: unacknowledged(stream)?,
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn unacknowledged(stream: &TcpStream) -> io::Result<Option<usize>> {
    // SIOCOUTQ has the value of TIOCOUTQ on Linux.
    ioctl_count(stream, libc::TIOCOUTQ).map(Some)
}

/// Elsewhere the question has no portable answer; `None` means "assume
/// something may be in flight".
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unacknowledged(_stream: &TcpStream) -> io::Result<Option<usize>> {
    Ok(None)
}

fn ioctl_count(stream: &TcpStream, request: libc::c_ulong) -> io::Result<usize> {
    let mut count: libc::c_int = 0;
    // SAFETY: both requests write one c_int through the pointer, which
    // points at a live c_int; the fd is open for the duration of the call.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), request as _, &mut count) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(count.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    #[test]
    fn unread_bytes_are_counted_and_an_idle_socket_is_quiet() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"12345").unwrap();
        let start = Instant::now();
        while queues(&server).unwrap().unread < 5 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(queues(&server).unwrap().unread, 5);
        assert!(!queues(&server).unwrap().is_quiet());
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).unwrap();
        if cfg!(any(target_os = "linux", target_os = "android")) {
            assert!(queues(&server).unwrap().is_quiet());
        }
    }
}
