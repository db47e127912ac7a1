//! The unpacked layers, as `layer_paths` hands them out, mount as an overlayfs that shows
//! the image: whiteouts hide lower files, opaque directories hide lower directory contents.
//! Needs root and overlayfs.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use sha2::{Digest as _, Sha256};
use shoal_runtime::image::ImageStore;

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A tar with the given entries: (name, Some(content)) for files, (name, None) for dirs.
fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        let mut h = tar::Header::new_gnu();
        match content {
            Some(c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, name, *c).expect("append");
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, name, &[][..]).expect("append");
            }
        }
    }
    b.into_inner().expect("tar")
}

/// A docker-archive holding one image made of `layers` (bottom first).
fn archive(tag: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha(l)).collect::<Vec<_>>()},
    })
    .to_string();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).expect("append");
    };
    add("config.json", config.as_bytes());
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let n = format!("l{i}/layer.tar");
        add(&n, l);
        names.push(n);
    }
    let manifest =
        serde_json::json!([{"Config": "config.json", "RepoTags": [tag], "Layers": names}]);
    add("manifest.json", manifest.to_string().as_bytes());
    b.into_inner().expect("tar")
}

/// Unmounts on drop, so a failing assertion does not leave the mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

#[test]
fn layers_mount_as_overlay_with_whiteouts_and_opaque_dirs() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root to mount overlayfs"
    );
    let base = layer(&[
        ("etc/", None),
        ("etc/keep", Some(b"keep")),
        ("etc/gone", Some(b"gone")),
        ("data/", None),
        ("data/old", Some(b"old")),
    ]);
    let top = layer(&[
        ("etc/", None),
        ("etc/.wh.gone", Some(b"")),
        ("data/", None),
        ("data/.wh..wh..opq", Some(b"")),
        ("data/new", Some(b"new")),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path().join("store")).expect("open");
    store
        .load(&mut Cursor::new(archive("ovl/test:1", &[base, top])))
        .expect("load");
    let lowers = store.layer_paths("ovl/test:1").expect("paths");
    assert_eq!(lowers.len(), 2);

    let (upper, work, merged) = (
        dir.path().join("upper"),
        dir.path().join("work"),
        dir.path().join("merged"),
    );
    for d in [&upper, &work, &merged] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let lowerdir = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .expect("mount overlay");
    let _guard = Mounted(merged.clone());

    let read = |p: &str| std::fs::read(merged.join(p)).ok();
    assert_eq!(read("etc/keep").as_deref(), Some(&b"keep"[..]));
    assert!(
        !merged.join("etc/gone").exists(),
        "whiteout hides the lower file"
    );
    assert!(
        !merged.join("data/old").exists(),
        "opaque dir hides lower contents"
    );
    assert_eq!(read("data/new").as_deref(), Some(&b"new"[..]));
    assert!(!Path::new(&merged.join("etc/.wh.gone")).exists());
}
