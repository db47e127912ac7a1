//! `image import` (a rootfs tar becomes a one-layer image), `image load` (docker-archive or
//! OCI image layout) and `image save` (Docker 25+ style: an OCI layout that also carries
//! `manifest.json` and `repositories`, so both `docker load` and OCI tools read it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::changes::apply_changes;
use super::digest::{Digest, Hasher};
use super::error::{ImageError, Result};
use super::reference::Reference;
use super::spec::{
    self, ContainerConfig, Descriptor, HistoryEntry, ImageConfigFile, Index, Manifest, RootFs,
};
use super::store::{ImageRecord, ImageStore, TempGuard, Txn};
use super::unpack::{self, Compression};

/// Archive layout written by [`ImageStore::save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// OCI layout plus `manifest.json` and `repositories` (what `docker save` writes since 25).
    Docker,
    /// OCI image layout only (`oci-layout`, `index.json`, `blobs/`).
    Oci,
}

/// One image brought in by `load`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LoadedImage {
    pub id: Digest,
    /// Familiar names, e.g. `busybox:latest`.
    pub tags: Vec<String>,
}

const ANN_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn blob_compression(store: &ImageStore, d: &Digest) -> Result<Compression> {
    let mut f = store.open_blob(d)?;
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        let r = f
            .read(&mut head[n..])
            .map_err(ImageError::io(format!("reading blob {d}")))?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(Compression::detect(&head[..n]))
}

/// A layer and config to turn into an image; built by import and load.
struct Pending {
    manifest_digest: Digest,
    manifest_media_type: String,
    config: Digest,
    layer_blobs: Vec<Digest>,
    tags: Vec<Reference>,
}

/// Stores an OCI manifest for `config` and `layers`, returning its digest.
fn write_manifest(
    txn: &Txn,
    config: &Digest,
    config_size: u64,
    layers: &[Descriptor],
) -> Result<Digest> {
    let m = Manifest {
        schema_version: 2,
        media_type: Some(spec::MT_OCI_MANIFEST.to_string()),
        config: Descriptor::new(spec::MT_OCI_CONFIG, config.clone(), config_size),
        layers: layers.to_vec(),
        annotations: None,
    };
    let raw = serde_json::to_vec(&m).map_err(|e| ImageError::InvalidImage(e.to_string()))?;
    txn.put_blob_bytes(&raw, None, "manifest")
}

impl ImageStore {
    /// `docker import`: a root filesystem tar (plain, gzip or zstd) becomes a one-layer image
    /// with the runtime settings from `changes` (`CMD ["sh"]`, `ENV A=b`, …), tagged
    /// `reference` if given.
    pub fn import(
        &self,
        rootfs: &mut dyn Read,
        changes: &[String],
        reference: Option<&str>,
    ) -> Result<ImageRecord> {
        let tag = reference.map(Reference::parse).transpose()?;
        if tag.as_ref().is_some_and(|t| t.digest().is_some()) {
            return Err(ImageError::InvalidReference(
                "an imported image cannot be tagged with a digest".into(),
            ));
        }
        let mut config = ContainerConfig::default();
        apply_changes(&mut config, changes)?;
        let txn = self.txn();
        let (blob, blob_size) = txn.put_blob_reader(rootfs, None, "imported rootfs")?;
        let layer = txn.ensure_layer(&blob, None, "imported rootfs")?;
        let compression = blob_compression(self, &blob)?;
        let (os, arch) = spec::host_platform();
        let created = now_rfc3339();
        let cfg = ImageConfigFile {
            architecture: arch.to_string(),
            os: os.to_string(),
            variant: None,
            created: Some(created.clone()),
            author: None,
            config: Some(config),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![layer.diff_id.clone()],
            },
            history: Some(vec![HistoryEntry {
                created: Some(created),
                created_by: Some("shoal image import".into()),
                comment: Some("Imported from -".into()),
                empty_layer: None,
            }]),
        };
        let raw = serde_json::to_vec(&cfg).map_err(|e| ImageError::InvalidImage(e.to_string()))?;
        let config_digest = txn.put_blob_bytes(&raw, None, "image config")?;
        let layer_desc = Descriptor::new(compression.layer_media_type(), blob.clone(), blob_size);
        let manifest = write_manifest(&txn, &config_digest, raw.len() as u64, &[layer_desc])?;
        let tags: Vec<Reference> = tag.into_iter().collect();
        let rec = txn.commit_image(
            &manifest,
            spec::MT_OCI_MANIFEST,
            &config_digest,
            &[blob],
            &tags,
            None,
        )?;
        txn.finish();
        Ok(rec)
    }

    /// `docker load`: reads a docker-archive (`manifest.json`, legacy or Docker 25+) or an OCI
    /// image layout (`index.json` + `oci-layout`), plain or gzip/zstd-compressed. All images
    /// in it are stored, or none.
    pub fn load(&self, reader: &mut dyn Read) -> Result<Vec<LoadedImage>> {
        let dir = self.tmp_path("load");
        fs::create_dir(&dir).map_err(ImageError::io(format!("creating {}", dir.display())))?;
        let _guard = TempGuard(Some(dir.clone()));
        // `docker load` also takes gzip- or zstd-compressed archives.
        let (_, plain) = unpack::decompress(reader)
            .map_err(|e| ImageError::CorruptArchive(format!("reading archive: {e}")))?;
        let ex = Extracted::read(plain, &dir)?;
        let txn = self.txn();
        let pending = if ex.has("manifest.json") {
            load_docker_archive(&txn, &ex)?
        } else if ex.has("index.json") && ex.has("oci-layout") {
            load_oci_layout(&txn, &ex)?
        } else {
            return Err(ImageError::CorruptArchive(
                "neither manifest.json (docker-archive) nor index.json + oci-layout (OCI layout) found".into(),
            ));
        };
        let mut out = Vec::new();
        for p in &pending {
            let rec = txn.commit_image(
                &p.manifest_digest,
                &p.manifest_media_type,
                &p.config,
                &p.layer_blobs,
                &p.tags,
                None,
            )?;
            out.push(LoadedImage {
                id: rec.id.clone(),
                tags: p.tags.iter().map(Reference::familiar).collect(),
            });
        }
        txn.finish();
        Ok(out)
    }

    /// `docker save`: writes the named images (references or IDs) as one tar archive. A name
    /// that is a tag carries the tag; an ID carries none (as in Docker).
    pub fn save(&self, names: &[String], w: &mut dyn Write, format: SaveFormat) -> Result<()> {
        if names.is_empty() {
            return Err(ImageError::InvalidImage(
                "nothing to save: no image names given".into(),
            ));
        }
        // Image id hex -> (record, tags), in the order first named.
        let mut order: Vec<String> = Vec::new();
        let mut chosen: HashMap<String, (ImageRecord, Vec<Reference>)> = HashMap::new();
        for n in names {
            let rec = self.get(n)?;
            let tag = Reference::parse(n)
                .ok()
                .filter(|r| r.tag().is_some() && r.digest().is_none())
                .filter(|r| {
                    rec.repo_tags
                        .iter()
                        .any(|t| Reference::parse(t).is_ok_and(|x| x == *r))
                });
            let key = rec.id.hex().to_string();
            let entry = chosen.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                (rec, Vec::new())
            });
            if let Some(t) = tag
                && !entry.1.contains(&t)
            {
                entry.1.push(t);
            }
        }
        let mut tw = tar::Builder::new(w);
        let mut written: HashSet<String> = HashSet::new();
        let mut index = Index {
            schema_version: 2,
            media_type: Some(spec::MT_OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: None,
        };
        let mut docker_manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        append_dir(&mut tw, "blobs/")?;
        append_dir(&mut tw, "blobs/sha256/")?;
        for key in &order {
            let (rec, tags) = &chosen[key];
            let config_raw = self.read_blob(&rec.id)?;
            if written.insert(rec.id.hex().to_string()) {
                append_bytes(&mut tw, &blob_name(&rec.id), &config_raw)?;
            }
            let mut layer_descs = Vec::new();
            for (i, diff_id) in rec.diff_ids.iter().enumerate() {
                let info = self.layer_info(diff_id)?;
                layer_descs.push(Descriptor::new(
                    spec::MT_OCI_LAYER,
                    diff_id.clone(),
                    info.tar_size,
                ));
                if !written.insert(diff_id.hex().to_string()) {
                    continue;
                }
                let blob = rec.layer_blobs.get(i).ok_or_else(|| {
                    ImageError::InvalidImage(format!(
                        "image {} has no blob for layer {i}",
                        rec.id.short()
                    ))
                })?;
                let (_, plain) = unpack::decompress(self.open_blob(blob)?)
                    .map_err(ImageError::io(format!("reading layer blob {blob}")))?;
                let mut verified = Verified::new(plain, diff_id.clone(), info.tar_size);
                let mut h = tar_header(info.tar_size, 0o644);
                tw.append_data(&mut h, blob_name(diff_id), &mut verified)
                    .map_err(ImageError::io(format!("writing layer {diff_id}")))?;
                verified.check()?;
            }
            let m = Manifest {
                schema_version: 2,
                media_type: Some(spec::MT_OCI_MANIFEST.to_string()),
                config: Descriptor::new(
                    spec::MT_OCI_CONFIG,
                    rec.id.clone(),
                    config_raw.len() as u64,
                ),
                layers: layer_descs,
                annotations: None,
            };
            let m_raw =
                serde_json::to_vec(&m).map_err(|e| ImageError::InvalidImage(e.to_string()))?;
            let m_digest = Digest::of_bytes(&m_raw);
            if written.insert(m_digest.hex().to_string()) {
                append_bytes(&mut tw, &blob_name(&m_digest), &m_raw)?;
            }
            let desc = Descriptor::new(spec::MT_OCI_MANIFEST, m_digest, m_raw.len() as u64);
            if tags.is_empty() {
                index.manifests.push(desc.clone());
            }
            for t in tags {
                let mut d = desc.clone();
                let mut ann = BTreeMap::new();
                ann.insert(ANN_CONTAINERD_NAME.to_string(), t.to_string());
                ann.insert(
                    ANN_REF_NAME.to_string(),
                    t.tag().unwrap_or("latest").to_string(),
                );
                d.annotations = Some(ann);
                index.manifests.push(d);
                if let (Some(top), Some(tag)) = (rec.diff_ids.last(), t.tag()) {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), top.hex().to_string());
                }
            }
            docker_manifest.push(serde_json::json!({
                "Config": blob_name(&rec.id),
                "RepoTags": tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
                "Layers": rec.diff_ids.iter().map(blob_name).collect::<Vec<_>>(),
            }));
        }
        let json = |v: &serde_json::Value| {
            serde_json::to_vec(v).map_err(|e| ImageError::InvalidImage(e.to_string()))
        };
        append_bytes(&mut tw, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index_raw =
            serde_json::to_vec(&index).map_err(|e| ImageError::InvalidImage(e.to_string()))?;
        append_bytes(&mut tw, "index.json", &index_raw)?;
        if format == SaveFormat::Docker {
            append_bytes(
                &mut tw,
                "manifest.json",
                &json(&serde_json::Value::from(docker_manifest))?,
            )?;
            if !repositories.is_empty() {
                append_bytes(
                    &mut tw,
                    "repositories",
                    &json(
                        &serde_json::to_value(&repositories)
                            .map_err(|e| ImageError::InvalidImage(e.to_string()))?,
                    )?,
                )?;
            }
        }
        tw.into_inner()
            .and_then(|w| w.flush())
            .map_err(ImageError::io("finishing the archive"))
    }
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn tar_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append_bytes<W: Write>(tw: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = tar_header(data.len() as u64, 0o644);
    tw.append_data(&mut h, name, data)
        .map_err(ImageError::io(format!("writing {name} to the archive")))
}

fn append_dir<W: Write>(tw: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = tar_header(0, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    tw.append_data(&mut h, name, io::empty())
        .map_err(ImageError::io(format!("writing {name} to the archive")))
}

/// Passes a layer through while checking it is exactly the bytes its diff_id names.
struct Verified<R> {
    inner: R,
    hasher: Hasher,
    expected: Digest,
    expected_len: u64,
}

impl<R: Read> Verified<R> {
    fn new(inner: R, expected: Digest, expected_len: u64) -> Self {
        Verified {
            inner,
            hasher: Hasher::new(),
            expected,
            expected_len,
        }
    }

    fn check(self) -> Result<()> {
        let len = self.hasher.len();
        let got = self.hasher.finish();
        if got != self.expected || len != self.expected_len {
            return Err(ImageError::DigestMismatch {
                what: format!(
                    "stored layer {} ({len} bytes, expected {})",
                    self.expected, self.expected_len
                ),
                expected: self.expected.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never hand the tar writer more than the header promised.
        let left = self.expected_len.saturating_sub(self.hasher.len());
        let cap = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The regular files of an archive, extracted flat into a temp dir and looked up by their
/// (cleaned) names; symlinks and hardlinks between them resolved by name.
struct Extracted {
    files: HashMap<String, PathBuf>,
    symlinks: HashMap<String, String>,
}

const MAX_LINK_HOPS: usize = 16;

fn clean_name(raw: &Path) -> Result<String> {
    let mut out: Vec<String> = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(ImageError::CorruptArchive(format!(
                        "entry {} escapes the archive root",
                        raw.display()
                    )));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ImageError::CorruptArchive(format!(
                    "entry {} is an absolute path",
                    raw.display()
                )));
            }
        }
    }
    Ok(out.join("/"))
}

impl Extracted {
    fn read(reader: impl Read, dir: &Path) -> Result<Extracted> {
        let corrupt = |e: io::Error| ImageError::CorruptArchive(format!("reading archive: {e}"));
        let mut ar = tar::Archive::new(reader);
        let mut ex = Extracted {
            files: HashMap::new(),
            symlinks: HashMap::new(),
        };
        let mut hardlinks: Vec<(String, String)> = Vec::new();
        let mut count = 0usize;
        for entry in ar.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let raw = entry.path().map_err(corrupt)?.into_owned();
            let name = clean_name(&raw)?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    count += 1;
                    let p = dir.join(format!("f{count}"));
                    let mut f = File::create(&p)
                        .map_err(ImageError::io(format!("creating {}", p.display())))?;
                    io::copy(&mut entry, &mut f).map_err(corrupt)?;
                    ex.files.insert(name, p);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let is_sym = entry.header().entry_type() == tar::EntryType::Symlink;
                    let target = entry
                        .link_name()
                        .map_err(corrupt)?
                        .ok_or_else(|| {
                            ImageError::CorruptArchive(format!("link {name} without target"))
                        })?
                        .into_owned();
                    if is_sym {
                        // Relative to the link's own directory; must stay inside the archive.
                        let base = Path::new(&name)
                            .parent()
                            .unwrap_or(Path::new(""))
                            .to_path_buf();
                        ex.symlinks.insert(name, clean_name(&base.join(target))?);
                    } else {
                        hardlinks.push((name, clean_name(&target)?));
                    }
                }
                _ => {}
            }
        }
        for (name, target) in hardlinks {
            let p = ex.resolve(&target)?;
            ex.files.insert(name, p);
        }
        Ok(ex)
    }

    fn has(&self, name: &str) -> bool {
        self.resolve(name).is_ok()
    }

    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let mut cur = clean_name(Path::new(name))?;
        for _ in 0..MAX_LINK_HOPS {
            if let Some(p) = self.files.get(&cur) {
                return Ok(p.clone());
            }
            // A symlinked directory (legacy docker-archive shares layer dirs this way).
            let mut redirected = None;
            for (link, target) in &self.symlinks {
                if cur == *link {
                    redirected = Some(target.clone());
                    break;
                }
                if let Some(rest) = cur.strip_prefix(&format!("{link}/")) {
                    redirected = Some(format!("{target}/{rest}"));
                    break;
                }
            }
            match redirected {
                Some(next) => cur = next,
                None => break,
            }
        }
        Err(ImageError::CorruptArchive(format!(
            "{name} is missing from the archive"
        )))
    }

    fn open(&self, name: &str) -> Result<File> {
        let p = self.resolve(name)?;
        File::open(&p).map_err(ImageError::io(format!("opening {name} from the archive")))
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T> {
        let p = self.resolve(name)?;
        let data =
            fs::read(&p).map_err(ImageError::io(format!("reading {name} from the archive")))?;
        serde_json::from_slice(&data)
            .map_err(|e| ImageError::CorruptArchive(format!("{name}: {e}")))
    }
}

/// Stores config and layers (each checked against the config's diff_ids); returns the
/// config digest, the layer descriptors as stored, and the config size.
fn store_image_parts(
    txn: &Txn,
    ex: &Extracted,
    config_name: &str,
    layer_names: &[String],
    expected: Option<&[Descriptor]>,
) -> Result<(Digest, u64, Vec<Descriptor>)> {
    let mut cf = ex.open(config_name)?;
    let (config, config_size) =
        txn.put_blob_reader(&mut cf, None, &format!("config {config_name}"))?;
    let cfg = ImageConfigFile::parse(&txn.store().read_blob(&config)?)
        .map_err(|e| ImageError::CorruptArchive(format!("{config_name}: {e}")))?;
    if cfg.rootfs.diff_ids.len() != layer_names.len() {
        return Err(ImageError::CorruptArchive(format!(
            "{config_name} lists {} layers but the archive manifest has {}",
            cfg.rootfs.diff_ids.len(),
            layer_names.len()
        )));
    }
    let mut descs = Vec::new();
    for (i, (name, diff_id)) in layer_names.iter().zip(&cfg.rootfs.diff_ids).enumerate() {
        let exp = expected.and_then(|e| e.get(i));
        let mut lf = ex.open(name)?;
        let label = format!("{} ({name})", diff_id.short());
        let (blob, size) =
            txn.put_blob_reader(&mut lf, exp.map(|d| &d.digest), &format!("layer {label}"))?;
        txn.ensure_layer(&blob, Some(diff_id), &label)?;
        let mt = match exp {
            Some(d) => d.media_type.clone(),
            None => blob_compression(txn.store(), &blob)?
                .layer_media_type()
                .to_string(),
        };
        descs.push(Descriptor::new(&mt, blob, size));
    }
    Ok((config, config_size, descs))
}

fn parse_tags(tags: &[String]) -> Result<Vec<Reference>> {
    tags.iter()
        .map(|t| {
            Reference::parse(t)
                .map_err(|e| ImageError::CorruptArchive(format!("bad tag {t:?}: {e}")))
        })
        .collect()
}

fn load_docker_archive(txn: &Txn, ex: &Extracted) -> Result<Vec<Pending>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = ex.read_json("manifest.json")?;
    if entries.is_empty() {
        return Err(ImageError::CorruptArchive(
            "manifest.json lists no images".into(),
        ));
    }
    let mut out = Vec::new();
    for e in entries {
        let tags = parse_tags(e.repo_tags.as_deref().unwrap_or(&[]))?;
        let (config, config_size, descs) = store_image_parts(txn, ex, &e.config, &e.layers, None)?;
        let manifest = write_manifest(txn, &config, config_size, &descs)?;
        out.push(Pending {
            manifest_digest: manifest,
            manifest_media_type: spec::MT_OCI_MANIFEST.into(),
            config,
            layer_blobs: descs.into_iter().map(|d| d.digest).collect(),
            tags,
        });
    }
    Ok(out)
}

fn load_oci_layout(txn: &Txn, ex: &Extracted) -> Result<Vec<Pending>> {
    let index: Index = ex.read_json("index.json")?;
    // Several index entries (one per tag) may name the same manifest.
    let mut by_manifest: Vec<(Descriptor, Vec<Reference>)> = Vec::new();
    for d in &index.manifests {
        let d = resolve_oci_entry(ex, d)?;
        let tag = d
            .annotations
            .as_ref()
            .and_then(|a| {
                a.get(ANN_CONTAINERD_NAME)
                    .or_else(|| a.get(ANN_REF_NAME).filter(|n| n.contains(['/', ':'])))
            })
            .map(|n| parse_tags(std::slice::from_ref(n)))
            .transpose()?
            .unwrap_or_default();
        match by_manifest.iter_mut().find(|(m, _)| m.digest == d.digest) {
            Some((_, tags)) => tags.extend(tag),
            None => by_manifest.push((d, tag)),
        }
    }
    if by_manifest.is_empty() {
        return Err(ImageError::CorruptArchive(
            "index.json lists no images".into(),
        ));
    }
    let mut out = Vec::new();
    for (desc, tags) in by_manifest {
        let raw = read_blob_checked(ex, &desc.digest)?;
        let m: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| ImageError::CorruptArchive(format!("manifest {}: {e}", desc.digest)))?;
        let layer_names: Vec<String> = m.layers.iter().map(|l| blob_name(&l.digest)).collect();
        let (config, _, _) = store_image_parts(
            txn,
            ex,
            &blob_name(&m.config.digest),
            &layer_names,
            Some(&m.layers),
        )?;
        if config != m.config.digest {
            return Err(ImageError::DigestMismatch {
                what: "image config".into(),
                expected: m.config.digest.to_string(),
                actual: config.to_string(),
            });
        }
        let manifest = txn.put_blob_bytes(&raw, Some(&desc.digest), "manifest")?;
        out.push(Pending {
            manifest_digest: manifest,
            manifest_media_type: m
                .media_type
                .clone()
                .unwrap_or_else(|| desc.media_type.clone()),
            config,
            layer_blobs: m.layers.iter().map(|l| l.digest.clone()).collect(),
            tags,
        });
    }
    Ok(out)
}

fn read_blob_checked(ex: &Extracted, d: &Digest) -> Result<Vec<u8>> {
    let p = ex.resolve(&blob_name(d))?;
    let raw = fs::read(&p).map_err(ImageError::io(format!("reading blob {d} from the archive")))?;
    let got = Digest::of_bytes(&raw);
    if got != *d {
        return Err(ImageError::DigestMismatch {
            what: format!("archive blob {d}"),
            expected: d.to_string(),
            actual: got.to_string(),
        });
    }
    Ok(raw)
}

/// An index entry that is itself an index (multi-platform) resolves to the host's platform.
fn resolve_oci_entry(ex: &Extracted, d: &Descriptor) -> Result<Descriptor> {
    if d.media_type != spec::MT_OCI_INDEX && d.media_type != spec::MT_DOCKER_MANIFEST_LIST {
        return Ok(d.clone());
    }
    let raw = read_blob_checked(ex, &d.digest)?;
    let nested: Index = serde_json::from_slice(&raw)
        .map_err(|e| ImageError::CorruptArchive(format!("index {}: {e}", d.digest)))?;
    let pick = spec::select_platform(&nested).ok_or_else(|| {
        let (os, arch) = spec::host_platform();
        ImageError::CorruptArchive(format!("index {} has no {os}/{arch} image", d.digest))
    })?;
    let mut out = pick.clone();
    if out.annotations.is_none() {
        out.annotations = d.annotations.clone();
    }
    Ok(out)
}
