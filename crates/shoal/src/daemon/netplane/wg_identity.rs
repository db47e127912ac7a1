//! The node's WireGuard key pair on disk: the private key never leaves the node and sits in
//! its data root, readable by root only.
//!
//! `wireguard.key` holds the key in use; a rotation first writes the next key to
//! `wireguard.next` and reports its public half, and the node switches to it (renaming the
//! file over `wireguard.key`) only once the managers publish it, so peers and node change
//! together. The age of `wireguard.key` says when the next rotation is due, across restarts.

use anyhow::{Context, Result, anyhow};
use shoal_net::wireguard::KeyPair;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const CURRENT: &str = "wireguard.key";
const NEXT: &str = "wireguard.next";

pub(super) struct Identity {
    dir: PathBuf,
    pub current: KeyPair,
    /// The next key: reported to the managers, not used until they publish it.
    pub next: Option<KeyPair>,
}

fn read_key(path: &Path) -> Result<Option<KeyPair>> {
    match std::fs::read_to_string(path) {
        Ok(s) => KeyPair::from_private_base64(s.trim())
            .map(Some)
            .map_err(|e| anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write a private key so that no reader ever sees a partial file or a wider mode.
fn write_key(path: &Path, key: &KeyPair) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(key.private_base64().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

impl Identity {
    /// Load the node's keys from `dir`, making the first one if there is none.
    pub fn load(dir: &Path) -> Result<Identity> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let current = match read_key(&dir.join(CURRENT))? {
            Some(k) => k,
            None => {
                let k = KeyPair::generate();
                write_key(&dir.join(CURRENT), &k)?;
                k
            }
        };
        let next = read_key(&dir.join(NEXT))?;
        Ok(Identity {
            dir: dir.to_path_buf(),
            current,
            next,
        })
    }

    /// The key the managers should know: the next one while a rotation is under way.
    pub fn reported(&self) -> &KeyPair {
        self.next.as_ref().unwrap_or(&self.current)
    }

    /// When the key in use is `period` old (None while a rotation waits for the managers).
    pub fn rotation_due(&self, period: Duration) -> Option<SystemTime> {
        if self.next.is_some() {
            return None;
        }
        let made = std::fs::metadata(self.dir.join(CURRENT))
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        Some(made + period)
    }

    /// Start a rotation: make and keep the next key (one already waiting is kept).
    pub fn begin_rotation(&mut self) -> Result<()> {
        if self.next.is_none() {
            let k = KeyPair::generate();
            write_key(&self.dir.join(NEXT), &k)?;
            self.next = Some(k);
        }
        Ok(())
    }

    /// The managers published the next key: it becomes the key in use. Returns it.
    pub fn promote(&mut self) -> Result<KeyPair> {
        let next = self
            .next
            .clone()
            .ok_or_else(|| anyhow!("no WireGuard key is waiting to be used"))?;
        std::fs::rename(self.dir.join(NEXT), self.dir.join(CURRENT))
            .context("switching to the next WireGuard key")?;
        self.current = next.clone();
        self.next = None;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_persist_private_and_rotate_in_two_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut id = Identity::load(dir.path()).unwrap();
        let first = id.current.public_base64();
        let mode = std::fs::metadata(dir.path().join(CURRENT))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            Identity::load(dir.path()).unwrap().current.public_base64(),
            first,
            "a restart keeps the key"
        );
        assert!(id.rotation_due(Duration::from_secs(60)).is_some());

        id.begin_rotation().unwrap();
        let next = id.reported().public_base64();
        assert_ne!(next, first);
        assert_eq!(
            id.current.public_base64(),
            first,
            "still in use until published"
        );
        assert!(id.rotation_due(Duration::from_secs(60)).is_none());
        id.begin_rotation().unwrap();
        assert_eq!(
            id.reported().public_base64(),
            next,
            "one rotation at a time"
        );
        let mode = std::fs::metadata(dir.path().join(NEXT))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // A restart in the middle of a rotation resumes it.
        let mut again = Identity::load(dir.path()).unwrap();
        assert_eq!(again.reported().public_base64(), next);
        assert_eq!(again.promote().unwrap().public_base64(), next);
        assert!(again.next.is_none());
        assert!(again.promote().is_err());
        let after = Identity::load(dir.path()).unwrap();
        assert_eq!(after.current.public_base64(), next);
        assert!(after.next.is_none());
    }

    #[test]
    fn a_corrupt_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CURRENT), "garbage").unwrap();
        assert!(Identity::load(dir.path()).is_err());
    }
}
