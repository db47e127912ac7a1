//! `shoal daemon`: serves the API on a unix socket and runs this node's part of the swarm.

pub mod active;
pub mod addr;
mod backend;
pub mod images;
pub mod config;
pub mod describe;
pub mod local_state;
mod named_data;
pub mod swarm;

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
    pub images: images::Images,
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
    let sealed_at_start = shoal_manager::ca::NodeSecrets::is_sealed(&cfg.data_root).unwrap_or(false);
    let images = images::Images::open(&cfg.data_root, &cfg.insecure_registries)?;
    let daemon = Arc::new(Daemon {
        images,
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
    let _ = std::fs::remove_file(&cfg.socket);
    tracing::info!("stopped");
    Ok(())
}
