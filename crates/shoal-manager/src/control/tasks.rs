//! `GET /tasks?filters=` (also behind `service ps`, `stack ps`, `node ps` and the CLI's
//! progress loop).

use shoal_types::filters::Filters;
use shoal_types::{ApiError, Node, Object, ObjectKind, Service, Task, TaskState};

use crate::orchestrator::ObjectSource;

/// Filters: id / name prefix, service and node (name or ID), desired-state
/// (running|shutdown|accepted), label (matches the SERVICE's labels), `_up-to-date` (task made
/// from the service's current spec), runtime. Unknown keys: 400 "invalid filter 'x'".
pub fn list_tasks(src: &dyn ObjectSource, filters: &Filters) -> Result<Vec<Task>, ApiError> {
    filters.validate_keys(&[
        "id",
        "name",
        "service",
        "node",
        "desired-state",
        "label",
        "_up-to-date",
        "runtime",
    ])?;
    let mut desired: Vec<TaskState> = Vec::new();
    for d in filters.get("desired-state") {
        desired.push(match d.as_str() {
            "running" => TaskState::Running,
            "shutdown" => TaskState::Shutdown,
            "accepted" => TaskState::Accepted,
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "invalid filter 'desired-state={d}': use running, shutdown or accepted"
                )));
            }
        });
    }
    let up_to_date = filters.bool_value("_up-to-date")?;
    let services: Vec<&Service> = src
        .objects(ObjectKind::Service)
        .filter_map(|o| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
        .collect();
    let nodes: Vec<&Node> = src
        .objects(ObjectKind::Node)
        .filter_map(|o| match o {
            Object::Node(n) => Some(n),
            _ => None,
        })
        .collect();
    // Service / node filters name objects by exact ID, exact name or ID prefix.
    let service_ids: Option<std::collections::HashSet<&str>> =
        filters.contains("service").then(|| {
            services
                .iter()
                .filter(|s| {
                    filters.get("service").iter().any(|k| {
                        s.id == *k || s.spec.annotations.name == *k || s.id.starts_with(k.as_str())
                    })
                })
                .map(|s| s.id.as_str())
                .collect()
        });
    let node_ids: Option<std::collections::HashSet<&str>> = filters.contains("node").then(|| {
        nodes
            .iter()
            .filter(|n| {
                filters.get("node").iter().any(|k| {
                    n.id == *k
                        || n.display_name() == k.as_str()
                        || n.description.hostname == *k
                        || n.id.starts_with(k.as_str())
                })
            })
            .map(|n| n.id.as_str())
            .collect()
    });
    let by_id: std::collections::HashMap<&str, &Service> =
        services.iter().map(|s| (s.id.as_str(), *s)).collect();
    let mut out = Vec::new();
    for o in src.objects(ObjectKind::Task) {
        let Object::Task(t) = o else { continue };
        let svc = by_id.get(t.service_id.as_str());
        if !filters.matches_prefix("id", &t.id)
            || !filters.matches_prefix("name", &t.display_name())
        {
            continue;
        }
        if service_ids
            .as_ref()
            .is_some_and(|ids| !ids.contains(&t.service_id.as_str()))
        {
            continue;
        }
        if node_ids
            .as_ref()
            .is_some_and(|ids| !ids.contains(&t.node_id.as_str()))
        {
            continue;
        }
        if !desired.is_empty() && !desired.contains(&desired_class(t.desired_state)) {
            continue;
        }
        let labels = svc.map_or(&t.service_annotations.labels, |s| {
            &s.spec.annotations.labels
        });
        if !filters.matches_labels("label", labels) {
            continue;
        }
        if !filters.matches_exact("runtime", &t.spec.runtime) {
            continue;
        }
        if let Some(want) = up_to_date {
            let current = svc.is_some_and(|s| s.spec_version == t.spec_version);
            if current != want {
                continue;
            }
        }
        let mut t = t.clone();
        if t.spec.container_spec.is_none() {
            // The CLI's templates dereference it.
            t.spec.container_spec = Some(Default::default());
        }
        out.push(t);
    }
    out.sort_by(|a, b| {
        (
            a.service_id.as_str(),
            a.slot,
            a.node_id.as_str(),
            b.meta.created_at,
        )
            .cmp(&(
                b.service_id.as_str(),
                b.slot,
                b.node_id.as_str(),
                a.meta.created_at,
            ))
    });
    Ok(out)
}

/// Desired states as the filter groups them: running (anything up to running), shutdown (past
/// it), accepted as such.
fn desired_class(s: TaskState) -> TaskState {
    if s == TaskState::Accepted {
        TaskState::Accepted
    } else if s <= TaskState::Running {
        TaskState::Running
    } else {
        TaskState::Shutdown
    }
}
