//! A node that is part of a swarm: its credentials, its Raft store and gRPC server when it is a
//! manager, and its heartbeat session with the leader.

use super::config::DaemonConfig;
use super::describe::describe;
use super::local_state::LocalSwarmState;
use anyhow::{Context, Result, anyhow};
use shoal_agent::session::{Session, SessionConfig, SessionState};
use shoal_agent::worker::{TaskExecutor, Worker};
use shoal_manager::ca::{self, NodeCaService, NodeCredentials, Role};
use shoal_manager::manager::Manager;
use shoal_manager::raft_id::raft_id_for;
use shoal_manager::services::{ControlService, DispatcherService, Registrar};
use shoal_proto::control::{JoinRaftRequest, control_client::ControlClient};
use shoal_store::{ChannelFactory, RaftConfig, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How the active node comes up.
pub enum Bootstrap {
    /// From what is on disk (daemon restart).
    Restart { force_new_cluster: bool },
    /// A brand-new cluster: raft is initialized here, the caller writes the first objects.
    NewCluster,
    /// A manager that just joined through `via`: ask the leader to make us a voter.
    JoinManager { via: String },
}

pub struct ActiveNode {
    pub local: LocalSwarmState,
    pub creds: NodeCredentials,
    pub manager: Option<Arc<Manager>>,
    pub session: watch::Receiver<SessionState>,
    stop_tx: watch::Sender<bool>,
    grpc: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// The leader's log broker (`service logs`), on managers.
    pub log_broker: Option<Arc<shoal_manager::logbroker::LogBroker>>,
    /// The node data plane (gossip runs while the node is in the swarm).
    netplane: Option<Arc<super::netplane::NetPlane>>,
}

pub fn raft_dir(cfg: &DaemonConfig) -> std::path::PathBuf {
    cfg.data_root.join("raft")
}

/// Channels to managers over mTLS with this node's certificate.
pub fn mtls_channels(creds: &NodeCredentials) -> ChannelFactory {
    let creds = creds.clone();
    Arc::new(move |addr: &str| {
        let ep = ca::tls::endpoint(addr, &creds).map_err(|e| anyhow!("{e}"))?;
        Ok(ep
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect_lazy())
    })
}

impl ActiveNode {
    pub async fn start(
        executor: &Arc<dyn TaskExecutor>,
        at_rest_key: Option<[u8; 32]>,
        cfg: &DaemonConfig,
        local: LocalSwarmState,
        creds: NodeCredentials,
        boot: Bootstrap,
    ) -> Result<ActiveNode> {
        let channels = mtls_channels(&creds);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut manager = None;
        let mut grpc = None;
        let mut log_broker = None;
        if creds.role == Role::Manager {
            let mut raft_cfg = RaftConfig::new(
                raft_id_for(&creds.node_id),
                local.advertise_addr.clone(),
                raft_dir(cfg),
            );
            // Fast failover (target: writes again within 3 s of a leader's death) while a
            // busy 2-core host still keeps heartbeats well inside the election window.
            raft_cfg.at_rest_key = at_rest_key;
            raft_cfg.heartbeat_ms = 150;
            raft_cfg.election_min_ms = 600;
            raft_cfg.election_max_ms = 1200;
            if let Boot::Restart {
                force_new_cluster: true,
            } = Boot::from(&boot)
            {
                raft_cfg.force_new_cluster = true;
            }
            let store = start_store(raft_cfg, channels.clone()).await?;
            let m = Manager::new(
                store.clone(),
                creds.node_id.clone(),
                local.advertise_addr.clone(),
                channels.clone(),
            );
            let listen: SocketAddr = local
                .listen_addr
                .parse()
                .with_context(|| format!("listen address {}", local.listen_addr))?;
            let tls = ca::tls::server_tls_config(&creds).map_err(|e| anyhow!("{e}"))?;
            // Bind first so a busy port is an error of this call, not of a background task.
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let (tx, rx) = oneshot::channel::<()>();
            // Raft messages only from managers of this cluster. The cluster ID comes from our own
            // certificate: a manager that just joined has no Raft state to read it from yet.
            let cluster_id = creds.cluster_id.clone();
            let revoked_view = m.clone();
            let raft_guard = ca::RoleGuard::new(
                &[Role::Manager],
                move || cluster_id.clone(),
                move |node_id| shoal_manager::services::is_revoked(&revoked_view, node_id),
            );
            let broker = shoal_manager::logbroker::LogBroker::new(m.clone(), channels.clone());
            let (logs_rpc, log_broker_rpc) = broker.servers();
            log_broker = Some(broker);
            let router = tonic::transport::Server::builder()
                .tls_config(tls)
                .context("TLS config of the cluster port")?
                .add_service(tonic::service::interceptor::InterceptedService::new(
                    store.grpc_service(),
                    raft_guard,
                ))
                .add_service(NodeCaService::new(Registrar::new(m.clone())).into_server())
                .add_service(ControlService::server(m.clone()))
                .add_service(DispatcherService::server(m.clone()))
                .add_service(logs_rpc)
                .add_service(log_broker_rpc);
            let handle = tokio::spawn(async move {
                if let Err(e) = router
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = rx.await;
                    })
                    .await
                {
                    tracing::error!("cluster gRPC server stopped: {e}");
                }
            });
            grpc = Some((tx, handle));
            match &boot {
                Bootstrap::NewCluster => {
                    store
                        .initialize_single()
                        .await
                        .map_err(|e| anyhow!("initializing raft: {e}"))?;
                    store
                        .wait_leader(Duration::from_secs(10))
                        .await
                        .ok_or_else(|| anyhow!("raft elected no leader"))?;
                }
                Bootstrap::JoinManager { via } => {
                    join_raft(&channels, via, &creds, &local.advertise_addr).await?;
                }
                Bootstrap::Restart { .. } => {}
            }
            m.spawn_leader_loop(stop_rx.clone());
            shoal_manager::orchestrator::Orchestration::spawn(m.clone(), stop_rx.clone());
            manager = Some(m);
        }
        let mut managers = local.managers.clone();
        if creds.role == Role::Manager && !managers.contains(&local.advertise_addr) {
            managers.insert(0, local.advertise_addr.clone());
        }
        let netplane = super::netplane::for_data_root(&cfg.data_root);
        // The node's WireGuard key travels in its description (encrypted overlays).
        let wg_keys = super::netplane::wg_keys::NodeKeys::start(
            netplane.clone(),
            describe(&cfg.hostname),
            cfg.wg_key_rotation,
            stop_rx.clone(),
        )
        .await?;
        let (_session, session_rx) = Session::start(
            SessionConfig {
                managers,
                advertise_addr: local.advertise_addr.clone(),
                description_json: wg_keys.description_json.clone(),
                description_updates: wg_keys.updates.clone(),
            },
            channels.clone(),
            stop_rx.clone(),
        );
        // Gossip before the worker: restored tasks republish into it.
        if let Some(np) = &netplane {
            let info = super::netplane::SwarmInfo {
                node_id: creds.node_id.clone(),
                cluster_id: creds.cluster_id.clone(),
                advertise_addr: local.advertise_addr.clone(),
                managers: managers_for_gossip(&local, creds.role == Role::Manager),
            };
            if let Err(e) = np.swarm_started(info).await {
                tracing::error!("overlay networking is unavailable: {e:#}");
            }
        }
        wg_keys.follow(shoal_agent::wg_peers::start(
            channels.clone(),
            session_rx.clone(),
            stop_rx.clone(),
        ));
        if let Some(reader) = executor.log_reader() {
            shoal_agent::logs::start(
                reader,
                channels.clone(),
                session_rx.clone(),
                stop_rx.clone(),
            );
        }
        let worker = Worker::start(
            executor.clone(),
            channels,
            session_rx.clone(),
            stop_rx.clone(),
        );
        shoal_agent::persist::start(
            &worker,
            cfg.data_root.join("agent"),
            creds.node_id.clone(),
            stop_rx,
        );
        Ok(ActiveNode {
            netplane,
            local,
            creds,
            manager,
            session: session_rx,
            stop_tx,
            grpc,
            log_broker,
        })
    }

    pub async fn stop(mut self) {
        let _ = self.stop_tx.send(true);
        if let Some(np) = self.netplane.take() {
            np.swarm_stopped().await;
        }
        if let Some(m) = &self.manager {
            m.store.shutdown().await;
        }
        if let Some((tx, handle)) = self.grpc.take() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        // The raft database is released only when the last reference to the store goes
        // (services, leader loop); a restart in this process must not find it still open.
        if let Some(m) = self.manager.take() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while Arc::strong_count(&m) > 1 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    pub fn is_manager(&self) -> bool {
        self.creds.role == Role::Manager
    }
}

/// Gossip seeds: the managers we know, ourselves included when we are one.
fn managers_for_gossip(local: &LocalSwarmState, is_manager: bool) -> Vec<String> {
    let mut m = local.managers.clone();
    if is_manager && !m.contains(&local.advertise_addr) {
        m.push(local.advertise_addr.clone());
    }
    m
}

/// Only the variant matters when deciding raft options; avoids borrowing `via`.
enum Boot {
    Restart { force_new_cluster: bool },
    Other,
}

impl From<&Bootstrap> for Boot {
    fn from(b: &Bootstrap) -> Boot {
        match b {
            Bootstrap::Restart { force_new_cluster } => Boot::Restart {
                force_new_cluster: *force_new_cluster,
            },
            _ => Boot::Other,
        }
    }
}

/// Ask the managers (starting with `via`) to add us to Raft; the one we reach forwards to the
/// leader. Retries briefly: the leader may be mid-election.
async fn join_raft(
    channels: &ChannelFactory,
    via: &str,
    creds: &NodeCredentials,
    advertise: &str,
) -> Result<()> {
    let raft_id = raft_id_for(&creds.node_id);
    let mut last = String::new();
    for _ in 0..20 {
        let ch = channels(via)?;
        let mut client = ControlClient::new(ch);
        match client
            .join_raft(JoinRaftRequest {
                raft_id,
                addr: advertise.to_string(),
            })
            .await
        {
            Ok(_) => return Ok(()),
            Err(s) => last = s.message().to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(anyhow!("could not join raft through {via}: {last}"))
}

/// Opens the store, waiting briefly if a previous instance in this process still holds the
/// database (it is released once its last reference drops).
async fn start_store(cfg: RaftConfig, channels: ChannelFactory) -> Result<Store> {
    let mut attempt = 0;
    loop {
        match Store::start(cfg.clone(), channels.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) if attempt < 50 && format!("{e:#}").contains("already open") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.context("starting the raft store")),
        }
    }
}
