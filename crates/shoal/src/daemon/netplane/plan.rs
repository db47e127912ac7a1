//! Pure functions from cluster objects (tasks, their attachments, gossip records) to what the
//! data plane should look like: attachment plans, service records, DNS tables and nft states.
//! Kept free of I/O so they are unit-tested with hand-built tasks.

use ipnet::Ipv4Net;
use shoal_net::dns::DnsTable;
use shoal_net::gossip::{MeshPort, NodeRecord, ServiceRecord};
use shoal_net::nft::{DesiredState, IngressPort, Proto, VipAll};
use shoal_types::service::{PortProtocol, PublishMode, ResolutionMode};
use shoal_types::task::NetworkAttachment;
use shoal_types::{Network, Task};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Label compose puts on stack services; its value prefixes the service name (`<stack>_`).
const STACK_LABEL: &str = "com.docker.stack.namespace";

/// One network attachment of a task (or of the node), checked and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachPlan {
    pub network_id: String,
    pub network_name: String,
    pub ingress: bool,
    pub encrypted: bool,
    pub vni: u32,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip: Ipv4Addr,
    pub aliases: Vec<String>,
    /// The network's `com.docker.network.driver.mtu`: the overlay MTU never exceeds it.
    pub mtu_cap: Option<u32>,
}

/// Subnet and gateway of an allocated network (the allocator's IPAM view, else the spec's).
pub fn network_subnet(n: &Network) -> Result<(Ipv4Net, Ipv4Addr), String> {
    let cfg = n
        .ipam_options
        .as_ref()
        .or(n.spec.ipam_options.as_ref())
        .and_then(|i| i.configs.iter().find(|c| !c.subnet.is_empty()))
        .ok_or_else(|| format!("network {} has no allocated subnet", n.id))?;
    let subnet: Ipv4Net = cfg
        .subnet
        .parse()
        .map_err(|_| format!("network {}: subnet {:?} is not IPv4 CIDR", n.id, cfg.subnet))?;
    let gateway = if cfg.gateway.is_empty() {
        // Docker's default: the first host address.
        subnet
            .hosts()
            .next()
            .ok_or_else(|| format!("network {}: subnet {subnet} has no hosts", n.id))?
    } else {
        cfg.gateway
            .parse()
            .map_err(|_| format!("network {}: gateway {:?} is not IPv4", n.id, cfg.gateway))?
    };
    Ok((subnet.trunc(), gateway))
}

/// Check and parse one attachment: a VNI, a subnet and one IPv4 address inside it.
pub fn attach_plan(a: &NetworkAttachment) -> Result<AttachPlan, String> {
    let n = &a.network;
    if n.id.is_empty() {
        return Err("network attachment without a network ID".into());
    }
    if n.spec.driver_name() != shoal_types::network::DRIVER_OVERLAY {
        return Err(format!(
            "network {}: driver {:?} is not supported on swarm tasks",
            n.id,
            n.spec.driver_name()
        ));
    }
    let vni = n
        .vni()
        .ok_or_else(|| format!("network {} has no VXLAN id allocated", n.id))?;
    let (subnet, gateway) = network_subnet(n)?;
    let addr = a
        .addresses
        .first()
        .ok_or_else(|| format!("no address allocated on network {}", n.id))?;
    let ip = match addr.parse::<Ipv4Net>() {
        Ok(net) => net.addr(),
        Err(_) => addr
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("network {}: address {addr:?} is not IPv4", n.id))?,
    };
    if shoal_net::bridge_net::check_in_subnet(subnet, ip, "address").is_err() || ip == gateway {
        return Err(format!(
            "network {}: address {ip} is not a host address of {subnet} (gateway {gateway})",
            n.id
        ));
    }
    Ok(AttachPlan {
        network_id: n.id.clone(),
        network_name: n.spec.annotations.name.clone(),
        ingress: n.spec.ingress,
        encrypted: n.spec.is_encrypted(),
        vni,
        subnet,
        gateway,
        ip,
        aliases: a.aliases.clone(),
        mtu_cap: n.spec.mtu(),
    })
}

/// All attachments of a task; refuses two attachments to one network.
pub fn task_plans(task: &Task) -> Result<Vec<AttachPlan>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for a in &task.networks_attachments {
        let p = attach_plan(a)?;
        if !seen.insert(p.network_id.clone()) {
            return Err(format!("task attached twice to network {}", p.network_id));
        }
        out.push(p);
    }
    Ok(out)
}

/// The container name of a task (`<service>.<slot>.<id>`, global: `<service>.<node>.<id>`).
pub fn container_name(task: &Task) -> String {
    if let Some(a) = &task.network_attachment_spec {
        return a.container_name.clone();
    }
    let service = &task.service_annotations.name;
    if task.slot > 0 {
        format!("{service}.{}.{}", task.slot, task.id)
    } else {
        format!("{service}.{}.{}", task.node_id, task.id)
    }
}

fn proto_of(p: PortProtocol) -> Option<&'static str> {
    match p {
        PortProtocol::Tcp => Some("tcp"),
        PortProtocol::Udp => Some("udp"),
        // No SCTP in the mesh: nft's numgen DNAT works, but nothing here tests it.
        PortProtocol::Sctp => None,
    }
}

/// The service records a running task publishes: one per attached network.
pub fn task_records(task: &Task, plans: &[AttachPlan]) -> Vec<ServiceRecord> {
    if task.is_network_attachment() {
        return attachment_records(task, plans);
    }
    let ep = task.endpoint.clone().unwrap_or_default();
    let dnsrr = ep.spec.mode == ResolutionMode::Dnsrr;
    let service = task.service_annotations.name.clone();
    let mut base_names = vec![service.clone()];
    if let Some(stack) = task.service_annotations.labels.get(STACK_LABEL)
        && let Some(short) = service.strip_prefix(&format!("{stack}_"))
        && !short.is_empty()
    {
        base_names.push(short.to_string());
    }
    let mut task_names = vec![container_name(task), task.display_name()];
    if let Some(h) = task
        .spec
        .container_spec
        .as_ref()
        .map(|c| c.hostname.clone())
        .filter(|h| !h.is_empty())
    {
        task_names.push(h);
    }
    task_names.dedup();
    plans
        .iter()
        .map(|p| {
            let vip = if dnsrr {
                None
            } else {
                ep.virtual_ips
                    .iter()
                    .find(|v| v.network_id == p.network_id)
                    .and_then(|v| v.addr.split('/').next().and_then(|a| a.parse().ok()))
            };
            let mut names = base_names.clone();
            for a in &p.aliases {
                if !names.contains(a) {
                    names.push(a.clone());
                }
            }
            let mesh_ports = if p.ingress {
                ep.ports
                    .iter()
                    .filter(|pc| pc.publish_mode == PublishMode::Ingress)
                    .filter_map(|pc| {
                        Some(MeshPort {
                            proto: proto_of(pc.protocol)?.to_string(),
                            published: u16::try_from(pc.published_port).ok().filter(|x| *x > 0)?,
                            target: u16::try_from(pc.target_port).ok().filter(|x| *x > 0)?,
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ServiceRecord {
                network: p.network_id.clone(),
                ip: p.ip,
                service_id: task.service_id.clone(),
                names,
                task_names: task_names.clone(),
                task_id: task.id.clone(),
                vip,
                mesh_ports,
            }
        })
        .collect()
}

/// The records of a standalone container on an attachable network: its name → its address,
/// and its aliases (no VIP). Each container is its own group, so containers' names never
/// merge into one set.
fn attachment_records(task: &Task, plans: &[AttachPlan]) -> Vec<ServiceRecord> {
    let name = container_name(task);
    plans
        .iter()
        .map(|p| ServiceRecord {
            network: p.network_id.clone(),
            ip: p.ip,
            service_id: task.id.clone(),
            names: p.aliases.clone(),
            task_names: (!name.is_empty())
                .then(|| name.clone())
                .into_iter()
                .collect(),
            task_id: task.id.clone(),
            vip: None,
            mesh_ports: Vec::new(),
        })
        .collect()
}

/// Ports a task publishes in host mode: (protocol, published, target). Only on the node that
/// runs it; a published port of 0 is not bound (nothing chose one).
pub fn host_ports(task: &Task) -> Vec<(Proto, u16, u16)> {
    let Some(ep) = &task.endpoint else {
        return Vec::new();
    };
    ep.ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host)
        .filter_map(|p| {
            Some((
                proto_of(p.protocol)?.parse().ok()?,
                u16::try_from(p.published_port).ok().filter(|x| *x > 0)?,
                u16::try_from(p.target_port).ok().filter(|x| *x > 0)?,
            ))
        })
        .collect()
}

/// Per (network, service): its names, its VIP and its live task addresses.
#[derive(Default)]
struct ServiceView {
    names: BTreeSet<String>,
    vip: Option<Ipv4Addr>,
    ips: BTreeSet<Ipv4Addr>,
}

fn services(records: &[NodeRecord]) -> BTreeMap<(String, String), ServiceView> {
    let mut out: BTreeMap<(String, String), ServiceView> = BTreeMap::new();
    for nr in records {
        let r = &nr.record;
        let v = out
            .entry((r.network.clone(), r.service_id.clone()))
            .or_default();
        v.names.extend(r.names.iter().cloned());
        v.vip = v.vip.or(r.vip);
        v.ips.insert(r.ip);
    }
    out
}

/// The DNS table for all networks: `<name>` → VIP (task IPs for dnsrr), `tasks.<name>` → task
/// IPs, task names → the task's IP. Names that are not valid DNS names are skipped.
pub fn dns_table(records: &[NodeRecord]) -> DnsTable {
    let mut t = DnsTable::new();
    for ((network, _), v) in services(records) {
        let ips: Vec<Ipv4Addr> = v.ips.into_iter().collect();
        for n in &v.names {
            if let Err(e) = t.add_service(&network, &[n.as_str()], v.vip, &ips) {
                tracing::debug!("DNS name {n:?} skipped: {e}");
            }
        }
    }
    for nr in records {
        for n in &nr.record.task_names {
            if let Err(e) = t.set_name(&nr.record.network, n, vec![nr.record.ip]) {
                tracing::debug!("DNS name {n:?} skipped: {e}");
            }
        }
    }
    t
}

/// The load-balancing state of one container: every VIP of a service on one of its
/// `networks`, spread over that service's live tasks on the network.
pub fn container_lb(records: &[NodeRecord], networks: &[String]) -> DesiredState {
    let mut vips: BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for ((network, _), v) in services(records) {
        if !networks.contains(&network) {
            continue;
        }
        if let Some(vip) = v.vip {
            vips.entry(vip).or_default().extend(v.ips);
        }
    }
    DesiredState {
        vips_all: vips
            .into_iter()
            .map(|(vip, b)| VipAll {
                vip,
                backends: b.into_iter().collect(),
            })
            .collect(),
        ..Default::default()
    }
}

/// The node's routing-mesh state: each published port to the ingress addresses of its tasks.
pub fn mesh_state(records: &[NodeRecord], ingress_network: &str) -> DesiredState {
    let mut ports: BTreeMap<(String, u16), (u16, BTreeSet<Ipv4Addr>)> = BTreeMap::new();
    for nr in records
        .iter()
        .filter(|r| r.record.network == ingress_network)
    {
        for p in &nr.record.mesh_ports {
            let e = ports
                .entry((p.proto.clone(), p.published))
                .or_insert_with(|| (p.target, BTreeSet::new()));
            // Two services cannot publish one port (the managers refuse it); if gossip
            // briefly shows both, the first target wins rather than mixing backends.
            if e.0 == p.target {
                e.1.insert(nr.record.ip);
            }
        }
    }
    DesiredState {
        ingress: ports
            .into_iter()
            .filter_map(|((proto, published), (target, b))| {
                Some(IngressPort {
                    proto: proto.parse::<Proto>().ok()?,
                    published_port: published,
                    target_port: target,
                    backends: b.into_iter().collect(),
                })
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
pub mod tests_support {
    //! Hand-built networks and tasks, as the managers' allocator fills them.
    use super::*;
    use shoal_types::meta::Driver;
    use shoal_types::network::{IPAMConfig, IPAMOptions, OPT_VXLAN_ID_LIST};
    use shoal_types::service::{Endpoint, EndpointSpec, EndpointVirtualIP, PortConfig};

    pub fn network(id: &str, name: &str, subnet: &str, vni: u32, ingress: bool) -> Network {
        let mut n = Network {
            id: id.into(),
            ..Default::default()
        };
        n.spec.annotations.name = name.into();
        n.spec.ingress = ingress;
        n.driver_state = Driver {
            name: "overlay".into(),
            options: [(OPT_VXLAN_ID_LIST.to_string(), vni.to_string())].into(),
        };
        let gw = subnet.replace(".0/24", ".1");
        n.ipam_options = Some(IPAMOptions {
            driver: Driver::default(),
            configs: vec![IPAMConfig {
                subnet: subnet.into(),
                gateway: gw,
                range: String::new(),
            }],
        });
        n
    }

    /// Service `app_web` (stack `app`), VIP 10.0.1.2 on `n1` and 10.0.0.2 on `ing`,
    /// publishing 8080 -> 80 through the mesh and 8081 -> 80 in host mode.
    pub fn endpoint() -> Endpoint {
        Endpoint {
            spec: EndpointSpec::default(),
            ports: vec![
                PortConfig {
                    target_port: 80,
                    published_port: 8080,
                    ..Default::default()
                },
                PortConfig {
                    target_port: 80,
                    published_port: 8081,
                    publish_mode: PublishMode::Host,
                    ..Default::default()
                },
            ],
            virtual_ips: vec![
                EndpointVirtualIP {
                    network_id: "n1".into(),
                    addr: "10.0.1.2/24".into(),
                },
                EndpointVirtualIP {
                    network_id: "ing".into(),
                    addr: "10.0.0.2/24".into(),
                },
            ],
        }
    }

    pub fn task_with(id: &str, slot: u64, atts: Vec<(Network, &str)>, ep: Endpoint) -> Task {
        let mut t = Task {
            id: id.into(),
            service_id: "svc1".into(),
            slot,
            node_id: "node1".into(),
            endpoint: Some(ep),
            ..Default::default()
        };
        t.service_annotations.name = "app_web".into();
        t.service_annotations
            .labels
            .insert(STACK_LABEL.into(), "app".into());
        t.networks_attachments = atts
            .into_iter()
            .map(|(n, a)| NetworkAttachment {
                network: n,
                addresses: vec![a.into()],
                aliases: vec!["www".into()],
            })
            .collect();
        t
    }

    pub fn task(id: &str, slot: u64, atts: Vec<(Network, &str)>) -> Task {
        task_with(id, slot, atts, endpoint())
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{endpoint, network, task_with as task};
    use super::*;
    use shoal_types::meta::Driver;
    use shoal_types::service::PortConfig;

    #[test]
    fn attachment_records_name_the_container_only() {
        let n1 = network("n1", "app", "10.0.1.0/24", 4097, false);
        let mut t = super::tests_support::task("att1", 0, vec![(n1.clone(), "10.0.1.7/24")]);
        t.service_id.clear();
        t.endpoint = None;
        t.spec.runtime = shoal_types::task_spec::RUNTIME_ATTACHMENT.into();
        t.network_attachment_spec = Some(shoal_types::task::NetworkAttachmentSpec {
            container_id: "c0ffee".into(),
            container_name: "c1".into(),
        });
        t.networks_attachments[0].aliases = vec!["db".into()];
        assert_eq!(container_name(&t), "c1");
        let plans = task_plans(&t).unwrap();
        let recs = task_records(&t, &plans);
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.task_names, ["c1"]);
        assert_eq!(r.names, ["db"]);
        assert_eq!(r.vip, None);
        assert_eq!(r.service_id, "att1");
        assert!(r.mesh_ports.is_empty());
        let table = dns_table(&[NodeRecord {
            node_id: "node1".into(),
            record: r.clone(),
        }]);
        let scopes = ["n1".to_string()];
        let ip: Ipv4Addr = "10.0.1.7".parse().unwrap();
        assert_eq!(table.lookup(&scopes, "c1"), Some(&[ip][..]));
        assert_eq!(table.lookup(&scopes, "db"), Some(&[ip][..]));
        assert_eq!(table.lookup(&["other".to_string()], "c1"), None);
    }

    #[test]
    fn plans_parse_and_refuse_bad_attachments() {
        let n1 = network("n1", "front", "10.0.1.0/24", 4097, false);
        let t = task("t1", 1, vec![(n1.clone(), "10.0.1.5/24")], endpoint());
        let p = task_plans(&t).unwrap();
        assert_eq!(p[0].vni, 4097);
        assert_eq!(p[0].ip, Ipv4Addr::new(10, 0, 1, 5));
        assert_eq!(p[0].gateway, Ipv4Addr::new(10, 0, 1, 1));
        for bad in ["10.0.2.5/24", "10.0.1.1/24", "nonsense", "10.0.1.0/24"] {
            let t = task("t1", 1, vec![(n1.clone(), bad)], endpoint());
            assert!(task_plans(&t).is_err(), "{bad} accepted");
        }
        let mut no_vni = n1.clone();
        no_vni.driver_state = Driver::default();
        assert!(task_plans(&task("t1", 1, vec![(no_vni, "10.0.1.5/24")], endpoint())).is_err());
        let twice = task(
            "t1",
            1,
            vec![(n1.clone(), "10.0.1.5/24"), (n1, "10.0.1.6/24")],
            endpoint(),
        );
        assert!(task_plans(&twice).is_err());
    }

    #[test]
    fn records_dns_vip_and_mesh() {
        let n1 = network("n1", "front", "10.0.1.0/24", 4097, false);
        let ing = network("ing", "ingress", "10.0.0.0/24", 4096, true);
        let mut recs = Vec::new();
        for (i, (id, a, b)) in [
            ("t1", "10.0.1.5/24", "10.0.0.5/24"),
            ("t2", "10.0.1.6/24", "10.0.0.6/24"),
        ]
        .into_iter()
        .enumerate()
        {
            let t = task(
                id,
                i as u64 + 1,
                vec![(n1.clone(), a), (ing.clone(), b)],
                endpoint(),
            );
            for r in task_records(&t, &task_plans(&t).unwrap()) {
                recs.push(NodeRecord {
                    node_id: format!("node{i}"),
                    record: r,
                });
            }
        }
        let r0 = &recs[0].record;
        assert_eq!(r0.vip, Some(Ipv4Addr::new(10, 0, 1, 2)));
        assert_eq!(r0.names, vec!["app_web", "web", "www"]);
        assert!(r0.mesh_ports.is_empty(), "mesh ports only on ingress");
        assert_eq!(recs[1].record.mesh_ports.len(), 1);

        let t = dns_table(&recs);
        let s = vec!["n1".to_string()];
        let vip = [Ipv4Addr::new(10, 0, 1, 2)];
        let ips = [Ipv4Addr::new(10, 0, 1, 5), Ipv4Addr::new(10, 0, 1, 6)];
        assert_eq!(t.lookup(&s, "app_web"), Some(&vip[..]));
        assert_eq!(t.lookup(&s, "web"), Some(&vip[..]));
        assert_eq!(t.lookup(&s, "www"), Some(&vip[..]));
        assert_eq!(t.lookup(&s, "tasks.web"), Some(&ips[..]));
        assert_eq!(t.lookup(&s, "app_web.1.t1"), Some(&ips[..1]));

        let lb = container_lb(&recs, &s);
        assert_eq!(lb.vips_all.len(), 1);
        assert_eq!(lb.vips_all[0].backends, ips.to_vec());
        assert!(
            container_lb(&recs, &["other".to_string()])
                .vips_all
                .is_empty()
        );

        let mesh = mesh_state(&recs, "ing");
        assert_eq!(mesh.ingress.len(), 1);
        assert_eq!(mesh.ingress[0].published_port, 8080);
        assert_eq!(mesh.ingress[0].target_port, 80);
        assert_eq!(
            mesh.ingress[0].backends,
            vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)]
        );

        // A task leaving (its records withdrawn) leaves every view.
        let left: Vec<NodeRecord> = recs
            .iter()
            .filter(|r| r.record.task_id != "t2")
            .cloned()
            .collect();
        assert_eq!(dns_table(&left).lookup(&s, "tasks.web"), Some(&ips[..1]));
        assert_eq!(
            container_lb(&left, &s).vips_all[0].backends,
            ips[..1].to_vec()
        );
    }

    #[test]
    fn host_mode_ports_only() {
        let n1 = network("n1", "front", "10.0.1.0/24", 4097, false);
        let mut ep = endpoint();
        ep.ports.push(PortConfig {
            target_port: 443,
            published_port: 8443,
            publish_mode: PublishMode::Host,
            ..Default::default()
        });
        ep.ports.push(PortConfig {
            target_port: 53,
            published_port: 0,
            publish_mode: PublishMode::Host,
            ..Default::default()
        });
        let t = task("t1", 1, vec![(n1, "10.0.1.5/24")], ep);
        assert_eq!(
            host_ports(&t),
            vec![(Proto::Tcp, 8081, 80), (Proto::Tcp, 8443, 443)]
        );
    }

    #[test]
    fn dnsrr_resolves_to_tasks() {
        let n1 = network("n1", "front", "10.0.1.0/24", 4097, false);
        let mut ep = endpoint();
        ep.spec.mode = ResolutionMode::Dnsrr;
        ep.virtual_ips.clear();
        ep.ports.clear();
        let t = task("t1", 1, vec![(n1, "10.0.1.5/24")], ep);
        let recs: Vec<NodeRecord> = task_records(&t, &task_plans(&t).unwrap())
            .into_iter()
            .map(|record| NodeRecord {
                node_id: "a".into(),
                record,
            })
            .collect();
        assert_eq!(recs[0].record.vip, None);
        let s = vec!["n1".to_string()];
        assert_eq!(
            dns_table(&recs).lookup(&s, "web"),
            Some(&[Ipv4Addr::new(10, 0, 1, 5)][..])
        );
        assert!(container_lb(&recs, &s).vips_all.is_empty());
    }
}
