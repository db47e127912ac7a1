//! Standalone containers on attachable overlay networks (`run --network <overlay>` on any
//! node), the node side.
//!
//! Before the container is created the daemon asks the leader for an address
//! (`Dispatcher.AttachNetwork`, see `shoal_manager::attachment`); the reply is a network
//! attachment task with the address, which the data plane wires exactly like a service task's
//! network (namespace, veth into the overlay, gateway bridge, DNS on 127.0.0.11, VIP tables).
//! The container joins that namespace. While it runs, its name (and aliases) are published to
//! the other nodes through gossip; when it is removed the namespace goes and the attachment is
//! released (`DetachNetwork`). What a restarted daemon needs to adopt the wiring again is kept
//! in `<data root>/attachments/<attachment id>.json`.
//!
//! The managers also dispatch the attachment task to this node's agent (so it shows as
//! running); [`AttachmentAwareExecutor`] answers for those tasks without ever touching the
//! container, which belongs to the user.
//!
//! `network connect` asks for one more attachment and wires it into the same namespace as the
//! next `ethN` (running or stopped: a stopped container finds it when it starts, as in
//! Docker); `network disconnect` unwires it and releases it. Those extra attachments are kept
//! in the container's record.

use super::Daemon;
use super::active::mtls_channels;
use super::executor::ContainerExecutor;
use super::netplane::{self, NetPlane};
use super::swarm::Slot;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shoal_agent::worker::{ExecError, Exit, TaskExecutor};
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::{AttachNetworkRequest, DetachNetworkRequest};
use shoal_runtime::container::{self as rt, NetworkMode};
use shoal_types::container::{ContainerCreateRequest, EndpointSettings};
use shoal_types::network::NetworkInspect;
use shoal_types::task::NetworkAttachment;
use shoal_types::{ApiError, Config, Network, Object, Secret, Task};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Under the data root: one file per attachment of this node.
const DIR: &str = "attachments";
/// One RPC to the managers (AttachNetwork waits for the allocator: up to 15 s there).
const RPC_TIMEOUT: Duration = Duration::from_secs(25);
/// A dispatched attachment task whose container never appeared is given up after this long.
const ORPHAN_AFTER: Duration = Duration::from_secs(120);
/// How often the agent's view of an attachment checks that its container still exists.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What this node keeps about one attachment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub attachment_id: String,
    pub container_id: String,
    pub container_name: String,
    /// The attachment task as the managers allocated it (network copy, address, aliases);
    /// the attachments of networks connected later follow the first in
    /// `networks_attachments`.
    pub task: Task,
    /// Attachments added by `network connect` (their tasks' IDs and networks).
    #[serde(default)]
    pub connected: Vec<Connected>,
    /// Attachments already unwired whose release the managers have not confirmed yet
    /// (retried by [`reconcile`]).
    #[serde(default)]
    pub releasing: Vec<String>,
}

/// One network joined by `network connect`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connected {
    pub attachment_id: String,
    pub network_id: String,
}

impl Record {
    fn attachment(&self) -> Option<&NetworkAttachment> {
        self.task.networks_attachments.first()
    }

    fn network(&self) -> Option<&Network> {
        self.attachment().map(|a| &a.network)
    }

    /// The attachment task behind network `network_id` of this container.
    fn attachment_id_of(&self, network_id: &str) -> Option<&str> {
        if self.network().is_some_and(|n| n.id == network_id) {
            return Some(&self.attachment_id);
        }
        self.connected
            .iter()
            .find(|c| c.network_id == network_id)
            .map(|c| c.attachment_id.as_str())
    }

    /// Every attachment task this record holds on the managers.
    fn held(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.attachment_id.as_str())
            .chain(self.connected.iter().map(|c| c.attachment_id.as_str()))
            .chain(self.releasing.iter().map(String::as_str))
    }

    /// The attached network `key` names (ID, name or ID prefix).
    fn find_network(&self, key: &str) -> Option<&NetworkAttachment> {
        let nets = &self.task.networks_attachments;
        nets.iter()
            .find(|a| a.network.id == key || a.network.spec.annotations.name == key)
            .or_else(|| {
                let mut by_prefix = nets.iter().filter(|a| a.network.id.starts_with(key));
                match (by_prefix.next(), by_prefix.next()) {
                    (Some(a), None) => Some(a),
                    _ => None,
                }
            })
    }
}

fn dir(data_root: &Path) -> PathBuf {
    data_root.join(DIR)
}

/// The records on disk (unreadable files are skipped with a warning).
fn load(data_root: &Path) -> BTreeMap<String, Record> {
    let Ok(rd) = std::fs::read_dir(dir(data_root)) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => {
                out.insert(r.attachment_id.clone(), r);
            }
            Err(e) => tracing::warn!(file = %p.display(), "unreadable attachment record: {e}"),
        }
    }
    out
}

/// The records of each data root, read from disk once: `save` and `forget` are the only
/// writers, and container start/stop, `ps`, `inspect` and the agent all look them up.
static RECORDS: Mutex<BTreeMap<PathBuf, BTreeMap<String, Record>>> = Mutex::new(BTreeMap::new());

fn with_records<T>(data_root: &Path, f: impl FnOnce(&mut BTreeMap<String, Record>) -> T) -> T {
    let mut all = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
    let recs = all
        .entry(data_root.to_path_buf())
        .or_insert_with(|| load(data_root));
    f(recs)
}

/// Every attachment recorded on this node.
pub fn records(data_root: &Path) -> Vec<Record> {
    with_records(data_root, |r| r.values().cloned().collect())
}

/// Attachment IDs recorded on this node: their namespaces are not leftovers.
pub fn persisted_ids(data_root: &Path) -> Vec<String> {
    with_records(data_root, |r| r.keys().cloned().collect())
}

fn by_container(data_root: &Path, container: &str) -> Option<Record> {
    with_records(data_root, |r| {
        r.values().find(|r| r.container_id == container).cloned()
    })
}

/// The record holding attachment `id` (its first network or one connected later).
fn by_attachment(data_root: &Path, id: &str) -> Option<Record> {
    with_records(data_root, |recs| {
        recs.get(id).cloned().or_else(|| {
            recs.values()
                .find(|r| r.connected.iter().any(|c| c.attachment_id == id))
                .cloned()
        })
    })
}

fn save(data_root: &Path, r: &Record) -> std::io::Result<()> {
    let d = dir(data_root);
    std::fs::create_dir_all(&d)?;
    let tmp = d.join(format!(".{}.tmp", r.attachment_id));
    std::fs::write(&tmp, serde_json::to_vec(r)?)?;
    std::fs::rename(tmp, d.join(format!("{}.json", r.attachment_id)))?;
    with_records(data_root, |recs| {
        recs.insert(r.attachment_id.clone(), r.clone())
    });
    Ok(())
}

fn forget(data_root: &Path, attachment_id: &str) {
    let _ = std::fs::remove_file(dir(data_root).join(format!("{attachment_id}.json")));
    with_records(data_root, |recs| recs.remove(attachment_id));
}

/// Containers whose records this process published (running) or withdrew (stopped).
static PUBLISHED: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());

fn published(container: &str) -> Option<bool> {
    let m = PUBLISHED.lock().unwrap_or_else(|p| p.into_inner());
    m.get(container).copied()
}

fn set_published(container: &str, v: Option<bool>) {
    let mut m = PUBLISHED.lock().unwrap_or_else(|p| p.into_inner());
    match v {
        Some(v) => m.insert(container.to_string(), v),
        None => m.remove(container),
    };
}

// ---- calls to the managers ----

/// Channels to the managers and the addresses to try, leader first; None off a swarm.
async fn cluster(d: &Daemon) -> Option<(shoal_store::ChannelFactory, Vec<String>)> {
    let slot = d.slot.read().await;
    let Slot::Active(node) = &*slot else {
        return None;
    };
    let mut targets: Vec<String> = Vec::new();
    if let Some(leader) = node.session.borrow().manager.clone() {
        targets.push(leader);
    }
    for m in node
        .session
        .borrow()
        .managers
        .iter()
        .chain(&node.local.managers)
    {
        if !targets.contains(m) {
            targets.push(m.clone());
        }
    }
    Some((mtls_channels(&node.creds), targets))
}

/// One Dispatcher call on the leader, following `x-shoal-leader` from followers.
async fn call<T, F, Fut>(d: &Daemon, f: F) -> Result<T, Status>
where
    F: Fn(DispatcherClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let Some((channels, mut targets)) = cluster(d).await else {
        return Err(Status::failed_precondition(
            "this node is not part of a swarm",
        ));
    };
    let mut last = Status::unavailable("no manager is known to this node");
    for _ in 0..6 {
        if targets.is_empty() {
            break;
        }
        let addr = targets.remove(0);
        let ch = match channels(&addr) {
            Ok(c) => c,
            Err(e) => {
                last = Status::unavailable(format!("{addr}: {e:#}"));
                continue;
            }
        };
        match tokio::time::timeout(RPC_TIMEOUT, f(DispatcherClient::new(ch))).await {
            Ok(Ok(r)) => return Ok(r.into_inner()),
            Ok(Err(s)) if s.code() == Code::Unavailable => {
                if let Some(l) = s
                    .metadata()
                    .get("x-shoal-leader")
                    .and_then(|v| v.to_str().ok())
                    .filter(|l| *l != addr)
                {
                    targets.retain(|t| t != l);
                    targets.insert(0, l.to_string());
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                last = s;
            }
            Ok(Err(s)) => return Err(s),
            Err(_) => last = Status::deadline_exceeded(format!("{addr} did not answer")),
        }
    }
    Err(last)
}

async fn detach(d: &Daemon, attachment_id: &str) -> Result<(), Status> {
    let id = attachment_id.to_string();
    match call(d, |mut c| {
        let req = DetachNetworkRequest {
            attachment_id: id.clone(),
        };
        async move { c.detach_network(req).await }
    })
    .await
    {
        Ok(_) => Ok(()),
        // Already gone (reaped, or a previous try got through).
        Err(s) if s.code() == Code::NotFound => Ok(()),
        Err(s) => Err(s),
    }
}

/// Docker's wording for a refused attachment (the gRPC error as its daemon prints it).
fn attach_error(network: &str, s: &Status) -> ApiError {
    let msg = format!(
        "Could not attach to network {network}: rpc error: code = {:?} desc = {}",
        s.code(),
        s.message()
    );
    match s.code() {
        Code::NotFound => ApiError::not_found(format!("network {network} not found")),
        Code::PermissionDenied => ApiError::permission_denied(msg),
        // A concurrent connect of the same container got there first.
        Code::AlreadyExists => ApiError::permission_denied(s.message()),
        Code::InvalidArgument => ApiError::invalid_argument(msg),
        _ => ApiError::unavailable(msg),
    }
}

// ---- container create / remove ----

/// An address on a swarm network, wired into a namespace, for a container about to be created.
pub struct Prepared {
    record: Record,
    plane: Arc<NetPlane>,
}

/// `create` with a network mode naming a swarm network: asks the managers for an address and
/// wires the container's namespace; `cfg` then joins it. Unknown networks, networks that are
/// not attachable and nodes outside a swarm are refused, and nothing is left behind.
pub async fn prepare(
    d: &Daemon,
    network: &str,
    req: &ContainerCreateRequest,
    cfg: &mut rt::ContainerConfig,
) -> Result<Prepared, ApiError> {
    if cluster(d).await.is_none() {
        return Err(ApiError::not_found(format!("network {network} not found")));
    }
    let plane = netplane::for_data_root(&d.cfg.data_root).ok_or_else(|| {
        ApiError::unavailable("the node data plane is unavailable: overlay networks cannot be used")
    })?;
    let name = cfg
        .name
        .get_or_insert_with(shoal_types::names::random_name)
        .clone();
    let aliases = req
        .networking_config
        .endpoints_config
        .get(network)
        .map(|e| e.aliases.clone())
        .unwrap_or_default();
    let net = network.to_string();
    let resp = call(d, |mut c| {
        let req = AttachNetworkRequest {
            network: net.clone(),
            container_id: String::new(),
            container_name: name.clone(),
            aliases: aliases.clone(),
        };
        async move { c.attach_network(req).await }
    })
    .await
    .map_err(|s| attach_error(network, &s))?;
    let task: Task = match serde_json::from_slice(&resp.task_json) {
        Ok(t) => t,
        Err(e) => {
            let _ = detach(d, &resp.attachment_id).await;
            return Err(ApiError::internal(format!(
                "the managers sent an unreadable attachment: {e}"
            )));
        }
    };
    let wired = match plane.prepare_task(&task).await {
        Ok(w) => w,
        Err(e) => {
            if let Err(s) = detach(d, &task.id).await {
                tracing::warn!(attachment = %task.id, "releasing the attachment: {}", s.message());
            }
            return Err(ApiError::internal(format!("network {network}: {e}")));
        }
    };
    cfg.network = NetworkMode::Netns(wired.netns_path);
    cfg.resolv_conf = Some(wired.resolv_conf);
    cfg.addresses = task
        .networks_attachments
        .iter()
        .flat_map(|a| a.addresses.iter())
        .filter_map(|a| a.split('/').next().map(str::to_string))
        .collect();
    Ok(Prepared {
        record: Record {
            attachment_id: task.id.clone(),
            container_id: String::new(),
            container_name: name,
            task,
            connected: Vec::new(),
            releasing: Vec::new(),
        },
        plane,
    })
}

/// The container exists now: remember the attachment (a restarted daemon adopts it). On an
/// error the attachment is already released; the caller removes the container.
pub async fn bind(d: &Daemon, p: Prepared, container: &str) -> Result<(), ApiError> {
    let mut r = p.record;
    r.container_id = container.to_string();
    if let Some(s) = r.task.network_attachment_spec.as_mut() {
        s.container_id = container.to_string();
    }
    if let Err(e) = save(&d.cfg.data_root, &r) {
        // Without the record nothing would ever release it: undo now (the caller removes
        // the container).
        abort(
            d,
            Prepared {
                record: r,
                plane: p.plane,
            },
        )
        .await;
        return Err(ApiError::internal(format!(
            "recording the network attachment: {e}"
        )));
    }
    p.plane.bind_container(&r.attachment_id, container).await;
    set_published(container, Some(false));
    Ok(())
}

/// The container could not be created: unwire and release the address.
pub async fn abort(d: &Daemon, p: Prepared) {
    p.plane.release_task(&p.record.attachment_id).await;
    if let Err(s) = detach(d, &p.record.attachment_id).await {
        tracing::warn!(attachment = %p.record.attachment_id, "releasing the attachment: {}", s.message());
    }
}

/// Brings attachments in line with their containers: removed ones leave the network and
/// release their address; running ones are published to the other nodes, stopped ones
/// withdrawn; after a daemon restart the wiring is adopted again. Run after container
/// start/stop/remove and periodically.
pub async fn reconcile(d: &Daemon) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let recs = records(&d.cfg.data_root);
    if recs.is_empty() {
        return;
    }
    let plane = netplane::for_data_root(&d.cfg.data_root);
    for r in recs {
        let state = d
            .runtime
            .inspect(&r.container_id)
            .ok()
            .map(|c| c.state.is_running());
        let Some(running) = state else {
            // Removed: unwire first (the container is gone), then give the address back.
            if let Some(p) = &plane {
                p.release_container(&r.container_id).await;
            }
            set_published(&r.container_id, None);
            match detach_all(d, r.held()).await {
                Ok(()) => forget(&d.cfg.data_root, &r.attachment_id),
                Err(s) if cluster(d).await.is_none() => {
                    tracing::info!(attachment = %r.attachment_id, "forgetting an attachment off the swarm: {}", s.message());
                    forget(&d.cfg.data_root, &r.attachment_id);
                }
                Err(s) => {
                    tracing::warn!(attachment = %r.attachment_id, "releasing the attachment (will retry): {}", s.message())
                }
            }
            continue;
        };
        if !r.releasing.is_empty() {
            finish_releases(d, &r).await;
        }
        let Some(p) = &plane else { continue };
        if published(&r.container_id).is_none() {
            // Not wired by this process: a restarted daemon adopts the namespace.
            match p.restore(&r.task, &r.container_id, false).await {
                Ok(()) => set_published(&r.container_id, Some(false)),
                Err(e) => {
                    tracing::debug!(container = %r.container_id, "adopting the attachment's network (will retry): {e:#}");
                    continue;
                }
            }
        }
        if published(&r.container_id) != Some(running) {
            if running {
                p.container_running(&r.container_id).await;
            } else {
                p.container_stopping(&r.container_id).await;
            }
            set_published(&r.container_id, Some(running));
        }
    }
}

/// Releases every attachment in `ids`; the first refusal is returned (the rest are still
/// tried).
async fn detach_all(d: &Daemon, ids: impl Iterator<Item = &str>) -> Result<(), Status> {
    let mut first = None;
    for id in ids {
        if let Err(s) = detach(d, id).await {
            first.get_or_insert(s);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Retries the releases of disconnected networks the managers did not confirm.
async fn finish_releases(d: &Daemon, r: &Record) {
    let mut left = Vec::new();
    for id in &r.releasing {
        if let Err(s) = detach(d, id).await {
            tracing::debug!(attachment = %id, "releasing a disconnected network (will retry): {}", s.message());
            left.push(id.clone());
        }
    }
    if left != r.releasing {
        let mut r = r.clone();
        r.releasing = left;
        if let Err(e) = save(&d.cfg.data_root, &r) {
            tracing::warn!(container = %r.container_id, "recording released attachments: {e}");
        }
    }
}

/// One reconcile pass, connect or disconnect at a time, so an attachment is released,
/// published or rewired once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- network connect / disconnect ----

/// Docker's refusal of a second endpoint of one container on one network.
fn already_connected(container: &str, network: &str) -> ApiError {
    ApiError::permission_denied(format!(
        "endpoint with name {container} already exists in network {network}"
    ))
}

/// The record of a container on a swarm network, or why it cannot join one here.
fn record_for_connect(
    d: &Daemon,
    c: &rt::ContainerInfo,
    network: &str,
) -> Result<Record, ApiError> {
    if let Some(r) = by_container(&d.cfg.data_root, &c.id) {
        return Ok(r);
    }
    Err(match &c.config.network {
        NetworkMode::Host => ApiError::permission_denied(
            "container cannot be disconnected from host network or connected to host network",
        ),
        NetworkMode::Isolated => ApiError::permission_denied(format!(
            "container {} uses the none network: it cannot be connected to network {network}",
            c.name
        )),
        NetworkMode::Netns(_) if matches!(network, "bridge" | "default") => {
            already_connected(&c.name, network)
        }
        NetworkMode::Netns(_) => ApiError::invalid_argument(format!(
            "container {} is on the default bridge network: connecting it to network {network} \
             later is not supported here; create it with --network {network}",
            c.name
        )),
    })
}

/// `network connect NETWORK CONTAINER` for a container on an attachable overlay: a new
/// attachment from the managers, wired as the next `ethN` of its namespace. Unknown or
/// non-attachable networks, unknown containers and a second connect are refused, and nothing
/// changes.
pub async fn connect(
    d: &Daemon,
    network: &str,
    container: &str,
    endpoint: EndpointSettings,
) -> Result<(), ApiError> {
    let c = d
        .runtime
        .inspect(container)
        .map_err(super::containers::api_error)?;
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut r = record_for_connect(d, &c, network)?;
    if let Some(a) = r.find_network(network) {
        return Err(already_connected(&c.name, &a.network.spec.annotations.name));
    }
    if endpoint
        .ipam_config
        .as_ref()
        .is_some_and(|i| !i.ipv4_address.is_empty() || !i.ipv6_address.is_empty())
    {
        return Err(ApiError::invalid_argument(format!(
            "network {network}: a fixed address (--ip) is not supported on swarm networks"
        )));
    }
    let plane = netplane::for_data_root(&d.cfg.data_root).ok_or_else(|| {
        ApiError::unavailable("the node data plane is unavailable: overlay networks cannot be used")
    })?;
    let (net, name, id) = (network.to_string(), r.container_name.clone(), c.id.clone());
    let aliases = endpoint.aliases.clone();
    let resp = call(d, |mut cl| {
        let req = AttachNetworkRequest {
            network: net.clone(),
            container_id: id.clone(),
            container_name: name.clone(),
            aliases: aliases.clone(),
        };
        async move { cl.attach_network(req).await }
    })
    .await
    .map_err(|s| attach_error(network, &s))?;
    let release = |why: ApiError| async {
        if let Err(s) = detach(d, &resp.attachment_id).await {
            tracing::warn!(attachment = %resp.attachment_id, "releasing the attachment: {}", s.message());
        }
        Err(why)
    };
    let task: Task = match serde_json::from_slice(&resp.task_json) {
        Ok(t) => t,
        Err(e) => {
            return release(ApiError::internal(format!(
                "the managers sent an unreadable attachment: {e}"
            )))
            .await;
        }
    };
    let Some(att) = task.networks_attachments.first().cloned() else {
        return release(ApiError::internal(
            "the managers sent an attachment without a network",
        ))
        .await;
    };
    // The key may have named the network differently (ID prefix): look again by its ID.
    if r.find_network(&att.network.id).is_some() {
        return release(already_connected(
            &c.name,
            &att.network.spec.annotations.name,
        ))
        .await;
    }
    if let Err(e) = plane.connect_extra(&r.attachment_id, &att).await {
        return release(ApiError::internal(format!("network {network}: {e:#}"))).await;
    }
    r.connected.push(Connected {
        attachment_id: task.id.clone(),
        network_id: att.network.id.clone(),
    });
    r.task.networks_attachments.push(att.clone());
    if let Err(e) = save(&d.cfg.data_root, &r) {
        if let Err(e) = plane
            .disconnect_extra(&r.attachment_id, &att.network.id)
            .await
        {
            tracing::warn!(container = %c.id, "unwiring network {network}: {e:#}");
        }
        return release(ApiError::internal(format!(
            "recording the network attachment: {e}"
        )))
        .await;
    }
    tracing::info!(container = %c.id, network = %att.network.spec.annotations.name, "container connected");
    Ok(())
}

/// `network disconnect [-f] NETWORK CONTAINER`: the interface goes and the attachment is
/// released (retried in the background if the managers cannot be reached; with `force` a
/// container that is already gone is not an error).
pub async fn disconnect(
    d: &Daemon,
    network: &str,
    container: &str,
    force: bool,
) -> Result<(), ApiError> {
    let c = match d.runtime.inspect(container) {
        Ok(c) => c,
        Err(rt::Error::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(super::containers::api_error(e)),
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let not_connected = || {
        ApiError::permission_denied(format!(
            "container {} is not connected to network {network}",
            c.name
        ))
    };
    let Some(mut r) = by_container(&d.cfg.data_root, &c.id) else {
        return Err(match &c.config.network {
            NetworkMode::Host if network == "host" => ApiError::permission_denied(
                "container cannot be disconnected from host network or connected to host network",
            ),
            NetworkMode::Netns(_) if matches!(network, "bridge" | "default") => {
                ApiError::invalid_argument(format!(
                    "container {}: disconnecting it from the default bridge network is not supported here",
                    c.name
                ))
            }
            _ => not_connected(),
        });
    };
    let Some(net) = r.find_network(network).map(|a| a.network.clone()) else {
        return Err(not_connected());
    };
    let Some(attachment) = r.attachment_id_of(&net.id).map(str::to_string) else {
        return Err(not_connected());
    };
    if attachment == r.attachment_id {
        return Err(ApiError::invalid_argument(format!(
            "container {} was created on network {}: it cannot be disconnected from it here (remove the container instead)",
            c.name, net.spec.annotations.name
        )));
    }
    if let Some(plane) = netplane::for_data_root(&d.cfg.data_root) {
        plane
            .disconnect_extra(&r.attachment_id, &net.id)
            .await
            .map_err(|e| ApiError::internal(format!("network {network}: {e:#}")))?;
    }
    r.connected.retain(|x| x.attachment_id != attachment);
    r.task
        .networks_attachments
        .retain(|a| a.network.id != net.id);
    let released = detach(d, &attachment).await;
    if let Err(s) = &released {
        tracing::warn!(attachment = %attachment, "releasing a disconnected network (will retry): {}", s.message());
        r.releasing.push(attachment);
    }
    save(&d.cfg.data_root, &r)
        .map_err(|e| ApiError::internal(format!("recording the disconnect: {e}")))?;
    tracing::info!(container = %c.id, network = %net.spec.annotations.name, "container disconnected");
    Ok(())
}

// ---- what the API shows ----

/// The container's network, for `inspect` and `ps` (None: not on a swarm network).
pub fn network_settings(d: &Daemon, container: &str) -> Option<(String, Value)> {
    let r = by_container(&d.cfg.data_root, container)?;
    let name = r.network()?.spec.annotations.name.clone();
    let mut nets = serde_json::Map::new();
    for a in &r.task.networks_attachments {
        let n = &a.network;
        let addr = a.addresses.first().cloned().unwrap_or_default();
        let (ip, prefix) = addr.split_once('/').unwrap_or((addr.as_str(), "0"));
        let prefix: u32 = prefix.parse().unwrap_or(0);
        let gw = netplane::plan::network_subnet(n)
            .map(|(_, g)| g.to_string())
            .unwrap_or_default();
        let mac = ip
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| shoal_net::Mac::from_ip(ip).to_string())
            .unwrap_or_default();
        let endpoint_id = format!("{}-{}", r.attachment_id_of(&n.id).unwrap_or_default(), n.id);
        let mut dns_names = vec![r.container_name.clone()];
        dns_names.extend(a.aliases.iter().cloned());
        nets.insert(
            n.spec.annotations.name.clone(),
            json!({
                "IPAMConfig": null, "Links": null, "Aliases": a.aliases, "MacAddress": mac,
                "DriverOpts": null, "NetworkID": n.id, "EndpointID": endpoint_id,
                "Gateway": gw, "IPAddress": ip, "IPPrefixLen": prefix, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": dns_names,
            }),
        );
    }
    Some((
        name,
        json!({
            "Bridge": "", "SandboxID": r.attachment_id, "HairpinMode": false,
            "Ports": {}, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "MacAddress": "", "Networks": nets,
        }),
    ))
}

/// Swarm networks this node has containers on (what a worker, which holds no cluster state,
/// knows of them).
fn local_networks(d: &Daemon) -> Vec<Network> {
    let mut out: BTreeMap<String, Network> = BTreeMap::new();
    for r in records(&d.cfg.data_root) {
        for a in &r.task.networks_attachments {
            out.entry(a.network.id.clone())
                .or_insert_with(|| a.network.clone());
        }
    }
    out.into_values().collect()
}

/// `network inspect` on a node without cluster state: the attached networks it knows.
pub fn inspect_local(d: &Daemon, key: &str) -> Option<NetworkInspect> {
    let nets = local_networks(d);
    let net = shoal_types::resolve(nets.iter().collect::<Vec<_>>(), key).ok()?;
    let mut v = shoal_manager::network::inspect_view(net);
    let (containers, peers) = super::networks::local_view(d, net);
    v.containers = containers;
    v.peers = peers;
    Some(v)
}

/// `network ls` on a node without cluster state.
pub fn list_local(
    d: &Daemon,
    filters: &shoal_types::filters::Filters,
) -> Result<Vec<NetworkInspect>, ApiError> {
    let mut mem = shoal_manager::orchestrator::MemObjects::new();
    for n in local_networks(d) {
        mem.put(Object::Network(n));
    }
    shoal_manager::network::list_networks(&mem, filters)
}

// ---- the agent's side of attachment tasks ----

/// The node's task executor, answering for network attachment tasks itself: they have no
/// container of their own (the user's container is reported, never started, stopped or
/// removed by the agent). Everything else goes to the container executor.
pub struct AttachmentAwareExecutor {
    inner: ContainerExecutor,
    data_root: PathBuf,
}

impl AttachmentAwareExecutor {
    pub fn new(inner: ContainerExecutor, data_root: &Path) -> AttachmentAwareExecutor {
        AttachmentAwareExecutor {
            inner,
            data_root: data_root.to_path_buf(),
        }
    }

    fn is_attached(&self, container: &str) -> bool {
        by_container(&self.data_root, container).is_some()
    }

    fn exists(&self, container: &str) -> bool {
        self.inner.executor.runtime().inspect(container).is_ok()
    }
}

#[async_trait]
impl TaskExecutor for AttachmentAwareExecutor {
    async fn prepare(
        &self,
        task: &Task,
        secrets: &[Secret],
        configs: &[Config],
    ) -> Result<String, ExecError> {
        if !task.is_network_attachment() {
            return self.inner.prepare(task, secrets, configs).await;
        }
        match by_attachment(&self.data_root, &task.id) {
            Some(r) if self.exists(&r.container_id) => Ok(r.container_id),
            Some(_) => Err(ExecError::fatal("the attachment's container was removed")),
            None => {
                // The daemon records it right after creating the container: wait for that.
                let age = chrono::Utc::now() - task.meta.created_at;
                if age.to_std().is_ok_and(|a| a > ORPHAN_AFTER) {
                    Err(ExecError::fatal(
                        "no container on this node uses this network attachment",
                    ))
                } else {
                    Err(ExecError {
                        fatal: false,
                        message: "waiting for the attachment's container".into(),
                    })
                }
            }
        }
    }

    async fn start(&self, container: &str) -> Result<(), ExecError> {
        if self.is_attached(container) {
            return Ok(());
        }
        self.inner.start(container).await
    }

    async fn wait(&self, container: &str) -> Result<Exit, ExecError> {
        if !self.is_attached(container) {
            return self.inner.wait(container).await;
        }
        // The attachment lasts as long as its container.
        while self.exists(container) {
            tokio::time::sleep(WATCH_EVERY).await;
        }
        Ok(Exit {
            code: 0,
            error: None,
        })
    }

    async fn shutdown(&self, container: &str, grace: Duration) -> Result<(), ExecError> {
        if self.is_attached(container) {
            return Ok(());
        }
        self.inner.shutdown(container, grace).await
    }

    async fn remove(&self, container: &str) -> Result<(), ExecError> {
        if self.is_attached(container) {
            return Ok(());
        }
        self.inner.remove(container).await
    }

    async fn existing(&self, task: &Task) -> Option<(String, bool)> {
        if !task.is_network_attachment() {
            return self.inner.existing(task).await;
        }
        by_attachment(&self.data_root, &task.id)
            .filter(|r| self.exists(&r.container_id))
            .map(|r| (r.container_id, true))
    }

    async fn set_node_attachments(&self, attachments: Vec<NetworkAttachment>) {
        self.inner.set_node_attachments(attachments).await
    }

    fn log_reader(&self) -> Option<Arc<dyn shoal_agent::logs::TaskLogReader>> {
        self.inner.log_reader()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, container: &str) -> Record {
        Record {
            attachment_id: id.into(),
            container_id: container.into(),
            container_name: "c1".into(),
            task: Task {
                id: id.into(),
                ..Default::default()
            },
            connected: Vec::new(),
            releasing: Vec::new(),
        }
    }

    #[test]
    fn records_survive_on_disk_and_are_found_both_ways() {
        let tmp = std::env::temp_dir().join(format!("shoal-attach-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(records(&tmp).is_empty());
        save(&tmp, &record("a1", "c0ffee")).unwrap();
        save(&tmp, &record("a2", "beef")).unwrap();
        std::fs::write(dir(&tmp).join("junk.json"), b"{").unwrap();
        let mut ids = persisted_ids(&tmp);
        ids.sort();
        assert_eq!(ids, ["a1", "a2"]);
        assert_eq!(
            by_container(&tmp, "beef").map(|r| r.attachment_id),
            Some("a2".into())
        );
        assert_eq!(
            by_attachment(&tmp, "a1").map(|r| r.container_id),
            Some("c0ffee".into())
        );
        // A network connected later is found by its attachment too.
        let mut r = record("a3", "cafe");
        r.connected.push(Connected {
            attachment_id: "a4".into(),
            network_id: "n4".into(),
        });
        save(&tmp, &r).unwrap();
        assert_eq!(
            by_attachment(&tmp, "a4").map(|r| r.container_id),
            Some("cafe".into())
        );
        assert_eq!(r.attachment_id_of("n4"), Some("a4"));
        assert_eq!(r.held().collect::<Vec<_>>(), ["a3", "a4"]);
        forget(&tmp, "a3");
        assert!(by_attachment(&tmp, "a4").is_none());
        forget(&tmp, "a1");
        assert!(by_attachment(&tmp, "a1").is_none());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn refusals_read_like_dockers() {
        let e = attach_error(
            "app",
            &Status::permission_denied("network app not manually attachable"),
        );
        assert_eq!(
            e.message,
            "Could not attach to network app: rpc error: code = PermissionDenied desc = network app not manually attachable"
        );
        let e = attach_error("nope", &Status::not_found("network nope not found"));
        assert_eq!(e.message, "network nope not found");
        assert_eq!(e.status_code(), 404);
    }
}
