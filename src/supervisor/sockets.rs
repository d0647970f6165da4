//! The listening sockets of a group of worker processes, owned by the
//! supervisor.
//!
//! Each worker process gets a socket of its own per listener, all bound to
//! the same port with `SO_REUSEPORT`, so the kernel spreads connections
//! between processes with no lock and no thundering herd. The one idea:
//! **the supervisor opens them and keeps them**, and hands each process its
//! set through `LISTEN_FDS` (`net::socket_activation`). When a process dies,
//! its sockets stay open in the supervisor: connections the kernel hashes
//! to them wait in the backlog instead of being refused, and the restarted
//! process, handed the same sockets, serves them. Only the connections the
//! dead process had already accepted are lost.
//!
//! Port 0 works too: the first socket learns the port, the others join it.
//! Sockets that systemd handed the supervisor are shared by every process
//! as they are.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use crate::net::listener;
use crate::server::ListenerSettings;

/// `[process][listener]` sockets, and each listener's bound address.
pub struct GroupSockets {
    pub per_process: Vec<Vec<Arc<TcpListener>>>,
    pub addresses: Vec<SocketAddr>,
}

pub fn bind(listeners: &[ListenerSettings], processes: usize) -> io::Result<GroupSockets> {
    let mut per_process: Vec<Vec<Arc<TcpListener>>> = (0..processes).map(|_| Vec::new()).collect();
    let mut addresses = Vec::with_capacity(listeners.len());
    for spec in listeners {
        if let Some(socket) = &spec.inherited {
            addresses.push(socket.local_addr()?);
            for sockets in &mut per_process {
                sockets.push(socket.clone());
            }
            continue;
        }
        let mut options = spec.options.clone();
        options.reuse_port = true;
        for sockets in &mut per_process {
            let socket = listener::bind(&options)?;
            options.addr = socket.local_addr()?;
            sockets.push(Arc::new(socket));
        }
        addresses.push(options.addr);
    }
    Ok(GroupSockets {
        per_process,
        addresses,
    })
}
