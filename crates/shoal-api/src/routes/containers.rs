//! Standalone containers (`/containers…`) and exec (`/exec…`).

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{AppState, created, empty, logs_options, ok};
use crate::backend::{AttachOptions, ContainerListOptions, Logs};
use crate::body::{JsonBody, OptionalJson, decode};
use crate::error::{HttpError, HttpResult};
use crate::query::QueryParams;
use crate::stream::{
    LogFormat, MULTIPLEXED, RAW_STREAM, encode_frame, format_log_payload, logs_response,
};
use crate::types::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(create))
        .route("/containers/{id}", axum::routing::delete(remove))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/exec", post(exec_create))
        .route("/exec/{id}/start", post(exec_start))
        .route("/exec/{id}/json", get(exec_inspect))
        .route("/exec/{id}/resize", post(exec_resize))
}

async fn list(State(b): State<AppState>, q: QueryParams) -> HttpResult {
    let opts = ContainerListOptions {
        all: q.bool("all"),
        limit: q.opt_i64("limit")?,
        size: q.bool("size"),
        filters: q.filters()?,
    };
    ok(&b.container_list(opts).await?)
}

async fn create(
    State(b): State<AppState>,
    q: QueryParams,
    JsonBody(body): JsonBody<Value>,
) -> HttpResult {
    let name = q.get("name").filter(|n| !n.is_empty()).map(str::to_string);
    created(&b.container_create(name, body).await?)
}

async fn remove(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    b.container_remove(&id, q.bool("force"), q.bool("v"))
        .await?;
    empty(StatusCode::NO_CONTENT)
}

async fn inspect(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    ok(&b.container_inspect(&id, q.bool("size")).await?)
}

/// The CLI sends no body; old clients may send a HostConfig, which moby ignores too.
async fn start(
    State(b): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(_): OptionalJson<Value>,
) -> HttpResult {
    b.container_start(&id).await?;
    empty(StatusCode::NO_CONTENT)
}

fn signal(q: &QueryParams) -> Option<String> {
    q.get("signal")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn stop(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    b.container_stop(&id, q.opt_i64("t")?, signal(&q)).await?;
    empty(StatusCode::NO_CONTENT)
}

async fn restart(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    b.container_restart(&id, q.opt_i64("t")?, signal(&q))
        .await?;
    empty(StatusCode::NO_CONTENT)
}

async fn kill(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    b.container_kill(&id, signal(&q)).await?;
    empty(StatusCode::NO_CONTENT)
}

async fn wait(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    let cond = q
        .get("condition")
        .filter(|c| !c.is_empty())
        .unwrap_or("not-running");
    if !matches!(cond, "not-running" | "next-exit" | "removed") {
        return Err(ApiError::invalid_argument(format!("invalid condition: {cond:?}")).into());
    }
    // The CLI sends `wait?condition=next-exit` before `start` and blocks until the response
    // headers arrive, so answer at once and send the result as the body when the wait ends.
    b.container_inspect(&id, false).await?;
    let cond = cond.to_string();
    let body = futures::stream::once(async move {
        let v = match b.container_wait(&id, &cond).await {
            Ok(v) => v,
            Err(e) => serde_json::json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        Ok::<_, std::convert::Infallible>(crate::stream::ndjson_line(&v))
    });
    Ok(crate::stream::streaming("application/json", body))
}

/// `docker run` (without -d), `docker start -a` and `docker attach` hijack this request and
/// read the output from the raw connection; input is not forwarded to the container (the
/// connection's input is left unread).
async fn attach(
    State(b): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
    mut req: Request,
) -> HttpResult {
    let wants_upgrade = req.headers().contains_key(header::UPGRADE);
    let on_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let opts = AttachOptions {
        stream: q.bool("stream"),
        logs: q.bool("logs"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
    };
    let out = b.container_attach(&id, opts).await?;
    let fmt = LogFormat::default();
    match on_upgrade.filter(|_| wants_upgrade) {
        Some(on_upgrade) => Ok(upgraded(on_upgrade, out, fmt, None)),
        None => Ok(logs_response(out.lines, fmt, out.tty)),
    }
}

async fn logs(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    let opts = logs_options(&q)?;
    let fmt = LogFormat {
        timestamps: opts.timestamps,
        details: opts.details,
    };
    let logs = b.container_logs(&id, opts).await?;
    Ok(logs_response(logs.lines, fmt, logs.tty))
}

async fn top(State(b): State<AppState>, Path(id): Path<String>, q: QueryParams) -> HttpResult {
    ok(&b.container_top(&id, &q.str("ps_args")).await?)
}

async fn exec_create(
    State(b): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> HttpResult {
    created(&b.exec_create(&id, body).await?)
}

async fn exec_inspect(State(b): State<AppState>, Path(id): Path<String>) -> HttpResult {
    ok(&b.exec_inspect(&id).await?)
}

async fn exec_resize(
    State(b): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
) -> HttpResult {
    let dim = |k: &str| -> Result<u16, HttpError> {
        let v = q.opt_i64(k)?.unwrap_or(0);
        u16::try_from(v).map_err(|_| {
            HttpError(ApiError::invalid_argument(format!(
                "invalid terminal size {k}={v}"
            )))
        })
    };
    b.exec_resize(&id, dim("h")?, dim("w")?).await?;
    empty(StatusCode::OK)
}

/// The docker CLI asks to upgrade the connection (`Upgrade: tcp`), then writes the session's
/// input to the raw socket (half-closing it at the end) and reads the output from it; plain
/// HTTP clients get a chunked stream of the output instead, with no input.
async fn exec_start(
    State(b): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> HttpResult {
    let wants_upgrade = req.headers().contains_key(header::UPGRADE);
    let on_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let bytes = axum::body::to_bytes(req.into_body(), crate::body::MAX_JSON_BODY)
        .await
        .map_err(|e| {
            HttpError(ApiError::invalid_argument(format!(
                "failed to read request body: {e}"
            )))
        })?;
    let body: Value = if bytes.iter().all(|c| c.is_ascii_whitespace()) {
        Value::Object(Default::default())
    } else {
        decode(&bytes)?
    };
    let detach = body.get("Detach").and_then(Value::as_bool).unwrap_or(false);
    let upgrade = on_upgrade.filter(|_| wants_upgrade && !detach);
    // Input reaches the backend through this channel once the connection is upgraded.
    let (stdin_tx, stdin) = match &upgrade {
        Some(_) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, ApiError>>(16);
            (
                Some(tx),
                Some(tokio_stream::wrappers::ReceiverStream::new(rx).boxed()),
            )
        }
        None => (None, None),
    };
    let out = b.exec_start(&id, body, stdin).await?;
    if detach {
        return empty(StatusCode::OK);
    }
    let fmt = LogFormat::default();
    match upgrade {
        Some(on_upgrade) => Ok(upgraded(on_upgrade, out, fmt, stdin_tx)),
        None => Ok(logs_response(out.lines, fmt, out.tty)),
    }
}

/// Answers `101 Switching Protocols` and pumps the session over the upgraded connection.
fn upgraded(
    on_upgrade: hyper::upgrade::OnUpgrade,
    out: Logs,
    fmt: LogFormat,
    stdin: Option<tokio::sync::mpsc::Sender<Result<bytes::Bytes, ApiError>>>,
) -> Response {
    let ct = if out.tty { RAW_STREAM } else { MULTIPLEXED };
    tokio::spawn(pump_upgraded(on_upgrade, out, fmt, stdin));
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// Writes the output onto the upgraded connection, then closes our side; what the client
/// writes goes to `stdin` until it half-closes the connection.
async fn pump_upgraded(
    on_upgrade: hyper::upgrade::OnUpgrade,
    mut out: Logs,
    fmt: LogFormat,
    stdin: Option<tokio::sync::mpsc::Sender<Result<bytes::Bytes, ApiError>>>,
) {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!("exec upgrade failed: {e}");
            return;
        }
    };
    let (mut rd, mut io) = tokio::io::split(TokioIo::new(upgraded));
    let reader = stdin.map(|tx| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                        if tx.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    });
    while let Some(item) = out.lines.next().await {
        let chunk = match item {
            Ok(line) => {
                let payload = format_log_payload(&line, fmt);
                if out.tty {
                    bytes::Bytes::from(payload)
                } else {
                    encode_frame(line.stream, &payload)
                }
            }
            Err(e) => encode_frame(crate::stream::StdStream::SystemErr, e.message.as_bytes()),
        };
        if io.write_all(&chunk).await.is_err() {
            break;
        }
    }
    if let Some(r) = reader {
        r.abort();
    }
    let _ = io.shutdown().await;
}
