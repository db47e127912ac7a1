//! `/services…` and `/tasks…`, including their log streams.

use crate::types::ServiceSpec;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};

use super::{AppState, created, empty, logs_options, ok, registry_auth};
use crate::backend::ServiceUpdateOptions;
use crate::body::JsonBody;
use crate::error::HttpResult;
use crate::query::QueryParams;
use crate::stream::{LogFormat, logs_response};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(list))
        .route("/services/create", post(create))
        .route("/services/{id}", get(inspect).delete(remove))
        .route("/services/{id}/update", post(update))
        .route("/services/{id}/logs", get(service_logs))
        .route("/tasks", get(task_list))
        .route("/tasks/{id}", get(task_inspect))
        .route("/tasks/{id}/logs", get(task_logs))
}

async fn list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.service_list(q.filters()?, q.bool("status")).await?)
}

async fn inspect(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    ok(&b.service_inspect(&id, q.bool("insertDefaults")).await?)
}

async fn create(
    State(b): State<AppState>,
    headers: HeaderMap,
    JsonBody(spec): JsonBody<ServiceSpec>,
) -> HttpResult {
    created(&b.service_create(spec, registry_auth(&headers)).await?)
}

async fn update(
    State(b): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
    headers: HeaderMap,
    JsonBody(spec): JsonBody<ServiceSpec>,
) -> HttpResult {
    let opts = ServiceUpdateOptions {
        version: q.object_version("service")?,
        registry_auth_from: q.str("registryAuthFrom"),
        rollback: q.str("rollback"),
        registry_auth: registry_auth(&headers),
    };
    ok(&b.service_update(&id, spec, opts).await?)
}

async fn remove(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    b.service_remove(&id).await?;
    empty(StatusCode::OK)
}

async fn service_logs(
    State(b): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
) -> HttpResult {
    let opts = logs_options(&q)?;
    let fmt = LogFormat {
        timestamps: opts.timestamps,
        details: opts.details,
    };
    let logs = b.service_logs(&id, opts).await?;
    Ok(logs_response(logs.lines, fmt, logs.tty))
}

async fn task_list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.task_list(q.filters()?).await?)
}

async fn task_inspect(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    ok(&b.task_inspect(&id).await?)
}

async fn task_logs(
    State(b): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
) -> HttpResult {
    let opts = logs_options(&q)?;
    let fmt = LogFormat {
        timestamps: opts.timestamps,
        details: opts.details,
    };
    let logs = b.task_logs(&id, opts).await?;
    Ok(logs_response(logs.lines, fmt, logs.tty))
}
