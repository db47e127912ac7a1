mod common;

use std::time::{Duration, Instant};

use common::*;
use shoal_store::{Command, ProposeError};
use shoal_types::{ErrorKind, ObjectKind, Reachability};

/// Starts `n` members; member 1 initializes and adds the others as voters.
async fn cluster(
    n: u64,
    dirs: &[tempfile::TempDir],
    tweak: fn(&mut shoal_store::RaftConfig),
) -> Vec<Member> {
    let mut ms = Vec::new();
    for id in 1..=n {
        ms.push(spawn(id, dirs[(id - 1) as usize].path(), tweak).await);
    }
    ms[0].store.initialize_single().await.unwrap();
    for m in &ms[1..] {
        ms[0]
            .store
            .add_voter(m.store.node_id(), &m.addr)
            .await
            .unwrap();
    }
    ms
}

fn dirs(n: usize) -> Vec<tempfile::TempDir> {
    (0..n).map(|_| tempfile::tempdir().unwrap()).collect()
}

fn fast_reachability(c: &mut shoal_store::RaftConfig) {
    c.reachable_window_ms = 1_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_replicate_forward_fail_over_and_remove() {
    let d = dirs(3);
    let mut ms = cluster(3, &d, fast_reachability).await;
    let refs: Vec<&Member> = ms.iter().collect();
    assert_eq!(agreed_leader(&refs, Duration::from_secs(5)).await, 1);
    assert_eq!(ms[0].store.members().iter().filter(|m| m.voter).count(), 3);

    // A write on the leader shows up on the followers.
    let a = ms[0]
        .store
        .propose(create_secret("s1", "one"))
        .await
        .unwrap();
    for m in &ms[1..] {
        let ok = eventually(Duration::from_secs(5), || {
            m.store
                .read()
                .get(ObjectKind::Secret, "s1")
                .is_some_and(|o| o.version() == a.index)
        })
        .await;
        assert!(ok, "member {} did not apply the write", m.store.node_id());
    }

    // Followers send proposals and linearizable reads to the leader.
    let err = ms[1]
        .store
        .propose(create_secret("s2", "two"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProposeError::ForwardToLeader {
            leader_id: 1,
            leader_addr: ms[0].addr.clone()
        }
    );
    let err = ms[2].store.linearizable_read_barrier().await.unwrap_err();
    assert!(
        matches!(err, ProposeError::ForwardToLeader { leader_id: 1, .. }),
        "{err}"
    );
    ms[0].store.linearizable_read_barrier().await.unwrap();
    assert!(ms[0].store.read().get(ObjectKind::Secret, "s2").is_none());

    // The leader sees every member reachable.
    let ok = eventually(Duration::from_secs(3), || {
        ms[0]
            .store
            .metrics()
            .members
            .iter()
            .all(|m| m.reachability == Reachability::Reachable)
    })
    .await;
    assert!(ok, "{:?}", ms[0].store.metrics());

    // Stop the leader: a new one within a few seconds, with the acknowledged write.
    let old = ms.remove(0);
    let stopped = Instant::now();
    old.stop().await;
    let refs: Vec<&Member> = ms.iter().collect();
    let leader = agreed_leader(&refs, Duration::from_secs(5)).await;
    let failover = stopped.elapsed();
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    let lead = ms.iter().find(|m| m.store.node_id() == leader).unwrap();
    let other = ms.iter().find(|m| m.store.node_id() != leader).unwrap();
    assert!(lead.store.read().get(ObjectKind::Secret, "s1").is_some());
    let b = lead
        .store
        .propose(create_secret("s3", "three"))
        .await
        .unwrap();
    assert!(b.index > a.index);

    // Old leader shows as unreachable; removing the live follower would lose quorum.
    let ok = eventually(Duration::from_secs(3), || {
        lead.store
            .metrics()
            .members
            .iter()
            .any(|m| m.node_id == 1 && m.reachability == Reachability::Unreachable)
    })
    .await;
    assert!(ok, "{:?}", lead.store.metrics());
    let err = lead
        .store
        .remove_voter(other.store.node_id())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProposeError::Rejected(ref e) if e.kind == ErrorKind::Unavailable),
        "{err}"
    );
    // Removing the dead one is fine and leaves a working 2-member cluster.
    lead.store.remove_voter(1).await.unwrap();
    let ids: Vec<u64> = lead.store.members().iter().map(|m| m.node_id).collect();
    assert!(!ids.contains(&1), "{ids:?}");
    assert_eq!(ids.len(), 2);
    lead.store
        .propose(create_secret("s4", "four"))
        .await
        .unwrap();
    let err = lead.store.remove_voter(99).await.unwrap_err();
    assert!(
        matches!(err, ProposeError::Rejected(ref e) if e.kind == ErrorKind::NotFound),
        "{err}"
    );
    for m in ms {
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_member_catches_up_by_chunked_snapshot() {
    fn small_snapshots(c: &mut shoal_store::RaftConfig) {
        c.snapshot_every = 50;
        c.keep_logs_after_snapshot = 10;
        // Small chunks so the snapshot crosses the wire in many pieces.
        c.snapshot_chunk_bytes = 4096;
    }
    let d = dirs(4);
    let ms = cluster(3, &d, small_snapshots).await;
    for i in 0..200 {
        ms[0]
            .store
            .propose(create_secret(&format!("s{i}"), &format!("name-{i}")))
            .await
            .unwrap();
    }
    let ok = eventually(Duration::from_secs(10), || {
        let m = ms[0].store.metrics();
        m.snapshot_index.is_some_and(|s| s >= 150)
    })
    .await;
    assert!(ok, "no snapshot built: {:?}", ms[0].store.metrics());

    let fourth = spawn(4, d[3].path(), small_snapshots).await;
    ms[0].store.add_voter(4, &fourth.addr).await.unwrap();
    let ok = eventually(Duration::from_secs(10), || {
        fourth.store.read().count(ObjectKind::Secret) == 200
    })
    .await;
    assert!(
        ok,
        "4th member has {} secrets",
        fourth.store.read().count(ObjectKind::Secret)
    );
    // It got there through a snapshot: its log starts after the leader's purge point.
    let m4 = fourth.store.metrics();
    assert!(m4.snapshot_index.is_some_and(|s| s >= 150), "{m4:?}");
    assert_eq!(ms[0].store.members().iter().filter(|m| m.voter).count(), 4);
    // And keeps following normal replication.
    let last = ms[0]
        .store
        .propose(create_secret("late", "late"))
        .await
        .unwrap();
    let ok = eventually(Duration::from_secs(5), || {
        fourth
            .store
            .read()
            .get(ObjectKind::Secret, "late")
            .is_some_and(|o| o.version() == last.index)
    })
    .await;
    assert!(ok);
    fourth.stop().await;
    for m in ms {
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_new_cluster_on_a_survivor_keeps_state() {
    let d = dirs(3);
    let ms = cluster(3, &d, |c| c.snapshot_every = 20).await;
    for i in 0..30 {
        ms[0]
            .store
            .propose(create_secret(&format!("s{i}"), &format!("n{i}")))
            .await
            .unwrap();
    }
    let last = ms[0]
        .store
        .propose(create_secret("last", "last"))
        .await
        .unwrap();
    // Wait until member 2 has the last write, then everything goes down.
    let ok = eventually(Duration::from_secs(5), || {
        ms[1].store.read().get(ObjectKind::Secret, "last").is_some()
    })
    .await;
    assert!(ok);
    let survivor_addr = ms[1].addr.clone();
    for m in ms {
        m.stop().await;
    }

    let mut cfg = test_config(2, &survivor_addr, d[1].path());
    cfg.force_new_cluster = true;
    let m = spawn_at(cfg).await;
    let refs = [&m];
    assert_eq!(agreed_leader(&refs, Duration::from_secs(5)).await, 2);
    let ids: Vec<u64> = m.store.members().iter().map(|x| x.node_id).collect();
    assert_eq!(ids, vec![2]);
    let view = m.store.read();
    assert_eq!(view.count(ObjectKind::Secret), 31);
    assert_eq!(
        view.get(ObjectKind::Secret, "last").unwrap().version(),
        last.index
    );
    let next = m
        .store
        .propose(Command::update(secret("last", "renamed"), Some(last.index)))
        .await
        .unwrap();
    assert!(next.index > last.index);
    // Old member IDs cannot come back.
    let err = m.store.add_voter(1, "127.0.0.1:1").await.unwrap_err();
    assert!(
        matches!(err, ProposeError::Rejected(ref e) if e.kind == ErrorKind::InvalidArgument),
        "{err}"
    );

    // A normal restart afterwards keeps the one-member cluster and its state.
    let cfg = test_config(2, &m.addr, &m.dir);
    m.stop().await;
    let m = spawn_at(cfg).await;
    assert_eq!(agreed_leader(&[&m], Duration::from_secs(5)).await, 2);
    let ok = eventually(Duration::from_secs(5), || {
        m.store
            .read()
            .find_by_name(ObjectKind::Secret, "renamed")
            .is_some()
    })
    .await;
    assert!(ok);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_removes_itself_and_followers_watch() {
    let d = dirs(3);
    let ms = cluster(3, &d, fast_reachability).await;
    let refs: Vec<&Member> = ms.iter().collect();
    assert_eq!(agreed_leader(&refs, Duration::from_secs(5)).await, 1);

    // A follower's watch sees the leader's writes, gap-free after its view.
    let (view, mut rx) = ms[2].store.view_and_watch();
    let a = ms[0]
        .store
        .propose(create_secret("w1", "w1"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event in time")
        .unwrap();
    assert_eq!(ev.object.id(), "w1");
    assert_eq!(ev.index, a.index);
    assert!(ev.index > view.index());

    // Wait until the leader has heard from both followers, then it leaves.
    let ok = eventually(Duration::from_secs(3), || {
        ms[0]
            .store
            .metrics()
            .members
            .iter()
            .all(|m| m.reachability == Reachability::Reachable)
    })
    .await;
    assert!(ok);
    ms[0].store.remove_voter(1).await.unwrap();
    let rest: Vec<&Member> = ms[1..].iter().collect();
    let leader = agreed_leader(&rest, Duration::from_secs(6)).await;
    assert_ne!(leader, 1);
    let lead = rest.iter().find(|m| m.store.node_id() == leader).unwrap();
    let ids: Vec<u64> = lead.store.members().iter().map(|m| m.node_id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&1));
    lead.store.propose(create_secret("w2", "w2")).await.unwrap();
    for m in ms {
        m.stop().await;
    }
}
