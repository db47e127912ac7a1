//! `/volumes…`.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::Value;

use super::{AppState, created, empty, ok};
use crate::body::OptionalJson;
use crate::error::HttpResult;
use crate::query::QueryParams;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

async fn list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.volume_list(q.filters()?).await?)
}

/// `docker volume create` with no options sends `{}`; an empty body means the same.
async fn create(State(b): State<AppState>, OptionalJson(body): OptionalJson<Value>) -> HttpResult {
    let body = if body.is_null() {
        Value::Object(Default::default())
    } else {
        body
    };
    created(&b.volume_create(body).await?)
}

async fn inspect(State(b): State<AppState>, Path(name): Path<String>) -> HttpResult {
    ok(&b.volume_inspect(&name).await?)
}

async fn remove(State(b): State<AppState>, Path(name): Path<String>, q: QueryParams) -> HttpResult {
    b.volume_remove(&name, q.bool("force")).await?;
    empty(StatusCode::NO_CONTENT)
}

async fn prune(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.volume_prune(q.filters()?).await?)
}
