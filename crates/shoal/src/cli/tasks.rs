//! The task table shared by `node ps` and `service ps` (docker's task printer).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shoal_api::Client;

use super::format::{ListFormat, capitalize, human_duration, render_list, s, truncate_id};
use super::{CliError, to_value};

pub const DEFAULT_TASK_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}";

const MAX_ERR: usize = 30;

/// Printing switches shared by the `ps` commands.
#[derive(Debug, Clone, Default)]
pub struct TaskPrint {
    pub quiet: bool,
    pub no_trunc: bool,
    pub no_resolve: bool,
    pub format: Option<String>,
}

fn headers() -> Value {
    json!({"ID": "ID", "Name": "NAME", "Image": "IMAGE", "Node": "NODE", "DesiredState": "DESIRED STATE",
           "CurrentState": "CURRENT STATE", "Error": "ERROR", "Ports": "PORTS"})
}

/// Looks names up once per ID; an object that cannot be read keeps its ID.
struct Names<'a> {
    c: &'a Client,
    services: HashMap<String, String>,
    nodes: HashMap<String, String>,
    resolve: bool,
}

impl Names<'_> {
    async fn service(&mut self, id: &str) -> String {
        if !self.resolve || id.is_empty() {
            return id.to_string();
        }
        if let Some(n) = self.services.get(id) {
            return n.clone();
        }
        let name = match self.c.service_inspect(id, false).await {
            Ok(svc) => svc.spec.annotations.name,
            Err(_) => id.to_string(),
        };
        self.services.insert(id.to_string(), name.clone());
        name
    }

    async fn node(&mut self, id: &str) -> String {
        if !self.resolve || id.is_empty() {
            return id.to_string();
        }
        if let Some(n) = self.nodes.get(id) {
            return n.clone();
        }
        let name = match self.c.node_inspect(id).await {
            Ok(n) => {
                let v = to_value(&n).unwrap_or(Value::Null);
                let spec_name = s(&v, &["Spec", "Name"]);
                if spec_name.is_empty() {
                    s(&v, &["Description", "Hostname"])
                } else {
                    spec_name
                }
            }
            Err(_) => id.to_string(),
        };
        self.nodes.insert(id.to_string(), name.clone());
        name
    }
}

fn time_of(v: &Value, path: &[&str]) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&s(v, path))
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn ports(v: &Value) -> String {
    let list = v
        .pointer("/Status/PortStatus/Ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.iter()
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

/// Formats tasks (as JSON values) the way `docker service ps` / `node ps` do.
pub async fn print_tasks(c: &Client, tasks: Vec<Value>, p: &TaskPrint) -> Result<String, CliError> {
    if p.quiet {
        let mut text = String::new();
        for t in &tasks {
            let id = s(t, &["ID"]);
            text.push_str(&if p.no_trunc { id } else { truncate_id(&id) });
            text.push('\n');
        }
        return Ok(text);
    }
    let mut names = Names {
        c,
        services: HashMap::new(),
        nodes: HashMap::new(),
        resolve: !p.no_resolve,
    };
    let mut named: Vec<(String, Value)> = Vec::with_capacity(tasks.len());
    for t in tasks {
        let svc = names.service(&s(&t, &["ServiceID"])).await;
        let slot = t.get("Slot").and_then(Value::as_u64).unwrap_or(0);
        let name = if slot != 0 {
            format!("{svc}.{slot}")
        } else {
            format!("{svc}.{}", s(&t, &["NodeID"]))
        };
        named.push((name, t));
    }
    // Same name: newest first; that is the history order docker shows.
    named.sort_by(|(na, a), (nb, b)| {
        na.cmp(nb)
            .then_with(|| time_of(b, &["CreatedAt"]).cmp(&time_of(a, &["CreatedAt"])))
    });
    let now = Utc::now();
    let mut rows = Vec::with_capacity(named.len());
    let mut prev: Option<String> = None;
    for (name, t) in &named {
        let shown = if prev.as_deref() == Some(name.as_str()) {
            format!(" \\_ {name}")
        } else {
            name.clone()
        };
        prev = Some(name.clone());
        let id = s(t, &["ID"]);
        let mut image = s(t, &["Spec", "ContainerSpec", "Image"]);
        if !p.no_trunc
            && let Some((img, _digest)) = image.split_once('@')
        {
            image = img.to_string();
        }
        let state = s(t, &["Status", "State"]);
        let since = time_of(t, &["Status", "Timestamp"]);
        let current = if since == DateTime::<Utc>::MIN_UTC {
            capitalize(&state)
        } else {
            format!(
                "{} {} ago",
                capitalize(&state),
                human_duration(now - since).to_lowercase()
            )
        };
        let mut err = s(t, &["Status", "Err"]);
        if !err.is_empty() && !p.no_trunc && err.chars().count() > MAX_ERR {
            err = format!("{}…", err.chars().take(MAX_ERR - 1).collect::<String>());
        }
        let err = if err.is_empty() {
            String::new()
        } else {
            format!("{err:?}")
        };
        rows.push(json!({
            "ID": if p.no_trunc { id } else { truncate_id(&id) },
            "Name": shown,
            "Image": image,
            "Node": names.node(&s(t, &["NodeID"])).await,
            "DesiredState": capitalize(&s(t, &["DesiredState"])),
            "CurrentState": current,
            "Error": err,
            "Ports": ports(t),
        }));
    }
    Ok(render_list(
        ListFormat {
            user: p.format.as_deref(),
            default_table: DEFAULT_TASK_TABLE,
        },
        &headers(),
        &rows,
    )?)
}
