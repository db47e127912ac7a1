//! `shoal secret|config create|ls|inspect|rm` (the two differ only in a few columns).

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use shoal_api::Client;
use shoal_api::types::{ConfigSpec, SecretSpec};

use super::format::{ListFormat, ago, render_inspect, render_list, s, tabwrite};
use super::node::parse_filters;
use super::{CliError, CliResult, from_value, out, to_value};

/// `secret` and `config` share their subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create from a file or STDIN as content
    Create(CreateArgs),
    /// List
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more objects
    Inspect(InspectArgs),
    /// Remove one or more
    #[command(alias = "remove")]
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Labels (key=value)
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Template driver
    #[arg(long)]
    pub template_driver: Option<String>,
    pub name: String,
    /// File to read the content from, or "-" for STDIN
    pub file: String,
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
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Which object kind a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Config,
}

fn labels(flags: &[String]) -> BTreeMap<String, String> {
    flags
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn read_content(file: &str) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::Other(format!("error reading content from STDIN: {e}")))?;
    } else {
        buf = std::fs::read(file)
            .map_err(|e| CliError::Other(format!("error reading content from {file:?}: {e}")))?;
    }
    Ok(buf)
}

pub async fn run(c: &Client, kind: Kind, cmd: SecretCommand) -> CliResult {
    match cmd {
        SecretCommand::Create(a) => create(c, kind, a).await,
        SecretCommand::Ls(a) => ls(c, kind, a).await,
        SecretCommand::Inspect(a) => inspect(c, kind, a).await,
        SecretCommand::Rm(a) => {
            let mut failed = Vec::new();
            for n in &a.names {
                let r = match kind {
                    Kind::Secret => c.secret_remove(n).await,
                    Kind::Config => c.config_remove(n).await,
                };
                match r {
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

async fn create(c: &Client, kind: Kind, a: CreateArgs) -> CliResult {
    let data = read_content(&a.file)?;
    let mut spec = json!({
        "Name": a.name,
        "Labels": labels(&a.label),
        "Data": shoal_api::types::wire::base64_encode(&data),
    });
    if let Some(t) = &a.template_driver {
        spec["Templating"] = json!({"Name": t});
    }
    let id = match kind {
        Kind::Secret => c.secret_create(&from_value::<SecretSpec>(spec)?).await?.id,
        Kind::Config => c.config_create(&from_value::<ConfigSpec>(spec)?).await?.id,
    };
    out(&format!("{id}\n"));
    Ok(())
}

async fn list(c: &Client, kind: Kind, filter: &[String]) -> Result<Vec<Value>, CliError> {
    let f = parse_filters(filter)?;
    let mut v: Vec<Value> = match kind {
        Kind::Secret => c
            .secret_list(&f)
            .await?
            .iter()
            .map(to_value)
            .collect::<Result<_, _>>()?,
        Kind::Config => c
            .config_list(&f)
            .await?
            .iter()
            .map(to_value)
            .collect::<Result<_, _>>()?,
    };
    v.sort_by_key(|o| s(o, &["Spec", "Name"]));
    Ok(v)
}

async fn ls(c: &Client, kind: Kind, a: LsArgs) -> CliResult {
    let objs = list(c, kind, &a.filter).await?;
    if a.quiet {
        out(&objs
            .iter()
            .map(|o| format!("{}\n", s(o, &["ID"])))
            .collect::<String>());
        return Ok(());
    }
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            json!({
                "ID": s(o, &["ID"]),
                "Name": s(o, &["Spec", "Name"]),
                "Driver": s(o, &["Spec", "Driver", "Name"]),
                "CreatedAt": ago(&s(o, &["CreatedAt"])),
                "UpdatedAt": ago(&s(o, &["UpdatedAt"])),
                "Labels": o.pointer("/Spec/Labels").cloned().unwrap_or(json!({})),
            })
        })
        .collect();
    let headers = json!({"ID": "ID", "Name": "NAME", "Driver": "DRIVER", "CreatedAt": "CREATED", "UpdatedAt": "UPDATED", "Labels": "LABELS"});
    let def = match kind {
        Kind::Secret => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
        Kind::Config => "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
    };
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

async fn inspect(c: &Client, kind: Kind, a: InspectArgs) -> CliResult {
    let mut objs = Vec::new();
    for n in &a.names {
        objs.push(match kind {
            Kind::Secret => to_value(&c.secret_inspect(n).await?)?,
            Kind::Config => to_value(&c.config_inspect(n).await?)?,
        });
    }
    if !a.pretty {
        out(&render_inspect(a.format.as_deref(), &objs)?);
        return Ok(());
    }
    let mut blocks = Vec::new();
    for o in &objs {
        let mut t = format!(
            "ID:\t{}\nName:\t{}\n",
            s(o, &["ID"]),
            s(o, &["Spec", "Name"])
        );
        if let Some(l) = o
            .pointer("/Spec/Labels")
            .and_then(Value::as_object)
            .filter(|l| !l.is_empty())
        {
            t.push_str("Labels:\n");
            for (k, v) in l {
                t.push_str(&format!(" - {k}={}\n", v.as_str().unwrap_or_default()));
            }
        }
        if kind == Kind::Secret {
            t.push_str(&format!("Driver:\t{}\n", s(o, &["Spec", "Driver", "Name"])));
        }
        t.push_str(&format!(
            "Created at:\t{}\nUpdated at:\t{}",
            s(o, &["CreatedAt"]),
            s(o, &["UpdatedAt"])
        ));
        if kind == Kind::Config {
            let data = s(o, &["Spec", "Data"]);
            let bytes = shoal_api::types::wire::base64_decode(&data).unwrap_or_default();
            t.push_str(&format!("\nData:\n{}", String::from_utf8_lossy(&bytes)));
        }
        blocks.push(tabwrite(&t));
    }
    out(&(blocks.join("\n\n") + "\n"));
    Ok(())
}
