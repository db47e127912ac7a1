//! HTTP handlers, one module per endpoint group, and the router that ties them together.

mod containers;
mod images;
mod networks;
mod nodes;
mod secrets;
mod services;
mod swarm;
mod system;
mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use http::{HeaderMap, StatusCode};

use crate::backend::{Backend, LogsOptions};
use crate::body::MAX_JSON_BODY;
use crate::error::{HttpError, error_response, json_response};
use crate::query::QueryParams;
use crate::types::ApiError;

/// Shared handler state.
pub type AppState = Arc<dyn Backend>;

/// The router over unversioned paths (the version middleware strips `/v1.xx` before it).
pub fn router(backend: AppState) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(swarm::routes())
        .merge(nodes::routes())
        .merge(services::routes())
        .merge(secrets::routes())
        .merge(networks::routes())
        .merge(containers::routes())
        .merge(images::routes())
        .merge(volumes::routes())
        .fallback(not_found)
        // moby answers 404 for a known path with the wrong method too.
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(backend)
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "page not found")
}

/// 200 with a JSON body.
fn ok<T: serde::Serialize>(v: &T) -> Result<Response, HttpError> {
    Ok(json_response(StatusCode::OK, v))
}

/// 201 with a JSON body.
fn created<T: serde::Serialize>(v: &T) -> Result<Response, HttpError> {
    Ok(json_response(StatusCode::CREATED, v))
}

/// An empty response with the given status (200 for swarm updates, 204 for deletes).
fn empty(status: StatusCode) -> Result<Response, HttpError> {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = status;
    Ok(r)
}

/// The `X-Registry-Auth` header, if present and non-empty.
fn registry_auth(headers: &HeaderMap) -> Option<String> {
    headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Parses `since`/`until`: `<unix seconds>[.<nanos>]` (what the CLI sends) or RFC 3339.
pub fn parse_timestamp(s: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let bad = || ApiError::invalid_argument(format!("invalid timestamp {s:?}"));
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // Right-pad to nine digits: ".5" is half a second.
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    chrono::DateTime::from_timestamp(secs, nanos).ok_or_else(bad)
}

fn opt_timestamp(
    q: &QueryParams,
    key: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match q.get(key) {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => parse_timestamp(v).map(Some),
    }
}

/// Log options from the query of any `…/logs` endpoint.
fn logs_options(q: &QueryParams) -> Result<LogsOptions, ApiError> {
    let tail =
        match q.get("tail") {
            None | Some("") | Some("all") => None,
            Some(n) => Some(n.parse::<i64>().map_err(|_| {
                ApiError::invalid_argument(format!("invalid value for tail: {n:?}"))
            })?)
            .and_then(|n| u64::try_from(n).ok()),
        };
    let opts = LogsOptions {
        follow: q.bool("follow"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: opt_timestamp(q, "since")?,
        until: opt_timestamp(q, "until")?,
        tail,
        timestamps: q.bool("timestamps"),
        details: q.bool("details"),
    };
    if !opts.stdout && !opts.stderr {
        // moby's message for a logs call that selects nothing.
        return Err(ApiError::invalid_argument(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = parse_timestamp("1795423217.5").unwrap();
        assert_eq!(t.timestamp(), 1795423217);
        assert_eq!(t.timestamp_subsec_nanos(), 500_000_000);
        assert_eq!(
            parse_timestamp("1795423217").unwrap().timestamp(),
            1795423217
        );
        assert!(parse_timestamp("2026-11-23T08:49:25Z").is_ok());
        assert!(parse_timestamp("soon").is_err());
        assert!(parse_timestamp("1.x").is_err());
    }

    #[test]
    fn log_query() {
        let q = QueryParams::parse(
            "details=1&stderr=1&stdout=1&tail=all&timestamps=1&since=10.000000001",
        );
        let o = logs_options(&q).unwrap();
        assert!(o.details && o.stdout && o.stderr && o.timestamps && !o.follow);
        assert_eq!(o.tail, None);
        assert_eq!(o.since.unwrap().timestamp_subsec_nanos(), 1);
        assert_eq!(
            logs_options(&QueryParams::parse("stdout=1&tail=5"))
                .unwrap()
                .tail,
            Some(5)
        );
        assert!(logs_options(&QueryParams::parse("stdout=1&tail=x")).is_err());
        assert!(logs_options(&QueryParams::parse("")).is_err());
    }
}
