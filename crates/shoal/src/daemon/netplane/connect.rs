//! `network connect` / `disconnect` on a running container's network: one more attachment
//! wired into the namespace a task already has (the next `ethN`), or one taken out again.
//!
//! The extra attachment joins the owner task's [`TaskNet`], so everything that follows the
//! task follows it too: its records are published and withdrawn with the container, its DNS
//! server resolves the new network's names, its VIP table balances the new network's services,
//! and releasing the task (container removed) unwires it.
//!
//! A container on the default bridge has a namespace the bridge owns: its first swarm network
//! makes a [`TaskNet`] that borrows that namespace (named by its absolute path, which no
//! netns call accepts as a name, so the namespace is never deleted from here), without a
//! gateway link (the bridge gives the default route).

use super::*;

/// How long a restarted DNS server waits for the old one's sockets to close (bounded tries).
const DNS_REBIND_TRIES: u32 = 40;
const DNS_REBIND_PAUSE: Duration = Duration::from_millis(25);

/// Most interfaces a container namespace is looked at for (`eth0`…).
const MAX_IFACES: usize = 64;

/// The lowest `ethN` that none of `used` has.
fn free_ifname(used: &[&str]) -> String {
    (0..MAX_IFACES)
        .map(ifname)
        .find(|n| !used.contains(&n.as_str()))
        .unwrap_or_else(|| ifname(MAX_IFACES))
}

/// `ethN` names present in the namespace at `path` (the bridge's `eth0` included).
async fn links_in(path: &Path) -> Result<Vec<String>> {
    let nl = Netlink::in_netns(path)?;
    let mut out = Vec::new();
    for n in (0..MAX_IFACES).map(ifname) {
        if nl.link(&n).await?.is_some() {
            out.push(n);
        }
    }
    Ok(out)
}

/// Whether `tn` lives in a namespace it does not own (a bridge container's).
fn borrowed(tn: &TaskNet) -> bool {
    tn.netns.starts_with('/')
}

/// The endpoint of plan `p` already in the namespace at `path` (a restarted daemon): found by
/// its host-side name in the overlay's namespace, which derives from the inside name.
async fn adopted(
    overlay_nl: &Netlink,
    path: &Path,
    present: &[String],
    p: &AttachPlan,
    mtu: u32,
) -> Option<Attachment> {
    for n in present {
        let (host_if, _) = bridge_net::veth_names(path, n, p.ip);
        if let Ok(Some(_)) = overlay_nl.link(&host_if).await {
            return Some(Attachment {
                bridge: shoal_net::overlay::OVERLAY_BRIDGE.to_string(),
                host_ifname: host_if,
                netns: path.to_path_buf(),
                ifname: n.clone(),
                ip: p.ip,
                prefix: p.subnet.prefix_len(),
                mac: Mac::from_ip(p.ip),
                mtu,
            });
        }
    }
    None
}

impl NetPlane {
    /// Wires `att` into the namespace of task `owner` (a standalone container's first
    /// attachment): overlay, a new `ethN` with the allocated address, the network's names in
    /// its DNS, and its records if the container runs. Returns the interface name. Errors
    /// leave the namespace as it was. With `adopt` (a restarted daemon), an interface already
    /// there for it is kept, and a network already wired is not an error.
    pub async fn connect_extra(
        &self,
        owner: &str,
        att: &NetworkAttachment,
        adopt: bool,
    ) -> Result<String> {
        let p = plan::attach_plan(att).map_err(|e| anyhow!(e))?;
        let mut guard = self.state.lock().await;
        let st = &mut *guard;
        let (vtep, mtu, gossip) = match &st.swarm {
            Some(s) => (s.vtep, s.underlay_mtu, s.gossip.clone()),
            None => bail!("this node is not in a swarm: overlay networks are unavailable"),
        };
        let Some(tn) = st.tasks.get(owner) else {
            bail!("the container's network (attachment {owner}) is not wired on this node");
        };
        if let Some(i) = tn.plans.iter().position(|q| q.network_id == p.network_id) {
            if adopt {
                return Ok(tn
                    .attachments
                    .get(i)
                    .map(|a| a.ifname.clone())
                    .unwrap_or_default());
            }
            bail!("already attached to network {}", p.network_name);
        }
        let path = tn.netns_path();
        let mut used: Vec<String> = tn.attachments.iter().map(|a| a.ifname.clone()).collect();
        let present = links_in(&path).await?;
        used.extend(present.iter().cloned());
        let ifn = free_ifname(&used.iter().map(String::as_str).collect::<Vec<_>>());
        self.ensure_overlay(st, &p, vtep, mtu, owner).await?;
        let wired = match st.overlays.get(&p.network_id) {
            Some(e) => {
                let kept = if adopt {
                    adopted(e.overlay.netlink(), &path, &present, &p, e.overlay.spec.mtu).await
                } else {
                    None
                };
                match kept {
                    Some(a) => Ok((a, e.overlay.spec.local_vtep)),
                    None => e
                        .overlay
                        .attach_endpoint(&path, &ifn, p.ip, None, false)
                        .await
                        .map(|a| (a, e.overlay.spec.local_vtep))
                        .with_context(|| format!("attaching to network {}", p.network_name)),
                }
            }
            None => Err(anyhow!("overlay {} vanished", p.network_id)),
        };
        let (endpoint, local_vtep) = match wired {
            Ok(w) => w,
            Err(e) => {
                self.drop_overlay_user(st, &p.network_id, owner).await;
                return Err(e);
            }
        };
        publish_endpoint(&gossip, &p, local_vtep).await;
        let Some(tn) = st.tasks.get_mut(owner) else {
            bail!("attachment {owner} was released meanwhile");
        };
        let ifn = endpoint.ifname.clone();
        tn.plans.push(p.clone());
        tn.attachments.push(endpoint);
        tn.task.networks_attachments.push(att.clone());
        if let Err(e) = self.rebind_dns(tn).await {
            tracing::warn!(task = %owner, "DNS after connecting {}: {e:#}", p.network_name);
        }
        // A running container publishes its name on the new network at once.
        if !tn.published.is_empty() {
            let records: Vec<ServiceRecord> = plan::task_records(&tn.task, &tn.plans)
                .into_iter()
                .filter(|r| r.network == p.network_id)
                .collect();
            for r in &records {
                if let Err(e) = gossip.publish_record(r).await {
                    tracing::warn!(task = %owner, "publishing {}: {e}", r.ip);
                }
            }
            tn.published.extend(records);
        }
        self.changed(st);
        Ok(ifn)
    }

    /// Takes network `network_id` out of task `owner`'s namespace: records and endpoint
    /// withdrawn, interface removed, names dropped from its DNS, the overlay removed when
    /// nothing else uses it. The owner's first network cannot go this way (it holds the
    /// namespace).
    pub async fn disconnect_extra(&self, owner: &str, network_id: &str) -> Result<()> {
        let mut guard = self.state.lock().await;
        let st = &mut *guard;
        let gossip = st.swarm.as_ref().map(|s| s.gossip.clone());
        let Some(tn) = st.tasks.get_mut(owner) else {
            // Not wired (the container was removed meanwhile): nothing to undo here.
            return Ok(());
        };
        let Some(i) = tn.plans.iter().position(|p| p.network_id == network_id) else {
            return Ok(());
        };
        if tn.plans.len() == 1 {
            bail!("the last network of the container cannot be disconnected this way");
        }
        let p = tn.plans.remove(i);
        let endpoint = tn.attachments.remove(i);
        tn.task
            .networks_attachments
            .retain(|a| a.network.id != network_id);
        let (withdrawn, kept): (Vec<ServiceRecord>, Vec<ServiceRecord>) =
            std::mem::take(&mut tn.published)
                .into_iter()
                .partition(|r| r.network == network_id);
        tn.published = kept;
        if let Some(g) = &gossip {
            for r in &withdrawn {
                let _ = g.withdraw_record(&r.network, r.ip).await;
            }
            let _ = g.withdraw(&p.network_id, p.ip).await;
        }
        if let Err(e) = self.rebind_dns(tn).await {
            tracing::warn!(task = %owner, "DNS after disconnecting {}: {e:#}", p.network_name);
        }
        if let Some(e) = st.overlays.get(network_id)
            && let Err(err) = e.overlay.detach_endpoint(&endpoint).await
        {
            tracing::warn!(task = %owner, "detaching {}: {err}", endpoint.ifname);
        }
        self.drop_overlay_user(st, network_id, owner).await;
        self.changed(st);
        Ok(())
    }

    /// Wires the first swarm network of a bridge container into the bridge's namespace at
    /// `netns` (attachment task `task`): overlay, the next free `ethN`, a DNS server on
    /// 127.0.0.11 there. With `adopt` (a restarted daemon), existing interfaces are kept.
    /// Errors leave the namespace as it was.
    pub async fn connect_borrowed(
        &self,
        task: &Task,
        netns: &Path,
        container: &str,
        adopt: bool,
    ) -> Result<()> {
        let plans = plan::task_plans(task).map_err(|e| anyhow!(e))?;
        let name = netns.to_string_lossy().to_string();
        if !name.starts_with('/') || !netns.exists() {
            bail!("the container's network namespace {name} is gone");
        }
        let mut guard = self.state.lock().await;
        let st = &mut *guard;
        if let Some(t) = st.tasks.get_mut(&task.id) {
            t.container = Some(container.to_string());
            return Ok(());
        }
        let (vtep, mtu, gossip) = match &st.swarm {
            Some(s) => (s.vtep, s.underlay_mtu, s.gossip.clone()),
            None => bail!("this node is not in a swarm: overlay networks are unavailable"),
        };
        let mut tn = TaskNet::unwired(
            task.clone(),
            name,
            plans.clone(),
            Some(container.to_string()),
        );
        let wired = self
            .wire_borrowed(st, &mut tn, vtep, mtu, &gossip, adopt)
            .await;
        if let Err(e) = wired {
            if !adopt {
                self.unwire_borrowed(st, tn).await;
            } else {
                for p in &plans {
                    self.drop_overlay_user(st, &p.network_id, &task.id).await;
                }
            }
            return Err(e);
        }
        st.tasks.insert(task.id.clone(), tn);
        self.changed(st);
        Ok(())
    }

    async fn wire_borrowed(
        &self,
        st: &mut State,
        tn: &mut TaskNet,
        vtep: Ipv4Addr,
        mtu: u32,
        gossip: &Gossip,
        adopt: bool,
    ) -> Result<()> {
        let path = tn.netns_path();
        let mut present = links_in(&path).await?;
        for p in tn.plans.clone() {
            self.ensure_overlay(st, &p, vtep, mtu, &tn.task.id).await?;
            let entry = st
                .overlays
                .get(&p.network_id)
                .ok_or_else(|| anyhow!("overlay {} vanished", p.network_id))?;
            let found = if adopt {
                adopted(
                    entry.overlay.netlink(),
                    &path,
                    &present,
                    &p,
                    entry.overlay.spec.mtu,
                )
                .await
            } else {
                None
            };
            let att = match found {
                Some(a) => a,
                None => {
                    let ifn = free_ifname(&present.iter().map(String::as_str).collect::<Vec<_>>());
                    let a = entry
                        .overlay
                        .attach_endpoint(&path, &ifn, p.ip, None, false)
                        .await
                        .with_context(|| format!("attaching to network {}", p.network_name))?;
                    present.push(ifn);
                    a
                }
            };
            let local_vtep = entry.overlay.spec.local_vtep;
            tn.attachments.push(att);
            publish_endpoint(gossip, &p, local_vtep).await;
        }
        self.rebind_dns(tn).await
    }

    /// Undoes a borrowed [`TaskNet`]: records, endpoints, DNS, its VIP table; the namespace
    /// stays with the bridge.
    async fn unwire_borrowed(&self, st: &mut State, mut tn: TaskNet) {
        if let Some(sw) = &st.swarm {
            for r in &tn.published {
                let _ = sw.gossip.withdraw_record(&r.network, r.ip).await;
            }
            for p in &tn.plans {
                let _ = sw.gossip.withdraw(&p.network_id, p.ip).await;
            }
        }
        drop(tn.dns.take());
        for (att, p) in tn.attachments.iter().zip(&tn.plans) {
            if let Some(e) = st.overlays.get(&p.network_id)
                && let Err(err) = e.overlay.detach_endpoint(att).await
            {
                tracing::warn!(task = %tn.task.id, "detaching {}: {err}", att.ifname);
            }
        }
        if st.applied_lb.remove(&tn.task.id).is_some()
            && let Err(e) = delete_table(Some(tn.netns_path()), LB_TABLE).await
        {
            tracing::debug!(task = %tn.task.id, "removing the VIP table: {e}");
        }
        for p in &tn.plans {
            self.drop_overlay_user(st, &p.network_id, &tn.task.id).await;
        }
        self.changed(st);
    }

    /// Takes every swarm network out of a bridge container's namespace (its last one was
    /// disconnected, or the container is gone).
    pub async fn release_borrowed(&self, task_id: &str) {
        let mut guard = self.state.lock().await;
        let st = &mut *guard;
        match st.tasks.remove(task_id) {
            Some(tn) if borrowed(&tn) => self.unwire_borrowed(st, tn).await,
            Some(tn) => {
                st.tasks.insert(task_id.to_string(), tn);
            }
            None => {}
        }
    }

    /// The DNS server of `tn` again, with its current scopes (a server's scopes are fixed).
    async fn rebind_dns(&self, tn: &mut TaskNet) -> Result<()> {
        drop(tn.dns.take());
        let path = tn.netns_path();
        let mut last = None;
        for _ in 0..DNS_REBIND_TRIES {
            let cfg = DnsConfig {
                scopes: tn.scopes(),
                upstreams: self.upstreams.clone(),
            };
            match DnsServer::bind_in_netns(
                &path,
                SocketAddr::new(IpAddr::V4(DNS_ADDR), 53),
                self.dns_table.clone(),
                cfg,
            )
            .await
            {
                Ok(s) => {
                    tn.dns = Some(s);
                    return Ok(());
                }
                // The old server's sockets close once its aborted tasks are dropped.
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(DNS_REBIND_PAUSE).await;
        }
        Err(anyhow!(
            "restarting the embedded DNS server: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_interface_fills_the_lowest_gap() {
        assert_eq!(free_ifname(&[]), "eth0");
        assert_eq!(free_ifname(&["eth0"]), "eth1");
        assert_eq!(free_ifname(&["eth0", "eth2"]), "eth1");
        assert_eq!(free_ifname(&["eth1", "eth0"]), "eth2");
    }
}
