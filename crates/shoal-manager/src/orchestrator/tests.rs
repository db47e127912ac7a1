//! Orchestrator + scheduler behaviour on a simulated cluster.

use shoal_types::service::{
    FailureAction, ModeKind, ReplicatedJob, ServiceMode, UpdateConfig, UpdateOrder, UpdateState,
};
use shoal_types::task_spec::{Placement, PlacementPreference, RestartCondition, SpreadOver};
use shoal_types::{NodeAvailability, NodeState, TaskState};

use super::testutil::{Sim, restart, spec};

fn three_nodes() -> Sim {
    let mut sim = Sim::new();
    for n in ["n1", "n2", "n3"] {
        sim.add_node(n, &[]);
    }
    sim
}

#[test]
fn replicas_spread_evenly() {
    let mut sim = three_nodes();
    let id = sim.create(spec("web", "bb:1", 6));
    sim.run(4);
    let per = sim.running_per_node(&id);
    assert_eq!(
        per.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{per:?}"
    );
    let tasks = sim.tasks(&id);
    let mut slots: Vec<u64> = tasks.iter().map(|t| t.slot).collect();
    slots.sort();
    assert_eq!(slots, vec![1, 2, 3, 4, 5, 6]);
    for t in &tasks {
        assert!(t.spec.container_spec.is_some());
        assert_eq!(t.spec_version, sim.service(&id).spec_version);
        assert_eq!(t.service_annotations.name, "web");
    }
}

#[test]
fn scale_up_and_down() {
    let mut sim = three_nodes();
    let id = sim.create(spec("web", "bb:1", 2));
    sim.run(4);
    assert_eq!(sim.running(&id).len(), 2);
    sim.update(&id, |s| s.mode = ServiceMode::replicated(7));
    sim.run(4);
    assert_eq!(sim.running(&id).len(), 7);
    assert_eq!(
        sim.service(&id).update_status,
        None,
        "a scale is not an update"
    );
    sim.update(&id, |s| s.mode = ServiceMode::replicated(3));
    sim.run(4);
    assert_eq!(sim.running(&id).len(), 3);
    let per = sim.running_per_node(&id);
    assert!(per.values().all(|c| *c == 1), "{per:?}");
    // Removed tasks are reaped once stopped.
    assert!(
        sim.tasks(&id)
            .iter()
            .all(|t| t.desired_state < TaskState::Remove)
    );
}

#[test]
fn failed_task_is_replaced_after_delay() {
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 1);
    s.task_template.restart_policy = Some(restart(RestartCondition::Any, 3, 0));
    let id = sim.create(s);
    sim.run(3);
    let first = sim.running(&id)[0].clone();
    // The container dies.
    sim.failing_images.push("bb:1".into());
    sim.run(1);
    sim.failing_images.clear();
    sim.step();
    let tasks = sim.tasks(&id);
    assert_eq!(tasks.len(), 2);
    let old = tasks.iter().find(|t| t.id == first.id).unwrap();
    assert_eq!(old.status.state, TaskState::Failed);
    assert_eq!(old.desired_state, TaskState::Shutdown);
    let new = tasks.iter().find(|t| t.id != first.id).unwrap();
    assert_eq!(new.slot, first.slot);
    assert_eq!(
        new.desired_state,
        TaskState::Ready,
        "held for the restart delay"
    );
    sim.run(2);
    assert!(sim.running(&id).is_empty(), "still within the 3 s delay");
    sim.run(4);
    assert_eq!(sim.running(&id).len(), 1);
}

#[test]
fn restart_condition_none_and_max_attempts() {
    let mut sim = three_nodes();
    let mut s = spec("once", "bad:1", 1);
    s.task_template.restart_policy = Some(restart(RestartCondition::None, 0, 0));
    let id = sim.create(s);
    sim.failing_images.push("bad:1".into());
    sim.run(10);
    assert_eq!(sim.tasks(&id).len(), 1, "condition none: never replaced");

    let mut s = spec("twice", "bad:1", 1);
    s.task_template.restart_policy = Some(restart(RestartCondition::OnFailure, 0, 2));
    let id = sim.create(s);
    sim.run(20);
    // The first run plus two restarts.
    assert_eq!(sim.tasks(&id).len(), 3);
}

#[test]
fn drain_moves_tasks_and_down_node_is_replaced() {
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 3);
    s.task_template.restart_policy = Some(restart(RestartCondition::Any, 1, 0));
    let id = sim.create(s);
    sim.run(4);
    sim.edit_node("n1", |n| n.spec.availability = NodeAvailability::Drain);
    sim.run(5);
    let per = sim.running_per_node(&id);
    assert!(!per.contains_key("n1"), "{per:?}");
    assert_eq!(sim.running(&id).len(), 3);
    sim.edit_node("n2", |n| n.status.state = NodeState::Down);
    sim.run(6);
    let live: Vec<_> = sim
        .running(&id)
        .into_iter()
        .filter(|t| t.node_id == "n3")
        .collect();
    assert_eq!(live.len(), 3, "all on the only usable node");
}

#[test]
fn global_service_follows_nodes() {
    let mut sim = three_nodes();
    let mut s = spec("agent", "bb:1", 1);
    s.mode = ServiceMode::global();
    let id = sim.create(s);
    sim.run(3);
    assert_eq!(sim.running(&id).len(), 3);
    assert!(sim.tasks(&id).iter().all(|t| t.slot == 0));
    sim.add_node("n4", &[]);
    sim.run(3);
    assert_eq!(sim.running_per_node(&id).get("n4"), Some(&1));
    sim.edit_node("n1", |n| n.spec.availability = NodeAvailability::Drain);
    sim.run(3);
    assert_eq!(sim.running(&id).len(), 3);
    assert!(!sim.running_per_node(&id).contains_key("n1"));
}

#[test]
fn constraints_max_replicas_and_explanations() {
    let mut sim = Sim::new();
    sim.add_node("a", &[("zone", "east")]);
    sim.add_node("b", &[("zone", "east")]);
    sim.add_node("c", &[("zone", "west")]);
    let mut s = spec("east", "bb:1", 4);
    s.task_template.placement = Some(Placement {
        constraints: vec!["node.labels.zone==east".into()],
        max_replicas: 1,
        ..Placement::default()
    });
    let id = sim.create(s);
    sim.run(4);
    let per = sim.running_per_node(&id);
    assert_eq!(per.len(), 2);
    assert!(per.values().all(|c| *c == 1));
    let stuck: Vec<_> = sim
        .tasks(&id)
        .into_iter()
        .filter(|t| t.status.state == TaskState::Pending)
        .collect();
    assert_eq!(stuck.len(), 2);
    assert_eq!(
        stuck[0].status.err,
        "no suitable node (scheduling constraints not satisfied on 1 node; max replicas per node limit exceed on 2 nodes)"
    );

    let mut s = spec("nowhere", "bb:1", 1);
    s.task_template.placement = Some(Placement {
        constraints: vec!["node.labels.zone==north".into()],
        ..Placement::default()
    });
    s.task_template.resources = Some(shoal_types::task_spec::ResourceRequirements {
        reservations: Some(shoal_types::node::Resources {
            memory_bytes: 4 << 30,
            ..Default::default()
        }),
        ..Default::default()
    });
    sim.edit_node("c", |n| n.spec.availability = NodeAvailability::Pause);
    let id = sim.create(s);
    sim.run(2);
    let t = &sim.tasks(&id)[0];
    assert_eq!(t.status.state, TaskState::Pending);
    assert_eq!(
        t.status.err,
        "no suitable node (1 node not available; scheduling constraints not satisfied on 2 nodes)"
    );
    // A node that fits appears: the task is placed.
    sim.add_node("d", &[("zone", "north")]);
    sim.run(2);
    assert_eq!(sim.running(&id).len(), 1);
}

#[test]
fn resources_are_reserved() {
    let mut sim = three_nodes();
    let mut s = spec("big", "bb:1", 5);
    s.task_template.resources = Some(shoal_types::task_spec::ResourceRequirements {
        reservations: Some(shoal_types::node::Resources {
            nano_cpus: 3_000_000_000,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = sim.create(s);
    sim.run(3);
    assert_eq!(sim.running(&id).len(), 3);
    let pending = sim
        .tasks(&id)
        .into_iter()
        .find(|t| t.status.state == TaskState::Pending)
        .unwrap();
    assert_eq!(
        pending.status.err,
        "no suitable node (insufficient resources on 3 nodes)"
    );
}

#[test]
fn spread_preference_balances_label_groups() {
    let mut sim = Sim::new();
    for (n, z) in [("a", "z1"), ("b", "z1"), ("c", "z1"), ("d", "z2")] {
        sim.add_node(n, &[("zone", z)]);
    }
    sim.add_node("e", &[]);
    let mut s = spec("web", "bb:1", 6);
    s.task_template.placement = Some(Placement {
        preferences: vec![PlacementPreference {
            spread: Some(SpreadOver {
                spread_descriptor: "node.labels.zone".into(),
            }),
        }],
        ..Placement::default()
    });
    let id = sim.create(s);
    sim.run(3);
    let per = sim.running_per_node(&id);
    let z1: usize = ["a", "b", "c"].iter().filter_map(|n| per.get(*n)).sum();
    assert_eq!(z1, 2, "{per:?}");
    assert_eq!(per.get("d"), Some(&2));
    assert_eq!(
        per.get("e"),
        Some(&2),
        "nodes without the label form a group"
    );
}

fn rolling(failure_action: FailureAction, order: UpdateOrder) -> UpdateConfig {
    UpdateConfig {
        parallelism: 1,
        delay: 0,
        failure_action,
        monitor: 2_000_000_000,
        max_failure_ratio: 0.0,
        order,
    }
}

#[test]
fn rolling_update_completes() {
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 3);
    s.update_config = Some(rolling(FailureAction::Pause, UpdateOrder::StopFirst));
    let id = sim.create(s);
    sim.run(4);
    sim.update(&id, |s| {
        if let Some(c) = &mut s.task_template.container_spec {
            c.image = "bb:2".into();
        }
    });
    assert_eq!(
        sim.service(&id).update_status.and_then(|u| u.state),
        Some(UpdateState::Updating)
    );
    // Parallelism 1: never more than one slot in flight.
    for _ in 0..30 {
        sim.run(1);
        let new_not_running = sim
            .tasks(&id)
            .iter()
            .filter(|t| {
                t.spec.image() == "bb:2"
                    && t.desired_state <= TaskState::Running
                    && t.status.state < TaskState::Running
            })
            .count();
        assert!(new_not_running <= 1);
    }
    let running = sim.running(&id);
    assert_eq!(running.len(), 3);
    assert!(running.iter().all(|t| t.spec.image() == "bb:2"));
    let us = sim.service(&id).update_status.unwrap();
    assert_eq!(us.state, Some(UpdateState::Completed));
    assert!(us.completed_at.is_some());
}

#[test]
fn failing_update_pauses() {
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 3);
    s.update_config = Some(rolling(FailureAction::Pause, UpdateOrder::StopFirst));
    let id = sim.create(s);
    sim.run(4);
    sim.failing_images.push("bad:1".into());
    sim.update(&id, |s| {
        if let Some(c) = &mut s.task_template.container_spec {
            c.image = "bad:1".into();
        }
    });
    sim.run(15);
    let us = sim.service(&id).update_status.unwrap();
    assert_eq!(us.state, Some(UpdateState::Paused), "{us:?}");
    assert!(
        us.message.contains("update paused due to failure"),
        "{}",
        us.message
    );
    // The update stopped before it reached every slot (the next slot may already have started
    // while the first new task was running, as in swarmkit with no delay).
    let old_running = sim
        .running(&id)
        .iter()
        .filter(|t| t.spec.image() == "bb:1")
        .count();
    assert!(old_running >= 1, "{old_running}");
    // Paused means paused: nothing further is replaced.
    sim.run(10);
    let still = sim
        .running(&id)
        .iter()
        .filter(|t| t.spec.image() == "bb:1")
        .count();
    assert_eq!(still, old_running);
}

#[test]
fn failing_update_rolls_back() {
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 3);
    s.update_config = Some(rolling(FailureAction::Rollback, UpdateOrder::StopFirst));
    let id = sim.create(s);
    sim.run(4);
    sim.failing_images.push("bad:1".into());
    sim.update(&id, |s| {
        if let Some(c) = &mut s.task_template.container_spec {
            c.image = "bad:1".into();
        }
    });
    sim.run(8);
    let svc = sim.service(&id);
    assert_eq!(svc.spec.task_template.image(), "bb:1", "spec rolled back");
    sim.run(20);
    let us = sim.service(&id).update_status.unwrap();
    assert_eq!(us.state, Some(UpdateState::RollbackCompleted), "{us:?}");
    let running = sim.running(&id);
    assert_eq!(running.len(), 3);
    assert!(running.iter().all(|t| t.spec.image() == "bb:1"));
}

#[test]
fn start_first_keeps_old_task_until_new_runs() {
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 1);
    s.update_config = Some(rolling(FailureAction::Pause, UpdateOrder::StartFirst));
    let id = sim.create(s);
    sim.run(3);
    let old = sim.running(&id)[0].clone();
    sim.update(&id, |s| {
        if let Some(c) = &mut s.task_template.container_spec {
            c.image = "bb:2".into();
        }
    });
    sim.step(); // new task created and assigned
    let tasks = sim.tasks(&id);
    assert_eq!(tasks.len(), 2);
    let o = tasks.iter().find(|t| t.id == old.id).unwrap();
    assert_eq!(o.desired_state, TaskState::Running, "old keeps running");
    sim.agents(); // new one runs
    sim.step();
    let o = sim.tasks(&id).into_iter().find(|t| t.id == old.id).unwrap();
    assert_eq!(
        o.desired_state,
        TaskState::Shutdown,
        "old stops once the new runs"
    );
}

#[test]
fn stop_first_holds_new_task_until_old_stops() {
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 1);
    s.update_config = Some(rolling(FailureAction::Pause, UpdateOrder::StopFirst));
    let id = sim.create(s);
    sim.run(3);
    sim.update(&id, |s| s.task_template.force_update += 1);
    sim.step();
    let new = sim
        .tasks(&id)
        .into_iter()
        .find(|t| t.desired_state == TaskState::Ready)
        .expect("replacement held at READY");
    sim.agents(); // old shuts down, new prepares
    sim.step();
    let new = sim.tasks(&id).into_iter().find(|t| t.id == new.id).unwrap();
    assert_eq!(new.desired_state, TaskState::Running);
    sim.run(2);
    assert_eq!(sim.running(&id).len(), 1);
}

#[test]
fn replicated_job_runs_to_completion() {
    let mut sim = three_nodes();
    let mut s = spec("job", "bb:1", 1);
    s.mode = ServiceMode {
        replicated_job: Some(ReplicatedJob {
            max_concurrent: Some(2),
            total_completions: Some(5),
        }),
        ..ServiceMode::default()
    };
    let id = sim.create(s);
    assert_eq!(sim.service(&id).mode_kind(), Some(ModeKind::ReplicatedJob));
    let mut max_active = 0;
    for _ in 0..20 {
        sim.run(1);
        let active = sim
            .tasks(&id)
            .iter()
            .filter(|t| {
                t.status.state <= TaskState::Running && t.desired_state <= TaskState::Complete
            })
            .count();
        max_active = max_active.max(active);
    }
    assert!(max_active <= 2);
    let done = sim
        .tasks(&id)
        .iter()
        .filter(|t| t.status.state == TaskState::Complete)
        .count();
    assert_eq!(done, 5);
    let st = crate::control::service_status(&sim.mem, &sim.service(&id));
    assert_eq!(st.completed_tasks, 5);
    assert_eq!(st.desired_tasks, 0);
}

#[test]
fn reaper_keeps_history_limit() {
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 1);
    s.update_config = Some(UpdateConfig {
        monitor: 1,
        ..rolling(FailureAction::Continue, UpdateOrder::StopFirst)
    });
    let id = sim.create(s);
    sim.run(3);
    for _ in 0..8 {
        sim.update(&id, |s| s.task_template.force_update += 1);
        sim.run(4);
    }
    let tasks = sim.tasks(&id);
    assert_eq!(tasks.len(), 5, "default history limit");
    assert_eq!(sim.running(&id).len(), 1);
}

#[test]
fn removed_service_tasks_are_reaped() {
    let mut sim = three_nodes();
    let id = sim.create(spec("web", "bb:1", 3));
    sim.run(3);
    let changes = crate::control::remove_service(&sim.mem, "web").unwrap();
    assert_eq!(
        changes.len(),
        1,
        "the delete only: orchestration removes the tasks"
    );
    sim.mem.apply(&changes).unwrap();
    sim.run(3);
    assert!(sim.tasks(&id).is_empty());
}

#[test]
fn node_label_change_moves_constrained_tasks() {
    let mut sim = Sim::new();
    sim.add_node("a", &[("disk", "ssd")]);
    sim.add_node("b", &[("disk", "ssd")]);
    let mut s = spec("db", "bb:1", 2);
    s.task_template.restart_policy = Some(restart(RestartCondition::Any, 0, 0));
    s.task_template.placement = Some(Placement {
        constraints: vec!["node.labels.disk==ssd".into()],
        ..Placement::default()
    });
    let id = sim.create(s);
    sim.run(3);
    assert_eq!(sim.running(&id).len(), 2);
    sim.edit_node("a", |n| {
        n.spec
            .annotations
            .labels
            .insert("disk".into(), "hdd".into());
    });
    sim.run(4);
    let per = sim.running_per_node(&id);
    assert_eq!(per.get("b"), Some(&2), "{per:?}");
}

#[test]
fn held_task_left_by_a_previous_leader_is_released() {
    // State-derived decisions: a replacement held at READY (as an old leader left it) is
    // released by whichever manager runs the next pass.
    let mut sim = three_nodes();
    let mut s = spec("web", "bb:1", 1);
    s.task_template.restart_policy = Some(restart(RestartCondition::Any, 2, 0));
    let id = sim.create(s);
    sim.run(3);
    sim.failing_images.push("bb:1".into());
    sim.run(1);
    sim.failing_images.clear();
    sim.step();
    assert!(
        sim.tasks(&id)
            .iter()
            .any(|t| t.desired_state == TaskState::Ready)
    );
    // A "new leader" knows nothing but the store.
    let snapshot = sim.mem.clone();
    let mut fresh = Sim::new();
    fresh.mem = snapshot;
    fresh.now = sim.now + chrono::Duration::seconds(3);
    fresh.run(3);
    assert_eq!(fresh.running(&id).len(), 1);
}

#[test]
fn host_mode_ports_one_per_node() {
    let mut sim = three_nodes();
    let mut s = spec("edge", "bb:1", 4);
    s.endpoint_spec = Some(shoal_types::service::EndpointSpec {
        ports: vec![shoal_types::service::PortConfig {
            target_port: 80,
            published_port: 8080,
            publish_mode: shoal_types::service::PublishMode::Host,
            ..Default::default()
        }],
        ..Default::default()
    });
    let id = sim.create(s);
    sim.run(3);
    assert_eq!(sim.running(&id).len(), 3);
    assert!(sim.running_per_node(&id).values().all(|c| *c == 1));
    let stuck = sim
        .tasks(&id)
        .into_iter()
        .find(|t| t.status.state == TaskState::Pending)
        .unwrap();
    assert_eq!(
        stuck.status.err,
        "no suitable node (host-mode port already in use on 3 nodes)"
    );
}

#[test]
fn global_job_runs_once_per_node() {
    let mut sim = three_nodes();
    let mut s = spec("migrate", "bb:1", 1);
    s.mode = ServiceMode {
        global_job: Some(Default::default()),
        ..ServiceMode::default()
    };
    let id = sim.create(s);
    sim.run(6);
    let tasks = sim.tasks(&id);
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|t| t.status.state == TaskState::Complete));
    assert!(tasks.iter().all(|t| t.job_iteration.is_some()));
    // Re-running the job (a new spec) starts a new iteration.
    sim.update(&id, |s| s.task_template.force_update += 1);
    sim.run(6);
    let done = sim
        .tasks(&id)
        .iter()
        .filter(|t| t.status.state == TaskState::Complete)
        .count();
    assert_eq!(done, 6);
}

#[test]
fn node_with_recent_failures_sinks() {
    let mut sim = Sim::new();
    sim.add_node("a", &[]);
    sim.add_node("b", &[]);
    let id = sim.create(spec("web", "bb:1", 0));
    let svc = sim.service(&id);
    for i in 0..5 {
        let mut t = super::new_task(&svc, 100 + i, "a", TaskState::Shutdown, sim.now);
        t.status = shoal_types::TaskStatus::new(TaskState::Failed, "boom", sim.now);
        sim.mem.put(shoal_types::Object::Task(t));
    }
    sim.update(&id, |s| s.mode = ServiceMode::replicated(2));
    sim.run(2);
    assert_eq!(sim.running_per_node(&id).get("b"), Some(&2));
}
