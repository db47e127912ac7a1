//! `/networks…` and `/distribution/{name}/json`.

use crate::types::NetworkCreateRequest;
use crate::types::container::EndpointSettings;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};

use super::{AppState, created, empty, not_found, ok, registry_auth};
use crate::body::JsonBody;
use crate::error::HttpResult;
use crate::query::QueryParams;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
        .route("/distribution/{*name}", get(distribution))
}

async fn list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.network_list(q.filters()?).await?)
}

async fn inspect(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    ok(&b
        .network_inspect(&id, &q.str("scope"), q.bool("verbose"))
        .await?)
}

async fn create(
    State(b): State<AppState>,
    JsonBody(req): JsonBody<NetworkCreateRequest>,
) -> HttpResult {
    created(&b.network_create(req).await?)
}

async fn remove(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    b.network_remove(&id).await?;
    empty(StatusCode::NO_CONTENT)
}

/// moby's `NetworkConnectRequest`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConnectRequest {
    #[serde(default)]
    container: String,
    #[serde(default)]
    endpoint_config: Option<EndpointSettings>,
}

/// moby's `NetworkDisconnectRequest`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DisconnectRequest {
    #[serde(default)]
    container: String,
    #[serde(default)]
    force: bool,
}

/// moby refuses a request that names no container before looking at the network.
fn container_named(c: &str) -> Result<&str, crate::types::ApiError> {
    if c.trim().is_empty() {
        return Err(crate::types::ApiError::invalid_argument(
            "no container specified",
        ));
    }
    Ok(c)
}

async fn connect(
    State(b): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ConnectRequest>,
) -> HttpResult {
    let container = container_named(&req.container)?;
    b.network_connect(&id, container, req.endpoint_config.unwrap_or_default())
        .await?;
    empty(StatusCode::OK)
}

async fn disconnect(
    State(b): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DisconnectRequest>,
) -> HttpResult {
    let container = container_named(&req.container)?;
    b.network_disconnect(&id, container, req.force).await?;
    empty(StatusCode::OK)
}

async fn prune(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    ok(&b.network_prune(q.filters()?).await?)
}

/// `{name}` is an image reference with `/` and `:` in it, so the route is a wildcard and the
/// `/json` suffix is cut here.
async fn distribution(
    State(b): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> HttpResult {
    let Some(name) = rest.strip_suffix("/json").filter(|n| !n.is_empty()) else {
        return Ok(not_found().await.into_response());
    };
    ok(&b
        .distribution_inspect(name, registry_auth(&headers))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_cli_connect_and_disconnect_bodies() {
        // What docker 28 sends for `network connect --alias db app c1` / `disconnect -f`.
        let c: ConnectRequest = serde_json::from_str(
            r#"{"Container":"c1","EndpointConfig":{"IPAMConfig":{},"Links":null,"Aliases":["db"],"MacAddress":"","DriverOpts":{},"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}"#,
        )
        .unwrap();
        assert_eq!(c.container, "c1");
        assert_eq!(c.endpoint_config.unwrap().aliases, ["db"]);
        let d: DisconnectRequest =
            serde_json::from_str(r#"{"Container":"c1","Force":true}"#).unwrap();
        assert_eq!((d.container.as_str(), d.force), ("c1", true));
        // Other clients may leave the endpoint out.
        let c: ConnectRequest = serde_json::from_str(r#"{"Container":"c1"}"#).unwrap();
        assert!(c.endpoint_config.is_none());
        assert!(container_named("  ").is_err());
        assert_eq!(container_named("c1").unwrap(), "c1");
    }
}
