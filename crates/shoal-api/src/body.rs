//! JSON request bodies with Docker-style errors (400 `{"message"}`, never axum's 422 text).

use crate::types::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// Largest JSON body accepted. Specs are small; secrets and configs are capped at 500 KiB by
/// swarmkit, so 16 MiB leaves room without letting a client exhaust memory.
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// A required JSON body. An empty body is a 400 "request body is empty" (not a parse error).
pub struct JsonBody<T>(pub T);

/// A JSON body that may be absent: empty (or whitespace) reads as `T::default()`. Docker sends
/// no body on some POSTs (`/swarm/leave`, `/containers/{id}/start`).
pub struct OptionalJson<T>(pub T);

async fn read_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, HttpError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        let status = rej.status().as_u16();
        let msg = rej.body_text();
        if status == 413 {
            HttpError(ApiError::invalid_argument(format!(
                "request body too large (limit {MAX_JSON_BODY} bytes)"
            )))
        } else {
            HttpError(ApiError::invalid_argument(format!(
                "failed to read request body: {msg}"
            )))
        }
    })
}

/// Decodes JSON with a message naming the problem, as moby's "invalid JSON: …".
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_argument(format!("invalid JSON: {e}")))
}

fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|c| c.is_ascii_whitespace())
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_bytes(req, state).await?;
        if is_blank(&bytes) {
            return Err(HttpError(ApiError::invalid_argument(
                "request body is empty: a JSON object is required",
            )));
        }
        Ok(JsonBody(decode(&bytes)?))
    }
}

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_bytes(req, state).await?;
        if is_blank(&bytes) {
            return Ok(OptionalJson(T::default()));
        }
        Ok(OptionalJson(decode(&bytes)?))
    }
}
