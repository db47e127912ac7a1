//! `shoal stack deploy`: everything is loaded, converted and checked against the cluster
//! before the first write. Then existing secrets and configs are updated (the daemon refuses
//! changed content), `--prune` removes dropped services, and new secrets, configs, networks
//! and services are created, changed services updated. A service whose spec did not change
//! gets no update call at all.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_api::client::{error_from_response, escape_segment, with_query};
use shoal_api::types::service::{PublishMode, UpdateState};
use shoal_api::types::{ApiError, Config, ErrorKind, NetworkInspect, Secret, Service, ServiceSpec};
use shoal_api::{Client, Filters, Method, ServiceUpdateResponse};
use shoal_compose::{ExternalKind, IMAGE_LABEL, StackPlan};

use super::registry_auth::encoded_auth;
use super::{DeployArgs, ResolveImage, load_files, stack_filter};
use crate::cli::{CliError, CliResult, out};

/// How long `--detach=false` waits for the stack's services to converge.
const CONVERGE_LIMIT: Duration = Duration::from_secs(600);

/// What deploy will do with one service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ServiceAction {
    Create(ServiceSpec),
    /// (id, version, new spec)
    Update(String, u64, ServiceSpec),
    Unchanged(String),
}

fn other(msg: impl Into<String>) -> CliError {
    CliError::Other(msg.into())
}

pub async fn deploy(c: &Client, a: DeployArgs) -> CliResult {
    shoal_compose::validate_stack_name(&a.stack).map_err(|e| other(e.to_string()))?;
    let project = load_files(&a.compose_file)?;
    let mut plan = shoal_compose::convert(&project, &a.stack, |p| std::fs::read(p))
        .map_err(|e| other(e.to_string()))?;

    let info = c.info().await?;
    if !info.swarm.control_available {
        return Err(other(
            "this node is not a swarm manager. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again",
        ));
    }

    // ---- read the cluster; nothing is written until every check passed ----
    let stack_services = c.service_list(&stack_filter(&a.stack), false).await?;
    let secrets = c.secret_list(&Filters::default()).await?;
    let configs = c.config_list(&Filters::default()).await?;
    let networks = if plan.networks.is_empty() && plan.external_networks.is_empty() {
        Vec::new()
    } else {
        c.network_list(&Filters::default()).await.map_err(|e| {
            other(format!(
                "the stack needs networks ({}), but this daemon's network API answered: {}",
                plan_network_names(&plan).join(", "),
                e.message
            ))
        })?
    };
    check_externals(&plan, &networks, &secrets, &configs)?;
    check_network_names(&plan, &networks, &a.stack)?;
    check_config_data(&plan, &configs)?;
    let all_services = c.service_list(&Filters::default(), false).await?;
    check_published_ports(&plan, &all_services, a.prune.then_some(a.stack.as_str()))?;
    // A same-named service outside the stack would make the create fail halfway.
    for spec in &plan.services {
        let name = &spec.annotations.name;
        if all_services.iter().any(|s| {
            &s.spec.annotations.name == name && !stack_services.iter().any(|o| o.id == s.id)
        }) {
            return Err(other(format!(
                "service {name:?} already exists and is not part of stack {:?}",
                a.stack
            )));
        }
    }

    let auth = |image: &str| -> Result<Option<String>, CliError> {
        if !a.with_registry_auth {
            return Ok(None);
        }
        encoded_auth(image).map_err(|e| other(format!("--with-registry-auth: {e}")))
    };
    let existing: BTreeMap<&str, &Service> = stack_services
        .iter()
        .map(|s| (s.spec.annotations.name.as_str(), s))
        .collect();
    let mut digests: BTreeMap<String, Option<String>> = BTreeMap::new();
    for spec in &mut plan.services {
        let Some(cs) = spec.task_template.container_spec.as_mut() else {
            continue;
        };
        let image = cs.image.clone();
        let current = existing.get(spec.annotations.name.as_str());
        // The image the file names is the one last deployed: with `changed` and `never` the
        // service keeps the digest pinned then, so an unchanged service stays unchanged.
        let same =
            current.is_some_and(|cur| cur.spec.annotations.labels.get(IMAGE_LABEL) == Some(&image));
        if same
            && a.resolve_image != ResolveImage::Always
            && let Some(cur_cs) = current.and_then(|c| c.spec.task_template.container_spec.as_ref())
        {
            cs.image = cur_cs.image.clone();
        }
        let query = match a.resolve_image {
            ResolveImage::Always => true,
            ResolveImage::Changed => !same,
            ResolveImage::Never => false,
        };
        if query && !image.contains('@') {
            // One registry question per image, however many services use it.
            if !digests.contains_key(&image) {
                let d = resolve_digest(c, &image, auth(&image)?.as_deref())
                    .await
                    .ok();
                if d.is_none() {
                    eprintln!(
                        "image {image} could not be accessed on a registry to record\nits digest. Each node will access {image} independently,\npossibly leading to different nodes running different\nversions of the image.\n"
                    );
                }
                digests.insert(image.clone(), d);
            }
            if let Some(Some(digest)) = digests.get(&image) {
                cs.image = format!("{image}@{digest}");
            }
        }
    }

    let mut net_ids = network_ids(&networks);
    let keep: BTreeSet<String> = plan
        .services
        .iter()
        .map(|s| s.annotations.name.clone())
        .collect();
    let prune: Vec<&Service> = if a.prune {
        stack_services
            .iter()
            .filter(|s| !keep.contains(&s.spec.annotations.name))
            .collect()
    } else {
        Vec::new()
    };

    // ---- write ----
    let by_name = |name: &str| secrets.iter().find(|s| s.spec.annotations.name == name);
    let mut secret_ids: BTreeMap<String, String> = secrets
        .iter()
        .map(|s| (s.spec.annotations.name.clone(), s.id.clone()))
        .collect();
    // Updates first: a secret whose data changed is refused before anything new exists.
    for spec in &plan.secrets {
        if let Some(cur) = by_name(&spec.annotations.name) {
            out(&format!("Updating secret {}\n", spec.annotations.name));
            c.secret_update(&cur.id, cur.meta.version.index, spec)
                .await
                .map_err(|e| {
                    other(format!(
                        "failed to update secret {name}: {}; a secret's content cannot change: give the changed secret a new name (e.g. `name: {name}_v2`) or remove the stack first",
                        e.message,
                        name = spec.annotations.name
                    ))
                })?;
        }
    }
    let cfg_by_name = |name: &str| configs.iter().find(|s| s.spec.annotations.name == name);
    let mut config_ids: BTreeMap<String, String> = configs
        .iter()
        .map(|s| (s.spec.annotations.name.clone(), s.id.clone()))
        .collect();
    for spec in &plan.configs {
        if let Some(cur) = cfg_by_name(&spec.annotations.name)
            && cur.spec.annotations.labels != spec.annotations.labels
        {
            out(&format!("Updating config {}\n", spec.annotations.name));
            c.config_update(&cur.id, cur.meta.version.index, spec)
                .await?;
        }
    }
    // Pruning waits until the updates above were accepted (nothing else is refused later
    // for reasons known now), and frees ports for the services created below.
    for s in prune {
        out(&format!("Removing service {}\n", s.spec.annotations.name));
        c.service_remove(&s.id).await?;
    }
    for spec in &plan.secrets {
        if by_name(&spec.annotations.name).is_none() {
            out(&format!("Creating secret {}\n", spec.annotations.name));
            let id = c.secret_create(spec).await?.id;
            secret_ids.insert(spec.annotations.name.clone(), id);
        }
    }
    for spec in &plan.configs {
        if cfg_by_name(&spec.annotations.name).is_none() {
            out(&format!("Creating config {}\n", spec.annotations.name));
            let id = c.config_create(spec).await?.id;
            config_ids.insert(spec.annotations.name.clone(), id);
        }
    }
    for req in &plan.networks {
        if net_ids.contains_key(&req.name) {
            continue;
        }
        out(&format!("Creating network {}\n", req.name));
        let id = c.network_create(req).await?.id;
        net_ids.insert(req.name.clone(), id.clone());
        net_ids.insert(id.clone(), id);
    }
    plan.resolve_ids(&secret_ids, &config_ids)
        .map_err(|e| other(e.to_string()))?;
    // Compared only now that secret, config and network IDs are filled in.
    let actions = plan_services(&plan, &existing, &net_ids);

    for action in actions {
        match action {
            ServiceAction::Unchanged(name) => {
                if !a.quiet {
                    out(&format!("Service {name} is up to date\n"));
                }
            }
            ServiceAction::Create(spec) => {
                out(&format!("Creating service {}\n", spec.annotations.name));
                let image = image_of(&spec);
                let resp = c.service_create(&spec, auth(&image)?.as_deref()).await?;
                for w in resp.warnings.unwrap_or_default() {
                    eprintln!("{w}");
                }
            }
            ServiceAction::Update(id, version, spec) => {
                out(&format!(
                    "Updating service {} (id: {id})\n",
                    spec.annotations.name
                ));
                let image = image_of(&spec);
                let resp = update_service(c, &id, version, &spec, auth(&image)?).await?;
                for w in resp.warnings.unwrap_or_default() {
                    eprintln!("{w}");
                }
            }
        }
    }
    if !a.detach {
        wait_converged(c, &a.stack, &keep, a.quiet).await?;
    }
    Ok(())
}

fn plan_network_names(plan: &StackPlan) -> Vec<String> {
    plan.networks
        .iter()
        .map(|n| n.name.clone())
        .chain(plan.external_networks.iter().cloned())
        .collect()
}

fn image_of(spec: &ServiceSpec) -> String {
    spec.task_template
        .container_spec
        .as_ref()
        .map(|c| c.image.clone())
        .unwrap_or_default()
}

/// External networks must exist and be swarm-scoped; external secrets/configs must exist.
fn check_externals(
    plan: &StackPlan,
    networks: &[NetworkInspect],
    secrets: &[Secret],
    configs: &[Config],
) -> Result<(), CliError> {
    for name in &plan.external_networks {
        if let Some(n) = networks.iter().find(|n| &n.name == name || &n.id == name)
            && n.scope != "swarm"
        {
            return Err(other(format!(
                "network {name:?} is declared as external, but it is not in the right scope: {:?} instead of \"swarm\"",
                n.scope
            )));
        }
    }
    plan.check_externals(|kind, name| match kind {
        ExternalKind::Network => networks.iter().any(|n| n.name == name || n.id == name),
        ExternalKind::Secret => secrets
            .iter()
            .any(|s| s.spec.annotations.name == name || s.id == name),
        ExternalKind::Config => configs
            .iter()
            .any(|s| s.spec.annotations.name == name || s.id == name),
    })
    .map_err(|e| other(e.to_string()))
}

/// A network the stack would create must not already exist outside the stack (docker would
/// fail on create, after having created other objects).
fn check_network_names(
    plan: &StackPlan,
    networks: &[NetworkInspect],
    stack: &str,
) -> Result<(), CliError> {
    for req in &plan.networks {
        if let Some(n) = networks.iter().find(|n| n.name == req.name) {
            let ours = n
                .labels
                .get(shoal_compose::NAMESPACE_LABEL)
                .map(String::as_str)
                == Some(stack);
            if !ours {
                return Err(other(format!(
                    "network {:?} already exists and is not part of stack {stack:?}; declare it `external: true` or remove it",
                    req.name
                )));
            }
        }
    }
    Ok(())
}

/// Config data cannot change (only labels can): refuse a changed config before any write.
fn check_config_data(plan: &StackPlan, configs: &[Config]) -> Result<(), CliError> {
    for spec in &plan.configs {
        if let Some(cur) = configs
            .iter()
            .find(|c| c.spec.annotations.name == spec.annotations.name)
            && cur.spec.data.is_some()
            && cur.spec.data != spec.data
        {
            return Err(other(format!(
                "config {:?} already exists with different content, and a config's content cannot change; give the changed config a new name (e.g. `name: {}_v2`) or remove the stack first",
                spec.annotations.name, spec.annotations.name
            )));
        }
    }
    Ok(())
}

/// An ingress-published port must not be held by a service outside the stack (the daemon
/// would refuse the service after the stack's other objects were made). With `prune`, the
/// stack's own services that the file dropped are going away and do not count.
fn check_published_ports(
    plan: &StackPlan,
    services: &[Service],
    pruning: Option<&str>,
) -> Result<(), CliError> {
    let ours: BTreeSet<&str> = plan
        .services
        .iter()
        .map(|s| s.annotations.name.as_str())
        .collect();
    for spec in &plan.services {
        let ports = spec.endpoint_spec.iter().flat_map(|e| e.ports.iter());
        for p in ports.filter(|p| p.published_port != 0 && p.publish_mode == PublishMode::Ingress) {
            let holder = services.iter().find(|s| {
                let name = s.spec.annotations.name.as_str();
                let pruned = pruning.is_some_and(|stack| {
                    s.spec
                        .annotations
                        .labels
                        .get(shoal_compose::NAMESPACE_LABEL)
                        .map(String::as_str)
                        == Some(stack)
                });
                !ours.contains(name)
                    && !pruned
                    && s.endpoint.ports.iter().any(|q| {
                        q.publish_mode == PublishMode::Ingress
                            && q.published_port == p.published_port
                            && q.protocol == p.protocol
                    })
            });
            if let Some(h) = holder {
                return Err(other(format!(
                    "service {:?}: port {}/{} is already published by service {:?}",
                    spec.annotations.name, p.published_port, p.protocol, h.spec.annotations.name
                )));
            }
        }
    }
    Ok(())
}

/// Name → ID and ID → ID for every network, to compare attachments by ID.
fn network_ids(networks: &[NetworkInspect]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for n in networks {
        m.insert(n.name.clone(), n.id.clone());
        m.insert(n.id.clone(), n.id.clone());
    }
    m
}

/// A spec in the form the daemon stores it, with network targets as IDs where known, for
/// comparing a wanted spec with a service's current one.
pub(crate) fn canonical(spec: &ServiceSpec, net_ids: &BTreeMap<String, String>) -> Value {
    let mut s = spec.clone();
    s.normalize();
    for n in &mut s.task_template.networks {
        if let Some(id) = net_ids.get(&n.target) {
            n.target = id.clone();
        }
        n.aliases.sort();
    }
    s.task_template
        .networks
        .sort_by(|a, b| a.target.cmp(&b.target));
    let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
    prune_zero(&mut v, false);
    v
}

/// Drops what the API treats as absent (null, false, "", [], {}), so a spec written by
/// another client (docker's CLI sends `"Placement": {}`) compares equal to ours. Numbers stay:
/// an explicit 0 can differ from a default (a restart delay of 0 is not the default 5 s).
/// Directly under `Mode` an empty object is the mode itself (`"Global": {}`) and stays.
fn prune_zero(v: &mut Value, keep_empty_children: bool) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !*b,
        Value::String(s) => s.is_empty(),
        Value::Number(_) => false,
        Value::Array(items) => {
            for i in items.iter_mut() {
                prune_zero(i, false);
            }
            items.is_empty()
        }
        Value::Object(map) => {
            map.retain(|k, child| {
                let empty = prune_zero(child, k == "Mode");
                !empty || (keep_empty_children && child.is_object())
            });
            map.is_empty()
        }
    }
}

/// Decides create / update / unchanged per service. The wanted spec carries over the current
/// `ForceUpdate` (stack files have no such setting), as docker's deploy does.
pub(crate) fn plan_services(
    plan: &StackPlan,
    existing: &BTreeMap<&str, &Service>,
    net_ids: &BTreeMap<String, String>,
) -> Vec<ServiceAction> {
    plan.services
        .iter()
        .map(|spec| match existing.get(spec.annotations.name.as_str()) {
            None => ServiceAction::Create(spec.clone()),
            Some(cur) => {
                let mut want = spec.clone();
                want.task_template.force_update = cur.spec.task_template.force_update;
                if canonical(&want, net_ids) == canonical(&cur.spec, net_ids) {
                    ServiceAction::Unchanged(spec.annotations.name.clone())
                } else {
                    ServiceAction::Update(cur.id.clone(), cur.meta.version.index, want)
                }
            }
        })
        .collect()
}

/// `GET /distribution/{image}/json`: the digest the registry reports for `image`.
async fn resolve_digest(c: &Client, image: &str, auth: Option<&str>) -> Result<String, ApiError> {
    // Slashes stay: the route takes the whole reference; other characters are escaped.
    let name: Vec<String> = image.split('/').map(escape_segment).collect();
    let path = format!("/distribution/{}/json", name.join("/"));
    let extra: Vec<(&'static str, String)> = auth
        .map(|a| vec![("X-Registry-Auth", a.to_string())])
        .unwrap_or_default();
    let resp = c.raw(Method::GET, &path, None, &extra).await?;
    if !resp.status.is_success() {
        return Err(error_from_response(resp.status, &resp.body));
    }
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("distribution reply: {e}")))?;
    // An OCI descriptor: its keys are lower case.
    v.pointer("/Descriptor/digest")
        .and_then(Value::as_str)
        .filter(|d| d.starts_with("sha256:"))
        .map(str::to_string)
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "distribution reply without a digest"))
}

/// `POST /services/{id}/update`, with the registry credentials when asked for.
async fn update_service(
    c: &Client,
    id: &str,
    version: u64,
    spec: &ServiceSpec,
    auth: Option<String>,
) -> Result<ServiceUpdateResponse, CliError> {
    let path = with_query(
        &format!("/services/{}/update", escape_segment(id)),
        &[("version", version.to_string())],
    );
    let body = serde_json::to_vec(spec).map_err(|e| other(format!("encoding: {e}")))?;
    let mut extra: Vec<(&'static str, String)> = vec![("Content-Type", "application/json".into())];
    if let Some(a) = auth {
        extra.push(("X-Registry-Auth", a));
    }
    let resp = c.raw(Method::POST, &path, Some(body), &extra).await?;
    if !resp.status.is_success() {
        return Err(error_from_response(resp.status, &resp.body).into());
    }
    if resp.body.is_empty() {
        return Ok(ServiceUpdateResponse::default());
    }
    serde_json::from_slice(&resp.body).map_err(|e| other(format!("update reply: {e}")))
}

/// Waits until every service of the stack runs all its tasks (jobs: until none is pending).
async fn wait_converged(
    c: &Client,
    stack: &str,
    names: &BTreeSet<String>,
    quiet: bool,
) -> Result<(), CliError> {
    if !quiet {
        out("Waiting for the stack's services to converge\n");
    }
    let started = Instant::now();
    loop {
        let services = c.service_list(&stack_filter(stack), true).await?;
        let mut pending = Vec::new();
        for s in &services {
            if !names.contains(&s.spec.annotations.name) {
                continue;
            }
            let st = s.service_status.clone().unwrap_or_default();
            let updating = s.update_status.as_ref().is_some_and(|u| {
                matches!(
                    u.state,
                    Some(UpdateState::Updating | UpdateState::RollbackStarted)
                )
            });
            let is_job = s.spec.mode.replicated_job.is_some() || s.spec.mode.global_job.is_some();
            if !is_job && (st.running_tasks < st.desired_tasks || updating) {
                pending.push(format!(
                    "{}: {}/{}",
                    s.spec.annotations.name, st.running_tasks, st.desired_tasks
                ));
            }
        }
        if pending.is_empty() {
            if !quiet {
                out(&format!("Stack {stack}: all services converged\n"));
            }
            return Ok(());
        }
        let last = pending.join(", ");
        if started.elapsed() > CONVERGE_LIMIT {
            return Err(other(format!(
                "stack {stack} did not converge within {}s: {last}",
                CONVERGE_LIMIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::types::Meta;

    fn plan_of(yaml: &str) -> StackPlan {
        let env = shoal_compose::Env::new();
        let project = shoal_compose::load(&[("stack.yml", yaml)], &env).expect("loads");
        shoal_compose::convert(&project, "demo", |_| Ok(b"data".to_vec())).expect("converts")
    }

    fn service_from(spec: &ServiceSpec, id: &str) -> Service {
        let mut stored = spec.clone();
        stored.normalize();
        Service {
            id: id.to_string(),
            meta: Meta::default(),
            spec: stored,
            ..Service::default()
        }
    }

    const TWO: &str =
        "services:\n  a:\n    image: busybox\n  b:\n    image: busybox\n    command: sleep 1\n";

    #[test]
    fn unchanged_services_are_left_alone() {
        let plan = plan_of(TWO);
        let stored: Vec<Service> = plan
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| service_from(s, &format!("id{i}")))
            .collect();
        let existing: BTreeMap<&str, &Service> = stored
            .iter()
            .map(|s| (s.spec.annotations.name.as_str(), s))
            .collect();
        let actions = plan_services(&plan, &existing, &BTreeMap::new());
        assert_eq!(
            actions,
            vec![
                ServiceAction::Unchanged("demo_a".into()),
                ServiceAction::Unchanged("demo_b".into())
            ]
        );

        let edited = plan_of(
            "services:\n  a:\n    image: busybox\n  b:\n    image: busybox\n    command: sleep 2\n  c:\n    image: busybox\n",
        );
        let actions = plan_services(&edited, &existing, &BTreeMap::new());
        assert!(matches!(&actions[0], ServiceAction::Unchanged(n) if n == "demo_a"));
        assert!(matches!(&actions[1], ServiceAction::Update(id, _, _) if id == "id1"));
        assert!(matches!(&actions[2], ServiceAction::Create(s) if s.annotations.name == "demo_c"));
    }

    #[test]
    fn network_targets_compare_by_id() {
        let plan = plan_of(TWO);
        let mut stored = service_from(&plan.services[0], "id0");
        for n in &mut stored.spec.task_template.networks {
            assert_eq!(n.target, "demo_default");
            n.target = "netid1".into();
        }
        let existing = BTreeMap::from([("demo_a", &stored)]);
        let ids = BTreeMap::from([
            ("demo_default".to_string(), "netid1".to_string()),
            ("netid1".to_string(), "netid1".to_string()),
        ]);
        let actions = plan_services(&plan, &existing, &ids);
        assert_eq!(actions[0], ServiceAction::Unchanged("demo_a".into()));
    }

    #[test]
    fn empty_defaults_compare_equal() {
        let mut a = serde_json::json!({"Mode": {"Global": {}}, "TaskTemplate": {"Placement": {},
            "ContainerSpec": {"Image": "x", "Privileges": {"NoNewPrivileges": false, "SELinuxContext": null}},
            "RestartPolicy": {"Delay": 0}}});
        prune_zero(&mut a, false);
        assert_eq!(
            a,
            serde_json::json!({"Mode": {"Global": {}}, "TaskTemplate": {"ContainerSpec": {"Image": "x"},
                "RestartPolicy": {"Delay": 0}}})
        );
    }

    #[test]
    fn force_update_is_carried_over() {
        let plan = plan_of(TWO);
        let mut stored = service_from(&plan.services[0], "id0");
        stored.spec.task_template.force_update = 3;
        let existing = BTreeMap::from([("demo_a", &stored)]);
        let actions = plan_services(&plan, &existing, &BTreeMap::new());
        assert_eq!(actions[0], ServiceAction::Unchanged("demo_a".into()));
    }
}
