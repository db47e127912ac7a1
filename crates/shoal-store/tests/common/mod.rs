//! In-process cluster harness: each member is a `Store` plus a plain-text tonic server on an
//! ephemeral 127.0.0.1 port, with its state in a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shoal_store::{Command, RaftConfig, Store, plaintext_channels};
use shoal_types::meta::Annotations;
use shoal_types::{Object, Secret, SecretSpec};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

pub struct Member {
    pub store: Store,
    pub addr: String,
    pub dir: PathBuf,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Test timings: fast elections keep the suite short; snapshots every `snapshot_every` entries.
pub fn test_config(id: u64, addr: &str, dir: &Path) -> RaftConfig {
    let mut cfg = RaftConfig::new(id, addr, dir);
    cfg.heartbeat_ms = 100;
    cfg.election_min_ms = 400;
    cfg.election_max_ms = 800;
    cfg.propose_timeout_ms = 3_000;
    cfg.catch_up_timeout_ms = 20_000;
    cfg
}

pub async fn start_member(cfg: RaftConfig, listener: TcpListener) -> Member {
    let addr = cfg.addr.clone();
    let dir = cfg.dir.clone();
    let store = Store::start(cfg, plaintext_channels())
        .await
        .expect("store starts");
    let (tx, rx) = oneshot::channel();
    let svc = store.grpc_service();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await;
    });
    Member {
        store,
        addr,
        dir,
        stop_server: Some(tx),
        server: Some(server),
    }
}

/// A member on a fresh ephemeral port.
pub async fn spawn(id: u64, dir: &Path, tweak: impl FnOnce(&mut RaftConfig)) -> Member {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let mut cfg = test_config(id, &addr, dir);
    tweak(&mut cfg);
    start_member(cfg, listener).await
}

/// A member on a given address (restarts keep their address).
pub async fn spawn_at(cfg: RaftConfig) -> Member {
    let deadline = Instant::now() + Duration::from_secs(5);
    let listener = loop {
        match TcpListener::bind(&cfg.addr).await {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("binding {}: {e}", cfg.addr),
        }
    };
    start_member(cfg, listener).await
}

impl Member {
    /// Stops Raft and the server; the member is gone from the cluster's point of view.
    pub async fn stop(mut self) {
        self.store.shutdown().await;
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
            let _ = h.await;
        }
    }
}

pub fn secret(id: &str, name: &str) -> Object {
    Object::Secret(Secret {
        id: id.into(),
        spec: SecretSpec {
            annotations: Annotations::named(name),
            ..SecretSpec::default()
        },
        ..Secret::default()
    })
}

pub fn create_secret(id: &str, name: &str) -> Command {
    Command::create(secret(id, name))
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The member that leads, once all given members agree on one.
pub async fn agreed_leader(members: &[&Member], timeout: Duration) -> u64 {
    let mut leader = 0;
    let ok = eventually(timeout, || {
        let ls: Vec<Option<u64>> = members
            .iter()
            .map(|m| m.store.leader().map(|(id, _)| id))
            .collect();
        match ls.first().copied().flatten() {
            Some(l) if ls.iter().all(|x| *x == Some(l)) => {
                leader = l;
                members
                    .iter()
                    .any(|m| m.store.node_id() == l && m.store.is_leader())
            }
            _ => false,
        }
    })
    .await;
    assert!(ok, "members did not agree on a leader within {timeout:?}");
    leader
}
