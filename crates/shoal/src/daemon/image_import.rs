//! `docker import` (`POST /images/create?fromSrc=-`): the request body is a root filesystem
//! tarball that becomes a one-layer image in this node's store.

use super::images::{Images, api_error};
use futures::StreamExt;
use serde_json::json;
use shoal_api::{ByteStream, ProgressStream};
use shoal_types::ApiError;
use std::io::Write;

/// Spools the body to a temp file in the store (imports can be large), imports it with the
/// Dockerfile `changes`, and tags it `reference` when given. Answers `{"status":"<id>"}` as
/// moby does.
pub async fn import(
    images: &Images,
    mut rootfs: ByteStream,
    reference: Option<String>,
    changes: Vec<String>,
) -> Result<ProgressStream, ApiError> {
    let mut tmp = tempfile::NamedTempFile::new_in(images.store.root())
        .map_err(|e| ApiError::internal(format!("spooling the import: {e}")))?;
    while let Some(chunk) = rootfs.next().await {
        let chunk = chunk?;
        tmp.write_all(&chunk)
            .map_err(|e| ApiError::internal(format!("spooling the import: {e}")))?;
    }
    let store = images.store.clone();
    let rec = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(tmp.path())?;
        Ok::<_, std::io::Error>(store.import(&mut f, &changes, reference.as_deref()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("reading the import: {e}")))?
    .map_err(api_error)?;
    Ok(futures::stream::iter([Ok(json!({"status": rec.id.to_string()}))]).boxed())
}
