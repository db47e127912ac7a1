//! The scheduler: PENDING tasks → ASSIGNED with a node. Tasks of one service and spec version
//! are placed as one batch: the filters run once per node, then tasks go one by one to the
//! best node from a heap ordered by spread (recently failing nodes sink, then fewest tasks of
//! the service, then fewest tasks overall), so a batch costs O((nodes + tasks) log nodes).
//! Placement preferences (`spread=node.labels.x`) first pick the label group with the fewest
//! tasks of the service, level by level. When nothing fits, the task stays PENDING and its
//! status says why; it is retried on the next pass (any node or task change).

pub mod filters;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use chrono::{DateTime, Duration, Utc};
use shoal_types::task::TaskStatus;
use shoal_types::{Node, Task, TaskState};

use crate::orchestrator::{ClusterState, Plan, ended};
use filters::{Needs, NodeInfo, Reason, explain};

/// A node with this many failures of a service in the window sinks for that service.
const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW_SECS: i64 = 300;

/// Where a pending task lives: in the store, or created by this pass's plan.
#[derive(Clone, Copy)]
enum Pending<'a> {
    Stored(&'a Task),
    Created(usize),
}

pub(crate) fn schedule(st: &ClusterState, now: DateTime<Utc>, plan: &mut Plan) {
    let node_list: Vec<&Node> = st.nodes.values().copied().collect();
    let node_idx: HashMap<&str, usize> = node_list
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut infos: Vec<NodeInfo> = vec![NodeInfo::default(); node_list.len()];
    let recent = now - Duration::seconds(FAILURE_WINDOW_SECS);

    let mut pending: Vec<Pending> = Vec::new();
    for t in &st.all_tasks {
        if plan.is_deleted(&t.id) {
            continue;
        }
        let cur = plan.task(t);
        if cur.status.state < TaskState::Assigned {
            pending.push(Pending::Stored(t));
            continue;
        }
        let Some(&i) = node_idx.get(cur.node_id.as_str()) else {
            continue;
        };
        if !ended(cur) {
            infos[i].add(cur, &cur.service_id);
        } else if matches!(cur.status.state, TaskState::Failed | TaskState::Rejected)
            && cur.status.timestamp >= recent
        {
            *infos[i].failures.entry(cur.service_id.clone()).or_default() += 1;
        }
    }
    for i in 0..plan.created_len() {
        pending.push(Pending::Created(i));
    }

    // Group by (service, spec version); preassigned (global) tasks are checked on their node.
    let mut groups: BTreeMap<(String, u64), Vec<Pending>> = BTreeMap::new();
    for p in pending {
        let t = get(plan, p);
        if t.desired_state >= TaskState::Shutdown {
            // Stopped before it was ever placed.
            let msg = "task was shut down before it was scheduled";
            set(plan, p, |t| {
                t.status = TaskStatus::new(TaskState::Shutdown, msg, now)
            });
            continue;
        }
        let Some(svc) = st.services.get(t.service_id.as_str()) else {
            continue;
        };
        if !t.node_id.is_empty() {
            let needs = Needs::of(svc, t);
            match node_idx.get(t.node_id.as_str()) {
                Some(&i) => match needs.check(node_list[i], &infos[i]) {
                    None => {
                        let t = get(plan, p).clone();
                        infos[i].add(&t, &t.service_id);
                        assign(plan, p, &node_list[i].id, now);
                    }
                    Some(r) => {
                        let msg = explain(&HashMap::from([(r, 1)]));
                        unschedulable(plan, p, &msg, now);
                    }
                },
                None => unschedulable(plan, p, "no suitable node (node is gone)", now),
            }
            continue;
        }
        let key = (t.service_id.clone(), t.spec_version.map_or(0, |v| v.index));
        groups.entry(key).or_default().push(p);
    }

    for ((svc_id, _), tasks) in groups {
        let Some(svc) = st.services.get(svc_id.as_str()) else {
            continue;
        };
        let needs = Needs::of(svc, get(plan, tasks[0]));
        schedule_group(&needs, &node_list, &mut infos, &tasks, now, plan);
    }
}

fn get<'p>(plan: &'p Plan, p: Pending<'p>) -> &'p Task {
    match p {
        Pending::Stored(t) => plan.task(t),
        Pending::Created(i) => plan
            .created_task(i)
            .expect("created task index comes from the plan itself"),
    }
}

fn set(plan: &mut Plan, p: Pending, f: impl FnOnce(&mut Task)) {
    match p {
        Pending::Stored(t) => plan.update_task(t, f),
        Pending::Created(i) => {
            if let Some(t) = plan.created_task_mut(i) {
                f(t)
            }
        }
    }
}

fn assign(plan: &mut Plan, p: Pending, node_id: &str, now: DateTime<Utc>) {
    set(plan, p, |t| {
        t.node_id = node_id.to_string();
        t.status = TaskStatus::new(TaskState::Assigned, "scheduler assigned task to node", now);
    });
}

fn unschedulable(plan: &mut Plan, p: Pending, why: &str, now: DateTime<Utc>) {
    if get(plan, p).status.err == why {
        return;
    }
    set(plan, p, |t| {
        t.status = TaskStatus {
            err: why.to_string(),
            ..TaskStatus::new(TaskState::Pending, "pending task scheduling", now)
        };
    });
}

/// Heap entry: smallest wins (sinking, tasks of the service, tasks overall, node order).
type Rank = Reverse<(bool, usize, usize, usize)>;

fn rank(needs: &Needs, info: &NodeInfo, i: usize) -> Rank {
    let failing = info.failures.get(&needs.service_id).copied().unwrap_or(0) >= MAX_FAILURES;
    let mine = info
        .per_service
        .get(&needs.service_id)
        .copied()
        .unwrap_or(0);
    Reverse((failing, mine, info.total, i))
}

/// Spread label values of a node, one per preference level (missing label = "").
fn spread_path(needs: &Needs, node: &Node) -> Vec<String> {
    let Some(p) = &needs.placement else {
        return Vec::new();
    };
    p.preferences
        .iter()
        .filter_map(|pref| pref.spread.as_ref())
        .map(|s| {
            let d = s.spread_descriptor.trim();
            if let Some(k) = d.strip_prefix("node.labels.") {
                node.spec
                    .annotations
                    .labels
                    .get(k)
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = d.strip_prefix("engine.labels.") {
                node.description
                    .engine
                    .labels
                    .get(k)
                    .cloned()
                    .unwrap_or_default()
            } else {
                match d {
                    "node.id" => node.id.clone(),
                    "node.hostname" => node.description.hostname.clone(),
                    "node.role" => node.spec.role.as_str().to_string(),
                    "node.platform.os" => node.description.platform.os.clone(),
                    "node.platform.arch" => node.description.platform.architecture.clone(),
                    _ => String::new(),
                }
            }
        })
        .collect()
}

fn schedule_group(
    needs: &Needs,
    nodes: &[&Node],
    infos: &mut [NodeInfo],
    tasks: &[Pending],
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let mut reasons: HashMap<Reason, usize> = HashMap::new();
    // Leaf groups of the preference tree, each a heap of candidate nodes.
    let mut leaves: BTreeMap<Vec<String>, BinaryHeap<Rank>> = BTreeMap::new();
    // Tasks of the service per preference prefix (every level), for the fewest-first choice.
    let mut prefix_count: HashMap<Vec<String>, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        match needs.check(node, &infos[i]) {
            Some(r) => *reasons.entry(r).or_default() += 1,
            None => {
                let path = spread_path(needs, node);
                let mine = infos[i]
                    .per_service
                    .get(&needs.service_id)
                    .copied()
                    .unwrap_or(0);
                for l in 1..=path.len() {
                    *prefix_count.entry(path[..l].to_vec()).or_default() += mine;
                }
                leaves
                    .entry(path)
                    .or_default()
                    .push(rank(needs, &infos[i], i));
            }
        }
    }
    let levels = needs.placement.as_ref().map_or(0, |p| p.preferences.len());
    for &p in tasks {
        let leaf = if levels == 0 {
            leaves.keys().next().cloned()
        } else {
            // Lexicographic on the counts of each level's group: fill the emptiest branch first.
            leaves
                .keys()
                .min_by_key(|path| {
                    (1..=path.len())
                        .map(|l| prefix_count.get(&path[..l]).copied().unwrap_or(0))
                        .collect::<Vec<_>>()
                })
                .cloned()
        };
        let Some(path) = leaf else {
            unschedulable(plan, p, &explain(&reasons), now);
            continue;
        };
        let Some(heap) = leaves.get_mut(&path) else {
            continue;
        };
        let Some(Reverse((_, _, _, i))) = heap.pop() else {
            leaves.remove(&path);
            continue;
        };
        let task = get(plan, p).clone();
        infos[i].add(&task, &needs.service_id);
        assign(plan, p, &nodes[i].id, now);
        for l in 1..=path.len() {
            *prefix_count.entry(path[..l].to_vec()).or_default() += 1;
        }
        match needs.check_dynamic(nodes[i], &infos[i]) {
            None => heap.push(rank(needs, &infos[i], i)),
            Some(r) => *reasons.entry(r).or_default() += 1,
        }
        if heap.is_empty() {
            leaves.remove(&path);
        }
    }
}
