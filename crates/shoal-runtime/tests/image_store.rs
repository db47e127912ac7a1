//! The image store: images sharing a layer store it once; tag, lookup, rm and prune with GC.
//! Uses the test images from deploy/images/build.sh (needs /bin/busybox and python3).

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use shoal_runtime::image::{ImageError, ImageStore};

/// Runs deploy/images/build.sh into a temp dir.
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

fn load(store: &ImageStore, tar: PathBuf) {
    let mut f = File::open(&tar).expect("open archive");
    store.load(&mut f).expect("load");
}

fn in_use(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn shared_layer_is_stored_once_and_gc_follows_references() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (layer ownership)"
    );
    let imgs = test_images();
    let root = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(root.path()).expect("open");
    load(&store, imgs.path().join("busybox.tar"));
    load(&store, imgs.path().join("httpd.tar"));

    let bb = store.get("shoal-test/busybox").expect("busybox");
    let web = store
        .get("docker.io/shoal-test/httpd:latest")
        .expect("httpd");
    assert_eq!(bb.repo_tags, vec!["shoal-test/busybox:latest".to_string()]);
    assert_eq!(bb.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(web.diff_ids.len(), 2);
    assert_eq!(
        web.diff_ids[0], bb.diff_ids[0],
        "httpd is built on the busybox layer"
    );

    let du = store.disk_usage().expect("du");
    assert_eq!(du.layer_count, 2, "base layer unpacked once: {du:?}");
    // 2 layers + 2 configs + 2 manifests
    assert_eq!(du.blob_count, 6, "{du:?}");

    let paths = store.layer_paths("shoal-test/httpd").expect("paths");
    assert_eq!(paths.len(), 2);
    assert!(paths[0].join("www/index.html").is_file(), "top layer first");
    assert!(paths[1].join("bin/busybox").is_file());
    assert_eq!(
        store.layer_paths("shoal-test/busybox").expect("paths"),
        vec![paths[1].clone()]
    );
    let link = fs::read_link(paths[1].join("bin/sh")).expect("sh link");
    assert_eq!(link, Path::new("busybox"));

    // Docker API shapes.
    let inspect = store.inspect("shoal-test/httpd").expect("inspect");
    assert_eq!(inspect.id, web.id.to_string());
    assert_eq!(inspect.root_fs.layers.len(), 2);
    assert_eq!(inspect.graph_driver.data["LowerDir"].split(':').count(), 2);
    let v = serde_json::to_value(&inspect).expect("json");
    assert_eq!(v["Config"]["Cmd"][0], "httpd");
    assert_eq!(v["RootFS"]["Type"], "layers");
    let summary = shoal_runtime::image::ImageSummary::from_record(&bb, -1);
    assert_eq!(summary.created, 1_700_000_000);

    // Lookup by ID, ID prefix, sha256: prefix.
    assert_eq!(store.get(bb.id.as_str()).expect("full id").id, bb.id);
    assert_eq!(store.get(&bb.id.hex()[..12]).expect("prefix").id, bb.id);
    assert_eq!(
        store
            .get(&format!("sha256:{}", &bb.id.hex()[..8]))
            .expect("sha256 prefix")
            .id,
        bb.id
    );
    let e = store.get("nope:latest").expect_err("missing");
    assert!(
        matches!(e, ImageError::NotFound(_)) && e.to_string() == "No such image: nope:latest",
        "{e}"
    );

    // Tagging moves a tag; the old owner keeps its others.
    store
        .tag("shoal-test/busybox", "127.0.0.1:5000/mine/bb:v1")
        .expect("tag");
    assert_eq!(
        store.get("127.0.0.1:5000/mine/bb:v1").expect("tagged").id,
        bb.id
    );
    assert!(
        store
            .tag(
                "shoal-test/busybox",
                "x@sha256:1111111111111111111111111111111111111111111111111111111111111111"
            )
            .is_err()
    );

    // rm by one tag only untags while another remains.
    let items = store
        .remove("127.0.0.1:5000/mine/bb:v1", false, &in_use(&[]))
        .expect("untag");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].untagged.as_deref(),
        Some("127.0.0.1:5000/mine/bb:v1")
    );
    assert!(store.get(bb.id.as_str()).is_ok());

    // In use by a container: refused without force; forced, the names go but not the image.
    let e = store
        .remove("shoal-test/busybox", false, &in_use(&[bb.id.as_str()]))
        .expect_err("in use");
    assert!(matches!(e, ImageError::Conflict(_)), "{e}");
    let items = store
        .remove("shoal-test/busybox", true, &in_use(&[bb.id.as_str()]))
        .expect("forced");
    assert!(items.iter().all(|i| i.deleted.is_none()), "{items:?}");
    assert!(
        store
            .get(bb.id.as_str())
            .expect("still there")
            .is_dangling()
    );
    let rep = store.prune(true, &in_use(&[bb.id.hex()])).expect("prune");
    assert!(
        rep.deleted.is_empty(),
        "in-use dangling image survives prune: {rep:?}"
    );

    // Prune the dangling busybox: the shared base layer stays for httpd.
    let rep = store.prune(true, &in_use(&[])).expect("prune");
    assert!(
        rep.deleted
            .iter()
            .any(|i| i.deleted.as_deref() == Some(bb.id.as_str())),
        "{rep:?}"
    );
    assert!(rep.space_reclaimed > 0);
    let du = store.disk_usage().expect("du");
    assert_eq!(du.layer_count, 2, "base layer still used by httpd: {du:?}");
    assert!(
        store
            .layer_paths("shoal-test/httpd")
            .expect("paths")
            .iter()
            .all(|p| p.is_dir())
    );

    // Last image gone: everything is collected.
    let items = store
        .remove("shoal-test/httpd:latest", false, &in_use(&[]))
        .expect("rm");
    assert!(
        items
            .iter()
            .any(|i| i.deleted.as_deref() == Some(web.id.as_str())),
        "{items:?}"
    );
    let du = store.disk_usage().expect("du");
    assert_eq!((du.blob_count, du.layer_count), (0, 0), "{du:?}");
    assert!(store.list().is_empty());

    // The index survives a reopen.
    load(&store, imgs.path().join("both.tar"));
    drop(store);
    let store = ImageStore::open(root.path()).expect("reopen");
    assert_eq!(store.list().len(), 2);
    assert_eq!(store.disk_usage().expect("du").layer_count, 2);
}

#[test]
fn import_rootfs_with_changes() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (layer ownership)"
    );
    let imgs = test_images();
    let root = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(root.path()).expect("open");
    load(&store, imgs.path().join("busybox.tar"));
    let bb = store.get("shoal-test/busybox").expect("busybox");
    let mut f = File::open(imgs.path().join("busybox-rootfs.tar")).expect("rootfs");
    let rec = store
        .import(
            &mut f,
            &[
                r#"CMD ["httpd","-f","-p","8080"]"#.to_string(),
                "ENV GREETING=hello".to_string(),
                "EXPOSE 8080".to_string(),
                "WORKDIR /www".to_string(),
            ],
            Some("imported/web:v1"),
        )
        .expect("import");
    assert_eq!(rec.repo_tags, vec!["imported/web:v1".to_string()]);
    assert_eq!(rec.diff_ids, bb.diff_ids, "same rootfs, same layer");
    assert_eq!(
        store.disk_usage().expect("du").layer_count,
        1,
        "layer shared with busybox"
    );
    let cfg = store.image_config("imported/web:v1").expect("config");
    assert_eq!(
        cfg.cmd,
        Some(vec![
            "httpd".into(),
            "-f".into(),
            "-p".into(),
            "8080".into()
        ])
    );
    assert_eq!(cfg.env, Some(vec!["GREETING=hello".to_string()]));
    assert_eq!(cfg.working_dir.as_deref(), Some("/www"));
    assert!(cfg.exposed_ports.expect("ports").contains_key("8080/tcp"));

    // A bad change is refused before anything is written.
    let before = store.disk_usage().expect("du");
    let mut f = File::open(imgs.path().join("busybox-rootfs.tar")).expect("rootfs");
    let e = store
        .import(&mut f, &["RUN true".to_string()], Some("x:y"))
        .expect_err("bad change");
    assert!(matches!(e, ImageError::InvalidChange { .. }), "{e}");
    assert_eq!(store.disk_usage().expect("du"), before);
    assert!(store.get("x:y").is_err());
}
