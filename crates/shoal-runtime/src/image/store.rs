//! The local image store: content-addressed blobs, layers unpacked once per diff_id and
//! shared by every image that has them, and an index of image records. Everything is written
//! to `tmp/` first and renamed into place, so a failure never leaves half an object behind.
//!
//! Layout under the root:
//! - `blobs/sha256/<hex>`: manifests, configs and layer blobs as received
//! - `layers/<diff_id hex>/diff/`: the unpacked layer (an overlayfs lower dir)
//! - `layers/<diff_id hex>/layer.json`: its [`LayerInfo`]
//! - `images/index.json`: every [`ImageRecord`]
//! - `tmp/`: work in progress, emptied on open

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, Hasher};
use super::error::{ImageError, Result};
use super::reference::Reference;
use super::spec::{ContainerConfig, ImageConfigFile, Manifest};
use super::unpack;

/// One image as the store knows it. `id` is the config digest, as in Docker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ImageRecord {
    pub id: Digest,
    /// Familiar form, e.g. `busybox:latest`, `127.0.0.1:5000/x/y:v1`.
    pub repo_tags: Vec<String>,
    /// Familiar form, e.g. `busybox@sha256:…`.
    pub repo_digests: Vec<String>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub config: ContainerConfig,
    pub architecture: String,
    pub os: String,
    /// Bottom layer first, as in the image config.
    pub diff_ids: Vec<Digest>,
    /// Layer blobs as named by the manifest, same order as `diff_ids`.
    pub layer_blobs: Vec<Digest>,
    /// RFC 3339 creation time from the image config.
    pub created: String,
    /// Sum of the file sizes of all layers.
    pub size: u64,
}

impl ImageRecord {
    pub fn is_dangling(&self) -> bool {
        self.repo_tags.is_empty()
    }
}

/// One line of `docker rmi` output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ImageDeleteItem {
    #[serde(rename = "Untagged", default, skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(rename = "Deleted", default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

impl ImageDeleteItem {
    fn untagged(s: &str) -> Self {
        ImageDeleteItem {
            untagged: Some(s.to_string()),
            deleted: None,
        }
    }
    fn deleted(s: &str) -> Self {
        ImageDeleteItem {
            untagged: None,
            deleted: Some(s.to_string()),
        }
    }
}

/// Result of `image prune`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PruneReport {
    pub deleted: Vec<ImageDeleteItem>,
    pub space_reclaimed: u64,
}

/// Metadata of one unpacked layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LayerInfo {
    pub diff_id: Digest,
    /// Length of the uncompressed layer tar.
    pub tar_size: u64,
    /// Sum of the regular file sizes.
    pub size: u64,
}

/// Bytes on disk, for `system df` and the benchmark.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DiskUsage {
    pub blob_count: u64,
    pub blob_bytes: u64,
    pub layer_count: u64,
    pub layer_bytes: u64,
}

impl DiskUsage {
    pub fn total(&self) -> u64 {
        self.blob_bytes + self.layer_bytes
    }
}

#[derive(Serialize, Deserialize, Default)]
struct IndexFile {
    images: Vec<ImageRecord>,
}

#[derive(Default)]
struct State {
    /// By id hex.
    images: BTreeMap<String, ImageRecord>,
}

struct Inner {
    root: PathBuf,
    state: Mutex<State>,
    /// Objects an unfinished pull/load/import is working on: GC must not take them.
    pins: Mutex<HashMap<String, usize>>,
}

/// Handle to the store; cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

fn blob_key(d: &Digest) -> String {
    format!("blob:{}", d.hex())
}
fn layer_key(d: &Digest) -> String {
    format!("layer:{}", d.hex())
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`, discards leftovers in `tmp/` and
    /// collects objects no image references. Open a root once per process and share the
    /// handle (it is `Clone`): a second handle would not see the first one's work in progress.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        for d in ["blobs/sha256", "layers", "images", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(ImageError::io(format!("creating {}", p.display())))?;
        }
        let tmp = root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(ImageError::io(format!("reading {}", tmp.display())))? {
            let p = e.map_err(ImageError::io("reading tmp"))?.path();
            let r = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(ImageError::io(format!("removing leftover {}", p.display())))?;
        }
        let index_path = root.join("images/index.json");
        let mut state = State::default();
        match fs::read(&index_path) {
            Ok(data) => {
                let idx: IndexFile = serde_json::from_slice(&data).map_err(|e| {
                    ImageError::InvalidImage(format!("{} is corrupt: {e}", index_path.display()))
                })?;
                for r in idx.images {
                    state.images.insert(r.id.hex().to_string(), r);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ImageError::io(format!("reading {}", index_path.display()))(
                    e,
                ));
            }
        }
        let store = ImageStore {
            inner: Arc::new(Inner {
                root,
                state: Mutex::new(state),
                pins: Mutex::new(HashMap::new()),
            }),
        };
        // Objects a crash left without an image record (the record is written last).
        store.gc()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated (updates are
        // whole-value inserts), so a poisoned lock is still usable.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pins(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.inner.pins.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(d.hex())
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.inner.root.join("layers").join(diff_id.hex())
    }

    /// The unpacked directory of a layer (an overlayfs lower dir).
    pub fn layer_diff_path(&self, diff_id: &Digest) -> PathBuf {
        self.layer_dir(diff_id).join("diff")
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).join("layer.json").is_file()
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.blob_path(d)).map_err(ImageError::io(format!("opening blob {d}")))
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        fs::read(self.blob_path(d)).map_err(ImageError::io(format!("reading blob {d}")))
    }

    pub fn layer_info(&self, diff_id: &Digest) -> Result<LayerInfo> {
        let p = self.layer_dir(diff_id).join("layer.json");
        let data = fs::read(&p).map_err(ImageError::io(format!("reading layer {diff_id}")))?;
        serde_json::from_slice(&data)
            .map_err(|e| ImageError::InvalidImage(format!("{} is corrupt: {e}", p.display())))
    }

    pub(crate) fn tmp_path(&self, prefix: &str) -> PathBuf {
        let n: u64 = rand::random();
        self.inner
            .root
            .join("tmp")
            .join(format!("{prefix}-{n:016x}"))
    }

    /// All images, newest first.
    pub fn list(&self) -> Vec<ImageRecord> {
        let mut v: Vec<ImageRecord> = self.state().images.values().cloned().collect();
        v.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        v
    }

    /// Looks an image up by reference (`busybox`, `x/y:tag`, `name@sha256:…`), full ID
    /// (`sha256:…`) or unique ID prefix, in that order, as Docker does.
    pub fn get(&self, name: &str) -> Result<ImageRecord> {
        let st = self.state();
        find(&st, name).cloned()
    }

    /// Adds `new_ref` (default tag `latest`) to the image `src`, moving it off any other image.
    pub fn tag(&self, src: &str, new_ref: &str) -> Result<()> {
        let r = Reference::parse(new_ref)?;
        if r.digest().is_some() {
            return Err(ImageError::InvalidReference(format!(
                "refusing to create a tag with a digest reference: {new_ref}"
            )));
        }
        let mut st = self.state();
        let id = find(&st, src)?.id.hex().to_string();
        let fam = r.familiar();
        for rec in st.images.values_mut() {
            rec.repo_tags.retain(|t| !same_ref(t, &r));
        }
        if let Some(rec) = st.images.get_mut(&id) {
            rec.repo_tags.push(fam);
            rec.repo_tags.sort();
        }
        self.persist(&st)
    }

    /// `docker rmi`: untags `name`; deletes the image once nothing names it, unless a
    /// container uses it (`in_use` holds image IDs, with or without `sha256:`). Without
    /// `force`, deleting by ID an image with several repositories, or one in use, is refused.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &HashSet<String>,
    ) -> Result<Vec<ImageDeleteItem>> {
        let mut st = self.state();
        let rec = find(&st, name)?.clone();
        let used = is_used(&rec.id, in_use);
        let by_ref = matches_ref(&rec, name);
        let mut items = Vec::new();
        if let Some(r) = by_ref {
            // Digests of the same repository go with its last tag, as in Docker.
            let other_repo =
                |t: &String| Reference::parse_name_only(t).is_ok_and(|s| s.name() != r.name());
            let others = rec.repo_tags.iter().filter(|t| !same_ref(t, &r)).count()
                + rec
                    .repo_digests
                    .iter()
                    .filter(|t| !same_ref(t, &r) && other_repo(t))
                    .count();
            if others > 0 {
                // Other names remain: only this one goes.
                let rec = st
                    .images
                    .get_mut(rec.id.hex())
                    .ok_or_else(|| ImageError::NotFound(name.into()))?;
                let fam = match r.digest() {
                    Some(d) => r.without_tag().with_digest(d.clone()).familiar(),
                    None => r.familiar(),
                };
                rec.repo_tags.retain(|t| !same_ref(t, &r));
                rec.repo_digests.retain(|t| !same_ref(t, &r));
                items.push(ImageDeleteItem::untagged(&fam));
                self.persist(&st)?;
                return Ok(items);
            }
        } else if !force {
            let repos: HashSet<String> = rec
                .repo_tags
                .iter()
                .filter_map(|t| Reference::parse(t).ok().map(|r| r.name()))
                .collect();
            if repos.len() > 1 {
                return Err(ImageError::Conflict(format!(
                    "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    rec.id.short()
                )));
            }
        }
        if used && !force {
            return Err(ImageError::Conflict(format!(
                "unable to delete {} (must be forced) - image is being used by a container",
                rec.id.short()
            )));
        }
        for t in rec.repo_tags.iter().chain(rec.repo_digests.iter()) {
            items.push(ImageDeleteItem::untagged(t));
        }
        if used {
            // Forced but in use: the names go, the image stays (dangling) under the container.
            if let Some(r) = st.images.get_mut(rec.id.hex()) {
                r.repo_tags.clear();
                r.repo_digests.clear();
            }
            self.persist(&st)?;
            return Ok(items);
        }
        st.images.remove(rec.id.hex());
        self.persist(&st)?;
        items.push(ImageDeleteItem::deleted(rec.id.as_str()));
        let (layers, _) = self.gc_locked(&st)?;
        for l in layers {
            items.push(ImageDeleteItem::deleted(l.as_str()));
        }
        Ok(items)
    }

    /// `docker image prune [-a]`: deletes dangling images (or, with `dangling_only` false,
    /// every image) that no container uses, then unreferenced blobs and layers.
    pub fn prune(&self, dangling_only: bool, in_use: &HashSet<String>) -> Result<PruneReport> {
        let mut st = self.state();
        let victims: Vec<ImageRecord> = st
            .images
            .values()
            .filter(|r| !is_used(&r.id, in_use) && (!dangling_only || r.is_dangling()))
            .cloned()
            .collect();
        let mut report = PruneReport::default();
        for rec in &victims {
            st.images.remove(rec.id.hex());
            for t in rec.repo_tags.iter().chain(rec.repo_digests.iter()) {
                report.deleted.push(ImageDeleteItem::untagged(t));
            }
            report
                .deleted
                .push(ImageDeleteItem::deleted(rec.id.as_str()));
        }
        self.persist(&st)?;
        let (layers, bytes) = self.gc_locked(&st)?;
        for l in layers {
            report.deleted.push(ImageDeleteItem::deleted(l.as_str()));
        }
        report.space_reclaimed = bytes;
        Ok(report)
    }

    /// Removes blobs and layers no image record references (and no unfinished operation has
    /// pinned). Returns the deleted layers and the bytes freed.
    pub fn gc(&self) -> Result<(Vec<Digest>, u64)> {
        let st = self.state();
        self.gc_locked(&st)
    }

    fn gc_locked(&self, st: &State) -> Result<(Vec<Digest>, u64)> {
        let mut blobs: HashSet<String> = HashSet::new();
        let mut layers: HashSet<String> = HashSet::new();
        for r in st.images.values() {
            blobs.insert(r.id.hex().to_string());
            blobs.insert(r.manifest_digest.hex().to_string());
            blobs.extend(r.layer_blobs.iter().map(|d| d.hex().to_string()));
            layers.extend(r.diff_ids.iter().map(|d| d.hex().to_string()));
        }
        let pins = self.pins();
        let mut freed = 0u64;
        let mut deleted_layers = Vec::new();
        let bdir = self.inner.root.join("blobs/sha256");
        for e in fs::read_dir(&bdir).map_err(ImageError::io("listing blobs"))? {
            let e = e.map_err(ImageError::io("listing blobs"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if blobs.contains(&name) || pins.contains_key(&format!("blob:{name}")) {
                continue;
            }
            freed += e.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(e.path()).map_err(ImageError::io(format!("removing blob {name}")))?;
        }
        let ldir = self.inner.root.join("layers");
        for e in fs::read_dir(&ldir).map_err(ImageError::io("listing layers"))? {
            let e = e.map_err(ImageError::io("listing layers"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if layers.contains(&name) || pins.contains_key(&format!("layer:{name}")) {
                continue;
            }
            freed += dir_bytes(&e.path());
            // Move aside first so a crash mid-delete never leaves a half layer under its name.
            let trash = self.tmp_path("gc");
            fs::rename(e.path(), &trash)
                .map_err(ImageError::io(format!("removing layer {name}")))?;
            fs::remove_dir_all(&trash).map_err(ImageError::io(format!("removing layer {name}")))?;
            if let Ok(d) = Digest::from_hex(&name) {
                deleted_layers.push(d);
            }
        }
        Ok((deleted_layers, freed))
    }

    /// Overlay lower dirs of an image, top layer first (the order `lowerdir=` wants).
    pub fn layer_paths(&self, name: &str) -> Result<Vec<PathBuf>> {
        let rec = self.get(name)?;
        let mut out = Vec::with_capacity(rec.diff_ids.len());
        for d in rec.diff_ids.iter().rev() {
            let p = self.layer_diff_path(d);
            if !p.is_dir() {
                return Err(ImageError::InvalidImage(format!(
                    "image {} is missing its layer {d} on disk",
                    rec.id.short()
                )));
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Runtime defaults (Cmd, Env, …) of an image.
    pub fn image_config(&self, name: &str) -> Result<ContainerConfig> {
        Ok(self.get(name)?.config)
    }

    /// The raw config blob (for `image inspect`).
    pub fn config_file(&self, name: &str) -> Result<ImageConfigFile> {
        let rec = self.get(name)?;
        ImageConfigFile::parse(&self.read_blob(&rec.id)?)
    }

    /// The stored manifest of an image and its raw bytes.
    pub fn manifest(&self, name: &str) -> Result<(Manifest, Vec<u8>)> {
        let rec = self.get(name)?;
        let raw = self.read_blob(&rec.manifest_digest)?;
        let m: Manifest = serde_json::from_slice(&raw).map_err(|e| {
            ImageError::InvalidImage(format!(
                "stored manifest {} is corrupt: {e}",
                rec.manifest_digest
            ))
        })?;
        Ok((m, raw))
    }

    /// Adds a `name@digest` to an image's RepoDigests (after a push).
    pub fn add_repo_digest(&self, id: &Digest, r: &Reference) -> Result<()> {
        let mut st = self.state();
        let fam = r.familiar();
        if let Some(rec) = st.images.get_mut(id.hex())
            && !rec.repo_digests.contains(&fam)
        {
            rec.repo_digests.push(fam);
            rec.repo_digests.sort();
        }
        self.persist(&st)
    }

    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut u = DiskUsage::default();
        let bdir = self.inner.root.join("blobs/sha256");
        for e in fs::read_dir(&bdir).map_err(ImageError::io("listing blobs"))? {
            let e = e.map_err(ImageError::io("listing blobs"))?;
            u.blob_count += 1;
            u.blob_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
        let ldir = self.inner.root.join("layers");
        for e in fs::read_dir(&ldir).map_err(ImageError::io("listing layers"))? {
            let e = e.map_err(ImageError::io("listing layers"))?;
            u.layer_count += 1;
            u.layer_bytes += dir_bytes(&e.path());
        }
        Ok(u)
    }

    fn persist(&self, st: &State) -> Result<()> {
        let idx = IndexFile {
            images: st.images.values().cloned().collect(),
        };
        let data = serde_json::to_vec_pretty(&idx)
            .map_err(|e| ImageError::InvalidImage(format!("encoding image index: {e}")))?;
        let tmp = self.tmp_path("index");
        let dst = self.inner.root.join("images/index.json");
        write_synced(&tmp, &data).map_err(ImageError::io("writing image index"))?;
        fs::rename(&tmp, &dst).map_err(ImageError::io("writing image index"))?;
        sync_dir(&self.inner.root.join("images"));
        Ok(())
    }

    /// Starts a unit of work that adds objects; see [`Txn`].
    pub(crate) fn txn(&self) -> Txn {
        Txn {
            store: self.clone(),
            pinned: Mutex::new(Vec::new()),
            created: Mutex::new(Vec::new()),
            done: Mutex::new(false),
        }
    }
}

fn is_used(id: &Digest, in_use: &HashSet<String>) -> bool {
    in_use.contains(id.as_str()) || in_use.contains(id.hex())
}

/// Whether a stored familiar name (`busybox:latest`, `busybox@sha256:…`) is what `r` names.
/// A reference with a digest names by repository and digest; its tag is ignored, as Docker
/// does for `name:tag@digest` (what swarm services pin images to).
fn same_ref(stored: &str, r: &Reference) -> bool {
    let Ok(s) = Reference::parse_name_only(stored) else {
        return false;
    };
    match r.digest() {
        Some(d) => s.digest() == Some(d) && s.name() == r.name(),
        None => s == *r,
    }
}

/// If `name` is a reference naming this record (tag or digest), that reference.
fn matches_ref(rec: &ImageRecord, name: &str) -> Option<Reference> {
    let r = Reference::parse(name).ok()?;
    let hit = match r.digest() {
        Some(d) => {
            rec.repo_digests.iter().any(|t| same_ref(t, &r))
                // The platform manifest of a pulled multi-platform image names it too.
                || (rec.manifest_digest == *d
                    && rec
                        .repo_digests
                        .iter()
                        .any(|t| Reference::parse_name_only(t).is_ok_and(|s| s.name() == r.name())))
        }
        None => rec.repo_tags.iter().any(|t| same_ref(t, &r)),
    };
    hit.then_some(r)
}

fn find<'a>(st: &'a State, name: &str) -> Result<&'a ImageRecord> {
    let not_found = || ImageError::NotFound(name.to_string());
    if let Some(hex) = name.strip_prefix("sha256:") {
        return find_by_id_prefix(st, hex).ok_or_else(not_found);
    }
    if let Some(rec) = st.images.values().find(|r| matches_ref(r, name).is_some()) {
        return Ok(rec);
    }
    find_by_id_prefix(st, name).ok_or_else(not_found)
}

fn find_by_id_prefix<'a>(st: &'a State, hex: &str) -> Option<&'a ImageRecord> {
    if hex.is_empty() || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut it = st
        .images
        .range(hex.to_string()..)
        .take_while(|(k, _)| k.starts_with(hex));
    let first = it.next()?;
    // An ambiguous prefix names nothing.
    if it.next().is_some() {
        None
    } else {
        Some(first.1)
    }
}

/// Apparent size of a directory tree, counting hardlinked files once.
fn dir_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    walkdir::WalkDir::new(p)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && seen.insert((m.dev(), m.ino())))
        .map(|m| m.len())
        .sum()
}

pub(crate) fn write_synced(p: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = File::create(p)?;
    f.write_all(data)?;
    f.sync_all()
}

pub(crate) fn sync_dir(p: &Path) {
    // Best effort: the rename is already atomic; this only makes it durable sooner.
    if let Ok(d) = File::open(p) {
        let _ = d.sync_all();
    }
}

/// Removes a temporary path on drop unless disarmed.
pub(crate) struct TempGuard(pub Option<PathBuf>);

impl TempGuard {
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// A blob being written: hashed while streaming, renamed into `blobs/` only when complete and
/// (if an expected digest was given) verified. Dropped without commit, it leaves nothing.
pub struct BlobWriter {
    file: File,
    hasher: Hasher,
    guard: TempGuard,
}

impl BlobWriter {
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A unit of work that adds blobs and layers and ends by committing an image record. Until
/// then its objects are pinned against GC; if it is dropped without committing, the objects
/// it created that no image references are removed again.
pub(crate) struct Txn {
    store: ImageStore,
    pinned: Mutex<Vec<String>>,
    created: Mutex<Vec<String>>,
    done: Mutex<bool>,
}

impl Txn {
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    fn pin(&self, key: String) {
        *self.store.pins().entry(key.clone()).or_insert(0) += 1;
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key);
    }

    fn note_created(&self, key: String) {
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key);
    }

    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let tmp = self.store.tmp_path("blob");
        let file =
            File::create(&tmp).map_err(ImageError::io(format!("creating {}", tmp.display())))?;
        Ok(BlobWriter {
            file,
            hasher: Hasher::new(),
            guard: TempGuard(Some(tmp)),
        })
    }

    /// Finishes a blob: verifies it against `expected` (naming it `what` in errors), then
    /// renames it into place.
    pub fn commit_blob(
        &self,
        mut w: BlobWriter,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        w.file
            .sync_all()
            .map_err(ImageError::io(format!("writing {what}")))?;
        let len = w.hasher.len();
        let digest = std::mem::take(&mut w.hasher).finish();
        if let Some(exp) = expected
            && *exp != digest
        {
            return Err(ImageError::DigestMismatch {
                what: what.to_string(),
                expected: exp.to_string(),
                actual: digest.to_string(),
            });
        }
        self.pin(blob_key(&digest));
        let dst = self.store.blob_path(&digest);
        if !dst.exists() {
            let Some(tmp) = w.guard.0.take() else {
                return Err(ImageError::InvalidImage(format!(
                    "{what}: blob writer already used"
                )));
            };
            fs::rename(&tmp, &dst).map_err(ImageError::io(format!("storing {what}")))?;
            sync_dir(dst.parent().unwrap_or(Path::new(".")));
            self.note_created(blob_key(&digest));
        }
        Ok((digest, len))
    }

    pub fn put_blob_bytes(
        &self,
        data: &[u8],
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<Digest> {
        let mut w = self.blob_writer()?;
        w.write_all(data)
            .map_err(ImageError::io(format!("writing {what}")))?;
        Ok(self.commit_blob(w, expected, what)?.0)
    }

    pub fn put_blob_reader(
        &self,
        r: &mut dyn Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let mut w = self.blob_writer()?;
        io::copy(r, &mut w).map_err(ImageError::io(format!("writing {what}")))?;
        self.commit_blob(w, expected, what)
    }

    /// Pins a blob that is already present so GC leaves it alone; false if absent.
    pub fn reuse_blob(&self, d: &Digest) -> bool {
        self.pin(blob_key(d));
        self.store.has_blob(d)
    }

    /// Pins a layer that is already unpacked; its info, or None if absent.
    pub fn reuse_layer(&self, diff_id: &Digest) -> Option<LayerInfo> {
        self.pin(layer_key(diff_id));
        if self.store.has_layer(diff_id) {
            self.store.layer_info(diff_id).ok()
        } else {
            None
        }
    }

    /// Unpacks the layer blob `blob` (unless a layer with `expected` diff_id is already
    /// there), checking its diff_id against `expected`.
    pub fn ensure_layer(
        &self,
        blob: &Digest,
        expected: Option<&Digest>,
        label: &str,
    ) -> Result<LayerInfo> {
        if let Some(exp) = expected
            && let Some(info) = self.reuse_layer(exp)
        {
            return Ok(info);
        }
        let tmp = self.store.tmp_path("layer");
        let mut guard = TempGuard(Some(tmp.clone()));
        let diff = tmp.join("diff");
        fs::create_dir_all(&diff)
            .map_err(ImageError::io(format!("creating {}", diff.display())))?;
        let f = self.store.open_blob(blob)?;
        let un = unpack::unpack_layer(f, &diff, label)?;
        if let Some(exp) = expected
            && *exp != un.diff_id
        {
            return Err(ImageError::DigestMismatch {
                what: format!("layer {label} (uncompressed diff_id)"),
                expected: exp.to_string(),
                actual: un.diff_id.to_string(),
            });
        }
        let info = LayerInfo {
            diff_id: un.diff_id.clone(),
            tar_size: un.tar_size,
            size: un.size,
        };
        if let Some(existing) = self.reuse_layer(&un.diff_id) {
            return Ok(existing);
        }
        let meta =
            serde_json::to_vec(&info).map_err(|e| ImageError::InvalidImage(e.to_string()))?;
        write_synced(&tmp.join("layer.json"), &meta)
            .map_err(ImageError::io("writing layer.json"))?;
        let dst = self.store.layer_dir(&un.diff_id);
        match fs::rename(&tmp, &dst) {
            Ok(()) => {
                guard.disarm();
                self.note_created(layer_key(&un.diff_id));
                sync_dir(&self.store.inner.root.join("layers"));
                Ok(info)
            }
            // Someone else unpacked the same layer meanwhile: theirs is as good as ours.
            Err(_) if self.store.has_layer(&un.diff_id) => self.store.layer_info(&un.diff_id),
            Err(e) => Err(ImageError::io(format!("storing layer {label}"))(e)),
        }
    }

    /// Records an image whose manifest, config and layers are all in the store, gives it
    /// `tags` (taking them from other images) and `repo_digest`.
    pub fn commit_image(
        &self,
        manifest_digest: &Digest,
        manifest_media_type: &str,
        config_digest: &Digest,
        layer_blobs: &[Digest],
        tags: &[Reference],
        repo_digest: Option<&Reference>,
    ) -> Result<ImageRecord> {
        let store = &self.store;
        let cfg = ImageConfigFile::parse(&store.read_blob(config_digest)?)?;
        if cfg.rootfs.diff_ids.len() != layer_blobs.len() {
            return Err(ImageError::InvalidImage(format!(
                "image config lists {} layers but the manifest has {}",
                cfg.rootfs.diff_ids.len(),
                layer_blobs.len()
            )));
        }
        let mut size = 0;
        for d in &cfg.rootfs.diff_ids {
            size += store.layer_info(d)?.size;
        }
        for b in layer_blobs.iter().chain([manifest_digest, config_digest]) {
            if !store.has_blob(b) {
                return Err(ImageError::InvalidImage(format!(
                    "blob {b} missing from the store"
                )));
            }
        }
        let mut st = store.state();
        for rec in st.images.values_mut() {
            rec.repo_tags
                .retain(|t| !tags.iter().any(|r| same_ref(t, r)));
        }
        let rec = st
            .images
            .entry(config_digest.hex().to_string())
            .or_insert_with(|| ImageRecord {
                id: config_digest.clone(),
                repo_tags: Vec::new(),
                repo_digests: Vec::new(),
                manifest_digest: manifest_digest.clone(),
                manifest_media_type: manifest_media_type.to_string(),
                config: cfg.config.clone().unwrap_or_default(),
                architecture: cfg.architecture.clone(),
                os: cfg.os.clone(),
                diff_ids: cfg.rootfs.diff_ids.clone(),
                layer_blobs: layer_blobs.to_vec(),
                created: cfg.created.clone().unwrap_or_default(),
                size,
            });
        for t in tags {
            rec.repo_tags.push(t.familiar());
        }
        rec.repo_tags.sort();
        rec.repo_tags.dedup();
        if let Some(r) = repo_digest {
            let fam = r.familiar();
            if !rec.repo_digests.contains(&fam) {
                rec.repo_digests.push(fam);
                rec.repo_digests.sort();
            }
        }
        let out = rec.clone();
        store.persist(&st)?;
        Ok(out)
    }

    /// Marks the work as complete: objects not referenced by a record will be left for GC
    /// instead of being rolled back.
    pub fn finish(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        let done = *self.done.lock().unwrap_or_else(|p| p.into_inner());
        let pinned = std::mem::take(&mut *self.pinned.lock().unwrap_or_else(|p| p.into_inner()));
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        {
            let mut pins = self.store.pins();
            for k in pinned {
                if let Some(n) = pins.get_mut(&k) {
                    *n -= 1;
                    if *n == 0 {
                        pins.remove(&k);
                    }
                }
            }
        }
        if !done && !created.is_empty() {
            // Failed: take back what we added unless an image (or other work) now uses it.
            let st = self.store.state();
            if let Err(e) = self.store.gc_locked(&st) {
                tracing::warn!(error = %e, "cleaning up after a failed image operation");
            }
        }
    }
}
