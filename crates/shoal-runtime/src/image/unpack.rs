//! Unpacking one layer tar (plain, gzip or zstd) into its own directory, in the form
//! overlayfs reads: OCI whiteouts become 0:0 character devices, opaque markers become the
//! `trusted.overlay.opaque` xattr. Entries that would land or write outside the root are
//! refused, and the diff_id (sha256 of the uncompressed tar) is computed on the way.

use std::collections::HashSet;
use std::ffi::{CString, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::digest::{Digest, HashingReader};
use super::error::{ImageError, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Compression of a layer blob, recognised by its first bytes (media types lie).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// OCI media type of a layer blob with this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => super::spec::MT_OCI_LAYER,
            Compression::Gzip => super::spec::MT_OCI_LAYER_GZIP,
            Compression::Zstd => super::spec::MT_OCI_LAYER_ZSTD,
        }
    }
}

/// Wraps a reader so that it yields the uncompressed tar, whatever the compression.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut br = BufReader::with_capacity(64 * 1024, reader);
    let kind = Compression::detect(br.fill_buf()?);
    let out: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
    };
    Ok((kind, out))
}

/// What unpacking a layer found out.
#[derive(Clone, Debug)]
pub struct UnpackedLayer {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub tar_size: u64,
    /// Sum of the regular file sizes (what Docker reports as the layer size).
    pub size: u64,
    pub compression: Compression,
}

/// Extracts a layer into `dest` (which must exist and be empty; the caller renames it into
/// place once this returns Ok). `label` names the layer in errors.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path, label: &str) -> Result<UnpackedLayer> {
    let corrupt = |e: io::Error| ImageError::InvalidLayer {
        layer: label.to_string(),
        reason: format!("reading tar: {e}"),
    };
    let (compression, plain) = decompress(reader).map_err(corrupt)?;
    let mut archive = tar::Archive::new(HashingReader::new(plain));
    let mut ctx = Ctx {
        root: dest.to_path_buf(),
        label: label.to_string(),
        dirs: Vec::new(),
        size: 0,
        is_root: nix::unistd::geteuid().is_root(),
        opaque: HashSet::new(),
    };
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        ctx.entry(&mut entry)?;
    }
    // Directory times last: creating children would have changed them. A later entry may
    // have replaced a directory (or one of its parents) by a symlink: only real directories
    // reached through real directories are touched.
    for (path, mtime) in ctx.dirs.iter().rev() {
        if !real_dir_chain(&ctx.root, path) {
            continue;
        }
        set_times(path, *mtime).map_err(ImageError::io(format!(
            "layer {label}: setting times of {}",
            path.display()
        )))?;
    }
    let (diff_id, tar_size) = archive.into_inner().finish().map_err(corrupt)?;
    Ok(UnpackedLayer {
        diff_id,
        tar_size,
        size: ctx.size,
        compression,
    })
}

struct Ctx {
    root: PathBuf,
    label: String,
    /// Directories created, with the mtime to apply at the end.
    dirs: Vec<(PathBuf, i64)>,
    size: u64,
    is_root: bool,
    opaque: HashSet<PathBuf>,
}

impl Ctx {
    fn escape(&self, entry: &Path, reason: impl Into<String>) -> ImageError {
        ImageError::PathEscape {
            layer: self.label.clone(),
            entry: entry.display().to_string(),
            reason: reason.into(),
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> ImageError {
        ImageError::InvalidLayer {
            layer: self.label.clone(),
            reason: reason.into(),
        }
    }

    fn ioerr(&self, what: &str, p: &Path) -> impl FnOnce(io::Error) -> ImageError + use<> {
        ImageError::io(format!("layer {}: {what} {}", self.label, p.display()))
    }

    /// Lexically cleans an archive path: no absolute paths, `..` only while it stays inside.
    fn clean(&self, raw: &Path) -> Result<Vec<OsString>> {
        let mut out: Vec<OsString> = Vec::new();
        for c in raw.components() {
            match c {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(self.escape(raw, "absolute path"));
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    if out.pop().is_none() {
                        return Err(self.escape(raw, "\"..\" leaves the layer root"));
                    }
                }
                Component::Normal(n) => out.push(n.to_os_string()),
            }
        }
        Ok(out)
    }

    /// Walks the parents of `comps` under the root, creating missing directories and refusing
    /// to pass through a symlink (which could point anywhere) or a non-directory.
    fn prepare_parents(
        &mut self,
        entry: &Path,
        comps: &[OsString],
        create: bool,
    ) -> Result<PathBuf> {
        let mut cur = self.root.clone();
        let parents = comps.len().saturating_sub(1);
        for c in &comps[..parents] {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    let rel = cur.strip_prefix(&self.root).unwrap_or(&cur).to_path_buf();
                    return Err(self.escape(
                        entry,
                        format!(
                            "its parent {} is a symlink, refusing to write through it",
                            rel.display()
                        ),
                    ));
                }
                Ok(_) => {
                    return Err(self.invalid(format!(
                        "entry {}: parent {} is not a directory",
                        entry.display(),
                        cur.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&cur).map_err(self.ioerr("creating directory", &cur))?;
                    fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))
                        .map_err(self.ioerr("chmod", &cur))?;
                }
                Err(e) => return Err(self.ioerr("inspecting", &cur)(e)),
            }
        }
        Ok(cur)
    }

    /// Removes whatever is at `p` unless it is a directory and `keep_dir` is set.
    fn clear(&self, p: &Path, keep_dir: bool) -> Result<bool> {
        match fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_dir() => {
                if keep_dir {
                    return Ok(true);
                }
                fs::remove_dir_all(p).map_err(self.ioerr("replacing", p))?;
            }
            Ok(_) => fs::remove_file(p).map_err(self.ioerr("replacing", p))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.ioerr("inspecting", p)(e)),
        }
        Ok(false)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw: PathBuf = entry
            .path()
            .map_err(|e| self.invalid(format!("bad entry name: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let comps = self.clean(&raw)?;
        let Some(name) = comps.last().cloned() else {
            // "./": the layer root itself; only its metadata can be set.
            if kind.is_dir() {
                let root = self.root.clone();
                self.apply_meta(entry, &root, true)?;
            }
            return Ok(());
        };
        let name_str = name.to_string_lossy();
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            let parent = self.prepare_parents(&raw, &comps, true)?;
            if name_str == OPAQUE_MARKER {
                set_xattr(&parent, OVERLAY_OPAQUE_XATTR, b"y")
                    .map_err(self.ioerr("marking opaque (needs root)", &parent))?;
                self.opaque.insert(parent);
                return Ok(());
            }
            if hidden.starts_with(WHITEOUT_PREFIX) {
                // Other aufs metadata (.wh..wh.plnk and such) has no overlay meaning.
                return Ok(());
            }
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(self.invalid(format!("bad whiteout entry {}", raw.display())));
            }
            let target = parent.join(hidden);
            self.clear(&target, false)?;
            mknod(&target, libc::S_IFCHR, 0, 0)
                .map_err(self.ioerr("creating whiteout (needs CAP_MKNOD)", &target))?;
            return Ok(());
        }

        let parent = self.prepare_parents(&raw, &comps, true)?;
        let path = parent.join(&name);
        match kind {
            tar::EntryType::Directory => {
                let existed = self.clear(&path, true)?;
                if !existed {
                    fs::create_dir(&path).map_err(self.ioerr("creating directory", &path))?;
                }
                self.apply_meta(entry, &path, true)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear(&path, false)?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(self.ioerr("creating", &path))?;
                let n = io::copy(entry, &mut f)
                    .map_err(|e| self.invalid(format!("reading data of {}: {e}", raw.display())))?;
                self.size += n;
                drop(f);
                self.apply_meta(entry, &path, false)?;
            }
            tar::EntryType::Symlink => {
                // A symlink may point anywhere: it is only followed inside the container.
                let target = entry
                    .link_name()
                    .map_err(|e| self.invalid(format!("bad link name: {e}")))?
                    .ok_or_else(|| {
                        self.invalid(format!("symlink {} has no target", raw.display()))
                    })?
                    .into_owned();
                self.clear(&path, false)?;
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(self.ioerr("creating symlink", &path))?;
                self.apply_meta(entry, &path, false)?;
            }
            tar::EntryType::Link => {
                let target_raw = entry
                    .link_name()
                    .map_err(|e| self.invalid(format!("bad link name: {e}")))?
                    .ok_or_else(|| {
                        self.invalid(format!("hardlink {} has no target", raw.display()))
                    })?
                    .into_owned();
                let tcomps = self.clean(&target_raw).map_err(|_| {
                    self.escape(
                        &raw,
                        format!(
                            "hardlink target {} is outside the layer",
                            target_raw.display()
                        ),
                    )
                })?;
                if tcomps.is_empty() {
                    return Err(self.escape(&raw, "hardlink to the layer root"));
                }
                let tparent = self.prepare_parents(&target_raw, &tcomps, false)?;
                let tpath = tparent.join(&tcomps[tcomps.len() - 1]);
                match fs::symlink_metadata(&tpath) {
                    Ok(m) if !m.is_dir() => {}
                    Ok(_) => {
                        return Err(
                            self.invalid(format!("hardlink {} to a directory", raw.display()))
                        );
                    }
                    Err(_) => {
                        return Err(self.invalid(format!(
                            "hardlink {} to {} which is not in the layer",
                            raw.display(),
                            target_raw.display()
                        )));
                    }
                }
                if tpath == path {
                    return Ok(());
                }
                self.clear(&path, false)?;
                // linkat without AT_SYMLINK_FOLLOW: links the symlink itself, never its target.
                fs::hard_link(&tpath, &path).map_err(self.ioerr("creating hardlink", &path))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.clear(&path, false)?;
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                match mknod(&path, fmt, major, minor) {
                    Ok(()) => self.apply_meta(entry, &path, false)?,
                    // Without CAP_MKNOD (rootless) device nodes are skipped, as Docker does.
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) && !self.is_root => {
                        tracing::warn!(layer = %self.label, entry = %raw.display(), "skipping device node: no CAP_MKNOD");
                    }
                    Err(e) => return Err(self.ioerr("creating device node", &path)(e)),
                }
            }
            other => {
                tracing::warn!(layer = %self.label, entry = %raw.display(), kind = ?other, "skipping unsupported tar entry type");
            }
        }
        Ok(())
    }

    /// Owner, mode, xattrs and (for non-directories) mtime. Mode after chown, since chown
    /// clears setuid bits.
    fn apply_meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        is_dir: bool,
    ) -> Result<()> {
        let h = entry.header();
        let uid = h.uid().unwrap_or(0) as u32;
        let gid = h.gid().unwrap_or(0) as u32;
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mtime = h.mtime().unwrap_or(0) as i64;
        let is_link = h.entry_type().is_symlink();
        if let Err(e) = lchown(path, uid, gid)
            && (self.is_root || e.raw_os_error() != Some(libc::EPERM))
        {
            return Err(self.ioerr("chown", path)(e));
        }
        if !is_link {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(self.ioerr("chmod", path))?;
        }
        let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                if let Ok(key) = ext.key()
                    && let Some(name) = key.strip_prefix("SCHILY.xattr.")
                {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        for (name, value) in xattrs {
            // Overlay's own attributes would let an image rewire the mount (redirects,
            // metacopy); only this unpacker sets them.
            if name.starts_with("trusted.overlay.") {
                tracing::warn!(layer = %self.label, path = %path.display(), xattr = %name, "ignoring overlay xattr from image");
                continue;
            }
            match set_xattr(path, &name, &value) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
                    tracing::warn!(layer = %self.label, path = %path.display(), xattr = %name, "xattr not supported here; skipped");
                }
                Err(e) => return Err(self.ioerr(&format!("setting xattr {name} on"), path)(e)),
            }
        }
        if is_dir {
            self.dirs.push((path.to_path_buf(), mtime));
        } else {
            set_times(path, mtime).map_err(self.ioerr("setting times of", path))?;
        }
        Ok(())
    }
}

/// True when `path` and every directory between `root` and it are directories, not symlinks.
fn real_dir_chain(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return false,
        }
    }
    true
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: c is a valid NUL-terminated path.
    check(unsafe { libc::lchown(c.as_ptr(), uid, gid) })
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(p)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: pointers valid for the given lengths; lsetxattr does not follow symlinks.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// Reads one xattr of a path without following symlinks (None when absent).
pub fn get_xattr(p: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let c = cpath(p)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: buffer valid for its length.
    let rc = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENODATA) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    buf.truncate(rc as usize);
    Ok(Some(buf))
}

fn mknod(p: &Path, fmt: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(p)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: valid path; fmt is one of the S_IF* node kinds.
    check(unsafe { libc::mknod(c.as_ptr(), fmt | 0o600, dev) })
}

fn set_times(p: &Path, mtime: i64) -> io::Result<()> {
    let c = cpath(p)?;
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: valid path and two timespecs; AT_SYMLINK_NOFOLLOW sets the link's own times.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// True when the path is an overlayfs whiteout (character device 0:0).
pub fn is_whiteout(p: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

/// True when the directory carries the overlayfs opaque marker.
pub fn is_opaque(p: &Path) -> bool {
    matches!(get_xattr(p, OVERLAY_OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}
