//! What a node remembers about its swarm membership across restarts (`<data-root>/swarm.json`).
//! Certificates and keys live beside it in `<data-root>/certificates` (written by the CA module).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LocalSwarmState {
    pub node_id: String,
    pub cluster_id: String,
    /// "manager" or "worker": the role of the certificate we hold.
    pub role: String,
    pub listen_addr: String,
    /// host:port other nodes use to reach us.
    pub advertise_addr: String,
    /// Last known managers (host:port), for reconnecting after a restart.
    pub managers: Vec<String>,
}

pub fn path(data_root: &Path) -> PathBuf {
    data_root.join("swarm.json")
}

pub fn load(data_root: &Path) -> Result<Option<LocalSwarmState>> {
    let p = path(data_root);
    match std::fs::read(&p) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Written atomically (temp file + rename) so a crash never leaves half a file.
pub fn save(data_root: &Path, state: &LocalSwarmState) -> Result<()> {
    std::fs::create_dir_all(data_root)?;
    let p = path(data_root);
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

pub fn remove(data_root: &Path) -> Result<()> {
    match std::fs::remove_file(path(data_root)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let s = LocalSwarmState {
            node_id: "n".into(),
            cluster_id: "c".into(),
            role: "manager".into(),
            listen_addr: "0.0.0.0:2377".into(),
            advertise_addr: "10.0.0.1:2377".into(),
            managers: vec!["10.0.0.1:2377".into()],
        };
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(s));
        remove(dir.path()).unwrap();
        assert!(load(dir.path()).unwrap().is_none());
    }
}
