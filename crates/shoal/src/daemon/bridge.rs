//! The default `bridge` network for standalone containers (Docker's `docker0`): one Linux
//! bridge with the gateway address, a network namespace per container (a bind-mounted file
//! under `<exec_root>/netns/`) joined to the bridge by a veth, NAT masquerade for the subnet and
//! DNAT rules for published ports (`-p`, `-P`) in this daemon's own nft table.
//!
//! Endpoints are kept in `<data_root>/bridge/endpoints.json`, so a restarted daemon rebuilds the
//! bridge, re-plugs the veths of the containers that kept running and re-applies its table.
//! The namespace outlives container restarts (the container joins it on every start) and goes
//! with the container's removal.

use anyhow::{Context, Result, anyhow, bail};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shoal_net::bridge_net::{self, AttachSpec};
use shoal_net::netlink::Netlink;
use shoal_net::nft::{self, DesiredState, HostPort, Masquerade, Proto};
use shoal_types::container::{PortMap, parse_host_port_range, parse_port_key};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex as StdMutex;
use tokio::sync::Mutex;

/// Docker's default bridge subnet and gateway.
const DEFAULT_BIP: &str = "172.17.0.1/16";
const DEFAULT_DATA_ROOT: &str = "/var/lib/shoal";
/// Linux's default ephemeral range; `-P` and `-p 80` take host ports from it.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
const MTU: u32 = 1500;
/// The network's name in the API, as Docker's.
pub const NETWORK_NAME: &str = "bridge";

/// Where and how this daemon's bridge lives.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub name: String,
    pub table: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub state_dir: PathBuf,
    pub netns_dir: PathBuf,
}

/// A short stable tag of a path (FNV-1a), so names derived from it survive daemon upgrades.
fn path_tag(p: &Path) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in p.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

impl BridgeConfig {
    /// `bip` is `gateway/prefix`; names derive from the data root unless `name` is given.
    pub fn new(
        data_root: &Path,
        exec_root: &Path,
        bip: Option<&str>,
        name: Option<&str>,
    ) -> Result<BridgeConfig> {
        let bip = bip.unwrap_or(DEFAULT_BIP);
        let net: Ipv4Net = bip.parse().map_err(|_| {
            anyhow!("--bip {bip:?} is not an IPv4 address/prefix (e.g. {DEFAULT_BIP})")
        })?;
        if net.prefix_len() > 30 {
            bail!("--bip {bip:?}: the subnet must hold at least two containers (prefix ≤ /30)");
        }
        let subnet = net.trunc();
        let gateway = net.addr();
        bridge_net::check_in_subnet(subnet, gateway, "--bip gateway")
            .map_err(|e| anyhow!("{e}"))?;
        let tag = if data_root == Path::new(DEFAULT_DATA_ROOT) {
            "shoal".to_string()
        } else {
            format!("sh{}", path_tag(data_root))
        };
        let name = match name {
            Some(n) => n.to_string(),
            None => format!("{tag}0"),
        };
        shoal_net::netlink::validate_ifname(&name)
            .map_err(|e| anyhow!("--bridge {name:?}: {e}"))?;
        let table = nft::table_name(&tag, "bridge").map_err(|e| anyhow!("{e}"))?;
        Ok(BridgeConfig {
            name,
            table,
            subnet,
            gateway,
            state_dir: data_root.join("bridge"),
            netns_dir: exec_root.join("netns"),
        })
    }
}

/// One published port of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `tcp` or `udp`.
    pub proto: String,
    pub container_port: u16,
    /// None: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
}

impl PublishedPort {
    fn proto(&self) -> Proto {
        if self.proto == "udp" {
            Proto::Udp
        } else {
            Proto::Tcp
        }
    }

    /// Whether two bindings want the same host socket.
    fn clashes(&self, proto: &str, port: u16, ip: Option<Ipv4Addr>) -> bool {
        self.proto == proto
            && self.host_port == port
            && (self.host_ip.is_none() || ip.is_none() || self.host_ip == ip)
    }
}

/// A container's place on the bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// Names the namespace file; known before the container id is.
    pub key: String,
    /// Empty until the container was created.
    #[serde(default)]
    pub container_id: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub netns: PathBuf,
    pub host_ifname: String,
    pub ports: Vec<PublishedPort>,
    /// `80/tcp` keys the container exposes (published or not), for inspect and ps.
    #[serde(default)]
    pub exposed: BTreeSet<String>,
}

/// What a create request asks of the bridge.
#[derive(Debug, Clone, Default)]
pub struct PortRequest {
    pub bindings: PortMap,
    pub publish_all: bool,
    pub exposed: BTreeSet<String>,
}

pub struct Bridge {
    pub cfg: BridgeConfig,
    nl: Netlink,
    /// Serializes changes (allocation, release, rule updates).
    op: Mutex<()>,
    endpoints: StdMutex<BTreeMap<String, Endpoint>>,
}

/// Creates a network namespace and bind-mounts it at `path` (the file must not exist).
fn create_netns(path: &Path) -> Result<()> {
    std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let p = path.to_path_buf();
    let res = std::thread::spawn(move || -> Result<()> {
        // Only this short-lived thread changes namespace.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(NEWNET)")?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting the namespace on {}", p.display()))
    })
    .join()
    .map_err(|_| anyhow!("namespace thread panicked"))
    .and_then(|r| r);
    if res.is_err() {
        let _ = std::fs::remove_file(path);
    }
    res
}

fn delete_netns(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

fn is_netns_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == want))
}

/// Whether the host socket is free (nothing else on this node listens there).
fn host_port_free(proto: &str, ip: Option<Ipv4Addr>, port: u16) -> bool {
    let addr = (ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    if proto == "udp" {
        std::net::UdpSocket::bind(addr).is_ok()
    } else {
        std::net::TcpListener::bind(addr).is_ok()
    }
}

fn random_key() -> String {
    use rand_like::fill;
    let mut b = [0u8; 8];
    fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Randomness from the kernel without another dependency.
mod rand_like {
    pub fn fill(buf: &mut [u8]) {
        use std::io::Read;
        if let Ok(mut f) = std::fs::File::open("/dev/urandom")
            && f.read_exact(buf).is_ok()
        {
            return;
        }
        // Fallback: time and pid, good enough for a file name that is checked for clashes.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8;
        }
    }
}

impl Bridge {
    /// Sets up (or adopts) the bridge, loads the endpoints and keeps those of `live`
    /// containers: their veths are re-plugged (or recreated) and the table re-applied.
    /// Endpoints of containers that are gone are released.
    pub async fn open(cfg: BridgeConfig, live: &HashSet<String>) -> Result<Bridge> {
        std::fs::create_dir_all(&cfg.state_dir)
            .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
        std::fs::create_dir_all(&cfg.netns_dir)
            .with_context(|| format!("creating {}", cfg.netns_dir.display()))?;
        let nl = Netlink::current().map_err(|e| anyhow!("netlink: {e}"))?;
        let stored: BTreeMap<String, Endpoint> =
            match std::fs::read(cfg.state_dir.join("endpoints.json")) {
                Ok(b) => serde_json::from_slice(&b).with_context(|| {
                    format!("reading {}", cfg.state_dir.join("endpoints.json").display())
                })?,
                Err(_) => BTreeMap::new(),
            };
        let bridge = Bridge {
            cfg,
            nl,
            op: Mutex::new(()),
            endpoints: StdMutex::new(BTreeMap::new()),
        };
        bridge.ensure_bridge().await?;
        let mut kept = BTreeMap::new();
        for (key, ep) in stored {
            if ep.container_id.is_empty() || !live.contains(&ep.container_id) {
                bridge.unplug(&ep).await;
                continue;
            }
            match bridge.replug(&ep).await {
                Ok(ep) => {
                    kept.insert(key, ep);
                }
                Err(e) => {
                    tracing::warn!(container = %ep.container_id, "re-plugging into the bridge: {e:#}");
                    kept.insert(key, ep);
                }
            }
        }
        if let Ok(mut m) = bridge.endpoints.lock() {
            *m = kept;
        }
        // Namespace files nobody owns (a crash between creating and recording one).
        if let Ok(rd) = std::fs::read_dir(&bridge.cfg.netns_dir) {
            let known: HashSet<PathBuf> = bridge.all().into_iter().map(|e| e.netns).collect();
            for e in rd.flatten() {
                if !known.contains(&e.path()) {
                    delete_netns(&e.path());
                }
            }
        }
        bridge.save()?;
        bridge.apply_rules().await?;
        Ok(bridge)
    }

    async fn ensure_bridge(&self) -> Result<()> {
        let c = &self.cfg;
        bridge_net::ensure_bridge(&self.nl, &c.name, c.subnet, c.gateway, MTU)
            .await
            .map_err(|e| anyhow!("setting up bridge {}: {e}", c.name))?;
        // Forwarding for NAT; route_localnet so `localhost:<published>` reaches containers.
        for (k, v) in [
            ("net/ipv4/ip_forward".to_string(), "1"),
            (format!("net/ipv4/conf/{}/route_localnet", c.name), "1"),
        ] {
            bridge_net::set_sysctl(None, &k, v).map_err(|e| anyhow!("sysctl {k}: {e}"))?;
        }
        Ok(())
    }

    fn all(&self) -> Vec<Endpoint> {
        self.endpoints
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The endpoint of a container, if it is on the bridge.
    pub fn endpoint_of(&self, container_id: &str) -> Option<Endpoint> {
        self.endpoints.lock().ok().and_then(|m| {
            m.values()
                .find(|e| !container_id.is_empty() && e.container_id == container_id)
                .cloned()
        })
    }

    fn save(&self) -> Result<()> {
        let map = self
            .endpoints
            .lock()
            .map_err(|_| anyhow!("endpoint table poisoned"))?
            .clone();
        let path = self.cfg.state_dir.join("endpoints.json");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&map)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// The nft table for every endpoint's published ports plus the subnet's masquerade.
    fn desired(&self) -> DesiredState {
        let mut host_ports = Vec::new();
        for ep in self.all() {
            for p in &ep.ports {
                host_ports.push(HostPort {
                    proto: p.proto(),
                    host_port: p.host_port,
                    host_ip: p.host_ip,
                    target: ep.ip,
                    target_port: p.container_port,
                });
            }
        }
        DesiredState {
            masquerade: vec![Masquerade {
                subnet: self.cfg.subnet,
                bridge: Some(self.cfg.name.clone()),
            }],
            host_ports,
            masquerade_loopback: true,
            ..Default::default()
        }
    }

    async fn apply_rules(&self) -> Result<()> {
        let rs = nft::build_ruleset(&self.cfg.table, &self.desired())
            .map_err(|e| anyhow!("building the bridge's nft rules: {e}"))?;
        tokio::task::spawn_blocking(move || nft::apply(None, &rs))
            .await
            .map_err(|e| anyhow!("nft task: {e}"))?
            .map_err(|e| anyhow!("applying the bridge's nft rules: {e}"))
    }

    /// Chooses host ports for the request, refusing ones taken by another container or by
    /// a socket on this node.
    fn plan_ports(&self, req: &PortRequest) -> Result<(Vec<PublishedPort>, BTreeSet<String>)> {
        let taken: Vec<PublishedPort> = self.all().into_iter().flat_map(|e| e.ports).collect();
        let mut out: Vec<PublishedPort> = Vec::new();
        let mut exposed = req.exposed.clone();
        let mut wanted: Vec<(u16, String, String, String)> = Vec::new();
        for (key, bindings) in &req.bindings {
            let (port, proto) = parse_port_key(key).map_err(|e| anyhow!("{}", e.message))?;
            if proto == "sctp" {
                bail!("publishing sctp ports is not supported ({key})");
            }
            exposed.insert(format!("{port}/{proto}"));
            for b in bindings {
                wanted.push((port, proto.clone(), b.host_ip.clone(), b.host_port.clone()));
            }
        }
        if req.publish_all {
            for key in &exposed {
                let (port, proto) = parse_port_key(key).map_err(|e| anyhow!("{}", e.message))?;
                let bound = req
                    .bindings
                    .keys()
                    .any(|k| parse_port_key(k).is_ok_and(|(p, pr)| p == port && pr == proto));
                if !bound && proto != "sctp" {
                    wanted.push((port, proto, String::new(), String::new()));
                }
            }
        }
        for (port, proto, host_ip, host_port) in wanted {
            let ip = match host_ip.as_str() {
                "" | "0.0.0.0" | "::" => None,
                s => match s.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(v4)) => Some(v4),
                    Ok(std::net::IpAddr::V6(_)) => {
                        bail!("publishing on IPv6 address {s} is not supported")
                    }
                    Err(_) => bail!("invalid host IP {s:?}"),
                },
            };
            let (lo, hi) = match host_port.as_str() {
                "" | "0" => (*EPHEMERAL.start(), *EPHEMERAL.end()),
                s => parse_host_port_range(s).map_err(|e| anyhow!("{}", e.message))?,
            };
            let usable = |hp: u16| {
                !taken
                    .iter()
                    .chain(out.iter())
                    .any(|p| p.clashes(&proto, hp, ip))
                    && host_port_free(&proto, ip, hp)
            };
            let Some(hp) = (lo..=hi).find(|hp| usable(*hp)) else {
                let shown = ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into());
                if lo == hi {
                    bail!("Bind for {shown}:{lo} failed: port is already allocated");
                }
                bail!("no free host port in {lo}-{hi} on {shown} for {port}/{proto}");
            };
            out.push(PublishedPort {
                proto,
                container_port: port,
                host_ip: ip,
                host_port: hp,
            });
        }
        Ok((out, exposed))
    }

    fn free_ip(&self) -> Result<Ipv4Addr> {
        let used: HashSet<Ipv4Addr> = self.all().into_iter().map(|e| e.ip).collect();
        self.cfg
            .subnet
            .hosts()
            .find(|ip| *ip != self.cfg.gateway && !used.contains(ip))
            .ok_or_else(|| anyhow!("no free address left in {}", self.cfg.subnet))
    }

    /// Makes a namespace on the bridge with an address and the requested ports (not yet in
    /// the rules: [`Bridge::bind`] does that once the container exists).
    pub async fn allocate(&self, req: &PortRequest) -> Result<Endpoint> {
        let _g = self.op.lock().await;
        let (ports, exposed) = self.plan_ports(req)?;
        let ip = self.free_ip()?;
        let key = loop {
            let k = random_key();
            if !self.cfg.netns_dir.join(&k).exists() {
                break k;
            }
        };
        let netns = self.cfg.netns_dir.join(&key);
        create_netns(&netns)?;
        let ep = match self.plug(&netns, ip).await {
            Ok(att) => Endpoint {
                key: key.clone(),
                container_id: String::new(),
                ip,
                mac: att.mac.to_string(),
                netns,
                host_ifname: att.host_ifname,
                ports,
                exposed,
            },
            Err(e) => {
                delete_netns(&netns);
                return Err(e);
            }
        };
        if let Ok(mut m) = self.endpoints.lock() {
            m.insert(key, ep.clone());
        }
        if let Err(e) = self.save() {
            self.forget(&ep.key);
            self.unplug(&ep).await;
            return Err(e);
        }
        Ok(ep)
    }

    async fn plug(&self, netns: &Path, ip: Ipv4Addr) -> Result<bridge_net::Attachment> {
        bridge_net::attach(
            &self.nl,
            &self.cfg.name,
            &AttachSpec {
                netns: netns.to_path_buf(),
                ifname: "eth0".into(),
                ip,
                prefix: self.cfg.subnet.prefix_len(),
                gateway: Some(self.cfg.gateway),
                mac: None,
                mtu: MTU,
            },
        )
        .await
        .map_err(|e| anyhow!("plugging the container into {}: {e}", self.cfg.name))
    }

    /// After a daemon restart: the namespace and veth normally survived; put the veth back on
    /// the bridge (it may have been recreated), or rebuild what is missing.
    async fn replug(&self, ep: &Endpoint) -> Result<Endpoint> {
        let mut ep = ep.clone();
        if !is_netns_mounted(&ep.netns) {
            let _ = std::fs::remove_file(&ep.netns);
            create_netns(&ep.netns)?;
        }
        let host_end = self
            .nl
            .link(&ep.host_ifname)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        if host_end.is_some() {
            self.nl
                .set_controller(&ep.host_ifname, &self.cfg.name)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            self.nl
                .set_up(&ep.host_ifname)
                .await
                .map_err(|e| anyhow!("{e}"))?;
        } else {
            let att = self.plug(&ep.netns, ep.ip).await?;
            ep.host_ifname = att.host_ifname;
            ep.mac = att.mac.to_string();
        }
        Ok(ep)
    }

    async fn unplug(&self, ep: &Endpoint) {
        if let Err(e) = self.nl.delete_link(&ep.host_ifname).await {
            tracing::warn!("removing veth {}: {e}", ep.host_ifname);
        }
        delete_netns(&ep.netns);
    }

    fn forget(&self, key: &str) {
        if let Ok(mut m) = self.endpoints.lock() {
            m.remove(key);
        }
    }

    /// The container was created on endpoint `key`: record it and publish its ports.
    pub async fn bind(&self, key: &str, container_id: &str) -> Result<()> {
        let _g = self.op.lock().await;
        if let Ok(mut m) = self.endpoints.lock()
            && let Some(e) = m.get_mut(key)
        {
            e.container_id = container_id.to_string();
        }
        self.save()?;
        self.apply_rules().await
    }

    /// Undo an allocation whose container was never created.
    pub async fn release(&self, key: &str) {
        let _g = self.op.lock().await;
        let ep = self.endpoints.lock().ok().and_then(|m| m.get(key).cloned());
        if let Some(ep) = ep {
            self.forget(key);
            self.unplug(&ep).await;
            if let Err(e) = self.save() {
                tracing::warn!("{e:#}");
            }
        }
    }

    /// Releases the endpoints of containers not in `live` (removed, or auto-removed by the
    /// runtime); returns how many went.
    pub async fn gc(&self, live: &HashSet<String>) -> usize {
        let _g = self.op.lock().await;
        let gone: Vec<Endpoint> = self
            .all()
            .into_iter()
            .filter(|e| !e.container_id.is_empty() && !live.contains(&e.container_id))
            .collect();
        for ep in &gone {
            self.forget(&ep.key);
            self.unplug(ep).await;
        }
        if !gone.is_empty() {
            if let Err(e) = self.save() {
                tracing::warn!("{e:#}");
            }
            if let Err(e) = self.apply_rules().await {
                tracing::warn!("{e:#}");
            }
        }
        gone.len()
    }

    /// Daemon stop: with no container left running on the bridge, the table and the bridge
    /// go (a restart rebuilds them); running containers keep their network.
    pub async fn shutdown(&self, running: &HashSet<String>) {
        let _g = self.op.lock().await;
        if self.all().iter().any(|e| running.contains(&e.container_id)) {
            tracing::info!(
                bridge = %self.cfg.name,
                "containers still run on the bridge: keeping it and its rules"
            );
            return;
        }
        let table = self.cfg.table.clone();
        match tokio::task::spawn_blocking(move || nft::delete_table(None, &table)).await {
            Ok(Err(e)) => tracing::warn!("removing nft table {}: {e}", self.cfg.table),
            Err(e) => tracing::warn!("removing nft table: {e}"),
            Ok(Ok(())) => {}
        }
        if let Err(e) = bridge_net::remove_bridge(&self.nl, &self.cfg.name).await {
            tracing::warn!("removing bridge {}: {e}", self.cfg.name);
        }
    }

    /// `NetworkSettings` of a container, as Docker shows it.
    pub fn network_settings(&self, ep: Option<&Endpoint>) -> Value {
        let Some(ep) = ep else {
            return json!({"Networks": {}, "Ports": {}});
        };
        let prefix = self.cfg.subnet.prefix_len();
        let gw = self.cfg.gateway.to_string();
        json!({
            "Bridge": "", "SandboxID": ep.key,
            "SandboxKey": ep.netns.display().to_string(),
            "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports_map(ep),
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
            "EndpointID": ep.key, "Gateway": gw, "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": ep.ip.to_string(), "IPPrefixLen": prefix,
            "IPv6Gateway": "", "MacAddress": ep.mac,
            "Networks": {
                NETWORK_NAME: {
                    "IPAMConfig": null, "Links": null, "Aliases": null,
                    "MacAddress": ep.mac, "DriverOpts": null,
                    "NetworkID": self.network_id(), "EndpointID": ep.key,
                    "Gateway": gw, "IPAddress": ep.ip.to_string(), "IPPrefixLen": prefix,
                    "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                    "DNSNames": null,
                }
            },
        })
    }

    /// A stable id for the network (Docker shows a random one per daemon).
    pub fn network_id(&self) -> String {
        let t = path_tag(&self.cfg.state_dir);
        format!("{t}{t}{t}{t}{t}{t}{t}{t}")
    }
}

/// The daemon's default bridge; an error (logged) leaves the daemon usable for containers on
/// the host or no network, and bridge requests get the reason.
pub async fn open_default(
    cfg: &super::config::DaemonConfig,
    rt: &shoal_runtime::container::Runtime,
) -> std::result::Result<std::sync::Arc<Bridge>, String> {
    let live: HashSet<String> = rt.list(true).into_iter().map(|c| c.id).collect();
    let r = async {
        let bc = BridgeConfig::new(
            &cfg.data_root,
            &cfg.exec_root,
            cfg.bip.as_deref(),
            cfg.bridge.as_deref(),
        )?;
        Bridge::open(bc, &live).await
    }
    .await;
    match r {
        Ok(b) => {
            tracing::info!(bridge = %b.cfg.name, subnet = %b.cfg.subnet, "default bridge ready");
            Ok(std::sync::Arc::new(b))
        }
        Err(e) => {
            tracing::error!("default bridge network unavailable: {e:#}");
            Err(format!("{e:#}"))
        }
    }
}

/// On daemon stop: the bridge and its table go unless containers still run on it.
pub async fn shutdown(d: &super::Daemon) {
    if let Ok(b) = &d.bridge {
        let running: HashSet<String> = d.runtime.list(false).into_iter().map(|c| c.id).collect();
        b.shutdown(&running).await;
    }
}

/// `{"80/tcp": [{"HostIp","HostPort"}], "443/tcp": null}` (exposed but unpublished).
pub fn ports_map(ep: &Endpoint) -> Value {
    let mut m = serde_json::Map::new();
    for k in &ep.exposed {
        m.insert(k.clone(), Value::Null);
    }
    for p in &ep.ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = m.entry(key).or_insert(Value::Null);
        if entry.is_null() {
            *entry = json!([]);
        }
        if let Some(a) = entry.as_array_mut() {
            a.push(json!({
                "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    Value::Object(m)
}

/// `ps`'s `Ports`: one entry per binding, plus exposed-only ports.
pub fn ps_ports(ep: &Endpoint) -> Value {
    let mut out = Vec::new();
    for p in &ep.ports {
        out.push(json!({
            "IP": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
            "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto,
        }));
    }
    for k in &ep.exposed {
        if let Ok((port, proto)) = parse_port_key(k)
            && !ep
                .ports
                .iter()
                .any(|p| p.container_port == port && p.proto == proto)
        {
            out.push(json!({"PrivatePort": port, "Type": proto}));
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_bip() {
        let c = BridgeConfig::new(
            Path::new("/var/lib/shoal"),
            Path::new("/run/shoal"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(c.name, "shoal0");
        assert_eq!(c.table, "shoal-bridge");
        assert_eq!(c.subnet.to_string(), "172.17.0.0/16");
        assert_eq!(c.gateway, Ipv4Addr::new(172, 17, 0, 1));
        let d = BridgeConfig::new(
            Path::new("/tmp/lab/node1/data"),
            Path::new("/tmp/lab/node1/run"),
            Some("10.99.0.1/24"),
            None,
        )
        .unwrap();
        assert!(d.name.starts_with("sh") && d.name.len() <= 15, "{}", d.name);
        assert_ne!(d.name, c.name);
        assert!(d.table.ends_with("-bridge"));
        assert_eq!(d.subnet.to_string(), "10.99.0.0/24");
        for bad in ["10.99.0.0/24", "10.99.0.1/31", "nonsense", "10.99.0.255/24"] {
            assert!(
                BridgeConfig::new(Path::new("/x"), Path::new("/y"), Some(bad), None).is_err(),
                "{bad}"
            );
        }
        assert!(
            BridgeConfig::new(
                Path::new("/x"),
                Path::new("/y"),
                None,
                Some("way-too-long-name")
            )
            .is_err()
        );
    }

    #[test]
    fn ports_show_as_docker_does() {
        let ep = Endpoint {
            key: "k".into(),
            container_id: "c".into(),
            ip: Ipv4Addr::new(172, 17, 0, 2),
            mac: "02:42:ac:11:00:02".into(),
            netns: "/x".into(),
            host_ifname: "shv0".into(),
            ports: vec![PublishedPort {
                proto: "tcp".into(),
                container_port: 80,
                host_ip: None,
                host_port: 8080,
            }],
            exposed: ["80/tcp".to_string(), "443/tcp".to_string()].into(),
        };
        let m = ports_map(&ep);
        assert_eq!(m["80/tcp"][0]["HostPort"], "8080");
        assert_eq!(m["80/tcp"][0]["HostIp"], "0.0.0.0");
        assert!(m["443/tcp"].is_null());
        let ps = ps_ports(&ep);
        assert_eq!(ps.as_array().map(Vec::len), Some(2));
        assert_eq!(ps[0]["PublicPort"], 8080);
        assert!(ps[1].get("PublicPort").is_none());
    }

    #[test]
    fn clashes_consider_wildcards() {
        let p = PublishedPort {
            proto: "tcp".into(),
            container_port: 80,
            host_ip: None,
            host_port: 8080,
        };
        assert!(p.clashes("tcp", 8080, Some(Ipv4Addr::LOCALHOST)));
        assert!(!p.clashes("udp", 8080, None));
        assert!(!p.clashes("tcp", 8081, None));
        let q = PublishedPort {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            ..p
        };
        assert!(!q.clashes("tcp", 8080, Some(Ipv4Addr::new(10, 0, 0, 1))));
    }
}
