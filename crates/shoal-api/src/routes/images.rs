//! `/images…`. Image names contain `/` and `:`, so the per-image routes are wildcards that are
//! split on their last segment (`…/json`, `…/tag`, `…/push`, `…/get`).

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};

use super::{AppState, empty, not_found, ok, registry_auth};
use crate::backend::{ByteStream, ImagePullOptions};
use crate::error::{HttpError, HttpResult};
use crate::query::QueryParams;
use crate::stream::json_progress_response;
use crate::types::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route(
            "/images/create",
            post(pull).layer(DefaultBodyLimit::disable()),
        )
        .route("/images/prune", post(prune))
        .route("/images/get", get(save_many))
        .route(
            "/images/load",
            post(load).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/images/{*rest}",
            get(get_one).post(post_one).delete(remove),
        )
}

async fn list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.image_list(q.bool("all"), q.filters()?).await?)
}

async fn pull(
    State(b): State<AppState>,
    q: QueryParams,
    headers: HeaderMap,
    body: Body,
) -> HttpResult {
    let from_image = q.str("fromImage");
    let from_src = q.str("fromSrc");
    if !from_src.is_empty() {
        return import(&b, &q, &from_src, body).await;
    }
    if from_image.is_empty() {
        return Err(ApiError::invalid_argument("fromImage or fromSrc is required").into());
    }
    let opts = ImagePullOptions {
        from_image,
        tag: q.str("tag"),
        platform: q.str("platform"),
        registry_auth: registry_auth(&headers),
    };
    Ok(json_progress_response(b.image_pull(opts).await?))
}

/// `docker import`: the CLI sends the tarball as the body with `fromSrc=-` (it reads files
/// itself), the reference as `repo` (+ `tag`), and one `changes` parameter per instruction.
async fn import(b: &AppState, q: &QueryParams, from_src: &str, body: Body) -> HttpResult {
    if from_src != "-" {
        return Err(ApiError::invalid_argument(format!(
            "importing from {from_src:?} is not supported: send the tarball as the request body (fromSrc=-)"
        ))
        .into());
    }
    let repo = q.str("repo");
    let tag = q.str("tag");
    let reference = match (repo.is_empty(), tag.is_empty()) {
        (true, true) => None,
        (true, false) => {
            return Err(ApiError::invalid_argument("tag given without repo").into());
        }
        (false, true) => Some(repo),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    let changes: Vec<String> =
        q.0.iter()
            .filter(|(k, v)| k == "changes" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect();
    let rootfs: ByteStream = body
        .into_data_stream()
        .map(|r| r.map_err(|e| ApiError::invalid_argument(format!("reading the tarball: {e}"))))
        .boxed();
    Ok(json_progress_response(
        b.image_import(rootfs, reference, changes).await?,
    ))
}

async fn prune(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.image_prune(q.filters()?).await?)
}

async fn load(State(b): State<AppState>, q: QueryParams, body: Body) -> HttpResult {
    let archive: ByteStream = body
        .into_data_stream()
        .map(|r| r.map_err(|e| ApiError::invalid_argument(format!("reading archive: {e}"))))
        .boxed();
    Ok(json_progress_response(
        b.image_load(archive, q.bool("quiet")).await?,
    ))
}

async fn save(b: &AppState, names: Vec<String>) -> HttpResult {
    if names.is_empty() {
        return Err(ApiError::invalid_argument("no image names given").into());
    }
    let bytes = b.image_save(names).await?;
    let s = bytes.map(|r| {
        // The tar has started; an error can only cut it short (the client sees a bad archive).
        r.map_err(|e| std::io::Error::other(e.message))
    });
    let mut resp = Response::new(Body::from_stream(s));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

async fn save_many(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    let names: Vec<String> =
        q.0.iter()
            .filter(|(k, v)| k == "names" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect();
    save(&b, names).await
}

fn split_last(rest: &str) -> Option<(&str, &str)> {
    let (name, op) = rest.rsplit_once('/')?;
    (!name.is_empty()).then_some((name, op))
}

async fn get_one(State(b): State<AppState>, Path(rest): Path<String>) -> HttpResult {
    match split_last(&rest) {
        Some((name, "json")) => ok(&b.image_inspect(name).await?),
        Some((name, "get")) => save(&b, vec![name.to_string()]).await,
        _ => Ok(not_found().await.into_response()),
    }
}

async fn post_one(
    State(b): State<AppState>,
    Path(rest): Path<String>,
    q: QueryParams,
    headers: HeaderMap,
) -> HttpResult {
    match split_last(&rest) {
        Some((name, "tag")) => {
            let repo = q.str("repo");
            if repo.is_empty() {
                return Err(HttpError(ApiError::invalid_argument("repo is required")));
            }
            b.image_tag(name, &repo, &q.str("tag")).await?;
            empty(StatusCode::CREATED)
        }
        Some((name, "push")) => Ok(json_progress_response(
            b.image_push(name, &q.str("tag"), registry_auth(&headers))
                .await?,
        )),
        _ => Ok(not_found().await.into_response()),
    }
}

async fn remove(State(b): State<AppState>, Path(name): Path<String>, q: QueryParams) -> HttpResult {
    ok(&b
        .image_remove(&name, q.bool("force"), q.bool("noprune"))
        .await?)
}
