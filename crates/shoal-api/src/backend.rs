//! The trait the daemon implements to serve the API. One method per endpoint; the HTTP layer
//! (routing, query parsing, status codes, framing) stays in this crate.

use crate::types::{
    ApiError, ClusterSpec, Config, ConfigSpec, EventMessage, Filters, InitRequest, JoinRequest,
    NetworkCreateRequest, NetworkInspect, Node, NodeSpec, Secret, SecretSpec, Service, ServiceSpec,
    Swarm, SystemInfo, SystemVersion, Task, UnlockKeyResponse, UnlockRequest, UpdateFlags,
};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde_json::Value;

use crate::responses::{
    IdResponse, NetworkCreateResponse, ServiceCreateResponse, ServiceUpdateResponse,
};
use crate::stream::LogStream;

/// Result of every backend call.
pub type BackendResult<T> = Result<T, ApiError>;

/// A stream of JSON progress messages (image pull/push/load); an `Err` ends it with an
/// `errorDetail` message.
pub type ProgressStream = BoxStream<'static, Result<Value, ApiError>>;
/// A stream of raw bytes (an image archive for `GET /images/get`, or a request body).
pub type ByteStream = BoxStream<'static, Result<Bytes, ApiError>>;
/// The events stream; the server ends it at `until`.
pub type EventStream = BoxStream<'static, EventMessage>;

/// Options of `GET /services/{id}/logs`, `/tasks/{id}/logs` and `/containers/{id}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Only lines at or after this time (`since=<unix>[.<nanos>]` or RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only lines before this time.
    pub until: Option<DateTime<Utc>>,
    /// Last N lines; None means all.
    pub tail: Option<u64>,
    pub timestamps: bool,
    pub details: bool,
}

/// A log stream plus whether the source is a TTY (raw framing instead of stdcopy).
pub struct Logs {
    pub tty: bool,
    pub lines: LogStream,
}

/// Query of `POST /containers/{id}/attach`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    /// Keep streaming until the container stops.
    pub stream: bool,
    /// Replay the output written before the attach.
    pub logs: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Query of `GET /events`.
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub filters: Filters,
}

/// Query of `POST /services/{id}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceUpdateOptions {
    /// The `?version=` the client read.
    pub version: u64,
    /// `spec` or `previous-spec` (empty: keep the current auth).
    pub registry_auth_from: String,
    /// `previous` to roll back to `PreviousSpec`.
    pub rollback: String,
    /// The `X-Registry-Auth` header, base64 JSON, if sent.
    pub registry_auth: Option<String>,
}

/// Query of `GET /containers/json`.
#[derive(Debug, Clone, Default)]
pub struct ContainerListOptions {
    pub all: bool,
    pub limit: Option<i64>,
    pub size: bool,
    pub filters: Filters,
}

/// Query of `POST /images/create` (pull).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImagePullOptions {
    pub from_image: String,
    pub tag: String,
    pub platform: String,
    pub registry_auth: Option<String>,
}

fn unsupported<T>(what: &str) -> BackendResult<T> {
    Err(ApiError::internal(format!(
        "{what} is not supported by this daemon"
    )))
}

/// Everything the API server needs from the daemon. Cluster methods are required; the
/// standalone container, image, volume and distribution methods default to a clear
/// "not supported by this daemon" error so a daemon can serve the cluster API first.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    // ---- system ----
    /// Value of the `Swarm` header on `/_ping`: `inactive`, `pending`, `error`, `locked`,
    /// `active/worker` or `active/manager`.
    async fn swarm_ping_state(&self) -> String;
    async fn version(&self) -> BackendResult<SystemVersion>;
    async fn info(&self) -> BackendResult<SystemInfo>;
    /// Past events from `since` (replay) followed by live ones. The server closes the stream
    /// at `until`; the backend may end it earlier.
    async fn events(&self, opts: EventsOptions) -> BackendResult<EventStream>;

    // ---- swarm ----
    async fn swarm_inspect(&self) -> BackendResult<Swarm>;
    /// Returns the new node's ID.
    async fn swarm_init(&self, req: InitRequest) -> BackendResult<String>;
    async fn swarm_join(&self, req: JoinRequest) -> BackendResult<()>;
    async fn swarm_leave(&self, force: bool) -> BackendResult<()>;
    async fn swarm_update(
        &self,
        version: u64,
        spec: ClusterSpec,
        flags: UpdateFlags,
    ) -> BackendResult<()>;
    async fn swarm_unlock(&self, req: UnlockRequest) -> BackendResult<()>;
    async fn swarm_unlock_key(&self) -> BackendResult<UnlockKeyResponse>;

    // ---- nodes ({id}: full ID, name or unique prefix) ----
    async fn node_list(&self, filters: Filters) -> BackendResult<Vec<Node>>;
    async fn node_inspect(&self, id: &str) -> BackendResult<Node>;
    async fn node_update(&self, id: &str, version: u64, spec: NodeSpec) -> BackendResult<()>;
    async fn node_remove(&self, id: &str, force: bool) -> BackendResult<()>;

    // ---- services ----
    /// With `status`, fill in `ServiceStatus` (and `JobStatus` for jobs).
    async fn service_list(&self, filters: Filters, status: bool) -> BackendResult<Vec<Service>>;
    async fn service_inspect(&self, id: &str, insert_defaults: bool) -> BackendResult<Service>;
    async fn service_create(
        &self,
        spec: ServiceSpec,
        registry_auth: Option<String>,
    ) -> BackendResult<ServiceCreateResponse>;
    async fn service_update(
        &self,
        id: &str,
        spec: ServiceSpec,
        opts: ServiceUpdateOptions,
    ) -> BackendResult<ServiceUpdateResponse>;
    async fn service_remove(&self, id: &str) -> BackendResult<()>;
    async fn service_logs(&self, id: &str, opts: LogsOptions) -> BackendResult<Logs>;

    // ---- tasks ----
    async fn task_list(&self, filters: Filters) -> BackendResult<Vec<Task>>;
    async fn task_inspect(&self, id: &str) -> BackendResult<Task>;
    async fn task_logs(&self, id: &str, opts: LogsOptions) -> BackendResult<Logs>;

    // ---- secrets ----
    async fn secret_list(&self, filters: Filters) -> BackendResult<Vec<Secret>>;
    async fn secret_create(&self, spec: SecretSpec) -> BackendResult<IdResponse>;
    async fn secret_inspect(&self, id: &str) -> BackendResult<Secret>;
    async fn secret_update(&self, id: &str, version: u64, spec: SecretSpec) -> BackendResult<()>;
    async fn secret_remove(&self, id: &str) -> BackendResult<()>;

    // ---- configs ----
    async fn config_list(&self, filters: Filters) -> BackendResult<Vec<Config>>;
    async fn config_create(&self, spec: ConfigSpec) -> BackendResult<IdResponse>;
    async fn config_inspect(&self, id: &str) -> BackendResult<Config>;
    async fn config_update(&self, id: &str, version: u64, spec: ConfigSpec) -> BackendResult<()>;
    async fn config_remove(&self, id: &str) -> BackendResult<()>;

    // ---- networks ----
    async fn network_list(&self, filters: Filters) -> BackendResult<Vec<NetworkInspect>>;
    /// `scope` is the `?scope=` filter (e.g. `swarm`), empty for any.
    async fn network_inspect(
        &self,
        id: &str,
        scope: &str,
        verbose: bool,
    ) -> BackendResult<NetworkInspect>;
    async fn network_create(
        &self,
        req: NetworkCreateRequest,
    ) -> BackendResult<NetworkCreateResponse>;
    async fn network_remove(&self, id: &str) -> BackendResult<()>;
    /// Returns `{"NetworksDeleted":[…]}`.
    async fn network_prune(&self, filters: Filters) -> BackendResult<Value>;
    /// `POST /networks/{id}/connect`: joins an existing container to the network with the
    /// request's `EndpointConfig` (aliases).
    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: crate::types::container::EndpointSettings,
    ) -> BackendResult<()> {
        let _ = (network, container, endpoint);
        unsupported("connecting a container to a network")
    }
    /// `POST /networks/{id}/disconnect`: takes the container off the network (`force`: also
    /// when the container is gone or the network cannot be reached).
    async fn network_disconnect(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> BackendResult<()> {
        let _ = (network, container, force);
        unsupported("disconnecting a container from a network")
    }

    // ---- distribution ----
    /// `{"Descriptor":{…},"Platforms":[…]}` for an image reference (may contain `/`, `:`, `@`).
    async fn distribution_inspect(
        &self,
        name: &str,
        registry_auth: Option<String>,
    ) -> BackendResult<Value> {
        let _ = (name, registry_auth);
        unsupported("registry distribution inspect")
    }

    // ---- standalone containers (moby `container.Summary` / `InspectResponse` shapes) ----
    async fn container_list(&self, opts: ContainerListOptions) -> BackendResult<Vec<Value>> {
        let _ = opts;
        unsupported("listing containers")
    }
    /// Body is moby's `container.CreateRequest`; returns `{"Id","Warnings"}`.
    async fn container_create(&self, name: Option<String>, body: Value) -> BackendResult<Value> {
        let _ = (name, body);
        unsupported("creating containers")
    }
    async fn container_start(&self, id: &str) -> BackendResult<()> {
        let _ = id;
        unsupported("starting containers")
    }
    /// `timeout` in seconds (None: the container's own stop timeout).
    async fn container_stop(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> BackendResult<()> {
        let _ = (id, timeout, signal);
        unsupported("stopping containers")
    }
    async fn container_restart(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> BackendResult<()> {
        let _ = (id, timeout, signal);
        unsupported("restarting containers")
    }
    async fn container_kill(&self, id: &str, signal: Option<String>) -> BackendResult<()> {
        let _ = (id, signal);
        unsupported("killing containers")
    }
    /// Blocks until the condition (`not-running`, `next-exit`, `removed`); returns
    /// `{"StatusCode":N,"Error":null}`.
    async fn container_wait(&self, id: &str, condition: &str) -> BackendResult<Value> {
        let _ = (id, condition);
        unsupported("waiting for containers")
    }
    async fn container_inspect(&self, id: &str, size: bool) -> BackendResult<Value> {
        let _ = (id, size);
        unsupported("inspecting containers")
    }
    async fn container_logs(&self, id: &str, opts: LogsOptions) -> BackendResult<Logs> {
        let _ = (id, opts);
        unsupported("container logs")
    }
    /// Returns `{"Titles":[…],"Processes":[[…]]}`.
    async fn container_top(&self, id: &str, ps_args: &str) -> BackendResult<Value> {
        let _ = (id, ps_args);
        unsupported("listing container processes")
    }
    async fn container_remove(&self, id: &str, force: bool, volumes: bool) -> BackendResult<()> {
        let _ = (id, force, volumes);
        unsupported("removing containers")
    }
    /// `POST /containers/{id}/attach`: the container's output from now on (and its earlier
    /// output with `logs`), ending when it stops; attaching to a created container waits for
    /// its start.
    async fn container_attach(&self, id: &str, opts: AttachOptions) -> BackendResult<Logs> {
        let _ = (id, opts);
        unsupported("attaching to containers")
    }
    /// Body is moby's `ExecOptions`; returns `{"Id"}`.
    async fn exec_create(&self, container: &str, body: Value) -> BackendResult<Value> {
        let _ = (container, body);
        unsupported("exec")
    }
    /// Body is `{"Detach","Tty"}`; the output comes back as log lines (stdout/stderr).
    /// `stdin` carries what the client sends on the hijacked connection (`exec -i`); its end
    /// means the client closed its input.
    async fn exec_start(
        &self,
        id: &str,
        body: Value,
        stdin: Option<ByteStream>,
    ) -> BackendResult<Logs> {
        let _ = (id, body, stdin);
        unsupported("exec")
    }
    /// `POST /exec/{id}/resize?h=&w=`: the terminal size of a TTY session.
    async fn exec_resize(&self, id: &str, height: u16, width: u16) -> BackendResult<()> {
        let _ = (id, height, width);
        unsupported("resizing exec terminals")
    }
    async fn exec_inspect(&self, id: &str) -> BackendResult<Value> {
        let _ = id;
        unsupported("exec")
    }

    // ---- images ----
    async fn image_list(&self, all: bool, filters: Filters) -> BackendResult<Vec<Value>> {
        let _ = (all, filters);
        unsupported("listing images")
    }
    async fn image_pull(&self, opts: ImagePullOptions) -> BackendResult<ProgressStream> {
        let _ = opts;
        unsupported("pulling images")
    }
    async fn image_inspect(&self, name: &str) -> BackendResult<Value> {
        let _ = name;
        unsupported("inspecting images")
    }
    async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> BackendResult<()> {
        let _ = (name, repo, tag);
        unsupported("tagging images")
    }
    /// Returns the `[{"Untagged"|"Deleted":…}]` list.
    async fn image_remove(&self, name: &str, force: bool, noprune: bool) -> BackendResult<Value> {
        let _ = (name, force, noprune);
        unsupported("removing images")
    }
    async fn image_push(
        &self,
        name: &str,
        tag: &str,
        registry_auth: Option<String>,
    ) -> BackendResult<ProgressStream> {
        let _ = (name, tag, registry_auth);
        unsupported("pushing images")
    }
    /// `archive` is the request body (a `docker save` tar).
    /// `docker import`: `rootfs` is a filesystem tarball; `changes` are Dockerfile
    /// instructions (CMD, ENV, …) for the image config; tagged `reference` when given.
    async fn image_import(
        &self,
        rootfs: ByteStream,
        reference: Option<String>,
        changes: Vec<String>,
    ) -> BackendResult<ProgressStream> {
        let _ = (rootfs, reference, changes);
        unsupported("importing images")
    }
    async fn image_load(&self, archive: ByteStream, quiet: bool) -> BackendResult<ProgressStream> {
        let _ = (archive, quiet);
        unsupported("loading images")
    }
    /// A tar archive of the named images (`docker save`).
    async fn image_save(&self, names: Vec<String>) -> BackendResult<ByteStream> {
        let _ = names;
        unsupported("saving images")
    }
    /// Returns `{"ImagesDeleted":[…],"SpaceReclaimed":N}`.
    async fn image_prune(&self, filters: Filters) -> BackendResult<Value> {
        let _ = filters;
        unsupported("pruning images")
    }

    // ---- volumes ----
    /// Returns `{"Volumes":[…],"Warnings":[]}`.
    async fn volume_list(&self, filters: Filters) -> BackendResult<Value> {
        let _ = filters;
        unsupported("listing volumes")
    }
    async fn volume_create(&self, body: Value) -> BackendResult<Value> {
        let _ = body;
        unsupported("creating volumes")
    }
    async fn volume_inspect(&self, name: &str) -> BackendResult<Value> {
        let _ = name;
        unsupported("inspecting volumes")
    }
    async fn volume_remove(&self, name: &str, force: bool) -> BackendResult<()> {
        let _ = (name, force);
        unsupported("removing volumes")
    }
    /// Returns `{"VolumesDeleted":[…],"SpaceReclaimed":N}`.
    async fn volume_prune(&self, filters: Filters) -> BackendResult<Value> {
        let _ = filters;
        unsupported("pruning volumes")
    }
}
