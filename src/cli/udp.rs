//! The UDP side of `portcullis serve`: which datagram service, on which
//! sockets, sending where.
//!
//! A service name says the protocol; the transport follows from the flags.
//! `echo` is TCP echo, and with `--udp` UDP echo beside it; `udp-echo` is
//! UDP echo alone, and with `--listen` TCP echo beside it. The same goes
//! for `multicast` and `udp-multicast`. The one idea: **one name per
//! protocol, one flag per transport**, so `--multicast-size` means the size
//! of what the multicast service sends, over whichever transport.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::cli::ServeArgs;
use crate::config::{Config, ConfigError, DEFAULT_LISTEN};
use crate::udp::config::DEFAULT_SOCKET_BUFFER;
use crate::udp::echo::UdpEcho;
use crate::udp::multicast::{StreamDatagram, StreamSettings, UdpMulticast, DEFAULT_GROUP};
use crate::udp::socket::{parse_interface, MulticastInterface, MulticastSender, UdpSocketOptions};
use crate::udp::{DatagramService, DatagramServiceFactory, UdpCounters, UdpSettings};

/// The largest UDP payload over IPv4 and over IPv6 (without jumbograms).
const MAX_PAYLOAD_V4: usize = 65_507;
const MAX_PAYLOAD_V6: usize = 65_527;

/// The TCP service that goes with `service`, and whether TCP is off unless
/// `--listen` or `[[listeners]]` ask for it.
pub fn tcp_side(service: &str) -> (&str, bool) {
    match service.strip_prefix("udp-") {
        Some(tcp) => (tcp, true),
        None => (service, false),
    }
}

/// Whether `service` sends to a multicast group.
fn is_multicast(service: &str) -> bool {
    tcp_side(service).0 == "multicast"
}

/// The UDP settings from flags and file, or `None` when nothing asks for
/// UDP.
pub fn settings(
    args: &ServeArgs,
    config: &Config,
    service: &str,
    origin: &str,
) -> Result<Option<UdpSettings>, ConfigError> {
    let (tcp, udp_only) = tcp_side(service);
    let from_flags = !args.udp.is_empty();
    let mut sockets: Vec<UdpSocketOptions> = if from_flags {
        args.udp
            .iter()
            .copied()
            .map(UdpSocketOptions::new)
            .collect()
    } else {
        config
            .udp_listeners
            .iter()
            .map(|l| UdpSocketOptions {
                reuse_port: l.reuse_port.unwrap_or(false),
                ipv6_only: l.ipv6_only,
                ..UdpSocketOptions::new(l.address)
            })
            .collect()
    };
    if sockets.is_empty() && !udp_only {
        return Ok(None);
    }
    let key = if from_flags {
        "--udp".to_string()
    } else {
        format!("{origin}: udp_listeners")
    };
    if tcp != "echo" && tcp != "multicast" {
        return Err(ConfigError(format!(
            "{key}: the `{service}` service has no datagram form; serve UDP with \
             --service udp-echo or udp-multicast"
        )));
    }
    for socket in &mut sockets {
        socket.reuse_port |= args.reuse_port;
        socket.receive_buffer = Some(
            config
                .udp
                .receive_buffer_bytes
                .unwrap_or(DEFAULT_SOCKET_BUFFER),
        );
        socket.send_buffer = Some(
            config
                .udp
                .send_buffer_bytes
                .unwrap_or(DEFAULT_SOCKET_BUFFER),
        );
    }
    let options = config.udp.endpoint_options();
    let counters = Arc::new(UdpCounters::new());
    if !is_multicast(service) {
        if sockets.is_empty() {
            let addr = DEFAULT_LISTEN.parse().expect("the default address parses");
            sockets.push(UdpSocketOptions {
                receive_buffer: Some(DEFAULT_SOCKET_BUFFER),
                send_buffer: Some(DEFAULT_SOCKET_BUFFER),
                reuse_port: args.reuse_port,
                ..UdpSocketOptions::new(addr)
            });
        }
        let factory: DatagramServiceFactory =
            Arc::new(|| Box::new(UdpEcho) as Box<dyn DatagramService>);
        return Ok(Some(UdpSettings {
            sockets,
            description: "service udp-echo".into(),
            service: factory,
            options,
            counters,
            first_worker_only: false,
        }));
    }
    let stream = Stream::from(args, config, origin)?;
    if sockets.len() > 1 {
        return Err(ConfigError(format!(
            "{key}: udp-multicast sends one stream from one socket; give one UDP address, not {}",
            sockets.len()
        )));
    }
    if sockets.is_empty() {
        let local: SocketAddr = match stream.sender.interface {
            MulticastInterface::V4(ip) => (ip, 0).into(),
            MulticastInterface::Default if stream.settings.group.is_ipv4() => {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            }
            _ => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        sockets.push(UdpSocketOptions {
            receive_buffer: Some(DEFAULT_SOCKET_BUFFER),
            send_buffer: Some(DEFAULT_SOCKET_BUFFER),
            ..UdpSocketOptions::new(local)
        });
    }
    if sockets[0].addr.is_ipv4() != stream.settings.group.is_ipv4() {
        return Err(ConfigError(format!(
            "{key}: {} cannot send to the group {}: the address families differ",
            sockets[0].addr, stream.settings.group
        )));
    }
    sockets[0].multicast = Some(stream.sender);
    let settings = stream.settings;
    let factory: DatagramServiceFactory =
        Arc::new(move || Box::new(UdpMulticast::new(settings)) as Box<dyn DatagramService>);
    Ok(Some(UdpSettings {
        sockets,
        description: stream.description(),
        service: factory,
        options,
        counters,
        first_worker_only: true,
    }))
}

/// The multicast stream's settings, each from its flag, its key or its
/// default.
struct Stream {
    settings: StreamSettings,
    sender: MulticastSender,
}

impl Stream {
    fn from(args: &ServeArgs, config: &Config, origin: &str) -> Result<Stream, ConfigError> {
        let file = &config.multicast;
        // Names the flag when the value came from it, the key otherwise.
        let fail = |from_flag: bool, (flag, key): (&str, &str), problem: String| {
            if from_flag {
                ConfigError(format!("{flag}: {problem}"))
            } else {
                ConfigError(format!("{origin}: multicast.{key}: {problem}"))
            }
        };
        let group = args
            .group
            .or(file.group)
            .unwrap_or_else(|| DEFAULT_GROUP.parse().expect("the default group parses"));
        if !group.ip().is_multicast() {
            return Err(fail(
                args.group.is_some(),
                ("--group", "group"),
                format!(
                    "{} is not a multicast address (224.0.0.0/4 or ff00::/8)",
                    group.ip()
                ),
            ));
        }
        let interface = match args.multicast_if.as_ref().or(file.interface.as_ref()) {
            Some(text) => parse_interface(text, group).map_err(|problem| {
                fail(
                    args.multicast_if.is_some(),
                    ("--multicast-if", "interface"),
                    problem,
                )
            })?,
            None if group.is_ipv4() => MulticastInterface::V4(Ipv4Addr::LOCALHOST),
            None => MulticastInterface::Default,
        };
        let ttl = args.multicast_ttl.or(file.ttl).unwrap_or(1);
        if ttl > 255 {
            return Err(fail(
                args.multicast_ttl.is_some(),
                ("--multicast-ttl", "ttl"),
                format!("{ttl} is above 255"),
            ));
        }
        let rate = args.rate.or(file.rate).unwrap_or(0.0);
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(fail(
                args.rate.is_some(),
                ("--rate", "rate"),
                format!("{rate} is not a number of datagrams per second (0: as fast as possible)"),
            ));
        }
        let size = args.multicast_size.or(file.size).unwrap_or(32);
        let max = if group.is_ipv4() {
            MAX_PAYLOAD_V4
        } else {
            MAX_PAYLOAD_V6
        };
        if !(StreamDatagram::MIN_SIZE..=max).contains(&size) {
            return Err(fail(
                args.multicast_size.is_some(),
                ("--multicast-size", "size"),
                format!(
                    "{size} bytes is outside {} to {max} for udp-multicast (each datagram \
                     carries an 8-byte sequence number)",
                    StreamDatagram::MIN_SIZE
                ),
            ));
        }
        Ok(Stream {
            settings: StreamSettings {
                group,
                size,
                rate: (rate > 0.0).then_some(rate),
            },
            sender: MulticastSender {
                interface,
                ttl,
                loopback: file.loopback.unwrap_or(true),
            },
        })
    }

    fn description(&self) -> String {
        let pace = match self.settings.rate {
            Some(rate) => format!("{rate} datagrams/s"),
            None => "as fast as possible".into(),
        };
        format!(
            "service udp-multicast: {}-byte datagrams to {} via {}, ttl {}, {pace}",
            self.settings.size, self.settings.group, self.sender.interface, self.sender.ttl
        )
    }
}
