//! The WireGuard peer set of encrypted overlays, as the managers distribute it: the agent
//! follows `Dispatcher.WireGuardPeers` on the leader named by the session and hands each set
//! to the node's data plane. The last set stays in force while no manager answers, so running
//! tunnels keep working through a leader change.

use crate::session::{ChannelFactory, SessionState, follow_leader};
use shoal_proto::dispatcher::{
    WireGuardPeerSet, WireGuardPeersRequest, dispatcher_client::DispatcherClient,
};
use std::net::{IpAddr, SocketAddr};
use tokio::sync::watch;

/// One node's WireGuard identity, as the managers know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgPeerEntry {
    pub node_id: String,
    /// Underlay address and WireGuard port.
    pub endpoint: SocketAddr,
    /// Base64 public key.
    pub public_key: String,
    pub generation: u64,
}

/// The entries of a set message; entries with an unusable address or port are left out (a
/// node never becomes a peer on a guess).
pub fn entries(set: &WireGuardPeerSet) -> Vec<WgPeerEntry> {
    set.peers
        .iter()
        .filter_map(|p| {
            let ip: IpAddr = p.addr.parse().ok()?;
            let port = u16::try_from(p.port).ok().filter(|p| *p != 0)?;
            Some(WgPeerEntry {
                node_id: p.node_id.clone(),
                endpoint: SocketAddr::new(ip, port),
                public_key: p.public_key.clone(),
                generation: p.generation,
            })
        })
        .collect()
}

/// Follow the managers' peer set until `stop` turns true (or the receiver is dropped). The
/// receiver holds `None` until the first set arrives, then always the latest one.
pub fn start(
    channels: ChannelFactory,
    leader: watch::Receiver<SessionState>,
    stop: watch::Receiver<bool>,
) -> watch::Receiver<Option<Vec<WgPeerEntry>>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let streams = follow_leader(
            channels,
            leader,
            stop,
            "WireGuard peer stream",
            |ch, stop| follow(ch, tx.clone(), stop),
        );
        tokio::select! {
            _ = streams => {}
            _ = tx.closed() => {}
        }
    });
    rx
}

async fn follow(
    ch: tonic::transport::Channel,
    tx: watch::Sender<Option<Vec<WgPeerEntry>>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), tonic::Status> {
    let mut stream = DispatcherClient::new(ch)
        .wire_guard_peers(WireGuardPeersRequest {})
        .await?
        .into_inner();
    loop {
        let msg = tokio::select! {
            m = stream.message() => m?,
            _ = stop.changed() => return Ok(()),
        };
        let Some(set) = msg else { return Ok(()) };
        let want = Some(entries(&set));
        tx.send_if_modified(|cur| {
            if *cur == want {
                return false;
            }
            *cur = want;
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::dispatcher::WireGuardPeer;

    #[test]
    fn entries_skip_unusable_addresses() {
        let p = |id: &str, addr: &str, port: u32| WireGuardPeer {
            node_id: id.into(),
            addr: addr.into(),
            port,
            public_key: "k".into(),
            generation: 2,
        };
        let set = WireGuardPeerSet {
            peers: vec![
                p("a", "10.1.0.1", 51820),
                p("b", "not-an-ip", 51820),
                p("c", "10.1.0.3", 0),
                p("d", "10.1.0.4", 70000),
            ],
        };
        let e = entries(&set);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].node_id, "a");
        assert_eq!(e[0].endpoint, "10.1.0.1:51820".parse().unwrap());
        assert_eq!(e[0].generation, 2);
    }
}
