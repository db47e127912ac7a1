//! Swarm membership of this node: init, join, leave, unlock, update, and reacting to what the
//! cluster decides about us (promotion, demotion, removal, certificate renewal).
//!
//! Every operation either completes or leaves the node as it was: on failure after something
//! was written, it is removed again.

use super::Daemon;
use super::active::{ActiveNode, Bootstrap, raft_dir};
use super::addr;
use super::describe::describe;
use super::local_state::{self, LocalSwarmState};
use shoal_manager::ca::{
    self, JoinParams, JoinToken, Kek, NodeCredentials, NodeKey, Role, RootCa, UnlockKey,
};
use shoal_manager::manager::Manager;
use shoal_manager::raft_id::raft_id_for;
use shoal_store::Change;
use shoal_types::swarm::{
    InitRequest, JoinRequest, JoinTokens, RootCA, UnlockRequest, UpdateFlags,
};
use shoal_types::{
    ApiError, Cluster, ClusterSpec, Meta, Node, NodeRole, NodeState, Object, new_id,
};
use std::sync::Arc;
use std::time::Duration;

pub const ALREADY_IN_SWARM: &str = "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";
pub const NOT_IN_SWARM: &str = "This node is not part of a swarm";
pub const MANAGER_LEAVE: &str = "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves the remaining managers with fewer members. Use `--force` to ignore this message.";
pub const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.";

const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// The node's place in a swarm, as the daemon holds it.
pub enum Slot {
    Inactive,
    /// On disk, but the key is sealed by the unlock key (autolock) and we wait for it.
    Locked(LocalSwarmState),
    Active(ActiveNode),
}

impl Daemon {
    /// The key that seals this node's Raft data on disk, if known (see `load_dek`).
    fn dek(&self) -> Option<[u8; 32]> {
        *self.dek.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads this node's data encryption key from its key file (opening it with `lock` under
    /// autolock), creating one the first time. Raft log entries and snapshots, which hold the
    /// secrets and the CA key, are sealed with it.
    fn load_dek(&self, lock: Option<&Kek>) -> anyhow::Result<()> {
        let dir = &self.cfg.data_root;
        let mut secrets =
            ca::NodeSecrets::load(dir, lock).map_err(|e| anyhow::anyhow!("node key: {e}"))?;
        if secrets.dek.is_none() {
            secrets.dek = Some(ca::Dek::generate());
            secrets
                .save(dir, lock)
                .map_err(|e| anyhow::anyhow!("saving the data key: {e}"))?;
        }
        let key = secrets.dek.as_ref().map(|d| *d.as_bytes());
        *self.dek.lock().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }

    fn wipe_swarm_state(&self) {
        let _ = std::fs::remove_dir_all(raft_dir(&self.cfg));
        let _ = std::fs::remove_dir_all(self.cfg.data_root.join("certificates"));
        let _ = local_state::remove(&self.cfg.data_root);
        *self.dek.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Bring the node back as it was before a restart.
    pub async fn restore(self: &Arc<Self>) -> anyhow::Result<()> {
        let Some(local) = local_state::load(&self.cfg.data_root)? else {
            return Ok(());
        };
        if ca::NodeSecrets::is_sealed(&self.cfg.data_root).unwrap_or(false) {
            tracing::warn!("swarm is locked: waiting for `shoal swarm unlock`");
            *self.slot.write().await = Slot::Locked(local);
            return Ok(());
        }
        let creds = ca::load_credentials(&self.cfg.data_root, None)
            .map_err(|e| anyhow::anyhow!("loading node credentials: {e}"))?;
        self.load_dek(None)?;
        let node = ActiveNode::start(
            &self.task_executor,
            self.dek(),
            &self.cfg,
            local,
            creds,
            Bootstrap::Restart {
                force_new_cluster: false,
            },
        )
        .await?;
        *self.slot.write().await = Slot::Active(node);
        self.spawn_watch();
        Ok(())
    }

    pub async fn swarm_init(self: &Arc<Self>, req: InitRequest) -> Result<String, ApiError> {
        let _op = self.op_lock.lock().await;
        if req.force_new_cluster {
            return self.force_new_cluster().await;
        }
        if !matches!(*self.slot.read().await, Slot::Inactive) {
            return Err(ApiError::unavailable(ALREADY_IN_SWARM));
        }
        let (listen, advertise) =
            addr::listen_and_advertise(&req.listen_addr, &req.advertise_addr)?;
        let spec = req.effective_spec()?;
        let (pool, subnet, data_port) = req.effective_network_config()?;
        let autolock = req.auto_lock_managers || spec.encryption_config.auto_lock_managers;

        let root = RootCa::generate().map_err(internal)?;
        let cluster_id = new_id();
        let node_id = new_id();
        let key = NodeKey::generate().map_err(internal)?;
        let cert = root
            .issue(
                &key.csr_pem().map_err(internal)?,
                &node_id,
                Role::Manager,
                &cluster_id,
                cert_validity(&spec),
            )
            .map_err(internal)?;
        let creds = NodeCredentials::from_parts(key.key_pem(), cert, root.cert_pem().to_string())
            .map_err(internal)?;
        let unlock = autolock.then(Kek::generate);
        let local = LocalSwarmState {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            role: "manager".into(),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            managers: vec![advertise.to_string()],
        };
        self.wipe_swarm_state();
        let result = async {
            ca::save_credentials(&self.cfg.data_root, &creds, unlock.as_ref()).map_err(internal)?;
            self.load_dek(unlock.as_ref()).map_err(internal)?;
            local_state::save(&self.cfg.data_root, &local).map_err(internal)?;
            let node = ActiveNode::start(
                &self.task_executor,
                self.dek(),
                &self.cfg,
                local.clone(),
                creds.clone(),
                Bootstrap::NewCluster,
            )
            .await
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
            let manager = node.manager.clone().ok_or_else(|| internal("no manager"))?;
            let mut spec = spec.clone();
            spec.encryption_config.auto_lock_managers = autolock;
            let cluster = Cluster {
                id: cluster_id.clone(),
                meta: Meta::now(),
                spec,
                root_ca: RootCA {
                    ca_cert: root.cert_pem().to_string(),
                    ca_key: root.key_pem().into_bytes(),
                    ca_cert_hash: hex_digest(&root.digest()),
                    cert_issuer_subject: Vec::new(),
                    cert_issuer_public_key: Vec::new(),
                    join_tokens: JoinTokens {
                        worker: JoinToken::generate(&root).to_string(),
                        manager: JoinToken::generate(&root).to_string(),
                    },
                },
                unlock_key: unlock.as_ref().map(|k| k.unlock_key_string()),
                default_addr_pool: pool,
                subnet_size: subnet,
                data_path_port: data_port,
                ..Default::default()
            };
            let mut me = Node {
                id: node_id.clone(),
                meta: Meta::now(),
                description: describe(&self.cfg.hostname),
                ..Default::default()
            };
            me.spec.role = NodeRole::Manager;
            me.spec.availability = req.availability;
            me.status.state = NodeState::Ready;
            me.status.addr = advertise.ip().to_string();
            // The routing-mesh network exists from the start, as in Docker.
            let ingress =
                match shoal_manager::network::default_ingress(&cluster, chrono::Utc::now()) {
                    Ok(n) => n,
                    Err(e) => {
                        node.stop().await;
                        return Err(e);
                    }
                };
            if let Err(e) = manager
                .propose(vec![
                    Change::Create(Object::Cluster(cluster)),
                    Change::Create(Object::Node(me)),
                    Change::Create(Object::Network(ingress)),
                ])
                .await
            {
                node.stop().await;
                return Err(e);
            }
            Ok(node)
        }
        .await;
        match result {
            Ok(node) => {
                *self.unlock_key_used.lock().await = unlock.as_ref().map(|k| k.unlock_key_string());
                *self.slot.write().await = Slot::Active(node);
                self.spawn_watch();
                Ok(node_id)
            }
            Err(e) => {
                self.wipe_swarm_state();
                Err(e)
            }
        }
    }

    /// `swarm init --force-new-cluster`: this manager alone keeps the whole state.
    async fn force_new_cluster(self: &Arc<Self>) -> Result<String, ApiError> {
        let mut slot = self.slot.write().await;
        let Slot::Active(node) = std::mem::replace(&mut *slot, Slot::Inactive) else {
            let was_locked = matches!(*slot, Slot::Locked(_));
            return Err(ApiError::unavailable(if was_locked {
                LOCKED
            } else {
                "--force-new-cluster needs a node that was a manager of a swarm"
            }));
        };
        if !node.is_manager() {
            *slot = Slot::Active(node);
            return Err(ApiError::unavailable(
                "--force-new-cluster can only be used on a manager",
            ));
        }
        let (local, creds) = (node.local.clone(), node.creds.clone());
        node.stop().await;
        let restarted = ActiveNode::start(
            &self.task_executor,
            self.dek(),
            &self.cfg,
            local,
            creds.clone(),
            Bootstrap::Restart {
                force_new_cluster: true,
            },
        )
        .await
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        *slot = Slot::Active(restarted);
        drop(slot);
        self.spawn_watch();
        Ok(creds.node_id)
    }

    pub async fn swarm_join(self: &Arc<Self>, req: JoinRequest) -> Result<(), ApiError> {
        let _op = self.op_lock.lock().await;
        if !matches!(*self.slot.read().await, Slot::Inactive) {
            return Err(ApiError::unavailable(ALREADY_IN_SWARM));
        }
        let remote = req.remote_addrs.first().ok_or_else(|| {
            ApiError::invalid_argument("at least 1 RemoteAddr is required to join")
        })?;
        let remote = addr::resolve(remote, addr::DEFAULT_PORT)?.to_string();
        if req.join_token.is_empty() {
            return Err(ApiError::invalid_argument("a join token is required"));
        }
        JoinToken::parse(&req.join_token)
            .map_err(|e| ApiError::invalid_argument(format!("invalid join token: {e}")))?;
        let (listen, advertise) =
            addr::listen_and_advertise(&req.listen_addr, &req.advertise_addr)?;
        let params = JoinParams {
            hostname: self.cfg.hostname.clone(),
            advertise_addr: advertise.to_string(),
            listen_addr: listen.to_string(),
            data_path_addr: req.data_path_addr.clone(),
            availability: req.availability.as_str().to_string(),
        };
        let creds = tokio::time::timeout(
            JOIN_TIMEOUT,
            ca::join_bootstrap(&remote, &req.join_token, &params),
        )
        .await
        .map_err(|_| {
            ApiError::unavailable(format!(
                "Timeout was reached before node joined: the manager at {remote} did not answer"
            ))
        })?
        .map_err(|e| join_error(&remote, e))?;
        let local = LocalSwarmState {
            node_id: creds.node_id.clone(),
            cluster_id: creds.cluster_id.clone(),
            role: creds.role.as_str().to_string(),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            managers: vec![remote.clone()],
        };
        self.wipe_swarm_state();
        let result = async {
            // A joining manager learns the unlock key over mTLS right after: until then the
            // key is stored unsealed, as on any fresh node.
            ca::save_credentials(&self.cfg.data_root, &creds, None).map_err(internal)?;
            self.load_dek(None).map_err(internal)?;
            local_state::save(&self.cfg.data_root, &local).map_err(internal)?;
            let boot = if creds.role == Role::Manager {
                Bootstrap::JoinManager {
                    via: remote.clone(),
                }
            } else {
                Bootstrap::Restart {
                    force_new_cluster: false,
                }
            };
            ActiveNode::start(
                &self.task_executor,
                self.dek(),
                &self.cfg,
                local,
                creds,
                boot,
            )
            .await
            .map_err(|e| ApiError::unavailable(format!("{e:#}")))
        }
        .await;
        match result {
            Ok(node) => {
                let mut session = node.session.clone();
                *self.slot.write().await = Slot::Active(node);
                self.spawn_watch();
                // Like docker, return once the node talks to the cluster.
                let _ = tokio::time::timeout(
                    Duration::from_secs(15),
                    session.wait_for(|s| s.connected),
                )
                .await;
                Ok(())
            }
            Err(e) => {
                self.wipe_swarm_state();
                Err(e)
            }
        }
    }

    pub async fn swarm_leave(self: &Arc<Self>, force: bool) -> Result<(), ApiError> {
        let _op = self.op_lock.lock().await;
        let mut slot = self.slot.write().await;
        match std::mem::replace(&mut *slot, Slot::Inactive) {
            Slot::Inactive => Err(ApiError::unavailable(NOT_IN_SWARM)),
            Slot::Locked(local) => {
                if !force {
                    *slot = Slot::Locked(local);
                    return Err(ApiError::unavailable(LOCKED));
                }
                drop(slot);
                self.wipe_swarm_state();
                Ok(())
            }
            Slot::Active(node) => {
                if node.is_manager() && !force {
                    *slot = Slot::Active(node);
                    return Err(ApiError::unavailable(MANAGER_LEAVE));
                }
                if let Some(m) = &node.manager {
                    // Best effort: leave Raft so the others don't count us for quorum.
                    let alone = m.manager_addrs().len() <= 1;
                    if !alone && let Err(e) = m.leave_raft(raft_id_for(&node.creds.node_id)).await {
                        tracing::warn!("leaving raft: {}", e.message);
                    }
                }
                node.stop().await;
                drop(slot);
                self.wipe_swarm_state();
                Ok(())
            }
        }
    }

    pub async fn swarm_unlock(self: &Arc<Self>, req: UnlockRequest) -> Result<(), ApiError> {
        let _op = self.op_lock.lock().await;
        let mut slot = self.slot.write().await;
        let local = match &*slot {
            Slot::Locked(l) => l.clone(),
            Slot::Inactive => return Err(ApiError::unavailable(NOT_IN_SWARM)),
            Slot::Active(_) => {
                return Err(ApiError::invalid_argument("swarm is not locked"));
            }
        };
        let key = UnlockKey::parse(req.unlock_key.trim())
            .map_err(|_| ApiError::invalid_argument("invalid key: not a swarm unlock key"))?;
        let creds = ca::load_credentials(&self.cfg.data_root, Some(&key))
            .map_err(|_| ApiError::invalid_argument("swarm could not be unlocked: invalid key"))?;
        self.load_dek(Some(&key)).map_err(internal)?;
        let node = ActiveNode::start(
            &self.task_executor,
            self.dek(),
            &self.cfg,
            local,
            creds,
            Bootstrap::Restart {
                force_new_cluster: false,
            },
        )
        .await
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        *self.unlock_key_used.lock().await = Some(key.unlock_key_string());
        *slot = Slot::Active(node);
        drop(slot);
        self.spawn_watch();
        Ok(())
    }

    pub async fn swarm_unlock_key(&self) -> Result<String, ApiError> {
        let m = self.manager().await?;
        m.cluster()
            .and_then(|c| c.unlock_key)
            .ok_or_else(|| ApiError::not_found("no unlock key is set"))
    }

    pub async fn swarm_update(
        &self,
        version: u64,
        mut spec: ClusterSpec,
        flags: UpdateFlags,
    ) -> Result<(), ApiError> {
        let m = self.manager().await?;
        let cluster = m
            .cluster()
            .ok_or_else(|| ApiError::unavailable("the cluster state is not known yet"))?;
        if cluster.meta.version.index != version {
            return Err(ApiError::out_of_sequence());
        }
        if spec.annotations.name.is_empty() {
            spec.annotations.name = "default".into();
        }
        if spec.annotations.name != "default" {
            return Err(ApiError::invalid_argument(
                "swarm spec must be named \"default\"",
            ));
        }
        spec.validate()?;
        let mut updated = cluster.clone();
        let root = RootCa::from_pem(
            &cluster.root_ca.ca_cert,
            &String::from_utf8_lossy(&cluster.root_ca.ca_key),
        )
        .map_err(internal)?;
        if flags.rotate_worker_token {
            updated.root_ca.join_tokens.worker = JoinToken::generate(&root).to_string();
        }
        if flags.rotate_manager_token {
            updated.root_ca.join_tokens.manager = JoinToken::generate(&root).to_string();
        }
        let autolock = spec.encryption_config.auto_lock_managers;
        updated.unlock_key = match (autolock, &cluster.unlock_key) {
            (false, _) => None,
            (true, None) => Some(Kek::generate().unlock_key_string()),
            (true, Some(_)) if flags.rotate_manager_unlock_key => {
                Some(Kek::generate().unlock_key_string())
            }
            (true, Some(k)) => Some(k.clone()),
        };
        updated.spec = spec;
        m.propose(vec![Change::Update {
            object: Object::Cluster(updated),
            expected_version: Some(version),
        }])
        .await?;
        Ok(())
    }

    pub async fn manager(&self) -> Result<Arc<Manager>, ApiError> {
        match &*self.slot.read().await {
            Slot::Active(node) => node.manager.clone().ok_or_else(|| {
                ApiError::unavailable("This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.")
            }),
            Slot::Locked(_) => Err(ApiError::unavailable(LOCKED)),
            Slot::Inactive => Err(ApiError::unavailable(
                "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
            )),
        }
    }

    /// Follow the cluster's decisions about this node: role changes, removal, autolock, and
    /// certificate renewal before expiry.
    fn spawn_watch(self: &Arc<Self>) {
        let me = self.clone();
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if me.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
                    return;
                }
                if let Err(e) = me.watch_tick().await {
                    tracing::warn!("{e:#}");
                }
            }
        });
    }

    async fn watch_tick(self: &Arc<Self>) -> anyhow::Result<()> {
        let (state, creds, local, manager) = match &*self.slot.read().await {
            Slot::Active(n) => (
                n.session.borrow().clone(),
                n.creds.clone(),
                n.local.clone(),
                n.manager.clone(),
            ),
            _ => return Ok(()),
        };
        if state.removed {
            tracing::warn!("this node was removed from the swarm: leaving");
            let _op = self.op_lock.lock().await;
            if let Slot::Active(n) =
                std::mem::replace(&mut *self.slot.write().await, Slot::Inactive)
            {
                n.stop().await;
            }
            self.wipe_swarm_state();
            return Ok(());
        }
        // Keep our sealed/unsealed key in step with the cluster's autolock setting.
        if let Some(m) = &manager
            && let Some(cluster) = m.cluster()
        {
            let want = cluster
                .unlock_key
                .as_deref()
                .and_then(|k| UnlockKey::parse(k).ok());
            let sealed = ca::NodeSecrets::is_sealed(&self.cfg.data_root).unwrap_or(false);
            let current = self.unlock_key_used.lock().await.clone();
            if want.as_ref().map(|k| k.unlock_key_string()) != current || want.is_some() != sealed {
                let old = current.as_deref().and_then(|k| UnlockKey::parse(k).ok());
                // Rewrite the key under the new lock (open with the old one if any).
                let secrets = ca::NodeSecrets::load(&self.cfg.data_root, old.as_ref())
                    .or_else(|_| ca::NodeSecrets::load(&self.cfg.data_root, None));
                if let Ok(secrets) = secrets {
                    secrets
                        .save(&self.cfg.data_root, want.as_ref())
                        .map_err(|e| anyhow::anyhow!("re-sealing node key: {e}"))?;
                    *self.unlock_key_used.lock().await = want.map(|k| k.unlock_key_string());
                }
            }
        }
        let desired = match state.desired_role.as_str() {
            "manager" => Some(Role::Manager),
            "worker" => Some(Role::Worker),
            _ => None,
        };
        let renewal_due = creds
            .identity()
            .map(|id| std::time::SystemTime::now() >= id.renewal_due())
            .unwrap_or(false);
        let role_changed = desired.is_some_and(|d| d != creds.role);
        if !(role_changed || renewal_due) || !state.connected {
            return Ok(());
        }
        let Some(via) = state.manager.clone() else {
            return Ok(());
        };
        tracing::info!(
            "renewing the node certificate (role change: {role_changed}, expiry: {renewal_due})"
        );
        let channel = ca::tls::connect(&via, &creds)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let new_creds = ca::renew(channel, &creds)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let _op = self.op_lock.lock().await;
        let lock = self
            .unlock_key_used
            .lock()
            .await
            .as_deref()
            .and_then(|k| UnlockKey::parse(k).ok());
        ca::save_credentials(&self.cfg.data_root, &new_creds, lock.as_ref())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut new_local = local.clone();
        new_local.role = new_creds.role.as_str().to_string();
        new_local.managers = state.managers.clone();
        local_state::save(&self.cfg.data_root, &new_local)?;
        let mut slot = self.slot.write().await;
        if let Slot::Active(n) = std::mem::replace(&mut *slot, Slot::Inactive) {
            n.stop().await;
        }
        let boot = if new_creds.role == Role::Manager && creds.role != Role::Manager {
            let _ = std::fs::remove_dir_all(raft_dir(&self.cfg));
            Bootstrap::JoinManager { via }
        } else {
            if new_creds.role == Role::Worker {
                let _ = std::fs::remove_dir_all(raft_dir(&self.cfg));
            }
            Bootstrap::Restart {
                force_new_cluster: false,
            }
        };
        let node = ActiveNode::start(
            &self.task_executor,
            self.dek(),
            &self.cfg,
            new_local,
            new_creds,
            boot,
        )
        .await?;
        *slot = Slot::Active(node);
        Ok(())
    }
}

fn cert_validity(spec: &ClusterSpec) -> Duration {
    if spec.ca_config.node_cert_expiry > 0 {
        Duration::from_nanos(spec.ca_config.node_cert_expiry as u64)
    } else {
        ca::DEFAULT_NODE_CERT_VALIDITY
    }
}

fn hex_digest(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn join_error(remote: &str, e: ca::CaError) -> ApiError {
    let msg = e.to_string();
    if msg.contains("join token") || msg.contains("digest") || msg.contains("ermission") {
        ApiError::invalid_argument(format!(
            "A valid join token is necessary to join this cluster: {msg}"
        ))
    } else {
        ApiError::unavailable(format!("could not join the swarm through {remote}: {msg}"))
    }
}
