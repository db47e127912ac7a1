//! At-rest encryption: a DEK encrypts Raft data, a KEK (the autolock "unlock key") seals the
//! node's TLS key and the DEK. Both are 32-byte ChaCha20-Poly1305 keys.
//!
//! Sealed record: `[version 1][12-byte random nonce][ciphertext + 16-byte tag]`. A random nonce
//! per record is safe for this volume of records (far below the 2^32 bound for 96-bit nonces).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::error::CaError;
use super::token::constant_time_eq;

/// Prefix of the autolock unlock key (swarmkit's format).
pub const UNLOCK_KEY_PREFIX: &str = "SWMKEY-1-";
const RECORD_VERSION: u8 = 1;
const TAG_LEN: usize = 16;

fn random_32() -> [u8; 32] {
    let mut k = [0u8; 32];
    // SystemRandom only fails if the OS has no entropy source at all, which no supported
    // system lacks; fall back to rand's OS RNG rather than panicking.
    if SystemRandom::new().fill(&mut k).is_err() {
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(&mut k);
    }
    k
}

/// Anything that can seal and open records.
pub trait SealKey {
    fn key_bytes(&self) -> &[u8; 32];
}

/// Key-encryption key; its text form is the unlock key `SWMKEY-1-<base64>`.
#[derive(Clone)]
pub struct Kek([u8; 32]);

/// The autolock unlock key is the KEK.
pub type UnlockKey = Kek;

impl Kek {
    pub fn generate() -> Kek {
        Kek(random_32())
    }

    pub fn from_bytes(b: [u8; 32]) -> Kek {
        Kek(b)
    }

    /// Parses `SWMKEY-1-<base64 of 32 bytes>` (padded or unpadded base64).
    pub fn parse(s: &str) -> Result<Kek, CaError> {
        let bad = |why: &str| CaError::Invalid(format!("invalid unlock key: {why}"));
        let b64 = s
            .trim()
            .strip_prefix(UNLOCK_KEY_PREFIX)
            .ok_or_else(|| bad("it must start with SWMKEY-1-"))?;
        let bytes = STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|e| bad(&format!("not base64: {e}")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| bad(&format!("expected 32 bytes, got {}", b.len())))?;
        Ok(Kek(key))
    }

    /// The user-facing unlock key string.
    pub fn unlock_key_string(&self) -> String {
        format!("{UNLOCK_KEY_PREFIX}{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl PartialEq for Kek {
    fn eq(&self, other: &Kek) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}
impl Eq for Kek {}

impl SealKey for Kek {
    fn key_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl fmt::Display for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.unlock_key_string())
    }
}

impl FromStr for Kek {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Kek, CaError> {
        Kek::parse(s)
    }
}

/// Data-encryption key for Raft log and snapshot records.
#[derive(Clone)]
pub struct Dek([u8; 32]);

impl Dek {
    pub fn generate() -> Dek {
        Dek(random_32())
    }

    pub fn from_bytes(b: [u8; 32]) -> Dek {
        Dek(b)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn from_base64(s: &str) -> Result<Dek, CaError> {
        let bytes = STANDARD
            .decode(s.trim())
            .map_err(|e| CaError::Invalid(format!("invalid DEK: not base64: {e}")))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            CaError::Invalid(format!("invalid DEK: expected 32 bytes, got {}", b.len()))
        })?;
        Ok(Dek(key))
    }
}

impl PartialEq for Dek {
    fn eq(&self, other: &Dek) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}
impl Eq for Dek {}

impl SealKey for Dek {
    fn key_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek(..)")
    }
}

fn aead_key(key: &impl SealKey) -> LessSafeKey {
    // A 32-byte key is always the right length for ChaCha20-Poly1305.
    match UnboundKey::new(&CHACHA20_POLY1305, key.key_bytes()) {
        Ok(k) => LessSafeKey::new(k),
        Err(_) => unreachable!("ChaCha20-Poly1305 takes 32-byte keys"),
    }
}

/// Encrypts and authenticates `plaintext` under `key` with a fresh random nonce.
pub fn seal(key: &impl SealKey, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    if SystemRandom::new().fill(&mut nonce).is_err() {
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(&mut nonce);
    }
    let mut buf = plaintext.to_vec();
    let sealed = aead_key(key).seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from([RECORD_VERSION]),
        &mut buf,
    );
    if sealed.is_err() {
        // ring only refuses inputs larger than ChaCha20's 256 GiB limit.
        unreachable!("record too large to seal");
    }
    let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out
}

/// Decrypts a record made by [`seal`]; fails on a wrong key or any modification.
pub fn open(key: &impl SealKey, sealed: &[u8]) -> Result<Vec<u8>, CaError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
        return Err(CaError::Invalid(format!(
            "sealed record too short ({} bytes)",
            sealed.len()
        )));
    }
    if sealed[0] != RECORD_VERSION {
        return Err(CaError::Invalid(format!(
            "sealed record has unknown version {}",
            sealed[0]
        )));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
    let mut buf = sealed[1 + NONCE_LEN..].to_vec();
    let plain = aead_key(key)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([RECORD_VERSION]),
            &mut buf,
        )
        .map_err(|_| CaError::Decrypt("sealed record"))?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ_per_record() {
        let k = Dek::generate();
        let a = seal(&k, b"same");
        let b = seal(&k, b"same");
        assert_ne!(a, b);
        assert_eq!(open(&k, &a).unwrap(), b"same");
        assert_eq!(open(&k, &b).unwrap(), b"same");
    }

    #[test]
    fn short_and_unknown_version_records_fail_cleanly() {
        let k = Kek::generate();
        assert!(open(&k, b"").is_err());
        let mut s = seal(&k, b"x");
        s[0] = 9;
        assert!(open(&k, &s).unwrap_err().to_string().contains("version"));
    }

    #[test]
    fn dek_base64_round_trip() {
        let d = Dek::generate();
        assert_eq!(Dek::from_base64(&d.to_base64()).unwrap(), d);
        assert!(Dek::from_base64("AAAA").is_err());
    }
}
