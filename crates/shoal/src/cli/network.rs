//! `shoal network create|ls|inspect|rm|prune|connect|disconnect`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use shoal_api::client::{escape_segment, with_query};
use shoal_api::{Client, Method, NetworkCreateResponse};

use super::format::{ListFormat, render_inspect, render_list, s, truncate_id};
use super::node::parse_filters;
use super::service_spec::kv_map;
use super::{CliError, CliResult, out};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(Box<CreateArgs>),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias")]
    pub alias: Vec<String>,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the network
    #[arg(short, long, default_value = "overlay")]
    pub driver: String,
    /// Set driver specific options (key=value)
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Network labels (key=value)
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Subnet in CIDR format (repeatable)
    #[arg(long = "subnet")]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 gateway for the master subnet (repeatable, in subnet order)
    #[arg(long = "gateway")]
    pub gateway: Vec<String>,
    /// Allocate container IPs from a sub-range (repeatable, in subnet order)
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Enable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Control the network's scope
    #[arg(long)]
    pub scope: Option<String>,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
    /// Provide filter values (e.g. "driver=overlay")
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    pub verbose: bool,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub async fn run(c: &Client, cmd: NetworkCommand) -> CliResult {
    match cmd {
        NetworkCommand::Create(a) => create(c, *a).await,
        NetworkCommand::Ls(a) => ls(c, a).await,
        NetworkCommand::Connect(a) => connect(c, a).await,
        NetworkCommand::Disconnect(a) => disconnect(c, a).await,
        NetworkCommand::Inspect(a) => {
            let mut objs = Vec::new();
            for n in &a.networks {
                let mut q = Vec::new();
                if a.verbose {
                    q.push(("verbose", "true".to_string()));
                }
                let v: Value = c
                    .get_json(&with_query(&format!("/networks/{}", escape_segment(n)), &q))
                    .await?;
                objs.push(v);
            }
            out(&render_inspect(a.format.as_deref(), &objs)?);
            Ok(())
        }
        NetworkCommand::Rm(a) => {
            let mut failed = Vec::new();
            for n in &a.networks {
                match c.network_remove(n).await {
                    Ok(()) => out(&format!("{n}\n")),
                    Err(e) if a.force && e.status_code() == 404 => {}
                    Err(e) => failed.push(CliError::from(e).to_string()),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(CliError::Other(failed.join("\n")))
            }
        }
        NetworkCommand::Prune(a) => {
            let f = parse_filters(&a.filter)?;
            let warning =
                "WARNING! This will remove all custom networks not used by at least one container.";
            let Some(v) = super::prune::prune(c, "/networks/prune", a.force, warning, &f).await?
            else {
                return Ok(());
            };
            let deleted = v
                .get("NetworksDeleted")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !deleted.is_empty() {
                let mut t = String::from("Deleted Networks:\n");
                for d in deleted {
                    t.push_str(&format!("{}\n", d.as_str().unwrap_or_default()));
                }
                out(&t);
            }
            Ok(())
        }
    }
}

/// The bodies the docker CLI sends for `network connect` / `disconnect`.
async fn connect(c: &Client, a: ConnectArgs) -> CliResult {
    let body = json!({"Container": a.container, "EndpointConfig": {"Aliases": a.alias}});
    let path = format!("/networks/{}/connect", escape_segment(&a.network));
    c.send_json::<_, ()>(Method::POST, &path, &body).await?;
    Ok(())
}

async fn disconnect(c: &Client, a: DisconnectArgs) -> CliResult {
    let body = json!({"Container": a.container, "Force": a.force});
    let path = format!("/networks/{}/disconnect", escape_segment(&a.network));
    c.send_json::<_, ()>(Method::POST, &path, &body).await?;
    Ok(())
}

async fn create(c: &Client, a: CreateArgs) -> CliResult {
    if a.gateway.len() > a.subnet.len() || a.ip_range.len() > a.subnet.len() {
        return Err(CliError::Other(
            "every --gateway and --ip-range needs a matching --subnet".into(),
        ));
    }
    let configs: Vec<Value> = a
        .subnet
        .iter()
        .enumerate()
        .map(|(i, sn)| {
            let mut cfg = json!({"Subnet": sn});
            if let Some(g) = a.gateway.get(i) {
                cfg["Gateway"] = json!(g);
            }
            if let Some(r) = a.ip_range.get(i) {
                cfg["IPRange"] = json!(r);
            }
            cfg
        })
        .collect();
    let mut req = json!({
        "Name": a.name,
        "Driver": a.driver,
        "Scope": a.scope.clone().unwrap_or_default(),
        "IPAM": {"Driver": "default", "Options": {}, "Config": configs},
        "Internal": a.internal,
        "Attachable": a.attachable,
        "Ingress": false,
        "ConfigOnly": false,
        "ConfigFrom": null,
        "Options": kv_map(&a.opt),
        "Labels": kv_map(&a.label),
    });
    if a.ipv6 {
        req["EnableIPv6"] = json!(true);
    }
    let resp: NetworkCreateResponse = c.send_json(Method::POST, "/networks/create", &req).await?;
    if !resp.warning.is_empty() {
        eprintln!("{}", resp.warning);
    }
    out(&format!("{}\n", resp.id));
    Ok(())
}

async fn ls(c: &Client, a: LsArgs) -> CliResult {
    let f = parse_filters(&a.filter)?;
    let q = if f.is_empty() {
        vec![]
    } else {
        vec![("filters", f.to_json())]
    };
    let mut nets: Vec<Value> = c.get_json(&with_query("/networks", &q)).await?;
    nets.sort_by_key(|n| s(n, &["Name"]));
    let id = |n: &Value| {
        if a.no_trunc {
            s(n, &["Id"])
        } else {
            truncate_id(&s(n, &["Id"]))
        }
    };
    if a.quiet {
        out(&nets
            .iter()
            .map(|n| format!("{}\n", id(n)))
            .collect::<String>());
        return Ok(());
    }
    let rows: Vec<Value> = nets
        .iter()
        .map(|n| json!({"ID": id(n), "Name": s(n, &["Name"]), "Driver": s(n, &["Driver"]), "Scope": s(n, &["Scope"]),
                        "IPv6": n.get("EnableIPv6").and_then(Value::as_bool).unwrap_or(false),
                        "Internal": n.get("Internal").and_then(Value::as_bool).unwrap_or(false),
                        "Labels": n.get("Labels").cloned().unwrap_or(json!({})), "CreatedAt": s(n, &["Created"])}))
        .collect();
    let headers = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"});
    let def = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
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
