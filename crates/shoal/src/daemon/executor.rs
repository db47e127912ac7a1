//! Runs swarm tasks as containers: the agent's `TaskExecutor` over this node's image store and
//! container runtime. Containers are named `<service>.<slot>.<task>` (global tasks:
//! `<service>.<node>.<task>`) and labelled like Docker's (`com.docker.swarm.*`).

use super::images::{Images, api_error};
use super::netplane::{self, NetPlane, PrepareError};
use super::templating::{self, TemplateInputs};
use async_trait::async_trait;
use shoal_agent::worker::{ExecError, Exit, TaskExecutor};
use shoal_runtime::container::{
    ContainerConfig, Executor, ExecutorError, MountKind, MountSpec, NetworkMode, Resources,
    SecretFile, health_from_wire,
};
use shoal_runtime::image::{Reference, registry::no_progress};
use shoal_types::task::NetworkAttachment;
use shoal_types::task_spec::{ContainerSpec, FileTarget, MountType};
use shoal_types::{Config, Secret, Task};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct ContainerExecutor {
    pub images: Arc<Images>,
    pub executor: Executor,
    /// The node data plane; None when it could not be opened (tasks on networks then fail
    /// with that reason, tasks without networks run as before).
    pub netplane: Option<Arc<NetPlane>>,
    netplane_error: String,
    /// For config/secret templates' `.Node.Hostname`.
    node_hostname: String,
}

/// A secret's or config's file name in the container: its own, else the object's name.
fn file_name_or<'a>(file: Option<&'a FileTarget>, object_name: &'a str) -> &'a str {
    file.map(|f| f.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or(object_name)
}

fn fatal(e: impl std::fmt::Display) -> ExecError {
    ExecError::fatal(e.to_string())
}

fn from_exec(e: ExecutorError) -> ExecError {
    ExecError {
        fatal: e.is_fatal(),
        message: e.to_string(),
    }
}

fn parse_id(s: &str) -> u32 {
    s.parse().unwrap_or(0)
}

fn container_name(task: &Task) -> String {
    netplane::plan::container_name(task)
}

impl ContainerExecutor {
    /// The executor of the daemon at `data_root`, with its data plane (which removes network
    /// namespaces left by tasks whose containers are gone).
    pub fn new(
        images: Arc<Images>,
        executor: Executor,
        data_root: &Path,
        node_hostname: &str,
    ) -> ContainerExecutor {
        let live: BTreeSet<String> = executor
            .runtime()
            .list(true)
            .into_iter()
            .filter_map(|c| c.labels.get("com.docker.swarm.task.id").cloned())
            .chain(super::attach::persisted_ids(data_root))
            .collect();
        let (netplane, netplane_error) = match NetPlane::open(data_root, &live) {
            Ok(n) => (Some(n), String::new()),
            Err(e) => {
                tracing::error!("the node data plane is unavailable: {e:#}");
                (None, format!("{e:#}"))
            }
        };
        ContainerExecutor {
            images,
            executor,
            netplane,
            netplane_error,
            node_hostname: node_hostname.to_string(),
        }
    }

    /// The unrendered data of the task's secrets and configs by target name, for templates.
    fn template_inputs<'a>(
        &'a self,
        spec: &ContainerSpec,
        secrets: &'a [Secret],
        configs: &'a [Config],
    ) -> TemplateInputs<'a> {
        let secret_files = spec.secrets.iter().filter_map(|r| {
            let s = secrets.iter().find(|s| s.id == r.secret_id)?;
            let target = file_name_or(r.file.as_ref(), &r.secret_name);
            Some((
                target.to_string(),
                s.spec.data.as_deref().unwrap_or_default(),
            ))
        });
        let config_files = spec.configs.iter().filter_map(|r| {
            let c = configs.iter().find(|c| c.id == r.config_id)?;
            let target = file_name_or(r.file.as_ref(), &r.config_name);
            Some((
                target.to_string(),
                c.spec.data.as_deref().unwrap_or_default(),
            ))
        });
        TemplateInputs {
            node_hostname: &self.node_hostname,
            secrets: secret_files.collect(),
            configs: config_files.collect(),
        }
    }

    fn plane(&self) -> Result<&Arc<NetPlane>, ExecError> {
        self.netplane.as_ref().ok_or_else(|| ExecError {
            fatal: false,
            message: format!(
                "the node data plane is unavailable: {}",
                self.netplane_error
            ),
        })
    }

    async fn ensure_image(&self, image: &str) -> Result<(), ExecError> {
        if self.images.store.get(image).is_ok() {
            return Ok(());
        }
        let reference = Reference::parse(image).map_err(fatal)?;
        self.images
            .registry
            .pull(&self.images.store, &reference, None, &no_progress)
            .await
            .map(|_| ())
            .map_err(|e| {
                let msg = api_error(e).message;
                ExecError::fatal(format!("No such image: {image} ({msg})"))
            })
    }

    fn config(
        &self,
        task: &Task,
        secrets: &[Secret],
        configs: &[Config],
    ) -> Result<ContainerConfig, ExecError> {
        let spec = task
            .spec
            .container_spec
            .as_ref()
            .ok_or_else(|| ExecError::fatal("task has no container spec"))?;
        let resolved = self
            .images
            .resolve(&spec.image)
            .map_err(|e| ExecError::fatal(e.message))?;
        let mut labels = spec.labels.clone();
        labels.insert("com.docker.swarm.task.id".into(), task.id.clone());
        labels.insert("com.docker.swarm.task.name".into(), {
            let n = container_name(task);
            n.rsplit_once('.').map(|(a, _)| a.to_string()).unwrap_or(n)
        });
        labels.insert("com.docker.swarm.node.id".into(), task.node_id.clone());
        labels.insert(
            "com.docker.swarm.service.id".into(),
            task.service_id.clone(),
        );
        labels.insert(
            "com.docker.swarm.service.name".into(),
            task.service_annotations.name.clone(),
        );
        let mut mounts = Vec::new();
        for m in &spec.mounts {
            let kind = match m.r#type.unwrap_or(MountType::Volume) {
                MountType::Bind => MountKind::Bind,
                MountType::Volume => MountKind::Volume,
                MountType::Tmpfs => MountKind::Tmpfs,
                other => {
                    return Err(ExecError::fatal(format!(
                        "mount type {} is not supported",
                        other.as_str()
                    )));
                }
            };
            mounts.push(MountSpec {
                kind,
                source: (!m.source.is_empty()).then(|| m.source.clone()),
                target: m.target.clone(),
                read_only: m.read_only,
                tmpfs_size: m
                    .tmpfs_options
                    .as_ref()
                    .map(|t| t.size_bytes)
                    .filter(|s| *s > 0)
                    .map(|s| s as u64),
                tmpfs_mode: m.tmpfs_options.as_ref().map(|t| t.mode).filter(|m| *m > 0),
                no_copy: m.volume_options.as_ref().is_some_and(|v| v.no_copy),
            });
        }
        let inputs = self.template_inputs(spec, secrets, configs);
        let mut files = Vec::new();
        for r in &spec.secrets {
            let Some(s) = secrets.iter().find(|s| s.id == r.secret_id) else {
                return Err(ExecError::fatal(format!(
                    "secret {} is not available on this node",
                    r.secret_name
                )));
            };
            let name = file_name_or(r.file.as_ref(), &r.secret_name).to_string();
            let f = r.file.clone().unwrap_or_default();
            files.push(SecretFile {
                data: templating::render(
                    s.spec.templating.as_ref().map(|d| d.name.as_str()),
                    &format!("secret {}", r.secret_name),
                    s.spec.data.as_deref().unwrap_or_default(),
                    task,
                    &inputs,
                )
                .map_err(ExecError::fatal)?,
                target: name,
                uid: parse_id(&f.uid),
                gid: parse_id(&f.gid),
                mode: if f.mode == 0 { 0o444 } else { f.mode },
            });
        }
        for r in &spec.configs {
            let Some(c) = configs.iter().find(|c| c.id == r.config_id) else {
                return Err(ExecError::fatal(format!(
                    "config {} is not available on this node",
                    r.config_name
                )));
            };
            let Some(f) = r.file.clone() else { continue };
            let name = file_name_or(Some(&f), &r.config_name);
            let target = if name.starts_with('/') {
                name.to_string()
            } else {
                format!("/{name}")
            };
            files.push(SecretFile {
                data: templating::render(
                    c.spec.templating.as_ref().map(|d| d.name.as_str()),
                    &format!("config {}", r.config_name),
                    c.spec.data.as_deref().unwrap_or_default(),
                    task,
                    &inputs,
                )
                .map_err(ExecError::fatal)?,
                target,
                uid: parse_id(&f.uid),
                gid: parse_id(&f.gid),
                mode: if f.mode == 0 { 0o444 } else { f.mode },
            });
        }
        let limits = task
            .spec
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        Ok(ContainerConfig {
            name: Some(container_name(task)),
            image: spec.image.clone(),
            image_id: resolved.image_id,
            lower_dirs: resolved.lower_dirs,
            image_config: resolved.defaults,
            // Docker's service semantics: Command replaces the entrypoint, Args the cmd.
            entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
            cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
            env: spec.env.clone(),
            working_dir: (!spec.dir.is_empty()).then(|| spec.dir.clone()),
            user: (!spec.user.is_empty()).then(|| spec.user.clone()),
            hostname: (!spec.hostname.is_empty()).then(|| spec.hostname.clone()),
            mounts,
            resources: Resources {
                memory: limits.memory_bytes.max(0) as u64,
                nano_cpus: limits.nano_cpus.max(0) as u64,
                pids_limit: limits.pids,
            },
            healthcheck: spec
                .healthcheck
                .as_ref()
                .map(health_from_wire)
                .transpose()
                .map_err(fatal)?,
            stop_signal: (!spec.stop_signal.is_empty()).then(|| spec.stop_signal.clone()),
            stop_timeout: spec
                .stop_grace_period
                .map(|ns| (ns.max(0) as u64).div_ceil(1_000_000_000)),
            read_only: spec.read_only,
            cap_add: spec.capability_add.clone(),
            cap_drop: spec.capability_drop.clone(),
            labels,
            extra_hosts: spec.hosts.clone(),
            files,
            ..Default::default()
        })
    }
}

/// While a task runs: withdraw it from DNS, VIPs and the mesh when its healthcheck turns
/// unhealthy, publish it again when it is healthy. Returns only if the container's state can
/// no longer be followed.
async fn follow_health(rt: &shoal_runtime::container::Runtime, plane: &NetPlane, id: &str) {
    let Ok(mut changes) = rt.subscribe(id) else {
        return;
    };
    let mut withdrawn = false;
    loop {
        let status = rt
            .inspect(id)
            .ok()
            .and_then(|i| i.state.health)
            .and_then(|h| serde_json::to_value(h.status).ok());
        let is = |s: &str| status.as_ref().is_some_and(|v| v == s);
        if is("unhealthy") && !withdrawn {
            tracing::info!(container = %id, "unhealthy: withdrawn from service discovery");
            plane.container_stopping(id).await;
            withdrawn = true;
        } else if is("healthy") && withdrawn {
            tracing::info!(container = %id, "healthy again: published");
            plane.container_running(id).await;
            withdrawn = false;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

#[async_trait]
impl TaskExecutor for ContainerExecutor {
    async fn prepare(
        &self,
        task: &Task,
        secrets: &[Secret],
        configs: &[Config],
    ) -> Result<String, ExecError> {
        let image = task
            .spec
            .container_spec
            .as_ref()
            .map(|c| c.image.clone())
            .ok_or_else(|| ExecError::fatal("task has no container spec"))?;
        self.ensure_image(&image).await?;
        let mut cfg = self.config(task, secrets, configs)?;
        if task.networks_attachments.is_empty() {
            return self.executor.prepare(cfg).await.map_err(from_exec);
        }
        let plane = self.plane()?;
        let net = plane.prepare_task(task).await.map_err(|e| ExecError {
            fatal: matches!(e, PrepareError::Invalid(_)),
            message: e.to_string(),
        })?;
        cfg.network = NetworkMode::Netns(net.netns_path);
        cfg.resolv_conf = Some(net.resolv_conf);
        match self.executor.prepare(cfg).await {
            Ok(id) => {
                plane.bind_container(&task.id, &id).await;
                Ok(id)
            }
            Err(e) => {
                plane.release_task(&task.id).await;
                Err(from_exec(e))
            }
        }
    }

    async fn start(&self, container: &str) -> Result<(), ExecError> {
        self.executor.start(container).await.map_err(from_exec)?;
        // Running (and healthy, when it has a healthcheck): now peers may send it traffic.
        if let Some(p) = &self.netplane {
            p.container_running(container).await;
        }
        Ok(())
    }

    async fn wait(&self, container: &str) -> Result<Exit, ExecError> {
        let exit = match &self.netplane {
            Some(plane) => {
                let health = follow_health(self.executor.runtime(), plane, container);
                tokio::pin!(health);
                tokio::select! {
                    r = self.executor.wait(container) => r,
                    // Health can no longer be followed: just wait for the exit.
                    () = &mut health => self.executor.wait(container).await,
                }
            }
            None => self.executor.wait(container).await,
        };
        // Dead or unwaitable: no longer a backend anywhere.
        if let Some(p) = &self.netplane {
            p.container_stopping(container).await;
        }
        let exit = exit.map_err(from_exec)?;
        Ok(Exit {
            code: exit.exit_code,
            error: if exit.oom_killed {
                Some("task: container was OOM-killed".into())
            } else {
                exit.error
            },
        })
    }

    async fn shutdown(&self, container: &str, grace: Duration) -> Result<(), ExecError> {
        // Drain: withdraw the task from DNS, VIPs and the mesh everywhere, give gossip time to
        // carry that, then stop the container.
        if let Some(p) = &self.netplane
            && p.container_stopping(container).await
        {
            tokio::time::sleep(netplane::DRAIN).await;
        }
        self.executor
            .shutdown(container, grace)
            .await
            .map_err(from_exec)
    }

    async fn remove(&self, container: &str) -> Result<(), ExecError> {
        let res = self.executor.remove(container).await.map_err(from_exec);
        if let Some(p) = &self.netplane {
            p.release_container(container).await;
        }
        res
    }

    fn log_reader(&self) -> Option<Arc<dyn shoal_agent::logs::TaskLogReader>> {
        Some(Arc::new(super::logs::RuntimeLogReader(
            self.executor.runtime().clone(),
        )))
    }

    async fn set_node_attachments(&self, attachments: Vec<NetworkAttachment>) {
        if let Some(p) = &self.netplane {
            p.set_node_attachments(attachments).await;
        }
    }

    async fn existing(&self, task: &Task) -> Option<(String, bool)> {
        let found = self
            .executor
            .runtime()
            .list(true)
            .into_iter()
            .find(|c| c.labels.get("com.docker.swarm.task.id") == Some(&task.id))
            .map(|c| {
                let running = serde_json::to_value(c.state).is_ok_and(|v| v == "running");
                (c.id, running)
            });
        if let Some((id, running)) = &found
            && !task.networks_attachments.is_empty()
            && let Some(p) = &self.netplane
            && let Err(e) = p.restore(task, id, *running).await
        {
            tracing::warn!(task = %task.id, "restoring the task's network: {e:#}");
        }
        found
    }
}
