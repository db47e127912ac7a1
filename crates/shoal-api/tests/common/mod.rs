//! Test-only fake backend and raw HTTP helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use shoal_api::types::*;
use shoal_api::{
    Backend, BackendResult, EventStream, EventsOptions, IdResponse, LogLine, Logs, LogsOptions,
    NetworkCreateResponse, Server, ServiceCreateResponse, ServiceUpdateOptions,
    ServiceUpdateResponse, StdStream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SELF_ID: &str = "z1i2vjxlv0h4ohy3w6m2c7pgb";
pub const WORKER_ID: &str = "a9f8h3k2l1m0n9b8v7c6x5z4q";

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("fixture matches the wire type")
}

/// An in-memory backend with two nodes and whatever services tests create.
#[derive(Default)]
pub struct Fake {
    pub services: Mutex<Vec<(ServiceSpec, Option<String>)>>,
    pub last_filters: Mutex<Option<Filters>>,
}

pub fn nodes() -> Vec<Node> {
    vec![
        from(json!({
            "ID": SELF_ID, "Version": {"Index": 206},
            "CreatedAt": "2026-11-23T08:47:52.466838412Z", "UpdatedAt": "2026-11-23T08:47:53Z",
            "Spec": {"Labels": {}, "Role": "manager", "Availability": "active"},
            "Description": {"Hostname": "mgr1", "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 2527650201u64},
                "Engine": {"EngineVersion": "0.1.0"}},
            "Status": {"State": "ready", "Addr": "127.0.0.1"},
            "ManagerStatus": {"Leader": true, "Reachability": "reachable", "Addr": "127.0.0.1:2377"}
        })),
        from(json!({
            "ID": WORKER_ID, "Version": {"Index": 210},
            "CreatedAt": "2026-11-23T08:50:00Z", "UpdatedAt": "2026-11-23T08:50:00Z",
            "Spec": {"Labels": {}, "Role": "worker", "Availability": "drain"},
            "Description": {"Hostname": "alpha", "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Engine": {"EngineVersion": "0.1.0"}},
            "Status": {"State": "down", "Addr": "127.0.0.2"}
        })),
    ]
}

fn nf<T>(what: &str) -> BackendResult<T> {
    Err(ApiError::not_found(format!("{what} not found")))
}

#[async_trait]
impl Backend for Fake {
    async fn swarm_ping_state(&self) -> String {
        "active/manager".into()
    }
    async fn version(&self) -> BackendResult<SystemVersion> {
        Ok(from(json!({
            "Platform": {"Name": "Shoal"},
            "Components": [{"Name": "Engine", "Version": "0.1.0",
                "Details": {"ApiVersion": "1.47", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"}}],
            "Version": "0.1.0", "ApiVersion": "1.47", "MinAPIVersion": "1.24", "GitCommit": "abc1234",
            "GoVersion": "rust", "Os": "linux", "Arch": "amd64", "KernelVersion": "6.18",
            "BuildTime": "2026-11-23T08:00:00.000000000Z"
        })))
    }
    async fn info(&self) -> BackendResult<SystemInfo> {
        Ok(from(json!({
            "ID": "info-id", "Name": "mgr1", "ServerVersion": "0.1.0", "OSType": "linux",
            "Swarm": {"NodeID": SELF_ID, "NodeAddr": "127.0.0.1", "LocalNodeState": "active",
                "ControlAvailable": true, "Error": "",
                "RemoteManagers": [{"NodeID": SELF_ID, "Addr": "127.0.0.1:2377"}], "Nodes": 2, "Managers": 1}
        })))
    }
    async fn events(&self, opts: EventsOptions) -> BackendResult<EventStream> {
        *self.last_filters.lock().unwrap() = Some(opts.filters.clone());
        let evs: Vec<EventMessage> = vec![
            from(json!({"Type": "service", "Action": "create",
                "Actor": {"ID": "svc1", "Attributes": {"name": "web"}},
                "scope": "swarm", "time": 1795423672, "timeNano": 1795423672466838412u64})),
            from(json!({"Type": "node", "Action": "update",
                "Actor": {"ID": SELF_ID, "Attributes": {"name": "mgr1"}},
                "scope": "swarm", "time": 1795423673, "timeNano": 1795423673000000000u64})),
        ];
        // Without `until` the stream stays open for live events, like the daemon's.
        if opts.until.is_none() {
            return Ok(futures::stream::iter(evs)
                .chain(futures::stream::pending())
                .boxed());
        }
        Ok(futures::stream::iter(evs).boxed())
    }
    async fn swarm_inspect(&self) -> BackendResult<Swarm> {
        Ok(from(json!({"ID": "cluster1", "Version": {"Index": 10},
            "CreatedAt": "2026-11-23T08:47:52Z", "UpdatedAt": "2026-11-23T08:47:52Z",
            "Spec": {"Name": "default"},
            "JoinTokens": {"Worker": "SWMTKN-1-aaa-worker", "Manager": "SWMTKN-1-aaa-manager"}})))
    }
    async fn swarm_init(&self, _req: InitRequest) -> BackendResult<String> {
        Ok(SELF_ID.into())
    }
    async fn swarm_join(&self, _req: JoinRequest) -> BackendResult<()> {
        Err(ApiError::unavailable(
            "This node is already part of a swarm.",
        ))
    }
    async fn swarm_leave(&self, force: bool) -> BackendResult<()> {
        if force {
            Ok(())
        } else {
            Err(ApiError::unavailable(
                "You are attempting to leave the swarm on a node that is participating as a manager. Use `--force` to ignore this message.",
            ))
        }
    }
    async fn swarm_update(
        &self,
        version: u64,
        _s: ClusterSpec,
        _f: UpdateFlags,
    ) -> BackendResult<()> {
        if version == 10 {
            Ok(())
        } else {
            Err(ApiError::out_of_sequence())
        }
    }
    async fn swarm_unlock(&self, _req: UnlockRequest) -> BackendResult<()> {
        Err(ApiError::invalid_argument("swarm is not locked"))
    }
    async fn swarm_unlock_key(&self) -> BackendResult<UnlockKeyResponse> {
        Ok(UnlockKeyResponse {
            unlock_key: String::new(),
        })
    }
    async fn node_list(&self, filters: Filters) -> BackendResult<Vec<Node>> {
        filters.validate(&["id", "name", "role", "label", "node.label", "membership"])?;
        let roles = filters.get("role");
        Ok(nodes()
            .into_iter()
            .filter(|n| roles.is_empty() || roles.contains(&n.spec.role.as_str()))
            .collect())
    }
    async fn node_inspect(&self, id: &str) -> BackendResult<Node> {
        let all = nodes();
        let key = id.to_string();
        match all
            .into_iter()
            .find(|n| n.id == key || n.description.hostname == key)
        {
            Some(n) => Ok(n),
            None => nf(&format!("node {id}")),
        }
    }
    async fn node_update(&self, id: &str, version: u64, _spec: NodeSpec) -> BackendResult<()> {
        let n = self.node_inspect(id).await?;
        if n.meta.version.index == version {
            Ok(())
        } else {
            Err(ApiError::out_of_sequence())
        }
    }
    async fn node_remove(&self, id: &str, _force: bool) -> BackendResult<()> {
        self.node_inspect(id).await.map(|_| ())
    }
    async fn service_list(&self, _f: Filters, _status: bool) -> BackendResult<Vec<Service>> {
        Ok(vec![])
    }
    async fn service_inspect(&self, id: &str, _d: bool) -> BackendResult<Service> {
        let s = self.services.lock().unwrap();
        for (i, (spec, _)) in s.iter().enumerate() {
            let sid = format!("svc{}", i + 1);
            if sid == id || spec.annotations.name == id {
                return Ok(from(json!({
                    "ID": sid, "Version": {"Index": 11},
                    "CreatedAt": "2026-11-23T08:47:52Z", "UpdatedAt": "2026-11-23T08:47:52Z",
                    "Spec": serde_json::to_value(spec).unwrap(),
                    "Endpoint": {"Spec": {}},
                })));
            }
        }
        nf(&format!("service {id}"))
    }
    async fn service_create(
        &self,
        spec: ServiceSpec,
        auth: Option<String>,
    ) -> BackendResult<ServiceCreateResponse> {
        let mut s = self.services.lock().unwrap();
        if s.iter()
            .any(|(x, _)| x.annotations.name == spec.annotations.name)
        {
            return Err(ApiError::conflict(format!(
                "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service {} already exists",
                spec.annotations.name
            )));
        }
        s.push((spec, auth));
        Ok(ServiceCreateResponse {
            id: format!("svc{}", s.len()),
            warnings: None,
        })
    }
    async fn service_update(
        &self,
        id: &str,
        _s: ServiceSpec,
        _o: ServiceUpdateOptions,
    ) -> BackendResult<ServiceUpdateResponse> {
        nf(&format!("service {id}"))
    }
    async fn service_remove(&self, id: &str) -> BackendResult<()> {
        nf(&format!("service {id}"))
    }
    async fn service_logs(&self, id: &str, opts: LogsOptions) -> BackendResult<Logs> {
        if id != "web" && id != "svc1" {
            return nf(&format!("service {id}"));
        }
        let ts = chrono::DateTime::parse_from_rfc3339("2026-11-23T08:49:25.575405293Z")
            .unwrap()
            .to_utc();
        let attrs = vec![
            ("com.docker.swarm.task.id".to_string(), "task1".to_string()),
            (
                "com.docker.swarm.service.id".to_string(),
                "svc1".to_string(),
            ),
            ("com.docker.swarm.node.id".to_string(), SELF_ID.to_string()),
        ];
        let mut lines = vec![
            Ok(LogLine {
                stream: StdStream::Stdout,
                timestamp: ts,
                attrs: attrs.clone(),
                line: Bytes::from_static(b"line 0\n"),
            }),
            Ok(LogLine {
                stream: StdStream::Stderr,
                timestamp: ts,
                attrs,
                line: Bytes::from_static(b"oops\n"),
            }),
        ];
        if opts.follow {
            lines.push(Err(ApiError::internal("task vanished")));
        }
        Ok(Logs {
            tty: false,
            lines: futures::stream::iter(lines).boxed(),
        })
    }
    async fn task_list(&self, _f: Filters) -> BackendResult<Vec<Task>> {
        Ok(vec![])
    }
    async fn task_inspect(&self, id: &str) -> BackendResult<Task> {
        if id != "task1" {
            return nf(&format!("task {id}"));
        }
        Ok(from(json!({
            "ID": "task1", "Version": {"Index": 12},
            "CreatedAt": "2026-11-23T08:47:52Z", "UpdatedAt": "2026-11-23T08:47:52Z",
            "Spec": {"ContainerSpec": {"Image": "busybox"}}, "ServiceID": "svc1", "Slot": 1,
            "NodeID": SELF_ID, "Status": {"Timestamp": "2026-11-23T08:47:52Z", "State": "running", "Message": "started"},
            "DesiredState": "running"
        })))
    }
    async fn task_logs(&self, id: &str, _o: LogsOptions) -> BackendResult<Logs> {
        nf(&format!("task {id}"))
    }
    async fn secret_list(&self, _f: Filters) -> BackendResult<Vec<Secret>> {
        Ok(vec![])
    }
    async fn secret_create(&self, _s: SecretSpec) -> BackendResult<IdResponse> {
        Ok(IdResponse { id: "sec1".into() })
    }
    async fn secret_inspect(&self, id: &str) -> BackendResult<Secret> {
        nf(&format!("secret {id}"))
    }
    async fn secret_update(&self, id: &str, _v: u64, _s: SecretSpec) -> BackendResult<()> {
        nf(&format!("secret {id}"))
    }
    async fn secret_remove(&self, _id: &str) -> BackendResult<()> {
        Ok(())
    }
    async fn config_list(&self, _f: Filters) -> BackendResult<Vec<Config>> {
        Ok(vec![])
    }
    async fn config_create(&self, _s: ConfigSpec) -> BackendResult<IdResponse> {
        Ok(IdResponse { id: "cfg1".into() })
    }
    async fn config_inspect(&self, id: &str) -> BackendResult<Config> {
        nf(&format!("config {id}"))
    }
    async fn config_update(&self, id: &str, _v: u64, _s: ConfigSpec) -> BackendResult<()> {
        nf(&format!("config {id}"))
    }
    async fn config_remove(&self, _id: &str) -> BackendResult<()> {
        Ok(())
    }
    async fn network_list(&self, _f: Filters) -> BackendResult<Vec<NetworkInspect>> {
        Ok(vec![])
    }
    async fn network_inspect(&self, id: &str, _s: &str, _v: bool) -> BackendResult<NetworkInspect> {
        nf(&format!("network {id}"))
    }
    async fn network_create(
        &self,
        _r: NetworkCreateRequest,
    ) -> BackendResult<NetworkCreateResponse> {
        Ok(NetworkCreateResponse {
            id: "net1".into(),
            warning: String::new(),
        })
    }
    async fn network_remove(&self, _id: &str) -> BackendResult<()> {
        Ok(())
    }
    async fn network_prune(&self, _f: Filters) -> BackendResult<Value> {
        Ok(json!({"NetworksDeleted": []}))
    }
    async fn container_inspect(&self, id: &str, _size: bool) -> BackendResult<Value> {
        if id != "c1" {
            return nf(&format!("No such container: {id}"));
        }
        Ok(
            json!({"Id": "c1c1c1c1c1c1c1c1", "Name": "/c1", "State": {"Status": "running", "Running": true},
                  "Config": {"Tty": false, "Image": "busybox"}}),
        )
    }
    async fn container_wait(&self, id: &str, condition: &str) -> BackendResult<Value> {
        self.container_inspect(id, false).await?;
        // "removed" fails here so the error shape of a wait that ends badly is visible.
        if condition == "removed" {
            return Err(ApiError::conflict("container c1 is still there"));
        }
        Ok(json!({"StatusCode": 3}))
    }
    async fn exec_create(&self, container: &str, body: Value) -> BackendResult<Value> {
        self.container_inspect(container, false).await?;
        if body
            .get("Cmd")
            .and_then(Value::as_array)
            .is_none_or(|c| c.is_empty())
        {
            return Err(ApiError::invalid_argument("No exec command specified"));
        }
        Ok(json!({"Id": "exec1"}))
    }
    async fn exec_start(
        &self,
        id: &str,
        _body: Value,
        _stdin: Option<shoal_api::ByteStream>,
    ) -> BackendResult<Logs> {
        if id != "exec1" {
            return nf(&format!("No such exec instance: {id}"));
        }
        let now = chrono::Utc::now();
        let lines = vec![
            Ok(LogLine {
                stream: StdStream::Stdout,
                timestamp: now,
                attrs: vec![],
                line: Bytes::from_static(b"hi\n"),
            }),
            Ok(LogLine {
                stream: StdStream::Stderr,
                timestamp: now,
                attrs: vec![],
                line: Bytes::from_static(b"warn\n"),
            }),
        ];
        Ok(Logs {
            tty: false,
            lines: futures::stream::iter(lines).boxed(),
        })
    }
    async fn exec_inspect(&self, id: &str) -> BackendResult<Value> {
        if id != "exec1" {
            return nf(&format!("No such exec instance: {id}"));
        }
        Ok(
            json!({"ID": "exec1", "Running": false, "ExitCode": 3, "ContainerID": "c1c1c1c1c1c1c1c1", "Pid": 0}),
        )
    }
    async fn image_pull(
        &self,
        opts: shoal_api::ImagePullOptions,
    ) -> BackendResult<shoal_api::ProgressStream> {
        let reference = format!(
            "{}:{}",
            opts.from_image,
            if opts.tag.is_empty() {
                "latest"
            } else {
                &opts.tag
            }
        );
        let mut items = vec![
            Ok(json!({"status": format!("Pulling from {}", opts.from_image), "id": opts.tag})),
            Ok(
                json!({"status": "Digest: sha256:0000000000000000000000000000000000000000000000000000000000000000"}),
            ),
        ];
        if opts.from_image.contains("broken") {
            items.push(Err(ApiError::not_found("manifest unknown")));
        } else {
            items.push(Ok(
                json!({"status": format!("Status: Downloaded newer image for {reference}")}),
            ));
        }
        Ok(futures::stream::iter(items).boxed())
    }
    async fn distribution_inspect(&self, name: &str, _a: Option<String>) -> BackendResult<Value> {
        Ok(
            json!({"Descriptor": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:00", "size": 1}, "Platforms": [], "Name": name}),
        )
    }
}

/// A server on a unique temp socket, stopped when dropped.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub fake: Arc<Fake>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("shoal.sock");
        let fake = Arc::new(Fake::default());
        let server = Server::bind_unix(&sock, fake.clone())
            .await
            .unwrap()
            .with_grace(std::time::Duration::from_millis(300));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            dir,
            sock,
            fake,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A response read off the wire with `Connection: close`.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request byte-for-byte and parses the reply (chunked bodies decoded).
pub async fn raw(
    sock: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Raw {
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    if let Some(b) = body {
        // The server may answer (and close) before reading an oversized body.
        let _ = s.write_all(b).await;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let read_all = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read_all)
        .await
        .expect("response within 10 s");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut rest = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        rest = dechunk(&rest);
    }
    Raw {
        status,
        headers,
        body: rest,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        b = &b[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    out
}
