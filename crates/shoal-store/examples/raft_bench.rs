//! Three in-process store members on loopback (plain-text gRPC, redb in temp dirs, default
//! timings): committed writes/s with 1 and 16 concurrent clients, and leader failover time
//! (median of 5: stop the leader, time until a write succeeds on the new one).
//!
//! Run: `cargo run --release -p shoal-store --example raft_bench [seconds-per-throughput-run]`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shoal_store::{Command, ProposeError, RaftConfig, Store, plaintext_channels};
use shoal_types::meta::Annotations;
use shoal_types::{Object, Secret, SecretSpec};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

struct Member {
    store: Store,
    cfg: RaftConfig,
    stop_server: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

async fn start(cfg: RaftConfig) -> anyhow::Result<Member> {
    // A restarted member rebinds its old port; allow a moment for the old socket to go.
    let mut tries = 0;
    let listener = loop {
        match TcpListener::bind(&cfg.addr).await {
            Ok(l) => break l,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).context(format!("binding {}", cfg.addr)),
        }
    };
    let store = Store::start(cfg.clone(), plaintext_channels()).await?;
    let svc = store.grpc_service();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Member {
        store,
        cfg,
        stop_server: tx,
        server,
    })
}

impl Member {
    async fn stop(self) -> RaftConfig {
        self.store.shutdown().await;
        let _ = self.stop_server.send(());
        self.server.abort();
        let _ = self.server.await;
        self.cfg
    }
}

fn secret(id: String) -> Object {
    Object::Secret(Secret {
        spec: SecretSpec {
            annotations: Annotations::named(id.clone()),
            ..SecretSpec::default()
        },
        id,
        ..Secret::default()
    })
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn next_write() -> Command {
    Command::create(secret(format!(
        "bench-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )))
}

fn leader_of(ms: &[Member]) -> Option<&Member> {
    ms.iter().find(|m| m.store.is_leader())
}

async fn wait_leader(ms: &[Member], timeout: Duration) -> anyhow::Result<&Member> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(m) = leader_of(ms) {
            return Ok(m);
        }
        if Instant::now() > deadline {
            bail!("no leader within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn throughput(store: &Store, clients: usize, secs: u64) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let s = store.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                s.propose(next_write()).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), ProposeError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().context("seconds must be a number")?,
        None => 5,
    };
    let tmp = tempfile::tempdir()?;
    let mut ms = Vec::new();
    for id in 1..=3u64 {
        let probe = TcpListener::bind("127.0.0.1:0").await?;
        let addr = probe.local_addr()?.to_string();
        drop(probe);
        let dir: PathBuf = tmp.path().join(format!("m{id}"));
        ms.push(start(RaftConfig::new(id, addr, dir)).await?);
    }
    ms[0].store.initialize_single().await?;
    for i in 1..3 {
        let (id, addr) = (ms[i].cfg.node_id, ms[i].cfg.addr.clone());
        ms[0].store.add_voter(id, &addr).await?;
    }
    let cfg = &ms[0].cfg;
    println!(
        "3 members on loopback, redb log with group commit (fsync), heartbeat {} ms, election timeout {}-{} ms (defaults)",
        cfg.heartbeat_ms, cfg.election_min_ms, cfg.election_max_ms
    );

    let leader = wait_leader(&ms, Duration::from_secs(5))
        .await?
        .store
        .clone();
    for clients in [1usize, 16] {
        let rate = throughput(&leader, clients, secs).await?;
        println!("{clients:>2} client(s): {rate:.0} committed writes/s");
    }

    let mut times = Vec::new();
    for round in 1..=5 {
        let idx = ms
            .iter()
            .position(|m| m.store.is_leader())
            .context("no leader before failover")?;
        let old = ms.remove(idx);
        let t0 = Instant::now();
        let cfg = old.stop().await;
        loop {
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("no write succeeded within 30 s of stopping the leader");
            }
            match leader_of(&ms) {
                Some(m) => match m.store.propose(next_write()).await {
                    Ok(_) => break,
                    Err(_) => continue,
                },
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        let took = t0.elapsed();
        println!("failover {round}: {} ms", took.as_millis());
        times.push(took);
        // Bring the old leader back as a follower before the next round.
        let back = start(cfg).await?;
        let target = leader_of(&ms).map(|m| m.store.read().index()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while back.store.read().index() < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ms.push(back);
    }
    times.sort();
    println!("leader failover median of 5: {} ms", times[2].as_millis());
    for m in ms {
        m.stop().await;
    }
    Ok(())
}
