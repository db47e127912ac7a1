//! Address arithmetic for overlay networks: subnets cut from the cluster's address pools, VXLAN
//! ids, and per-network address pools (gateway, service VIPs, node and task addresses).
//!
//! Nothing here keeps state between passes: a pool is rebuilt from the store each time, marking
//! every address the store says is in use, so a new leader allocates exactly like the old one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use shoal_types::network::{
    DRIVER_OVERLAY, IPAM_DEFAULT, IPAMConfig, IPAMOptions, OPT_VXLAN_ID_LIST, parse_subnet,
    subnets_overlap,
};
use shoal_types::swarm::{DEFAULT_ADDR_POOL, DEFAULT_SUBNET_SIZE};
use shoal_types::{ApiError, Cluster, Driver, Network};

/// The VXLAN id of the `ingress` network; other networks get ids from `FIRST_VNI` up.
pub const INGRESS_VNI: u32 = 4096;
pub const FIRST_VNI: u32 = 4097;

/// Driver-state option prefix under which the `ingress` network records each node's
/// routing-mesh address (`<prefix><node id>` = "10.0.0.3/24"). Kept in the store so a new leader
/// knows them; hidden from `network inspect`.
pub const NODE_ADDR_PREFIX: &str = "shoal.node-ingress.";

/// The subnets a network occupies (allocated ones, else those its spec asks for).
pub fn network_subnets(n: &Network) -> Vec<IpNet> {
    let configs = n
        .ipam_options
        .as_ref()
        .or(n.spec.ipam_options.as_ref())
        .map(|i| i.configs.as_slice())
        .unwrap_or(&[]);
    configs
        .iter()
        .filter_map(|c| c.subnet.parse::<IpNet>().ok())
        .collect()
}

/// Whether the allocator has given this network its subnets and VXLAN id.
pub fn is_allocated(n: &Network) -> bool {
    n.vni().is_some()
        && n.ipam_options.as_ref().is_some_and(|i| {
            !i.configs.is_empty() && i.configs.iter().all(|c| !c.subnet.is_empty())
        })
}

/// The cluster's default address pools and subnet size (Docker's 10.0.0.0/8 in /24s when unset).
pub fn cluster_pools(cluster: Option<&Cluster>) -> (Vec<Ipv4Net>, u8) {
    let mut pools: Vec<Ipv4Net> = cluster
        .map(|c| c.default_addr_pool.as_slice())
        .unwrap_or(&[])
        .iter()
        .filter_map(|p| p.parse::<Ipv4Net>().ok())
        .map(|p| p.trunc())
        .collect();
    if pools.is_empty() {
        pools = DEFAULT_ADDR_POOL.parse::<Ipv4Net>().into_iter().collect();
    }
    let size = cluster
        .map(|c| c.subnet_size)
        .filter(|s| (1..=30).contains(s))
        .unwrap_or(DEFAULT_SUBNET_SIZE);
    (pools, size as u8)
}

/// The first subnet of `size` bits in `pools` that overlaps none of `used`.
pub fn next_subnet(pools: &[Ipv4Net], size: u8, used: &[IpNet]) -> Option<Ipv4Net> {
    for pool in pools {
        let size = size.max(pool.prefix_len());
        let Ok(subnets) = pool.subnets(size) else {
            continue;
        };
        for s in subnets {
            let candidate = IpNet::V4(s);
            if !used.iter().any(|u| subnets_overlap(u, &candidate)) {
                return Some(s);
            }
        }
    }
    None
}

/// Gives `net` its subnets (the user's, checked against every other network, or the next free
/// one of the pool), gateways and VXLAN id. `others` are all other networks in the store.
pub fn allocate_network(
    net: &mut Network,
    others: &[&Network],
    cluster: Option<&Cluster>,
) -> Result<(), ApiError> {
    let name = net.spec.annotations.name.clone();
    let mut used: Vec<IpNet> = Vec::new();
    for o in others {
        for s in network_subnets(o) {
            used.push(s);
        }
    }
    let wanted: Vec<IPAMConfig> = net
        .spec
        .ipam_options
        .as_ref()
        .map(|i| i.configs.clone())
        .unwrap_or_default();
    let mut configs = Vec::new();
    // User subnets first, so an automatic one never takes what a later user config names.
    for c in wanted.iter().filter(|c| !c.subnet.is_empty()) {
        let subnet = parse_subnet(&c.subnet)?;
        if !matches!(subnet, IpNet::V4(_)) {
            return Err(ApiError::invalid_argument(format!(
                "subnet {subnet}: IPv6 subnets are not supported on overlay networks"
            )));
        }
        if let Some(o) = others.iter().find(|o| {
            network_subnets(o)
                .iter()
                .any(|s| subnets_overlap(s, &subnet))
        }) {
            return Err(ApiError::invalid_argument(format!(
                "subnet {subnet} overlaps with the subnet of network {}",
                o.spec.annotations.name
            )));
        }
        used.push(subnet);
        configs.push(with_gateway(c.clone(), subnet)?);
    }
    let autos = wanted.iter().filter(|c| c.subnet.is_empty()).count();
    let autos = if wanted.is_empty() { 1 } else { autos };
    let (pools, size) = cluster_pools(cluster);
    for _ in 0..autos {
        let s = next_subnet(&pools, size, &used).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "could not find an available, non-overlapping subnet for network {name} in the default address pools"
            ))
        })?;
        used.push(IpNet::V4(s));
        configs.push(with_gateway(
            IPAMConfig {
                subnet: s.to_string(),
                ..IPAMConfig::default()
            },
            IpNet::V4(s),
        )?);
    }
    let vni = match (net.vni(), net.spec.requested_vni()) {
        (Some(v), _) => v,
        (None, Some(v)) => {
            if let Some(o) = others.iter().find(|o| o.vni() == Some(v)) {
                return Err(ApiError::conflict(format!(
                    "VXLAN id {v} is already used by network {}",
                    o.spec.annotations.name
                )));
            }
            v
        }
        (None, None) => next_vni(net.spec.ingress, others)
            .ok_or_else(|| ApiError::internal("no free VXLAN id left"))?,
    };
    let driver_opts = net
        .spec
        .ipam_options
        .as_ref()
        .map(|i| i.driver.options.clone())
        .unwrap_or_default();
    net.ipam_options = Some(IPAMOptions {
        driver: Driver {
            name: IPAM_DEFAULT.to_string(),
            options: driver_opts,
        },
        configs,
    });
    let mut options: BTreeMap<String, String> = net
        .driver_state
        .options
        .iter()
        .filter(|(k, _)| k.starts_with(NODE_ADDR_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    options.insert(OPT_VXLAN_ID_LIST.to_string(), vni.to_string());
    net.driver_state = Driver {
        name: DRIVER_OVERLAY.to_string(),
        options,
    };
    Ok(())
}

/// A config with its gateway filled (the first usable address when the user gave none).
fn with_gateway(mut c: IPAMConfig, subnet: IpNet) -> Result<IPAMConfig, ApiError> {
    c.subnet = subnet.to_string();
    if c.gateway.is_empty() {
        let IpNet::V4(v4) = subnet else {
            return Err(ApiError::invalid_argument(format!(
                "subnet {subnet}: IPv6 subnets are not supported on overlay networks"
            )));
        };
        c.gateway = Ipv4Addr::from(u32::from(v4.network()) + 1).to_string();
    }
    Ok(c)
}

/// The lowest VXLAN id no other network uses (`INGRESS_VNI` for the ingress network if free).
pub fn next_vni(ingress: bool, others: &[&Network]) -> Option<u32> {
    let used: BTreeSet<u32> = others.iter().filter_map(|o| o.vni()).collect();
    if ingress && !used.contains(&INGRESS_VNI) {
        return Some(INGRESS_VNI);
    }
    (FIRST_VNI..=shoal_types::network::MAX_VXLAN_ID).find(|v| !used.contains(v))
}

/// One subnet of a network: the addresses it may hand out and those taken.
#[derive(Debug, Clone)]
struct SubnetPool {
    subnet: Ipv4Net,
    /// First and last address handed out (the IP range, or the subnet without network and
    /// broadcast addresses).
    lo: u32,
    hi: u32,
    used: BTreeSet<u32>,
}

impl SubnetPool {
    fn new(c: &IPAMConfig) -> Option<SubnetPool> {
        let subnet: Ipv4Net = c.subnet.parse().ok()?;
        let range: Ipv4Net = if c.range.is_empty() {
            subnet
        } else {
            c.range.parse().ok()?
        };
        let mut lo = u32::from(range.network());
        let mut hi = u32::from(range.broadcast());
        if lo == u32::from(subnet.network()) {
            lo += 1;
        }
        if hi == u32::from(subnet.broadcast()) {
            hi = hi.saturating_sub(1);
        }
        let mut used = BTreeSet::new();
        if let Ok(gw) = c.gateway.parse::<Ipv4Addr>() {
            used.insert(u32::from(gw));
        }
        Some(SubnetPool {
            subnet,
            lo,
            hi,
            used,
        })
    }

    fn contains(&self, a: Ipv4Addr) -> bool {
        self.subnet.contains(&a)
    }

    /// A free address: the first after the highest one in use (so a just-freed address is not
    /// handed out again at once while other nodes may still have it cached), wrapping around.
    fn take(&mut self) -> Option<Ipv4Addr> {
        if self.lo > self.hi {
            return None;
        }
        let start = self
            .used
            .range(self.lo..=self.hi)
            .next_back()
            .map_or(self.lo, |&a| if a >= self.hi { self.lo } else { a + 1 });
        let pick = (start..=self.hi)
            .chain(self.lo..start)
            .find(|a| !self.used.contains(a))?;
        self.used.insert(pick);
        Some(Ipv4Addr::from(pick))
    }

    fn cidr(&self, a: Ipv4Addr) -> String {
        format!("{a}/{}", self.subnet.prefix_len())
    }
}

/// The addresses of one network, rebuilt from the store each pass.
#[derive(Debug, Clone)]
pub struct AddressPool {
    pub network_id: String,
    pub network_name: String,
    subnets: Vec<SubnetPool>,
}

impl AddressPool {
    /// The pool of an allocated network, with its gateways marked used. None for a network the
    /// allocator has not given subnets yet.
    pub fn of(n: &Network) -> Option<AddressPool> {
        let ipam = n.ipam_options.as_ref()?;
        let subnets: Vec<SubnetPool> = ipam.configs.iter().filter_map(SubnetPool::new).collect();
        if subnets.is_empty() {
            return None;
        }
        Some(AddressPool {
            network_id: n.id.clone(),
            network_name: n.spec.annotations.name.clone(),
            subnets,
        })
    }

    /// Marks an address ("10.0.1.5/24" or "10.0.1.5") as in use. Returns false when it is not an
    /// address of this network or was already taken.
    pub fn mark(&mut self, addr: &str) -> bool {
        let Some(a) = parse_addr(addr) else {
            return false;
        };
        match self.subnets.iter_mut().find(|s| s.contains(a)) {
            Some(s) => s.used.insert(u32::from(a)),
            None => false,
        }
    }

    /// Whether the address lies in one of the network's subnets.
    pub fn contains(&self, addr: &str) -> bool {
        parse_addr(addr).is_some_and(|a| self.subnets.iter().any(|s| s.contains(a)))
    }

    /// Frees an address taken by [`AddressPool::take`] (a failed all-or-nothing allocation).
    pub fn release(&mut self, addr: &str) {
        if let Some(a) = parse_addr(addr) {
            for s in &mut self.subnets {
                if s.contains(a) {
                    s.used.remove(&u32::from(a));
                }
            }
        }
    }

    /// A free address in CIDR form, or the error a task or service shows.
    pub fn take(&mut self) -> Result<String, ApiError> {
        for s in &mut self.subnets {
            if let Some(a) = s.take() {
                return Ok(s.cidr(a));
            }
        }
        Err(ApiError::invalid_argument(format!(
            "no available IP address in network {}",
            self.network_name
        )))
    }

    /// How many addresses are free (tests and diagnostics).
    pub fn free(&self) -> usize {
        self.subnets
            .iter()
            .map(|s| {
                let total = if s.lo > s.hi {
                    0
                } else {
                    (s.hi - s.lo) as usize + 1
                };
                total - s.used.range(s.lo..=s.hi).count()
            })
            .sum()
    }
}

/// The address part of "10.0.1.5/24" or "10.0.1.5".
pub fn parse_addr(s: &str) -> Option<Ipv4Addr> {
    s.split('/').next()?.parse().ok()
}
