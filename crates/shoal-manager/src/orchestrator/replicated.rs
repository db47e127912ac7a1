//! Replicated services and replicated jobs: tasks live in numbered slots. Missing slots get new
//! tasks, extra slots are removed, ended tasks go to the restart supervisor, dirty slots to the
//! updater.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use shoal_types::service::ModeKind;
use shoal_types::{Service, Task, TaskState};

use super::restart::{self, Verdict};
use super::updater::{self, UpdSlot};
use super::{ClusterState, Plan, by_age, ended, new_task, node_fits_placement, run_state, wanted};

pub(crate) fn reconcile_service(
    st: &ClusterState,
    svc: &Service,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for t in st.tasks_of(&svc.id) {
        if t.slot > 0 {
            slots.entry(t.slot).or_default().push(t);
        }
    }
    if svc.mode_kind() == Some(ModeKind::ReplicatedJob) {
        reconcile_job(st, svc, slots, now, plan);
        return;
    }
    let replicas = svc.spec.mode.replicas().unwrap_or(1);
    // Slots with a task that should run, and the newest such task.
    let mut occupied: BTreeMap<u64, (&Task, Vec<&Task>)> = BTreeMap::new();
    for (slot, tasks) in &slots {
        let tasks = by_age(tasks.clone());
        if let Some(cur) = tasks.iter().rev().find(|t| wanted(plan.task(t))) {
            occupied.insert(*slot, (*cur, tasks.clone()));
        }
    }

    // Scale down: drop the slots least worth keeping.
    if occupied.len() as u64 > replicas {
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        for (cur, _) in occupied.values() {
            *per_node.entry(cur.node_id.as_str()).or_default() += 1;
        }
        let excess = occupied.len() - replicas as usize;
        for _ in 0..excess {
            let victim = occupied
                .iter()
                .map(|(slot, (cur, _))| {
                    let running = cur.status.state == TaskState::Running;
                    let on_node = per_node.get(cur.node_id.as_str()).copied().unwrap_or(0);
                    (
                        running,
                        std::cmp::Reverse(on_node),
                        std::cmp::Reverse(*slot),
                    )
                })
                .min()
                .map(|(_, _, std::cmp::Reverse(slot))| slot);
            let Some(slot) = victim else { break };
            if let Some((cur, tasks)) = occupied.remove(&slot) {
                if let Some(c) = per_node.get_mut(cur.node_id.as_str()) {
                    *c = c.saturating_sub(1);
                }
                for t in tasks {
                    if plan.task(t).desired_state < TaskState::Remove {
                        plan.update_task(t, |t| t.desired_state = TaskState::Remove);
                    }
                }
            }
        }
    }

    // Restart supervisor, held replacements, start-first cleanup.
    let mut upd = Vec::new();
    let mut replaced = false;
    // Constraint enforcement: a node whose labels changed may no longer fit (cached per node).
    let has_placement = svc.spec.task_template.placement.is_some();
    let mut fits: HashMap<&str, bool> = HashMap::new();
    for (slot, (cur, tasks)) in &occupied {
        if has_placement && !cur.node_id.is_empty() && !ended(plan.task(cur)) {
            let ok = *fits.entry(cur.node_id.as_str()).or_insert_with(|| {
                st.nodes
                    .get(cur.node_id.as_str())
                    .is_none_or(|n| node_fits_placement(svc, n))
            });
            if !ok {
                restart::replace(st, svc, cur, *slot, "", now, plan);
                replaced = true;
                continue;
            }
        }
        match restart::evaluate(st, svc, plan.task(cur), tasks, now) {
            Verdict::Replace => {
                restart::replace(st, svc, cur, *slot, "", now, plan);
                replaced = true;
                continue;
            }
            Verdict::Dead | Verdict::Keep => {}
        }
        restart::release_held(st, svc, cur, tasks, now, plan);
        shut_older_once_running(cur, tasks, plan);
        upd.push(UpdSlot {
            slot: *slot,
            node_id: String::new(),
            current: cur,
            tasks: tasks.clone(),
        });
    }

    // Scale up into the lowest free slot numbers.
    let missing = replicas.saturating_sub(occupied.len() as u64);
    let mut next = 1u64;
    for _ in 0..missing {
        while occupied.contains_key(&next) {
            next += 1;
        }
        plan.create_task(new_task(svc, next, "", run_state(svc), now));
        next += 1;
    }

    // A slot replaced in this pass is hidden from the updater (its failed task and its new
    // one): the next pass sees both, so an update never takes a second slot down meanwhile.
    if !replaced {
        updater::run(st, svc, &upd, now, plan);
    }
}

/// Start-first updates and replacements leave the old task running until the new one runs.
pub(crate) fn shut_older_once_running(cur: &Task, tasks: &[&Task], plan: &mut Plan) {
    if plan.task(cur).status.state != TaskState::Running {
        return;
    }
    for t in tasks {
        if t.id != cur.id && wanted(plan.task(t)) && t.meta.created_at <= cur.meta.created_at {
            plan.update_task(t, |t| t.desired_state = TaskState::Shutdown);
        }
    }
}

/// Replicated job: run `TotalCompletions` successful tasks, at most `MaxConcurrent` at once,
/// per job iteration.
fn reconcile_job(
    st: &ClusterState,
    svc: &Service,
    slots: BTreeMap<u64, Vec<&Task>>,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let Some(job) = &svc.spec.mode.replicated_job else {
        return;
    };
    let total = job.total_completions.unwrap_or(1);
    let max_conc = job.max_concurrent.unwrap_or(1).max(1);
    let iteration = svc.job_status.as_ref().map(|j| j.job_iteration);
    let mut in_flight = 0u64;
    let mut done_or_busy: BTreeMap<u64, bool> = BTreeMap::new();
    for (slot, tasks) in &slots {
        let tasks = by_age(tasks.clone());
        // Tasks of an older iteration stop.
        for t in &tasks {
            if t.job_iteration != iteration && wanted(plan.task(t)) && !ended(t) {
                plan.update_task(t, |t| t.desired_state = TaskState::Shutdown);
            }
        }
        let cur_iter: Vec<&Task> = tasks
            .iter()
            .copied()
            .filter(|t| t.job_iteration == iteration)
            .collect();
        if cur_iter
            .iter()
            .any(|t| t.status.state == TaskState::Complete)
            || *slot > total
        {
            done_or_busy.insert(*slot, true);
            continue;
        }
        let Some(cur) = cur_iter.iter().rev().find(|t| wanted(plan.task(t))) else {
            continue;
        };
        done_or_busy.insert(*slot, true);
        match restart::evaluate(st, svc, plan.task(cur), &cur_iter, now) {
            Verdict::Replace => {
                restart::replace(st, svc, cur, *slot, "", now, plan);
                in_flight += 1;
            }
            Verdict::Keep => {
                restart::release_held(st, svc, cur, &cur_iter, now, plan);
                in_flight += 1;
            }
            Verdict::Dead => {}
        }
    }
    let mut slot = 1u64;
    while in_flight < max_conc && slot <= total {
        if !done_or_busy.contains_key(&slot) {
            plan.create_task(new_task(svc, slot, "", run_state(svc), now));
            in_flight += 1;
        }
        slot += 1;
    }
}
