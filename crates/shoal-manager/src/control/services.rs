//! Service create / update / remove / list / status as pure functions over a store snapshot.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shoal_store::Change;
use shoal_types::filters::Filters;
use shoal_types::service::{
    Endpoint, JobStatus, ModeKind, ServiceStatus, UpdateState, UpdateStatus,
};
use shoal_types::{
    ApiError, Meta, Node, NodeState, Object, ObjectKind, Service, ServiceSpec, Task, TaskState,
    Version, new_id, resolve,
};

use super::ports::allocate_ports;
use crate::orchestrator::{ObjectSource, node_fits_placement};

fn services(src: &dyn ObjectSource) -> Vec<&Service> {
    src.objects(ObjectKind::Service)
        .filter_map(|o| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Finds a service by full ID, exact name or unique ID prefix (404 "service X not found").
pub fn find_service<'a>(src: &'a dyn ObjectSource, key: &str) -> Result<&'a Service, ApiError> {
    let all = services(src);
    resolve(all, key).map_err(|e| e.into_api("service"))
}

/// Normalizes and validates `spec` and returns the new service to `Change::Create`.
pub fn create_service(
    src: &dyn ObjectSource,
    mut spec: ServiceSpec,
    now: DateTime<Utc>,
) -> Result<Service, ApiError> {
    spec.fill_name();
    spec.normalize();
    spec.validate()?;
    crate::network::resolve_service_networks(src, &mut spec)?;
    let name = spec.annotations.name.clone();
    if services(src)
        .iter()
        .any(|s| s.spec.annotations.name == name)
    {
        return Err(ApiError::conflict(format!(
            "name conflicts with an existing object: service {name} already exists"
        )));
    }
    let id = new_id();
    let ports = allocate_ports(src, &id, spec.endpoint_spec.as_ref(), &[])?;
    let kind = spec.mode.kind()?;
    Ok(Service {
        id,
        meta: Meta::created(now),
        endpoint: Endpoint {
            spec: spec.endpoint_spec.clone().unwrap_or_default(),
            ports,
            virtual_ips: Vec::new(),
        },
        job_status: kind.is_job().then_some(JobStatus {
            job_iteration: Version { index: 0 },
            last_execution: Some(now),
        }),
        spec,
        spec_version: Some(Version { index: 1 }),
        ..Service::default()
    })
}

/// Applies an update request (`POST /services/{id}/update?version=N[&rollback=previous]`) and
/// returns the service to `Change::Update` with `expected_version: Some(version)`.
pub fn update_service(
    src: &dyn ObjectSource,
    id_or_name: &str,
    version: u64,
    spec: ServiceSpec,
    rollback: bool,
    now: DateTime<Utc>,
) -> Result<Service, ApiError> {
    let current = find_service(src, id_or_name)?;
    if current.meta.version.index != version {
        return Err(ApiError::out_of_sequence());
    }
    let mut svc = current.clone();
    let mut new_spec = if rollback {
        match &current.previous_spec {
            Some(prev) => (**prev).clone(),
            None => {
                return Err(ApiError::invalid_argument(format!(
                    "service {} does not have a previous spec",
                    current.spec.annotations.name
                )));
            }
        }
    } else {
        let mut s = spec;
        s.normalize();
        s
    };
    new_spec.validate()?;
    new_spec.validate_update(&current.spec)?;
    crate::network::resolve_service_networks(src, &mut new_spec)?;
    let ports = allocate_ports(
        src,
        &current.id,
        new_spec.endpoint_spec.as_ref(),
        &current.endpoint.ports,
    )?;
    // Endpoint changes (ports, routing mesh on or off, vip/dnsrr) redeploy the tasks, as in
    // Docker: tasks carry the endpoint and their ingress attachment.
    let endpoint_changed = new_spec.endpoint_spec.clone().unwrap_or_default()
        != current.spec.endpoint_spec.clone().unwrap_or_default();
    let task_changed = new_spec.task_template != current.spec.task_template || endpoint_changed;
    let job_rerun = current.mode_kind().is_some_and(ModeKind::is_job)
        && (task_changed || new_spec.mode != current.spec.mode);
    svc.endpoint = Endpoint {
        spec: new_spec.endpoint_spec.clone().unwrap_or_default(),
        ports,
        virtual_ips: current.endpoint.virtual_ips.clone(),
    };
    svc.previous_spec = Some(Box::new(current.spec.clone()));
    svc.spec = new_spec;
    svc.meta.updated_at = now;
    if task_changed || rollback {
        svc.spec_version = Some(Version {
            index: current.spec_version.map_or(1, |v| v.index) + 1,
        });
    }
    if rollback {
        svc.update_status = Some(UpdateStatus {
            state: Some(UpdateState::RollbackStarted),
            started_at: Some(now),
            completed_at: None,
            message: "manually requested rollback".into(),
        });
    } else if task_changed && !svc.mode_kind().is_some_and(ModeKind::is_job) {
        svc.update_status = Some(UpdateStatus {
            state: Some(UpdateState::Updating),
            started_at: Some(now),
            completed_at: None,
            message: "update in progress".into(),
        });
    } else {
        // Nothing to roll out (e.g. a scale): an old "completed" must not end the CLI's wait.
        svc.update_status = None;
    }
    if job_rerun {
        let next = current
            .job_status
            .as_ref()
            .map_or(0, |j| j.job_iteration.index + 1);
        svc.job_status = Some(JobStatus {
            job_iteration: Version { index: next },
            last_execution: Some(now),
        });
    }
    Ok(svc)
}

/// Deleting a service: the delete only, as swarmkit does. The leader's orchestration marks the
/// tasks of a deleted service REMOVE and the reaper deletes them once they stopped. No version
/// guard: the allocator and the updater write the service (VIPs, update status) at any time, and
/// agents its tasks, so a guarded command would keep failing with "update out of sequence".
pub fn remove_service(src: &dyn ObjectSource, id_or_name: &str) -> Result<Vec<Change>, ApiError> {
    let svc = find_service(src, id_or_name)?;
    Ok(vec![Change::Delete {
        kind: ObjectKind::Service,
        id: svc.id.clone(),
        expected_version: None,
    }])
}

/// `ServiceStatus` for `?status=true`: running tasks (running, desired running, node not down),
/// desired tasks (replicas, eligible nodes for global, job targets), completed tasks (jobs).
pub fn service_status(src: &dyn ObjectSource, svc: &Service) -> ServiceStatus {
    let nodes = node_map(src);
    let mut counts = TaskCounts::of(svc);
    for o in src.objects(ObjectKind::Task) {
        if let Object::Task(t) = o
            && t.service_id == svc.id
        {
            counts.count(t, &nodes);
        }
    }
    status_of(svc, counts, &nodes)
}

fn node_map(src: &dyn ObjectSource) -> HashMap<&str, &Node> {
    src.objects(ObjectKind::Node)
        .filter_map(|o| match o {
            Object::Node(n) => Some((n.id.as_str(), n)),
            _ => None,
        })
        .collect()
}

/// Running and completed tasks of one service, counted task by task.
#[derive(Clone)]
struct TaskCounts {
    /// For a job: the iteration whose tasks count.
    job: Option<Option<Version>>,
    running: u64,
    completed: u64,
}

impl TaskCounts {
    fn of(svc: &Service) -> TaskCounts {
        let job = svc
            .mode_kind()
            .is_some_and(ModeKind::is_job)
            .then(|| svc.job_status.as_ref().map(|j| j.job_iteration));
        TaskCounts {
            job,
            running: 0,
            completed: 0,
        }
    }

    fn count(&mut self, t: &Task, nodes: &HashMap<&str, &Node>) {
        if let Some(iteration) = &self.job {
            if t.job_iteration != *iteration {
                return;
            }
            if t.status.state == TaskState::Complete {
                self.completed += 1;
            }
        }
        let node_down = || {
            nodes
                .get(t.node_id.as_str())
                .is_none_or(|n| n.status.state == NodeState::Down)
        };
        if t.status.state == TaskState::Running
            && t.desired_state <= TaskState::Complete
            && !node_down()
        {
            self.running += 1;
        }
    }
}

fn status_of(svc: &Service, counts: TaskCounts, nodes: &HashMap<&str, &Node>) -> ServiceStatus {
    let kind = svc.mode_kind();
    let TaskCounts {
        running, completed, ..
    } = counts;
    let eligible = || {
        nodes
            .values()
            .filter(|n| {
                n.status.state != NodeState::Down
                    && n.spec.availability != shoal_types::NodeAvailability::Drain
                    && node_fits_placement(svc, n)
            })
            .count() as u64
    };
    let desired = match kind {
        Some(ModeKind::Replicated) => svc.spec.mode.replicas().unwrap_or(1),
        Some(ModeKind::Global) => eligible(),
        Some(ModeKind::ReplicatedJob) => svc.spec.mode.replicated_job.as_ref().map_or(0, |j| {
            let total = j.total_completions.unwrap_or(1);
            j.max_concurrent
                .unwrap_or(1)
                .min(total.saturating_sub(completed))
        }),
        Some(ModeKind::GlobalJob) => eligible().saturating_sub(completed),
        None => 0,
    };
    ServiceStatus {
        running_tasks: running,
        desired_tasks: desired,
        completed_tasks: completed,
    }
}

/// `JobStatus` of a job service (None for other modes).
pub fn job_status(svc: &Service) -> Option<JobStatus> {
    if !svc.mode_kind().is_some_and(ModeKind::is_job) {
        return None;
    }
    Some(svc.job_status.clone().unwrap_or(JobStatus {
        job_iteration: Version { index: 0 },
        last_execution: None,
    }))
}

/// `GET /services?filters=`: id / name prefix, label, mode (exact). With `status`, fills
/// `ServiceStatus` and `JobStatus`.
pub fn list_services(
    src: &dyn ObjectSource,
    filters: &Filters,
    status: bool,
) -> Result<Vec<Service>, ApiError> {
    filters.validate_keys(&["id", "name", "label", "mode", "runtime"])?;
    for m in filters.get("mode") {
        if !["replicated", "global", "replicated-job", "global-job"].contains(&m.as_str()) {
            return Err(ApiError::invalid_argument(format!(
                "invalid filter 'mode={m}': use replicated, global, replicated-job or global-job"
            )));
        }
    }
    let mut out: Vec<Service> = services(src)
        .into_iter()
        .filter(|s| {
            filters.matches_prefix("id", &s.id)
                && filters.matches_prefix("name", &s.spec.annotations.name)
                && filters.matches_labels("label", &s.spec.annotations.labels)
                && filters.matches_exact("mode", s.mode_kind().map_or("", |k| k.as_str()))
                && filters.matches_exact("runtime", &s.spec.task_template.runtime)
        })
        .cloned()
        .collect();
    if status {
        // One walk over the tasks for all services, counting as it goes (grouping 100,000
        // tasks first cost a share of the leader's CPU while `service ls` was polled).
        let nodes = node_map(src);
        let index: HashMap<&str, usize> = out
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut counts: Vec<TaskCounts> = out.iter().map(TaskCounts::of).collect();
        for o in src.objects(ObjectKind::Task) {
            if let Object::Task(t) = o
                && let Some(&i) = index.get(t.service_id.as_str())
            {
                counts[i].count(t, &nodes);
            }
        }
        for (s, c) in out.iter_mut().zip(counts) {
            s.service_status = Some(status_of(s, c, &nodes));
            s.job_status = job_status(s);
        }
    }
    out.sort_by(|a, b| a.spec.annotations.name.cmp(&b.spec.annotations.name));
    Ok(out)
}
