//! load/save round trips and refusal of bad archives without leaving anything behind.

use std::fs::{self, File};
use std::io::{Cursor, Read};
use std::path::Path;
use std::process::Command;

use shoal_runtime::image::{ImageError, ImageStore, SaveFormat};

fn test_images() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/images/build.sh");
    let st = Command::new("sh")
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run build.sh");
    assert!(
        st.status.success(),
        "build.sh failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    dir
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "image_archive tests need root (layer ownership)"
    );
}

/// Names of the entries of a tar.
fn entries(data: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(Cursor::new(data));
    ar.entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

fn read_entry(data: &[u8], name: &str) -> Vec<u8> {
    let mut ar = tar::Archive::new(Cursor::new(data));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path().expect("path").to_str() == Some(name) {
            let mut v = Vec::new();
            e.read_to_end(&mut v).expect("read");
            return v;
        }
    }
    panic!("{name} not in archive");
}

/// Asserts the store holds nothing at all: no images, blobs, layers or temp files.
fn assert_empty(store: &ImageStore, what: &str) {
    assert!(store.list().is_empty(), "{what}: images left");
    for d in ["blobs/sha256", "layers", "tmp"] {
        let n = fs::read_dir(store.root().join(d))
            .expect("read dir")
            .count();
        assert_eq!(n, 0, "{what}: {d} not empty");
    }
}

#[test]
fn save_and_load_round_trip() {
    require_root();
    let imgs = test_images();
    let a = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(a.path()).expect("open");
    let loaded = store
        .load(&mut File::open(imgs.path().join("both.tar")).expect("open"))
        .expect("load");
    assert_eq!(loaded.len(), 2);
    let bb = store.get("shoal-test/busybox:latest").expect("busybox");
    let web = store.get("shoal-test/httpd:latest").expect("httpd");

    for format in [SaveFormat::Docker, SaveFormat::Oci] {
        let mut out = Vec::new();
        store
            .save(
                &[
                    "shoal-test/busybox".into(),
                    "shoal-test/httpd:latest".into(),
                ],
                &mut out,
                format,
            )
            .expect("save");
        let names = entries(&out);
        let base = format!("blobs/sha256/{}", bb.diff_ids[0].hex());
        assert_eq!(
            names.iter().filter(|n| **n == base).count(),
            1,
            "shared layer written once"
        );
        assert!(
            names.contains(&"index.json".to_string()) && names.contains(&"oci-layout".to_string())
        );
        assert_eq!(
            names.contains(&"manifest.json".to_string()),
            format == SaveFormat::Docker
        );
        if format == SaveFormat::Docker {
            let m: serde_json::Value =
                serde_json::from_slice(&read_entry(&out, "manifest.json")).expect("json");
            assert_eq!(m[0]["RepoTags"][0], "shoal-test/busybox:latest");
            assert_eq!(m[1]["Layers"].as_array().map(Vec::len), Some(2));
        }

        let b = tempfile::tempdir().expect("tempdir");
        let store2 = ImageStore::open(b.path()).expect("open");
        let loaded = store2
            .load(&mut Cursor::new(&out))
            .expect("load saved archive");
        assert_eq!(loaded.len(), 2, "{format:?}");
        let web2 = store2
            .get("shoal-test/httpd:latest")
            .expect("httpd after round trip");
        assert_eq!(web2.id, web.id, "same config, same image ID");
        assert_eq!(web2.diff_ids, web.diff_ids);
        assert_eq!(web2.config, web.config);
        let p = store2.layer_paths("shoal-test/httpd").expect("paths");
        assert!(
            fs::read_to_string(p[0].join("www/index.html"))
                .expect("index")
                .contains("shoal-test-httpd-ok")
        );
        assert_eq!(store2.disk_usage().expect("du").layer_count, 2);
    }

    // Saved by ID: no tags travel.
    let mut out = Vec::new();
    store
        .save(&[bb.id.to_string()], &mut out, SaveFormat::Docker)
        .expect("save by id");
    let c = tempfile::tempdir().expect("tempdir");
    let store3 = ImageStore::open(c.path()).expect("open");
    let loaded = store3.load(&mut Cursor::new(&out)).expect("load");
    assert_eq!(loaded[0].id, bb.id);
    assert!(loaded[0].tags.is_empty());

    let e = store
        .save(&["nope".into()], &mut Vec::new(), SaveFormat::Docker)
        .expect_err("missing image");
    assert!(e.is_not_found(), "{e}");
}

/// Rewrites one entry of a tar archive.
fn patch(data: &[u8], f: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut ar = tar::Archive::new(Cursor::new(data));
    let mut b = tar::Builder::new(Vec::new());
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        let mut v = Vec::new();
        e.read_to_end(&mut v).expect("read");
        let Some(v) = f(&name, v) else { continue };
        let mut h = e.header().clone();
        h.set_size(v.len() as u64);
        h.set_cksum();
        b.append(&h, &v[..]).expect("append");
    }
    b.into_inner().expect("finish")
}

#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    require_root();
    let imgs = test_images();
    let good = fs::read(imgs.path().join("both.tar")).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            b"this is not a tar archive at all, just text".repeat(40),
        ),
        ("truncated", good[..good.len() / 2].to_vec()),
        (
            "empty tar",
            tar::Builder::new(Vec::new()).into_inner().expect("tar"),
        ),
        (
            "missing layer",
            patch(&good, |n, v| {
                let m: serde_json::Value =
                    serde_json::from_slice(&read_entry(&good, "manifest.json")).ok()?;
                let layer = m[1]["Layers"][1].as_str()?.to_string();
                (n != layer).then_some(v)
            }),
        ),
        (
            // Flip a byte of the www layer: its diff_id no longer matches the config.
            "layer digest mismatch",
            patch(&good, |n, mut v| {
                let marker = b"shoal-test-httpd-ok";
                if n.starts_with("blobs/")
                    && let Some(i) = v.windows(marker.len()).position(|w| w == marker)
                {
                    v[i] ^= 0x20;
                }
                Some(v)
            }),
        ),
        (
            "bad manifest.json",
            patch(&good, |n, v| {
                Some(if n == "manifest.json" {
                    b"{not json".to_vec()
                } else {
                    v
                })
            }),
        ),
    ];
    for (what, data) in cases {
        let e = store.load(&mut Cursor::new(&data)).expect_err(what);
        assert!(
            matches!(
                e,
                ImageError::CorruptArchive(_)
                    | ImageError::DigestMismatch { .. }
                    | ImageError::InvalidLayer { .. }
            ),
            "{what}: {e}"
        );
        assert_empty(&store, what);
    }

    // A layer that tries to escape: refused, nothing left behind.
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().expect("gnu").name[..8].copy_from_slice(b"../../x\0");
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    evil.append(&h, &b"evil"[..]).expect("append");
    let evil = evil.into_inner().expect("tar");
    let e = store
        .import(&mut Cursor::new(&evil), &[], Some("evil:1"))
        .expect_err("escape");
    assert!(matches!(e, ImageError::PathEscape { .. }), "{e}");
    assert!(e.to_string().contains("../../x"), "{e}");
    assert_empty(&store, "escaping import");
}

#[test]
fn legacy_docker_archive_with_symlinked_layers_gzipped() {
    require_root();
    let imgs = test_images();
    let good = fs::read(imgs.path().join("both.tar")).expect("read");
    let m: serde_json::Value =
        serde_json::from_slice(&read_entry(&good, "manifest.json")).expect("manifest.json");
    let s = |v: &serde_json::Value| v.as_str().expect("string").to_string();
    let (bb_cfg, web_cfg) = (s(&m[0]["Config"]), s(&m[1]["Config"]));
    let (base, www) = (s(&m[1]["Layers"][0]), s(&m[1]["Layers"][1]));

    // Pre-25 layout: <id>.json configs, <dir>/layer.tar layers, a repeated layer as a symlink.
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).expect("append");
    };
    add("bbconfig.json", &read_entry(&good, &bb_cfg));
    add("webconfig.json", &read_entry(&good, &web_cfg));
    add("l1/layer.tar", &read_entry(&good, &base));
    add("l1/VERSION", b"1.0");
    add("l2/layer.tar", &read_entry(&good, &www));
    add(
        "manifest.json",
        serde_json::json!([
            {"Config": "bbconfig.json", "RepoTags": ["legacy/bb:1"], "Layers": ["l1/layer.tar"]},
            {"Config": "webconfig.json", "RepoTags": ["legacy/web:1", "legacy/web:latest"], "Layers": ["l3/layer.tar", "l2/layer.tar"]},
        ])
        .to_string()
        .as_bytes(),
    );
    add("repositories", br#"{"legacy/bb":{"1":"l1"}}"#);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "l3", "l1").expect("symlink");
    let legacy = b.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &legacy).expect("gzip");
    let legacy_gz = gz.finish().expect("gzip");

    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");
    let loaded = store
        .load(&mut Cursor::new(&legacy_gz))
        .expect("load legacy gzip archive");
    assert_eq!(loaded.len(), 2);
    assert_eq!(
        loaded[1].tags,
        vec!["legacy/web:1".to_string(), "legacy/web:latest".to_string()]
    );
    let web = store.get("legacy/web").expect("web");
    assert_eq!(web.id.as_str(), web_cfg.replace("blobs/sha256/", "sha256:"));
    assert_eq!(
        store.get("legacy/bb:1").expect("bb").diff_ids[0],
        web.diff_ids[0]
    );
    assert_eq!(store.disk_usage().expect("du").layer_count, 2);
}
