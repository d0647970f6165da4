//! Opening a listening socket with the options a production server wants.
//!
//! `std::net::TcpListener::bind` picks its options for you; a server needs to
//! pick them itself, before `bind`, which is what `socket2` is for. The one
//! idea: **options are a property of the port's users, not of the code** —
//! several processes sharing a port need `SO_REUSEPORT`; a protocol whose
//! client speaks first benefits from `TCP_DEFER_ACCEPT`; a chat server that
//! greets first must not use it (the kernel would hold the connection until the
//! client said something, and the client is waiting for the greeting).

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// How to open one listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerOptions {
    pub addr: SocketAddr,
    /// The kernel's queue of connections not yet accepted.
    pub backlog: i32,
    /// Let several sockets (threads or processes) bind the same port; the
    /// kernel spreads new connections between them.
    pub reuse_port: bool,
    /// Linux `TCP_DEFER_ACCEPT`: do not wake `accept` until the client has
    /// sent data (or this many seconds passed). `None` turns it off.
    pub defer_accept_secs: Option<u32>,
    /// For an IPv6 wildcard address: `false` (the default) also accepts IPv4
    /// clients as `::ffff:a.b.c.d`, one socket for both families.
    pub ipv6_only: bool,
}

impl ListenerOptions {
    pub fn new(addr: SocketAddr) -> ListenerOptions {
        ListenerOptions {
            addr,
            backlog: 1024,
            reuse_port: false,
            defer_accept_secs: None,
            ipv6_only: false,
        }
    }
}

/// Opens, tunes, binds and listens; the socket is non-blocking and
/// close-on-exec. Errors name the address.
pub fn bind(options: &ListenerOptions) -> io::Result<TcpListener> {
    open(options).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot listen on {}: {err}", options.addr),
        )
    })
}

fn open(options: &ListenerOptions) -> io::Result<TcpListener> {
    // socket2 creates sockets with SOCK_CLOEXEC where the OS supports it.
    let socket = Socket::new(
        Domain::for_address(options.addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // Restarting the server must not fail for a minute because of
    // connections in TIME_WAIT from the previous run.
    socket.set_reuse_address(true)?;
    if options.reuse_port {
        set_reuse_port(&socket)?;
    }
    if options.addr.is_ipv6() {
        socket.set_only_v6(options.ipv6_only)?;
    }
    if let Some(secs) = options.defer_accept_secs {
        set_defer_accept(&socket, secs)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&options.addr.into())?;
    socket.listen(options.backlog)?;
    Ok(socket.into())
}

#[cfg(unix)]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_defer_accept(socket: &Socket, secs: u32) -> io::Result<()> {
    let secs = secs.min(i32::MAX as u32) as libc::c_int;
    super::set_int_option(socket, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)
}

/// Other systems have no `TCP_DEFER_ACCEPT` (FreeBSD's accept filters are
/// a different mechanism); the option is a hint, so it is ignored.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_defer_accept(_socket: &Socket, _secs: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_real_port() {
        let listener = bind(&ListenerOptions::new("127.0.0.1:0".parse().unwrap())).unwrap();
        assert_ne!(listener.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn two_listeners_share_a_port_only_with_reuse_port() {
        let mut options = ListenerOptions::new("127.0.0.1:0".parse().unwrap());
        options.reuse_port = true;
        let first = bind(&options).unwrap();
        options.addr = first.local_addr().unwrap();
        let second = bind(&options).unwrap();
        assert_eq!(second.local_addr().unwrap(), options.addr);

        options.reuse_port = false;
        let err = bind(&options).unwrap_err();
        assert!(err.to_string().contains(&options.addr.to_string()), "{err}");
    }

    #[test]
    fn dual_stack_wildcard_accepts_ipv4() {
        let Ok(listener) = bind(&ListenerOptions::new("[::]:0".parse().unwrap())) else {
            eprintln!("skipped: no IPv6 on this machine");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port));
        assert!(client.is_ok(), "IPv4 client refused by [::] listener");
    }

    #[test]
    fn defer_accept_is_accepted_by_the_kernel() {
        let mut options = ListenerOptions::new("127.0.0.1:0".parse().unwrap());
        options.defer_accept_secs = Some(5);
        bind(&options).unwrap();
    }
}
