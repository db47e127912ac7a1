mod common;

use std::time::Duration;

use common::*;
use shoal_store::{Change, Command, EventKind, ProposeError};
use shoal_types::{ErrorKind, ObjectKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_write_restart_keeps_state() {
    let tmp = tempfile::tempdir().unwrap();
    let m = spawn(1, tmp.path(), |_| {}).await;
    m.store.initialize_single().await.unwrap();
    assert!(m.store.is_leader());
    // A second initialize is refused with a clear error.
    let again = m.store.initialize_single().await.unwrap_err();
    assert!(matches!(again, ProposeError::Rejected(ref e) if e.kind == ErrorKind::Conflict));

    let mut watch = m.store.watch();
    let applied = m.store.propose(create_secret("s1", "pw")).await.unwrap();
    let v1 = applied.index;
    assert_eq!(applied.objects[0].version(), v1);
    let ev = watch.recv().await.unwrap();
    assert_eq!(ev.kind, EventKind::Created);
    assert_eq!(ev.index, v1);
    assert_eq!(ev.object.id(), "s1");

    let view = m.store.read();
    assert_eq!(view.get(ObjectKind::Secret, "s1").unwrap().version(), v1);
    assert_eq!(
        view.find_by_name(ObjectKind::Secret, "pw").unwrap().id(),
        "s1"
    );

    // Update with the right version, then a second object.
    let upd = m
        .store
        .propose(Command::update(secret("s1", "pw2"), Some(v1)))
        .await
        .unwrap();
    m.store.propose(create_secret("s2", "other")).await.unwrap();
    m.store.linearizable_read_barrier().await.unwrap();

    let cfg = test_config(1, &m.addr, &m.dir);
    m.stop().await;

    let m = spawn_at(cfg).await;
    assert!(m.store.wait_leader(Duration::from_secs(5)).await.is_some());
    let ok = eventually(Duration::from_secs(5), || {
        let v = m.store.read();
        v.get(ObjectKind::Secret, "s1").map(|o| o.version()) == Some(upd.index)
            && v.get(ObjectKind::Secret, "s2").is_some()
            && v.find_by_name(ObjectKind::Secret, "pw2").is_some()
    })
    .await;
    assert!(
        ok,
        "state after restart: {:?}",
        m.store.read().iter().collect::<Vec<_>>()
    );
    // Writes continue after the restart, at higher indexes.
    let d = m
        .store
        .propose(Command::delete(ObjectKind::Secret, "s2", None))
        .await
        .unwrap();
    assert!(d.index > upd.index);
    assert!(m.store.read().get(ObjectKind::Secret, "s2").is_none());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_commands_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let m = spawn(7, tmp.path(), |_| {}).await;
    m.store.initialize_single().await.unwrap();
    let a = m.store.propose(create_secret("a", "pw")).await.unwrap();

    // Duplicate name.
    let err = m.store.propose(create_secret("b", "pw")).await.unwrap_err();
    assert!(
        matches!(err, ProposeError::Rejected(ref e) if e.kind == ErrorKind::Conflict),
        "{err}"
    );
    // Duplicate ID.
    let err = m.store.propose(create_secret("a", "x")).await.unwrap_err();
    assert!(
        matches!(err, ProposeError::Rejected(ref e) if e.kind == ErrorKind::Conflict),
        "{err}"
    );
    // Stale version: out of sequence, and the atomic batch leaves the new object out too.
    let cmd = Command::new(vec![
        Change::Create(secret("c", "c")),
        Change::Update {
            object: secret("a", "renamed"),
            expected_version: Some(a.index - 1),
        },
    ]);
    let err = m.store.propose(cmd).await.unwrap_err();
    assert!(
        matches!(err, ProposeError::Rejected(ref e) if e.kind == ErrorKind::OutOfSequence),
        "{err}"
    );
    assert_eq!(err.to_string(), "update out of sequence");
    // Missing objects.
    let err = m
        .store
        .propose(Command::delete(ObjectKind::Secret, "nope", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProposeError::Rejected(ref e) if e.kind == ErrorKind::NotFound),
        "{err}"
    );
    let err = m
        .store
        .propose(Command::update(secret("nope", "n"), None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProposeError::Rejected(ref e) if e.kind == ErrorKind::NotFound),
        "{err}"
    );

    let view = m.store.read();
    assert_eq!(view.count(ObjectKind::Secret), 1);
    let a_now = view.get(ObjectKind::Secret, "a").unwrap();
    assert_eq!(a_now.version(), a.index);
    assert_eq!(a_now.name(), Some("pw"));
    assert!(view.get(ObjectKind::Secret, "c").is_none());
    // The refused entries still took log indexes.
    assert!(view.index() > a.index);
    m.stop().await;
}
