//! `docker import` (`POST /images/create?fromSrc=-`): the request body is a root filesystem
//! tarball that becomes a one-layer image in this node's store.

use super::images::{Images, api_error};
use futures::StreamExt;
use serde_json::json;
use shoal_api::{ByteStream, ProgressStream};
use shoal_types::ApiError;

/// Spools the body to a temp file in the store (imports can be large), imports it with the
/// Dockerfile `changes`, and tags it `reference` when given. Answers `{"status":"<id>"}` as
/// moby does.
pub async fn import(
    images: &Images,
    rootfs: ByteStream,
    reference: Option<String>,
    changes: Vec<String>,
) -> Result<ProgressStream, ApiError> {
    let rec = images
        .spool_then("import", rootfs, move |store, f| {
            store.import(f, &changes, reference.as_deref())
        })
        .await?
        .map_err(api_error)?;
    Ok(futures::stream::iter([Ok(json!({"status": rec.id.to_string()}))]).boxed())
}
