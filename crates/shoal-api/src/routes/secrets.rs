//! `/secrets…` and `/configs…` (the same five endpoints each).

use crate::types::{ConfigSpec, SecretSpec};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use http::StatusCode;

use super::{AppState, created, empty, ok};
use crate::body::JsonBody;
use crate::error::HttpResult;
use crate::query::QueryParams;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/secrets", get(secret_list))
        .route("/secrets/create", post(secret_create))
        .route("/secrets/{id}", get(secret_inspect).delete(secret_remove))
        .route("/secrets/{id}/update", post(secret_update))
        .route("/configs", get(config_list))
        .route("/configs/create", post(config_create))
        .route("/configs/{id}", get(config_inspect).delete(config_remove))
        .route("/configs/{id}/update", post(config_update))
}

async fn secret_list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.secret_list(q.filters()?).await?)
}

async fn secret_create(
    State(b): State<AppState>,
    JsonBody(spec): JsonBody<SecretSpec>,
) -> HttpResult {
    created(&b.secret_create(spec).await?)
}

async fn secret_inspect(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    ok(&b.secret_inspect(&id).await?)
}

async fn secret_update(
    State(b): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
    JsonBody(spec): JsonBody<SecretSpec>,
) -> HttpResult {
    let version = q.object_version("secret")?;
    b.secret_update(&id, version, spec).await?;
    empty(StatusCode::OK)
}

async fn secret_remove(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    b.secret_remove(&id).await?;
    empty(StatusCode::NO_CONTENT)
}

async fn config_list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.config_list(q.filters()?).await?)
}

async fn config_create(
    State(b): State<AppState>,
    JsonBody(spec): JsonBody<ConfigSpec>,
) -> HttpResult {
    created(&b.config_create(spec).await?)
}

async fn config_inspect(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    ok(&b.config_inspect(&id).await?)
}

async fn config_update(
    State(b): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
    JsonBody(spec): JsonBody<ConfigSpec>,
) -> HttpResult {
    let version = q.object_version("config")?;
    b.config_update(&id, version, spec).await?;
    empty(StatusCode::OK)
}

async fn config_remove(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    b.config_remove(&id).await?;
    empty(StatusCode::NO_CONTENT)
}
