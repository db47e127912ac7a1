//! `/_ping`, `/version`, `/info`, `/events`.

use std::convert::Infallible;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use futures::StreamExt;
use http::{HeaderValue, Method, header};

use super::{AppState, ok, opt_timestamp};
use crate::backend::EventsOptions;
use crate::error::{HttpResult, JSON};
use crate::query::QueryParams;
use crate::stream::{ndjson_line, streaming};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
}

/// HEAD and GET: the CLI reads the headers (Api-Version above all) and ignores the body.
async fn ping(State(b): State<AppState>, method: Method) -> Response {
    let swarm = b.swarm_ping_state().await;
    let body = if method == Method::HEAD { "" } else { "OK" };
    let mut r = Response::new(axum::body::Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    if let Ok(v) = HeaderValue::from_str(&swarm) {
        h.insert("Swarm", v);
    }
    r
}

async fn version(State(b): State<AppState>) -> HttpResult {
    ok(&b.version().await?)
}

async fn info(State(b): State<AppState>) -> HttpResult {
    ok(&b.info().await?)
}

/// NDJSON, one flushed chunk per event; closed at `until` when that lies in the future.
async fn events(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    let opts = EventsOptions {
        since: opt_timestamp(&q, "since")?,
        until: opt_timestamp(&q, "until")?,
        filters: q.filters()?,
    };
    let until = opts.until;
    let stream = b.events(opts).await?;
    let lines = stream.map(|ev| Ok::<_, Infallible>(ndjson_line(&ev)));
    let now = chrono::Utc::now();
    let resp = match until {
        Some(t) if t > now => {
            let wait = (t - now).to_std().unwrap_or_default();
            let stop = tokio::time::sleep(wait);
            streaming(JSON, lines.take_until(stop))
        }
        // A past `until` means replay only; the backend ends the stream after it.
        _ => streaming(JSON, lines),
    };
    Ok(resp)
}
