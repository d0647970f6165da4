//! Version 1: one human-readable line, `PROXY TCP4 src dst sport dport\r\n`,
//! at most 107 bytes. Single spaces, decimal ports without leading zeros,
//! addresses of the family the protocol names; `UNKNOWN` (anything may
//! follow it) means "use the connection's own addresses".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Header, Parsed, ProxyError, V1_MAX_LINE};

pub fn parse(bytes: &[u8]) -> Parsed {
    let window = &bytes[..bytes.len().min(V1_MAX_LINE)];
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return match bytes.len() >= V1_MAX_LINE {
            true => Parsed::Invalid(ProxyError("v1 line without CRLF within 107 bytes")),
            false => Parsed::NeedMore,
        };
    };
    if window[cr] == b'\n' {
        return Parsed::Invalid(ProxyError("v1 line ends in LF without CR"));
    }
    match window.get(cr + 1) {
        None if cr + 1 >= V1_MAX_LINE => {
            return Parsed::Invalid(ProxyError("v1 line without CRLF within 107 bytes"))
        }
        None => return Parsed::NeedMore,
        Some(b'\n') => {}
        Some(_) => return Parsed::Invalid(ProxyError("v1 line has a CR not followed by LF")),
    }
    let Ok(line) = std::str::from_utf8(&bytes[6..cr]) else {
        return Parsed::Invalid(ProxyError("v1 line is not ASCII"));
    };
    match fields(line) {
        Ok((source, destination)) => Parsed::Header(
            Box::new(Header {
                version: 1,
                source,
                destination,
                tlvs: Default::default(),
            }),
            cr + 2,
        ),
        Err(err) => Parsed::Invalid(err),
    }
}

type Addresses = (Option<SocketAddr>, Option<SocketAddr>);

fn fields(line: &str) -> Result<Addresses, ProxyError> {
    if line.starts_with("UNKNOWN") && matches!(line.as_bytes().get(7), None | Some(b' ')) {
        return Ok((None, None));
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [protocol, src, dst, sport, dport] = parts[..] else {
        return Err(ProxyError(
            "v1 line must be `PROXY TCP4|TCP6 SRC DST SPORT DPORT` with single spaces",
        ));
    };
    let (src, dst): (IpAddr, IpAddr) = match protocol {
        "TCP4" => (
            src.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError("v1 TCP4 source is not an IPv4 address"))?
                .into(),
            dst.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError("v1 TCP4 destination is not an IPv4 address"))?
                .into(),
        ),
        "TCP6" => (
            src.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError("v1 TCP6 source is not an IPv6 address"))?
                .into(),
            dst.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError("v1 TCP6 destination is not an IPv6 address"))?
                .into(),
        ),
        _ => return Err(ProxyError("v1 protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok((
        Some(SocketAddr::new(src, port(sport)?)),
        Some(SocketAddr::new(dst, port(dport)?)),
    ))
}

fn port(text: &str) -> Result<u16, ProxyError> {
    let bad = ProxyError("v1 port is not a decimal number from 0 to 65535 without leading zeros");
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}
