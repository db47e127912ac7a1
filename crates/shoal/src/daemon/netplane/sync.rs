//! The loop that follows gossip: remote endpoints → FDB/neighbour entries of each overlay;
//! service records → the DNS table, each container's VIP table and the node's mesh table.
//! It recomputes from full snapshots (not events), so a missed change is fixed on the next
//! round and a restarted daemon converges the same way.

use super::{LB_TABLE, MESH_TABLE, NetPlane, NetView, apply_table, plan};
use futures::StreamExt;
use shoal_net::gossip::{NodeRecord, RemoteEndpoint};
use shoal_types::network::{EndpointResource, PeerInfo};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Well under the ~1 s budget for DNS/VIP changes, cheap when nothing changed (records are
/// compared, tables only rewritten on a change). Remote changes wait for gossip and then for
/// this period; local ones wake the loop at once.
const PERIOD: Duration = Duration::from_millis(100);
/// VIP tables written at once (each is an `nft` run).
const LB_PARALLEL: usize = 8;

pub(super) async fn run(np: Weak<NetPlane>, wake: Arc<Notify>) {
    let mut last: Option<Vec<NodeRecord>> = None;
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        // No strong reference while waiting: the plane can be dropped meanwhile.
        let Some(np) = np.upgrade() else { return };
        np.sync_once(&mut last).await;
    }
}

impl NetPlane {
    /// Rebuild what `network inspect` shows: local task endpoints (by container), the node's
    /// ingress endpoint, and every node with endpoints on the network.
    fn refresh_views(&self, st: &super::State, remotes: &[RemoteEndpoint]) {
        let mut views: HashMap<String, NetView> = HashMap::new();
        for t in st.tasks.values() {
            for (p, att) in t.plans.iter().zip(&t.attachments) {
                let v = views.entry(p.network_id.clone()).or_default();
                let key = t.container.clone().unwrap_or_else(|| t.task.id.clone());
                v.containers.insert(
                    key,
                    EndpointResource {
                        name: plan::container_name(&t.task),
                        endpoint_id: format!("{}-{}", t.task.id, p.network_id),
                        mac_address: att.mac.to_string(),
                        ipv4_address: format!("{}/{}", p.ip, p.subnet.prefix_len()),
                        ipv6_address: String::new(),
                    },
                );
            }
        }
        if let Some(ing) = &st.ingress {
            let v = views.entry(ing.plan.network_id.clone()).or_default();
            v.containers.insert(
                "ingress-sbox".into(),
                EndpointResource {
                    name: "ingress-endpoint".into(),
                    endpoint_id: format!("ingress-{}", ing.plan.network_id),
                    mac_address: ing.attachment.mac.to_string(),
                    ipv4_address: format!("{}/{}", ing.plan.ip, ing.plan.subnet.prefix_len()),
                    ipv6_address: String::new(),
                },
            );
        }
        let me = st.swarm.as_ref().map(|s| (s.node_id.clone(), s.vtep));
        for (id, v) in views.iter_mut() {
            let mut peers: BTreeMap<String, Ipv4Addr> = remotes
                .iter()
                .filter(|r| &r.endpoint.network == id)
                .map(|r| (r.node_id.clone(), r.endpoint.vtep))
                .collect();
            if let Some((node, underlay)) = &me {
                // The same kind of address as the remote peers': an encrypted overlay's VTEP
                // is the node's tunnel address, not its underlay one.
                let vtep = st
                    .overlays
                    .get(id)
                    .map_or(*underlay, |e| e.overlay.spec.local_vtep);
                peers.insert(node.clone(), vtep);
            }
            v.peers = peers
                .into_iter()
                .map(|(name, ip)| PeerInfo {
                    name,
                    ip: ip.to_string(),
                })
                .collect();
        }
        *self.views.lock().unwrap_or_else(|p| p.into_inner()) = views;
    }

    async fn sync_once(&self, last: &mut Option<Vec<NodeRecord>>) {
        let mut st = self.state.lock().await;
        let Some(sw) = st.swarm.as_ref() else { return };
        let gossip = sw.gossip.clone();
        let records = gossip.records().await;
        let remotes = gossip.remote_endpoints().await;

        // Remote endpoints per overlay, skipping our own VTEP (local ones sit on the bridge;
        // an encrypted overlay's VTEP is the node's tunnel address).
        let ids: Vec<String> = st.overlays.keys().cloned().collect();
        for id in ids {
            let Some(local) = st.overlays.get(&id).map(|e| e.overlay.spec.local_vtep) else {
                continue;
            };
            let mut want: Vec<_> = remotes
                .iter()
                .filter(|r| r.endpoint.network == id && r.endpoint.vtep != local)
                .map(|r| (r.endpoint.ip, r.endpoint.mac, r.endpoint.vtep))
                .collect();
            want.sort();
            want.dedup_by_key(|x| x.0);
            if st.applied_remotes.get(&id) == Some(&want) {
                continue;
            }
            let Some(e) = st.overlays.get(&id) else {
                continue;
            };
            match e.overlay.reconcile(&want).await {
                Ok(()) => {
                    st.applied_remotes.insert(id, want);
                }
                Err(err) => tracing::warn!(network = %id, "programming remote endpoints: {err}"),
            }
        }

        self.refresh_views(&st, &remotes);
        let changed = last.as_ref() != Some(&records);
        if !changed && !st.dirty {
            return;
        }
        st.dirty = false;
        self.dns_table.swap(plan::dns_table(&records));

        let tasks: Vec<(String, std::path::PathBuf, Vec<String>)> = st
            .tasks
            .values()
            .map(|t| (t.task.id.clone(), t.netns_path(), t.scopes()))
            .collect();
        let jobs: Vec<_> = tasks
            .into_iter()
            .filter_map(|(id, path, scopes)| {
                let want = plan::container_lb(&records, &scopes);
                (st.applied_lb.get(&id) != Some(&want)).then_some((id, path, want))
            })
            .collect();
        // Each table is an `nft` run: several at once, so the last container does not wait
        // for all the others (a dead backend leaves every VIP table at about the same time).
        let results: Vec<_> = futures::stream::iter(jobs)
            .map(|(id, path, want)| async move {
                let r = apply_table(Some(path), LB_TABLE, &want).await;
                (id, want, r)
            })
            .buffer_unordered(LB_PARALLEL)
            .collect()
            .await;
        for (id, want, r) in results {
            match r {
                Ok(()) => {
                    st.applied_lb.insert(id, want);
                }
                Err(e) => {
                    tracing::warn!(task = %id, "VIP table: {e:#}");
                    st.dirty = true;
                }
            }
        }

        // The node's table: the routing mesh (with an ingress endpoint) and the host-mode
        // ports of local running tasks, over their point-to-point links.
        let mut want = match &st.ingress {
            Some(ing) => plan::mesh_state(&records, &ing.plan.network_id),
            None => Default::default(),
        };
        for t in st.tasks.values().filter(|t| !t.published.is_empty()) {
            let Some(link) = &t.host_link else { continue };
            for (proto, published, target) in plan::host_ports(&t.task) {
                let clash = want
                    .ingress
                    .iter()
                    .any(|i| i.proto == proto && i.published_port == published)
                    || want
                        .host_ports
                        .iter()
                        .any(|h| h.proto == proto && h.host_port == published);
                if clash {
                    tracing::warn!(task = %t.task.id, "host port {published}/{} already published on this node", proto.as_str());
                    continue;
                }
                want.host_ports.push(shoal_net::nft::HostPort {
                    proto,
                    host_port: published,
                    host_ip: None,
                    target: link.container_ip,
                    target_port: target,
                });
            }
        }
        if st.tasks.values().any(|t| t.gw.is_some())
            && let Ok(subnet) = super::gateway::gw_net()
        {
            want.masquerade.push(shoal_net::nft::Masquerade {
                subnet,
                bridge: Some(self.gw_bridge()),
            });
        }
        // VXLAN between nodes would pass conntrack in this namespace: a new entry (and a NAT
        // chain pass) per inner connection and direction, as the outer source port hashes the
        // inner flow, for packets nothing here NATs or filters.
        if !st.overlays.is_empty() {
            want.notrack_udp.push(shoal_net::VXLAN_PORT);
        }
        if !want.host_ports.is_empty()
            && let Ok(net) = super::HOST_LINK_NET.parse()
        {
            want.masquerade_to.push(net);
        }
        if st.applied_mesh.as_ref() != Some(&want) {
            match apply_table(Some(self.host_netns.clone()), MESH_TABLE, &want).await {
                Ok(()) => st.applied_mesh = Some(want),
                Err(e) => {
                    tracing::warn!("mesh table: {e:#}");
                    st.dirty = true;
                }
            }
        }
        *last = Some(records);
    }
}
