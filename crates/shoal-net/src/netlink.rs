//! An rtnetlink handle bound to one network namespace.
//!
//! A netlink socket belongs to the namespace it was created in. [`Netlink`] owns a dedicated OS
//! thread that (optionally) `setns()`s into the target namespace, opens the connection there and
//! runs a current-thread tokio runtime; every request is shipped to that thread and the answer
//! comes back over a oneshot channel, so callers can use it from any runtime or thread.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder};
use tokio::sync::{mpsc, oneshot};

use crate::{Mac, NetError, Result};

type Job = Box<dyn FnOnce(Handle) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// What a link looks like from a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfoSummary {
    pub index: u32,
    pub name: String,
    /// `bridge`, `vxlan`, `veth`, `tun`, … or empty for plain devices such as `lo`.
    pub kind: String,
    pub mtu: u32,
    pub up: bool,
    /// Index of the bridge this link is a port of.
    pub controller: Option<u32>,
    pub mac: Option<Mac>,
}

/// Parameters of a VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    /// UDP destination port (4789).
    pub port: u16,
    /// Local VTEP address (source of the encapsulated packets).
    pub local: Option<Ipv4Addr>,
    /// Learning stays off: the FDB is programmed from gossip.
    pub learning: bool,
    /// ARP proxy: answer ARP from the neighbour table (no broadcast flooding across nodes).
    pub proxy: bool,
    pub mtu: Option<u32>,
}

impl VxlanSpec {
    /// The usual overlay setting: port 4789, learning off, proxy on.
    pub fn new(name: &str, vni: u32, local: Option<Ipv4Addr>) -> VxlanSpec {
        VxlanSpec {
            name: name.to_string(),
            vni,
            port: crate::VXLAN_PORT,
            local,
            learning: false,
            proxy: true,
            mtu: None,
        }
    }
}

/// Check a Linux interface name (at most 15 bytes, no '/', no whitespace).
pub fn validate_ifname(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(NetError::Invalid(format!("bad interface name {name:?}")));
    }
    Ok(())
}

fn nl_err(what: &str, e: rtnetlink::Error) -> NetError {
    NetError::Netlink(format!("{what}: {e}"))
}

/// The errno (positive) of a netlink error reply, if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl_err(&format!("get link {name}"), e)),
    }
}

async fn require_index(h: &Handle, name: &str) -> Result<u32> {
    index_of(h, name)
        .await?
        .ok_or_else(|| NetError::NotFound(format!("link {name}")))
}

fn summarize(m: &LinkMessage) -> LinkInfoSummary {
    let mut s = LinkInfoSummary {
        index: m.header.index,
        name: String::new(),
        kind: String::new(),
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        controller: None,
        mac: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => s.name = n.clone(),
            LinkAttribute::Mtu(v) => s.mtu = *v,
            LinkAttribute::Controller(c) => s.controller = Some(*c),
            LinkAttribute::Address(b) => s.mac = Mac::try_from(b.as_slice()).ok(),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        s.kind = k.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// A netlink connection living in one network namespace.
pub struct Netlink {
    tx: mpsc::UnboundedSender<Job>,
    netns: Option<PathBuf>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.netns)
            .finish()
    }
}

impl Netlink {
    /// A handle in the namespace of the calling thread.
    pub fn current() -> Result<Netlink> {
        Self::start(None)
    }

    /// A handle inside the namespace at `path` (`/run/netns/x`, `/proc/<pid>/ns/net`).
    pub fn in_netns(path: &Path) -> Result<Netlink> {
        Self::start(Some(path.to_path_buf()))
    }

    /// The namespace this handle works in (None = where it was created).
    pub fn netns(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    fn start(netns: Option<PathBuf>) -> Result<Netlink> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let ns = netns.clone();
        std::thread::Builder::new()
            .name("shoal-netlink".into())
            .spawn(move || {
                let setup = || -> Result<(tokio::runtime::Runtime, Handle)> {
                    if let Some(p) = &ns {
                        crate::netns::enter(p)?;
                    }
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let (conn, handle, _) = rt.block_on(async { rtnetlink::new_connection() })?;
                    rt.spawn(conn);
                    Ok((rt, handle))
                };
                let (rt, handle) = match setup() {
                    Ok(x) => {
                        let _ = ready_tx.send(Ok(()));
                        x
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Jobs run one after another: netlink changes keep the order they were asked in.
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        job(handle.clone()).await;
                    }
                });
            })?;
        ready_rx
            .recv()
            .map_err(|_| NetError::Netlink("netlink thread died during setup".into()))??;
        Ok(Netlink { tx, netns })
    }

    /// Run `f` with the rtnetlink handle on the namespace's thread.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Handle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let (otx, orx) = oneshot::channel();
        let job: Job = Box::new(move |h| {
            Box::pin(async move {
                let _ = otx.send(f(h).await);
            })
        });
        self.tx
            .send(job)
            .map_err(|_| NetError::Netlink("netlink thread is gone".into()))?;
        orx.await
            .map_err(|_| NetError::Netlink("netlink request dropped".into()))?
    }

    /// All links of the namespace.
    pub async fn list_links(&self) -> Result<Vec<LinkInfoSummary>> {
        self.call(|h| async move {
            let mut out = Vec::new();
            let mut s = h.link().get().execute();
            while let Some(m) = s.try_next().await.map_err(|e| nl_err("dump links", e))? {
                out.push(summarize(&m));
            }
            Ok(out)
        })
        .await
    }

    /// One link by name, if present.
    pub async fn link(&self, name: &str) -> Result<Option<LinkInfoSummary>> {
        validate_ifname(name)?;
        let name = name.to_string();
        self.call(move |h| async move {
            let mut s = h.link().get().match_name(name.clone()).execute();
            match s.try_next().await {
                Ok(m) => Ok(m.as_ref().map(summarize)),
                Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
                Err(e) => Err(nl_err(&format!("get link {name}"), e)),
            }
        })
        .await
    }

    /// Index of a link, if present.
    pub async fn index(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name).await?.map(|l| l.index))
    }

    /// Create a bridge (fails if the name is taken).
    pub async fn create_bridge(&self, name: &str, mtu: Option<u32>) -> Result<u32> {
        validate_ifname(name)?;
        let name = name.to_string();
        self.call(move |h| async move {
            let mut b = LinkBridge::new(&name);
            if let Some(m) = mtu {
                b = b.mtu(m);
            }
            h.link()
                .add(b.build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("add bridge {name}"), e))?;
            require_index(&h, &name).await
        })
        .await
    }

    /// A bridge named `name`: reuse one that exists (MTU updated), create it otherwise.
    pub async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<u32> {
        match self.link(name).await? {
            Some(l) if l.kind == "bridge" => {
                if let Some(m) = mtu
                    && l.mtu != m
                {
                    self.set_mtu(name, m).await?;
                }
                Ok(l.index)
            }
            Some(l) => Err(NetError::Invalid(format!(
                "link {name} exists but is a {:?}, not a bridge",
                l.kind
            ))),
            None => self.create_bridge(name, mtu).await,
        }
    }

    /// Create a VXLAN device.
    pub async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<u32> {
        validate_ifname(&spec.name)?;
        if spec.vni == 0 || spec.vni >= 1 << 24 {
            return Err(NetError::Invalid(format!(
                "VNI {} out of range 1..2^24",
                spec.vni
            )));
        }
        let spec = spec.clone();
        self.call(move |h| async move {
            let mut b = LinkVxlan::new(&spec.name, spec.vni)
                .port(spec.port)
                .learning(spec.learning)
                .proxy(spec.proxy);
            if let Some(l) = spec.local {
                b = b.local(l);
            }
            if let Some(m) = spec.mtu {
                b = b.mtu(m);
            }
            h.link()
                .add(b.build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("add vxlan {}", spec.name), e))?;
            require_index(&h, &spec.name).await
        })
        .await
    }

    /// A VXLAN device per `spec`: kept if one of that name exists, created otherwise.
    pub async fn ensure_vxlan(&self, spec: &VxlanSpec) -> Result<u32> {
        match self.link(&spec.name).await? {
            Some(l) if l.kind == "vxlan" => {
                if let Some(m) = spec.mtu
                    && l.mtu != m
                {
                    self.set_mtu(&spec.name, m).await?;
                }
                Ok(l.index)
            }
            Some(l) => Err(NetError::Invalid(format!(
                "link {} exists but is a {:?}, not a vxlan",
                spec.name, l.kind
            ))),
            None => self.create_vxlan(spec).await,
        }
    }

    /// Create a veth pair `name` <-> `peer`, both in this namespace.
    pub async fn create_veth(&self, name: &str, peer: &str, mtu: Option<u32>) -> Result<u32> {
        validate_ifname(name)?;
        validate_ifname(peer)?;
        let (name, peer) = (name.to_string(), peer.to_string());
        self.call(move |h| async move {
            h.link()
                .add(LinkVeth::new(&name, &peer).build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("add veth {name}/{peer}"), e))?;
            let idx = require_index(&h, &name).await?;
            if let Some(m) = mtu {
                let pidx = require_index(&h, &peer).await?;
                for i in [idx, pidx] {
                    h.link()
                        .set(LinkUnspec::new_with_index(i).mtu(m).build())
                        .execute()
                        .await
                        .map_err(|e| nl_err("set veth mtu", e))?;
                }
            }
            Ok(idx)
        })
        .await
    }

    /// Delete a link; fine if it does not exist. Deleting one end of a veth removes both.
    pub async fn delete_link(&self, name: &str) -> Result<()> {
        validate_ifname(name)?;
        let name = name.to_string();
        self.call(move |h| async move {
            let Some(idx) = index_of(&h, &name).await? else {
                return Ok(());
            };
            match h.link().del(idx).execute().await {
                Ok(()) => Ok(()),
                Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
                Err(e) => Err(nl_err(&format!("delete link {name}"), e)),
            }
        })
        .await
    }

    async fn set_link(
        &self,
        name: &str,
        what: &'static str,
        build: fn(u32, SetArg) -> LinkMessage,
        arg: SetArg,
    ) -> Result<()> {
        validate_ifname(name)?;
        let name = name.to_string();
        self.call(move |h| async move {
            let idx = require_index(&h, &name).await?;
            h.link()
                .set(build(idx, arg))
                .execute()
                .await
                .map_err(|e| nl_err(&format!("{what} {name}"), e))
        })
        .await
    }

    /// Bring a link up.
    pub async fn set_up(&self, name: &str) -> Result<()> {
        self.set_link(
            name,
            "set up",
            |i, _| LinkUnspec::new_with_index(i).up().build(),
            SetArg::None,
        )
        .await
    }

    /// Bring a link down.
    pub async fn set_down(&self, name: &str) -> Result<()> {
        self.set_link(
            name,
            "set down",
            |i, _| LinkUnspec::new_with_index(i).down().build(),
            SetArg::None,
        )
        .await
    }

    /// Set a link's MTU.
    pub async fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        if !(68..=65535).contains(&mtu) {
            return Err(NetError::Invalid(format!(
                "MTU {mtu} out of range 68..65535"
            )));
        }
        self.set_link(
            name,
            "set mtu",
            |i, a| match a {
                SetArg::U32(m) => LinkUnspec::new_with_index(i).mtu(m).build(),
                _ => LinkUnspec::new_with_index(i).build(),
            },
            SetArg::U32(mtu),
        )
        .await
    }

    /// Set a link's MAC address.
    pub async fn set_mac(&self, name: &str, mac: Mac) -> Result<()> {
        self.set_link(
            name,
            "set mac",
            |i, a| match a {
                SetArg::Mac(m) => LinkUnspec::new_with_index(i).address(m.0.to_vec()).build(),
                _ => LinkUnspec::new_with_index(i).build(),
            },
            SetArg::Mac(mac),
        )
        .await
    }

    /// Rename a link (it must be down).
    pub async fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        validate_ifname(new_name)?;
        validate_ifname(name)?;
        let (name, new_name) = (name.to_string(), new_name.to_string());
        self.call(move |h| async move {
            let idx = require_index(&h, &name).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(idx)
                        .name(new_name.clone())
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| nl_err(&format!("rename {name} -> {new_name}"), e))
        })
        .await
    }

    /// Make `name` a port of bridge `bridge`.
    pub async fn set_controller(&self, name: &str, bridge: &str) -> Result<()> {
        validate_ifname(name)?;
        validate_ifname(bridge)?;
        let (name, bridge) = (name.to_string(), bridge.to_string());
        self.call(move |h| async move {
            let idx = require_index(&h, &name).await?;
            let br = require_index(&h, &bridge).await?;
            h.link()
                .set(LinkUnspec::new_with_index(idx).controller(br).build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("attach {name} to {bridge}"), e))
        })
        .await
    }

    /// Move a link into the namespace at `netns_path`.
    pub async fn move_to_netns(&self, name: &str, netns_path: &Path) -> Result<()> {
        validate_ifname(name)?;
        let name = name.to_string();
        let f = std::fs::File::open(netns_path)
            .map_err(|e| NetError::Netns(format!("open {}: {e}", netns_path.display())))?;
        self.call(move |h| async move {
            let idx = require_index(&h, &name).await?;
            // `f` stays open until the request completed.
            let r = h
                .link()
                .set(
                    LinkUnspec::new_with_index(idx)
                        .setns_by_fd(f.as_raw_fd())
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| nl_err(&format!("move {name} to netns"), e));
            drop(f);
            r
        })
        .await
    }

    /// Add `ip/prefix` to a link; already present is fine.
    pub async fn add_address(&self, name: &str, ip: IpAddr, prefix: u8) -> Result<()> {
        validate_ifname(name)?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(NetError::Invalid(format!(
                "prefix /{prefix} too long for {ip}"
            )));
        }
        let name = name.to_string();
        self.call(move |h| async move {
            let idx = require_index(&h, &name).await?;
            h.address()
                .add(idx, ip, prefix)
                .replace()
                .execute()
                .await
                .map_err(|e| nl_err(&format!("add address {ip}/{prefix} on {name}"), e))
        })
        .await
    }

    /// Set (or replace) the default IPv4 route via `gateway`.
    pub async fn set_default_route(&self, gateway: Ipv4Addr) -> Result<()> {
        self.call(move |h| async move {
            let msg = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .build();
            h.route()
                .add(msg)
                .replace()
                .execute()
                .await
                .map_err(|e| nl_err(&format!("default route via {gateway}"), e))
        })
        .await
    }

    /// Add (or replace) a route to `dst/prefix` through link `dev` (optionally via a gateway).
    pub async fn add_route(
        &self,
        dst: Ipv4Addr,
        prefix: u8,
        dev: &str,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        validate_ifname(dev)?;
        if prefix > 32 {
            return Err(NetError::Invalid(format!("prefix /{prefix} too long")));
        }
        let dev = dev.to_string();
        self.call(move |h| async move {
            let idx = require_index(&h, &dev).await?;
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(dst, prefix)
                .output_interface(idx);
            if let Some(g) = gateway {
                b = b.gateway(g);
            }
            h.route()
                .add(b.build())
                .replace()
                .execute()
                .await
                .map_err(|e| nl_err(&format!("route {dst}/{prefix} dev {dev}"), e))
        })
        .await
    }

    /// FDB entry on a VXLAN device: frames for `mac` go to the remote VTEP `vtep`
    /// (`bridge fdb replace <mac> dev <dev> dst <vtep> self permanent`).
    pub async fn add_fdb(&self, dev: &str, mac: Mac, vtep: Ipv4Addr) -> Result<()> {
        validate_ifname(dev)?;
        let dev = dev.to_string();
        self.call(move |h| async move {
            let idx = require_index(&h, &dev).await?;
            h.neighbours()
                .add_bridge(idx, &mac.0)
                .destination(IpAddr::V4(vtep))
                .flags(NeighbourFlags::Own)
                .replace()
                .execute()
                .await
                .map_err(|e| nl_err(&format!("fdb {mac} dst {vtep} dev {dev}"), e))
        })
        .await
    }

    /// Remove an FDB entry; fine if absent.
    pub async fn del_fdb(&self, dev: &str, mac: Mac, vtep: Ipv4Addr) -> Result<()> {
        validate_ifname(dev)?;
        let dev = dev.to_string();
        self.call(move |h| async move {
            let Some(idx) = index_of(&h, &dev).await? else {
                return Ok(());
            };
            let mut m = NeighbourMessage::default();
            m.header.family = AddressFamily::Bridge;
            m.header.ifindex = idx;
            m.header.state = NeighbourState::Permanent;
            m.header.flags = NeighbourFlags::Own;
            m.header.kind = RouteType::Unspec;
            m.attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
            m.attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                    vtep,
                )));
            ignore_missing(
                h.neighbours().del(m).execute().await,
                &format!("del fdb {mac}"),
            )
        })
        .await
    }

    /// Permanent neighbour (ARP) entry `ip -> mac` on `dev`.
    pub async fn add_neigh(&self, dev: &str, ip: Ipv4Addr, mac: Mac) -> Result<()> {
        validate_ifname(dev)?;
        let dev = dev.to_string();
        self.call(move |h| async move {
            let idx = require_index(&h, &dev).await?;
            h.neighbours()
                .add(idx, IpAddr::V4(ip))
                .link_layer_address(&mac.0)
                .replace()
                .execute()
                .await
                .map_err(|e| nl_err(&format!("neigh {ip} lladdr {mac} dev {dev}"), e))
        })
        .await
    }

    /// Permanent IPv4 neighbour entries on `dev`: (ip, mac).
    pub async fn neighbours(&self, dev: &str) -> Result<Vec<(Ipv4Addr, Mac)>> {
        self.dump_neigh(dev, AddressFamily::Inet).await.map(|v| {
            v.into_iter()
                .filter_map(|(ip, mac)| Some((ip?, mac?)))
                .collect()
        })
    }

    /// FDB entries with a remote destination on `dev` (a VXLAN device): (mac, vtep).
    pub async fn fdb(&self, dev: &str) -> Result<Vec<(Mac, Ipv4Addr)>> {
        self.dump_neigh(dev, AddressFamily::Bridge).await.map(|v| {
            v.into_iter()
                .filter_map(|(ip, mac)| Some((mac?, ip?)))
                .collect()
        })
    }

    async fn dump_neigh(
        &self,
        dev: &str,
        family: AddressFamily,
    ) -> Result<Vec<(Option<Ipv4Addr>, Option<Mac>)>> {
        validate_ifname(dev)?;
        let dev = dev.to_string();
        self.call(move |h| async move {
            let idx = require_index(&h, &dev).await?;
            let mut out = Vec::new();
            let mut s = h.neighbours().get().set_address_family(family).execute();
            while let Some(m) = s
                .try_next()
                .await
                .map_err(|e| nl_err(&format!("dump neighbours of {dev}"), e))?
            {
                if m.header.ifindex != idx || m.header.state != NeighbourState::Permanent {
                    continue;
                }
                let mut ip = None;
                let mut mac = None;
                for a in &m.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(x)) => ip = Some(*x),
                        // Bridge-family dumps carry the VTEP as raw bytes.
                        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                            ip = <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
                        }
                        NeighbourAttribute::LinkLayerAddress(b) => {
                            mac = Mac::try_from(b.as_slice()).ok()
                        }
                        _ => {}
                    }
                }
                out.push((ip, mac));
            }
            Ok(out)
        })
        .await
    }

    /// Remove a neighbour entry; fine if absent.
    pub async fn del_neigh(&self, dev: &str, ip: Ipv4Addr) -> Result<()> {
        validate_ifname(dev)?;
        let dev = dev.to_string();
        self.call(move |h| async move {
            let Some(idx) = index_of(&h, &dev).await? else {
                return Ok(());
            };
            let mut m = NeighbourMessage::default();
            m.header.family = AddressFamily::Inet;
            m.header.ifindex = idx;
            m.header.kind = RouteType::Unspec;
            m.attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
            ignore_missing(
                h.neighbours().del(m).execute().await,
                &format!("del neigh {ip}"),
            )
        })
        .await
    }
}

#[derive(Clone, Copy)]
enum SetArg {
    None,
    U32(u32),
    Mac(Mac),
}

fn ignore_missing(r: std::result::Result<(), rtnetlink::Error>, what: &str) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if matches!(errno(&e), Some(libc::ENOENT) | Some(libc::ENODEV)) => Ok(()),
        Err(e) => Err(nl_err(what, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames_are_checked() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("a23456789012345").is_ok());
        assert!(validate_ifname("a234567890123456").is_err());
        assert!(validate_ifname("").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_ifname("a b").is_err());
    }
}
