//! Turning a loaded project into the objects `docker stack deploy` creates for a stack, in the
//! Docker wire types: networks, secrets, configs and service specs, all named
//! `<stack>_<name>` (unless the file gives an explicit `name:`) and labelled with the stack
//! namespace. Host files (secrets, configs, env files) are read through the caller's function.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use shoal_types::meta::{Annotations, Driver};
use shoal_types::network::{IPAM, IPAMRequestConfig, NetworkCreateRequest};
use shoal_types::node::{DiscreteGenericResource, GenericResource, Resources};
use shoal_types::secret::{ConfigSpec, SecretSpec};
use shoal_types::service::{
    EndpointSpec, FailureAction, GlobalJob, GlobalService, PortConfig, PortProtocol, PublishMode,
    ReplicatedJob, ReplicatedService, ResolutionMode, ServiceMode, ServiceSpec, UpdateConfig,
    UpdateOrder,
};
use shoal_types::task_spec::{
    BindOptions, ConfigReference, ContainerSpec, DNSConfig, FileTarget, HealthConfig, Limit, Mount,
    MountType, NetworkAttachmentConfig, Placement, PlacementPreference, ResourceRequirements,
    RestartCondition, RestartPolicy, SecretReference, SpreadOver, TaskSpec, TmpfsOptions, Ulimit,
    VolumeOptions,
};

use crate::env::parse_env_lines;
use crate::error::ComposeError;
use crate::model::{self, Project, Service};
use crate::units;

/// Label put on every object of a stack; its value is the stack name.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Service label holding the image as written in the compose file.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";
/// Default mode of secret and config files (0444).
pub const DEFAULT_FILE_MODE: u32 = 0o444;

/// Everything to create (or check) for one stack, in dependency order: networks, secrets and
/// configs before the services that use them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackPlan {
    pub namespace: String,
    /// Networks to create when no network of that name exists (existing ones are kept).
    pub networks: Vec<NetworkCreateRequest>,
    /// Names of external networks the services use; each must exist with scope swarm.
    pub external_networks: Vec<String>,
    pub secrets: Vec<SecretSpec>,
    pub configs: Vec<ConfigSpec>,
    /// Names of external secrets/configs the services use; each must exist.
    pub external_secrets: Vec<String>,
    pub external_configs: Vec<String>,
    /// Service specs, sorted by name. `Networks[].Target` holds network NAMES, and
    /// `SecretID`/`ConfigID` are empty until [`StackPlan::resolve_ids`] fills them.
    pub services: Vec<ServiceSpec>,
}

/// Which kind of external object [`StackPlan::check_externals`] asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalKind {
    Network,
    Secret,
    Config,
}

/// Checks a stack name as Docker does before deploying: letters, digits, `_`, `.`, `-`,
/// starting with a letter or digit. At most 63 characters, so `<stack>_<service>` stays a
/// usable DNS name prefix.
pub fn validate_stack_name(name: &str) -> Result<(), ComposeError> {
    let bad = |reason: &str| ComposeError::InvalidStackName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let Some(first) = name.chars().next() else {
        return Err(bad("must not be empty"));
    };
    if !first.is_ascii_alphanumeric() {
        return Err(bad("must start with a letter or a digit"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(bad(&format!(
            "contains {c:?}; only letters, digits, '_', '.' and '-' are allowed"
        )));
    }
    if name.len() > 63 {
        return Err(bad("must be at most 63 characters"));
    }
    Ok(())
}

fn scoped(ns: &str, key: &str, explicit: &Option<String>) -> String {
    match explicit {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!("{ns}_{key}"),
    }
}

fn with_ns(ns: &str, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    out.insert(NAMESPACE_LABEL.to_string(), ns.to_string());
    out
}

/// Builds the stack's objects. Validation errors, unreadable files and unset variables are
/// reported here, before anything is created.
pub fn convert(
    project: &Project,
    stack: &str,
    read_file: impl Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<StackPlan, ComposeError> {
    validate_stack_name(stack)?;
    let mut plan = StackPlan {
        namespace: stack.to_string(),
        ..StackPlan::default()
    };

    // Networks: only those some service uses (a service without `networks:` uses "default").
    let mut used_networks = BTreeSet::new();
    for svc in project.services.values() {
        match &svc.networks {
            Some(nets) if !nets.is_empty() => used_networks.extend(nets.keys().cloned()),
            _ => {
                used_networks.insert("default".to_string());
            }
        }
    }
    for key in &used_networks {
        let def = project.networks.get(key).cloned().unwrap_or_default();
        if def.external {
            plan.external_networks
                .push(def.name.clone().unwrap_or_else(|| key.clone()));
            continue;
        }
        plan.networks.push(network_request(stack, key, &def));
    }

    // External secrets/configs matter only where a service uses them (as in Docker, where
    // they are looked up when the service references are resolved).
    let used_secrets: BTreeSet<&str> = project
        .services
        .values()
        .flat_map(|s| s.secrets.iter().map(|r| r.source.as_str()))
        .collect();
    let used_configs: BTreeSet<&str> = project
        .services
        .values()
        .flat_map(|s| s.configs.iter().map(|r| r.source.as_str()))
        .collect();
    for (key, def) in &project.secrets {
        if def.external {
            if !used_secrets.contains(key.as_str()) {
                continue;
            }
            plan.external_secrets
                .push(def.name.clone().unwrap_or_else(|| key.clone()));
            continue;
        }
        let data = match &def.driver {
            // A secret driver supplies the value itself.
            Some(_) => None,
            None => Some(object_data(
                project,
                "secret",
                key,
                &def.file,
                &None,
                &def.environment,
                &read_file,
            )?),
        };
        plan.secrets.push(SecretSpec {
            annotations: Annotations {
                name: scoped(stack, key, &def.name),
                labels: with_ns(stack, &def.labels),
            },
            data,
            driver: def.driver.as_ref().map(|d| Driver {
                name: d.clone(),
                options: def.driver_opts.clone(),
            }),
            templating: def.template_driver.as_ref().map(|t| Driver {
                name: t.clone(),
                options: BTreeMap::new(),
            }),
        });
    }
    for (key, def) in &project.configs {
        if def.external {
            if !used_configs.contains(key.as_str()) {
                continue;
            }
            plan.external_configs
                .push(def.name.clone().unwrap_or_else(|| key.clone()));
            continue;
        }
        let data = object_data(
            project,
            "config",
            key,
            &def.file,
            &def.content,
            &def.environment,
            &read_file,
        )?;
        plan.configs.push(ConfigSpec {
            annotations: Annotations {
                name: scoped(stack, key, &def.name),
                labels: with_ns(stack, &def.labels),
            },
            data: Some(data),
            templating: def.template_driver.as_ref().map(|t| Driver {
                name: t.clone(),
                options: BTreeMap::new(),
            }),
        });
    }

    for (name, svc) in &project.services {
        plan.services
            .push(service_spec(project, stack, name, svc, &read_file)?);
    }
    preflight(&plan)?;
    Ok(plan)
}

/// Runs the control API's own checks on every object, so a stack the cluster would refuse
/// halfway is refused before anything is created.
fn preflight(plan: &StackPlan) -> Result<(), ComposeError> {
    let rejected =
        |kind: &'static str, name: &str, e: shoal_types::ApiError| ComposeError::Rejected {
            kind,
            name: name.to_string(),
            message: e.message,
        };
    for n in &plan.networks {
        n.to_spec()
            .and_then(|spec| spec.validate())
            .map_err(|e| rejected("network", &n.name, e))?;
    }
    for s in &plan.secrets {
        s.validate()
            .map_err(|e| rejected("secret", &s.annotations.name, e))?;
    }
    for c in &plan.configs {
        c.validate()
            .map_err(|e| rejected("config", &c.annotations.name, e))?;
    }
    for svc in &plan.services {
        let mut spec = svc.clone();
        spec.normalize();
        spec.validate()
            .map_err(|e| rejected("service", &svc.annotations.name, e))?;
    }
    Ok(())
}

fn network_request(ns: &str, key: &str, def: &model::NetworkDef) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: scoped(ns, key, &def.name),
        driver: def.driver.clone().unwrap_or_else(|| "overlay".to_string()),
        scope: String::new(),
        enable_ipv4: None,
        enable_ipv6: def.enable_ipv6,
        ipam: def.ipam.as_ref().map(|i| IPAM {
            driver: i.driver.clone().unwrap_or_default(),
            options: (!i.options.is_empty()).then(|| i.options.clone()),
            config: i
                .config
                .iter()
                .map(|c| IPAMRequestConfig {
                    subnet: c.subnet.clone().unwrap_or_default(),
                    ip_range: c.ip_range.clone().unwrap_or_default(),
                    gateway: c.gateway.clone().unwrap_or_default(),
                    auxiliary_addresses: c.aux_addresses.clone(),
                })
                .collect(),
        }),
        internal: def.internal,
        attachable: def.attachable,
        ingress: false,
        config_only: false,
        config_from: None,
        options: def.driver_opts.clone(),
        labels: with_ns(ns, &def.labels),
        check_duplicate: None,
    }
}

/// The bytes of a secret or config: from its file, inline content or environment variable.
fn object_data(
    project: &Project,
    kind: &str,
    key: &str,
    file: &Option<String>,
    content: &Option<String>,
    environment: &Option<String>,
    read_file: &impl Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<Vec<u8>, ComposeError> {
    if let Some(f) = file {
        let path = Path::new(f);
        return read_file(path).map_err(|source| ComposeError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(source.kind(), format!("{kind} {key:?}: {source}")),
        });
    }
    if let Some(c) = content {
        return Ok(c.clone().into_bytes());
    }
    if let Some(var) = environment {
        return project
            .env
            .get(var)
            .map(|v| v.as_bytes().to_vec())
            .ok_or_else(|| {
                ComposeError::schema(
                    format!("{kind}s.{key}.environment"),
                    format!("environment variable {var:?} is not set"),
                )
            });
    }
    Err(ComposeError::schema(
        format!("{kind}s.{key}"),
        "has no file, content or environment to read",
    ))
}

fn service_spec(
    project: &Project,
    ns: &str,
    name: &str,
    svc: &Service,
    read_file: &impl Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<ServiceSpec, ComposeError> {
    let image = svc.image.clone().unwrap_or_default();
    let deploy = svc.deploy.clone().unwrap_or_default();

    let mut labels = deploy.labels.clone();
    labels.insert(NAMESPACE_LABEL.to_string(), ns.to_string());
    labels.insert(IMAGE_LABEL.to_string(), image.clone());

    let container = ContainerSpec {
        image,
        labels: with_ns(ns, &svc.labels),
        command: svc.entrypoint.clone().unwrap_or_default(),
        args: svc.command.clone().unwrap_or_default(),
        hostname: svc.hostname.clone().unwrap_or_default(),
        env: environment(project, name, svc, read_file)?,
        dir: svc.working_dir.clone().unwrap_or_default(),
        user: svc.user.clone().unwrap_or_default(),
        groups: svc.group_add.clone(),
        init: svc.init,
        stop_signal: svc.stop_signal.clone().unwrap_or_default(),
        tty: svc.tty.unwrap_or(false),
        open_stdin: svc.stdin_open.unwrap_or(false),
        read_only: svc.read_only.unwrap_or(false),
        mounts: mounts(project, ns, name, svc)?,
        stop_grace_period: svc.stop_grace_period.map(|d| d.0),
        healthcheck: svc.healthcheck.as_ref().map(healthcheck),
        // Swarm wants "IP host" lines; compose writes "host:ip".
        hosts: svc
            .extra_hosts
            .iter()
            .filter_map(|h| h.split_once(':').map(|(host, ip)| format!("{ip} {host}")))
            .collect(),
        dns_config: (!svc.dns.is_empty() || !svc.dns_search.is_empty() || !svc.dns_opt.is_empty())
            .then(|| DNSConfig {
                nameservers: svc.dns.clone(),
                search: svc.dns_search.clone(),
                options: svc.dns_opt.clone(),
            }),
        secrets: svc
            .secrets
            .iter()
            .map(|r| {
                let def = project.secrets.get(&r.source).cloned().unwrap_or_default();
                SecretReference {
                    file: Some(file_target(r, r.source.clone())),
                    secret_id: String::new(),
                    secret_name: object_name(ns, &r.source, def.external, &def.name),
                }
            })
            .collect(),
        configs: svc
            .configs
            .iter()
            .map(|r| {
                let def = project.configs.get(&r.source).cloned().unwrap_or_default();
                ConfigReference {
                    file: Some(file_target(r, format!("/{}", r.source))),
                    runtime: None,
                    config_id: String::new(),
                    config_name: object_name(ns, &r.source, def.external, &def.name),
                }
            })
            .collect(),
        isolation: svc.isolation.clone().unwrap_or_default(),
        sysctls: svc.sysctls.clone(),
        capability_add: svc.cap_add.clone(),
        capability_drop: svc.cap_drop.clone(),
        ulimits: svc
            .ulimits
            .iter()
            .map(|(n, u)| Ulimit {
                name: n.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        oom_score_adj: svc.oom_score_adj.unwrap_or(0),
        ..ContainerSpec::default()
    };

    let networks = match &svc.networks {
        Some(nets) if !nets.is_empty() => nets.clone(),
        _ => BTreeMap::from([("default".to_string(), model::ServiceNetwork::default())]),
    };
    let mut attachments: Vec<NetworkAttachmentConfig> = networks
        .iter()
        .map(|(key, opts)| {
            let def = project.networks.get(key).cloned().unwrap_or_default();
            let mut aliases = vec![name.to_string()];
            aliases.extend(opts.aliases.iter().filter(|a| *a != name).cloned());
            NetworkAttachmentConfig {
                target: object_name(ns, key, def.external, &def.name),
                aliases,
                driver_opts: opts.driver_opts.clone(),
            }
        })
        .collect();
    attachments.sort_by(|a, b| a.target.cmp(&b.target));

    let task = TaskSpec {
        container_spec: Some(container),
        resources: deploy.resources.as_ref().map(resources),
        restart_policy: restart_policy(&deploy, svc.restart.as_deref()),
        placement: deploy.placement.as_ref().map(placement),
        networks: attachments,
        log_driver: svc.logging.as_ref().and_then(|l| {
            l.driver.as_ref().map(|d| Driver {
                name: d.clone(),
                options: l.options.clone(),
            })
        }),
        force_update: 0,
        runtime: String::new(),
    };

    let mode = match deploy.mode.as_deref().unwrap_or("replicated") {
        "global" => ServiceMode {
            global: Some(GlobalService {}),
            ..ServiceMode::default()
        },
        "global-job" => ServiceMode {
            global_job: Some(GlobalJob {}),
            ..ServiceMode::default()
        },
        "replicated-job" => ServiceMode {
            replicated_job: Some(ReplicatedJob {
                max_concurrent: deploy.replicas,
                total_completions: deploy.replicas,
            }),
            ..ServiceMode::default()
        },
        _ => ServiceMode {
            replicated: Some(ReplicatedService {
                replicas: deploy.replicas,
            }),
            ..ServiceMode::default()
        },
    };

    let mut ports: Vec<PortConfig> = svc
        .ports
        .0
        .iter()
        .map(|p| PortConfig {
            name: p.name.clone().unwrap_or_default(),
            protocol: match p.protocol.as_deref() {
                Some("udp") => PortProtocol::Udp,
                Some("sctp") => PortProtocol::Sctp,
                _ => PortProtocol::Tcp,
            },
            target_port: u32::from(p.target),
            published_port: p.published.map(u32::from).unwrap_or(0),
            publish_mode: match p.mode.as_deref() {
                Some("host") => PublishMode::Host,
                _ => PublishMode::Ingress,
            },
        })
        .collect();
    ports.sort_by_key(|p| (p.published_port, p.target_port));

    Ok(ServiceSpec {
        annotations: Annotations {
            name: format!("{ns}_{name}"),
            labels,
        },
        task_template: task,
        mode,
        update_config: deploy.update_config.as_ref().map(update_config),
        rollback_config: deploy.rollback_config.as_ref().map(update_config),
        networks: Vec::new(),
        endpoint_spec: Some(EndpointSpec {
            mode: match deploy.endpoint_mode.as_deref() {
                Some("dnsrr") => ResolutionMode::Dnsrr,
                _ => ResolutionMode::Vip,
            },
            ports,
        }),
    })
}

/// The cluster name of a network/secret/config: explicit or external name, else `<ns>_<key>`.
fn object_name(ns: &str, key: &str, external: bool, explicit: &Option<String>) -> String {
    match explicit {
        Some(n) if !n.is_empty() => n.clone(),
        _ if external => key.to_string(),
        _ => format!("{ns}_{key}"),
    }
}

fn file_target(r: &crate::syntax::FileReference, default_name: String) -> FileTarget {
    FileTarget {
        name: r.target.clone().unwrap_or(default_name),
        uid: r.uid.clone().unwrap_or_else(|| "0".to_string()),
        gid: r.gid.clone().unwrap_or_else(|| "0".to_string()),
        mode: r.mode.unwrap_or(DEFAULT_FILE_MODE),
    }
}

/// `env_file` entries first, then `environment` (which wins), sorted; a key without a value
/// is passed as `KEY` alone, as Docker does.
fn environment(
    project: &Project,
    name: &str,
    svc: &Service,
    read_file: &impl Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<Vec<String>, ComposeError> {
    let mut vars: BTreeMap<String, Option<String>> = BTreeMap::new();
    for f in &svc.env_file {
        let path = Path::new(&f.path);
        let bytes = match read_file(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !f.required => continue,
            Err(source) => {
                return Err(ComposeError::Io {
                    path: path.to_path_buf(),
                    source: io::Error::new(
                        source.kind(),
                        format!("env_file of service {name:?}: {source}"),
                    ),
                });
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        for (k, v) in parse_env_lines(&text, &f.path)? {
            let v = v.or_else(|| project.env.get(&k).map(str::to_string));
            vars.insert(k, v);
        }
    }
    for (k, v) in &svc.environment {
        vars.insert(k.clone(), v.clone());
    }
    Ok(vars
        .into_iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k,
        })
        .collect())
}

fn mounts(
    project: &Project,
    ns: &str,
    name: &str,
    svc: &Service,
) -> Result<Vec<Mount>, ComposeError> {
    let mut out = Vec::new();
    for v in &svc.volumes {
        let mut m = Mount {
            target: v.target.clone(),
            read_only: v.read_only.unwrap_or(false),
            consistency: v.consistency.clone().unwrap_or_default(),
            ..Mount::default()
        };
        match v.kind.as_str() {
            "bind" => {
                m.r#type = Some(MountType::Bind);
                m.source = v.source.clone().unwrap_or_default();
                if let Some(b) = &v.bind
                    && (b.propagation.is_some() || b.create_host_path.is_some())
                {
                    m.bind_options = Some(BindOptions {
                        propagation: b.propagation.clone().unwrap_or_default(),
                        create_mountpoint: b.create_host_path.unwrap_or(false),
                        ..BindOptions::default()
                    });
                }
            }
            "tmpfs" => {
                m.r#type = Some(MountType::Tmpfs);
                if let Some(t) = &v.tmpfs {
                    m.tmpfs_options = Some(TmpfsOptions {
                        size_bytes: t.size.unwrap_or(0),
                        mode: t.mode.unwrap_or(0),
                        options: Vec::new(),
                    });
                }
            }
            "volume" => {
                m.r#type = Some(MountType::Volume);
                let nocopy = v.volume.as_ref().and_then(|o| o.nocopy).unwrap_or(false);
                let subpath = v
                    .volume
                    .as_ref()
                    .and_then(|o| o.subpath.clone())
                    .unwrap_or_default();
                match &v.source {
                    None => {
                        // An anonymous volume.
                        if nocopy || !subpath.is_empty() {
                            m.volume_options = Some(VolumeOptions {
                                no_copy: nocopy,
                                subpath,
                                ..VolumeOptions::default()
                            });
                        }
                    }
                    Some(src) => {
                        let def = project.volumes.get(src).cloned().ok_or_else(|| {
                            ComposeError::Undefined {
                                service: name.to_string(),
                                kind: "volume",
                                name: src.clone(),
                            }
                        })?;
                        m.source = object_name(ns, src, def.external, &def.name);
                        if def.external {
                            if nocopy || !subpath.is_empty() {
                                m.volume_options = Some(VolumeOptions {
                                    no_copy: nocopy,
                                    subpath,
                                    ..VolumeOptions::default()
                                });
                            }
                        } else {
                            m.volume_options = Some(VolumeOptions {
                                no_copy: nocopy,
                                labels: with_ns(ns, &def.labels),
                                subpath,
                                driver_config: def.driver.as_ref().map(|d| Driver {
                                    name: d.clone(),
                                    options: def.driver_opts.clone(),
                                }),
                            });
                        }
                    }
                }
            }
            other => {
                return Err(ComposeError::schema(
                    format!("services.{name}.volumes"),
                    format!("mount type {other:?} is not supported by swarm services here"),
                ));
            }
        }
        out.push(m);
    }
    for t in &svc.tmpfs {
        out.push(tmpfs_mount(name, t)?);
    }
    Ok(out)
}

/// A `tmpfs:` entry: `/path` or `/path:size=64m,mode=1777`.
fn tmpfs_mount(name: &str, entry: &str) -> Result<Mount, ComposeError> {
    let (target, opts) = entry.split_once(':').unwrap_or((entry, ""));
    let mut options = TmpfsOptions::default();
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        let bad = |why: String| ComposeError::schema(format!("services.{name}.tmpfs"), why);
        match opt.split_once('=') {
            Some(("size", v)) => options.size_bytes = units::parse_bytes(v).map_err(bad)?,
            Some(("mode", v)) => {
                options.mode = u32::from_str_radix(v, 8)
                    .map_err(|_| bad(format!("invalid tmpfs mode {v:?}")))?
            }
            Some((k, v)) => options.options.push(vec![k.to_string(), v.to_string()]),
            None => options.options.push(vec![opt.to_string()]),
        }
    }
    Ok(Mount {
        r#type: Some(MountType::Tmpfs),
        target: target.to_string(),
        tmpfs_options: (options != TmpfsOptions::default()).then_some(options),
        ..Mount::default()
    })
}

fn healthcheck(h: &model::Healthcheck) -> HealthConfig {
    HealthConfig {
        test: if h.disable {
            vec!["NONE".to_string()]
        } else {
            h.test.clone().unwrap_or_default()
        },
        interval: h.interval.map(|d| d.0).unwrap_or(0),
        timeout: h.timeout.map(|d| d.0).unwrap_or(0),
        start_period: h.start_period.map(|d| d.0).unwrap_or(0),
        start_interval: h.start_interval.map(|d| d.0).unwrap_or(0),
        retries: h.retries.map(|r| r as i64).unwrap_or(0),
    }
}

fn resources(r: &model::Resources) -> ResourceRequirements {
    ResourceRequirements {
        limits: r.limits.as_ref().map(|l| Limit {
            nano_cpus: l.cpus.map(|c| c.0).unwrap_or(0),
            memory_bytes: l.memory.map(|m| m.0).unwrap_or(0),
            pids: l.pids.unwrap_or(0),
        }),
        reservations: r.reservations.as_ref().map(|l| Resources {
            nano_cpus: l.cpus.map(|c| c.0).unwrap_or(0),
            memory_bytes: l.memory.map(|m| m.0).unwrap_or(0),
            generic_resources: l
                .generic_resources
                .iter()
                .map(|g| GenericResource {
                    named_resource_spec: None,
                    discrete_resource_spec: Some(DiscreteGenericResource {
                        kind: g.discrete_resource_spec.kind.clone(),
                        value: g.discrete_resource_spec.value,
                    }),
                })
                .collect(),
        }),
        ..ResourceRequirements::default()
    }
}

/// `deploy.restart_policy`, or else the compose `restart:` key mapped as Docker maps it.
fn restart_policy(deploy: &model::Deploy, restart: Option<&str>) -> Option<RestartPolicy> {
    if let Some(rp) = &deploy.restart_policy {
        return Some(RestartPolicy {
            condition: rp.condition.as_deref().map(|c| match c {
                "none" => RestartCondition::None,
                "on-failure" => RestartCondition::OnFailure,
                _ => RestartCondition::Any,
            }),
            delay: rp.delay.map(|d| d.0),
            max_attempts: rp.max_attempts,
            window: rp.window.map(|d| d.0),
        });
    }
    match restart? {
        "always" | "unless-stopped" => Some(RestartPolicy {
            condition: Some(RestartCondition::Any),
            ..RestartPolicy::default()
        }),
        "on-failure" => Some(RestartPolicy {
            condition: Some(RestartCondition::OnFailure),
            ..RestartPolicy::default()
        }),
        other => other
            .strip_prefix("on-failure:")
            .and_then(|n| n.parse().ok())
            .map(|n| RestartPolicy {
                condition: Some(RestartCondition::OnFailure),
                max_attempts: Some(n),
                ..RestartPolicy::default()
            }),
    }
}

fn placement(p: &model::Placement) -> Placement {
    Placement {
        constraints: p.constraints.clone(),
        preferences: p
            .preferences
            .iter()
            .map(|pref| PlacementPreference {
                spread: Some(SpreadOver {
                    spread_descriptor: pref.spread.clone(),
                }),
            })
            .collect(),
        max_replicas: p.max_replicas_per_node.unwrap_or(0),
        ..Placement::default()
    }
}

fn update_config(u: &model::UpdateConfig) -> UpdateConfig {
    UpdateConfig {
        parallelism: u.parallelism.unwrap_or(1),
        delay: u.delay.map(|d| d.0).unwrap_or(0),
        failure_action: match u.failure_action.as_deref() {
            Some("continue") => FailureAction::Continue,
            Some("rollback") => FailureAction::Rollback,
            _ => FailureAction::Pause,
        },
        monitor: u.monitor.map(|d| d.0).unwrap_or(0),
        max_failure_ratio: u.max_failure_ratio.unwrap_or(0.0) as f32,
        order: match u.order.as_deref() {
            Some("start-first") => UpdateOrder::StartFirst,
            _ => UpdateOrder::StopFirst,
        },
    }
}

impl StackPlan {
    /// Fails, naming the first missing one, unless every external network, secret and config
    /// exists (`exists` asks the cluster; for networks it must also be swarm-scoped). Call it
    /// before creating anything.
    pub fn check_externals(
        &self,
        mut exists: impl FnMut(ExternalKind, &str) -> bool,
    ) -> Result<(), ComposeError> {
        for n in &self.external_networks {
            if !exists(ExternalKind::Network, n) {
                return Err(ComposeError::MissingExternal {
                    kind: "network",
                    name: n.clone(),
                    hint: ". You need to create a swarm-scoped network before the stack is deployed",
                });
            }
        }
        for (kind, names, ek) in [
            ("secret", &self.external_secrets, ExternalKind::Secret),
            ("config", &self.external_configs, ExternalKind::Config),
        ] {
            for n in names {
                if !exists(ek, n) {
                    return Err(ComposeError::MissingExternal {
                        kind,
                        name: n.clone(),
                        hint: "",
                    });
                }
            }
        }
        Ok(())
    }

    /// Fills `SecretID`/`ConfigID` in every service from name → ID maps (as the CLI does after
    /// creating the secrets and configs). Fails naming the first name without an ID.
    pub fn resolve_ids(
        &mut self,
        secret_ids: &BTreeMap<String, String>,
        config_ids: &BTreeMap<String, String>,
    ) -> Result<(), ComposeError> {
        for svc in &mut self.services {
            let Some(c) = svc.task_template.container_spec.as_mut() else {
                continue;
            };
            for s in &mut c.secrets {
                s.secret_id = secret_ids.get(&s.secret_name).cloned().ok_or_else(|| {
                    ComposeError::MissingExternal {
                        kind: "secret",
                        name: s.secret_name.clone(),
                        hint: "",
                    }
                })?;
            }
            for r in &mut c.configs {
                r.config_id = config_ids.get(&r.config_name).cloned().ok_or_else(|| {
                    ComposeError::MissingExternal {
                        kind: "config",
                        name: r.config_name.clone(),
                        hint: "",
                    }
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names() {
        for ok in ["web", "my-stack", "a.b_c", "9lives"] {
            assert!(validate_stack_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "_x", "a b", "a/b", "ü"] {
            assert!(validate_stack_name(bad).is_err(), "{bad}");
        }
        assert!(validate_stack_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn tmpfs_entries() {
        let m = tmpfs_mount("web", "/run:size=64m,mode=1777,noexec").expect("parses");
        assert_eq!(m.target, "/run");
        let o = m.tmpfs_options.expect("options");
        assert_eq!(o.size_bytes, 64 << 20);
        assert_eq!(o.mode, 0o1777);
        assert_eq!(o.options, vec![vec!["noexec".to_string()]]);
        assert!(tmpfs_mount("web", "/run:mode=9").is_err());
    }

    #[test]
    fn compose_restart_maps_to_policy() {
        let d = model::Deploy::default();
        let cond = |r| restart_policy(&d, Some(r)).and_then(|p| p.condition);
        assert_eq!(cond("always"), Some(RestartCondition::Any));
        assert_eq!(cond("unless-stopped"), Some(RestartCondition::Any));
        assert_eq!(cond("on-failure"), Some(RestartCondition::OnFailure));
        assert_eq!(
            restart_policy(&d, Some("on-failure:3")).and_then(|p| p.max_attempts),
            Some(3)
        );
        assert_eq!(restart_policy(&d, Some("no")), None);
        assert_eq!(restart_policy(&d, None), None);
    }
}
