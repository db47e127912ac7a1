//! Layer unpacking: whiteouts, opaque dirs, compression, and refusal of path escapes.
//! Whiteouts and ownership need root (as the daemon runs).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};
use shoal_runtime::image::ImageError;
use shoal_runtime::image::unpack::{Compression, is_opaque, is_whiteout, unpack_layer};
use tar::EntryType;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "image_unpack tests need root (mknod for whiteouts, chown, trusted.* xattrs)"
    );
}

/// Appends an entry with the name and link name written raw, so tests can build the
/// malicious archives that tar::Builder refuses to produce.
fn raw(
    b: &mut tar::Builder<Vec<u8>>,
    kind: EntryType,
    name: &str,
    link: &str,
    data: &[u8],
    mode: u32,
) {
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().expect("gnu header");
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

fn tar_of(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().expect("finish tar")
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[test]
fn whiteouts_and_opaque_dirs() {
    require_root();
    let t = tar_of(|b| {
        raw(b, EntryType::Directory, "a/", "", b"", 0o755);
        raw(b, EntryType::Regular, "a/.wh.gone", "", b"", 0o644);
        raw(b, EntryType::Directory, "c/", "", b"", 0o750);
        raw(b, EntryType::Regular, "c/.wh..wh..opq", "", b"", 0o644);
        raw(b, EntryType::Regular, "c/keep", "", b"kept", 0o4755);
        raw(b, EntryType::Regular, "deep/er/.wh.x", "", b"", 0o644);
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let out = unpack_layer(&t[..], dir.path(), "test").expect("unpack");
    assert_eq!(out.diff_id.as_str(), sha(&t));
    assert_eq!(out.tar_size, t.len() as u64);
    assert_eq!(out.size, 4);
    assert_eq!(out.compression, Compression::None);
    assert!(
        is_whiteout(&dir.path().join("a/gone")),
        "whiteout is a 0:0 char device"
    );
    assert!(
        !dir.path().join("a/.wh.gone").exists(),
        "the .wh. file itself is not kept"
    );
    assert!(is_opaque(&dir.path().join("c")), "opaque xattr set");
    assert!(!is_opaque(&dir.path().join("a")));
    assert!(!dir.path().join("c/.wh..wh..opq").exists());
    assert!(is_whiteout(&dir.path().join("deep/er/x")));
    let keep = fs::metadata(dir.path().join("c/keep")).expect("keep");
    assert_eq!(
        keep.permissions().mode() & 0o7777,
        0o4755,
        "setuid mode kept"
    );
    assert_eq!(keep.mtime(), 1_600_000_000);
    let c = fs::metadata(dir.path().join("c")).expect("c");
    assert_eq!(c.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        c.mtime(),
        1_600_000_000,
        "dir mtime applied after its children"
    );
}

#[test]
fn gzip_and_zstd_give_the_plain_diff_id() {
    require_root();
    let t = tar_of(|b| {
        raw(b, EntryType::Directory, "bin/", "", b"", 0o755);
        raw(
            b,
            EntryType::Regular,
            "bin/tool",
            "",
            b"#!/bin/sh\necho hi\n",
            0o755,
        );
        raw(b, EntryType::Symlink, "bin/alias", "tool", b"", 0o777);
        raw(b, EntryType::Link, "bin/hard", "bin/tool", b"", 0o755);
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&t).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zs = zstd::encode_all(&t[..], 3).expect("zstd");
    for (data, kind) in [
        (&t, Compression::None),
        (&gz, Compression::Gzip),
        (&zs, Compression::Zstd),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = unpack_layer(&data[..], dir.path(), "test").expect("unpack");
        assert_eq!(out.compression, kind);
        assert_eq!(out.diff_id.as_str(), sha(&t), "{kind:?}");
        assert_eq!(
            fs::read(dir.path().join("bin/tool")).expect("tool"),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            fs::read_link(dir.path().join("bin/alias")).expect("link"),
            Path::new("tool")
        );
        let a = fs::metadata(dir.path().join("bin/tool")).expect("tool");
        let h = fs::metadata(dir.path().join("bin/hard")).expect("hard");
        assert_eq!(a.ino(), h.ino(), "hardlink shares the inode");
    }
}

fn expect_escape(t: &[u8], what: &str) {
    let outer = tempfile::tempdir().expect("tempdir");
    let root = outer.path().join("root");
    fs::create_dir(&root).expect("root");
    let victim = outer.path().join("victim");
    fs::create_dir(&victim).expect("victim");
    let err = unpack_layer(t, &root, "sha256:test").expect_err(what);
    assert!(
        matches!(err, ImageError::PathEscape { .. }),
        "{what}: {err}"
    );
    assert!(
        err.to_string().contains("escapes the root"),
        "{what}: {err}"
    );
    assert_eq!(
        fs::read_dir(&victim).expect("victim").count(),
        0,
        "{what}: nothing written outside"
    );
    assert!(
        !outer.path().join("x").exists(),
        "{what}: nothing written next to the root"
    );
}

#[test]
fn path_escapes_are_refused() {
    require_root();
    expect_escape(
        &tar_of(|b| raw(b, EntryType::Regular, "../x", "", b"evil", 0o644)),
        "dot-dot",
    );
    expect_escape(
        &tar_of(|b| raw(b, EntryType::Regular, "a/../../x", "", b"evil", 0o644)),
        "nested dot-dot",
    );
    expect_escape(
        &tar_of(|b| raw(b, EntryType::Regular, "/x", "", b"evil", 0o644)),
        "absolute path",
    );
    // A symlink to an absolute path is fine as a link, but writing through it is not.
    let outer = tempfile::tempdir().expect("tempdir");
    let victim = outer.path().join("victim");
    let t = tar_of(|b| {
        raw(
            b,
            EntryType::Symlink,
            "l",
            victim.to_str().expect("utf8"),
            b"",
            0o777,
        );
        raw(b, EntryType::Regular, "l/evil", "", b"evil", 0o644);
    });
    fs::create_dir(&victim).expect("victim");
    let root = outer.path().join("root");
    fs::create_dir(&root).expect("root");
    let err = unpack_layer(&t[..], &root, "sha256:test").expect_err("write through symlink");
    assert!(matches!(err, ImageError::PathEscape { .. }), "{err}");
    assert!(
        !victim.join("evil").exists(),
        "nothing written through the symlink"
    );
    expect_escape(
        &tar_of(|b| {
            raw(b, EntryType::Symlink, "up", "../victim", b"", 0o777);
            raw(b, EntryType::Regular, "up/evil", "", b"evil", 0o644);
        }),
        "relative symlink then write",
    );
    expect_escape(
        &tar_of(|b| raw(b, EntryType::Link, "h", "../victim/x", b"", 0o644)),
        "hardlink out of the root",
    );
    expect_escape(
        &tar_of(|b| {
            raw(b, EntryType::Symlink, "d", "/", b"", 0o777);
            raw(b, EntryType::Directory, "d/sub/", "", b"", 0o755);
        }),
        "mkdir through a symlink",
    );
}

#[test]
fn replaced_directory_does_not_redirect_metadata() {
    require_root();
    let outer = tempfile::tempdir().expect("tempdir");
    let victim = outer.path().join("victim");
    fs::create_dir_all(victim.join("b")).expect("victim");
    let before = fs::metadata(victim.join("b")).expect("b").mtime();
    let t = tar_of(|b| {
        raw(b, EntryType::Directory, "a/", "", b"", 0o755);
        raw(b, EntryType::Directory, "a/b/", "", b"", 0o700);
        // "a" becomes a symlink out of the root after "a/b" was made.
        raw(
            b,
            EntryType::Symlink,
            "a",
            victim.to_str().expect("utf8"),
            b"",
            0o777,
        );
    });
    let root = outer.path().join("root");
    fs::create_dir(&root).expect("root");
    unpack_layer(&t[..], &root, "test").expect("unpack");
    assert!(
        fs::symlink_metadata(root.join("a"))
            .expect("a")
            .file_type()
            .is_symlink()
    );
    let after = fs::metadata(victim.join("b")).expect("b");
    assert_eq!(after.mtime(), before, "no times set through the symlink");
    assert_ne!(after.permissions().mode() & 0o777, 0o700);
}

#[test]
fn links_themselves_may_point_anywhere() {
    require_root();
    let t = tar_of(|b| {
        raw(b, EntryType::Symlink, "abs", "/bin/busybox", b"", 0o777);
        raw(
            b,
            EntryType::Symlink,
            "rel",
            "../../../etc/passwd",
            b"",
            0o777,
        );
        // Replacing a symlink with a file must not write through it.
        raw(b, EntryType::Regular, "abs", "", b"plain", 0o644);
    });
    let dir = tempfile::tempdir().expect("tempdir");
    unpack_layer(&t[..], dir.path(), "test").expect("unpack");
    assert_eq!(
        fs::read_link(dir.path().join("rel")).expect("rel"),
        Path::new("../../../etc/passwd")
    );
    assert_eq!(fs::read(dir.path().join("abs")).expect("abs"), b"plain");
}

#[test]
fn corrupt_tar_is_an_error() {
    require_root();
    let t = tar_of(|b| raw(b, EntryType::Regular, "f", "", &[7u8; 4000], 0o644));
    let dir = tempfile::tempdir().expect("tempdir");
    let err = unpack_layer(&t[..1500], dir.path(), "sha256:cut").expect_err("truncated");
    assert!(matches!(err, ImageError::InvalidLayer { .. }), "{err}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&t).expect("gzip");
    let mut gz = gz.finish().expect("gzip");
    let n = gz.len();
    gz[n / 2] ^= 0xff;
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(unpack_layer(&gz[..], dir.path(), "sha256:flip").is_err());
}
