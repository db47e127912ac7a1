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
//! in the container's record. A container on the default bridge keeps its bridge namespace:
//! its first swarm network is wired into it (the record names that namespace) and its
//! resolv.conf points at the embedded DNS server until its last swarm network is gone.

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
    /// A bridge container's namespace (its swarm networks were connected later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowed_netns: Option<PathBuf>,
    /// That container's resolv.conf before it pointed at the embedded DNS server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf_backup: Option<String>,
    /// The first network was disconnected (its attachment released); the record and the
    /// data plane keep its ID as their key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_released: bool,
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
        if !self.first_released && self.network().is_some_and(|n| n.id == network_id) {
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
            borrowed_netns: None,
            resolv_conf_backup: None,
            first_released: false,
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
        let info = d.runtime.inspect(&r.container_id).ok();
        if let Some(c) = &info
            && r.borrowed_netns.is_some()
            && !r.task.networks_attachments.is_empty()
        {
            // The runtime writes a bridge container's resolv.conf afresh on every start.
            if let Err(e) = point_resolv_conf_at_dns(c) {
                tracing::warn!(container = %c.id, "pointing resolv.conf at the embedded DNS server: {e}");
            }
        }
        let state = info.map(|c| c.state.is_running());
        let Some(running) = state else {
            // Removed: unwire first (the container is gone), then give the address back.
            if let Some(p) = &plane {
                if r.borrowed_netns.is_some() {
                    p.release_borrowed(&r.attachment_id).await;
                } else {
                    p.release_container(&r.container_id).await;
                }
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
        if r.task.networks_attachments.is_empty() {
            continue; // only releases left
        }
        let Some(p) = &plane else { continue };
        if published(&r.container_id).is_none() {
            // Not wired by this process: a restarted daemon adopts the namespace.
            let adopted = match &r.borrowed_netns {
                Some(ns) => p.connect_borrowed(&r.task, ns, &r.container_id, true).await,
                None => restore_with_connected(p, &r).await,
            };
            match adopted {
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

/// Adopts a container's namespace after a daemon restart: its first network as the data
/// plane restores a task, then each connected network by the interface it already has
/// (their names need not follow their order after a disconnect).
async fn restore_with_connected(p: &NetPlane, r: &Record) -> anyhow::Result<()> {
    // The namespace (gateway link, DNS) first, then every network by its interface: after a
    // disconnect their order need not follow the interface names.
    let mut bare = r.task.clone();
    bare.networks_attachments.clear();
    p.restore(&bare, &r.container_id, false).await?;
    for a in &r.task.networks_attachments {
        p.connect_extra(&r.attachment_id, a, true).await?;
    }
    Ok(())
}

/// Makes sure this process has adopted the wiring of `r` (right after a daemon restart the
/// periodic reconcile may not have run yet), so connect/disconnect change the live state.
async fn ensure_wired(p: &NetPlane, r: &Record) -> Result<(), ApiError> {
    if published(&r.container_id).is_some() {
        return Ok(());
    }
    let adopted = match &r.borrowed_netns {
        Some(ns) => p.connect_borrowed(&r.task, ns, &r.container_id, true).await,
        None => restore_with_connected(p, r).await,
    };
    adopted.map_err(|e| {
        ApiError::unavailable(format!(
            "the container's network is not ready on this node yet: {e:#}"
        ))
    })?;
    set_published(&r.container_id, Some(false));
    Ok(())
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
    if left.is_empty() && r.task.networks_attachments.is_empty() {
        // A bridge container whose last swarm network went: nothing is held any more.
        forget(&d.cfg.data_root, &r.attachment_id);
    } else if left != r.releasing {
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

/// Where a container joins one more network: its record (already on a swarm network), or
/// the bridge namespace it has; else why it cannot join one here.
fn record_for_connect(
    d: &Daemon,
    c: &rt::ContainerInfo,
    network: &str,
) -> Result<Result<Record, PathBuf>, ApiError> {
    let on_bridge = d
        .bridge
        .as_ref()
        .ok()
        .and_then(|b| b.endpoint_of(&c.id))
        .is_some();
    if on_bridge && matches!(network, "bridge" | "default") {
        return Err(already_connected(&c.name, network));
    }
    if let Some(r) = by_container(&d.cfg.data_root, &c.id) {
        if r.task.networks_attachments.is_empty() {
            return Err(ApiError::conflict(format!(
                "container {}: its last disconnect is still being released, try again shortly",
                c.name
            )));
        }
        return Ok(Ok(r));
    }
    if let (NetworkMode::Netns(path), true) = (&c.config.network, on_bridge) {
        return Ok(Err(path.clone()));
    }
    Err(match &c.config.network {
        NetworkMode::Host => ApiError::permission_denied(
            "container cannot be disconnected from host network or connected to host network",
        ),
        NetworkMode::Isolated => ApiError::permission_denied(format!(
            "container {} uses the none network: it cannot be connected to network {network}",
            c.name
        )),
        NetworkMode::Netns(_) => ApiError::invalid_argument(format!(
            "container {} has no network this daemon can extend (not on the bridge or a swarm network)",
            c.name
        )),
    })
}

/// An attachment to `network` for container `c` from the managers (its task and the one
/// network attachment in it); a reply that cannot be used is released again.
async fn request_attachment(
    d: &Daemon,
    network: &str,
    c: &rt::ContainerInfo,
    name: &str,
    aliases: &[String],
) -> Result<(Task, NetworkAttachment), ApiError> {
    let (net, name, id) = (network.to_string(), name.to_string(), c.id.clone());
    let resp = call(d, |mut cl| {
        let req = AttachNetworkRequest {
            network: net.clone(),
            container_id: id.clone(),
            container_name: name.clone(),
            aliases: aliases.to_vec(),
        };
        async move { cl.attach_network(req).await }
    })
    .await
    .map_err(|s| attach_error(network, &s))?;
    let parsed = serde_json::from_slice::<Task>(&resp.task_json)
        .map_err(|e| format!("the managers sent an unreadable attachment: {e}"))
        .and_then(|t| match t.networks_attachments.first().cloned() {
            Some(a) => Ok((t, a)),
            None => Err("the managers sent an attachment without a network".to_string()),
        });
    match parsed {
        Ok(v) => Ok(v),
        Err(why) => {
            release_quietly(d, &resp.attachment_id).await;
            Err(ApiError::internal(why))
        }
    }
}

async fn release_quietly(d: &Daemon, attachment: &str) {
    if let Err(s) = detach(d, attachment).await {
        tracing::warn!(attachment = %attachment, "releasing the attachment: {}", s.message());
    }
}

/// The first swarm network of a bridge container: wired into the bridge's namespace, its
/// resolv.conf pointed at the embedded DNS server (the old one kept to put back).
async fn connect_bridge_container(
    d: &Daemon,
    plane: &NetPlane,
    c: &rt::ContainerInfo,
    netns: PathBuf,
    network: &str,
    aliases: &[String],
) -> Result<(), ApiError> {
    let (task, att) = request_attachment(d, network, c, &c.name, aliases).await?;
    let undo = |why: ApiError| async {
        plane.release_borrowed(&task.id).await;
        release_quietly(d, &task.id).await;
        Err(why)
    };
    if let Err(e) = plane.connect_borrowed(&task, &netns, &c.id, false).await {
        return undo(ApiError::internal(format!("network {network}: {e:#}"))).await;
    }
    let backup = match std::fs::read_to_string(&c.resolv_conf_path) {
        Ok(b) => b,
        Err(e) => {
            return undo(ApiError::internal(format!(
                "reading the container's resolv.conf: {e}"
            )))
            .await;
        }
    };
    if let Err(e) = point_resolv_conf_at_dns(c) {
        return undo(ApiError::internal(format!(
            "pointing the container's resolv.conf at the embedded DNS server: {e}"
        )))
        .await;
    }
    let mut r = Record {
        attachment_id: task.id.clone(),
        container_id: c.id.clone(),
        container_name: c.name.clone(),
        task: task.clone(),
        connected: Vec::new(),
        releasing: Vec::new(),
        borrowed_netns: Some(netns),
        resolv_conf_backup: Some(backup),
        first_released: false,
    };
    if let Some(s) = r.task.network_attachment_spec.as_mut() {
        s.container_id = c.id.clone();
    }
    if let Err(e) = save(&d.cfg.data_root, &r) {
        put_back_resolv_conf(c, &r);
        return undo(ApiError::internal(format!(
            "recording the network attachment: {e}"
        )))
        .await;
    }
    let running = c.state.is_running();
    if running {
        plane.container_running(&c.id).await;
    }
    set_published(&c.id, Some(running));
    tracing::info!(container = %c.id, network = %att.network.spec.annotations.name, "bridge container connected");
    Ok(())
}

/// Points a bridge container's resolv.conf at the embedded DNS server (unless it already
/// does). Written in place: the container sees the file through a bind mount.
fn point_resolv_conf_at_dns(c: &rt::ContainerInfo) -> std::io::Result<()> {
    let ours = shoal_net::dns::resolv_conf(std::net::IpAddr::V4(netplane::DNS_ADDR), &[], Some(0));
    if std::fs::read_to_string(&c.resolv_conf_path).is_ok_and(|cur| cur == ours) {
        return Ok(());
    }
    std::fs::write(&c.resolv_conf_path, ours)
}

/// The resolv.conf a bridge container had before its first swarm network.
fn put_back_resolv_conf(c: &rt::ContainerInfo, r: &Record) {
    if let Some(b) = &r.resolv_conf_backup
        && let Err(e) = std::fs::write(&c.resolv_conf_path, b)
    {
        tracing::warn!(container = %c.id, "restoring resolv.conf: {e}");
    }
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
    let found = record_for_connect(d, &c, network)?;
    if let Ok(r) = &found
        && let Some(a) = r.find_network(network)
    {
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
    let mut r = match found {
        Ok(r) => r,
        Err(netns) => {
            return connect_bridge_container(d, &plane, &c, netns, network, &endpoint.aliases)
                .await;
        }
    };
    ensure_wired(&plane, &r).await?;
    let (task, att) =
        request_attachment(d, network, &c, &r.container_name, &endpoint.aliases).await?;
    let release = |why: ApiError| async {
        release_quietly(d, &task.id).await;
        Err(why)
    };
    // The key may have named the network differently (ID prefix): look again by its ID.
    if r.find_network(&att.network.id).is_some() {
        return release(already_connected(
            &c.name,
            &att.network.spec.annotations.name,
        ))
        .await;
    }
    if let Err(e) = plane.connect_extra(&r.attachment_id, &att, false).await {
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
    let last = r.task.networks_attachments.len() == 1;
    if last && r.borrowed_netns.is_some() {
        return disconnect_bridge_container(d, &c, r, &net).await;
    }
    if last {
        // Its namespace would be left without any network this daemon tracks.
        return Err(ApiError::invalid_argument(format!(
            "container {}: network {} is its last network; it cannot be disconnected from it here (remove the container instead)",
            c.name, net.spec.annotations.name
        )));
    }
    if let Some(plane) = netplane::for_data_root(&d.cfg.data_root) {
        ensure_wired(&plane, &r).await?;
        plane
            .disconnect_extra(&r.attachment_id, &net.id)
            .await
            .map_err(|e| ApiError::internal(format!("network {network}: {e:#}")))?;
    }
    if attachment == r.attachment_id {
        r.first_released = true;
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

/// A bridge container leaves its last swarm network: its data-plane entry goes, the
/// namespace stays with the bridge and the old resolv.conf comes back.
async fn disconnect_bridge_container(
    d: &Daemon,
    c: &rt::ContainerInfo,
    mut r: Record,
    net: &Network,
) -> Result<(), ApiError> {
    if let Some(plane) = netplane::for_data_root(&d.cfg.data_root) {
        ensure_wired(&plane, &r).await?;
        plane.release_borrowed(&r.attachment_id).await;
    }
    put_back_resolv_conf(c, &r);
    set_published(&c.id, None);
    // Every attachment the record holds goes (the first may have been disconnected before).
    let ids: Vec<String> = r.held().map(str::to_string).collect();
    r.task.networks_attachments.clear();
    r.connected.clear();
    let mut left = Vec::new();
    for id in ids {
        if let Err(s) = detach(d, &id).await {
            tracing::warn!(attachment = %id, "releasing a disconnected network (will retry): {}", s.message());
            left.push(id);
        }
    }
    if left.is_empty() {
        forget(&d.cfg.data_root, &r.attachment_id);
    } else {
        r.releasing = left;
        save(&d.cfg.data_root, &r)
            .map_err(|e| ApiError::internal(format!("recording the disconnect: {e}")))?;
    }
    tracing::info!(container = %c.id, network = %net.spec.annotations.name, "bridge container disconnected");
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

/// A bridge container's `Networks` with the swarm networks it was connected to added.
pub fn with_swarm_networks(d: &Daemon, container: &str, mut networks: Value) -> Value {
    if let Some((_, s)) = network_settings(d, container)
        && let (Some(all), Some(swarm)) = (networks.as_object_mut(), s["Networks"].as_object())
    {
        for (k, v) in swarm {
            all.insert(k.clone(), v.clone());
        }
    }
    networks
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
            borrowed_netns: None,
            resolv_conf_backup: None,
            first_released: false,
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
