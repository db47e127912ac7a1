//! Registry client against a scripted registry on loopback: bearer-token and basic auth
//! (accepted and refused), manifest lists resolved to the host platform, and blobs or
//! manifests whose bytes do not match their digest (refused, nothing left behind).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use shoal_runtime::image::registry::no_progress;
use shoal_runtime::image::spec::host_platform;
use shoal_runtime::image::{
    Credentials, ImageError, ImageStore, Reference, RegistryClient, RegistryConfig,
};

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    Bearer,
    Basic,
}

struct Fake {
    auth: Auth,
    port: u16,
    /// "repo:reference" -> (body, media type)
    manifests: HashMap<String, (Vec<u8>, String)>,
    /// "repo:digest" -> body
    blobs: HashMap<String, Vec<u8>>,
    /// Delay before answering a blob request.
    blob_delay_ms: u64,
}

const USER: &str = "alice";
const PASS: &str = "s3cret";
const TOKEN: &str = "tok-for-alice";

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    )
}

fn reply(status: StatusCode, body: Vec<u8>, headers: &[(&str, String)]) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn registry_error(status: StatusCode, code: &str, msg: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": msg}]});
    reply(
        status,
        body.to_string().into_bytes(),
        &[("content-type", "application/json".into())],
    )
}

async fn handle(State(f): State<Arc<Fake>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if path == "/token" {
        return if authz == basic() {
            reply(
                StatusCode::OK,
                serde_json::json!({"token": TOKEN}).to_string().into_bytes(),
                &[],
            )
        } else {
            registry_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials")
        };
    }
    let ok = match f.auth {
        Auth::Bearer => authz == format!("Bearer {TOKEN}"),
        Auth::Basic => authz == basic(),
    };
    if !ok {
        let ch = match f.auth {
            Auth::Bearer => format!(
                r#"Bearer realm="http://127.0.0.1:{}/token",service="fake-registry""#,
                f.port
            ),
            Auth::Basic => r#"Basic realm="fake-registry""#.to_string(),
        };
        let mut r = registry_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        if let Ok(v) = HeaderValue::from_str(&ch) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return r;
    }
    if path == "/v2/" {
        return reply(StatusCode::OK, b"{}".to_vec(), &[]);
    }
    let rest = path.trim_start_matches("/v2/");
    if let Some((repo, r)) = rest.split_once("/manifests/") {
        return match f.manifests.get(&format!("{repo}:{r}")) {
            Some((body, mt)) => reply(
                StatusCode::OK,
                body.clone(),
                &[("content-type", mt.clone())],
            ),
            None => registry_error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            ),
        };
    }
    if let Some((repo, d)) = rest.split_once("/blobs/") {
        tokio::time::sleep(std::time::Duration::from_millis(f.blob_delay_ms)).await;
        return match f.blobs.get(&format!("{repo}:{d}")) {
            Some(body) => reply(
                StatusCode::OK,
                body.clone(),
                &[("content-type", "application/octet-stream".into())],
            ),
            None => registry_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown"),
        };
    }
    registry_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "not found")
}

/// A gzip layer with one file, its config and schema2 manifest, plus an index that lists an
/// arm/v5 entry before the host's.
struct TestImage {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    index: Vec<u8>,
}

fn test_image() -> TestImage {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"hello from the fake registry\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", &data[..])
        .expect("append");
    let plain = b.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).expect("gz");
    let layer = gz.finish().expect("gz");
    let (os, arch) = host_platform();
    let config = serde_json::json!({
        "architecture": arch, "os": os, "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(&plain)]},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": sha(&layer), "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": sha(b"other platform"), "size": 14,
             "platform": {"architecture": "arm", "os": "linux", "variant": "v5"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": sha(&manifest), "size": manifest.len(),
             "platform": {"architecture": arch, "os": os}},
        ],
    })
    .to_string()
    .into_bytes();
    TestImage {
        layer,
        config,
        manifest,
        index,
    }
}

/// Serves the scripted registry on a free loopback port until the test ends.
async fn serve(auth: Auth, fill: impl FnOnce(&mut Fake, &TestImage)) -> (String, TestImage) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let img = test_image();
    let mut f = Fake {
        auth,
        port,
        manifests: HashMap::new(),
        blobs: HashMap::new(),
        blob_delay_ms: 0,
    };
    fill(&mut f, &img);
    let app = axum::Router::new().fallback(handle).with_state(Arc::new(f));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("127.0.0.1:{port}"), img)
}

fn publish(f: &mut Fake, repo: &str, img: &TestImage) {
    let list_mt = "application/vnd.docker.distribution.manifest.list.v2+json".to_string();
    let mt = "application/vnd.docker.distribution.manifest.v2+json".to_string();
    f.manifests.insert(
        format!("{repo}:latest"),
        (img.index.clone(), list_mt.clone()),
    );
    f.manifests.insert(
        format!("{repo}:{}", sha(&img.index)),
        (img.index.clone(), list_mt),
    );
    f.manifests.insert(
        format!("{repo}:{}", sha(&img.manifest)),
        (img.manifest.clone(), mt),
    );
    f.blobs
        .insert(format!("{repo}:{}", sha(&img.layer)), img.layer.clone());
    f.blobs
        .insert(format!("{repo}:{}", sha(&img.config)), img.config.clone());
}

fn creds(user: &str, pass: &str) -> Credentials {
    Credentials {
        username: user.into(),
        password: pass.into(),
        ..Credentials::default()
    }
}

fn assert_store_empty(store: &ImageStore) {
    let du = store.disk_usage().expect("du");
    assert_eq!((du.blob_count, du.layer_count), (0, 0), "{du:?}");
    assert!(store.list().is_empty());
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_auth_and_manifest_list() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (layer ownership)"
    );
    let (host, img) = serve(Auth::Bearer, |f, img| publish(f, "team/app", img)).await;
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let r = Reference::parse(&format!("{host}/team/app")).expect("ref");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");

    let e = client
        .pull(&store, &r, None, &no_progress)
        .await
        .expect_err("no credentials");
    assert!(matches!(e, ImageError::AuthDenied { .. }), "{e}");
    let e = client
        .pull(&store, &r, Some(&creds(USER, "wrong")), &no_progress)
        .await
        .expect_err("bad password");
    assert!(matches!(e, ImageError::AuthDenied { .. }), "{e}");
    assert!(
        e.to_string().contains("access denied") && e.to_string().contains("team/app"),
        "{e}"
    );
    assert_store_empty(&store);

    let rec = client
        .pull(&store, &r, Some(&creds(USER, PASS)), &no_progress)
        .await
        .expect("pull");
    assert_eq!(rec.id.as_str(), sha(&img.config));
    assert_eq!(
        rec.manifest_digest.as_str(),
        sha(&img.manifest),
        "host platform picked from the list"
    );
    assert_eq!(
        rec.repo_digests,
        vec![format!("{host}/team/app@{}", sha(&img.index))],
        "repo digest names the list"
    );
    assert_eq!(
        rec.config.cmd,
        Some(vec!["cat".to_string(), "/hello.txt".to_string()])
    );
    let paths = store.layer_paths(&r.to_string()).expect("paths");
    assert_eq!(
        std::fs::read(paths[0].join("hello.txt")).expect("file"),
        b"hello from the fake registry\n"
    );

    let dist = client
        .inspect_distribution(&r, Some(&creds(USER, PASS)))
        .await
        .expect("inspect");
    assert_eq!(dist.descriptor.digest.as_str(), sha(&img.index));
    assert_eq!(
        dist.descriptor.media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(dist.platforms.len(), 2);

    // Pinned to the list digest.
    let pinned = Reference::parse(&format!("{host}/team/app@{}", sha(&img.index))).expect("ref");
    let dir2 = tempfile::tempdir().expect("tempdir");
    let store2 = ImageStore::open(dir2.path()).expect("open");
    let rec2 = client
        .pull(&store2, &pinned, Some(&creds(USER, PASS)), &no_progress)
        .await
        .expect("pinned pull");
    assert_eq!(rec2.id, rec.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (layer ownership)"
    );
    let (host, _) = serve(Auth::Basic, |f, img| publish(f, "app", img)).await;
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let r = Reference::parse(&format!("{host}/app:latest")).expect("ref");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");
    let e = client
        .pull(&store, &r, None, &no_progress)
        .await
        .expect_err("no credentials");
    assert!(matches!(e, ImageError::AuthDenied { .. }), "{e}");
    client
        .pull(&store, &r, Some(&creds(USER, PASS)), &no_progress)
        .await
        .expect("pull with basic auth");
    assert_eq!(store.list().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_content_is_refused_and_nothing_kept() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (layer ownership)"
    );
    let (host, img) = serve(Auth::Basic, |f, img| {
        publish(f, "bad", img);
        // Same size, different bytes under the layer's digest.
        let mut evil = img.layer.clone();
        let n = evil.len();
        evil[n - 10] ^= 0xff;
        f.blobs.insert(format!("bad:{}", sha(&img.layer)), evil);
        // A manifest served under a digest it does not have.
        publish(f, "liar", img);
        f.manifests.insert(
            format!("liar:{}", sha(&img.index)),
            (
                img.manifest.clone(),
                "application/vnd.docker.distribution.manifest.v2+json".into(),
            ),
        );
    })
    .await;
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let c = creds(USER, PASS);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");

    let e = client
        .pull(
            &store,
            &Reference::parse(&format!("{host}/bad")).expect("ref"),
            Some(&c),
            &no_progress,
        )
        .await
        .expect_err("tampered layer");
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&sha(&img.layer)), "{e}");
    assert_store_empty(&store);

    let pinned = Reference::parse(&format!("{host}/liar@{}", sha(&img.index))).expect("ref");
    let e = client
        .pull(&store, &pinned, Some(&c), &no_progress)
        .await
        .expect_err("manifest digest");
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert_store_empty(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_for_insecure_registries() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (layer ownership)"
    );
    let (host, _) = serve(Auth::Basic, |f, img| publish(f, "app", img)).await;
    let r = Reference::parse(&format!("{host}/app")).expect("ref");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");
    let strict = RegistryConfig {
        loopback_insecure: false,
        ..RegistryConfig::default()
    };

    // Not listed as insecure: HTTPS only, which a plain-HTTP registry cannot answer.
    let client = RegistryClient::new(strict.clone()).expect("client");
    assert!(!client.is_insecure(&host));
    let e = client
        .pull(&store, &r, Some(&creds(USER, PASS)), &no_progress)
        .await
        .expect_err("https only");
    assert!(matches!(e, ImageError::RegistryUnreachable { .. }), "{e}");
    assert!(e.to_string().contains("insecure-registries"), "{e}");
    assert_store_empty(&store);

    // Listed in the daemon config: plain HTTP is used.
    let client = RegistryClient::new(RegistryConfig {
        insecure_registries: vec![host.clone()],
        ..strict
    })
    .expect("client");
    client
        .pull(&store, &r, Some(&creds(USER, PASS)), &no_progress)
        .await
        .expect("pull over http");
    assert_eq!(store.list().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image_share_everything() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (layer ownership)"
    );
    let (host, img) = serve(Auth::Basic, |f, img| publish(f, "app", img)).await;
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let r = Reference::parse(&format!("{host}/app")).expect("ref");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");
    let c = creds(USER, PASS);
    let pulls = (0..4).map(|_| client.pull(&store, &r, Some(&c), &no_progress));
    for res in futures::future::join_all(pulls).await {
        assert_eq!(res.expect("pull").id.as_str(), sha(&img.config));
    }
    let du = store.disk_usage().expect("du");
    assert_eq!((du.blob_count, du.layer_count), (3, 1), "{du:?}");
    assert_eq!(store.list().len(), 1);
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_during_a_pull_keeps_its_objects() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (layer ownership)"
    );
    let (host, img) = serve(Auth::Basic, |f, img| {
        publish(f, "app", img);
        f.blob_delay_ms = 300;
    })
    .await;
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let r = Reference::parse(&format!("{host}/app")).expect("ref");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");
    let c = creds(USER, PASS);
    let pull = client.pull(&store, &r, Some(&c), &no_progress);
    let prune = async {
        // Between the config (first blob) and the layer (second blob).
        tokio::time::sleep(std::time::Duration::from_millis(450)).await;
        store.prune(false, &Default::default()).expect("prune")
    };
    let (rec, report) = tokio::join!(pull, prune);
    let rec = rec.expect("pull survives a concurrent prune");
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(rec.id.as_str(), sha(&img.config));
    assert!(
        store.layer_paths(&r.to_string()).expect("paths")[0]
            .join("hello.txt")
            .is_file()
    );
    assert_eq!(store.disk_usage().expect("du").blob_count, 3);
}
