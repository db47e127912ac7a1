//! `shoal image pull|push|load|save|ls|inspect|rm|tag|prune` over the Engine API.

use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};
use shoal_api::client::{escape_segment, ndjson_stream, with_query};
use shoal_api::{Client, Method};

use super::format::{ListFormat, ago_from, render_inspect, render_list, truncate_id};
use super::node::parse_filters;
use super::{CliError, CliResult, out};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Download an image from a registry
    Pull(RefArgs),
    /// Upload an image to a registry
    Push(RefArgs),
    /// Import the contents from a root filesystem tarball to create an image
    Import(ImportArgs),
    /// Load an image from a tar archive (docker-archive or OCI)
    Load(LoadArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// List images
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove unused images
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct RefArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, …)
    #[arg(short, long = "change")]
    pub change: Vec<String>,
    /// Root filesystem tar (plain, gzip or zstd), or - for stdin
    pub file: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show all images
    #[arg(short, long)]
    pub all: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Only images of this repository[:tag]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

pub async fn run(c: &Client, cmd: ImageCommand) -> CliResult {
    match cmd {
        ImageCommand::Pull(a) => {
            let (repo, tag) = split_ref(&a.image);
            let path = with_query("/images/create", &[("fromImage", repo), ("tag", tag)]);
            progress(c, &path, a.quiet).await?;
            if a.quiet {
                out(&format!("{}\n", a.image));
            }
            Ok(())
        }
        ImageCommand::Push(a) => {
            let (repo, tag) = split_ref(&a.image);
            let path = with_query(
                &format!("/images/{}/push", escape_segment(&repo)),
                &[("tag", tag)],
            );
            progress(c, &path, a.quiet).await
        }
        ImageCommand::Import(a) => {
            let archive = import_archive(&a)?;
            load_bytes(c, archive, true).await
        }
        ImageCommand::Load(a) => {
            let data = match &a.input {
                Some(f) => {
                    std::fs::read(f).map_err(|e| CliError::Other(format!("reading {f}: {e}")))?
                }
                None => {
                    use std::io::Read;
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .map_err(|e| CliError::Other(format!("reading stdin: {e}")))?;
                    buf
                }
            };
            if data.is_empty() {
                return Err(CliError::Other(
                    "requested load from stdin, but stdin is empty".into(),
                ));
            }
            load_bytes(c, data, a.quiet).await
        }
        ImageCommand::Save(a) => {
            if a.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                return Err(CliError::Other(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                ));
            }
            let q: Vec<(&str, String)> = a.images.iter().map(|i| ("names", i.clone())).collect();
            let mut stream = c
                .stream(Method::GET, &with_query("/images/get", &q))
                .await?;
            let mut w: Box<dyn std::io::Write> = match &a.output {
                Some(f) => Box::new(
                    std::fs::File::create(f)
                        .map_err(|e| CliError::Other(format!("creating {f}: {e}")))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                w.write_all(&chunk)
                    .map_err(|e| CliError::Other(format!("writing the archive: {e}")))?;
            }
            w.flush()
                .map_err(|e| CliError::Other(format!("writing the archive: {e}")))
        }
        ImageCommand::Ls(a) => ls(c, a).await,
        ImageCommand::Inspect(a) => {
            let mut objs = Vec::new();
            for i in &a.images {
                let v: Value = c.get_json(&format!("/images/{i}/json")).await?;
                objs.push(v);
            }
            out(&render_inspect(a.format.as_deref(), &objs)?);
            Ok(())
        }
        ImageCommand::Rm(a) => {
            let mut failed = Vec::new();
            for i in &a.images {
                let path = with_query(&format!("/images/{i}"), &[("force", a.force.to_string())]);
                match c
                    .send_json::<_, Value>(Method::DELETE, &path, &json!(null))
                    .await
                {
                    Ok(list) => {
                        for item in list.as_array().into_iter().flatten() {
                            if let Some(t) = item["Untagged"].as_str() {
                                out(&format!("Untagged: {t}\n"));
                            }
                            if let Some(d) = item["Deleted"].as_str() {
                                out(&format!("Deleted: {d}\n"));
                            }
                        }
                    }
                    Err(e) => failed.push(CliError::from(e).to_string()),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(CliError::Other(failed.join("\n")))
            }
        }
        ImageCommand::Tag(a) => {
            let (repo, tag) = split_ref(&a.target);
            let path = with_query(
                &format!("/images/{}/tag", a.source),
                &[("repo", repo), ("tag", tag)],
            );
            c.send_json::<_, ()>(Method::POST, &path, &json!(null))
                .await
                .map_err(CliError::from)
        }
        ImageCommand::Prune(a) => {
            let mut f = parse_filters(&a.filter)?;
            if a.all {
                f.add("dangling", "false");
            }
            let warning = if a.all {
                "WARNING! This will remove all images without at least one container associated to them."
            } else {
                "WARNING! This will remove all dangling images."
            };
            let Some(v) = super::prune::prune(c, "/images/prune", a.force, warning, &f).await?
            else {
                return Ok(());
            };
            let mut text = String::new();
            let deleted = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                text.push_str("Deleted Images:\n");
                for d in deleted {
                    if let Some(t) = d["Untagged"].as_str() {
                        text.push_str(&format!("untagged: {t}\n"));
                    }
                    if let Some(t) = d["Deleted"].as_str() {
                        text.push_str(&format!("deleted: {t}\n"));
                    }
                }
                text.push('\n');
            }
            text.push_str(&format!(
                "Total reclaimed space: {}\n",
                human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
            ));
            out(&text);
            Ok(())
        }
    }
}

/// Sends an image archive to `POST /images/load` and prints what the daemon says.
async fn load_bytes(c: &Client, data: Vec<u8>, quiet: bool) -> CliResult {
    let r = c
        .raw(
            Method::POST,
            &with_query("/images/load", &[("quiet", quiet.to_string())]),
            Some(data),
            &[],
        )
        .await?;
    if !r.status.is_success() {
        return Err(shoal_api::client::error_from_response(r.status, &r.body).into());
    }
    for line in r.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| CliError::Other(format!("decoding load output: {e}")))?;
        print_message(&v)?;
    }
    Ok(())
}

/// `docker import` without a daemon endpoint for it: the rootfs becomes a one-layer image in
/// a scratch image store (the same code the daemon's store runs), which is saved as a
/// docker-archive and loaded into the daemon. Only the finished archive leaves this process.
fn import_archive(a: &ImportArgs) -> Result<Vec<u8>, CliError> {
    use shoal_runtime::image::{ImageStore, SaveFormat};
    let scratch = tempfile::Builder::new()
        .prefix("shoal-import-")
        .tempdir()
        .map_err(|e| CliError::Other(format!("creating a scratch dir: {e}")))?;
    let store = ImageStore::open(scratch.path().join("images"))
        .map_err(|e| CliError::Other(format!("opening a scratch image store: {e}")))?;
    let mut input: Box<dyn std::io::Read> = if a.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&a.file)
                .map_err(|e| CliError::Other(format!("opening {}: {e}", a.file)))?,
        )
    };
    let rec = store
        .import(&mut input, &a.change, a.reference.as_deref())
        .map_err(|e| CliError::Other(format!("importing {}: {e}", a.file)))?;
    let name = match &a.reference {
        Some(r) => r.clone(),
        None => rec.id.to_string(),
    };
    let mut archive = Vec::new();
    store
        .save(&[name], &mut archive, SaveFormat::Docker)
        .map_err(|e| CliError::Other(format!("packing the imported image: {e}")))?;
    Ok(archive)
}

/// `repo[:tag]` or `repo@digest` → (repo, tag-or-digest); a registry port is not a tag.
pub fn split_ref(r: &str) -> (String, String) {
    if let Some((repo, digest)) = r.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (r.to_string(), String::new()),
    }
}

fn print_message(v: &Value) -> CliResult {
    if let Some(e) = v.get("errorDetail").or_else(|| v.get("error")) {
        let msg = e
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| e.as_str())
            .unwrap_or("unknown error");
        return Err(CliError::Daemon(shoal_api::types::ApiError::internal(msg)));
    }
    if let Some(s) = v["stream"].as_str() {
        out(s);
        return Ok(());
    }
    let status = v["status"].as_str().unwrap_or_default();
    let line = match (v["id"].as_str(), v["progress"].as_str()) {
        (Some(id), Some(p)) => format!("{id}: {status} {p}\n"),
        (Some(id), None) => format!("{id}: {status}\n"),
        (None, _) => format!("{status}\n"),
    };
    if !status.is_empty() {
        out(&line);
    }
    Ok(())
}

/// Prints a pull/push progress stream (one line per message; the last status per layer).
async fn progress(c: &Client, path: &str, quiet: bool) -> CliResult {
    let bytes = c.stream(Method::POST, path).await?;
    let mut msgs = ndjson_stream::<Value>(bytes);
    while let Some(m) = msgs.next().await {
        let m = m?;
        if quiet && m.get("errorDetail").is_none() && m.get("error").is_none() {
            continue;
        }
        // Byte counters are noisy without a terminal: show only state changes.
        if m.get("progressDetail")
            .is_some_and(|d| d.get("current").is_some())
        {
            continue;
        }
        print_message(&m)?;
    }
    Ok(())
}

pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        return format!("{n}B");
    }
    // Three significant digits, as docker's units.HumanSize.
    let num = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let num = if num.contains('.') {
        num.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        num
    };
    format!("{num}{}", UNITS[i])
}

async fn ls(c: &Client, a: LsArgs) -> CliResult {
    let mut f = parse_filters(&a.filter)?;
    if let Some(r) = &a.reference {
        f.add("reference", r);
    }
    let mut q = vec![("all", a.all.to_string())];
    if !f.is_empty() {
        q.push(("filters", f.to_json()));
    }
    let list: Vec<Value> = c.get_json(&with_query("/images/json", &q)).await?;
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for img in &list {
        let id = img["Id"].as_str().unwrap_or_default();
        let shown = if a.no_trunc {
            id.to_string()
        } else {
            truncate_id(id)
        };
        let created = img["Created"]
            .as_i64()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .unwrap_or(now);
        let tags: Vec<String> = img["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        for t in tags {
            let (repo, tag) = split_ref(&t);
            rows.push(json!({
                "ID": shown, "Repository": repo, "Tag": tag,
                "CreatedSince": ago_from(created, now), "CreatedAt": created.to_rfc3339(),
                "Size": human_size(img["Size"].as_u64().unwrap_or(0)),
                "Containers": img["Containers"].clone(),
            }));
        }
    }
    if a.quiet {
        let mut ids: Vec<String> = rows
            .iter()
            .map(|r| r["ID"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.dedup();
        out(&ids.iter().map(|i| format!("{i}\n")).collect::<String>());
        return Ok(());
    }
    let headers = json!({"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS"});
    let def = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_split_like_docker() {
        assert_eq!(split_ref("busybox"), ("busybox".into(), String::new()));
        assert_eq!(split_ref("busybox:1.36"), ("busybox".into(), "1.36".into()));
        assert_eq!(
            split_ref("localhost:5000/x/y"),
            ("localhost:5000/x/y".into(), String::new())
        );
        assert_eq!(
            split_ref("localhost:5000/x:t"),
            ("localhost:5000/x".into(), "t".into())
        );
        assert_eq!(split_ref("x@sha256:abc"), ("x".into(), "sha256:abc".into()));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_500_000), "1.5MB");
        assert_eq!(human_size(1_982_000), "1.98MB");
        assert_eq!(human_size(250_000_000), "250MB");
    }
}
