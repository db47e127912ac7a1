//! Join tokens: `SWMTKN-1-<sha256(root CA DER), base36, 50 chars>-<16 random bytes, base36, 25 chars>`.
//!
//! The digest lets a joiner pin the root CA before it trusts anything; the secret is what
//! the CA checks. Worker and manager tokens differ only in their secret; rotating a token
//! replaces the secret and keeps the digest.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;

use super::error::CaError;
use super::pki::{RootCa, sha256};

pub const JOIN_TOKEN_PREFIX: &str = "SWMTKN-";
const VERSION: &str = "1";
const DIGEST_CHARS: usize = 50;
const SECRET_CHARS: usize = 25;

#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    ca_digest: [u8; 32],
    secret: [u8; 16],
}

impl fmt::Debug for JoinToken {
    // The secret never goes into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JoinToken(SWMTKN-1-{}-…)",
            base36_encode(&self.ca_digest, DIGEST_CHARS)
        )
    }
}

impl JoinToken {
    /// A new token for `ca` with a fresh random secret.
    pub fn generate(ca: &RootCa) -> JoinToken {
        Self::for_digest(ca.digest())
    }

    /// A new token with a fresh secret for a root whose digest is known.
    pub fn for_digest(ca_digest: [u8; 32]) -> JoinToken {
        let mut secret = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut secret);
        JoinToken { ca_digest, secret }
    }

    /// Rotation: same CA digest, new secret (the old token stops working).
    pub fn rotate(&self) -> JoinToken {
        Self::for_digest(self.ca_digest)
    }

    pub fn parse(s: &str) -> Result<JoinToken, CaError> {
        let bad = |why: &str| CaError::Invalid(format!("invalid join token: {why}"));
        let s = s.trim();
        let rest = s
            .strip_prefix(JOIN_TOKEN_PREFIX)
            .ok_or_else(|| bad("it must start with SWMTKN-"))?;
        let parts: Vec<&str> = rest.split('-').collect();
        if parts.first() == Some(&"2") {
            return Err(bad("version 2 (FIPS) tokens are not supported"));
        }
        if parts.len() != 3 {
            return Err(bad("expected SWMTKN-1-<ca digest>-<secret>"));
        }
        if parts[0] != VERSION {
            return Err(bad(&format!("unknown version {:?}", parts[0])));
        }
        if parts[1].len() != DIGEST_CHARS {
            return Err(bad(&format!(
                "the CA digest must be {DIGEST_CHARS} characters, got {}",
                parts[1].len()
            )));
        }
        if parts[2].len() != SECRET_CHARS {
            return Err(bad(&format!(
                "the secret must be {SECRET_CHARS} characters, got {}",
                parts[2].len()
            )));
        }
        let ca_digest =
            base36_decode::<32>(parts[1]).map_err(|why| bad(&format!("CA digest {why}")))?;
        let secret = base36_decode::<16>(parts[2]).map_err(|why| bad(&format!("secret {why}")))?;
        Ok(JoinToken { ca_digest, secret })
    }

    pub fn ca_digest(&self) -> [u8; 32] {
        self.ca_digest
    }

    /// True if the token was made for this root CA.
    pub fn ca_digest_matches(&self, ca: &RootCa) -> bool {
        self.ca_digest_matches_der(ca.cert_der())
    }

    /// True if sha256 of this DER certificate is the token's pinned digest.
    pub fn ca_digest_matches_der(&self, ca_der: &[u8]) -> bool {
        constant_time_eq(&sha256(ca_der), &self.ca_digest)
    }

    /// Compares the whole token (digest and secret) in constant time.
    pub fn matches(&self, other: &JoinToken) -> bool {
        // Both halves are always compared so timing does not show which one differed.
        let d = constant_time_eq(&self.ca_digest, &other.ca_digest);
        let s = constant_time_eq(&self.secret, &other.secret);
        d & s
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{JOIN_TOKEN_PREFIX}{VERSION}-{}-{}",
            base36_encode(&self.ca_digest, DIGEST_CHARS),
            base36_encode(&self.secret, SECRET_CHARS)
        )
    }
}

impl FromStr for JoinToken {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, CaError> {
        JoinToken::parse(s)
    }
}

/// Equal-length slices compared without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Big-endian bytes as a lowercase base36 number, left-padded with '0' to `width`.
fn base36_encode(bytes: &[u8], width: usize) -> String {
    let mut num = bytes.to_vec();
    let mut out = Vec::new();
    while num.iter().any(|&b| b != 0) {
        let mut rem: u32 = 0;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 36) as u8;
            rem = cur % 36;
        }
        out.push(DIGITS[rem as usize]);
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Inverse of [`base36_encode`]; case-insensitive; errors if the value needs more than N bytes.
fn base36_decode<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    for c in s.chars() {
        let d = c
            .to_digit(36)
            .ok_or_else(|| format!("has a character {c:?} that is not base36"))?;
        let mut carry = d;
        for b in out.iter_mut().rev() {
            let cur = u32::from(*b) * 36 + carry;
            *b = (cur & 0xff) as u8;
            carry = cur >> 8;
        }
        if carry != 0 {
            return Err("is out of range".to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_round_trip_and_width() {
        assert_eq!(base36_encode(&[0u8; 16], 25), "0".repeat(25));
        assert_eq!(base36_encode(&[0, 35], 3), "00z");
        assert_eq!(base36_encode(&[1, 0], 1), "74"); // 256 = 7*36 + 4
        let max = [0xffu8; 32];
        let s = base36_encode(&max, 50);
        assert_eq!(s.len(), 50);
        assert_eq!(base36_decode::<32>(&s).unwrap(), max);
        assert!(base36_decode::<16>(&s).is_err());
        assert_eq!(base36_decode::<2>("00Z").unwrap(), [0, 35]);
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
