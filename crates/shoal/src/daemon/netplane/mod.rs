//! The node's data plane for swarm tasks ("netplane"): wires shoal-net into the daemon.
//!
//! Per task with network attachments: a named network namespace for its container, one veth
//! per attachment into the overlay's namespace (bridge + VXLAN, made on first use, removed with
//! the last endpoint), an embedded DNS server on 127.0.0.11 inside the container's namespace,
//! and an nft table there that spreads connections to service VIPs over live tasks.
//! Per node: gossip (endpoints → FDB/neighbour entries; service records → DNS, VIP and mesh
//! backends), and the ingress routing mesh (a veth from the node's namespace into the ingress
//! overlay carrying the node's ingress address, and an nft table DNATing published ports).
//!
//! Containers outlive the daemon: namespaces, veths and overlays stay when the daemon stops, and
//! a restarted daemon adopts them again from the tasks it is assigned ([`NetPlane::restore`]).

mod connect;
mod encrypt;
mod gateway;
#[cfg(test)]
mod node_tests;
pub mod plan;
mod sync;
mod wg_identity;
pub mod wg_keys;

use anyhow::{Context, Result, anyhow, bail};
use plan::AttachPlan;
use shoal_net::bridge_net::{self, Attachment};
use shoal_net::dns::{DnsConfig, DnsServer, SharedTable};
use shoal_net::gossip::{Endpoint, Gossip, GossipConfig, ServiceRecord};
use shoal_net::netlink::Netlink;
use shoal_net::nft::DesiredState;
use shoal_net::overlay::{Overlay, OverlaySpec};
use shoal_net::{Mac, netns};
use shoal_types::Task;
use shoal_types::network::{EndpointResource, PeerInfo};
use shoal_types::task::NetworkAttachment;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// Where the embedded DNS server listens inside each container (Docker's address).
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// Interface in the node's namespace that carries the node's ingress address.
pub const INGRESS_IFNAME: &str = "shingress0";
/// The node's routing-mesh nft table (the standalone bridge owns another table).
pub const MESH_TABLE: &str = "shoal-mesh";
/// The VIP table inside each container namespace.
pub const LB_TABLE: &str = "shoal-lb";
/// Overlay user key for the node's own ingress endpoint.
const NODE_USER: &str = "(node)";
/// Point-to-point links from the node's namespace into containers that publish host-mode
/// ports: a /30 each out of this link-local range (node-local, never routed).
pub const HOST_LINK_NET: &str = "169.254.128.0/17";
/// Interface name of that link inside the container.
const HOST_LINK_IFNAME: &str = "gw0";
/// How long a withdrawn task keeps serving so peers stop sending it new connections first.
pub const DRAIN: Duration = Duration::from_millis(1200);

/// What the swarm layer tells the data plane when the node joins a cluster.
#[derive(Debug, Clone)]
pub struct SwarmInfo {
    pub node_id: String,
    pub cluster_id: String,
    /// The node's advertise address (`ip:port`); its IP is the VTEP and the gossip address.
    pub advertise_addr: String,
    /// Managers (`host:port`): gossip seeds on the gossip port.
    pub managers: Vec<String>,
}

/// What a task's container needs from the data plane to be created.
#[derive(Debug, Clone)]
pub struct TaskNetwork {
    pub netns_path: PathBuf,
    pub resolv_conf: String,
}

struct Swarm {
    gossip: Arc<Gossip>,
    node_id: String,
    vtep: Ipv4Addr,
    underlay_mtu: u32,
    sync: JoinHandle<()>,
}

struct OverlayEntry {
    overlay: Overlay,
    users: BTreeSet<String>,
}

struct TaskNet {
    task: Task,
    netns: String,
    plans: Vec<AttachPlan>,
    attachments: Vec<Attachment>,
    dns: Option<DnsServer>,
    /// Service records currently published (running and not draining).
    published: Vec<ServiceRecord>,
    container: Option<String>,
    /// The link carrying host-mode published ports, when the task has any.
    host_link: Option<HostLink>,
    /// The link to the gateway bridge (default route off the overlays).
    gw: Option<gateway::GwLink>,
}

/// A /30 between the node's namespace and a container, for host-mode ports.
#[derive(Debug, Clone)]
struct HostLink {
    index: u32,
    /// Host-side interface name.
    ifname: String,
    container_ip: Ipv4Addr,
}

impl HostLink {
    fn new(index: u32) -> Result<HostLink> {
        let net: ipnet::Ipv4Net = HOST_LINK_NET.parse().map_err(|e| anyhow!("{e}"))?;
        let slots = 1u32 << (30 - net.prefix_len());
        if index >= slots {
            bail!("no free host-port link (all {slots} in use)");
        }
        let base = u32::from(net.network()) + index * 4;
        Ok(HostLink {
            index,
            ifname: format!("shg{index:04x}"),
            container_ip: Ipv4Addr::from(base + 2),
        })
    }

    fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.container_ip) - 1)
    }
}

impl TaskNet {
    /// Not wired yet: `wire_task`/`wire_borrowed` fill in the links, DNS and records.
    fn unwired(
        task: Task,
        netns: String,
        plans: Vec<AttachPlan>,
        container: Option<String>,
    ) -> Self {
        TaskNet {
            task,
            netns,
            plans,
            attachments: Vec::new(),
            dns: None,
            published: Vec::new(),
            container,
            host_link: None,
            gw: None,
        }
    }

    fn netns_path(&self) -> PathBuf {
        netns::path_of(&self.netns)
    }

    /// Networks whose names this container resolves and whose VIPs it balances (not ingress).
    fn scopes(&self) -> Vec<String> {
        self.plans
            .iter()
            .filter(|p| !p.ingress)
            .map(|p| p.network_id.clone())
            .collect()
    }
}

struct NodeIngress {
    plan: AttachPlan,
    attachment: Attachment,
}

#[derive(Default)]
struct State {
    swarm: Option<Swarm>,
    overlays: HashMap<String, OverlayEntry>,
    tasks: HashMap<String, TaskNet>,
    ingress: Option<NodeIngress>,
    /// The node attachments last received, kept to set the ingress up once gossip runs.
    node_attachments: Vec<NetworkAttachment>,
    applied_lb: HashMap<String, DesiredState>,
    applied_mesh: Option<DesiredState>,
    applied_remotes: HashMap<String, Vec<(Ipv4Addr, Mac, Ipv4Addr)>>,
    /// The WireGuard device of encrypted overlays (made on first use).
    wg: Option<encrypt::Wg>,
    /// The node's WireGuard keys and the managers' peer set.
    wg_keys: encrypt::WgKeys,
    /// Bumped on every local change so the sync loop re-applies even if records look equal.
    dirty: bool,
}

/// The node data plane of one daemon.
pub struct NetPlane {
    /// Prefix of every netns name of this daemon (several daemons may share /run/netns).
    prefix: String,
    /// The daemon's own network namespace (the underlay).
    host_netns: PathBuf,
    host: Netlink,
    upstreams: Vec<SocketAddr>,
    dns_table: SharedTable,
    state: Mutex<State>,
    /// Small files that must survive a daemon restart (host-port link numbers).
    state_dir: PathBuf,
    /// What `network inspect` shows per network (local endpoints, peers), refreshed by the
    /// sync loop; a plain mutex so API handlers read it without waiting for the data plane.
    views: StdMutex<HashMap<String, NetView>>,
    /// Wakes the sync loop at once after a local change (a task withdrawn on its own node
    /// leaves DNS and VIP tables without waiting for the next period).
    wake: Arc<tokio::sync::Notify>,
}

/// This node's view of one network for `network inspect`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetView {
    /// Container ID → its endpoint.
    pub containers: std::collections::BTreeMap<String, EndpointResource>,
    pub peers: Vec<PeerInfo>,
}

static REGISTRY: StdMutex<Vec<(PathBuf, Weak<NetPlane>)>> = StdMutex::new(Vec::new());

/// The data plane of the daemon with data root `data_root` (the swarm layer reaches it this
/// way: it holds only the generic task executor).
pub fn for_data_root(data_root: &Path) -> Option<Arc<NetPlane>> {
    let reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.iter()
        .find(|(p, _)| p == data_root)
        .and_then(|(_, w)| w.upgrade())
}

/// `Containers` and `Peers` of `network inspect` for the daemon at `data_root` (None and
/// nothing when this node has no endpoint on the network, as Docker shows).
pub fn inspect_view(
    data_root: &Path,
    network_id: &str,
) -> (
    Option<std::collections::BTreeMap<String, EndpointResource>>,
    Vec<PeerInfo>,
) {
    let v = for_data_root(data_root)
        .map(|np| np.network_view(network_id))
        .unwrap_or_default();
    ((!v.containers.is_empty()).then_some(v.containers), v.peers)
}

/// A short, stable per-daemon name prefix derived from its data root: `shn` + 6 hex digits of
/// the FNV-1a hash of the path bytes (stable across builds, so tools and tests can compute it).
pub fn prefix_for(data_root: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u32 = 0x811c_9dc5;
    for b in data_root.as_os_str().as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("shn{:06x}-", h & 0xff_ffff)
}

/// Nameservers of the node's resolv.conf, minus loopback ones (unreachable from containers'
/// forwarder's point of view and possibly ourselves).
fn node_upstreams() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn task_netns_name(prefix: &str, task_id: &str) -> String {
    format!("{prefix}t-{task_id}")
}

fn ifname(i: usize) -> String {
    format!("eth{i}")
}

impl NetPlane {
    /// Open the data plane of the daemon at `data_root`. `live_task_ids`: tasks whose
    /// containers exist; namespaces of other tasks (left by a crash) are removed.
    pub fn open(data_root: &Path, live_task_ids: &BTreeSet<String>) -> Result<Arc<NetPlane>> {
        Self::open_in(data_root, live_task_ids, None)
    }

    /// As [`NetPlane::open`], with the node's namespace given (tests run several "nodes" in
    /// one process; the daemon's is that of its main thread). The caller must be running in
    /// that namespace (gossip and the DNS forwarder bind there).
    pub fn open_in(
        data_root: &Path,
        live_task_ids: &BTreeSet<String>,
        host_netns: Option<PathBuf>,
    ) -> Result<Arc<NetPlane>> {
        let prefix = prefix_for(data_root);
        let host_netns = host_netns
            .unwrap_or_else(|| PathBuf::from(format!("/proc/{}/ns/net", std::process::id())));
        let host = Netlink::in_netns(&host_netns).map_err(|e| anyhow!("netlink: {e}"))?;
        let me = Arc::new(NetPlane {
            prefix,
            host_netns,
            host,
            upstreams: node_upstreams(),
            dns_table: SharedTable::default(),
            state: Mutex::new(State::default()),
            state_dir: data_root.join("netplane"),
            views: StdMutex::new(HashMap::new()),
            wake: Arc::new(tokio::sync::Notify::new()),
        });
        me.remove_orphans(live_task_ids);
        let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        reg.retain(|(_, w)| w.strong_count() > 0);
        reg.push((data_root.to_path_buf(), Arc::downgrade(&me)));
        Ok(me)
    }

    /// Our namespaces under /run/netns: (name, task id or None for overlays).
    fn own_namespaces(&self) -> Vec<(String, Option<String>)> {
        let Ok(rd) = std::fs::read_dir(netns::NETNS_DIR) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| {
                let rest = n.strip_prefix(&self.prefix)?.to_string();
                let task = rest.strip_prefix("t-").map(str::to_string);
                Some((n, task))
            })
            .collect()
    }

    fn remove_orphans(&self, live: &BTreeSet<String>) {
        let mine = self.own_namespaces();
        let tasks_left = mine
            .iter()
            .any(|(_, t)| t.as_ref().is_some_and(|t| live.contains(t)));
        for (name, task) in mine {
            let orphan = match task {
                Some(t) => !live.contains(&t),
                // Overlays are adopted again by restored tasks; with none left they are stale.
                None => !tasks_left,
            };
            if orphan {
                tracing::info!(netns = %name, "removing a leftover network namespace");
                if let Err(e) = netns::delete(&name) {
                    tracing::warn!(netns = %name, "{e}");
                }
            }
        }
    }

    /// The node joined a swarm (or the daemon restarted in one): start gossip, republish what
    /// this node has, and start following the cluster.
    pub async fn swarm_started(self: &Arc<Self>, info: SwarmInfo) -> Result<()> {
        let mut st = self.state.lock().await;
        if st.swarm.is_some() {
            return Ok(());
        }
        let adv: SocketAddr = info
            .advertise_addr
            .parse()
            .with_context(|| format!("advertise address {:?}", info.advertise_addr))?;
        let IpAddr::V4(vtep) = adv.ip() else {
            bail!(
                "overlay networks need an IPv4 advertise address, got {}",
                adv.ip()
            );
        };
        let underlay_mtu = self.underlay_mtu(vtep).await;
        let gaddr = SocketAddr::new(adv.ip(), shoal_net::gossip::GOSSIP_PORT);
        let seeds: Vec<String> = info
            .managers
            .iter()
            .filter_map(|m| m.parse::<SocketAddr>().ok())
            .map(|m| SocketAddr::new(m.ip(), shoal_net::gossip::GOSSIP_PORT))
            .filter(|s| *s != gaddr)
            .map(|s| s.to_string())
            .collect();
        let cfg = GossipConfig::new(&info.node_id, gaddr, gaddr, seeds, &info.cluster_id);
        // A previous incarnation in this process (role change) may still be letting go of
        // the port: retry briefly.
        let mut attempt = 0;
        let gossip = loop {
            match Gossip::start(cfg.clone()).await {
                Ok(g) => break Arc::new(g),
                Err(e) if attempt < 20 => {
                    attempt += 1;
                    tracing::debug!("gossip on {gaddr} (retrying): {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => bail!("starting gossip on {gaddr}: {e}"),
            }
        };
        let me = Arc::downgrade(self);
        let sync = tokio::spawn(sync::run(me, self.wake.clone()));
        st.swarm = Some(Swarm {
            gossip: gossip.clone(),
            node_id: info.node_id.clone(),
            vtep,
            underlay_mtu,
            sync,
        });
        // Republish the local endpoints and records (a new gossip generation starts empty).
        for t in st.tasks.values() {
            for p in &t.plans {
                if let Some(e) = st.overlays.get(&p.network_id) {
                    publish_endpoint(&gossip, p, e.overlay.spec.local_vtep).await;
                }
            }
            for r in &t.published {
                if let Err(e) = gossip.publish_record(r).await {
                    tracing::warn!("republishing {}: {e}", r.ip);
                }
            }
        }
        self.changed(&mut st);
        let pending = st.node_attachments.clone();
        drop(st);
        if !pending.is_empty() {
            self.set_node_attachments(pending).await;
        }
        tracing::info!(%gaddr, %vtep, underlay_mtu, "data plane: gossip started");
        Ok(())
    }

    /// Local endpoints and peers of `network_id` (as of the last sync, ≤ 250 ms old).
    pub fn network_view(&self, network_id: &str) -> NetView {
        let views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        views.get(network_id).cloned().unwrap_or_default()
    }

    async fn underlay_mtu(&self, vtep: Ipv4Addr) -> u32 {
        let name = super::addr::interface_addrs()
            .into_iter()
            .find(|(_, ip)| *ip == vtep)
            .map(|(n, _)| n);
        if let Some(n) = name
            && let Ok(Some(l)) = self.host.link(&n).await
            && l.mtu > 0
        {
            return l.mtu;
        }
        1500
    }

    /// The node left the swarm or the daemon stops: stop gossip and the routing mesh. Task
    /// namespaces stay with their containers (a restarted daemon adopts them).
    pub async fn swarm_stopped(&self) {
        let mut st = self.state.lock().await;
        let Some(sw) = st.swarm.take() else { return };
        sw.sync.abort();
        // Wait until the loop is gone (it may be waiting for this lock: cancelling it drops
        // its gossip reference), so gossip below is the last reference.
        let _ = sw.sync.await;
        if let Some(ing) = st.ingress.take() {
            self.remove_node_ingress(&mut st, ing).await;
        }
        if let Err(e) = delete_table(Some(self.host_netns.clone()), MESH_TABLE).await {
            tracing::warn!("removing the mesh table: {e}");
        }
        st.applied_mesh = None;
        st.applied_remotes.clear();
        st.wg = None;
        st.wg_keys = Default::default();
        match Arc::try_unwrap(sw.gossip) {
            Ok(g) => {
                if let Err(e) = g.shutdown().await {
                    tracing::warn!("stopping gossip: {e}");
                }
            }
            Err(_) => tracing::debug!("gossip still referenced; it stops when released"),
        }
        tracing::info!("data plane: gossip stopped");
    }

    /// Prepare the network of a task before its container is created: namespace, veths,
    /// DNS server. Errors leave nothing behind.
    pub async fn prepare_task(&self, task: &Task) -> Result<TaskNetwork, PrepareError> {
        let plans = plan::task_plans(task).map_err(PrepareError::Invalid)?;
        let mut st = self.state.lock().await;
        if let Some(old) = st.tasks.remove(&task.id) {
            // A retried prepare: start from scratch.
            self.release(&mut st, old).await;
        }
        let name = task_netns_name(&self.prefix, &task.id);
        netns::validate_name(&name).map_err(|e| PrepareError::Invalid(e.to_string()))?;
        let _ = netns::delete(&name);
        let path = netns::create(&name).map_err(|e| PrepareError::Failed(e.to_string()))?;
        let mut tn = TaskNet::unwired(task.clone(), name, plans, None);
        match self.wire_task(&mut st, &mut tn, false).await {
            Ok(()) => {
                st.tasks.insert(task.id.clone(), tn);
                self.changed(&mut st);
                Ok(TaskNetwork {
                    netns_path: path,
                    resolv_conf: shoal_net::dns::resolv_conf(IpAddr::V4(DNS_ADDR), &[], Some(0)),
                })
            }
            Err(e) => {
                self.release(&mut st, tn).await;
                Err(PrepareError::Failed(format!("{e:#}")))
            }
        }
    }

    /// Overlays, veths, DNS for `tn` (whose namespace exists). With `adopt`, existing veths
    /// (a daemon restart) are kept instead of made.
    async fn wire_task(&self, st: &mut State, tn: &mut TaskNet, adopt: bool) -> Result<()> {
        let (vtep, mtu) = match &st.swarm {
            Some(s) => (s.vtep, s.underlay_mtu),
            None => bail!("this node is not in a swarm: overlay networks are unavailable"),
        };
        let path = tn.netns_path();
        // The default route goes through the gateway bridge (below); overlay subnets are
        // reached over their connected routes.
        for (i, p) in tn.plans.clone().iter().enumerate() {
            self.ensure_overlay(st, p, vtep, mtu, &tn.task.id).await?;
            let entry = st
                .overlays
                .get(&p.network_id)
                .ok_or_else(|| anyhow!("overlay {} vanished", p.network_id))?;
            let ifn = ifname(i);
            let (host_if, _) = bridge_net::veth_names(&path, &ifn, p.ip);
            let existing = adopt && entry.overlay.netlink().link(&host_if).await?.is_some();
            let att = if existing {
                Attachment {
                    bridge: shoal_net::overlay::OVERLAY_BRIDGE.to_string(),
                    host_ifname: host_if,
                    netns: path.clone(),
                    ifname: ifn,
                    ip: p.ip,
                    prefix: p.subnet.prefix_len(),
                    mac: Mac::from_ip(p.ip),
                    mtu: entry.overlay.spec.mtu,
                }
            } else {
                entry
                    .overlay
                    .attach_endpoint(&path, &ifn, p.ip, None, false)
                    .await
                    .with_context(|| format!("attaching to network {}", p.network_name))?
            };
            let local_vtep = entry.overlay.spec.local_vtep;
            tn.attachments.push(att);
            if let Some(sw) = &st.swarm {
                publish_endpoint(&sw.gossip, p, local_vtep).await;
            }
        }
        let gw = self.attach_gateway(st, tn, adopt, mtu).await?;
        tn.gw = Some(gw);
        if !plan::host_ports(&tn.task).is_empty() {
            let link = self.host_link(st, tn, adopt).await?;
            tn.host_link = Some(link);
        }
        let cfg = DnsConfig {
            scopes: tn.scopes(),
            upstreams: self.upstreams.clone(),
        };
        let dns = DnsServer::bind_in_netns(
            &path,
            SocketAddr::new(IpAddr::V4(DNS_ADDR), 53),
            self.dns_table.clone(),
            cfg,
        )
        .await
        .map_err(|e| anyhow!("starting the embedded DNS server: {e}"))?;
        tn.dns = Some(dns);
        Ok(())
    }

    /// Marks the state changed and wakes the sync loop to apply it now.
    fn changed(&self, st: &mut State) {
        st.dirty = true;
        self.wake.notify_one();
    }

    /// Keeps a task's link number (host-port link, gateway link) for a restarted daemon.
    fn save_index(&self, file: &Path, index: u32) -> Result<()> {
        std::fs::create_dir_all(&self.state_dir)?;
        std::fs::write(file, index.to_string())?;
        Ok(())
    }

    fn link_file(&self, task_id: &str) -> PathBuf {
        self.state_dir.join(format!("{task_id}.hostlink"))
    }

    /// The host-port link of `tn`: adopted after a restart (its number is on disk), else the
    /// lowest free number.
    async fn host_link(&self, st: &State, tn: &TaskNet, adopt: bool) -> Result<HostLink> {
        let file = self.link_file(&tn.task.id);
        if adopt && let Some(idx) = saved_index(&file) {
            let link = HostLink::new(idx)?;
            if self.host.link(&link.ifname).await?.is_some() {
                return Ok(link);
            }
        }
        let idx = lowest_free(
            st.tasks
                .values()
                .filter_map(|t| t.host_link.as_ref())
                .map(|l| l.index),
        );
        let link = HostLink::new(idx)?;
        let path = tn.netns_path();
        let peer = format!("shgp{idx:04x}");
        self.host.delete_link(&link.ifname).await?;
        self.host.delete_link(&peer).await?;
        self.host.create_veth(&link.ifname, &peer, None).await?;
        let res = async {
            self.host.move_to_netns(&peer, &path).await?;
            let cnl = Netlink::in_netns(&path)?;
            cnl.rename(&peer, HOST_LINK_IFNAME).await?;
            cnl.add_address(HOST_LINK_IFNAME, IpAddr::V4(link.container_ip), 30)
                .await?;
            cnl.set_up(HOST_LINK_IFNAME).await?;
            self.host
                .add_address(&link.ifname, IpAddr::V4(link.host_ip()), 30)
                .await?;
            self.host.set_up(&link.ifname).await
        }
        .await;
        if let Err(e) = res {
            let _ = self.host.delete_link(&link.ifname).await;
            bail!("host-port link: {e}");
        }
        self.save_index(&file, idx)?;
        bridge_net::set_sysctl(Some(&self.host_netns), "net/ipv4/ip_forward", "1")
            .map_err(|e| anyhow!("{e}"))?;
        Ok(link)
    }

    async fn ensure_overlay(
        &self,
        st: &mut State,
        p: &AttachPlan,
        vtep: Ipv4Addr,
        underlay_mtu: u32,
        user: &str,
    ) -> Result<()> {
        if let Some(e) = st.overlays.get_mut(&p.network_id) {
            e.users.insert(user.to_string());
            return Ok(());
        }
        let local_vtep = if p.encrypted {
            if st.wg.is_none() {
                let node_id = match &st.swarm {
                    Some(s) => s.node_id.clone(),
                    None => bail!("this node is not in a swarm"),
                };
                let wg = self
                    .start_wg(&mut st.wg_keys, &node_id, underlay_mtu)
                    .await
                    .with_context(|| format!("encrypted network {}", p.network_name))?;
                st.wg = Some(wg);
            }
            st.wg.as_ref().map(|w| w.tunnel_ip).unwrap_or(vtep)
        } else {
            vtep
        };
        let mtu = shoal_net::overlay_mtu(underlay_mtu, p.encrypted).map_err(|e| anyhow!("{e}"))?;
        let mtu = p.mtu_cap.map_or(mtu, |cap| cap.min(mtu));
        let spec = OverlaySpec {
            network_id: p.network_id.clone(),
            vni: p.vni,
            subnet: p.subnet,
            gateway: p.gateway,
            local_vtep,
            mtu,
            netns_prefix: self.prefix.clone(),
        };
        let overlay = Overlay::ensure(&self.host, spec)
            .await
            .with_context(|| format!("creating overlay {} (VNI {})", p.network_name, p.vni))?;
        tracing::info!(network = %p.network_name, vni = p.vni, "overlay up");
        st.overlays.insert(
            p.network_id.clone(),
            OverlayEntry {
                overlay,
                users: [user.to_string()].into(),
            },
        );
        st.applied_remotes.remove(&p.network_id);
        self.changed(st);
        Ok(())
    }

    async fn drop_overlay_user(&self, st: &mut State, network_id: &str, user: &str) {
        let Some(e) = st.overlays.get_mut(network_id) else {
            return;
        };
        e.users.remove(user);
        if !e.users.is_empty() {
            return;
        }
        if let Some(e) = st.overlays.remove(network_id) {
            st.applied_remotes.remove(network_id);
            let vni = e.overlay.spec.vni;
            match e.overlay.teardown().await {
                Ok(()) => tracing::info!(network = %network_id, vni, "overlay removed"),
                Err(err) => tracing::warn!(network = %network_id, "removing overlay: {err}"),
            }
        }
    }

    /// Undo everything of one task: records, endpoints, DNS, namespace, unused overlays.
    async fn release(&self, st: &mut State, tn: TaskNet) {
        if let Some(sw) = &st.swarm {
            for r in &tn.published {
                let _ = sw.gossip.withdraw_record(&r.network, r.ip).await;
            }
            for p in &tn.plans {
                let _ = sw.gossip.withdraw(&p.network_id, p.ip).await;
            }
        }
        drop(tn.dns);
        for (att, p) in tn.attachments.iter().zip(&tn.plans) {
            if let Some(e) = st.overlays.get(&p.network_id)
                && let Err(err) = e.overlay.detach_endpoint(att).await
            {
                tracing::warn!(task = %tn.task.id, "detaching {}: {err}", att.ifname);
            }
        }
        if let Some(l) = &tn.host_link {
            let _ = self.host.delete_link(&l.ifname).await;
        }
        let _ = std::fs::remove_file(self.link_file(&tn.task.id));
        if let Err(e) = netns::delete(&tn.netns) {
            tracing::warn!(netns = %tn.netns, "{e}");
        }
        st.applied_lb.remove(&tn.task.id);
        self.detach_gateway(st, &tn.task.id, tn.gw).await;
        for p in &tn.plans {
            self.drop_overlay_user(st, &p.network_id, &tn.task.id).await;
        }
        self.changed(st);
    }

    /// The container of a prepared task exists now.
    pub async fn bind_container(&self, task_id: &str, container: &str) {
        let mut st = self.state.lock().await;
        if let Some(t) = st.tasks.get_mut(task_id) {
            t.container = Some(container.to_string());
        }
    }

    /// Forget a task's network whose container could not be created.
    pub async fn release_task(&self, task_id: &str) {
        let mut st = self.state.lock().await;
        if let Some(tn) = st.tasks.remove(task_id) {
            self.release(&mut st, tn).await;
        }
    }

    /// Forget the network of the task whose container this is (container removed).
    pub async fn release_container(&self, container: &str) {
        let mut st = self.state.lock().await;
        let id = st
            .tasks
            .iter()
            .find(|(_, t)| t.container.as_deref() == Some(container))
            .map(|(k, _)| k.clone());
        if let Some(id) = id
            && let Some(tn) = st.tasks.remove(&id)
        {
            self.release(&mut st, tn).await;
        }
    }

    /// The container runs (and is healthy if it has a healthcheck): publish its records.
    pub async fn container_running(&self, container: &str) {
        let mut st = self.state.lock().await;
        let gossip = st.swarm.as_ref().map(|s| s.gossip.clone());
        let Some(tn) = st
            .tasks
            .values_mut()
            .find(|t| t.container.as_deref() == Some(container))
        else {
            return;
        };
        let records = plan::task_records(&tn.task, &tn.plans);
        if let Some(g) = gossip {
            for r in &records {
                if let Err(e) = g.publish_record(r).await {
                    tracing::warn!(task = %tn.task.id, "publishing {}: {e}", r.ip);
                }
            }
        }
        tn.published = records;
        self.changed(&mut st);
    }

    /// Withdraw the records of a container that stops or stopped; returns whether any were
    /// published (then the caller drains before stopping it).
    pub async fn container_stopping(&self, container: &str) -> bool {
        let mut st = self.state.lock().await;
        let gossip = st.swarm.as_ref().map(|s| s.gossip.clone());
        let Some(tn) = st
            .tasks
            .values_mut()
            .find(|t| t.container.as_deref() == Some(container))
        else {
            return false;
        };
        let records = std::mem::take(&mut tn.published);
        if let Some(g) = gossip {
            for r in &records {
                let _ = g.withdraw_record(&r.network, r.ip).await;
            }
        }
        self.changed(&mut st);
        !records.is_empty()
    }

    /// After a daemon restart: adopt the namespace and veths of a task whose container still
    /// exists, restart its DNS server and republish it.
    pub async fn restore(&self, task: &Task, container: &str, running: bool) -> Result<()> {
        let plans = plan::task_plans(task).map_err(|e| anyhow!(e))?;
        {
            let mut st = self.state.lock().await;
            if let Some(t) = st.tasks.get_mut(&task.id) {
                t.container = Some(container.to_string());
                return Ok(());
            }
            let name = task_netns_name(&self.prefix, &task.id);
            if !netns::path_of(&name).exists() {
                bail!("network namespace {name} of task {} is gone", task.id);
            }
            let mut tn = TaskNet::unwired(task.clone(), name, plans, Some(container.to_string()));
            if let Err(e) = self.wire_task(&mut st, &mut tn, true).await {
                // Keep the namespace: the container still lives in it.
                for p in &tn.plans {
                    self.drop_overlay_user(&mut st, &p.network_id, &task.id)
                        .await;
                }
                return Err(e);
            }
            st.tasks.insert(task.id.clone(), tn);
            self.changed(&mut st);
        }
        if running {
            self.container_running(container).await;
        }
        tracing::info!(task = %task.id, "network of a running task adopted");
        Ok(())
    }

    /// The node's own attachments from the managers (its ingress address): set up or move the
    /// node's routing-mesh endpoint.
    pub async fn set_node_attachments(&self, attachments: Vec<NetworkAttachment>) {
        let mut st = self.state.lock().await;
        st.node_attachments = attachments.clone();
        let want = attachments
            .iter()
            .filter(|a| a.network.spec.ingress)
            .find_map(|a| match plan::attach_plan(a) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!("node ingress attachment refused: {e}");
                    None
                }
            });
        if st.ingress.as_ref().map(|i| &i.plan) == want.as_ref() {
            return;
        }
        if let Some(old) = st.ingress.take() {
            self.remove_node_ingress(&mut st, old).await;
        }
        let Some(p) = want else { return };
        let Some((vtep, mtu, gossip)) = st
            .swarm
            .as_ref()
            .map(|s| (s.vtep, s.underlay_mtu, s.gossip.clone()))
        else {
            return; // set up once gossip runs (swarm_started)
        };
        match self.add_node_ingress(&mut st, &p, vtep, mtu).await {
            Ok(att) => {
                let local_vtep = st
                    .overlays
                    .get(&p.network_id)
                    .map(|e| e.overlay.spec.local_vtep)
                    .unwrap_or(vtep);
                publish_endpoint(&gossip, &p, local_vtep).await;
                tracing::info!(ip = %p.ip, "node ingress endpoint up");
                st.ingress = Some(NodeIngress {
                    plan: p,
                    attachment: att,
                });
                st.applied_mesh = None;
                self.changed(&mut st);
            }
            Err(e) => tracing::error!("setting up the routing mesh: {e:#}"),
        }
    }

    async fn add_node_ingress(
        &self,
        st: &mut State,
        p: &AttachPlan,
        vtep: Ipv4Addr,
        mtu: u32,
    ) -> Result<Attachment> {
        self.ensure_overlay(st, p, vtep, mtu, NODE_USER).await?;
        let res = async {
            let e = st
                .overlays
                .get(&p.network_id)
                .ok_or_else(|| anyhow!("ingress overlay vanished"))?;
            // A leftover from a previous run of this daemon is replaced.
            let (old_host, _) = bridge_net::veth_names(&self.host_netns, INGRESS_IFNAME, p.ip);
            e.overlay.netlink().delete_link(&old_host).await?;
            self.host.delete_link(INGRESS_IFNAME).await?;
            let att = e
                .overlay
                .attach_endpoint(&self.host_netns, INGRESS_IFNAME, p.ip, None, false)
                .await?;
            // Published ports are forwarded from the underlay into the ingress overlay.
            bridge_net::set_sysctl(Some(&self.host_netns), "net/ipv4/ip_forward", "1")?;
            Ok::<_, anyhow::Error>(att)
        }
        .await;
        if res.is_err() {
            self.drop_overlay_user(st, &p.network_id, NODE_USER).await;
        }
        res
    }

    async fn remove_node_ingress(&self, st: &mut State, ing: NodeIngress) {
        if let Some(sw) = &st.swarm {
            let _ = sw.gossip.withdraw(&ing.plan.network_id, ing.plan.ip).await;
        }
        if let Some(e) = st.overlays.get(&ing.plan.network_id) {
            let _ = e.overlay.detach_endpoint(&ing.attachment).await;
        }
        let _ = self.host.delete_link(INGRESS_IFNAME).await;
        self.drop_overlay_user(st, &ing.plan.network_id, NODE_USER)
            .await;
        st.applied_mesh = None;
        self.changed(st);
    }
}

/// Why a task's network could not be prepared.
#[derive(Debug)]
pub enum PrepareError {
    /// The task's network data is unusable: retrying cannot help.
    Invalid(String),
    /// The kernel or the node refused: may work on a retry.
    Failed(String),
}

impl std::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrepareError::Invalid(m) => write!(f, "invalid network attachment: {m}"),
            PrepareError::Failed(m) => write!(f, "setting up the task's network: {m}"),
        }
    }
}

async fn publish_endpoint(g: &Gossip, p: &AttachPlan, vtep: Ipv4Addr) {
    let ep = Endpoint {
        network: p.network_id.clone(),
        ip: p.ip,
        mac: Mac::from_ip(p.ip),
        vtep,
    };
    if let Err(e) = g.publish(&ep).await {
        tracing::warn!("publishing endpoint {}: {e}", p.ip);
    }
}

/// Apply an nft state as table `table` in `netns` (None: the daemon's namespace), off the
/// async threads (nft is a subprocess, run from a thread inside the namespace).
async fn apply_table(netns: Option<PathBuf>, table: &str, st: &DesiredState) -> Result<()> {
    let rs = shoal_net::nft::build_ruleset(table, st).map_err(|e| anyhow!("{e}"))?;
    tokio::task::spawn_blocking(move || shoal_net::nft::apply(netns.as_deref(), &rs))
        .await
        .map_err(|e| anyhow!("nft thread: {e}"))?
        .map_err(|e| anyhow!("{e}"))
}

async fn delete_table(netns: Option<PathBuf>, table: &str) -> Result<()> {
    let table = table.to_string();
    tokio::task::spawn_blocking(move || shoal_net::nft::delete_table(netns.as_deref(), &table))
        .await
        .map_err(|e| anyhow!("nft thread: {e}"))?
        .map_err(|e| anyhow!("{e}"))
}

/// A link number kept by [`NetPlane::save_index`].
fn saved_index(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The lowest link number not in `used`.
fn lowest_free(used: impl Iterator<Item = u32>) -> u32 {
    let used: BTreeSet<u32> = used.collect();
    (0u32..).find(|i| !used.contains(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_stable_and_a_valid_netns_name() {
        // Tools (the e2e tests) compute the same value independently.
        assert_eq!(prefix_for(Path::new("/a/b")), "shna0fc0c-");
        let p = prefix_for(Path::new("/var/lib/shoal"));
        assert!(netns::validate_name(&task_netns_name(&p, "abcdefghijklmnopqrstuvwxy")).is_ok());
    }
}
