//! `shoal daemon`: serves the API on a unix socket and runs this node's part of the swarm.

pub mod active;
pub mod addr;
mod attach;
mod backend;
pub mod bridge;
pub mod config;
mod containers;
pub mod describe;
pub mod executor;
mod image_import;
pub mod images;
pub mod local_state;
mod logs;
mod named_data;
pub mod netplane;
mod networks;
pub mod swarm;
pub mod templating;

use anyhow::{Context, Result};
use config::DaemonConfig;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use swarm::Slot;
use tokio::sync::{Mutex, RwLock};

pub struct Daemon {
    pub cfg: DaemonConfig,
    slot: RwLock<Slot>,
    /// Serializes membership changes (init, join, leave, unlock, role reload).
    op_lock: Mutex<()>,
    /// Bumped each time a new membership watcher starts, so older ones stop.
    generation: AtomicU64,
    /// The unlock key our node key is currently sealed with (None: not sealed).
    unlock_key_used: Mutex<Option<String>>,
    pub images: Arc<images::Images>,
    pub runtime: shoal_runtime::container::Runtime,
    /// The default bridge network for standalone containers, or why it could not be set up.
    pub bridge: std::result::Result<Arc<bridge::Bridge>, String>,
    task_executor: Arc<dyn shoal_agent::worker::TaskExecutor>,
    /// Seals this manager's Raft data on disk.
    dek: std::sync::Mutex<Option<[u8; 32]>>,
}

fn init_tracing(cfg: &DaemonConfig) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{},openraft=warn,h2=warn,tower=warn,hyper=warn",
        cfg.log_level
    ))
    .with_context(|| format!("invalid --log-level {:?}", cfg.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if cfg.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// The container runtime of this node; containers that kept running while the daemon was down
/// are re-attached, dead ones get their recorded exit status.
async fn open_runtime(cfg: &DaemonConfig) -> Result<shoal_runtime::container::Runtime> {
    let monitor_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("shoal-monitor")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "shoal-monitor".into());
    if shoal_runtime::container::find_binary(&monitor_bin.to_string_lossy()).is_none() {
        // Managers without containers work without it, so this is not fatal.
        tracing::warn!(
            "shoal-monitor is neither next to the shoal binary nor on PATH: containers on this \
             node will fail to start until it is installed"
        );
    }
    let runtime = shoal_runtime::container::Runtime::open(
        cfg.data_root.join("containers"),
        cfg.exec_root.clone(),
        shoal_runtime::container::RuntimeOptions {
            runtime_bin: cfg.runtime.clone(),
            cgroup_parent: cfg.cgroup_parent.clone(),
            monitor_bin,
        },
    )
    .map_err(|e| anyhow::anyhow!("opening the container runtime: {e}"))?;
    match runtime.restore().await {
        Ok(r) => tracing::info!(
            reattached = r.reattached.len(),
            reconciled = r.reconciled.len(),
            "containers restored"
        ),
        Err(e) => tracing::warn!("restoring containers: {e}"),
    }
    Ok(runtime)
}

pub async fn run(args: config::DaemonArgs) -> Result<()> {
    let cfg = DaemonConfig::from_args(args)?;
    init_tracing(&cfg)?;
    if nix::unistd::geteuid().as_raw() != 0 {
        anyhow::bail!("shoal daemon must run as root");
    }
    for dir in [&cfg.data_root, &cfg.exec_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Some(parent) = cfg.socket.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let sealed_at_start =
        shoal_manager::ca::NodeSecrets::is_sealed(&cfg.data_root).unwrap_or(false);
    let images = Arc::new(images::Images::open(
        &cfg.data_root,
        &cfg.insecure_registries,
    )?);
    let runtime = open_runtime(&cfg).await?;
    let task_executor: Arc<dyn shoal_agent::worker::TaskExecutor> =
        Arc::new(attach::AttachmentAwareExecutor::new(
            executor::ContainerExecutor::new(
                images.clone(),
                shoal_runtime::container::Executor::new(runtime.clone()),
                &cfg.data_root,
                &cfg.hostname,
            ),
            &cfg.data_root,
        ));
    let bridge = bridge::open_default(&cfg, &runtime).await;
    let daemon = Arc::new(Daemon {
        images,
        runtime,
        bridge,
        task_executor,
        dek: std::sync::Mutex::new(None),
        cfg: cfg.clone(),
        slot: RwLock::new(Slot::Inactive),
        op_lock: Mutex::new(()),
        generation: AtomicU64::new(0),
        unlock_key_used: Mutex::new(None),
    });
    if sealed_at_start {
        tracing::info!("node key is sealed (autolock)");
    }
    let backend: Arc<dyn shoal_api::Backend> = Arc::new(backend::DaemonBackend(daemon.clone()));
    let server = shoal_api::Server::bind_unix(&cfg.socket, backend)
        .await
        .with_context(|| format!("binding {}", cfg.socket.display()))?;
    tracing::info!(socket = %cfg.socket.display(), "API listening");
    containers::spawn_endpoint_gc(Arc::downgrade(&daemon));
    if let Err(e) = daemon.restore().await {
        tracing::error!("could not restore the swarm state: {e:#}");
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
    };
    server.run(shutdown).await?;
    let slot = std::mem::replace(&mut *daemon.slot.write().await, Slot::Inactive);
    if let Slot::Active(node) = slot {
        node.stop().await;
    }
    bridge::shutdown(&daemon).await;
    let _ = std::fs::remove_file(&cfg.socket);
    tracing::info!("stopped");
    Ok(())
}
