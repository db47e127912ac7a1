//! `/swarm`, `/swarm/init|join|leave|update|unlock`, `/swarm/unlockkey`.

use crate::types::{ClusterSpec, InitRequest, JoinRequest, UnlockRequest, UpdateFlags};
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use http::StatusCode;

use super::{AppState, empty, ok};
use crate::body::JsonBody;
use crate::error::HttpResult;
use crate::query::QueryParams;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/swarm", get(inspect))
        .route("/swarm/init", post(init))
        .route("/swarm/join", post(join))
        .route("/swarm/leave", post(leave))
        .route("/swarm/update", post(update))
        .route("/swarm/unlock", post(unlock))
        .route("/swarm/unlockkey", get(unlock_key))
}

async fn inspect(State(b): State<AppState>) -> HttpResult {
    ok(&b.swarm_inspect().await?)
}

/// Replies with the node ID as a JSON string.
async fn init(State(b): State<AppState>, JsonBody(req): JsonBody<InitRequest>) -> HttpResult {
    ok(&b.swarm_init(req).await?)
}

async fn join(State(b): State<AppState>, JsonBody(req): JsonBody<JoinRequest>) -> HttpResult {
    b.swarm_join(req).await?;
    empty(StatusCode::OK)
}

/// Sent with no body at all.
async fn leave(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    b.swarm_leave(q.bool("force")).await?;
    empty(StatusCode::OK)
}

async fn update(
    State(b): State<AppState>,
    q: QueryParams,
    JsonBody(spec): JsonBody<ClusterSpec>,
) -> HttpResult {
    let version = q.object_version("swarm")?;
    let flags = UpdateFlags {
        rotate_worker_token: q.bool("rotateWorkerToken"),
        rotate_manager_token: q.bool("rotateManagerToken"),
        rotate_manager_unlock_key: q.bool("rotateManagerUnlockKey"),
    };
    b.swarm_update(version, spec, flags).await?;
    empty(StatusCode::OK)
}

async fn unlock(State(b): State<AppState>, JsonBody(req): JsonBody<UnlockRequest>) -> HttpResult {
    b.swarm_unlock(req).await?;
    empty(StatusCode::OK)
}

async fn unlock_key(State(b): State<AppState>) -> HttpResult {
    ok(&b.swarm_unlock_key().await?)
}
