//! `shoal stack deploy|ls|ps|services|rm|config`: compose files turned into cluster objects
//! through the REST API only, as docker's CLI does it, so stacks made by either CLI are the
//! same objects (`<stack>_<name>`, labelled `com.docker.stack.namespace=<stack>`).

mod deploy;
mod registry_auth;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use shoal_api::client::with_query;
use shoal_api::{Client, Filters};
use shoal_compose::{ComposeError, Env, NAMESPACE_LABEL, Project};

use super::format::{ListFormat, render_list};
use super::node::parse_filters;
use super::service::{LsArgs as ServiceLsArgs, ServiceCommand};
use super::tasks::{TaskPrint, print_tasks};
use super::{CliError, CliResult, out};

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Deploy a new stack or update an existing stack
    #[command(alias = "up")]
    Deploy(DeployArgs),
    /// List stacks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// List the tasks in the stack
    Ps(PsArgs),
    /// List the services in the stack
    Services(ServicesArgs),
    /// Remove one or more stacks
    #[command(aliases = ["remove", "down"])]
    Rm(RmArgs),
    /// Outputs the final config file, after doing merges and interpolations
    Config(ConfigArgs),
}

/// When `stack deploy` asks the registry for an image's digest to pin it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolveImage {
    /// Always ask the registry
    Always,
    /// Ask only for new services and services whose image changed in the file
    Changed,
    /// Never ask (an image unchanged in the file keeps the digest pinned before)
    Never,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Path to a Compose file, or "-" to read from stdin (repeatable; merged in order)
    #[arg(short = 'c', long = "compose-file", required = true)]
    pub compose_file: Vec<String>,
    /// Prune services that are no longer referenced
    #[arg(long)]
    pub prune: bool,
    /// Query the registry to resolve image digest and supported platforms
    #[arg(long, value_enum, default_value = "always")]
    pub resolve_image: ResolveImage,
    /// Send registry authentication details to Swarm agents
    #[arg(long)]
    pub with_registry_auth: bool,
    /// Exit immediately instead of waiting for the stack services to converge
    #[arg(short, long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    pub stack: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Format output using a custom template ('table', 'json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Filter output based on conditions provided (key=value)
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not map IDs to Names
    #[arg(long)]
    pub no_resolve: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
    pub stack: String,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Filter output based on conditions provided (key=value)
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    pub stack: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not wait for the stack's tasks to be removed
    #[arg(short, long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub detach: bool,
    #[arg(required = true)]
    pub stacks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Path to a Compose file, or "-" to read from stdin (repeatable; merged in order)
    #[arg(short = 'c', long = "compose-file", required = true)]
    pub compose_file: Vec<String>,
}

pub async fn run(c: &Client, cmd: StackCommand) -> CliResult {
    match cmd {
        StackCommand::Deploy(a) => deploy::deploy(c, a).await,
        StackCommand::Ls(a) => ls(c, a).await,
        StackCommand::Ps(a) => ps(c, a).await,
        StackCommand::Services(a) => services(c, a).await,
        StackCommand::Rm(a) => rm(c, a).await,
        StackCommand::Config(a) => config(a),
    }
}

/// Reads and loads the compose files (`-` is stdin, read once), with the process environment
/// and the `.env` next to the first file. Warnings go to stderr, as docker prints them.
pub(crate) fn load_files(names: &[String]) -> Result<Project, CliError> {
    let compose = |e: ComposeError| CliError::Other(e.to_string());
    let mut files: Vec<(PathBuf, String)> = Vec::with_capacity(names.len());
    let mut stdin_used = false;
    for n in names {
        if n == "-" {
            if stdin_used {
                return Err(CliError::Other(
                    "\"-\" (stdin) can be given only once as a compose file".into(),
                ));
            }
            stdin_used = true;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
                CliError::Other(format!("reading the compose file from stdin: {e}"))
            })?;
            files.push((PathBuf::from("-"), text));
        } else {
            let text = std::fs::read_to_string(n)
                .map_err(|e| CliError::Other(format!("reading compose file {n}: {e}")))?;
            files.push((PathBuf::from(n), text));
        }
    }
    let first = files
        .first()
        .map(|(p, _)| p.clone())
        .ok_or_else(|| compose(ComposeError::NoFiles))?;
    let env = Env::for_compose_file(&first).map_err(compose)?;
    let project = shoal_compose::load(&files, &env).map_err(compose)?;
    for w in &project.warnings {
        eprintln!("{w}");
    }
    Ok(project)
}

fn config(a: ConfigArgs) -> CliResult {
    let project = load_files(&a.compose_file)?;
    let yaml = project
        .to_yaml()
        .map_err(|e| CliError::Other(e.to_string()))?;
    out(&yaml);
    Ok(())
}

/// The label filter that selects one stack's objects.
pub(crate) fn stack_filter(stack: &str) -> Filters {
    let mut f = Filters::default();
    f.add("label", format!("{NAMESPACE_LABEL}={stack}"));
    f
}

/// Stack names and their service counts, from the namespace labels of all services.
async fn ls(c: &Client, a: LsArgs) -> CliResult {
    let mut f = Filters::default();
    f.add("label", NAMESPACE_LABEL);
    let services = c.service_list(&f, false).await?;
    let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
    for s in &services {
        if let Some(ns) = s.spec.annotations.labels.get(NAMESPACE_LABEL) {
            *stacks.entry(ns.clone()).or_default() += 1;
        }
    }
    let rows: Vec<Value> = stacks
        .iter()
        .map(|(name, n)| json!({"Name": name, "Services": n.to_string()}))
        .collect();
    let headers = json!({"Name": "NAME", "Services": "SERVICES"});
    out(&render_list(
        ListFormat {
            user: a.format.as_deref(),
            default_table: "table {{.Name}}\t{{.Services}}",
        },
        &headers,
        &rows,
    )?);
    Ok(())
}

async fn ps(c: &Client, a: PsArgs) -> CliResult {
    let mut f = parse_filters(&a.filter)?;
    if f.get("node").contains(&"self") {
        let me = c.info().await?.swarm.node_id;
        let mut nf = Filters::default();
        for (k, vs) in &f.0 {
            for v in vs {
                let v = if k == "node" && v == "self" { &me } else { v };
                nf.add(k.clone(), v.clone());
            }
        }
        f = nf;
    }
    f.add("label", format!("{NAMESPACE_LABEL}={}", a.stack));
    let tasks: Vec<Value> = c
        .get_json(&with_query("/tasks", &[("filters", f.to_json())]))
        .await?;
    if tasks.is_empty() {
        return Err(CliError::Other(format!(
            "nothing found in stack: {}",
            a.stack
        )));
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

async fn services(c: &Client, a: ServicesArgs) -> CliResult {
    let mut filter = a.filter;
    filter.push(format!("label={NAMESPACE_LABEL}={}", a.stack));
    let f = parse_filters(&filter)?;
    if c.service_list(&f, false).await?.is_empty() {
        eprintln!("Nothing found in stack: {}", a.stack);
        return Ok(());
    }
    super::service::run(
        c,
        ServiceCommand::Ls(ServiceLsArgs {
            quiet: a.quiet,
            filter,
            format: a.format,
        }),
    )
    .await
}

/// How long `stack rm` keeps retrying a network that the stack's draining tasks still use.
const NETWORK_DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes each stack's services, then its secrets and configs, then its networks: only objects
/// carrying the stack's namespace label, so external objects and other stacks stay.
async fn rm(c: &Client, a: RmArgs) -> CliResult {
    let mut errors = Vec::new();
    for stack in &a.stacks {
        if let Err(e) = rm_one(c, stack, a.detach, &mut errors).await {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::Other(errors.join("\n")))
    }
}

async fn rm_one(
    c: &Client,
    stack: &str,
    detach: bool,
    errors: &mut Vec<String>,
) -> Result<(), CliError> {
    let f = stack_filter(stack);
    let mut services = c.service_list(&f, false).await?;
    let mut secrets = c.secret_list(&f).await?;
    let mut configs = c.config_list(&f).await?;
    // A daemon without the network API still has services, secrets and configs to remove.
    let mut networks = match c.network_list(&f).await {
        Ok(n) => n,
        Err(e) if services.is_empty() && secrets.is_empty() && configs.is_empty() => {
            return Err(e.into());
        }
        Err(_) => Vec::new(),
    };
    if services.is_empty() && secrets.is_empty() && configs.is_empty() && networks.is_empty() {
        eprintln!("Nothing found in stack: {stack}");
        return Ok(());
    }
    services.sort_by(|a, b| a.spec.annotations.name.cmp(&b.spec.annotations.name));
    secrets.sort_by(|a, b| a.spec.annotations.name.cmp(&b.spec.annotations.name));
    configs.sort_by(|a, b| a.spec.annotations.name.cmp(&b.spec.annotations.name));
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    let mut failed = false;
    for s in &services {
        out(&format!("Removing service {}\n", s.spec.annotations.name));
        if let Err(e) = c.service_remove(&s.id).await {
            failed = true;
            errors.push(format!(
                "Failed to remove service {}: {}",
                s.id,
                CliError::from(e)
            ));
        }
    }
    for s in &secrets {
        out(&format!("Removing secret {}\n", s.spec.annotations.name));
        if let Err(e) = c.secret_remove(&s.id).await {
            failed = true;
            errors.push(format!(
                "Failed to remove secret {}: {}",
                s.id,
                CliError::from(e)
            ));
        }
    }
    for cfg in &configs {
        out(&format!("Removing config {}\n", cfg.spec.annotations.name));
        if let Err(e) = c.config_remove(&cfg.id).await {
            failed = true;
            errors.push(format!(
                "Failed to remove config {}: {}",
                cfg.id,
                CliError::from(e)
            ));
        }
    }
    let started = std::time::Instant::now();
    for n in &networks {
        out(&format!("Removing network {}\n", n.name));
        // The removed services' tasks may still be attached while they stop.
        loop {
            match c.network_remove(&n.id).await {
                Ok(()) => break,
                Err(e)
                    if !services.is_empty()
                        && e.message.contains("in use")
                        && started.elapsed() < NETWORK_DRAIN_LIMIT =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                Err(e) => {
                    failed = true;
                    errors.push(format!(
                        "Failed to remove network {}: {}",
                        n.id,
                        CliError::from(e)
                    ));
                    break;
                }
            }
        }
    }
    if !detach && !failed {
        wait_tasks_gone(c, stack).await?;
    }
    Ok(())
}

/// Waits (bounded) until no task of the stack is left.
async fn wait_tasks_gone(c: &Client, stack: &str) -> Result<(), CliError> {
    let f = stack_filter(stack);
    let started = std::time::Instant::now();
    loop {
        let tasks = c.task_list(&f).await?;
        if tasks.is_empty() {
            return Ok(());
        }
        if started.elapsed() > NETWORK_DRAIN_LIMIT {
            return Err(CliError::Other(format!(
                "stack {stack}: {} task(s) still present after {}s",
                tasks.len(),
                NETWORK_DRAIN_LIMIT.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
