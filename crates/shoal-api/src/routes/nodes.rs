//! `/nodes`, `/nodes/{id}`, `/nodes/{id}/update`.

use crate::types::NodeSpec;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use http::StatusCode;

use super::{AppState, empty, ok};
use crate::body::JsonBody;
use crate::error::HttpResult;
use crate::query::QueryParams;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/nodes", get(list))
        .route("/nodes/{id}", get(inspect).delete(remove))
        .route("/nodes/{id}/update", post(update))
}

async fn list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.node_list(q.filters()?).await?)
}

async fn inspect(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    ok(&b.node_inspect(&id).await?)
}

async fn update(
    State(b): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
    JsonBody(spec): JsonBody<NodeSpec>,
) -> HttpResult {
    let version = q.object_version("node")?;
    b.node_update(&id, version, spec).await?;
    empty(StatusCode::OK)
}

async fn remove(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    b.node_remove(&id, q.bool("force")).await?;
    empty(StatusCode::OK)
}
