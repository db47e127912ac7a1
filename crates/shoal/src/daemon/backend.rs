//! The daemon's implementation of the REST API (`shoal_api::Backend`).

use super::Daemon;
use super::containers;
use super::describe::{ENGINE_VERSION, kernel_version, memory_bytes, ncpu};
use super::named_data::{self, label_matches};
use super::swarm::Slot;
use async_trait::async_trait;
use serde_json::Value;
use shoal_api::types::{NetworkCreateRequest, NetworkInspect};
use shoal_api::{
    BackendResult, EventStream, EventsOptions, Filters, IdResponse, Logs, LogsOptions,
    NetworkCreateResponse, ServiceCreateResponse, ServiceUpdateOptions, ServiceUpdateResponse,
};
use shoal_manager::control::{services, tasks};
use shoal_manager::nodes;
use shoal_store::Change;
use shoal_types::swarm::{
    InitRequest, JoinRequest, LocalNodeState, Peer, UnlockKeyResponse, UnlockRequest, UpdateFlags,
};
use shoal_types::system::{ComponentVersion, PlatformName};
use shoal_types::{
    API_VERSION, ApiError, ClusterSpec, Config, ConfigSpec, MIN_API_VERSION, Node, NodeSpec,
    Object, ObjectKind, Secret, SecretSpec, Service, ServiceSpec, Swarm, SwarmInfo, SystemInfo,
    SystemVersion, Task, resolve,
};
use std::sync::Arc;

pub struct DaemonBackend(pub Arc<Daemon>);

/// What this build cannot do yet: a clear error, nothing changed.
fn not_yet(what: &str) -> ApiError {
    ApiError::internal(format!(
        "{what} is not available in this build of shoal yet (cluster core only)"
    ))
}

fn node_matches(n: &Node, f: &Filters) -> bool {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let vals = f.get(key);
        vals.is_empty() || vals.iter().any(|v| pred(v))
    };
    any("id", &|v| n.id.starts_with(v))
        && any("name", &|v| n.display_name().starts_with(v))
        && any("label", &|v| label_matches(&n.description.engine.labels, v))
        && any("node.label", &|v| {
            label_matches(&n.spec.annotations.labels, v)
        })
        && any("role", &|v| n.spec.role.as_str() == v)
        && any("membership", &|v| v == "accepted")
}

impl DaemonBackend {
    async fn swarm_info(&self) -> SwarmInfo {
        let d = &self.0;
        let mut info = SwarmInfo::default();
        match &*d.slot.read().await {
            Slot::Inactive => info.local_node_state = LocalNodeState::Inactive,
            Slot::Locked(local) => {
                info.local_node_state = LocalNodeState::Locked;
                info.node_id = local.node_id.clone();
            }
            Slot::Active(node) => {
                let session = node.session.borrow().clone();
                info.local_node_state = if session.connected || node.manager.is_some() {
                    LocalNodeState::Active
                } else {
                    LocalNodeState::Pending
                };
                info.node_id = node.creds.node_id.clone();
                info.node_addr = node
                    .local
                    .advertise_addr
                    .rsplit_once(':')
                    .map(|(h, _)| h.to_string())
                    .unwrap_or_default();
                info.error = session.last_error.clone().unwrap_or_default();
                if let Some(m) = &node.manager {
                    info.control_available = true;
                    let nodes = m.nodes();
                    info.nodes = nodes.len() as i64;
                    info.managers =
                        nodes.iter().filter(|n| n.manager_status.is_some()).count() as i64;
                    info.remote_managers = nodes
                        .iter()
                        .filter_map(|n| {
                            n.manager_status.as_ref().map(|ms| Peer {
                                node_id: n.id.clone(),
                                addr: ms.addr.clone(),
                            })
                        })
                        .collect();
                    info.cluster = m.cluster().map(|c| c.to_cluster_info());
                    if !info.error.is_empty() && m.is_leader() {
                        info.error.clear();
                    }
                } else {
                    info.remote_managers = session
                        .managers
                        .iter()
                        .map(|a| Peer {
                            node_id: String::new(),
                            addr: a.clone(),
                        })
                        .collect();
                }
            }
        }
        info
    }

    fn find_node(&self, nodes: &[Node], id: &str) -> BackendResult<Node> {
        resolve(nodes.iter(), id)
            .cloned()
            .map_err(|e| e.into_api("node"))
    }
}

#[async_trait]
impl shoal_api::Backend for DaemonBackend {
    async fn swarm_ping_state(&self) -> String {
        match &*self.0.slot.read().await {
            Slot::Inactive => "inactive".into(),
            Slot::Locked(_) => "locked".into(),
            Slot::Active(n) if n.manager.is_some() => "active/manager".into(),
            Slot::Active(_) => "active/worker".into(),
        }
    }

    async fn version(&self) -> BackendResult<SystemVersion> {
        let mut details = std::collections::BTreeMap::new();
        details.insert("ApiVersion".into(), API_VERSION.into());
        details.insert("MinAPIVersion".into(), MIN_API_VERSION.into());
        details.insert("Os".into(), std::env::consts::OS.into());
        details.insert("Arch".into(), arch());
        Ok(SystemVersion {
            platform: PlatformName {
                name: "Shoal".into(),
            },
            components: vec![ComponentVersion {
                name: "Engine".into(),
                version: ENGINE_VERSION.into(),
                details,
            }],
            version: ENGINE_VERSION.into(),
            api_version: API_VERSION.into(),
            min_api_version: MIN_API_VERSION.into(),
            git_commit: String::new(),
            go_version: format!("rust (shoal {ENGINE_VERSION})"),
            os: std::env::consts::OS.into(),
            arch: arch(),
            kernel_version: kernel_version(),
            experimental: false,
            build_time: String::new(),
        })
    }

    async fn info(&self) -> BackendResult<SystemInfo> {
        let d = &self.0;
        let swarm = self.swarm_info().await;
        Ok(SystemInfo {
            id: swarm.node_id.clone(),
            driver: "overlay2".into(),
            kernel_version: kernel_version(),
            operating_system: "linux".into(),
            os_type: "linux".into(),
            architecture: std::env::consts::ARCH.into(),
            ncpu: ncpu(),
            mem_total: memory_bytes(),
            docker_root_dir: d.cfg.data_root.display().to_string(),
            name: d.cfg.hostname.clone(),
            server_version: ENGINE_VERSION.into(),
            default_runtime: d.cfg.runtime.clone(),
            logging_driver: "json-file".into(),
            cgroup_driver: "cgroupfs".into(),
            swarm,
            ..Default::default()
        })
    }

    async fn events(&self, _opts: EventsOptions) -> BackendResult<EventStream> {
        Err(not_yet("the events stream"))
    }

    async fn swarm_inspect(&self) -> BackendResult<Swarm> {
        let m = self.0.manager().await?;
        m.cluster()
            .map(|c| c.to_swarm())
            .ok_or_else(|| ApiError::unavailable("the cluster state is not known yet"))
    }

    async fn swarm_init(&self, req: InitRequest) -> BackendResult<String> {
        self.0.swarm_init(req).await
    }

    async fn swarm_join(&self, req: JoinRequest) -> BackendResult<()> {
        self.0.swarm_join(req).await
    }

    async fn swarm_leave(&self, force: bool) -> BackendResult<()> {
        self.0.swarm_leave(force).await
    }

    async fn swarm_update(
        &self,
        version: u64,
        spec: ClusterSpec,
        flags: UpdateFlags,
    ) -> BackendResult<()> {
        self.0.swarm_update(version, spec, flags).await
    }

    async fn swarm_unlock(&self, req: UnlockRequest) -> BackendResult<()> {
        self.0.swarm_unlock(req).await
    }

    async fn swarm_unlock_key(&self) -> BackendResult<UnlockKeyResponse> {
        Ok(UnlockKeyResponse {
            unlock_key: self.0.swarm_unlock_key().await?,
        })
    }

    async fn node_list(&self, filters: Filters) -> BackendResult<Vec<Node>> {
        filters.validate(&["id", "name", "label", "node.label", "role", "membership"])?;
        let m = self.0.manager().await?;
        let mut nodes: Vec<Node> = m
            .nodes()
            .into_iter()
            .filter(|n| node_matches(n, &filters))
            .collect();
        nodes.sort_by(|a, b| a.description.hostname.cmp(&b.description.hostname));
        Ok(nodes)
    }

    async fn node_inspect(&self, id: &str) -> BackendResult<Node> {
        let m = self.0.manager().await?;
        self.find_node(&m.nodes(), id)
    }

    async fn node_update(&self, id: &str, version: u64, spec: NodeSpec) -> BackendResult<()> {
        let m = self.0.manager().await?;
        let node = self.find_node(&m.raw_nodes(), id)?;
        if node.meta.version.index != version {
            return Err(ApiError::out_of_sequence());
        }
        let updated = nodes::plan_update(&node, spec, &m.membership())?;
        m.propose(vec![Change::Update {
            object: Object::Node(updated),
            expected_version: Some(version),
        }])
        .await?;
        Ok(())
    }

    async fn node_remove(&self, id: &str, force: bool) -> BackendResult<()> {
        let m = self.0.manager().await?;
        let node = self.find_node(&m.raw_nodes(), id)?;
        nodes::check_remove(&node, force, &m.membership())?;
        if node.id == m.node_id {
            return Err(ApiError::invalid_argument(
                "a node cannot remove itself: use `swarm leave` on it instead",
            ));
        }
        let cluster = m
            .cluster()
            .ok_or_else(|| ApiError::unavailable("the cluster state is not known yet"))?;
        let mut updated = cluster.clone();
        updated.blacklisted_certificates.insert(
            node.id.clone(),
            shoal_types::swarm::BlacklistedCertificate {
                expiry: Some(chrono::Utc::now() + chrono::Duration::days(97)),
            },
        );
        // A removed manager leaves Raft too: the leader loop drops voters without a node.
        let changes = vec![
            Change::Delete {
                kind: ObjectKind::Node,
                id: node.id.clone(),
                expected_version: Some(node.meta.version.index),
            },
            Change::Update {
                object: Object::Cluster(updated),
                expected_version: Some(cluster.meta.version.index),
            },
        ];
        m.propose(changes).await?;
        Ok(())
    }

    async fn service_list(&self, filters: Filters, status: bool) -> BackendResult<Vec<Service>> {
        let m = self.0.manager().await?;
        services::list_services(&m.view(), &type_filters(&filters), status)
    }

    async fn service_inspect(&self, id: &str, insert_defaults: bool) -> BackendResult<Service> {
        let m = self.0.manager().await?;
        let view = m.view();
        let mut svc = services::find_service(&view, id)?.clone();
        if insert_defaults {
            svc.spec = svc.spec.with_inserted_defaults();
        }
        Ok(svc)
    }

    async fn service_create(
        &self,
        mut spec: ServiceSpec,
        _registry_auth: Option<String>,
    ) -> BackendResult<ServiceCreateResponse> {
        // Stored like the docker CLI's default (`--endpoint-mode vip`): `inspect --pretty` reads it.
        spec.endpoint_spec.get_or_insert_with(Default::default);
        let m = self.0.manager().await?;
        let svc = services::create_service(&m.view(), spec, chrono::Utc::now())?;
        let id = svc.id.clone();
        m.propose(vec![Change::Create(Object::Service(svc))])
            .await?;
        Ok(ServiceCreateResponse { id, warnings: None })
    }

    async fn service_update(
        &self,
        id: &str,
        mut spec: ServiceSpec,
        opts: ServiceUpdateOptions,
    ) -> BackendResult<ServiceUpdateResponse> {
        spec.endpoint_spec.get_or_insert_with(Default::default);
        let m = self.0.manager().await?;
        let svc = services::update_service(
            &m.view(),
            id,
            opts.version,
            spec,
            opts.rollback == "previous",
            chrono::Utc::now(),
        )?;
        m.propose(vec![Change::Update {
            object: Object::Service(svc),
            expected_version: Some(opts.version),
        }])
        .await?;
        Ok(ServiceUpdateResponse { warnings: None })
    }

    async fn service_remove(&self, id: &str) -> BackendResult<()> {
        let m = self.0.manager().await?;
        let changes = services::remove_service(&m.view(), id)?;
        m.propose(changes).await?;
        Ok(())
    }

    async fn service_logs(&self, id: &str, opts: LogsOptions) -> BackendResult<Logs> {
        let svc = self.service_inspect(id, false).await?;
        super::logs::service_logs(&self.0, &svc.id, opts).await
    }

    async fn task_list(&self, filters: Filters) -> BackendResult<Vec<Task>> {
        let m = self.0.manager().await?;
        // As moby's GetTasks: only tasks with a container (network attachments are not listed).
        let all = tasks::list_tasks(&m.view(), &type_filters(&filters))?;
        Ok(all
            .into_iter()
            .filter(|t| !t.is_network_attachment())
            .collect())
    }

    async fn task_inspect(&self, id: &str) -> BackendResult<Task> {
        let m = self.0.manager().await?;
        let view = m.view();
        if let Some(Object::Task(t)) = view.get(ObjectKind::Task, id) {
            return Ok(t.clone());
        }
        let matches: Vec<&Task> = view
            .list(ObjectKind::Task)
            .filter_map(|o| match o {
                Object::Task(t) if t.id.starts_with(id) => Some(t),
                _ => None,
            })
            .collect();
        match matches.as_slice() {
            [t] if !id.is_empty() => Ok((*t).clone()),
            [] | [_] => Err(ApiError::not_found(format!("task {id} not found"))),
            many => Err(ApiError::invalid_argument(format!(
                "task {id} is ambiguous ({} matches found)",
                many.len()
            ))),
        }
    }

    async fn task_logs(&self, id: &str, opts: LogsOptions) -> BackendResult<Logs> {
        let task = self.task_inspect(id).await?;
        super::logs::task_logs(&self.0, &task.id, opts).await
    }

    async fn secret_list(&self, filters: Filters) -> BackendResult<Vec<Secret>> {
        let m = self.0.manager().await?;
        Ok(named_data::list::<Secret>(&m, &filters)?
            .iter()
            .map(Secret::without_data)
            .collect())
    }
    async fn secret_create(&self, spec: SecretSpec) -> BackendResult<IdResponse> {
        let m = self.0.manager().await?;
        Ok(IdResponse {
            id: named_data::create::<Secret>(&m, spec).await?,
        })
    }
    async fn secret_inspect(&self, id: &str) -> BackendResult<Secret> {
        let m = self.0.manager().await?;
        Ok(named_data::inspect::<Secret>(&m, id)?.without_data())
    }
    async fn secret_update(&self, id: &str, version: u64, spec: SecretSpec) -> BackendResult<()> {
        let m = self.0.manager().await?;
        named_data::update::<Secret>(&m, id, version, spec).await
    }
    async fn secret_remove(&self, id: &str) -> BackendResult<()> {
        let m = self.0.manager().await?;
        named_data::remove::<Secret>(&m, id).await
    }

    async fn config_list(&self, filters: Filters) -> BackendResult<Vec<Config>> {
        let m = self.0.manager().await?;
        named_data::list::<Config>(&m, &filters)
    }
    async fn config_create(&self, spec: ConfigSpec) -> BackendResult<IdResponse> {
        let m = self.0.manager().await?;
        Ok(IdResponse {
            id: named_data::create::<Config>(&m, spec).await?,
        })
    }
    async fn config_inspect(&self, id: &str) -> BackendResult<Config> {
        let m = self.0.manager().await?;
        named_data::inspect::<Config>(&m, id)
    }
    async fn config_update(&self, id: &str, version: u64, spec: ConfigSpec) -> BackendResult<()> {
        let m = self.0.manager().await?;
        named_data::update::<Config>(&m, id, version, spec).await
    }
    async fn config_remove(&self, id: &str) -> BackendResult<()> {
        let m = self.0.manager().await?;
        named_data::remove::<Config>(&m, id).await
    }

    async fn container_list(
        &self,
        opts: shoal_api::ContainerListOptions,
    ) -> BackendResult<Vec<Value>> {
        containers::list_filtered(&self.0, &opts)
    }

    async fn container_create(&self, name: Option<String>, body: Value) -> BackendResult<Value> {
        containers::create(&self.0, name, body).await
    }

    async fn container_start(&self, id: &str) -> BackendResult<()> {
        self.0
            .runtime
            .start(id)
            .await
            .map_err(containers::api_error)?;
        super::attach::reconcile(&self.0).await;
        Ok(())
    }

    async fn container_stop(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> BackendResult<()> {
        containers::stop(&self.0.runtime, id, timeout, signal).await?;
        super::attach::reconcile(&self.0).await;
        Ok(())
    }

    async fn container_restart(
        &self,
        id: &str,
        timeout: Option<i64>,
        _signal: Option<String>,
    ) -> BackendResult<()> {
        self.0
            .runtime
            .restart(
                id,
                timeout.map(|t| std::time::Duration::from_secs(t.max(0) as u64)),
            )
            .await
            .map_err(containers::api_error)
    }

    async fn container_kill(&self, id: &str, signal: Option<String>) -> BackendResult<()> {
        let sig = signal
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "KILL".into());
        self.0
            .runtime
            .kill(id, &sig)
            .await
            .map_err(containers::api_error)
    }

    async fn container_wait(&self, id: &str, condition: &str) -> BackendResult<Value> {
        containers::wait(&self.0.runtime, id, condition).await
    }

    async fn container_inspect(&self, id: &str, _size: bool) -> BackendResult<Value> {
        containers::inspect(&self.0, id)
    }

    async fn container_logs(&self, id: &str, opts: LogsOptions) -> BackendResult<Logs> {
        containers::logs(&self.0.runtime, id, opts)
    }

    async fn container_top(&self, id: &str, _ps_args: &str) -> BackendResult<Value> {
        containers::top(&self.0.runtime, id).await
    }

    async fn container_remove(&self, id: &str, force: bool, volumes: bool) -> BackendResult<()> {
        containers::remove(&self.0, id, force, volumes).await
    }

    async fn container_attach(
        &self,
        id: &str,
        opts: shoal_api::AttachOptions,
    ) -> BackendResult<Logs> {
        containers::attach(&self.0.runtime, id, opts)
    }

    async fn exec_create(&self, container: &str, body: Value) -> BackendResult<Value> {
        containers::exec_create(&self.0.runtime, container, body)
    }

    async fn exec_start(
        &self,
        id: &str,
        body: Value,
        stdin: Option<shoal_api::ByteStream>,
    ) -> BackendResult<Logs> {
        containers::exec_start(&self.0.runtime, id, body, stdin).await
    }
    async fn exec_resize(&self, id: &str, height: u16, width: u16) -> BackendResult<()> {
        containers::exec_resize(&self.0.runtime, id, height, width)
    }

    async fn exec_inspect(&self, id: &str) -> BackendResult<Value> {
        containers::exec_inspect(&self.0.runtime, id)
    }

    async fn volume_list(&self, filters: Filters) -> BackendResult<Value> {
        containers::volume_list(&self.0.runtime, &filters)
    }

    async fn volume_create(&self, body: Value) -> BackendResult<Value> {
        containers::volume_create(&self.0.runtime, body)
    }

    async fn volume_inspect(&self, name: &str) -> BackendResult<Value> {
        containers::volume_inspect(&self.0.runtime, name)
    }

    async fn volume_remove(&self, name: &str, force: bool) -> BackendResult<()> {
        containers::volume_remove(&self.0.runtime, name, force)
    }

    async fn volume_prune(&self, filters: Filters) -> BackendResult<Value> {
        containers::volume_prune(&self.0.runtime, &filters)
    }

    async fn distribution_inspect(
        &self,
        name: &str,
        registry_auth: Option<String>,
    ) -> BackendResult<Value> {
        self.0.images.distribution(name, registry_auth).await
    }

    async fn image_list(&self, _all: bool, filters: Filters) -> BackendResult<Vec<Value>> {
        filters.validate(&["dangling", "label", "reference", "before", "since"])?;
        self.0.images.list(&images_in_use(&self.0.runtime))
    }

    async fn image_pull(
        &self,
        opts: shoal_api::ImagePullOptions,
    ) -> BackendResult<shoal_api::ProgressStream> {
        self.0.images.pull(opts)
    }

    async fn image_inspect(&self, name: &str) -> BackendResult<Value> {
        self.0.images.inspect(name)
    }

    async fn image_import(
        &self,
        rootfs: shoal_api::ByteStream,
        reference: Option<String>,
        changes: Vec<String>,
    ) -> BackendResult<shoal_api::ProgressStream> {
        super::image_import::import(&self.0.images, rootfs, reference, changes).await
    }

    async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> BackendResult<()> {
        self.0.images.tag(name, repo, tag)
    }

    async fn image_remove(&self, name: &str, force: bool, _noprune: bool) -> BackendResult<Value> {
        self.0
            .images
            .remove(name, force, &images_in_use(&self.0.runtime))
    }

    async fn image_push(
        &self,
        name: &str,
        tag: &str,
        registry_auth: Option<String>,
    ) -> BackendResult<shoal_api::ProgressStream> {
        self.0.images.push(name, tag, registry_auth)
    }

    async fn image_load(
        &self,
        archive: shoal_api::ByteStream,
        _quiet: bool,
    ) -> BackendResult<shoal_api::ProgressStream> {
        self.0.images.load(archive).await
    }

    async fn image_save(&self, names: Vec<String>) -> BackendResult<shoal_api::ByteStream> {
        self.0.images.save(names).await
    }

    async fn image_prune(&self, filters: Filters) -> BackendResult<Value> {
        filters.validate(&["dangling", "until", "label"])?;
        let dangling_only = filters
            .get("dangling")
            .first()
            .is_none_or(|v| !matches!(*v, "false" | "0"));
        self.0
            .images
            .prune(dangling_only, &images_in_use(&self.0.runtime))
    }

    async fn network_list(&self, filters: Filters) -> BackendResult<Vec<NetworkInspect>> {
        super::networks::list(&self.0, filters).await
    }
    async fn network_inspect(
        &self,
        id: &str,
        scope: &str,
        _verbose: bool,
    ) -> BackendResult<NetworkInspect> {
        super::networks::inspect(&self.0, id, scope).await
    }
    async fn network_create(
        &self,
        req: NetworkCreateRequest,
    ) -> BackendResult<NetworkCreateResponse> {
        super::networks::create(&self.0, req).await
    }
    async fn network_remove(&self, id: &str) -> BackendResult<()> {
        super::networks::remove(&self.0, id).await
    }
    async fn network_prune(&self, filters: Filters) -> BackendResult<Value> {
        super::networks::prune(&self.0, filters).await
    }

    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: shoal_types::container::EndpointSettings,
    ) -> BackendResult<()> {
        super::attach::connect(&self.0, network, container, endpoint).await
    }

    async fn network_disconnect(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> BackendResult<()> {
        super::attach::disconnect(&self.0, network, container, force).await
    }
}

/// The API layer's filters in the shape the control functions take.
fn type_filters(f: &Filters) -> shoal_types::filters::Filters {
    shoal_types::filters::Filters(
        f.0.iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect(),
    )
}

/// Image IDs used by containers on this node (those cannot be removed or pruned).
fn images_in_use(rt: &shoal_runtime::container::Runtime) -> std::collections::HashSet<String> {
    rt.list(true).into_iter().map(|c| c.image_id).collect()
}

fn arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}
