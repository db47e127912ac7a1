//! Named volumes, local driver: a directory `<root>/volumes/<name>/_data` plus
//! `volume.json` metadata beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::validate_volume_name;
use super::error::{Error, IoContext, Result};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: PathBuf,
    pub created_at: DateTime<Utc>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub scope: String,
    /// Created implicitly for one container (`-v /path`), not by name.
    pub anonymous: bool,
}

#[derive(Clone, Debug)]
pub struct VolumeStore {
    dir: PathBuf,
}

impl VolumeStore {
    pub fn open(dir: PathBuf) -> Result<VolumeStore> {
        std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(VolumeStore { dir })
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("volume.json")
    }

    /// Creates a volume; creating an existing one returns it unchanged (as Docker does).
    pub fn create(
        &self,
        name: &str,
        driver: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        validate_volume_name(name)?;
        if let Some(d) = driver.filter(|d| !d.is_empty() && *d != "local") {
            return Err(Error::invalid(format!(
                "volume driver {d:?} is not supported (only \"local\")"
            )));
        }
        if !options.is_empty() {
            let keys: Vec<&str> = options.keys().map(String::as_str).collect();
            return Err(Error::invalid(format!(
                "local volume options are not supported (got {})",
                keys.join(", ")
            )));
        }
        if let Ok(v) = self.inspect(name) {
            return Ok(v);
        }
        let vdir = self.dir.join(name);
        let data = vdir.join("_data");
        std::fs::create_dir_all(&data).ctx(|| format!("creating {}", data.display()))?;
        let v = Volume {
            name: name.to_string(),
            driver: "local".into(),
            mountpoint: data,
            created_at: Utc::now(),
            labels,
            options,
            scope: "local".into(),
            anonymous,
        };
        let json = serde_json::to_vec_pretty(&v)
            .map_err(|e| Error::Runtime(format!("encoding volume: {e}")))?;
        let tmp = vdir.join("volume.json.tmp");
        std::fs::write(&tmp, json).ctx(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, self.meta_path(name)).ctx(|| "saving volume.json".to_string())?;
        Ok(v)
    }

    pub fn inspect(&self, name: &str) -> Result<Volume> {
        if validate_volume_name(name).is_err() {
            return Err(Error::NotFound(format!("no such volume: {name}")));
        }
        let text = std::fs::read(self.meta_path(name))
            .map_err(|_| Error::NotFound(format!("no such volume: {name}")))?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::Runtime(format!("volume {name}: bad metadata: {e}")))
    }

    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.dir).ctx(|| format!("reading {}", self.dir.display()))?;
        for e in rd.flatten() {
            if let Some(name) = e.file_name().to_str()
                && let Ok(v) = self.inspect(name)
            {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes a volume and its data. The caller checks that no container uses it.
    pub fn remove_unchecked(&self, name: &str) -> Result<()> {
        self.inspect(name)?;
        let vdir = self.dir.join(name);
        std::fs::remove_dir_all(&vdir).ctx(|| format!("removing {}", vdir.display()))
    }
}

/// Whether a directory has no entries (or does not exist).
pub fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut r| r.next().is_none())
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_inspect_remove() {
        let d = tempfile::tempdir().unwrap();
        let s = VolumeStore::open(d.path().join("volumes")).unwrap();
        let v = s
            .create("data", None, BTreeMap::new(), BTreeMap::new(), false)
            .unwrap();
        assert!(v.mountpoint.is_dir());
        let again = s
            .create(
                "data",
                Some("local"),
                BTreeMap::new(),
                BTreeMap::new(),
                false,
            )
            .unwrap();
        assert_eq!(v, again);
        assert!(
            s.create("x y", None, BTreeMap::new(), BTreeMap::new(), false)
                .is_err()
        );
        assert!(
            s.create("nfs", Some("nfs"), BTreeMap::new(), BTreeMap::new(), false)
                .is_err()
        );
        assert_eq!(s.list().unwrap().len(), 1);
        s.remove_unchecked("data").unwrap();
        assert!(matches!(s.inspect("data"), Err(Error::NotFound(_))));
    }
}
