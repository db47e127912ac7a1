//! Choosing the addresses a node listens on and advertises (`--listen-addr`, `--advertise-addr`).
//! Like Docker, an address may be an IP, IP:PORT or an interface name.

use shoal_types::ApiError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub const DEFAULT_PORT: u16 = 2377;

/// IPv4 addresses of the interfaces of this network namespace (name, address), loopback excluded.
pub fn interface_addrs() -> Vec<(String, Ipv4Addr)> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
                let ip = sin.ip();
                if !ip.is_loopback() {
                    out.push((a.interface_name.clone(), ip));
                }
            }
        }
    }
    out
}

/// Resolve "IP", "IP:PORT", "IFACE" or "IFACE:PORT" to a socket address.
pub fn resolve(spec: &str, default_port: u16) -> Result<SocketAddr, ApiError> {
    if let Ok(sa) = spec.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = spec.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let (name, port) = match spec.rsplit_once(':') {
        Some((n, p)) => (
            n,
            p.parse::<u16>().map_err(|_| {
                ApiError::invalid_argument(format!("invalid port in address {spec:?}"))
            })?,
        ),
        None => (spec, default_port),
    };
    let ips: Vec<Ipv4Addr> = interface_addrs()
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, ip)| ip)
        .collect();
    match ips.as_slice() {
        [ip] => Ok(SocketAddr::new(IpAddr::V4(*ip), port)),
        [] => Err(ApiError::invalid_argument(format!(
            "advertise address must be a non-zero IP address or network interface (with optional port number), got {spec:?}"
        ))),
        _ => Err(ApiError::invalid_argument(format!(
            "interface {name} has more than one IPv4 address"
        ))),
    }
}

/// The address to advertise when the user gave none: the only non-loopback IPv4 address.
pub fn choose_advertise(listen: &SocketAddr) -> Result<SocketAddr, ApiError> {
    if !listen.ip().is_unspecified() {
        return Ok(*listen);
    }
    let addrs = interface_addrs();
    match addrs.as_slice() {
        [(_, ip)] => Ok(SocketAddr::new(IpAddr::V4(*ip), listen.port())),
        [] => Err(ApiError::invalid_argument(
            "could not find the system's IP address - specify one with --advertise-addr",
        )),
        _ => Err(ApiError::invalid_argument(format!(
            "could not choose an IP address to advertise since this system has multiple addresses ({}) - specify one with --advertise-addr",
            addrs
                .iter()
                .map(|(n, ip)| format!("{ip} on {n}"))
                .collect::<Vec<_>>()
                .join(" and ")
        ))),
    }
}

/// The address to listen on (default 0.0.0.0:2377) and the one to advertise (chosen from the
/// interfaces when not given), from the flags of `swarm init` / `swarm join`.
pub fn listen_and_advertise(
    listen: &str,
    advertise: &str,
) -> Result<(SocketAddr, SocketAddr), ApiError> {
    let listen_spec = if listen.is_empty() {
        "0.0.0.0:2377"
    } else {
        listen
    };
    let listen = resolve(listen_spec, DEFAULT_PORT)?;
    let advertise = if advertise.is_empty() {
        choose_advertise(&listen)?
    } else {
        resolve(advertise, listen.port())?
    };
    Ok((listen, advertise))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(
            resolve("10.1.2.3", 2377).unwrap().to_string(),
            "10.1.2.3:2377"
        );
        assert_eq!(
            resolve("10.1.2.3:4000", 2377).unwrap().to_string(),
            "10.1.2.3:4000"
        );
        assert!(resolve("no-such-iface0", 2377).is_err());
        assert!(resolve("eth0:notaport", 2377).is_err());
    }

    #[test]
    fn explicit_listen_is_advertised() {
        let l: SocketAddr = "10.9.9.9:2377".parse().unwrap();
        assert_eq!(choose_advertise(&l).unwrap(), l);
    }
}
