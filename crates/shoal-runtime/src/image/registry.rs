//! A small Docker Registry HTTP API v2 / OCI distribution client: pull (Docker schema2, OCI
//! manifests, manifest lists and indexes resolved to the host platform) and push (blob
//! existence check, cross-repository mount, monolithic upload, manifest PUT). Token auth
//! (`WWW-Authenticate: Bearer`) and basic auth; plain HTTP for insecure registries
//! (configured, or on loopback as Docker does). Every blob is verified against its digest
//! while it streams into the store.

use std::collections::HashSet;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::reference::Reference;
use super::spec::{self, Descriptor, ImageConfigFile, ManifestDoc, Platform};
use super::store::{ImageRecord, ImageStore, Txn};

/// Registry settings from the daemon config.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// `host[:port]` names or CIDRs (`10.0.0.0/8`) of registries spoken to over plain HTTP
    /// (after trying HTTPS without certificate checks), like Docker's `insecure-registries`.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Treat loopback registries (127.0.0.0/8, ::1, localhost) as insecure, as Docker does.
    #[serde(default = "default_true")]
    pub loopback_insecure: bool,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Longest silence on a connection before the transfer is abandoned.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_secs: u64,
    /// Layers downloaded or uploaded at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_transfers: usize,
}

fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_read_timeout() -> u64 {
    60
}
fn default_concurrency() -> usize {
    3
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure_registries: Vec::new(),
            loopback_insecure: true,
            connect_timeout_secs: default_connect_timeout(),
            read_timeout_secs: default_read_timeout(),
            max_concurrent_transfers: default_concurrency(),
        }
    }
}

/// Credentials as carried by Docker's `X-Registry-Auth` header.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// OAuth refresh token (from `docker login` against token servers); used as password.
    #[serde(default, rename = "identitytoken")]
    pub identity_token: Option<String>,
    /// A bearer token to send as is.
    #[serde(default, rename = "registrytoken")]
    pub registry_token: Option<String>,
}

impl Credentials {
    /// Decodes Docker's `X-Registry-Auth` header (base64url JSON, padded or not). An empty
    /// header or `{}` means no credentials.
    pub fn from_registry_auth_header(value: &str) -> Result<Option<Credentials>> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        let v = value.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let raw = URL_SAFE
            .decode(v)
            .or_else(|_| URL_SAFE_NO_PAD.decode(v))
            .or_else(|_| STANDARD.decode(v))
            .map_err(|e| ImageError::InvalidImage(format!("X-Registry-Auth is not base64: {e}")))?;
        let c: Credentials = serde_json::from_slice(&raw).map_err(|e| {
            ImageError::InvalidImage(format!("X-Registry-Auth is not valid JSON: {e}"))
        })?;
        let empty = c.username.is_empty()
            && c.password.is_empty()
            && c.identity_token.as_deref().unwrap_or("").is_empty()
            && c.registry_token.as_deref().unwrap_or("").is_empty();
        Ok(if empty { None } else { Some(c) })
    }
}

/// One progress event; the API turns these into Docker's JSON progress stream
/// (`{"status":…,"id":…,"progressDetail":{"current":…,"total":…}}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Short layer ID (12 hex), the tag, or None for whole-operation messages.
    pub id: Option<String>,
    /// "Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete",
    /// "Extracting", "Pull complete", "Already exists", "Preparing", "Pushing", "Pushed",
    /// "Layer already exists", "Mounted from …", "Digest: …", "Status: …".
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

impl Progress {
    fn msg(id: Option<&str>, status: impl Into<String>) -> Progress {
        Progress {
            id: id.map(str::to_string),
            status: status.into(),
            current: None,
            total: None,
        }
    }
    fn bytes(id: &str, status: &str, current: u64, total: u64) -> Progress {
        Progress {
            id: Some(id.to_string()),
            status: status.to_string(),
            current: Some(current),
            total: Some(total),
        }
    }
}

/// Receives progress events.
pub type ProgressFn<'a> = dyn Fn(Progress) + Send + Sync + 'a;

/// A progress sink that drops everything.
pub fn no_progress(_: Progress) {}

/// What a push produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushResult {
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
}

/// `GET /distribution/{name}/json`: what the registry has under a reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistributionInspect {
    /// The manifest (or index) the reference resolves to.
    #[serde(rename = "Descriptor")]
    pub descriptor: Descriptor,
    #[serde(rename = "Platforms")]
    pub platforms: Vec<Platform>,
}

/// Largest image config read into memory by `inspect_distribution`.
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// Emit "Downloading"/"Pushing" about every this many bytes.
const PROGRESS_STEP: u64 = 512 * 1024;

/// Talks to registries; cheap to clone, share one per daemon.
#[derive(Clone)]
pub struct RegistryClient {
    cfg: RegistryConfig,
    verified: reqwest::Client,
    unverified: reqwest::Client,
}

impl RegistryClient {
    pub fn new(cfg: RegistryConfig) -> Result<RegistryClient> {
        // reqwest is built without a default crypto provider; ring is the workspace's choice.
        // Fails harmlessly when one is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs.max(1)))
                .read_timeout(Duration::from_secs(cfg.read_timeout_secs.max(1)))
                .user_agent(concat!("shoal/", env!("CARGO_PKG_VERSION")))
                .danger_accept_invalid_certs(insecure)
                .build()
                .map_err(|e| ImageError::Unsupported(format!("cannot build HTTP client: {e}")))
        };
        Ok(RegistryClient {
            verified: build(false)?,
            unverified: build(true)?,
            cfg,
        })
    }

    /// Whether `domain` (`host[:port]`) may be spoken to without verified TLS: loopback
    /// always (as Docker), plus the configured names and CIDRs.
    pub fn is_insecure(&self, domain: &str) -> bool {
        let host = host_of(domain);
        let ip: Option<IpAddr> = host.parse().ok();
        if self.cfg.loopback_insecure
            && (host == "localhost" || ip.is_some_and(|i| i.is_loopback()))
        {
            return true;
        }
        self.cfg.insecure_registries.iter().any(|e| {
            let e = e
                .trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if e == domain || e == host {
                return true;
            }
            match (e.parse::<ipnet::IpNet>(), ip) {
                (Ok(net), Some(ip)) => net.contains(&ip),
                _ => false,
            }
        })
    }

    /// `docker pull`: fetches the image into `store` and returns its record. A reference
    /// with a digest is verified against it; a tag is (re)pointed at the pulled image.
    pub async fn pull(
        &self,
        store: &ImageStore,
        reference: &Reference,
        creds: Option<&Credentials>,
        progress: &ProgressFn<'_>,
    ) -> Result<ImageRecord> {
        let sess = Session::open(self, reference, creds, "pull").await?;
        let selector = reference.manifest_selector();
        progress(Progress::msg(
            Some(reference.tag().unwrap_or(&selector)),
            format!("Pulling from {}", reference.familiar_name()),
        ));
        let (top_raw, top_digest, top_ct) = sess.get_manifest(reference, &selector).await?;
        if let Some(pinned) = reference.digest()
            && *pinned != top_digest
        {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {}", reference.familiar()),
                expected: pinned.to_string(),
                actual: top_digest.to_string(),
            });
        }
        let (raw, manifest_digest, manifest) =
            match ManifestDoc::parse(&top_raw, top_ct.as_deref())? {
                ManifestDoc::Image(m) => (top_raw, top_digest.clone(), *m),
                ManifestDoc::Index(idx) => {
                    let pick = spec::select_platform(&idx).ok_or_else(|| {
                        let (os, arch) = spec::host_platform();
                        ImageError::RemoteNotFound {
                            reference: reference.familiar(),
                            detail: format!(
                                "no matching manifest for {os}/{arch} in the manifest list entries"
                            ),
                        }
                    })?;
                    let (raw, d, ct) = sess.get_manifest(reference, pick.digest.as_str()).await?;
                    if d != pick.digest {
                        return Err(ImageError::DigestMismatch {
                            what: format!("platform manifest of {}", reference.familiar()),
                            expected: pick.digest.to_string(),
                            actual: d.to_string(),
                        });
                    }
                    match ManifestDoc::parse(&raw, ct.as_deref())? {
                        ManifestDoc::Image(m) => (raw, d, *m),
                        ManifestDoc::Index(_) => {
                            return Err(ImageError::InvalidImage(format!(
                                "{}: index entry {d} is another index",
                                reference.familiar()
                            )));
                        }
                    }
                }
            };
        for l in &manifest.layers {
            if !spec::is_layer_media_type(&l.media_type) {
                return Err(ImageError::Unsupported(format!(
                    "layer {} of {} has media type {}",
                    l.digest,
                    reference.familiar(),
                    l.media_type
                )));
            }
        }
        let existed = store.get(&reference.to_string()).ok();
        let txn = Arc::new(store.txn());

        // Config first: it names the diff_ids every layer is checked against.
        let config_desc = &manifest.config;
        if !txn.reuse_blob(&config_desc.digest) {
            sess.download_blob(&txn, config_desc, "image config", None, progress)
                .await?;
        }
        let config = ImageConfigFile::parse(&store.read_blob(&config_desc.digest)?)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::InvalidImage(format!(
                "{}: config lists {} layers, manifest {}",
                reference.familiar(),
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let mut seen = HashSet::new();
        let jobs: Vec<(Descriptor, Digest)> = manifest
            .layers
            .iter()
            .cloned()
            .zip(config.rootfs.diff_ids.iter().cloned())
            .filter(|(l, _)| seen.insert(l.digest.clone()))
            .collect();
        for (l, _) in &jobs {
            progress(Progress::msg(Some(l.digest.short()), "Pulling fs layer"));
        }
        let downloaded = Arc::new(Mutex::new(false));
        futures::stream::iter(jobs)
            .map(|(layer, diff_id)| {
                let txn = txn.clone();
                let sess = &sess;
                let downloaded = downloaded.clone();
                async move {
                    let id = layer.digest.short().to_string();
                    let have_layer = txn.reuse_layer(&diff_id).is_some();
                    let have_blob = txn.reuse_blob(&layer.digest);
                    if have_layer && have_blob {
                        progress(Progress::msg(Some(&id), "Already exists"));
                        return Ok(());
                    }
                    if !have_blob {
                        let what = format!("layer {}", layer.digest);
                        sess.download_blob(&txn, &layer, &what, Some(&id), progress)
                            .await?;
                        progress(Progress::msg(Some(&id), "Download complete"));
                        *downloaded.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    }
                    if !have_layer {
                        progress(Progress::msg(Some(&id), "Extracting"));
                        let blob = layer.digest.clone();
                        let label = layer.digest.to_string();
                        let t = txn.clone();
                        tokio::task::spawn_blocking(move || {
                            t.ensure_layer(&blob, Some(&diff_id), &label)
                        })
                        .await
                        .map_err(|e| {
                            ImageError::InvalidImage(format!("unpack task failed: {e}"))
                        })??;
                        *downloaded.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    }
                    progress(Progress::msg(Some(&id), "Pull complete"));
                    Ok::<(), ImageError>(())
                }
            })
            .buffer_unordered(self.cfg.max_concurrent_transfers.max(1))
            .try_collect::<Vec<()>>()
            .await?;

        txn.put_blob_bytes(&raw, Some(&manifest_digest), "manifest")?;
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| spec::MT_OCI_MANIFEST.to_string());
        let layer_blobs: Vec<Digest> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
        let tags: Vec<Reference> = match (reference.tag(), reference.digest()) {
            (Some(_), None) => vec![reference.clone()],
            _ => Vec::new(),
        };
        let repo_digest = reference.with_digest(top_digest.clone());
        let rec = txn.commit_image(
            &manifest_digest,
            &media_type,
            &config_desc.digest,
            &layer_blobs,
            &tags,
            Some(&repo_digest),
        )?;
        txn.finish();
        progress(Progress::msg(None, format!("Digest: {top_digest}")));
        let fresh = *downloaded.lock().unwrap_or_else(|p| p.into_inner());
        let up_to_date = !fresh && existed.is_some_and(|e| e.id == rec.id);
        progress(Progress::msg(
            None,
            if up_to_date {
                format!("Status: Image is up to date for {}", reference.familiar())
            } else {
                format!(
                    "Status: Downloaded newer image for {}",
                    reference.familiar()
                )
            },
        ));
        Ok(rec)
    }

    /// `docker manifest inspect`-like lookup used by `service create` to pin images: the
    /// descriptor of the manifest (or index) `reference` names and the platforms it serves.
    /// Nothing is stored.
    pub async fn inspect_distribution(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
    ) -> Result<DistributionInspect> {
        let sess = Session::open(self, reference, creds, "pull").await?;
        let selector = reference.manifest_selector();
        let (raw, digest, ct) = sess.get_manifest(reference, &selector).await?;
        if let Some(pinned) = reference.digest()
            && *pinned != digest
        {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {}", reference.familiar()),
                expected: pinned.to_string(),
                actual: digest.to_string(),
            });
        }
        let (media_type, platforms) = match ManifestDoc::parse(&raw, ct.as_deref())? {
            ManifestDoc::Index(idx) => (
                idx.media_type
                    .clone()
                    .unwrap_or_else(|| spec::MT_OCI_INDEX.to_string()),
                idx.manifests
                    .iter()
                    .filter_map(|d| d.platform.clone())
                    .collect(),
            ),
            ManifestDoc::Image(m) => {
                let cfg = sess.get_blob_bytes(&m.config).await?;
                let cfg = ImageConfigFile::parse(&cfg)?;
                let platform = Platform {
                    architecture: cfg.architecture,
                    os: cfg.os,
                    variant: cfg.variant,
                    os_version: None,
                };
                (
                    m.media_type
                        .clone()
                        .unwrap_or_else(|| spec::MT_OCI_MANIFEST.to_string()),
                    vec![platform],
                )
            }
        };
        Ok(DistributionInspect {
            descriptor: Descriptor::new(&media_type, digest, raw.len() as u64),
            platforms,
        })
    }

    /// `docker push`: uploads the local image named `reference` (a tag) to its registry.
    pub async fn push(
        &self,
        store: &ImageStore,
        reference: &Reference,
        creds: Option<&Credentials>,
        progress: &ProgressFn<'_>,
    ) -> Result<PushResult> {
        if reference.digest().is_some() {
            return Err(ImageError::InvalidReference(format!(
                "cannot push a digest reference: {}",
                reference.familiar()
            )));
        }
        let tag = reference
            .tag()
            .unwrap_or(super::reference::DEFAULT_TAG)
            .to_string();
        let rec = store.get(&reference.to_string())?;
        let (manifest, raw) = store.manifest(&reference.to_string())?;
        let sess = Session::open(self, reference, creds, "pull,push").await?;
        progress(Progress::msg(
            None,
            format!("The push refers to repository [{}]", reference.name()),
        ));
        // Repositories on the same registry that local images holding a blob came from or
        // went to: the registry can mount the blob from there instead of receiving it again.
        let all = store.list();
        let mount_sources = |d: &Digest| -> Vec<String> {
            let mut v: Vec<String> = all
                .iter()
                .filter(|r| r.layer_blobs.contains(d) || r.id == *d)
                .flat_map(|r| r.repo_tags.iter().chain(r.repo_digests.iter()))
                .filter_map(|t| Reference::parse_name_only(t).ok())
                .filter(|r| {
                    r.domain() == reference.domain() && r.repository() != reference.repository()
                })
                .map(|r| r.repository().to_string())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        for l in manifest.layers.iter().rev() {
            progress(Progress::msg(Some(l.digest.short()), "Preparing"));
        }
        let blobs: Vec<(Descriptor, bool, Vec<String>)> = manifest
            .layers
            .iter()
            .map(|l| (l.clone(), true))
            .chain(std::iter::once((manifest.config.clone(), false)))
            .map(|(d, is_layer)| {
                let from = mount_sources(&d.digest);
                (d, is_layer, from)
            })
            .collect();
        futures::stream::iter(blobs)
            .map(|(desc, is_layer, from)| {
                let sess = &sess;
                async move {
                    sess.push_blob(store, &desc, is_layer, &from, progress)
                        .await
                }
            })
            .buffer_unordered(self.cfg.max_concurrent_transfers.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| rec.manifest_media_type.clone());
        let digest = sess.put_manifest(&tag, &media_type, raw.clone()).await?;
        store.add_repo_digest(&rec.id, &reference.with_digest(digest.clone()))?;
        progress(Progress::msg(
            None,
            format!("{tag}: digest: {digest} size: {}", raw.len()),
        ));
        Ok(PushResult {
            tag,
            digest,
            size: raw.len() as u64,
        })
    }
}

/// Host part of `host[:port]` / `[v6]:port`.
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.rsplit_once(':').map(|(h, _)| h).unwrap_or(domain)
}

/// The innermost cause of an HTTP error, phrased plainly ("connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    if let Some(io) = cur.downcast_ref::<std::io::Error>() {
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "connection timed out".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
            std::io::ErrorKind::HostUnreachable => "no route to host".into(),
            std::io::ErrorKind::NetworkUnreachable => "network unreachable".into(),
            _ => io.to_string(),
        };
    }
    if e.to_string().contains("timed out") || cur.to_string().contains("timed out") {
        return "timed out".into();
    }
    cur.to_string()
}

/// Registry error bodies: `{"errors":[{"code":…,"message":…}]}`.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) if !b.errors.is_empty() => b
            .errors
            .iter()
            .map(|i| {
                if i.message.is_empty() {
                    i.code.to_lowercase()
                } else {
                    i.message.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => {
            let s = String::from_utf8_lossy(body);
            let s = s.trim();
            if s.is_empty() {
                "(empty response)".into()
            } else {
                s.chars().take(300).collect()
            }
        }
    }
}

/// Parses `Bearer realm="…",service="…",scope="…"` / `Basic realm="…"`.
fn parse_challenge(h: &str) -> Option<(String, Vec<(String, String)>)> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.push((k, v));
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some((scheme.to_ascii_lowercase(), params))
}

struct Session {
    http: reqwest::Client,
    registry: String,
    base: String,
    repo: String,
    creds: Option<Credentials>,
    actions: &'static str,
    /// Value of the Authorization header once authenticated.
    auth: tokio::sync::Mutex<Option<String>>,
}

impl Session {
    async fn open(
        client: &RegistryClient,
        r: &Reference,
        creds: Option<&Credentials>,
        actions: &'static str,
    ) -> Result<Session> {
        let registry = r.domain().to_string();
        let endpoint = r.registry_endpoint();
        let insecure = client.is_insecure(&registry);
        let attempts: &[(&str, bool)] = if insecure {
            &[("https", true), ("http", true)]
        } else {
            &[("https", false)]
        };
        let mut last_err = String::new();
        for (scheme, unverified) in attempts {
            let http = if *unverified {
                client.unverified.clone()
            } else {
                client.verified.clone()
            };
            let base = format!("{scheme}://{endpoint}");
            let resp = http
                .get(format!("{base}/v2/"))
                .timeout(Duration::from_secs(
                    client.cfg.connect_timeout_secs.max(1) + 5,
                ))
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    last_err = root_cause(&e);
                    tracing::debug!(registry = %registry, %scheme, error = %last_err, "registry ping failed");
                    continue;
                }
            };
            let sess = Session {
                http,
                registry: registry.clone(),
                base,
                repo: r.repository().to_string(),
                creds: creds.cloned(),
                actions,
                auth: tokio::sync::Mutex::new(None),
            };
            match resp.status() {
                s if s.is_success() => {}
                StatusCode::UNAUTHORIZED => {
                    let ch = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    sess.authenticate(ch.as_deref()).await?;
                }
                s => {
                    let body = resp.bytes().await.unwrap_or_default();
                    return Err(ImageError::Registry {
                        registry,
                        method: "GET",
                        url: format!("{}/v2/", sess.base),
                        status: s.as_u16(),
                        message: format!("not a v2 registry: {}", error_message(&body)),
                    });
                }
            }
            return Ok(sess);
        }
        let network_down = [
            "connection refused",
            "timed out",
            "no route",
            "unreachable",
            "reset",
        ]
        .iter()
        .any(|s| last_err.contains(s));
        if !insecure && !network_down {
            last_err = format!(
                "HTTPS failed ({last_err}); if it serves plain HTTP, list it in insecure-registries in the daemon config"
            );
        }
        Err(ImageError::RegistryUnreachable {
            registry,
            reason: last_err,
        })
    }

    fn denied(&self, reason: impl Into<String>) -> ImageError {
        ImageError::AuthDenied {
            action: if self.actions.contains("push") {
                "push"
            } else {
                "pull"
            },
            registry: self.registry.clone(),
            repository: self.repo.clone(),
            reason: reason.into(),
        }
    }

    fn basic_header(&self) -> Option<String> {
        let c = self.creds.as_ref()?;
        let password = c
            .identity_token
            .clone()
            .unwrap_or_else(|| c.password.clone());
        if c.username.is_empty() && password.is_empty() {
            return None;
        }
        let raw = format!("{}:{}", c.username, password);
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    /// Answers a challenge: fetches a bearer token for this repository, or prepares basic auth.
    async fn authenticate(&self, challenge: Option<&str>) -> Result<()> {
        if let Some(tok) = self.creds.as_ref().and_then(|c| c.registry_token.clone()) {
            *self.auth.lock().await = Some(format!("Bearer {tok}"));
            return Ok(());
        }
        let Some((scheme, params)) = challenge.and_then(parse_challenge) else {
            return Err(
                self.denied("registry requires authentication but sent no usable challenge")
            );
        };
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.clone())
        };
        match scheme.as_str() {
            "basic" => {
                let h = self
                    .basic_header()
                    .ok_or_else(|| self.denied("no basic auth credentials"))?;
                *self.auth.lock().await = Some(h);
                Ok(())
            }
            "bearer" => {
                let realm =
                    param("realm").ok_or_else(|| self.denied("bearer challenge without realm"))?;
                let scope = format!("repository:{}:{}", self.repo, self.actions);
                let mut q: Vec<(&str, String)> = vec![("scope", scope)];
                if let Some(s) = param("service") {
                    q.push(("service", s));
                }
                let mut req = self.http.get(&realm).query(&q);
                if let Some(h) = self.basic_header() {
                    req = req.header(AUTHORIZATION, h);
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| ImageError::RegistryUnreachable {
                        registry: format!("{} (token server {realm})", self.registry),
                        reason: root_cause(&e),
                    })?;
                let status = resp.status();
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| self.denied(format!("reading token: {e}")))?;
                if !status.is_success() {
                    return Err(self.denied(format!(
                        "token server said {status}: {}",
                        error_message(&body)
                    )));
                }
                #[derive(Deserialize)]
                struct Tok {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Tok = serde_json::from_slice(&body)
                    .map_err(|e| self.denied(format!("token server reply is not a token: {e}")))?;
                let t = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| self.denied("token server returned no token"))?;
                *self.auth.lock().await = Some(format!("Bearer {t}"));
                Ok(())
            }
            other => Err(self.denied(format!("unsupported auth scheme {other:?}"))),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{}", self.base, self.repo, path)
    }

    fn unreachable(&self, e: reqwest::Error) -> ImageError {
        ImageError::RegistryUnreachable {
            registry: self.registry.clone(),
            reason: root_cause(&e),
        }
    }

    /// Sends a body-less request with auth; on 401 answers the new challenge and retries once.
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
    ) -> Result<reqwest::Response> {
        for attempt in 0..2 {
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(a) = self.auth.lock().await.clone() {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| self.unreachable(e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let ch = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                self.authenticate(ch.as_deref()).await?;
                continue;
            }
            return Ok(resp);
        }
        Err(self.denied("authentication was not accepted"))
    }

    async fn fail(&self, method: &'static str, url: &str, resp: reqwest::Response) -> ImageError {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let message = error_message(&body);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return self.denied(format!("{status}: {message}"));
        }
        ImageError::Registry {
            registry: self.registry.clone(),
            method,
            url: url.to_string(),
            status: status.as_u16(),
            message,
        }
    }

    /// GET a manifest; returns its bytes, their digest (verified against the
    /// Docker-Content-Digest header when there is one) and the content type.
    async fn get_manifest(
        &self,
        r: &Reference,
        selector: &str,
    ) -> Result<(Vec<u8>, Digest, Option<String>)> {
        let url = self.url(&format!("manifests/{selector}"));
        let mut h = HeaderMap::new();
        if let Ok(v) = spec::MANIFEST_ACCEPT.join(", ").parse() {
            h.insert(ACCEPT, v);
        }
        let resp = self.send(Method::GET, &url, h).await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                let body = resp.bytes().await.unwrap_or_default();
                return Err(ImageError::RemoteNotFound {
                    reference: r.familiar(),
                    detail: error_message(&body),
                });
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let body = resp.bytes().await.unwrap_or_default();
                return Err(self.denied(format!(
                    "repository does not exist or may require 'docker login': {}",
                    error_message(&body)
                )));
            }
            _ => return Err(self.fail("GET", &url, resp).await),
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_vec();
        let digest = Digest::of_bytes(&body);
        if let Some(hd) = header_digest
            && hd.starts_with("sha256:")
            && hd != digest.as_str()
        {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest {selector} of {}", r.familiar()),
                expected: hd,
                actual: digest.to_string(),
            });
        }
        Ok((body, digest, ct))
    }

    /// Streams a blob into the store, verifying size and digest; `id` names it in progress.
    async fn download_blob(
        &self,
        txn: &Txn,
        desc: &Descriptor,
        what: &str,
        id: Option<&str>,
        progress: &ProgressFn<'_>,
    ) -> Result<()> {
        let url = self.url(&format!("blobs/{}", desc.digest));
        let resp = self.send(Method::GET, &url, HeaderMap::new()).await?;
        if !resp.status().is_success() {
            return Err(self.fail("GET", &url, resp).await);
        }
        let total = resp.content_length().unwrap_or(desc.size);
        let mut w = txn.blob_writer()?;
        let mut stream = resp.bytes_stream();
        let mut last = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(e))?;
            w.write_all(&chunk)
                .map_err(ImageError::io(format!("writing {what}")))?;
            if w.written() > desc.size {
                return Err(ImageError::DigestMismatch {
                    what: format!("{what} (larger than the {} bytes announced)", desc.size),
                    expected: desc.digest.to_string(),
                    actual: "(oversized)".into(),
                });
            }
            if let Some(id) = id
                && (w.written() - last >= PROGRESS_STEP || w.written() == total)
            {
                last = w.written();
                progress(Progress::bytes(id, "Downloading", last, total));
            }
        }
        if let Some(id) = id {
            progress(Progress::msg(Some(id), "Verifying Checksum"));
        }
        txn.commit_blob(w, Some(&desc.digest), what)?;
        Ok(())
    }

    /// A small blob (a config) into memory, verified.
    async fn get_blob_bytes(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_CONFIG_BYTES {
            return Err(ImageError::InvalidImage(format!(
                "config blob {} is {} bytes (limit {MAX_CONFIG_BYTES})",
                desc.digest, desc.size
            )));
        }
        let url = self.url(&format!("blobs/{}", desc.digest));
        let resp = self.send(Method::GET, &url, HeaderMap::new()).await?;
        if !resp.status().is_success() {
            return Err(self.fail("GET", &url, resp).await);
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.map_err(|e| self.unreachable(e))?);
            if body.len() as u64 > desc.size {
                break;
            }
        }
        let got = Digest::of_bytes(&body);
        if got != desc.digest {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {}", desc.digest),
                expected: desc.digest.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(body)
    }

    async fn blob_exists(&self, d: &Digest) -> Result<bool> {
        let url = self.url(&format!("blobs/{d}"));
        let resp = self.send(Method::HEAD, &url, HeaderMap::new()).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail("HEAD", &url, resp).await),
        }
    }

    /// Makes a Location header absolute and adds `digest=`.
    fn upload_url(&self, location: &str, d: &Digest) -> Result<String> {
        let base = reqwest::Url::parse(&self.base).map_err(|e| {
            ImageError::InvalidImage(format!("bad registry URL {}: {e}", self.base))
        })?;
        let mut u = base.join(location).map_err(|e| {
            ImageError::InvalidImage(format!(
                "registry sent a bad upload location {location:?}: {e}"
            ))
        })?;
        u.query_pairs_mut().append_pair("digest", d.as_str());
        Ok(u.to_string())
    }

    async fn push_blob(
        &self,
        store: &ImageStore,
        desc: &Descriptor,
        is_layer: bool,
        mount_from: &[String],
        progress: &ProgressFn<'_>,
    ) -> Result<()> {
        let id = desc.digest.short().to_string();
        let report = |status: &str| {
            if is_layer {
                progress(Progress::msg(Some(&id), status));
            }
        };
        if self.blob_exists(&desc.digest).await? {
            report("Layer already exists");
            return Ok(());
        }
        let mut location = None;
        for src in mount_from {
            let url = format!(
                "{}?mount={}&from={}",
                self.url("blobs/uploads/"),
                desc.digest,
                src
            );
            let resp = self.send(Method::POST, &url, HeaderMap::new()).await?;
            match resp.status() {
                StatusCode::CREATED => {
                    report(&format!("Mounted from {src}"));
                    return Ok(());
                }
                StatusCode::ACCEPTED => {
                    location = resp
                        .headers()
                        .get(LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    break;
                }
                _ => {}
            }
        }
        let location = match location {
            Some(l) => l,
            None => {
                let url = self.url("blobs/uploads/");
                let resp = self.send(Method::POST, &url, HeaderMap::new()).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.fail("POST", &url, resp).await);
                }
                resp.headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| ImageError::Registry {
                        registry: self.registry.clone(),
                        method: "POST",
                        url: url.clone(),
                        status: 202,
                        message: "upload started without a Location".into(),
                    })?
            }
        };
        let put_url = self.upload_url(&location, &desc.digest)?;
        let file = tokio::fs::File::open(store.blob_path(&desc.digest))
            .await
            .map_err(ImageError::io(format!("opening blob {}", desc.digest)))?;
        let total = desc.size;
        // The body stream must be 'static, the progress callback is borrowed: counts travel
        // over a channel and are reported here while the upload runs.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let mut sent = 0u64;
        let mut last = 0u64;
        let body_stream =
            tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect(move |c| {
                if let Ok(c) = c {
                    sent += c.len() as u64;
                    if sent - last >= PROGRESS_STEP || sent == total {
                        last = sent;
                        let _ = tx.send(sent);
                    }
                }
            });
        let mut req = self
            .http
            .put(&put_url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, total)
            .body(reqwest::Body::wrap_stream(body_stream));
        if let Some(a) = self.auth.lock().await.clone() {
            req = req.header(AUTHORIZATION, a);
        }
        let send = req.send();
        tokio::pin!(send);
        let result = loop {
            tokio::select! {
                r = &mut send => break r,
                Some(n) = rx.recv() => if is_layer {
                    progress(Progress::bytes(&id, "Pushing", n, total));
                },
            }
        };
        let resp = result.map_err(|e| self.unreachable(e))?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail("PUT", &put_url, resp).await);
        }
        report("Pushed");
        Ok(())
    }

    async fn put_manifest(&self, tag: &str, media_type: &str, raw: Vec<u8>) -> Result<Digest> {
        let url = self.url(&format!("manifests/{tag}"));
        let digest = Digest::of_bytes(&raw);
        let mut req = self
            .http
            .put(&url)
            .header(CONTENT_TYPE, media_type)
            .body(raw);
        if let Some(a) = self.auth.lock().await.clone() {
            req = req.header(AUTHORIZATION, a);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail("PUT", &url, resp).await);
        }
        if let Some(hd) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && hd.starts_with("sha256:")
            && hd != digest.as_str()
        {
            return Err(ImageError::DigestMismatch {
                what: format!("pushed manifest {tag}"),
                expected: digest.to_string(),
                actual: hd.to_string(),
            });
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_header() {
        let enc = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"u","password":"p","serveraddress":"x"}"#);
        let c = Credentials::from_registry_auth_header(&enc)
            .expect("valid")
            .expect("some");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let empty = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}");
        assert!(
            Credentials::from_registry_auth_header(&empty)
                .expect("valid")
                .is_none()
        );
        assert!(
            Credentials::from_registry_auth_header("")
                .expect("valid")
                .is_none()
        );
        assert!(Credentials::from_registry_auth_header("%%%").is_err());
    }

    #[test]
    fn challenges() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .expect("parses");
        assert_eq!(scheme, "bearer");
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[1], ("service".into(), "registry.docker.io".into()));
        assert_eq!(p[2].1, "repository:library/busybox:pull");
        let (scheme, p) = parse_challenge(r#"Basic realm="x""#).expect("parses");
        assert_eq!((scheme.as_str(), p.len()), ("basic", 1));
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(host_of("a.b:5000"), "a.b");
        assert_eq!(
            error_message(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            "manifest unknown"
        );
    }
}
