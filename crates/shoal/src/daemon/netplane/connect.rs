//! `network connect` / `disconnect` on a running container's network: one more attachment
//! wired into the namespace a task already has (the next `ethN`), or one taken out again.
//!
//! The extra attachment joins the owner task's [`TaskNet`], so everything that follows the
//! task follows it too: its records are published and withdrawn with the container, its DNS
//! server resolves the new network's names, its VIP table balances the new network's services,
//! and releasing the task (container removed) unwires it.

use super::*;

/// How long a restarted DNS server waits for the old one's sockets to close (bounded tries).
const DNS_REBIND_TRIES: u32 = 40;
const DNS_REBIND_PAUSE: Duration = Duration::from_millis(25);

/// The lowest `ethN` that none of `used` has.
fn free_ifname(used: &[&str]) -> String {
    (0..)
        .map(ifname)
        .find(|n| !used.contains(&n.as_str()))
        .unwrap_or_else(|| ifname(0))
}

impl NetPlane {
    /// Wires `att` into the namespace of task `owner` (a standalone container's first
    /// attachment): overlay, a new `ethN` with the allocated address, the network's names in
    /// its DNS, and its records if the container runs. Returns the interface name. Errors
    /// leave the namespace as it was.
    pub async fn connect_extra(&self, owner: &str, att: &NetworkAttachment) -> Result<String> {
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
        if tn.plans.iter().any(|q| q.network_id == p.network_id) {
            bail!("already attached to network {}", p.network_name);
        }
        let path = tn.netns_path();
        let used: Vec<&str> = tn.attachments.iter().map(|a| a.ifname.as_str()).collect();
        let ifn = free_ifname(&used);
        self.ensure_overlay(st, &p, vtep, mtu, owner).await?;
        let wired = match st.overlays.get(&p.network_id) {
            Some(e) => e
                .overlay
                .attach_endpoint(&path, &ifn, p.ip, None, false)
                .await
                .map(|a| (a, e.overlay.spec.local_vtep))
                .with_context(|| format!("attaching to network {}", p.network_name)),
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
        if i == 0 {
            bail!("the network the container was created on cannot be disconnected");
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
