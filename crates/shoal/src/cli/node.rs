//! `shoal node ls|inspect|ps|update|promote|demote|rm`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use shoal_api::types::NodeSpec;
use shoal_api::{Client, Filters};

use super::format::{ListFormat, capitalize, render_inspect, render_list, s, tabwrite};
use super::tasks::{TaskPrint, print_tasks};
use super::{CliError, CliResult, from_value, out, to_value};

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes in the swarm
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more nodes
    Inspect(InspectArgs),
    /// List tasks running on one or more nodes, defaults to current node
    Ps(PsArgs),
    /// Update a node
    Update(UpdateArgs),
    /// Promote one or more nodes to manager in the swarm
    Promote(NodesArg),
    /// Demote one or more nodes from manager in the swarm
    Demote(NodesArg),
    /// Remove one or more nodes from the swarm
    #[command(alias = "remove")]
    Rm(RmArgs),
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
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Nodes (ID, name, or "self")
    #[arg(required = true)]
    pub nodes: Vec<String>,
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
    /// Nodes (default: self)
    pub nodes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long)]
    pub availability: Option<String>,
    /// Role of the node ("worker", "manager")
    #[arg(long)]
    pub role: Option<String>,
    /// Add or update a node label (key=value)
    #[arg(long = "label-add")]
    pub label_add: Vec<String>,
    /// Remove a node label if exists
    #[arg(long = "label-rm")]
    pub label_rm: Vec<String>,
    pub node: String,
}

#[derive(Debug, Args)]
pub struct NodesArg {
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force remove a node from the swarm
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

pub async fn run(c: &Client, cmd: NodeCommand) -> CliResult {
    match cmd {
        NodeCommand::Ls(a) => ls(c, a).await,
        NodeCommand::Inspect(a) => inspect(c, a).await,
        NodeCommand::Ps(a) => ps(c, a).await,
        NodeCommand::Update(a) => update(c, a).await,
        NodeCommand::Promote(a) => set_role(c, a.nodes, "manager").await,
        NodeCommand::Demote(a) => set_role(c, a.nodes, "worker").await,
        NodeCommand::Rm(a) => {
            let mut failed = Vec::new();
            for n in &a.nodes {
                match c.node_remove(n, a.force).await {
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
    }
}

/// `-f key=value` flags into filters.
pub fn parse_filters(flags: &[String]) -> Result<Filters, CliError> {
    let mut f = Filters::default();
    for fl in flags {
        let Some((k, v)) = fl.split_once('=') else {
            return Err(CliError::Other(format!(
                "bad format of filter (expected name=value): {fl}"
            )));
        };
        f.add(k.trim().to_lowercase(), v.to_string());
    }
    Ok(f)
}

const DEFAULT_NODE_TABLE: &str = "table {{.ID}} {{if .Self}}*{{else}} {{ end }}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}";

/// The fields docker's node formatter exposes, for one node.
pub fn node_row(n: &Value, self_id: &str, cluster_tls: Option<&Value>) -> Value {
    let id = s(n, &["ID"]);
    let manager_status = match n.get("ManagerStatus").filter(|m| !m.is_null()) {
        Some(m) if m.get("Leader").and_then(Value::as_bool) == Some(true) => "Leader".to_string(),
        Some(m) => capitalize(&s(m, &["Reachability"])),
        None => String::new(),
    };
    let tls = match cluster_tls {
        Some(t) if n.pointer("/Description/TLSInfo") == Some(t) => "Ready",
        Some(_) => "Needs Rotation",
        None => "Unknown",
    };
    json!({
        "ID": id,
        "Self": !self_id.is_empty() && id == self_id,
        "Hostname": s(n, &["Description", "Hostname"]),
        "Status": capitalize(&s(n, &["Status", "State"])),
        "Availability": capitalize(&s(n, &["Spec", "Availability"])),
        "ManagerStatus": manager_status,
        "EngineVersion": s(n, &["Description", "Engine", "EngineVersion"]),
        "TLSStatus": tls,
    })
}

async fn ls(c: &Client, a: LsArgs) -> CliResult {
    let filters = parse_filters(&a.filter)?;
    let nodes = c.node_list(&filters).await?;
    let mut nodes: Vec<Value> = nodes.iter().map(to_value).collect::<Result<_, _>>()?;
    nodes.sort_by_key(|n| s(n, &["Description", "Hostname"]));
    if a.quiet {
        let text: String = nodes
            .iter()
            .map(|n| format!("{}\n", s(n, &["ID"])))
            .collect();
        out(&text);
        return Ok(());
    }
    let self_id = if nodes.is_empty() {
        String::new()
    } else {
        c.info().await?.swarm.node_id
    };
    let cluster_tls = if a.format.as_deref().is_some_and(|f| f.contains("TLSStatus")) {
        c.swarm_inspect()
            .await
            .ok()
            .and_then(|sw| to_value(&sw).ok())
            .and_then(|v| v.get("TLSInfo").cloned())
    } else {
        None
    };
    let rows: Vec<Value> = nodes
        .iter()
        .map(|n| node_row(n, &self_id, cluster_tls.as_ref()))
        .collect();
    let headers = json!({"ID": "ID", "Self": false, "Hostname": "HOSTNAME", "Status": "STATUS", "Availability": "AVAILABILITY",
        "ManagerStatus": "MANAGER STATUS", "EngineVersion": "ENGINE VERSION", "TLSStatus": "TLS STATUS"});
    out(&render_list(
        ListFormat {
            user: a.format.as_deref(),
            default_table: DEFAULT_NODE_TABLE,
        },
        &headers,
        &rows,
    )?);
    Ok(())
}

/// `self` means the local node (from `/info`); anything else is sent as typed.
async fn resolve_ref(c: &Client, r: &str) -> Result<String, CliError> {
    if r != "self" {
        return Ok(r.to_string());
    }
    let id = c.info().await?.swarm.node_id;
    if id.is_empty() {
        return Err(CliError::Other("node ID not found in /info".into()));
    }
    Ok(id)
}

async fn inspect(c: &Client, a: InspectArgs) -> CliResult {
    let mut objs = Vec::new();
    for r in &a.nodes {
        let id = resolve_ref(c, r).await?;
        objs.push(to_value(&c.node_inspect(&id).await?)?);
    }
    if a.pretty {
        let text: Vec<String> = objs.iter().map(pretty_node).collect();
        out(&text.join("\n\n\n"));
        out("\n");
    } else {
        out(&render_inspect(a.format.as_deref(), &objs)?);
    }
    Ok(())
}

fn pretty_node(n: &Value) -> String {
    let mut t = format!("ID:\t{}\n", s(n, &["ID"]));
    if !s(n, &["Spec", "Name"]).is_empty() {
        t.push_str(&format!("Name:\t{}\n", s(n, &["Spec", "Name"])));
    }
    if let Some(labels) = n
        .pointer("/Spec/Labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
    {
        t.push_str("Labels:\n");
        for (k, v) in labels {
            t.push_str(&format!(" - {k}={}\n", v.as_str().unwrap_or_default()));
        }
    }
    t.push_str(&format!(
        "Hostname:\t{}\n",
        s(n, &["Description", "Hostname"])
    ));
    t.push_str(&format!("Joined at:\t{}\n", s(n, &["CreatedAt"])));
    t.push_str("Status:\n");
    t.push_str(&format!(
        " State:\t{}\n",
        capitalize(&s(n, &["Status", "State"]))
    ));
    if !s(n, &["Status", "Message"]).is_empty() {
        t.push_str(&format!(" Message:\t{}\n", s(n, &["Status", "Message"])));
    }
    t.push_str(&format!(
        " Availability:\t{}\n",
        capitalize(&s(n, &["Spec", "Availability"]))
    ));
    t.push_str(&format!(" Address:\t{}\n", s(n, &["Status", "Addr"])));
    if let Some(m) = n.get("ManagerStatus").filter(|m| !m.is_null()) {
        t.push_str("Manager Status:\n");
        t.push_str(&format!(" Address:\t{}\n", s(m, &["Addr"])));
        t.push_str(&format!(
            " Raft Status:\t{}\n",
            capitalize(&s(m, &["Reachability"]))
        ));
        let leader = m.get("Leader").and_then(Value::as_bool).unwrap_or(false);
        t.push_str(&format!(
            " Leader:\t{}\n",
            if leader { "Yes" } else { "No" }
        ));
    }
    t.push_str("Platform:\n");
    t.push_str(&format!(
        " Operating System:\t{}\n",
        s(n, &["Description", "Platform", "OS"])
    ));
    t.push_str(&format!(
        " Architecture:\t{}\n",
        s(n, &["Description", "Platform", "Architecture"])
    ));
    t.push_str("Resources:\n");
    let cpus = n
        .pointer("/Description/Resources/NanoCPUs")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    t.push_str(&format!(" CPUs:\t{}\n", cpus / 1_000_000_000));
    let mem = n
        .pointer("/Description/Resources/MemoryBytes")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    t.push_str(&format!(" Memory:\t{}\n", super::system::bytes_size(mem)));
    if let Some(plugins) = n
        .pointer("/Description/Engine/Plugins")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
    {
        t.push_str("Plugins:\n");
        let mut by_type: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for p in plugins {
            by_type
                .entry(s(p, &["Type"]))
                .or_default()
                .push(s(p, &["Name"]));
        }
        for (ty, names) in by_type {
            t.push_str(&format!(" {ty}:\t\t{}\n", names.join(", ")));
        }
    }
    t.push_str(&format!(
        "Engine Version:\t{}\n",
        s(n, &["Description", "Engine", "EngineVersion"])
    ));
    if let Some(labels) = n
        .pointer("/Description/Engine/Labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
    {
        t.push_str("Engine Labels:\n");
        for (k, v) in labels {
            t.push_str(&format!(" - {k}={}\n", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(tls) = n
        .pointer("/Description/TLSInfo")
        .filter(|t| !s(t, &["TrustRoot"]).is_empty())
    {
        t.push_str("TLS Info:\n");
        t.push_str(&format!(" TrustRoot:\n{}\n", s(tls, &["TrustRoot"])));
        t.push_str(&format!(
            " Issuer Subject:\t{}\n",
            s(tls, &["CertIssuerSubject"])
        ));
        t.push_str(&format!(
            " Issuer Public Key:\t{}\n",
            s(tls, &["CertIssuerPublicKey"])
        ));
    }
    tabwrite(t.trim_end())
}

async fn ps(c: &Client, a: PsArgs) -> CliResult {
    let refs = if a.nodes.is_empty() {
        vec!["self".to_string()]
    } else {
        a.nodes.clone()
    };
    let mut tasks = Vec::new();
    for r in &refs {
        let id = resolve_ref(c, r).await?;
        let node = c.node_inspect(&id).await?;
        let mut f = parse_filters(&a.filter)?;
        f.add("node", node.id.clone());
        for t in c.task_list(&f).await? {
            tasks.push(to_value(&t)?);
        }
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

async fn update(c: &Client, a: UpdateArgs) -> CliResult {
    let node = c.node_inspect(&a.node).await?;
    let mut spec = to_value(&node.spec)?;
    if let Some(av) = &a.availability {
        if !matches!(av.as_str(), "active" | "pause" | "drain") {
            return Err(CliError::Other(format!(
                "invalid availability {av:?}: must be active, pause or drain"
            )));
        }
        spec["Availability"] = json!(av);
    }
    if let Some(role) = &a.role {
        if !matches!(role.as_str(), "worker" | "manager") {
            return Err(CliError::Other(format!(
                "invalid role {role:?}: must be worker or manager"
            )));
        }
        spec["Role"] = json!(role);
    }
    if !spec["Labels"].is_object() {
        spec["Labels"] = json!({});
    }
    for l in &a.label_add {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            return Err(CliError::Other(format!("invalid label {l:?}")));
        }
        spec["Labels"][k] = json!(v);
    }
    for k in &a.label_rm {
        let removed = spec["Labels"].as_object_mut().and_then(|m| m.remove(k));
        if removed.is_none() {
            return Err(CliError::Other(format!(
                "key {k} doesn't exist in node's labels"
            )));
        }
    }
    let spec: NodeSpec = from_value(spec)?;
    c.node_update(&node.id, node.meta.version.index, &spec)
        .await?;
    out(&format!("{}\n", a.node));
    Ok(())
}

async fn set_role(c: &Client, nodes: Vec<String>, role: &str) -> CliResult {
    for n in &nodes {
        let node = c.node_inspect(n).await?;
        let mut spec = to_value(&node.spec)?;
        if s(&spec, &["Role"]) == role {
            out(&format!("Node {n} is already a {role}.\n"));
            continue;
        }
        spec["Role"] = json!(role);
        let spec: NodeSpec = from_value(spec)?;
        c.node_update(&node.id, node.meta.version.index, &spec)
            .await?;
        if role == "manager" {
            out(&format!("Node {n} promoted to a manager in the swarm.\n"));
        } else {
            out(&format!("Manager {n} demoted in the swarm.\n"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_rows_like_docker() {
        let mgr = json!({"ID": "aaa", "Description": {"Hostname": "h1", "Engine": {"EngineVersion": "0.1.0"}},
            "Status": {"State": "ready"}, "Spec": {"Availability": "active", "Role": "manager"},
            "ManagerStatus": {"Leader": true, "Reachability": "reachable"}});
        let wk = json!({"ID": "bbb", "Description": {"Hostname": "h2"}, "Status": {"State": "down"},
            "Spec": {"Availability": "drain"}, "ManagerStatus": null});
        let rows = vec![node_row(&mgr, "aaa", None), node_row(&wk, "aaa", None)];
        assert_eq!(rows[0]["ManagerStatus"], "Leader");
        assert_eq!(rows[1]["ManagerStatus"], "");
        let headers = json!({"ID": "ID", "Self": false, "Hostname": "HOSTNAME", "Status": "STATUS", "Availability": "AVAILABILITY",
            "ManagerStatus": "MANAGER STATUS", "EngineVersion": "ENGINE VERSION"});
        let text = render_list(
            ListFormat {
                user: None,
                default_table: DEFAULT_NODE_TABLE,
            },
            &headers,
            &rows,
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID        HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION"
        );
        assert_eq!(
            lines[1],
            "aaa *     h1         Ready     Active         Leader           0.1.0"
        );
        assert_eq!(
            lines[2],
            "bbb       h2         Down      Drain                           "
        );
    }

    #[test]
    fn filter_flags() {
        let f = parse_filters(&["role=manager".into(), "label=a=b".into()]).unwrap();
        assert_eq!(f.get("role"), vec!["manager"]);
        assert_eq!(f.get("label"), vec!["a=b"]);
        assert!(parse_filters(&["nope".into()]).is_err());
    }
}
