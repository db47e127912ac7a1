//! Push to and pull from a real registry (Debian's docker-registry on loopback, plain HTTP):
//! two images sharing a layer, digest pinning, missing tags, a registry that is down.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use shoal_runtime::image::local_registry::{LocalRegistry, REGISTRY_BINARY};
use shoal_runtime::image::{
    Digest, ImageError, ImageStore, Progress, Reference, RegistryClient, RegistryConfig,
};

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

fn require() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "image_registry tests need root (layer ownership)"
    );
    assert!(
        Path::new(REGISTRY_BINARY).is_file(),
        "{REGISTRY_BINARY} missing: apt-get install docker-registry"
    );
}

/// Collects progress events.
#[derive(Default)]
struct Events(Mutex<Vec<Progress>>);

impl Events {
    fn sink(&self) -> impl Fn(Progress) + Send + Sync + '_ {
        move |p| self.0.lock().expect("lock").push(p)
    }
    fn has(&self, status: &str) -> bool {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .any(|p| p.status.starts_with(status))
    }
    fn take(&self) -> Vec<Progress> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_shared_layer_pinning_and_errors() {
    require();
    let imgs = test_images();
    let regdir = tempfile::tempdir().expect("tempdir");
    let mut registry = LocalRegistry::start(regdir.path(), None).expect("start registry");
    let host = registry.domain();
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");

    // Source store: load the test images and tag them for the local registry.
    let src_dir = tempfile::tempdir().expect("tempdir");
    let src = ImageStore::open(src_dir.path()).expect("open");
    src.load(&mut File::open(imgs.path().join("both.tar")).expect("archive"))
        .expect("load");
    let bb_ref = Reference::parse(&format!("{host}/shoal-test/busybox:latest")).expect("ref");
    let web_ref = Reference::parse(&format!("{host}/shoal-test/httpd:v1")).expect("ref");
    src.tag("shoal-test/busybox", &bb_ref.to_string())
        .expect("tag");
    src.tag("shoal-test/httpd", &web_ref.to_string())
        .expect("tag");

    let ev = Events::default();
    let pushed_bb = client
        .push(&src, &bb_ref, None, &ev.sink())
        .await
        .expect("push busybox");
    assert!(ev.has("Pushed"), "{:?}", ev.take());
    ev.take();
    let pushed_web = client
        .push(&src, &web_ref, None, &ev.sink())
        .await
        .expect("push httpd");
    let events = ev.take();
    assert!(
        events
            .iter()
            .any(|p| p.status.starts_with("Mounted from shoal-test/busybox")),
        "shared base layer mounted, not uploaded again: {events:?}"
    );
    assert_eq!(pushed_web.tag, "v1");
    // Pushing again finds everything there.
    client
        .push(&src, &bb_ref, None, &ev.sink())
        .await
        .expect("push again");
    assert!(ev.take().iter().any(|p| p.status == "Layer already exists"));
    let src_bb = src.get(&bb_ref.to_string()).expect("busybox");
    assert!(
        src_bb
            .repo_digests
            .contains(&bb_ref.with_digest(pushed_bb.digest.clone()).familiar())
    );

    // Fresh store: pull both; the shared layer is fetched and unpacked once.
    let dst_dir = tempfile::tempdir().expect("tempdir");
    let dst = ImageStore::open(dst_dir.path()).expect("open");
    let web = client
        .pull(&dst, &web_ref, None, &ev.sink())
        .await
        .expect("pull httpd");
    let events = ev.take();
    for s in [
        "Pulling fs layer",
        "Downloading",
        "Download complete",
        "Pull complete",
        "Digest: ",
        "Status: Downloaded newer image",
    ] {
        assert!(
            events.iter().any(|p| p.status.starts_with(s)),
            "missing {s:?} in {events:?}"
        );
    }
    let bb = client
        .pull(&dst, &bb_ref, None, &ev.sink())
        .await
        .expect("pull busybox");
    let events = ev.take();
    assert!(
        events
            .iter()
            .any(|p| p.status == "Already exists"
                && p.id.as_deref() == Some(web_ref_layer0(&dst, &web))),
        "base layer reused: {events:?}"
    );
    assert_eq!(
        web.id,
        src.get("shoal-test/httpd").expect("src").id,
        "same image ID after the round trip"
    );
    assert_eq!(bb.diff_ids[0], web.diff_ids[0]);
    let du = dst.disk_usage().expect("du");
    assert_eq!(du.layer_count, 2, "shared layer unpacked once: {du:?}");
    assert_eq!(
        du.blob_count, 6,
        "2 layer blobs + 2 configs + 2 manifests: {du:?}"
    );
    assert!(
        dst.layer_paths(&web_ref.to_string()).expect("paths")[0]
            .join("www/index.html")
            .is_file()
    );
    assert_eq!(web.repo_tags, vec![web_ref.familiar()]);
    assert_eq!(
        web.repo_digests,
        vec![web_ref.with_digest(pushed_web.digest.clone()).familiar()]
    );

    // Pulling again: up to date.
    client
        .pull(&dst, &bb_ref, None, &ev.sink())
        .await
        .expect("pull again");
    assert!(
        ev.take()
            .iter()
            .any(|p| p.status.starts_with("Status: Image is up to date"))
    );

    // Digest pinning: the pushed digest pulls; an unknown one is not found.
    let pinned = bb_ref.with_digest(pushed_bb.digest.clone());
    let third_dir = tempfile::tempdir().expect("tempdir");
    let third = ImageStore::open(third_dir.path()).expect("open");
    let rec = client
        .pull(&third, &pinned, None, &ev.sink())
        .await
        .expect("pull by digest");
    assert_eq!(rec.id, bb.id);
    assert!(rec.repo_tags.is_empty(), "a digest pull adds no tag");
    assert_eq!(
        third.get(&pinned.to_string()).expect("lookup by digest").id,
        bb.id
    );
    // What `service create` does: resolve to name:tag@digest, then nodes pull and run that.
    let dist = client
        .inspect_distribution(&bb_ref, None)
        .await
        .expect("distribution inspect");
    assert_eq!(dist.descriptor.digest, pushed_bb.digest);
    assert_eq!(dist.platforms.len(), 1);
    assert_eq!(dist.platforms[0].os, "linux");
    let service_ref = Reference::parse(&format!("{}@{}", bb_ref, pushed_bb.digest)).expect("ref");
    assert_eq!(service_ref.tag(), Some("latest"));
    let fifth_dir = tempfile::tempdir().expect("tempdir");
    let fifth = ImageStore::open(fifth_dir.path()).expect("open");
    client
        .pull(&fifth, &service_ref, None, &ev.sink())
        .await
        .expect("pull name:tag@digest");
    assert_eq!(
        fifth
            .get(&service_ref.to_string())
            .expect("lookup name:tag@digest")
            .id,
        bb.id
    );
    assert_eq!(
        fifth
            .layer_paths(&service_ref.familiar())
            .expect("paths")
            .len(),
        1
    );
    let items = fifth
        .remove(&service_ref.to_string(), false, &Default::default())
        .expect("rm by digest");
    assert!(
        items
            .iter()
            .any(|i| i.deleted.as_deref() == Some(bb.id.as_str())),
        "{items:?}"
    );

    let wrong = bb_ref.with_digest(Digest::of_bytes(b"not a manifest"));
    let e = client
        .pull(&third, &wrong, None, &ev.sink())
        .await
        .expect_err("unknown digest");
    assert!(e.is_not_found(), "{e}");

    // Missing tag and missing repository: NotFound, nothing stored.
    let before = third.disk_usage().expect("du");
    for missing in [
        format!("{host}/shoal-test/busybox:nope"),
        format!("{host}/no/such-repo"),
    ] {
        let r = Reference::parse(&missing).expect("ref");
        let e = client
            .pull(&third, &r, None, &ev.sink())
            .await
            .expect_err("missing");
        assert!(e.is_not_found(), "{missing}: {e}");
        assert!(e.to_string().contains("not found"), "{e}");
    }
    assert_eq!(third.disk_usage().expect("du"), before);

    // Push of something that is not local.
    let e = client
        .push(
            &src,
            &Reference::parse(&format!("{host}/not/local:1")).expect("ref"),
            None,
            &ev.sink(),
        )
        .await
        .expect_err("not local");
    assert!(matches!(e, ImageError::NotFound(_)), "{e}");

    // Registry down: a clear error naming it, nothing half-written.
    registry.stop();
    let fourth_dir = tempfile::tempdir().expect("tempdir");
    let fourth = ImageStore::open(fourth_dir.path()).expect("open");
    let e = client
        .pull(&fourth, &bb_ref, None, &ev.sink())
        .await
        .expect_err("down");
    assert!(matches!(e, ImageError::RegistryUnreachable { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&host) && msg.contains("connection refused"),
        "{msg}"
    );
    let du = fourth.disk_usage().expect("du");
    assert_eq!((du.blob_count, du.layer_count), (0, 0));
    assert_eq!(
        std::fs::read_dir(fourth.root().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

/// Short ID of the bottom layer blob of an image, as progress events name it.
fn web_ref_layer0<'a>(_store: &ImageStore, rec: &'a shoal_runtime::image::ImageRecord) -> &'a str {
    rec.layer_blobs[0].short()
}

#[test]
fn insecure_registry_matching() {
    let client = RegistryClient::new(RegistryConfig {
        insecure_registries: vec![
            "myreg.lan:5000".into(),
            "10.20.0.0/16".into(),
            "plainhost".into(),
        ],
        ..RegistryConfig::default()
    })
    .expect("client");
    for (domain, insecure) in [
        ("127.0.0.1:5000", true),
        ("127.1.2.3", true),
        ("localhost:5000", true),
        ("[::1]:5000", true),
        ("myreg.lan:5000", true),
        ("myreg.lan:5001", false),
        ("10.20.3.4:5000", true),
        ("10.21.3.4:5000", false),
        ("plainhost:8080", true),
        ("docker.io", false),
        ("quay.io", false),
    ] {
        assert_eq!(client.is_insecure(domain), insecure, "{domain}");
    }
}
