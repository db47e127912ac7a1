//! A typed async client for the API, over a unix socket or TCP (HTTP/1.1, one kept-alive
//! connection for ordinary calls, a fresh one per stream).

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::backend::{EventsOptions, LogsOptions};
use crate::filters::Filters;
use crate::host::Host;
use crate::responses::{
    IdResponse, NetworkCreateResponse, ServiceCreateResponse, ServiceUpdateResponse,
};
use crate::stream::StdStream;
use crate::types::{
    ApiError, ClusterSpec, Config, ConfigSpec, ErrorKind, EventMessage, InitRequest, JoinRequest,
    NetworkCreateRequest, NetworkInspect, Node, NodeSpec, Secret, SecretSpec, Service, ServiceSpec,
    Swarm, SystemInfo, SystemVersion, Task, UnlockKeyResponse, UnlockRequest, UpdateFlags,
};
use crate::version::API_VERSION;

type Conn = SendRequest<Full<Bytes>>;

/// Start of the message of every error that means "no daemon answered" (as opposed to an
/// error the daemon sent); see [`is_connect_error`].
pub const CONNECT_ERROR_PREFIX: &str = "Cannot connect to the Shoal daemon at";

/// True when the error comes from failing to reach the daemon, not from the daemon.
pub fn is_connect_error(e: &ApiError) -> bool {
    e.kind == ErrorKind::Unavailable && e.message.starts_with(CONNECT_ERROR_PREFIX)
}

/// What `/_ping` reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingInfo {
    pub api_version: String,
    pub os_type: String,
    /// The `Swarm` header, e.g. `active/manager`.
    pub swarm: String,
}

/// A raw response: status, headers and body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A client bound to one daemon address.
pub struct Client {
    host: Host,
    conn: Mutex<Option<Conn>>,
}

/// Percent-encodes one path segment (IDs and names are plain, but never trust input).
pub fn escape_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds `path?k=v&…` with form encoding; empty values are kept.
pub fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    format!("{path}?{}", ser.finish())
}

fn filters_pair(f: &Filters) -> Vec<(&'static str, String)> {
    if f.is_empty() {
        vec![]
    } else {
        vec![("filters", f.to_json())]
    }
}

fn bool_str(b: bool) -> String {
    if b { "1".into() } else { "0".into() }
}

/// The error kind the CLI would infer from a status code.
pub fn kind_for_status(status: u16, message: &str) -> ErrorKind {
    match status {
        400 => ErrorKind::InvalidArgument,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        503 => ErrorKind::Unavailable,
        _ if message.contains(shoal_types::error::OUT_OF_SEQUENCE) => ErrorKind::OutOfSequence,
        _ => ErrorKind::Internal,
    }
}

/// Maps an error response to an ApiError: the `message` of a JSON body, else the text.
pub fn error_from_response(status: StatusCode, body: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(body).trim().to_string();
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            if text.is_empty() {
                format!("request returned {status}")
            } else {
                text
            }
        });
    ApiError::new(kind_for_status(status.as_u16(), &message), message)
}

impl Client {
    /// A client for `unix:///path` or `tcp://host:port`. Nothing connects until the first call.
    pub fn new(host: &str) -> Result<Client, ApiError> {
        Ok(Client {
            host: Host::parse(host)?,
            conn: Mutex::new(None),
        })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    fn connect_error(&self, e: impl std::fmt::Display) -> ApiError {
        ApiError::unavailable(format!(
            "{CONNECT_ERROR_PREFIX} {}. Is the shoal daemon running? ({e})",
            self.host
        ))
    }

    async fn connect(&self) -> Result<Conn, ApiError> {
        let (send, conn_err) = match &self.host {
            Host::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                handshake(s).await
            }
            Host::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                let _ = s.set_nodelay(true);
                handshake(s).await
            }
        }
        .map_or_else(|e| (None, Some(e)), |c| (Some(c), None));
        match (send, conn_err) {
            (Some(s), _) => Ok(s),
            (None, e) => Err(self.connect_error(e.map(|e| e.to_string()).unwrap_or_default())),
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        extra: &[(&'static str, String)],
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let host = match &self.host {
            Host::Unix(_) => "api.shoal.localhost".to_string(),
            Host::Tcp(a) => a.clone(),
        };
        let uri = if path == "/_ping" {
            path.to_string()
        } else {
            format!("/v{API_VERSION}{path}")
        };
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, host)
            .header(
                header::USER_AGENT,
                concat!("shoal/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in extra {
            b = b.header(*k, v);
        }
        let body = match body {
            Some(bytes) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        b.body(body)
            .map_err(|e| ApiError::invalid_argument(format!("building request: {e}")))
    }

    /// Sends a request on the shared connection (reconnecting once if it was closed) and
    /// returns the whole response, whatever its status.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        extra: &[(&'static str, String)],
    ) -> Result<RawResponse, ApiError> {
        let mut guard = self.conn.lock().await;
        for attempt in 0..2 {
            let mut conn = match guard.take() {
                Some(c) if !c.is_closed() => c,
                _ => self.connect().await?,
            };
            if conn.ready().await.is_err() {
                continue;
            }
            let req = self.build(method.clone(), path, body.clone(), extra)?;
            match conn.send_request(req).await {
                Ok(resp) => {
                    let (parts, inc) = resp.into_parts();
                    let body = inc
                        .collect()
                        .await
                        .map_err(|e| ApiError::internal(format!("reading response: {e}")))?
                        .to_bytes();
                    *guard = Some(conn);
                    return Ok(RawResponse {
                        status: parts.status,
                        headers: parts.headers,
                        body,
                    });
                }
                // A kept-alive connection the server closed: retry once on a fresh one.
                Err(e)
                    if attempt == 0
                        && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) =>
                {
                    continue;
                }
                Err(e) => return Err(self.connect_error(e)),
            }
        }
        Err(self.connect_error("connection closed"))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        extra: &[(&'static str, String)],
    ) -> Result<RawResponse, ApiError> {
        let r = self.raw(method, path, body, extra).await?;
        if r.status.is_client_error() || r.status.is_server_error() {
            return Err(error_from_response(r.status, &r.body));
        }
        Ok(r)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let r = self.call(Method::GET, path, None, &[]).await?;
        decode_body(&r.body)
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        extra: &[(&'static str, String)],
    ) -> Result<T, ApiError> {
        let r = self.call(method, path, Some(encode(body)?), extra).await?;
        decode_body(&r.body)
    }

    async fn send_empty<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ApiError> {
        let body = match body {
            Some(b) => Some(encode(b)?),
            None => None,
        };
        self.call(method, path, body, &[]).await.map(|_| ())
    }

    /// `GET` any API path (without the version prefix) and decode the JSON reply.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.get(path).await
    }

    /// Send a JSON body to any API path and decode the JSON reply (`()` for empty replies).
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(method, path, body, &[]).await
    }

    // ---- system ----

    /// `GET /_ping`: the server's API version, OS type and swarm state.
    pub async fn ping(&self) -> Result<PingInfo, ApiError> {
        let r = self.call(Method::GET, "/_ping", None, &[]).await?;
        let h = |k: &str| {
            r.headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        Ok(PingInfo {
            api_version: h("Api-Version"),
            os_type: h("Ostype"),
            swarm: h("Swarm"),
        })
    }

    pub async fn version(&self) -> Result<SystemVersion, ApiError> {
        self.get("/version").await
    }

    pub async fn info(&self) -> Result<SystemInfo, ApiError> {
        self.get("/info").await
    }

    /// `GET /events` as a stream of messages (ends at `until`, or when the daemon closes it).
    pub async fn events(
        &self,
        opts: &EventsOptions,
    ) -> Result<BoxStream<'static, Result<EventMessage, ApiError>>, ApiError> {
        let mut q = filters_pair(&opts.filters);
        if let Some(t) = opts.since {
            q.push(("since", unix_ts(&t)));
        }
        if let Some(t) = opts.until {
            q.push(("until", unix_ts(&t)));
        }
        let bytes = self.stream(Method::GET, &with_query("/events", &q)).await?;
        Ok(ndjson_stream(bytes))
    }

    // ---- swarm ----

    pub async fn swarm_inspect(&self) -> Result<Swarm, ApiError> {
        self.get("/swarm").await
    }

    /// Returns the new node ID.
    pub async fn swarm_init(&self, req: &InitRequest) -> Result<String, ApiError> {
        self.send(Method::POST, "/swarm/init", req, &[]).await
    }

    pub async fn swarm_join(&self, req: &JoinRequest) -> Result<(), ApiError> {
        self.send_empty(Method::POST, "/swarm/join", Some(req))
            .await
    }

    pub async fn swarm_leave(&self, force: bool) -> Result<(), ApiError> {
        let path = if force {
            "/swarm/leave?force=1"
        } else {
            "/swarm/leave"
        };
        self.send_empty::<()>(Method::POST, path, None).await
    }

    pub async fn swarm_update(
        &self,
        version: u64,
        spec: &ClusterSpec,
        flags: UpdateFlags,
    ) -> Result<(), ApiError> {
        let path = with_query(
            "/swarm/update",
            &[
                ("rotateManagerToken", flags.rotate_manager_token.to_string()),
                (
                    "rotateManagerUnlockKey",
                    flags.rotate_manager_unlock_key.to_string(),
                ),
                ("rotateWorkerToken", flags.rotate_worker_token.to_string()),
                ("version", version.to_string()),
            ],
        );
        self.send_empty(Method::POST, &path, Some(spec)).await
    }

    pub async fn swarm_unlock(&self, req: &UnlockRequest) -> Result<(), ApiError> {
        self.send_empty(Method::POST, "/swarm/unlock", Some(req))
            .await
    }

    pub async fn swarm_unlock_key(&self) -> Result<UnlockKeyResponse, ApiError> {
        self.get("/swarm/unlockkey").await
    }

    // ---- nodes ----

    pub async fn node_list(&self, filters: &Filters) -> Result<Vec<Node>, ApiError> {
        self.get(&with_query("/nodes", &filters_pair(filters)))
            .await
    }

    pub async fn node_inspect(&self, id: &str) -> Result<Node, ApiError> {
        self.get(&format!("/nodes/{}", escape_segment(id))).await
    }

    pub async fn node_update(
        &self,
        id: &str,
        version: u64,
        spec: &NodeSpec,
    ) -> Result<(), ApiError> {
        let path = with_query(
            &format!("/nodes/{}/update", escape_segment(id)),
            &[("version", version.to_string())],
        );
        self.send_empty(Method::POST, &path, Some(spec)).await
    }

    pub async fn node_remove(&self, id: &str, force: bool) -> Result<(), ApiError> {
        let mut q = vec![];
        if force {
            q.push(("force", bool_str(true)));
        }
        let path = with_query(&format!("/nodes/{}", escape_segment(id)), &q);
        self.send_empty::<()>(Method::DELETE, &path, None).await
    }

    // ---- services ----

    pub async fn service_list(
        &self,
        filters: &Filters,
        status: bool,
    ) -> Result<Vec<Service>, ApiError> {
        let mut q = filters_pair(filters);
        if status {
            q.push(("status", "true".into()));
        }
        self.get(&with_query("/services", &q)).await
    }

    pub async fn service_inspect(
        &self,
        id: &str,
        insert_defaults: bool,
    ) -> Result<Service, ApiError> {
        let path = with_query(
            &format!("/services/{}", escape_segment(id)),
            &[("insertDefaults", insert_defaults.to_string())],
        );
        self.get(&path).await
    }

    pub async fn service_create(
        &self,
        spec: &ServiceSpec,
        registry_auth: Option<&str>,
    ) -> Result<ServiceCreateResponse, ApiError> {
        let extra: Vec<(&'static str, String)> = registry_auth
            .map(|a| vec![("X-Registry-Auth", a.to_string())])
            .unwrap_or_default();
        self.send(Method::POST, "/services/create", spec, &extra)
            .await
    }

    /// `registry_auth_from` is `spec`, `previous-spec` or empty; `rollback` is `previous` or empty.
    pub async fn service_update(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        registry_auth_from: &str,
        rollback: &str,
    ) -> Result<ServiceUpdateResponse, ApiError> {
        let mut q = vec![("version", version.to_string())];
        if !registry_auth_from.is_empty() {
            q.push(("registryAuthFrom", registry_auth_from.to_string()));
        }
        if !rollback.is_empty() {
            q.push(("rollback", rollback.to_string()));
        }
        let path = with_query(&format!("/services/{}/update", escape_segment(id)), &q);
        self.send(Method::POST, &path, spec, &[]).await
    }

    pub async fn service_remove(&self, id: &str) -> Result<(), ApiError> {
        self.send_empty::<()>(
            Method::DELETE,
            &format!("/services/{}", escape_segment(id)),
            None,
        )
        .await
    }

    /// Service logs, decoded from stdcopy frames into (stream, payload) pairs.
    pub async fn service_logs(
        &self,
        id: &str,
        opts: &LogsOptions,
    ) -> Result<BoxStream<'static, Result<(StdStream, Bytes), ApiError>>, ApiError> {
        let path = with_query(
            &format!("/services/{}/logs", escape_segment(id)),
            &logs_query(opts),
        );
        Ok(demux_stream(self.stream(Method::GET, &path).await?))
    }

    // ---- tasks ----

    pub async fn task_list(&self, filters: &Filters) -> Result<Vec<Task>, ApiError> {
        self.get(&with_query("/tasks", &filters_pair(filters)))
            .await
    }

    pub async fn task_inspect(&self, id: &str) -> Result<Task, ApiError> {
        self.get(&format!("/tasks/{}", escape_segment(id))).await
    }

    pub async fn task_logs(
        &self,
        id: &str,
        opts: &LogsOptions,
    ) -> Result<BoxStream<'static, Result<(StdStream, Bytes), ApiError>>, ApiError> {
        let path = with_query(
            &format!("/tasks/{}/logs", escape_segment(id)),
            &logs_query(opts),
        );
        Ok(demux_stream(self.stream(Method::GET, &path).await?))
    }

    // ---- secrets / configs ----

    pub async fn secret_list(&self, filters: &Filters) -> Result<Vec<Secret>, ApiError> {
        self.get(&with_query("/secrets", &filters_pair(filters)))
            .await
    }

    pub async fn secret_create(&self, spec: &SecretSpec) -> Result<IdResponse, ApiError> {
        self.send(Method::POST, "/secrets/create", spec, &[]).await
    }

    pub async fn secret_inspect(&self, id: &str) -> Result<Secret, ApiError> {
        self.get(&format!("/secrets/{}", escape_segment(id))).await
    }

    pub async fn secret_update(
        &self,
        id: &str,
        version: u64,
        spec: &SecretSpec,
    ) -> Result<(), ApiError> {
        let path = with_query(
            &format!("/secrets/{}/update", escape_segment(id)),
            &[("version", version.to_string())],
        );
        self.send_empty(Method::POST, &path, Some(spec)).await
    }

    pub async fn secret_remove(&self, id: &str) -> Result<(), ApiError> {
        self.send_empty::<()>(
            Method::DELETE,
            &format!("/secrets/{}", escape_segment(id)),
            None,
        )
        .await
    }

    pub async fn config_list(&self, filters: &Filters) -> Result<Vec<Config>, ApiError> {
        self.get(&with_query("/configs", &filters_pair(filters)))
            .await
    }

    pub async fn config_create(&self, spec: &ConfigSpec) -> Result<IdResponse, ApiError> {
        self.send(Method::POST, "/configs/create", spec, &[]).await
    }

    pub async fn config_inspect(&self, id: &str) -> Result<Config, ApiError> {
        self.get(&format!("/configs/{}", escape_segment(id))).await
    }

    pub async fn config_update(
        &self,
        id: &str,
        version: u64,
        spec: &ConfigSpec,
    ) -> Result<(), ApiError> {
        let path = with_query(
            &format!("/configs/{}/update", escape_segment(id)),
            &[("version", version.to_string())],
        );
        self.send_empty(Method::POST, &path, Some(spec)).await
    }

    pub async fn config_remove(&self, id: &str) -> Result<(), ApiError> {
        self.send_empty::<()>(
            Method::DELETE,
            &format!("/configs/{}", escape_segment(id)),
            None,
        )
        .await
    }

    // ---- networks ----

    pub async fn network_list(&self, filters: &Filters) -> Result<Vec<NetworkInspect>, ApiError> {
        self.get(&with_query("/networks", &filters_pair(filters)))
            .await
    }

    pub async fn network_inspect(&self, id: &str, scope: &str) -> Result<NetworkInspect, ApiError> {
        let mut q = vec![];
        if !scope.is_empty() {
            q.push(("scope", scope.to_string()));
        }
        self.get(&with_query(
            &format!("/networks/{}", escape_segment(id)),
            &q,
        ))
        .await
    }

    pub async fn network_create(
        &self,
        req: &NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse, ApiError> {
        self.send(Method::POST, "/networks/create", req, &[]).await
    }

    pub async fn network_remove(&self, id: &str) -> Result<(), ApiError> {
        self.send_empty::<()>(
            Method::DELETE,
            &format!("/networks/{}", escape_segment(id)),
            None,
        )
        .await
    }

    // ---- streams ----

    /// Opens a dedicated connection for a streaming GET and returns the body chunks. Errors
    /// before the stream starts come back as `Err` with the daemon's message.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError> {
        let mut conn = self.connect().await?;
        let req = self.build(method, path, None, &[])?;
        let resp = conn
            .send_request(req)
            .await
            .map_err(|e| self.connect_error(e))?;
        let (parts, body) = resp.into_parts();
        if parts.status.is_client_error() || parts.status.is_server_error() {
            let b = body
                .collect()
                .await
                .map_err(|e| ApiError::internal(format!("reading response: {e}")))?
                .to_bytes();
            return Err(error_from_response(parts.status, &b));
        }
        let s = body.into_data_stream().map(move |r| {
            // Keep the connection handle alive as long as the body is read.
            let _keep = &conn;
            r.map_err(|e| ApiError::internal(format!("reading stream: {e}")))
        });
        Ok(s.boxed())
    }
}

/// The duplex connection of a hijacked request (`exec start` with `Upgrade: tcp`).
pub type Hijacked = TokioIo<hyper::upgrade::Upgraded>;

impl Client {
    /// POSTs `body` asking Docker's connection hijack (`Upgrade: tcp`) on a connection of its
    /// own, and returns the raw connection once the daemon switched protocols.
    pub async fn hijack<B: Serialize>(&self, path: &str, body: &B) -> Result<Hijacked, ApiError> {
        let extra = [
            ("connection", "Upgrade".to_string()),
            ("upgrade", "tcp".to_string()),
        ];
        let req = self.build(Method::POST, path, Some(encode(body)?), &extra)?;
        let resp = match &self.host {
            Host::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                upgrade(s, req).await
            }
            Host::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                let _ = s.set_nodelay(true);
                upgrade(s, req).await
            }
        }
        .map_err(|e| self.connect_error(e))?;
        match resp {
            Ok(up) => Ok(TokioIo::new(up)),
            Err((status, body)) if status.is_client_error() || status.is_server_error() => {
                Err(error_from_response(status, &body))
            }
            Err((status, _)) => Err(ApiError::internal(format!(
                "the daemon answered {status} instead of switching protocols"
            ))),
        }
    }
}

/// Sends an upgrade request; `Err((status, body))` when the server did not switch protocols.
async fn upgrade<S>(
    io: S,
    req: Request<Full<Bytes>>,
) -> Result<Result<hyper::upgrade::Upgraded, (StatusCode, Bytes)>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("hijacked connection closed: {e}");
        }
    });
    let resp = send.send_request(req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        return Ok(Err((status, body)));
    }
    let up = hyper::upgrade::on(resp).await?;
    Ok(Ok(up))
}

async fn handshake<S>(io: S) -> Result<Conn, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("api connection closed: {e}");
        }
    });
    Ok(send)
}

fn encode<B: Serialize>(body: &B) -> Result<Vec<u8>, ApiError> {
    let mut v = serde_json::to_vec(body)
        .map_err(|e| ApiError::invalid_argument(format!("encoding request: {e}")))?;
    v.push(b'\n');
    Ok(v)
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Empty replies decode as JSON null, so `()` and Option targets work.
    let body: &[u8] = if body.iter().all(|c| c.is_ascii_whitespace()) {
        b"null"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::internal(format!("decoding daemon response: {e}")))
}

fn unix_ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

fn logs_query(o: &LogsOptions) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("stdout", bool_str(o.stdout)),
        ("stderr", bool_str(o.stderr)),
        (
            "tail",
            o.tail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".into()),
        ),
    ];
    if o.follow {
        q.push(("follow", bool_str(true)));
    }
    if o.timestamps {
        q.push(("timestamps", bool_str(true)));
    }
    if o.details {
        q.push(("details", bool_str(true)));
    }
    if let Some(t) = o.since {
        q.push(("since", unix_ts(&t)));
    }
    if let Some(t) = o.until {
        q.push(("until", unix_ts(&t)));
    }
    q
}

/// Splits a byte stream into stdcopy frames; a stream-3 frame becomes an `Err`.
pub fn demux_stream(
    bytes: BoxStream<'static, Result<Bytes, ApiError>>,
) -> BoxStream<'static, Result<(StdStream, Bytes), ApiError>> {
    struct St {
        inner: BoxStream<'static, Result<Bytes, ApiError>>,
        buf: BytesMut,
        done: bool,
    }
    futures::stream::unfold(
        St {
            inner: bytes,
            buf: BytesMut::new(),
            done: false,
        },
        |mut st| async move {
            loop {
                if st.done {
                    return None;
                }
                if st.buf.len() >= 8 {
                    let len =
                        u32::from_be_bytes([st.buf[4], st.buf[5], st.buf[6], st.buf[7]]) as usize;
                    if st.buf.len() >= 8 + len {
                        let kind = st.buf[0];
                        st.buf.advance(8);
                        let payload = st.buf.split_to(len).freeze();
                        let item = match kind {
                            0 => Ok((StdStream::Stdin, payload)),
                            1 => Ok((StdStream::Stdout, payload)),
                            2 => Ok((StdStream::Stderr, payload)),
                            3 => {
                                st.done = true;
                                Err(ApiError::internal(format!(
                                    "error from daemon in stream: {}",
                                    String::from_utf8_lossy(&payload)
                                )))
                            }
                            k => {
                                st.done = true;
                                Err(ApiError::internal(format!(
                                    "Unrecognized input header: {k}"
                                )))
                            }
                        };
                        return Some((item, st));
                    }
                }
                match st.inner.next().await {
                    Some(Ok(b)) => st.buf.extend_from_slice(&b),
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    None => {
                        st.done = true;
                        if st.buf.is_empty() {
                            return None;
                        }
                        return Some((
                            Err(ApiError::internal("log stream ended inside a frame")),
                            st,
                        ));
                    }
                }
            }
        },
    )
    .boxed()
}

/// Splits a byte stream into JSON values, one per line.
pub fn ndjson_stream<T: DeserializeOwned + Send + 'static>(
    bytes: BoxStream<'static, Result<Bytes, ApiError>>,
) -> BoxStream<'static, Result<T, ApiError>> {
    struct St {
        inner: BoxStream<'static, Result<Bytes, ApiError>>,
        buf: Vec<u8>,
        ready: VecDeque<Vec<u8>>,
        done: bool,
    }
    futures::stream::unfold(
        St {
            inner: bytes,
            buf: Vec::new(),
            ready: VecDeque::new(),
            done: false,
        },
        |mut st| async move {
            loop {
                if let Some(line) = st.ready.pop_front() {
                    let item = serde_json::from_slice::<T>(&line)
                        .map_err(|e| ApiError::internal(format!("decoding stream message: {e}")));
                    return Some((item, st));
                }
                if st.done {
                    return None;
                }
                match st.inner.next().await {
                    Some(Ok(b)) => {
                        st.buf.extend_from_slice(&b);
                        while let Some(pos) = st.buf.iter().position(|&c| c == b'\n') {
                            let line: Vec<u8> = st.buf.drain(..=pos).collect();
                            if !line.iter().all(|c| c.is_ascii_whitespace()) {
                                st.ready.push_back(line);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    None => {
                        st.done = true;
                        let rest = std::mem::take(&mut st.buf);
                        if !rest.iter().all(|c| c.is_ascii_whitespace()) {
                            st.ready.push_back(rest);
                        }
                    }
                }
            }
        },
    )
    .boxed()
}
