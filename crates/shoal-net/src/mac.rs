//! Ethernet MAC addresses.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::NetError;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Docker's convention: 02:42 followed by the IPv4 address, so a MAC is known from the IP
    /// alone and is locally administered and unicast.
    pub fn from_ip(ip: Ipv4Addr) -> Mac {
        let o = ip.octets();
        Mac([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8; 6] {
        &self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetError::Invalid(format!("bad MAC address {s:?}"));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl TryFrom<&[u8]> for Mac {
    type Error = NetError;
    fn try_from(v: &[u8]) -> Result<Self, Self::Error> {
        let a: [u8; 6] = v
            .try_into()
            .map_err(|_| NetError::Invalid(format!("MAC must be 6 bytes, got {}", v.len())))?;
        Ok(Mac(a))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let m: Mac = "02:42:0a:00:00:02".parse().unwrap();
        assert_eq!(m, Mac::from_ip(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(m.to_string(), "02:42:0a:00:00:02");
        assert!("02:42:0a:00:00".parse::<Mac>().is_err());
        assert!("02:42:0a:00:00:02:01".parse::<Mac>().is_err());
        assert!("zz:42:0a:00:00:02".parse::<Mac>().is_err());
        assert!("2:42:0a:00:00:002".parse::<Mac>().is_err());
    }
}
