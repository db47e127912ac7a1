//! `shoal service create|ls|ps|inspect|update|scale|rollback|rm|logs`.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};
use shoal_api::client::{escape_segment, with_query};
use shoal_api::{
    Client, Filters, LogsOptions, Method, ServiceCreateResponse, ServiceUpdateResponse, StdStream,
};

use super::format::{ListFormat, render_inspect, render_list, s, truncate_id};
use super::node::parse_filters;
use super::service_spec::{
    Tuning, apply_tuning, kv_map, obj, parse_file_ref, parse_mount, parse_network, parse_publish,
};
use super::tasks::{TaskPrint, print_tasks};
use super::{CliError, CliResult, out};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a new service
    Create(Box<CreateArgs>),
    /// List services
    #[command(alias = "list")]
    Ls(LsArgs),
    /// List the tasks of one or more services
    Ps(PsArgs),
    /// Display detailed information on one or more services
    Inspect(InspectArgs),
    /// Update a service
    Update(Box<UpdateArgs>),
    /// Scale one or multiple replicated services (SERVICE=REPLICAS)
    Scale(ScaleArgs),
    /// Revert changes to a service's configuration
    Rollback(RollbackArgs),
    /// Remove one or more services
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Fetch the logs of a service or task
    Logs(LogsArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Service name
    #[arg(long)]
    pub name: Option<String>,
    /// Service mode ("replicated", "global", "replicated-job", "global-job")
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Number of tasks
    #[arg(long)]
    pub replicas: Option<u64>,
    /// Maximum number of job tasks that run at once (jobs)
    #[arg(long)]
    pub max_concurrent: Option<u64>,
    /// Publish a port as a node port (e.g. 8080:80)
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Service labels
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Container labels
    #[arg(long = "container-label")]
    pub container_label: Vec<String>,
    /// Network attachments
    #[arg(long = "network")]
    pub network: Vec<String>,
    /// Secrets to expose to the service
    #[arg(long = "secret")]
    pub secret: Vec<String>,
    /// Configs to expose to the service
    #[arg(long = "config")]
    pub config: Vec<String>,
    /// Placement constraints
    #[arg(long = "constraint")]
    pub constraint: Vec<String>,
    /// Placement preferences (spread=<label>)
    #[arg(long = "placement-pref")]
    pub placement_pref: Vec<String>,
    /// Attach a filesystem mount to the service
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    // Docker's `service create` calls it `--host`, which here is the global daemon address
    // flag (-H/--host): sharing the name mixed the two values, so it is `--add-host`.
    /// Add a custom host-to-IP mapping ("host:ip")
    #[arg(long = "add-host", id = "add_host", value_name = "HOST:IP")]
    pub host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub tuning: Tuning,
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (key=value)
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Filter output based on conditions provided (key=value)
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Do not map IDs to names
    #[arg(long)]
    pub no_resolve: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Service image tag
    #[arg(long)]
    pub image: Option<String>,
    /// Number of tasks
    #[arg(long)]
    pub replicas: Option<u64>,
    /// Add or update an environment variable
    #[arg(long = "env-add")]
    pub env_add: Vec<String>,
    /// Remove an environment variable
    #[arg(long = "env-rm")]
    pub env_rm: Vec<String>,
    /// Add or update a service label
    #[arg(long = "label-add")]
    pub label_add: Vec<String>,
    /// Remove a label by its key
    #[arg(long = "label-rm")]
    pub label_rm: Vec<String>,
    /// Add or update a container label
    #[arg(long = "container-label-add")]
    pub container_label_add: Vec<String>,
    /// Remove a container label by its key
    #[arg(long = "container-label-rm")]
    pub container_label_rm: Vec<String>,
    /// Add or update a published port
    #[arg(long = "publish-add")]
    pub publish_add: Vec<String>,
    /// Remove a published port by its target port
    #[arg(long = "publish-rm")]
    pub publish_rm: Vec<String>,
    /// Add or update a placement constraint
    #[arg(long = "constraint-add")]
    pub constraint_add: Vec<String>,
    /// Remove a constraint
    #[arg(long = "constraint-rm")]
    pub constraint_rm: Vec<String>,
    /// Add or update a mount
    #[arg(long = "mount-add")]
    pub mount_add: Vec<String>,
    /// Remove a mount by its target path
    #[arg(long = "mount-rm")]
    pub mount_rm: Vec<String>,
    /// Add or update a secret
    #[arg(long = "secret-add")]
    pub secret_add: Vec<String>,
    /// Remove a secret
    #[arg(long = "secret-rm")]
    pub secret_rm: Vec<String>,
    /// Add or update a config
    #[arg(long = "config-add")]
    pub config_add: Vec<String>,
    /// Remove a config
    #[arg(long = "config-rm")]
    pub config_rm: Vec<String>,
    /// Add a network
    #[arg(long = "network-add")]
    pub network_add: Vec<String>,
    /// Remove a network
    #[arg(long = "network-rm")]
    pub network_rm: Vec<String>,
    /// Service command args (replaces the current ones)
    #[arg(long)]
    pub args: Option<String>,
    /// Force update even if no changes require it
    #[arg(long)]
    pub force: bool,
    /// Rollback to previous specification
    #[arg(long)]
    pub rollback: bool,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub tuning: Tuning,
    pub service: String,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// SERVICE=REPLICAS pairs
    #[arg(required = true)]
    pub pairs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    pub service: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" or a number)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp (unix seconds or RFC 3339) or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Do not neatly format logs
    #[arg(long)]
    pub raw: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Do not map IDs to names in output
    #[arg(long)]
    pub no_resolve: bool,
    /// Do not include task IDs in output
    #[arg(long)]
    pub no_task_ids: bool,
    /// Service or task
    pub target: String,
}

pub async fn run(c: &Client, cmd: ServiceCommand) -> CliResult {
    match cmd {
        ServiceCommand::Create(a) => create(c, *a).await,
        ServiceCommand::Ls(a) => ls(c, a).await,
        ServiceCommand::Ps(a) => ps(c, a).await,
        ServiceCommand::Inspect(a) => inspect(c, a).await,
        ServiceCommand::Update(a) => update(c, *a).await,
        ServiceCommand::Scale(a) => scale(c, a).await,
        ServiceCommand::Rollback(a) => rollback(c, a).await,
        ServiceCommand::Rm(a) => {
            let mut failed = Vec::new();
            for n in &a.services {
                match c.service_remove(n).await {
                    Ok(()) => out(&format!("{n}\n")),
                    Err(e) => failed.push(CliError::from(e).to_string()),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(CliError::Other(failed.join("\n")))
            }
        }
        ServiceCommand::Logs(a) => logs(c, a).await,
    }
}

async fn get_service(c: &Client, r: &str, insert_defaults: bool) -> Result<Value, CliError> {
    let path = with_query(
        &format!("/services/{}", escape_segment(r)),
        &[("insertDefaults", insert_defaults.to_string())],
    );
    Ok(c.get_json(&path).await?)
}

async fn create(c: &Client, a: CreateArgs) -> CliResult {
    let mut cs = json!({"Image": a.image});
    if let Some(ep) = &a.entrypoint {
        cs["Command"] = json!(ep.split_whitespace().collect::<Vec<_>>());
    }
    if !a.args.is_empty() {
        cs["Args"] = json!(a.args);
    }
    if !a.env.is_empty() {
        cs["Env"] = json!(a.env);
    }
    if !a.container_label.is_empty() {
        cs["Labels"] = kv_map(&a.container_label);
    }
    if !a.mount.is_empty() {
        cs["Mounts"] = Value::Array(
            a.mount
                .iter()
                .map(|m| parse_mount(m))
                .collect::<Result<_, _>>()?,
        );
    }
    if !a.host.is_empty() {
        // "host:ip" on the command line, "ip host" in the spec (as /etc/hosts reads).
        let hosts: Result<Vec<String>, CliError> = a
            .host
            .iter()
            .map(|h| {
                h.split_once(':')
                    .map(|(n, ip)| format!("{ip} {n}"))
                    .ok_or_else(|| CliError::Other(format!("bad format for add-host: {h:?}")))
            })
            .collect();
        cs["Hosts"] = json!(hosts?);
    }
    if !a.dns.is_empty() {
        cs["DNSConfig"] = json!({"Nameservers": a.dns});
    }
    let mut secrets = Vec::new();
    for sref in &a.secret {
        secrets.push(parse_file_ref(c, "secret", sref).await?);
    }
    if !secrets.is_empty() {
        cs["Secrets"] = Value::Array(secrets);
    }
    let mut configs = Vec::new();
    for cref in &a.config {
        configs.push(parse_file_ref(c, "config", cref).await?);
    }
    if !configs.is_empty() {
        cs["Configs"] = Value::Array(configs);
    }
    let mut networks = Vec::new();
    for n in &a.network {
        networks.push(parse_network(c, n).await?);
    }
    let mode = match a.mode.as_str() {
        "replicated" => json!({"Replicated": {"Replicas": a.replicas.unwrap_or(1)}}),
        "global" => {
            if a.replicas.is_some() {
                return Err(CliError::Other(
                    "replicas can only be used with replicated or replicated-job mode".into(),
                ));
            }
            json!({"Global": {}})
        }
        "replicated-job" => {
            let total = a.replicas.unwrap_or(1);
            json!({"ReplicatedJob": {"MaxConcurrent": a.max_concurrent.unwrap_or(total), "TotalCompletions": total}})
        }
        "global-job" => json!({"GlobalJob": {}}),
        other => {
            return Err(CliError::Other(format!(
                "invalid mode {other:?}: must be replicated, global, replicated-job or global-job"
            )));
        }
    };
    let mut placement = json!({});
    if !a.constraint.is_empty() {
        placement["Constraints"] = json!(a.constraint);
    }
    if !a.placement_pref.is_empty() {
        let prefs: Result<Vec<Value>, CliError> = a
            .placement_pref
            .iter()
            .map(|p| match p.split_once('=') {
                Some(("spread", d)) => Ok(json!({"Spread": {"SpreadDescriptor": d}})),
                _ => Err(CliError::Other(format!(
                    "invalid placement preference {p:?}: expected spread=<label>"
                ))),
            })
            .collect();
        placement["Preferences"] = json!(prefs?);
    }
    let mut spec = json!({
        "Name": a.name.clone().unwrap_or_default(),
        "Labels": kv_map(&a.label),
        "TaskTemplate": {"ContainerSpec": cs, "Placement": placement, "ForceUpdate": 0},
        "Mode": mode,
    });
    if !networks.is_empty() {
        spec["TaskTemplate"]["Networks"] = Value::Array(networks);
    }
    if !a.publish.is_empty() {
        let ports: Vec<Value> = a
            .publish
            .iter()
            .map(|p| parse_publish(p))
            .collect::<Result<_, _>>()?;
        obj(&mut spec, "EndpointSpec")["Ports"] = Value::Array(ports);
    }
    apply_tuning(&mut spec, &a.tuning)?;
    let resp: ServiceCreateResponse = c.send_json(Method::POST, "/services/create", &spec).await?;
    for w in resp.warnings.unwrap_or_default() {
        eprintln!("{w}");
    }
    out(&format!("{}\n", resp.id));
    if !a.detach {
        wait_converged(c, &resp.id, a.quiet).await?;
    }
    Ok(())
}

fn mode_name(spec: &Value) -> &'static str {
    let m = &spec["Mode"];
    if m.get("Global").is_some_and(|g| !g.is_null()) {
        "global"
    } else if m.get("ReplicatedJob").is_some_and(|g| !g.is_null()) {
        "replicated job"
    } else if m.get("GlobalJob").is_some_and(|g| !g.is_null()) {
        "global job"
    } else {
        "replicated"
    }
}

fn ingress_ports(svc: &Value) -> String {
    let ports = svc
        .pointer("/Endpoint/Ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    ports
        .iter()
        .filter(|p| matches!(s(p, &["PublishMode"]).as_str(), "ingress" | ""))
        .map(|p| {
            let proto = s(p, &["Protocol"]);
            format!(
                "*:{}->{}/{}",
                s(p, &["PublishedPort"]),
                s(p, &["TargetPort"]),
                if proto.is_empty() {
                    "tcp".into()
                } else {
                    proto
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn replicas_cell(svc: &Value) -> String {
    let st = &svc["ServiceStatus"];
    let running = st["RunningTasks"].as_u64().unwrap_or(0);
    let desired = st["DesiredTasks"].as_u64().unwrap_or(0);
    let spec = &svc["Spec"];
    match mode_name(spec) {
        "replicated" => {
            let max = spec
                .pointer("/TaskTemplate/Placement/MaxReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if max > 0 {
                format!("{running}/{desired} (max {max} per node)")
            } else {
                format!("{running}/{desired}")
            }
        }
        "replicated job" => {
            let total = spec
                .pointer("/Mode/ReplicatedJob/TotalCompletions")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            format!(
                "{running}/{desired} ({}/{total} completed)",
                st["CompletedTasks"].as_u64().unwrap_or(0)
            )
        }
        "global job" => format!(
            "{running}/{desired} ({} completed)",
            st["CompletedTasks"].as_u64().unwrap_or(0)
        ),
        _ => format!("{running}/{desired}"),
    }
}

async fn ls(c: &Client, a: LsArgs) -> CliResult {
    let f = parse_filters(&a.filter)?;
    let mut q = vec![("status", "true".to_string())];
    if !f.is_empty() {
        q.push(("filters", f.to_json()));
    }
    let mut svcs: Vec<Value> = c.get_json(&with_query("/services", &q)).await?;
    svcs.sort_by_key(|v| s(v, &["Spec", "Name"]));
    if a.quiet {
        out(&svcs
            .iter()
            .map(|v| format!("{}\n", s(v, &["ID"])))
            .collect::<String>());
        return Ok(());
    }
    let rows: Vec<Value> = svcs
        .iter()
        .map(|v| {
            let mut image = s(v, &["Spec", "TaskTemplate", "ContainerSpec", "Image"]);
            if let Some((i, _)) = image.split_once('@') {
                image = i.to_string();
            }
            json!({"ID": truncate_id(&s(v, &["ID"])), "Name": s(v, &["Spec", "Name"]), "Mode": mode_name(&v["Spec"]),
                   "Replicas": replicas_cell(v), "Image": image, "Ports": ingress_ports(v)})
        })
        .collect();
    let headers = json!({"ID": "ID", "Name": "NAME", "Mode": "MODE", "Replicas": "REPLICAS", "Image": "IMAGE", "Ports": "PORTS"});
    let def = "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}";
    out(&render_list(
        ListFormat {
            user: a.format.as_deref(),
            default_table: def,
        },
        &headers,
        &rows,
    )?);
    Ok(())
}

/// Exact ID, then exact name, then unique ID prefix, as `docker service ps` resolves.
async fn resolve_service_id(c: &Client, r: &str) -> Result<String, CliError> {
    let mut all: Vec<Value> = Vec::new();
    for key in ["id", "name"] {
        let mut f = Filters::default();
        f.add(key, r);
        let list: Vec<Value> = c
            .get_json(&with_query("/services", &[("filters", f.to_json())]))
            .await?;
        all.extend(list);
    }
    if let Some(v) = all.iter().find(|v| s(v, &["ID"]) == r) {
        return Ok(s(v, &["ID"]));
    }
    if let Some(v) = all.iter().find(|v| s(v, &["Spec", "Name"]) == r) {
        return Ok(s(v, &["ID"]));
    }
    let mut ids: Vec<String> = all
        .iter()
        .map(|v| s(v, &["ID"]))
        .filter(|id| id.starts_with(r))
        .collect();
    ids.sort();
    ids.dedup();
    match ids.len() {
        1 => Ok(ids.remove(0)),
        0 => Err(CliError::Other(format!("no such service: {r}"))),
        n => Err(CliError::Other(format!(
            "service {r} is ambiguous ({n} matches found)"
        ))),
    }
}

async fn ps(c: &Client, a: PsArgs) -> CliResult {
    let mut tasks: Vec<Value> = Vec::new();
    for r in &a.services {
        let id = resolve_service_id(c, r).await?;
        let mut f = parse_filters(&a.filter)?;
        if f.get("node").contains(&"self") {
            let me = c.info().await?.swarm.node_id;
            let mut nf = Filters::default();
            for (k, vs) in &f.0 {
                for v in vs {
                    nf.add(
                        k.clone(),
                        if k == "node" && v == "self" {
                            me.clone()
                        } else {
                            v.clone()
                        },
                    );
                }
            }
            f = nf;
        }
        f.add("service", id);
        let list: Vec<Value> = c
            .get_json(&with_query("/tasks", &[("filters", f.to_json())]))
            .await?;
        tasks.extend(list);
    }
    let p = TaskPrint {
        quiet: a.quiet,
        no_trunc: a.no_trunc,
        no_resolve: a.no_resolve,
        format: a.format,
    };
    out(&print_tasks(c, tasks, &p).await?);
    Ok(())
}

async fn inspect(c: &Client, a: InspectArgs) -> CliResult {
    let mut objs = Vec::new();
    for r in &a.services {
        match get_service(c, r, true).await {
            Ok(v) => objs.push(v),
            Err(CliError::Daemon(e)) if e.status_code() == 404 => {
                return Err(CliError::Other(format!("Error: no such service: {r}")));
            }
            Err(e) => return Err(e),
        }
    }
    if !a.pretty {
        out(&render_inspect(a.format.as_deref(), &objs)?);
        return Ok(());
    }
    let mut blocks = Vec::new();
    for v in &objs {
        let spec = &v["Spec"];
        let cs = &spec["TaskTemplate"]["ContainerSpec"];
        let mut t = format!(
            "\nID:\t\t{}\nName:\t\t{}\n",
            s(v, &["ID"]),
            s(spec, &["Name"])
        );
        if let Some(l) = spec
            .get("Labels")
            .and_then(Value::as_object)
            .filter(|l| !l.is_empty())
        {
            t.push_str("Labels:\n");
            for (k, val) in l {
                t.push_str(&format!(" {k}={}\n", val.as_str().unwrap_or_default()));
            }
        }
        t.push_str("Service Mode:\t");
        match mode_name(spec) {
            "replicated" => t.push_str(&format!(
                "Replicated\n Replicas:\t{}\n",
                spec.pointer("/Mode/Replicated/Replicas")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            )),
            other => t.push_str(&format!("{}\n", super::format::capitalize(other))),
        }
        if let Some(us) = v.get("UpdateStatus").filter(|u| !u.is_null()) {
            t.push_str(&format!(
                "UpdateStatus:\n State:\t\t{}\n Started:\t{}\n Message:\t{}\n",
                s(us, &["State"]),
                s(us, &["StartedAt"]),
                s(us, &["Message"])
            ));
        }
        t.push_str(&format!(
            "Placement:\n Constraints:\t{}\n",
            spec.pointer("/TaskTemplate/Placement/Constraints")
                .map(|c| c.to_string())
                .unwrap_or_else(|| "[]".into())
        ));
        let u = &spec["UpdateConfig"];
        if u.is_object() {
            t.push_str(&format!(
                "UpdateConfig:\n Parallelism:\t{}\n On failure:\t{}\n Monitoring Period: {}\n Max failure ratio: {}\n Update order:      {}\n",
                s(u, &["Parallelism"]),
                s(u, &["FailureAction"]),
                shoal_api::types::format_duration(u["Monitor"].as_i64().unwrap_or(0)),
                s(u, &["MaxFailureRatio"]),
                s(u, &["Order"])
            ));
        }
        t.push_str(&format!(
            "ContainerSpec:\n Image:\t\t{}\n",
            s(cs, &["Image"])
        ));
        if let Some(args) = cs.get("Args").and_then(Value::as_array) {
            t.push_str(&format!(
                " Args:\t\t{}\n",
                args.iter()
                    .map(|x| x.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        if let Some(env) = cs.get("Env").and_then(Value::as_array) {
            t.push_str(&format!(
                " Env:\t\t{}\n",
                env.iter()
                    .map(|x| x.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        // The spec's mode, as the docker CLI prints it; services stored before the default was
        // kept there show the one in effect.
        let mode = Some(s(spec, &["EndpointSpec", "Mode"]))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| s(v, &["Endpoint", "Spec", "Mode"]));
        t.push_str(&format!("Endpoint Mode:\t{mode}\n"));
        let ports = ingress_ports(v);
        if !ports.is_empty() {
            t.push_str(&format!("Ports:\t\t{ports}\n"));
        }
        blocks.push(super::format::tabwrite(&t));
    }
    out(&blocks.join("\n"));
    Ok(())
}

fn remove_env(env: &mut Vec<Value>, key: &str) {
    env.retain(|e| {
        let e = e.as_str().unwrap_or_default();
        e != key && !e.starts_with(&format!("{key}="))
    });
}

fn edit_map(v: &mut Value, key: &str, add: &[String], rm: &[String]) {
    if add.is_empty() && rm.is_empty() {
        return;
    }
    let m = obj(v, key);
    if let Some(map) = m.as_object_mut() {
        for k in rm {
            map.remove(k);
        }
        for l in add {
            let (k, val) = l.split_once('=').unwrap_or((l.as_str(), ""));
            map.insert(k.to_string(), json!(val));
        }
    }
}

/// Edits the array at `v[key]` (created when missing or not an array).
fn with_array(v: &mut Value, key: &str, f: impl FnOnce(&mut Vec<Value>)) {
    if !v.is_object() {
        *v = json!({});
    }
    let mut arr = match v[key].take() {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    f(&mut arr);
    v[key] = Value::Array(arr);
}

async fn update(c: &Client, a: UpdateArgs) -> CliResult {
    let svc = get_service(c, &a.service, false).await?;
    let id = s(&svc, &["ID"]);
    let version = svc
        .pointer("/Version/Index")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut spec = svc["Spec"].clone();
    if a.rollback {
        let resp: ServiceUpdateResponse = c
            .send_json(
                Method::POST,
                &with_query(
                    &format!("/services/{}/update", escape_segment(&id)),
                    &[
                        ("rollback", "previous".into()),
                        ("version", version.to_string()),
                    ],
                ),
                &spec,
            )
            .await?;
        finish_update(c, &a.service, &id, resp, a.detach, a.quiet).await?;
        return Ok(());
    }
    if let Some(img) = &a.image {
        obj(obj(&mut spec, "TaskTemplate"), "ContainerSpec")["Image"] = json!(img);
    }
    if let Some(n) = a.replicas {
        if spec
            .pointer("/Mode/Replicated")
            .is_some_and(Value::is_object)
        {
            spec["Mode"]["Replicated"]["Replicas"] = json!(n);
        } else if spec
            .pointer("/Mode/ReplicatedJob")
            .is_some_and(Value::is_object)
        {
            spec["Mode"]["ReplicatedJob"]["TotalCompletions"] = json!(n);
        } else {
            return Err(CliError::Other(
                "replicas can only be used with replicated or replicated-job mode".into(),
            ));
        }
    }
    edit_map(&mut spec, "Labels", &a.label_add, &a.label_rm);
    {
        let cs = obj(obj(&mut spec, "TaskTemplate"), "ContainerSpec");
        edit_map(cs, "Labels", &a.container_label_add, &a.container_label_rm);
        if !a.env_add.is_empty() || !a.env_rm.is_empty() {
            with_array(cs, "Env", |env| {
                for k in &a.env_rm {
                    remove_env(env, k);
                }
                for e in &a.env_add {
                    let key = e.split_once('=').map(|(k, _)| k).unwrap_or(e);
                    remove_env(env, key);
                    env.push(json!(e));
                }
            });
        }
        if !a.mount_add.is_empty() || !a.mount_rm.is_empty() {
            let adds: Vec<Value> = a
                .mount_add
                .iter()
                .map(|m| parse_mount(m))
                .collect::<Result<_, _>>()?;
            with_array(cs, "Mounts", |mounts| {
                mounts.retain(|m| !a.mount_rm.contains(&s(m, &["Target"])));
                for m in adds {
                    let target = s(&m, &["Target"]);
                    mounts.retain(|x| s(x, &["Target"]) != target);
                    mounts.push(m);
                }
            });
        }
        if let Some(args) = &a.args {
            cs["Args"] = json!(args.split_whitespace().collect::<Vec<_>>());
        }
    }
    for (kind, add, rm, key) in [
        ("secret", &a.secret_add, &a.secret_rm, "Secrets"),
        ("config", &a.config_add, &a.config_rm, "Configs"),
    ] {
        if add.is_empty() && rm.is_empty() {
            continue;
        }
        let mut refs = Vec::new();
        for r in add {
            refs.push(parse_file_ref(c, kind, r).await?);
        }
        let name_key = if kind == "config" {
            "ConfigName"
        } else {
            "SecretName"
        };
        with_array(
            obj(obj(&mut spec, "TaskTemplate"), "ContainerSpec"),
            key,
            |list| {
                list.retain(|x| !rm.contains(&s(x, &[name_key])));
                for r in refs {
                    let n = s(&r, &[name_key]);
                    list.retain(|x| s(x, &[name_key]) != n);
                    list.push(r);
                }
            },
        );
    }
    if !a.network_add.is_empty() || !a.network_rm.is_empty() {
        let mut adds = Vec::new();
        for n in &a.network_add {
            adds.push(parse_network(c, n).await?);
        }
        let mut rm_ids = Vec::new();
        for n in &a.network_rm {
            let net: Value = c
                .get_json(&format!("/networks/{}", escape_segment(n)))
                .await?;
            rm_ids.push(s(&net, &["Id"]));
            rm_ids.push(n.clone());
        }
        with_array(obj(&mut spec, "TaskTemplate"), "Networks", |list| {
            list.retain(|x| !rm_ids.contains(&s(x, &["Target"])));
            list.extend(adds);
        });
    }
    if !a.publish_add.is_empty() || !a.publish_rm.is_empty() {
        let adds: Vec<Value> = a
            .publish_add
            .iter()
            .map(|p| parse_publish(p))
            .collect::<Result<_, _>>()?;
        with_array(obj(&mut spec, "EndpointSpec"), "Ports", |ports| {
            for r in &a.publish_rm {
                let target = r
                    .rsplit_once(':')
                    .map(|(_, t)| t)
                    .unwrap_or(r)
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                ports.retain(|p| s(p, &["TargetPort"]) != target);
            }
            for p in adds {
                let (t, proto) = (s(&p, &["TargetPort"]), s(&p, &["Protocol"]));
                ports.retain(|x| !(s(x, &["TargetPort"]) == t && s(x, &["Protocol"]) == proto));
                ports.push(p);
            }
        });
    }
    if !a.constraint_add.is_empty() || !a.constraint_rm.is_empty() {
        with_array(
            obj(obj(&mut spec, "TaskTemplate"), "Placement"),
            "Constraints",
            |cons| {
                cons.retain(|x| {
                    !a.constraint_rm
                        .iter()
                        .any(|r| x.as_str() == Some(r.as_str()))
                });
                for cn in &a.constraint_add {
                    if !cons.iter().any(|x| x.as_str() == Some(cn.as_str())) {
                        cons.push(json!(cn));
                    }
                }
            },
        );
    }
    apply_tuning(&mut spec, &a.tuning)?;
    if a.force {
        let tt = obj(&mut spec, "TaskTemplate");
        let n = tt["ForceUpdate"].as_u64().unwrap_or(0);
        tt["ForceUpdate"] = json!(n + 1);
    }
    let path = with_query(
        &format!("/services/{}/update", escape_segment(&id)),
        &[
            ("registryAuthFrom", "spec".into()),
            ("version", version.to_string()),
        ],
    );
    let resp: ServiceUpdateResponse = c.send_json(Method::POST, &path, &spec).await?;
    finish_update(c, &a.service, &id, resp, a.detach, a.quiet).await
}

async fn finish_update(
    c: &Client,
    shown: &str,
    id: &str,
    resp: ServiceUpdateResponse,
    detach: bool,
    quiet: bool,
) -> CliResult {
    for w in resp.warnings.unwrap_or_default() {
        eprintln!("{w}");
    }
    out(&format!("{shown}\n"));
    if !detach {
        wait_converged(c, id, quiet).await?;
    }
    Ok(())
}

async fn scale(c: &Client, a: ScaleArgs) -> CliResult {
    let mut failed = Vec::new();
    let mut scaled = Vec::new();
    for pair in &a.pairs {
        let Some((name, n)) = pair.split_once('=') else {
            return Err(CliError::Other(format!(
                "invalid scale specifier {pair:?}: expected SERVICE=REPLICAS"
            )));
        };
        let Ok(n) = n.parse::<u64>() else {
            return Err(CliError::Other(format!(
                "invalid replicas value {n}: must be a non-negative integer"
            )));
        };
        let r = async {
            let svc = get_service(c, name, false).await?;
            let mut spec = svc["Spec"].clone();
            if spec
                .pointer("/Mode/Replicated")
                .is_some_and(Value::is_object)
            {
                spec["Mode"]["Replicated"]["Replicas"] = json!(n);
            } else if spec
                .pointer("/Mode/ReplicatedJob")
                .is_some_and(Value::is_object)
            {
                spec["Mode"]["ReplicatedJob"]["TotalCompletions"] = json!(n);
            } else {
                return Err(CliError::Other(
                    "scale can only be used with replicated or replicated-job mode".into(),
                ));
            }
            let id = s(&svc, &["ID"]);
            let version = svc
                .pointer("/Version/Index")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let path = with_query(
                &format!("/services/{}/update", escape_segment(&id)),
                &[("version", version.to_string())],
            );
            let _: ServiceUpdateResponse = c.send_json(Method::POST, &path, &spec).await?;
            Ok(id)
        }
        .await;
        match r {
            Ok(id) => {
                out(&format!("{name} scaled to {n}\n"));
                scaled.push(id);
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !a.detach {
        for id in &scaled {
            wait_converged(c, id, false).await?;
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Other(failed.join("\n")))
    }
}

async fn rollback(c: &Client, a: RollbackArgs) -> CliResult {
    let svc = get_service(c, &a.service, false).await?;
    let id = s(&svc, &["ID"]);
    let version = svc
        .pointer("/Version/Index")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let path = with_query(
        &format!("/services/{}/update", escape_segment(&id)),
        &[
            ("rollback", "previous".into()),
            ("version", version.to_string()),
        ],
    );
    let resp: ServiceUpdateResponse = c.send_json(Method::POST, &path, &svc["Spec"]).await?;
    finish_update(c, &a.service, &id, resp, a.detach, a.quiet).await
}

const TERMINAL: &[&str] = &[
    "complete", "shutdown", "failed", "rejected", "remove", "orphaned",
];

/// Polls every 200 ms until the service's up-to-date tasks run on live nodes, like docker's
/// progress loop (without the terminal bars). Fails on a paused update.
async fn wait_converged(c: &Client, id: &str, quiet: bool) -> CliResult {
    let mut last = String::new();
    let mut verified_since: Option<std::time::Instant> = None;
    loop {
        let svc = get_service(c, id, false).await?;
        let ustate = s(&svc, &["UpdateStatus", "State"]);
        if ustate == "paused" || ustate == "rollback_paused" {
            return Err(CliError::Other(format!(
                "service update paused: {}",
                s(&svc, &["UpdateStatus", "Message"])
            )));
        }
        let mut f = Filters::default();
        f.add("service", id);
        f.add("_up-to-date", "true");
        let tasks: Vec<Value> = c
            .get_json(&with_query("/tasks", &[("filters", f.to_json())]))
            .await?;
        let nodes: Vec<Value> = c.get_json("/nodes").await?;
        let down: Vec<String> = nodes
            .iter()
            .filter(|n| s(n, &["Status", "State"]) == "down")
            .map(|n| s(n, &["ID"]))
            .collect();
        let live = |t: &Value| !down.contains(&s(t, &["NodeID"]));
        let spec = &svc["Spec"];
        let (done, total, converged) = match mode_name(spec) {
            "replicated" => {
                let want = spec
                    .pointer("/Mode/Replicated/Replicas")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                let mut slots: Vec<u64> = tasks
                    .iter()
                    .filter(|t| {
                        !TERMINAL.contains(&s(t, &["DesiredState"]).as_str())
                            && s(t, &["Status", "State"]) == "running"
                            && live(t)
                    })
                    .filter_map(|t| t["Slot"].as_u64())
                    .collect();
                slots.sort_unstable();
                slots.dedup();
                let n = slots.len() as u64;
                (n, want, n == want)
            }
            "global" => {
                let desired: Vec<&Value> = tasks
                    .iter()
                    .filter(|t| !TERMINAL.contains(&s(t, &["DesiredState"]).as_str()) && live(t))
                    .collect();
                let running = desired
                    .iter()
                    .filter(|t| s(t, &["Status", "State"]) == "running")
                    .count() as u64;
                (
                    running,
                    desired.len() as u64,
                    running == desired.len() as u64,
                )
            }
            _ => {
                let want = spec
                    .pointer("/Mode/ReplicatedJob/TotalCompletions")
                    .and_then(Value::as_u64)
                    .unwrap_or(tasks.len() as u64);
                let complete = tasks
                    .iter()
                    .filter(|t| s(t, &["Status", "State"]) == "complete")
                    .count() as u64;
                (complete, want, complete >= want)
            }
        };
        let line = format!("overall progress: {done} out of {total} tasks");
        if !quiet && line != last {
            out(&format!("{line}\n"));
            last = line;
        }
        if converged {
            // Hold the converged state for the monitor period (capped) before declaring it stable.
            let monitor_ns = spec
                .pointer("/UpdateConfig/Monitor")
                .and_then(Value::as_i64)
                .filter(|m| *m > 0)
                .unwrap_or(5_000_000_000);
            let monitor = std::time::Duration::from_nanos(monitor_ns.min(5_000_000_000) as u64);
            let since = *verified_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= monitor || !matches!(mode_name(spec), "replicated" | "global") {
                if !quiet {
                    out(&format!("verify: Service {id} converged\n"));
                }
                return Ok(());
            }
        } else {
            verified_since = None;
            if ustate == "completed" || ustate == "rollback_completed" {
                // The daemon says the update finished although tasks are not all running.
                return Ok(());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn logs(c: &Client, a: LogsArgs) -> CliResult {
    let tail = if a.tail == "all" {
        None
    } else {
        Some(
            a.tail
                .parse::<u64>()
                .map_err(|_| CliError::Other(format!("invalid tail value {:?}", a.tail)))?,
        )
    };
    let opts = LogsOptions {
        follow: a.follow,
        stdout: true,
        stderr: true,
        since: a
            .since
            .as_deref()
            .map(|v| super::events::parse_when("since", v))
            .transpose()?,
        until: None,
        tail,
        timestamps: a.timestamps,
        details: !a.raw,
    };
    let mut stream = match c.service_inspect(&a.target, false).await {
        Ok(_) => c.service_logs(&a.target, &opts).await?,
        Err(e) if e.status_code() == 404 => c.task_logs(&a.target, &opts).await?,
        Err(e) => return Err(e.into()),
    };
    let mut names: HashMap<String, String> = HashMap::new();
    while let Some(item) = stream.next().await {
        let (which, payload) = item?;
        let text = String::from_utf8_lossy(&payload).into_owned();
        let line = if a.raw {
            text
        } else {
            format_log_line(c, &text, &a, &mut names).await
        };
        if which == StdStream::Stderr {
            eprint!("{line}");
        } else {
            out(&line);
        }
    }
    Ok(())
}

/// `<svc>.<slot>.<task>@<node>    | <line>` from a payload `[ts ]details line`.
async fn format_log_line(
    c: &Client,
    payload: &str,
    a: &LogsArgs,
    cache: &mut HashMap<String, String>,
) -> String {
    let (ts, rest) = if a.timestamps {
        payload
            .split_once(' ')
            .map(|(t, r)| (format!("{t} "), r))
            .unwrap_or((String::new(), payload))
    } else {
        (String::new(), payload)
    };
    // A line without swarm details (the daemon's own warnings) is shown as it is.
    let Some((details, line)) = rest.split_once(' ').filter(|(d, _)| d.contains('=')) else {
        return payload.to_string();
    };
    let attrs: HashMap<String, String> = details
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect();
    let task = attrs
        .get("com.docker.swarm.task.id")
        .cloned()
        .unwrap_or_default();
    let node = attrs
        .get("com.docker.swarm.node.id")
        .cloned()
        .unwrap_or_default();
    let svc = attrs
        .get("com.docker.swarm.service.id")
        .cloned()
        .unwrap_or_default();
    let key = format!("{svc}/{task}/{node}");
    if !cache.contains_key(&key) {
        let (mut svc_name, mut node_name, mut slot) = (svc.clone(), node.clone(), String::new());
        if !a.no_resolve {
            if let Ok(v) = c
                .get_json::<Value>(&format!("/services/{}", escape_segment(&svc)))
                .await
            {
                svc_name = s(&v, &["Spec", "Name"]);
            }
            if let Ok(v) = c
                .get_json::<Value>(&format!("/nodes/{}", escape_segment(&node)))
                .await
            {
                node_name = s(&v, &["Description", "Hostname"]);
            }
        }
        if let Ok(v) = c
            .get_json::<Value>(&format!("/tasks/{}", escape_segment(&task)))
            .await
        {
            slot = s(&v, &["Slot"]);
        }
        let tid = if a.no_trunc {
            task.clone()
        } else {
            truncate_id(&task)
        };
        let mut prefix = svc_name;
        if !slot.is_empty() && slot != "0" {
            prefix.push_str(&format!(".{slot}"));
        }
        if !a.no_task_ids {
            prefix.push_str(&format!(".{tid}"));
        }
        prefix.push_str(&format!("@{node_name}"));
        cache.insert(key.clone(), prefix);
    }
    format!(
        "{ts}{}    | {line}",
        cache.get(&key).cloned().unwrap_or_default()
    )
}

/// Reverses Go's url.QueryEscape.
fn unescape(s: &str) -> String {
    url_decode(&s.replace('+', " "))
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_unescape() {
        assert_eq!(unescape("a+b%3Dc%2C"), "a b=c,");
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%zz%4"), "%zz%4");
    }

    #[test]
    fn replicas_and_modes() {
        let svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 3}}, "TaskTemplate": {"Placement": {"MaxReplicas": 2}}},
            "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 3}, "Endpoint": {"Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
                {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "host"}]}});
        assert_eq!(replicas_cell(&svc), "1/3 (max 2 per node)");
        assert_eq!(mode_name(&svc["Spec"]), "replicated");
        assert_eq!(ingress_ports(&svc), "*:8080->80/tcp");
        assert_eq!(mode_name(&json!({"Mode": {"Global": {}}})), "global");
        let mut v = json!({"Env": "junk"});
        with_array(&mut v, "Env", |e| e.push(json!("A=1")));
        assert_eq!(v["Env"], json!(["A=1"]));
    }
}
