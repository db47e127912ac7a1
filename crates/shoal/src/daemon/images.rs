//! Image endpoints: the node's image store and registry client behind the Docker API shapes.

use futures::StreamExt;
use serde_json::{Value, json};
use shoal_api::{ByteStream, ImagePullOptions, ProgressStream};
use shoal_runtime::container::{HealthConfig, ImageDefaults, ResolvedImage};
use shoal_runtime::image::{
    Credentials, ImageError, ImageStore, JsonMessage, Progress, Reference, RegistryClient,
    RegistryConfig, SaveFormat,
};
use shoal_types::ApiError;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

pub struct Images {
    pub store: ImageStore,
    pub registry: RegistryClient,
}

pub fn api_error(e: ImageError) -> ApiError {
    let msg = e.to_string();
    match e {
        ImageError::NotFound(_) | ImageError::RemoteNotFound { .. } => ApiError::not_found(msg),
        ImageError::InvalidReference(_)
        | ImageError::InvalidChange { .. }
        | ImageError::CorruptArchive(_)
        | ImageError::InvalidImage(_)
        | ImageError::PathEscape { .. }
        | ImageError::InvalidLayer { .. }
        | ImageError::DigestMismatch { .. } => ApiError::invalid_argument(msg),
        ImageError::Conflict(_) => ApiError::conflict(msg),
        ImageError::AuthDenied { .. } => ApiError::permission_denied(msg),
        _ => ApiError::internal(msg),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

fn credentials(header: Option<&str>) -> Result<Option<Credentials>, ApiError> {
    match header {
        Some(h) if !h.is_empty() => Credentials::from_registry_auth_header(h).map_err(api_error),
        _ => Ok(None),
    }
}

fn parse_ref(s: &str) -> Result<Reference, ApiError> {
    Reference::parse(s).map_err(api_error)
}

impl Images {
    pub fn open(data_root: &Path, insecure: &[String]) -> anyhow::Result<Images> {
        let store = ImageStore::open(data_root.join("images"))
            .map_err(|e| anyhow::anyhow!("opening the image store: {e}"))?;
        let registry = RegistryClient::new(RegistryConfig {
            insecure_registries: insecure.to_vec(),
            ..serde_json::from_value(json!({}))?
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Images { store, registry })
    }

    /// What a container of `image` needs from the store: its ID, layers and config defaults.
    pub fn resolve(&self, image: &str) -> Result<ResolvedImage, ApiError> {
        let rec = self.store.get(image).map_err(api_error)?;
        let lower_dirs = self.store.layer_paths(image).map_err(api_error)?;
        let ic = self.store.image_config(image).map_err(api_error)?;
        Ok(ResolvedImage {
            image_id: rec.id.to_string(),
            lower_dirs,
            defaults: ImageDefaults {
                env: ic.env.clone().unwrap_or_default(),
                cmd: ic.cmd.clone(),
                entrypoint: ic.entrypoint.clone(),
                working_dir: ic.working_dir.clone().filter(|d| !d.is_empty()),
                user: ic.user.clone().filter(|u| !u.is_empty()),
                healthcheck: ic.healthcheck.as_ref().map(|h| HealthConfig {
                    test: h.test.clone().unwrap_or_default(),
                    interval: h.interval.unwrap_or(0).max(0) as u64,
                    timeout: h.timeout.unwrap_or(0).max(0) as u64,
                    retries: h.retries.unwrap_or(0).max(0) as u32,
                    start_period: h.start_period.unwrap_or(0).max(0) as u64,
                }),
                stop_signal: ic.stop_signal.clone(),
            },
        })
    }

    pub fn list(&self, in_use: &HashSet<String>) -> Result<Vec<Value>, ApiError> {
        self.store
            .list()
            .iter()
            .map(|rec| {
                let n = i64::from(in_use.contains(&rec.id.to_string()));
                to_value(&shoal_runtime::image::ImageSummary::from_record(rec, n))
            })
            .collect()
    }

    pub fn inspect(&self, name: &str) -> Result<Value, ApiError> {
        to_value(&self.store.inspect(name).map_err(api_error)?)
    }

    pub fn tag(&self, name: &str, repo: &str, tag: &str) -> Result<(), ApiError> {
        if repo.is_empty() {
            return Err(ApiError::invalid_argument(
                "repository name must not be empty",
            ));
        }
        let target = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        self.store.tag(name, &target).map_err(api_error)
    }

    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &HashSet<String>,
    ) -> Result<Value, ApiError> {
        to_value(&self.store.remove(name, force, in_use).map_err(api_error)?)
    }

    pub fn prune(&self, dangling_only: bool, in_use: &HashSet<String>) -> Result<Value, ApiError> {
        let report = self.store.prune(dangling_only, in_use).map_err(api_error)?;
        Ok(json!({"ImagesDeleted": report.deleted, "SpaceReclaimed": report.space_reclaimed}))
    }

    pub async fn distribution(&self, name: &str, auth: Option<String>) -> Result<Value, ApiError> {
        let creds = credentials(auth.as_deref())?;
        let r = parse_ref(name)?;
        let d = self
            .registry
            .inspect_distribution(&r, creds.as_ref())
            .await
            .map_err(api_error)?;
        to_value(&d)
    }

    /// Pull with Docker's JSON progress stream; an error ends the stream.
    pub fn pull(&self, opts: ImagePullOptions) -> Result<ProgressStream, ApiError> {
        let name = if opts.tag.is_empty() || opts.from_image.contains('@') {
            opts.from_image.clone()
        } else if opts.tag.starts_with("sha256:") {
            format!("{}@{}", opts.from_image, opts.tag)
        } else {
            format!("{}:{}", opts.from_image, opts.tag)
        };
        let reference = parse_ref(&name)?;
        let creds = credentials(opts.registry_auth.as_deref())?;
        let (tx, rx) = mpsc::unbounded_channel::<Result<Value, ApiError>>();
        let store = self.store.clone();
        let registry = self.registry.clone();
        tokio::spawn(async move {
            // The registry client reports every step itself (Pulling from, layers, Digest,
            // Status), as Docker words them.
            let ptx = tx.clone();
            let progress = move |p: Progress| {
                if let Ok(v) = serde_json::to_value(JsonMessage::from_progress(&p)) {
                    let _ = ptx.send(Ok(v));
                }
            };
            match registry
                .pull(&store, &reference, creds.as_ref(), &progress)
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(api_error(e)));
                }
            }
        });
        Ok(UnboundedReceiverStream::new(rx).boxed())
    }

    pub fn push(
        &self,
        name: &str,
        tag: &str,
        auth: Option<String>,
    ) -> Result<ProgressStream, ApiError> {
        let full = if tag.is_empty() {
            name.to_string()
        } else {
            format!("{name}:{tag}")
        };
        let reference = parse_ref(&full)?;
        self.store.get(&full).map_err(api_error)?;
        let creds = credentials(auth.as_deref())?;
        let (tx, rx) = mpsc::unbounded_channel::<Result<Value, ApiError>>();
        let store = self.store.clone();
        let registry = self.registry.clone();
        tokio::spawn(async move {
            let ptx = tx.clone();
            let progress = move |p: Progress| {
                if let Ok(v) = serde_json::to_value(JsonMessage::from_progress(&p)) {
                    let _ = ptx.send(Ok(v));
                }
            };
            match registry
                .push(&store, &reference, creds.as_ref(), &progress)
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(api_error(e)));
                }
            }
        });
        Ok(UnboundedReceiverStream::new(rx).boxed())
    }

    /// Spools `body` to a temp file in the store (archives can be large), then runs `f` on
    /// the store and that file off the async threads. `what` names the body in errors.
    pub async fn spool_then<T: Send + 'static>(
        &self,
        what: &str,
        mut body: ByteStream,
        f: impl FnOnce(&ImageStore, &mut std::fs::File) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.store.root())
            .map_err(|e| ApiError::internal(format!("spooling the {what}: {e}")))?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            tmp.write_all(&chunk)
                .map_err(|e| ApiError::internal(format!("spooling the {what}: {e}")))?;
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(tmp.path())?;
            Ok::<_, std::io::Error>(f(&store, &mut file))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("reading the {what}: {e}")))
    }

    /// `docker load`: the body is spooled to a temp file, then loaded all-or-nothing.
    pub async fn load(&self, archive: ByteStream) -> Result<ProgressStream, ApiError> {
        let loaded = self
            .spool_then("archive", archive, |store, f| store.load(f))
            .await?
            .map_err(api_error)?;
        let mut msgs = Vec::new();
        for img in loaded {
            if img.tags.is_empty() {
                msgs.push(Ok(
                    json!({"stream": format!("Loaded image ID: {}\n", img.id)}),
                ));
            }
            for t in img.tags {
                msgs.push(Ok(json!({"stream": format!("Loaded image: {t}\n")})));
            }
        }
        Ok(futures::stream::iter(msgs).boxed())
    }

    pub async fn save(&self, names: Vec<String>) -> Result<ByteStream, ApiError> {
        for n in &names {
            self.store.get(n).map_err(api_error)?;
        }
        let store = self.store.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            store
                .save(&names, &mut out, SaveFormat::Docker)
                .map(|_| out)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(api_error)?;
        let chunks: Vec<Result<bytes::Bytes, ApiError>> = bytes
            .chunks(1 << 20)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        Ok(futures::stream::iter(chunks).boxed())
    }
}
