//! `shoal volume create|ls|inspect|rm|prune` (local driver).

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use shoal_api::client::{escape_segment, with_query};
use shoal_api::{Client, Method};

use super::format::{ListFormat, render_inspect, render_list, s};
use super::node::parse_filters;
use super::service_spec::kv_map;
use super::{CliError, CliResult, out};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set driver specific options
    #[arg(short, long = "opt")]
    pub opt: Vec<String>,
    /// Set metadata for a volume
    #[arg(long = "label")]
    pub label: Vec<String>,
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

pub async fn run(c: &Client, cmd: VolumeCommand) -> CliResult {
    match cmd {
        VolumeCommand::Create(a) => {
            let body = json!({
                "Name": a.name.clone().unwrap_or_default(), "Driver": a.driver,
                "DriverOpts": kv_map(&a.opt), "Labels": kv_map(&a.label),
            });
            let v: Value = c.send_json(Method::POST, "/volumes/create", &body).await?;
            out(&format!("{}\n", s(&v, &["Name"])));
            Ok(())
        }
        VolumeCommand::Ls(a) => {
            let f = parse_filters(&a.filter)?;
            let q = if f.is_empty() {
                vec![]
            } else {
                vec![("filters", f.to_json())]
            };
            let v: Value = c.get_json(&with_query("/volumes", &q)).await?;
            let mut vols: Vec<Value> = v["Volumes"].as_array().cloned().unwrap_or_default();
            vols.sort_by_key(|x| s(x, &["Name"]));
            if a.quiet {
                out(&vols
                    .iter()
                    .map(|x| format!("{}\n", s(x, &["Name"])))
                    .collect::<String>());
                return Ok(());
            }
            let rows: Vec<Value> = vols
                .iter()
                .map(|x| {
                    json!({"Name": s(x, &["Name"]), "Driver": s(x, &["Driver"]),
                    "Scope": s(x, &["Scope"]), "Mountpoint": s(x, &["Mountpoint"]),
                    "Labels": x.get("Labels").cloned().unwrap_or(json!({}))})
                })
                .collect();
            let headers = json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                "Mountpoint": "MOUNTPOINT", "Labels": "LABELS"});
            out(&render_list(
                ListFormat {
                    user: a.format.as_deref(),
                    default_table: "table {{.Driver}}\t{{.Name}}",
                },
                &headers,
                &rows,
            )?);
            Ok(())
        }
        VolumeCommand::Inspect(a) => {
            let mut objs = Vec::new();
            for n in &a.volumes {
                let v: Value = c
                    .get_json(&format!("/volumes/{}", escape_segment(n)))
                    .await?;
                objs.push(v);
            }
            out(&render_inspect(a.format.as_deref(), &objs)?);
            Ok(())
        }
        VolumeCommand::Rm(a) => {
            let mut failed = Vec::new();
            for n in &a.volumes {
                let path = with_query(
                    &format!("/volumes/{}", escape_segment(n)),
                    &[("force", a.force.to_string())],
                );
                match c
                    .send_json::<_, ()>(Method::DELETE, &path, &json!(null))
                    .await
                {
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
        VolumeCommand::Prune(a) => {
            let mut f = parse_filters(&a.filter)?;
            if a.all {
                f.add("all", "true");
            }
            let warning = if a.all {
                "WARNING! This will remove all local volumes not used by at least one container."
            } else {
                "WARNING! This will remove anonymous local volumes not used by at least one container."
            };
            let Some(v) = super::prune::prune(c, "/volumes/prune", a.force, warning, &f).await?
            else {
                return Ok(());
            };
            let mut text = String::new();
            let deleted = v["VolumesDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                text.push_str("Deleted Volumes:\n");
                for d in deleted {
                    text.push_str(&format!("{}\n", d.as_str().unwrap_or_default()));
                }
                text.push('\n');
            }
            text.push_str(&format!(
                "Total reclaimed space: {}\n",
                super::image::human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
            ));
            out(&text);
            Ok(())
        }
    }
}
