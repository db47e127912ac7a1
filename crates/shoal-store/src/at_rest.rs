//! Encryption at rest of the Raft log entries and snapshots (which hold secrets and the CA key).
//! Each value is sealed with ChaCha20-Poly1305 under the manager's own key and a random nonce;
//! log indexes, terms and votes stay readable, as in swarmkit. A value written before a key was
//! set (plain JSON) is still read, so turning encryption on needs no migration step.

use anyhow::{Context, bail};
use ring::aead::{CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::borrow::Cow;

/// First byte of a sealed value; plain values are JSON and never start with it.
const SEALED: u8 = 0x01;

pub(crate) struct AtRestKey(LessSafeKey);

impl AtRestKey {
    pub(crate) fn new(key: &[u8; 32]) -> anyhow::Result<AtRestKey> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key)
            .map_err(|_| anyhow::anyhow!("invalid raft encryption key"))?;
        Ok(AtRestKey(LessSafeKey::new(unbound)))
    }

    pub(crate) fn seal(&self, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut buf = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::empty(),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("sealing a raft record failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEALED);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }
}

/// Seal with `key` when there is one.
pub(crate) fn encode<'a>(
    key: Option<&AtRestKey>,
    plain: &'a [u8],
) -> anyhow::Result<Cow<'a, [u8]>> {
    match key {
        Some(k) => Ok(Cow::Owned(k.seal(plain)?)),
        None => Ok(Cow::Borrowed(plain)),
    }
}

/// Open a stored value: sealed ones need the key, plain ones pass through.
pub(crate) fn decode<'a>(
    key: Option<&AtRestKey>,
    stored: &'a [u8],
) -> anyhow::Result<Cow<'a, [u8]>> {
    if stored.first() != Some(&SEALED) {
        return Ok(Cow::Borrowed(stored));
    }
    let Some(k) = key else {
        bail!("the raft data is encrypted and no key was given");
    };
    if stored.len() < 1 + NONCE_LEN {
        bail!("truncated encrypted raft record");
    }
    let nonce: [u8; NONCE_LEN] = stored[1..1 + NONCE_LEN].try_into().context("nonce")?;
    let mut buf = stored[1 + NONCE_LEN..].to_vec();
    let plain =
        k.0.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::empty(),
            &mut buf,
        )
        .map_err(|_| {
            anyhow::anyhow!("raft record does not open with this key (wrong key or tampered)")
        })?;
    Ok(Cow::Owned(plain.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_plain_passthrough_and_wrong_key() {
        let k = AtRestKey::new(&[7u8; 32]).unwrap();
        let sealed = encode(Some(&k), b"{\"secret\":1}").unwrap().into_owned();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*decode(Some(&k), &sealed).unwrap(), b"{\"secret\":1}");
        assert_eq!(&*decode(Some(&k), b"{\"a\":1}").unwrap(), b"{\"a\":1}");
        assert!(decode(None, &sealed).is_err());
        let other = AtRestKey::new(&[8u8; 32]).unwrap();
        assert!(decode(Some(&other), &sealed).is_err());
    }
}
