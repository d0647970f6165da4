//! Opening UDP sockets: the server's, a multicast sender's, a receiver's.
//!
//! As with TCP listeners, the options must be set before `bind`, which is
//! what `socket2` is for. The one idea: **every option a UDP socket needs
//! is a decision about who shares it** — `SO_REUSEPORT` lets each worker
//! own a socket on the same port (the kernel spreads sources over them);
//! a multicast sender picks the interface and reach of its stream
//! (`IP_MULTICAST_IF`, TTL, loopback); a receiver joins a group
//! (`IP_ADD_MEMBERSHIP`) on an interface and shares the group's port with
//! other receivers (`SO_REUSEADDR`). Server sockets also ask for ICMP
//! reports (see `batch::errors`) and a large receive buffer, since a burst
//! that does not fit is lost.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use super::batch::errors;

/// How to open one server socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpSocketOptions {
    pub addr: SocketAddr,
    /// Let several sockets bind the same address and port; the kernel
    /// spreads sources over them.
    pub reuse_port: bool,
    /// For an IPv6 wildcard: refuse IPv4 peers. Default false (dual stack).
    pub ipv6_only: bool,
    /// `SO_RCVBUF`, capped by the kernel (`net.core.rmem_max` on Linux).
    pub receive_buffer: Option<usize>,
    /// `SO_SNDBUF`, capped likewise (`net.core.wmem_max`).
    pub send_buffer: Option<usize>,
    /// Set for the socket a multicast stream is sent from.
    pub multicast: Option<MulticastSender>,
}

impl UdpSocketOptions {
    pub fn new(addr: SocketAddr) -> UdpSocketOptions {
        UdpSocketOptions {
            addr,
            reuse_port: false,
            ipv6_only: false,
            receive_buffer: None,
            send_buffer: None,
            multicast: None,
        }
    }
}

/// Where and how far a multicast stream goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastSender {
    pub interface: MulticastInterface,
    /// IPv4 TTL or IPv6 hop limit: 1 keeps the stream on the local network.
    pub ttl: u32,
    /// Deliver to receivers on this host too (`IP_MULTICAST_LOOP`).
    pub loopback: bool,
}

/// The interface a group is sent to or joined on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MulticastInterface {
    /// The kernel's choice (its route for the group).
    Default,
    /// IPv4: the interface with this address.
    V4(Ipv4Addr),
    /// IPv6: the interface with this index.
    V6(u32),
}

impl std::fmt::Display for MulticastInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MulticastInterface::Default => f.write_str("the default interface"),
            MulticastInterface::V4(ip) => write!(f, "{ip}"),
            MulticastInterface::V6(index) => write!(f, "interface #{index}"),
        }
    }
}

/// Parses `--multicast-if` for `group`: an IPv4 address for an IPv4 group;
/// an interface name (`lo`) or index for an IPv6 group.
pub fn parse_interface(text: &str, group: SocketAddr) -> Result<MulticastInterface, String> {
    if group.is_ipv4() {
        return text
            .parse::<Ipv4Addr>()
            .map(MulticastInterface::V4)
            .map_err(|_| format!("`{text}` is not an IPv4 address (the group is IPv4)"));
    }
    if let Ok(index) = text.parse::<u32>() {
        return Ok(MulticastInterface::V6(index));
    }
    let name = std::ffi::CString::new(text).map_err(|_| format!("`{text}` is not a name"))?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(format!("no network interface is called `{text}`"))
    } else {
        Ok(MulticastInterface::V6(index))
    }
}

/// Whether `addr` is a multicast group address.
pub fn is_group(addr: SocketAddr) -> bool {
    addr.ip().is_multicast()
}

/// Opens, tunes and binds a non-blocking server socket. Errors name the
/// address.
pub fn bind(options: &UdpSocketOptions) -> io::Result<UdpSocket> {
    open(options).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot bind UDP {}: {err}", options.addr),
        )
    })
}

fn open(options: &UdpSocketOptions) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(options.addr),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if options.reuse_port {
        set_reuse_port(&socket)?;
    }
    if options.addr.is_ipv6() {
        socket.set_only_v6(options.ipv6_only)?;
    }
    if let Some(bytes) = options.receive_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    if let Some(bytes) = options.send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    errors::report_icmp_errors(&socket, options.addr.is_ipv6())?;
    if let Some(sender) = &options.multicast {
        set_multicast_sender(&socket, sender, options.addr.is_ipv6())?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&options.addr.into())?;
    Ok(socket.into())
}

fn set_multicast_sender(socket: &Socket, sender: &MulticastSender, ipv6: bool) -> io::Result<()> {
    match sender.interface {
        MulticastInterface::V4(ip) => socket.set_multicast_if_v4(&ip)?,
        MulticastInterface::V6(index) => socket.set_multicast_if_v6(index)?,
        MulticastInterface::Default => {}
    }
    if ipv6 {
        socket.set_multicast_hops_v6(sender.ttl)?;
        socket.set_multicast_loop_v6(sender.loopback)
    } else {
        socket.set_multicast_ttl_v4(sender.ttl)?;
        socket.set_multicast_loop_v4(sender.loopback)
    }
}

/// Opens each socket once per worker. With several, the first learns the
/// real port (when 0 was asked for) and the others join it through
/// `SO_REUSEPORT`.
pub fn bind_for_workers(
    specs: &[UdpSocketOptions],
    workers: usize,
) -> io::Result<Vec<Vec<UdpSocket>>> {
    let mut per_worker: Vec<Vec<UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
    for spec in specs {
        let mut options = spec.clone();
        options.reuse_port |= workers > 1;
        let first = bind(&options)?;
        options.addr = first.local_addr()?;
        per_worker[0].push(first);
        for sockets in per_worker.iter_mut().skip(1) {
            sockets.push(bind(&options)?);
        }
    }
    Ok(per_worker)
}

/// A non-blocking receiver of `group` (its address and port), joined on
/// `interface`. Several receivers may join the same group and port on one
/// host; each gets a copy of every datagram. Port 0 picks a free port,
/// which the other receivers then use.
pub fn join_group(
    group: SocketAddr,
    interface: MulticastInterface,
    receive_buffer: Option<usize>,
) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(group), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        // BSDs and macOS share a multicast port only with SO_REUSEPORT.
        set_reuse_port(&socket)?;
    }
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    // Bound to the group address itself, the socket gets this group's
    // datagrams only, not those of every group some process on the host
    // joined for the same port.
    socket.bind(&group.into())?;
    match (group.ip(), interface) {
        (std::net::IpAddr::V4(ip), MulticastInterface::V4(on)) => {
            socket.join_multicast_v4(&ip, &on)?
        }
        (std::net::IpAddr::V4(ip), _) => socket.join_multicast_v4(&ip, &Ipv4Addr::UNSPECIFIED)?,
        (std::net::IpAddr::V6(ip), MulticastInterface::V6(index)) => {
            socket.join_multicast_v6(&ip, index)?
        }
        (std::net::IpAddr::V6(ip), _) => socket.join_multicast_v6(&ip, 0)?,
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if group.is_ipv4() {
        socket.set_multicast_all_v4(false)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(unix)]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(unix))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this OS",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_parse_by_the_group_family() {
        let v4: SocketAddr = "239.255.0.1:3333".parse().unwrap();
        let v6: SocketAddr = "[ff02::1:3]:3333".parse().unwrap();
        assert_eq!(
            parse_interface("127.0.0.1", v4),
            Ok(MulticastInterface::V4(Ipv4Addr::LOCALHOST))
        );
        assert!(parse_interface("lo", v4).unwrap_err().contains("IPv4"));
        assert_eq!(parse_interface("3", v6), Ok(MulticastInterface::V6(3)));
        assert!(parse_interface("no-such-if0", v6)
            .unwrap_err()
            .contains("no-such-if0"));
        assert!(is_group(v4) && is_group(v6));
        assert!(!is_group("127.0.0.1:1".parse().unwrap()));
    }

    #[test]
    fn workers_share_one_real_port() {
        let spec = UdpSocketOptions::new("127.0.0.1:0".parse().unwrap());
        let sockets = bind_for_workers(&[spec], 3).unwrap();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| s[0].local_addr().unwrap().port())
            .collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
    }

    #[test]
    fn a_bind_error_names_the_address() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = bind(&UdpSocketOptions::new(taken.local_addr().unwrap())).unwrap_err();
        assert!(
            err.to_string()
                .contains(&taken.local_addr().unwrap().to_string()),
            "{err}"
        );
    }
}
