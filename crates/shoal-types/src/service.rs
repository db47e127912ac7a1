//! Service object and spec (`GET /services`, `POST /services/create`), defaults and validation.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration::SECOND;
use crate::error::ApiError;
use crate::meta::{Annotations, Meta, Version, validate_object_name};
use crate::task::Task;
use crate::task_spec::{
    DEFAULT_STOP_GRACE_PERIOD, NetworkAttachmentConfig, Placement, ResourceRequirements,
    RestartPolicy, str_enum,
};
use crate::wire;

pub use crate::task_spec::TaskSpec;

/// Default update/rollback monitor period (5 s).
pub const DEFAULT_MONITOR: i64 = 5 * SECOND;

str_enum!(FailureAction { Pause => "pause", Continue => "continue", Rollback => "rollback" } default Pause);
str_enum!(UpdateOrder { StopFirst => "stop-first", StartFirst => "start-first" } default StopFirst);
str_enum!(ResolutionMode { Vip => "vip", Dnsrr => "dnsrr" } default Vip);
str_enum!(PortProtocol { Tcp => "tcp", Udp => "udp", Sctp => "sctp" } default Tcp);
str_enum!(PublishMode { Ingress => "ingress", Host => "host" } default Ingress);
str_enum!(UpdateState {
    Updating => "updating",
    Paused => "paused",
    Completed => "completed",
    RollbackStarted => "rollback_started",
    RollbackPaused => "rollback_paused",
    RollbackCompleted => "rollback_completed",
} default Updating);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicatedService {
    /// None in a bare `service create` request; `normalize` fills 1 (the CLI crashes on null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalService {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicatedJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_completions: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalJob {}

/// Exactly one of the four modes must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceMode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated: Option<ReplicatedService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<GlobalService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated_job: Option<ReplicatedJob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_job: Option<GlobalJob>,
}

/// Which mode a service runs in (also the `mode` filter values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModeKind {
    Replicated,
    Global,
    ReplicatedJob,
    GlobalJob,
}

impl ModeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeKind::Replicated => "replicated",
            ModeKind::Global => "global",
            ModeKind::ReplicatedJob => "replicated-job",
            ModeKind::GlobalJob => "global-job",
        }
    }

    pub fn is_job(self) -> bool {
        matches!(self, ModeKind::ReplicatedJob | ModeKind::GlobalJob)
    }

    pub fn is_global(self) -> bool {
        matches!(self, ModeKind::Global | ModeKind::GlobalJob)
    }
}

impl ServiceMode {
    pub fn replicated(replicas: u64) -> Self {
        ServiceMode {
            replicated: Some(ReplicatedService {
                replicas: Some(replicas),
            }),
            ..ServiceMode::default()
        }
    }

    pub fn global() -> Self {
        ServiceMode {
            global: Some(GlobalService {}),
            ..ServiceMode::default()
        }
    }

    /// The mode, or an error unless exactly one is set.
    pub fn kind(&self) -> Result<ModeKind, ApiError> {
        let set: Vec<ModeKind> = [
            (self.replicated.is_some(), ModeKind::Replicated),
            (self.global.is_some(), ModeKind::Global),
            (self.replicated_job.is_some(), ModeKind::ReplicatedJob),
            (self.global_job.is_some(), ModeKind::GlobalJob),
        ]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
        match set.as_slice() {
            [k] => Ok(*k),
            [] => Err(ApiError::invalid_argument("service mode must be specified")),
            _ => Err(ApiError::invalid_argument(
                "only one service mode may be specified",
            )),
        }
    }

    /// Replica count of a replicated service (default 1).
    pub fn replicas(&self) -> Option<u64> {
        self.replicated.as_ref().map(|r| r.replicas.unwrap_or(1))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfig {
    /// Tasks updated at once; 0 = all.
    #[serde(default)]
    pub parallelism: u64,
    /// Nanoseconds between batches.
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub delay: i64,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub failure_action: FailureAction,
    /// Nanoseconds each updated task is watched for failure; 0 = default (5 s).
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub monitor: i64,
    #[serde(default)]
    pub max_failure_ratio: f32,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub order: UpdateOrder,
}

impl UpdateConfig {
    /// parallelism 1, no delay, pause on failure, 5 s monitor, ratio 0, stop-first.
    pub fn defaults() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: 0,
            failure_action: FailureAction::Pause,
            monitor: DEFAULT_MONITOR,
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }

    pub fn effective_monitor(&self) -> i64 {
        if self.monitor == 0 {
            DEFAULT_MONITOR
        } else {
            self.monitor
        }
    }

    pub fn validate(&self, what: &str) -> Result<(), ApiError> {
        if self.delay < 0 {
            return Err(ApiError::invalid_argument(format!(
                "{what}: Delay cannot be negative"
            )));
        }
        if self.monitor < 0 {
            return Err(ApiError::invalid_argument(format!(
                "{what}: Monitor cannot be negative"
            )));
        }
        if !(0.0..=1.0).contains(&self.max_failure_ratio) {
            return Err(ApiError::invalid_argument(format!(
                "{what}: MaxFailureRatio must be a value between 0 and 1"
            )));
        }
        Ok(())
    }
}

/// A published or exposed port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub protocol: PortProtocol,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub target_port: u32,
    /// 0 with ingress = allocate one from 30000-32767.
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub published_port: u32,
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub publish_mode: PublishMode,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSpec {
    #[serde(default, deserialize_with = "wire::enum_or_default")]
    pub mode: ResolutionMode,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<PortConfig>,
}

impl EndpointSpec {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut published = BTreeSet::new();
        for p in &self.ports {
            if p.target_port == 0 || p.target_port > 65535 {
                return Err(ApiError::invalid_argument(format!(
                    "invalid target port {}: must be 1-65535",
                    p.target_port
                )));
            }
            if p.published_port > 65535 {
                return Err(ApiError::invalid_argument(format!(
                    "invalid published port {}: must be at most 65535",
                    p.published_port
                )));
            }
            if self.mode == ResolutionMode::Dnsrr && p.publish_mode == PublishMode::Ingress {
                return Err(ApiError::invalid_argument(
                    "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
                ));
            }
            if p.published_port != 0 && !published.insert((p.published_port, p.protocol)) {
                return Err(ApiError::invalid_argument(format!(
                    "EndpointSpec: duplicate published ports provided ({}/{})",
                    p.published_port, p.protocol
                )));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointVirtualIP {
    #[serde(
        default,
        rename = "NetworkID",
        skip_serializing_if = "String::is_empty"
    )]
    pub network_id: String,
    /// CIDR form, e.g. "10.0.0.5/24".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
}

/// What the allocator assigned: the ports actually published and the VIPs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    #[serde(default)]
    pub spec: EndpointSpec,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<PortConfig>,
    #[serde(
        default,
        rename = "VirtualIPs",
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub virtual_ips: Vec<EndpointVirtualIP>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStatus {
    #[serde(
        default,
        deserialize_with = "wire::opt_enum",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<UpdateState>,
    #[serde(
        default,
        with = "wire::opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "wire::opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Task counts reported with `?status=true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceStatus {
    #[serde(default)]
    pub running_tasks: u64,
    #[serde(default)]
    pub desired_tasks: u64,
    #[serde(default)]
    pub completed_tasks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobStatus {
    #[serde(default)]
    pub job_iteration: Version,
    #[serde(
        default,
        with = "wire::opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_execution: Option<DateTime<Utc>>,
}

/// What a user asks for (`POST /services/create` and `/update` body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    #[serde(default)]
    pub task_template: TaskSpec,
    #[serde(default)]
    pub mode: ServiceMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// Deprecated service-level networks; `normalize` moves them into the task template.
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks: Vec<NetworkAttachmentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
}

impl ServiceSpec {
    pub fn name(&self) -> &str {
        &self.annotations.name
    }

    /// Fills the defaults the API must store and report: Replicas 1 (also for an empty mode),
    /// job counts, Runtime "container", Isolation "default"; moves deprecated networks.
    pub fn normalize(&mut self) {
        let m = &mut self.mode;
        if m.replicated.is_none()
            && m.global.is_none()
            && m.replicated_job.is_none()
            && m.global_job.is_none()
        {
            m.replicated = Some(ReplicatedService::default());
        }
        if let Some(r) = &mut m.replicated
            && r.replicas.is_none()
        {
            r.replicas = Some(1);
        }
        if let Some(j) = &mut m.replicated_job {
            let mc = *j.max_concurrent.get_or_insert(1);
            j.total_completions.get_or_insert(mc);
        }
        self.task_template.normalize();
        if self.task_template.networks.is_empty() && !self.networks.is_empty() {
            self.task_template.networks = std::mem::take(&mut self.networks);
        }
    }

    /// The spec as `?insertDefaults=true` shows it: normalized, plus stop grace period, restart
    /// policy, update and rollback config defaults where unset.
    pub fn with_inserted_defaults(&self) -> ServiceSpec {
        let mut s = self.clone();
        s.normalize();
        if let Some(c) = &mut s.task_template.container_spec
            && c.stop_grace_period.is_none()
        {
            c.stop_grace_period = Some(DEFAULT_STOP_GRACE_PERIOD);
        }
        let d = RestartPolicy::defaults();
        let rp = s
            .task_template
            .restart_policy
            .get_or_insert_with(RestartPolicy::default);
        rp.condition = rp.condition.or(d.condition);
        rp.delay = rp.delay.or(d.delay);
        rp.max_attempts = rp.max_attempts.or(d.max_attempts);
        rp.window = rp.window.or(d.window);
        s.task_template
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        s.task_template
            .placement
            .get_or_insert_with(Placement::default);
        if !s.mode.kind().is_ok_and(ModeKind::is_job) {
            for cfg in [&mut s.update_config, &mut s.rollback_config] {
                let c = cfg.get_or_insert_with(UpdateConfig::defaults);
                if c.monitor == 0 {
                    c.monitor = DEFAULT_MONITOR;
                }
            }
        }
        s
    }

    /// Gives a spec without a name a random one (`service create IMG` sends no name).
    pub fn fill_name(&mut self) {
        if self.annotations.name.is_empty() {
            self.annotations.name = crate::names::random_name();
        }
    }

    /// Rules for replacing `current` with `self` on update: no rename, no mode family change.
    pub fn validate_update(&self, current: &ServiceSpec) -> Result<(), ApiError> {
        if self.annotations.name != current.annotations.name {
            return Err(ApiError::invalid_argument(
                "renaming services is not supported",
            ));
        }
        if let (Ok(new), Ok(old)) = (self.mode.kind(), current.mode.kind())
            && new != old
        {
            return Err(ApiError::invalid_argument(format!(
                "service mode change is not allowed ({} to {})",
                old.as_str(),
                new.as_str()
            )));
        }
        Ok(())
    }

    /// Everything the control API checks before storing a spec. Call after `normalize`.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_object_name("service", &self.annotations.name)?;
        for k in self.annotations.labels.keys() {
            if k.is_empty() {
                return Err(ApiError::invalid_argument("label keys must not be empty"));
            }
        }
        self.task_template.validate()?;
        let kind = self.mode.kind()?;
        if kind.is_job() && (self.update_config.is_some() || self.rollback_config.is_some()) {
            return Err(ApiError::invalid_argument(
                "service mode is a job: jobs may not have an UpdateConfig or RollbackConfig",
            ));
        }
        if let Some(j) = &self.mode.replicated_job
            && j.max_concurrent == Some(0)
            && j.total_completions != Some(0)
        {
            return Err(ApiError::invalid_argument(
                "ReplicatedJob: MaxConcurrent must be at least 1",
            ));
        }
        if let Some(u) = &self.update_config {
            u.validate("UpdateConfig")?;
        }
        if let Some(u) = &self.rollback_config {
            u.validate("RollbackConfig")?;
        }
        if let Some(e) = &self.endpoint_spec {
            e.validate()?;
        }
        Ok(())
    }
}

/// A service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<Box<ServiceSpec>>,
    #[serde(default)]
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
    /// Filled by the API on `?status=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_status: Option<ServiceStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
    /// Internal: store version of the last spec change (tasks record it to detect dirty tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<Version>,
    /// Internal: set while the service is being deleted and its tasks drain.
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub pending_delete: bool,
}

impl Service {
    pub fn mode_kind(&self) -> Option<ModeKind> {
        self.spec.mode.kind().ok()
    }

    /// Whether `task` was made from the current spec (the `_up-to-date` task filter).
    pub fn is_task_up_to_date(&self, task: &Task) -> bool {
        task.spec_version == self.spec_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task_spec::{MountType, RestartCondition};

    const CLI_CREATE: &str = r#"{"Name":"apiprobe-web","Labels":{},
      "TaskTemplate":{"ContainerSpec":{"Image":"bb:1","Env":["FOO=bar"],"Init":false,
          "Mounts":[{"Type":"tmpfs","Target":"/cache"}],"DNSConfig":{},
          "Secrets":[{"File":{"Name":"apiprobe-sec","UID":"0","GID":"0","Mode":292},"SecretID":"46b7","SecretName":"apiprobe-sec"}],
          "Configs":[{"File":{"Name":"/etc/app.cfg","UID":"0","GID":"0","Mode":292},"ConfigID":"wb9z","ConfigName":"apiprobe-cfg"}]},
        "Resources":{"Limits":{},"Reservations":{}},
        "RestartPolicy":{"Condition":"on-failure","Delay":5000000000,"MaxAttempts":0},
        "Placement":{"Constraints":["node.role==manager"]},
        "Networks":[{"Target":"p07f5vxd5eisz9t68l6moxe7m"}],"ForceUpdate":0},
      "Mode":{"Replicated":{"Replicas":2}},
      "UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},
      "EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":18080,"PublishMode":"ingress"}]}}"#;

    const STACK_DEPLOY: &str = r#"{"Name":"apiprobe_web","Labels":{"com.docker.stack.image":"bb:1","com.docker.stack.namespace":"apiprobe"},
   "TaskTemplate":{"ContainerSpec":{"Image":"bb:1","Labels":{"com.docker.stack.namespace":"apiprobe"},"Env":["MODE=prod"],
      "Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false},
      "Secrets":[{"File":{"Name":"db_pw","UID":"0","GID":"0","Mode":292},"SecretID":"jhkr","SecretName":"apiprobe_db_pw"}],
      "Configs":[{"File":{"Name":"/etc/app.conf","UID":"0","GID":"0","Mode":292},"ConfigID":"jmko","ConfigName":"apiprobe_app_conf"}]},
     "Resources":{},"RestartPolicy":{"Condition":"on-failure"},"Placement":{},
     "Networks":[{"Target":"apiprobe_front","Aliases":["web"]}],"ForceUpdate":0},
   "Mode":{"Replicated":{"Replicas":2}},
   "UpdateConfig":{"Parallelism":1,"MaxFailureRatio":0,"Order":""},
   "EndpointSpec":{"Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":18081,"PublishMode":"ingress"}]}}"#;

    fn parse(s: &str) -> ServiceSpec {
        let mut spec: ServiceSpec = serde_json::from_str(s).unwrap();
        spec.normalize();
        spec
    }

    #[test]
    fn cli_create_body() {
        let spec = parse(CLI_CREATE);
        spec.validate().unwrap();
        let c = spec.task_template.container_spec.as_ref().unwrap();
        assert_eq!(c.init, Some(false));
        assert_eq!(c.mounts[0].r#type, Some(MountType::Tmpfs));
        assert_eq!(c.secrets[0].file.as_ref().unwrap().mode, 292);
        assert_eq!(c.secrets[0].file.as_ref().unwrap().uid, "0");
        let rp = spec.task_template.restart_policy.as_ref().unwrap();
        assert_eq!(rp.condition, Some(RestartCondition::OnFailure));
        assert_eq!(spec.mode.replicas(), Some(2));
        assert_eq!(spec.task_template.runtime, "container");
        let out = serde_json::to_value(&spec).unwrap();
        assert_eq!(out["TaskTemplate"]["Runtime"], "container");
        assert_eq!(out["TaskTemplate"]["ContainerSpec"]["Isolation"], "default");
        assert_eq!(out["EndpointSpec"]["Ports"][0]["PublishMode"], "ingress");
        assert_eq!(out["TaskTemplate"]["ForceUpdate"], 0);
        // What we emit must parse back to the same thing (the CLI round-trips specs).
        let again: ServiceSpec = serde_json::from_value(out).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn stack_deploy_body() {
        let spec = parse(STACK_DEPLOY);
        spec.validate().unwrap();
        let u = spec.update_config.as_ref().unwrap();
        assert_eq!(u.order, UpdateOrder::StopFirst);
        assert_eq!(u.failure_action, FailureAction::Pause);
        assert_eq!(u.effective_monitor(), DEFAULT_MONITOR);
        assert_eq!(
            spec.endpoint_spec.as_ref().unwrap().mode,
            ResolutionMode::Vip
        );
        assert_eq!(spec.task_template.networks[0].target, "apiprobe_front");
    }

    #[test]
    fn bare_create_gets_one_replica() {
        let spec = parse(
            r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb"}},"Mode":{"Replicated":{}}}"#,
        );
        assert_eq!(spec.mode.replicated.as_ref().unwrap().replicas, Some(1));
        let out = serde_json::to_value(&spec).unwrap();
        assert_eq!(out["Mode"]["Replicated"]["Replicas"], 1);
        let spec = parse(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb"}}}"#);
        assert_eq!(spec.mode.replicas(), Some(1));
        let job = parse(
            r#"{"Name":"j","TaskTemplate":{"ContainerSpec":{"Image":"bb"}},"Mode":{"ReplicatedJob":{}}}"#,
        );
        let j = job.mode.replicated_job.as_ref().unwrap();
        assert_eq!((j.max_concurrent, j.total_completions), (Some(1), Some(1)));
        job.validate().unwrap();
    }

    #[test]
    fn update_rules_and_names() {
        let cur = parse(CLI_CREATE);
        let mut upd = cur.clone();
        upd.mode = ServiceMode::replicated(5);
        upd.validate_update(&cur).unwrap();
        upd.mode = ServiceMode::global();
        assert!(
            upd.validate_update(&cur)
                .unwrap_err()
                .message
                .contains("mode change")
        );
        let mut ren = cur.clone();
        ren.annotations.name = "other".into();
        assert!(ren.validate_update(&cur).is_err());
        let mut anon = parse(r#"{"TaskTemplate":{"ContainerSpec":{"Image":"bb"}}}"#);
        assert!(anon.validate().is_err());
        anon.fill_name();
        anon.validate().unwrap();
    }

    #[test]
    fn inserted_defaults() {
        let spec = parse(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb"}}}"#)
            .with_inserted_defaults();
        let c = spec.task_template.container_spec.as_ref().unwrap();
        assert_eq!(c.stop_grace_period, Some(10 * SECOND));
        assert_eq!(spec.update_config, Some(UpdateConfig::defaults()));
        assert_eq!(spec.rollback_config, Some(UpdateConfig::defaults()));
        assert_eq!(
            spec.task_template.restart_policy,
            Some(RestartPolicy::defaults())
        );
    }

    fn invalid(json: &str) -> String {
        let mut spec: ServiceSpec = match serde_json::from_str(json) {
            Ok(s) => s,
            Err(e) => return e.to_string(),
        };
        spec.normalize();
        spec.validate().unwrap_err().message
    }

    #[test]
    fn validation_errors() {
        let img = r#""TaskTemplate":{"ContainerSpec":{"Image":"bb"}}"#;
        assert!(
            invalid(r#"{"Name":"bad.name","TaskTemplate":{"ContainerSpec":{"Image":"bb"}}}"#)
                .contains("invalid service name")
        );
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{}}}"#).contains("image"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{}}"#).contains("ContainerSpec"));
        assert!(
            invalid(&format!(
                r#"{{"Name":"x",{img},"Mode":{{"Global":{{}},"Replicated":{{}}}}}}"#
            ))
            .contains("only one")
        );
        assert!(
            invalid(&format!(
                r#"{{"Name":"x",{img},"Mode":{{"GlobalJob":{{}}}},"UpdateConfig":{{}}}}"#
            ))
            .contains("jobs")
        );
        assert!(
            invalid(&format!(
                r#"{{"Name":"x",{img},"UpdateConfig":{{"MaxFailureRatio":1.5}}}}"#
            ))
            .contains("MaxFailureRatio")
        );
        assert!(
            invalid(&format!(
                r#"{{"Name":"x",{img},"UpdateConfig":{{"Delay":-1}}}}"#
            ))
            .contains("Delay")
        );
        assert!(invalid(&format!(r#"{{"Name":"x",{img},"EndpointSpec":{{"Mode":"dnsrr","Ports":[{{"TargetPort":80,"PublishedPort":8080}}]}}}}"#)).contains("dnsrr"));
        assert!(invalid(&format!(r#"{{"Name":"x",{img},"EndpointSpec":{{"Ports":[{{"TargetPort":80,"PublishedPort":8080}},{{"TargetPort":81,"PublishedPort":8080}}]}}}}"#)).contains("duplicate"));
        // Same port on different protocols is fine.
        let ok = parse(&format!(
            r#"{{"Name":"x",{img},"EndpointSpec":{{"Ports":[{{"TargetPort":53,"PublishedPort":53}},{{"Protocol":"udp","TargetPort":53,"PublishedPort":53}}]}}}}"#
        ));
        ok.validate().unwrap();
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb","Healthcheck":{"Interval":1000}}}}"#).contains("1ms"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb","Mounts":[{"Type":"bind","Target":"/a"}]}}}"#).contains("Source"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb","Mounts":[{"Target":"/a"}]}}}"#).contains("type"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb","Mounts":[{"Type":"tmpfs","Target":"rel"}]}}}"#).contains("absolute"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb","Mounts":[{"Type":"floppy","Target":"/a"}]}}}"#).contains("floppy"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb","Secrets":[{"File":{"Name":"a"},"SecretName":"s1"},{"File":{"Name":"a"},"SecretName":"s2"}]}}}"#).contains("conflicting target"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb"},"Placement":{"Constraints":["node.role=manager"]}}}"#).contains("constraint"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb"},"RestartPolicy":{"Delay":-5}}}"#).contains("restart-delay"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb"},"Resources":{"Reservations":{"MemoryBytes":1024}}}}"#).contains("4MiB"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb","StopGracePeriod":-1}}}"#).contains("StopGracePeriod"));
        assert!(invalid(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"bb"},"Networks":[{"Target":"n1","Aliases":["ok","bad!alias"]}]}}"#).contains("\"bad!alias\""));
    }

    #[test]
    fn task_up_to_date_follows_the_spec_version() {
        let mut svc = Service {
            id: "s".into(),
            spec: parse(CLI_CREATE),
            ..Service::default()
        };
        svc.spec_version = Some(Version { index: 7 });
        let mut task = Task {
            service_id: "s".into(),
            ..Task::default()
        };
        assert!(!svc.is_task_up_to_date(&task));
        task.spec_version = Some(Version { index: 7 });
        assert!(svc.is_task_up_to_date(&task));
    }

    #[test]
    fn service_object_json() {
        let svc = Service {
            id: "s1".into(),
            spec: parse(CLI_CREATE),
            endpoint: Endpoint {
                ports: vec![PortConfig {
                    target_port: 80,
                    published_port: 18080,
                    ..PortConfig::default()
                }],
                ..Endpoint::default()
            },
            update_status: Some(UpdateStatus {
                state: Some(UpdateState::RollbackStarted),
                ..UpdateStatus::default()
            }),
            service_status: Some(ServiceStatus {
                running_tasks: 1,
                desired_tasks: 2,
                completed_tasks: 0,
            }),
            ..Service::default()
        };
        let j = serde_json::to_value(&svc).unwrap();
        assert_eq!(j["Endpoint"]["Ports"][0]["Protocol"], "tcp");
        assert_eq!(j["Endpoint"]["Ports"][0]["PublishMode"], "ingress");
        assert_eq!(j["UpdateStatus"]["State"], "rollback_started");
        assert_eq!(j["ServiceStatus"]["DesiredTasks"], 2);
        assert!(j.get("PreviousSpec").is_none());
        let back: Service = serde_json::from_value(j).unwrap();
        assert_eq!(back, svc);
    }
}
