//! Standalone containers: `shoal run|ps|stop|kill|start|restart|rm|logs|exec|inspect|wait|top`
//! (also under `shoal container …`), over the Engine API as the docker CLI drives it.

use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use shoal_api::client::{demux_stream, escape_segment, with_query};
use shoal_api::{Client, Method, StdStream};

use super::format::{ListFormat, ago_from, render_inspect, render_list, s, truncate_id};
use super::node::parse_filters;
use super::{CliError, CliResult, out};

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// List containers
    #[command(alias = "ls")]
    Ps(PsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Start one or more stopped containers
    Start(NamesArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
    /// Display the running processes of a container
    Top(TopArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Container host name
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Bind mount a volume (src:dst[:ro])
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<u32>,
    /// Start period for the container to initialize before counting retries (ms|s|m|h)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Publish a container's port(s) to the host ([ip:]host:container[/proto])
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Set meta data on a container
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Connect a container to a network (bridge, host, none, or an attachable overlay)
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Image to run
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short, long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open and send it to the command
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Username or UID
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    pub container: String,
}

pub async fn run(c: &Client, cmd: ContainerCommand) -> CliResult {
    match cmd {
        ContainerCommand::Run(a) => run_container(c, *a).await,
        ContainerCommand::Ps(a) => ps(c, a).await,
        ContainerCommand::Stop(a) => {
            each(&a.containers, |id| {
                let mut q = Vec::new();
                if let Some(t) = a.time {
                    q.push(("t", t.to_string()));
                }
                if let Some(sig) = &a.signal {
                    q.push(("signal", sig.clone()));
                }
                post(
                    c,
                    with_query(&format!("/containers/{}/stop", escape_segment(id)), &q),
                )
            })
            .await
        }
        ContainerCommand::Restart(a) => {
            each(&a.containers, |id| {
                let mut q = Vec::new();
                if let Some(t) = a.time {
                    q.push(("t", t.to_string()));
                }
                if let Some(sig) = &a.signal {
                    q.push(("signal", sig.clone()));
                }
                post(
                    c,
                    with_query(&format!("/containers/{}/restart", escape_segment(id)), &q),
                )
            })
            .await
        }
        ContainerCommand::Kill(a) => {
            each(&a.containers, |id| {
                post(
                    c,
                    with_query(
                        &format!("/containers/{}/kill", escape_segment(id)),
                        &[("signal", a.signal.clone())],
                    ),
                )
            })
            .await
        }
        ContainerCommand::Start(a) => {
            each(&a.containers, |id| {
                post(c, format!("/containers/{}/start", escape_segment(id)))
            })
            .await
        }
        ContainerCommand::Rm(a) => {
            each(&a.containers, |id| {
                let q = [("force", a.force.to_string()), ("v", a.volumes.to_string())];
                let path = with_query(&format!("/containers/{}", escape_segment(id)), &q);
                async move {
                    c.send_json::<_, ()>(Method::DELETE, &path, &json!(null))
                        .await
                        .map_err(CliError::from)
                }
            })
            .await
        }
        ContainerCommand::Wait(a) => {
            let mut failed = Vec::new();
            for id in &a.containers {
                match wait(c, id, "not-running").await {
                    Ok(code) => out(&format!("{code}\n")),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            join_errors(failed)
        }
        ContainerCommand::Logs(a) => logs(c, a).await,
        ContainerCommand::Exec(a) => exec(c, a).await,
        ContainerCommand::Inspect(a) => {
            let mut objs = Vec::new();
            for id in &a.containers {
                let v: Value = c
                    .get_json(&format!("/containers/{}/json", escape_segment(id)))
                    .await?;
                objs.push(v);
            }
            out(&render_inspect(a.format.as_deref(), &objs)?);
            Ok(())
        }
        ContainerCommand::Top(a) => {
            let v: Value = c
                .get_json(&format!("/containers/{}/top", escape_segment(&a.container)))
                .await?;
            let mut text = String::new();
            let titles: Vec<String> = v["Titles"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            text.push_str(&titles.join("\t"));
            text.push('\n');
            for p in v["Processes"].as_array().into_iter().flatten() {
                let cells: Vec<String> = p
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                text.push_str(&cells.join("\t"));
                text.push('\n');
            }
            out(&super::format::tabwrite(&text));
            Ok(())
        }
    }
}

fn join_errors(failed: Vec<String>) -> CliResult {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Other(failed.join("\n")))
    }
}

async fn post(c: &Client, path: String) -> CliResult {
    c.send_json::<_, ()>(Method::POST, &path, &json!(null))
        .await
        .map_err(CliError::from)
}

/// Runs `f` for every container, printing each name that succeeded (as docker does).
async fn each<'a, F, Fut>(ids: &'a [String], f: F) -> CliResult
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = CliResult>,
{
    let mut failed = Vec::new();
    for id in ids {
        match f(id).await {
            Ok(()) => out(&format!("{id}\n")),
            Err(e) => failed.push(e.to_string()),
        }
    }
    join_errors(failed)
}

async fn wait(c: &Client, id: &str, condition: &str) -> Result<i64, CliError> {
    let v: Value = c
        .send_json(
            Method::POST,
            &with_query(
                &format!("/containers/{}/wait", escape_segment(id)),
                &[("condition", condition.to_string())],
            ),
            &json!(null),
        )
        .await?;
    if let Some(m) = v.pointer("/Error/Message").and_then(Value::as_str)
        && !m.is_empty()
    {
        eprintln!("{m}");
    }
    Ok(v["StatusCode"].as_i64().unwrap_or(-1))
}

fn split_kv(s: &str) -> (String, String) {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    (k.to_string(), v.to_string())
}

/// `-p [ip:][hostPort:]containerPort[/proto]` (ports may be ranges) → PortBindings entries.
pub fn parse_publish(spec: &str) -> Result<Vec<(String, String, String)>, CliError> {
    let bad = || CliError::Other(format!("invalid publish spec {spec:?}"));
    let (addr, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    // An IPv6 host address is bracketed: [::1]:8080:80.
    let (ip, rest) = if let Some(r) = addr.strip_prefix('[') {
        let (ip, rest) = r.split_once("]:").ok_or_else(bad)?;
        (ip.to_string(), rest.to_string())
    } else {
        let parts: Vec<&str> = addr.split(':').collect();
        match parts.as_slice() {
            [c] => (String::new(), (*c).to_string()),
            [h, c] => (String::new(), format!("{h}:{c}")),
            [ip, h, c] => ((*ip).to_string(), format!("{h}:{c}")),
            _ => return Err(bad()),
        }
    };
    let (host, ctr) = rest.split_once(':').unwrap_or(("", rest.as_str()));
    let range = |s: &str| -> Result<(u16, u16), CliError> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if a == 0 || a > b {
            return Err(bad());
        }
        Ok((a, b))
    };
    let (c0, c1) = range(ctr)?;
    let mut out = Vec::new();
    if host.is_empty() {
        for p in c0..=c1 {
            out.push((format!("{p}/{proto}"), ip.clone(), String::new()));
        }
        return Ok(out);
    }
    let (h0, h1) = range(host)?;
    if c0 == c1 {
        // One container port on a host range: the daemon picks a free one in it.
        let hp = if h0 == h1 {
            h0.to_string()
        } else {
            format!("{h0}-{h1}")
        };
        out.push((format!("{c0}/{proto}"), ip, hp));
        return Ok(out);
    }
    if h1 - h0 != c1 - c0 {
        return Err(CliError::Other(format!(
            "invalid ranges in {spec:?}: host and container ranges differ in size"
        )));
    }
    for i in 0..=(c1 - c0) {
        out.push((
            format!("{}/{proto}", c0 + i),
            ip.clone(),
            (h0 + i).to_string(),
        ));
    }
    Ok(out)
}

fn duration_ns(flag: &str, v: &Option<String>) -> Result<i64, CliError> {
    match v {
        None => Ok(0),
        Some(s) => shoal_runtime::container::parse_duration(s)
            .map(|ns| ns as i64)
            .map_err(|e| CliError::Other(format!("invalid {flag}: {e}"))),
    }
}

/// The create request of `run` (docker's `container.CreateRequest` shape).
pub fn create_body(a: &RunArgs) -> Result<Value, CliError> {
    let mut env: Vec<String> = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CliError::Other(format!("reading env file {f}: {e}")))?;
        env.extend(
            shoal_runtime::container::parse_env_file(&text, |k| std::env::var(k).ok())
                .map_err(|e| CliError::Other(format!("env file {f}: {e}")))?,
        );
    }
    for e in &a.env {
        // `-e KEY` takes the value from this environment, as docker does.
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let mut bindings: Map<String, Value> = Map::new();
    let mut exposed: Map<String, Value> = Map::new();
    for p in &a.publish {
        for (key, ip, hp) in parse_publish(p)? {
            exposed.insert(key.clone(), json!({}));
            let e = bindings.entry(key).or_insert_with(|| json!([]));
            if let Some(list) = e.as_array_mut() {
                list.push(json!({"HostIp": ip, "HostPort": hp}));
            }
        }
    }
    for x in &a.expose {
        let (port, proto) = x.split_once('/').unwrap_or((x, "tcp"));
        exposed.insert(format!("{port}/{proto}"), json!({}));
    }
    let (restart_name, retries) = match a.restart.split_once(':') {
        Some((n, r)) => (
            n.to_string(),
            r.parse::<i64>()
                .map_err(|_| CliError::Other(format!("invalid restart policy {:?}", a.restart)))?,
        ),
        None => (a.restart.clone(), 0),
    };
    let health = if a.no_healthcheck {
        Some(json!({"Test": ["NONE"]}))
    } else if a.health_cmd.is_some()
        || a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.health_retries.is_some()
        || a.health_start_period.is_some()
    {
        let test = match &a.health_cmd {
            Some(cmd) => json!(["CMD-SHELL", cmd]),
            None => json!([]),
        };
        Some(json!({
            "Test": test,
            "Interval": duration_ns("--health-interval", &a.health_interval)?,
            "Timeout": duration_ns("--health-timeout", &a.health_timeout)?,
            "Retries": a.health_retries.unwrap_or(0),
            "StartPeriod": duration_ns("--health-start-period", &a.health_start_period)?,
        }))
    } else {
        None
    };
    let memory = match &a.memory {
        Some(m) => shoal_runtime::container::parse_bytes(m)
            .map_err(|e| CliError::Other(format!("invalid --memory: {e}")))?,
        None => 0,
    };
    let nano_cpus = match &a.cpus {
        Some(c) => shoal_runtime::container::parse_cpus(c)
            .map_err(|e| CliError::Other(format!("invalid --cpus: {e}")))?,
        None => 0,
    };
    let mut tmpfs = Map::new();
    for t in &a.tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t, ""));
        tmpfs.insert(path.to_string(), json!(opts));
    }
    let mut mounts = Vec::new();
    for m in &a.mount {
        let spec = shoal_runtime::container::MountSpec::parse_mount_flag(m)
            .map_err(|e| CliError::Other(format!("invalid --mount {m:?}: {e}")))?;
        let typ = match spec.kind {
            shoal_runtime::container::MountKind::Bind => "bind",
            shoal_runtime::container::MountKind::Volume => "volume",
            shoal_runtime::container::MountKind::Tmpfs => "tmpfs",
        };
        let mut mj = json!({"Type": typ, "Target": spec.target, "ReadOnly": spec.read_only});
        if let Some(src) = &spec.source {
            mj["Source"] = json!(src);
        }
        if spec.kind == shoal_runtime::container::MountKind::Tmpfs {
            let mut o = json!({});
            if let Some(sz) = spec.tmpfs_size {
                o["SizeBytes"] = json!(sz);
            }
            if let Some(md) = spec.tmpfs_mode {
                o["Mode"] = json!(md);
            }
            mj["TmpfsOptions"] = o;
        }
        if spec.no_copy {
            mj["VolumeOptions"] = json!({"NoCopy": true});
        }
        mounts.push(mj);
    }
    let labels: Map<String, Value> = a
        .label
        .iter()
        .map(|l| {
            let (k, v) = split_kv(l);
            (k, json!(v))
        })
        .collect();
    let mut body = json!({
        "Image": a.image,
        "Cmd": a.command,
        "Env": env,
        "Labels": labels,
        "ExposedPorts": exposed,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "HostConfig": {
            "Binds": a.volume,
            "Mounts": mounts,
            "Tmpfs": tmpfs,
            "PortBindings": bindings,
            "PublishAllPorts": a.publish_all,
            "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": retries},
            // In the foreground the CLI removes the container itself once it has read all
            // the output (the daemon could remove it before the logs are fetched).
            "AutoRemove": a.rm && a.detach,
            "Memory": memory,
            "NanoCpus": nano_cpus,
            "ReadonlyRootfs": a.read_only,
            "CapAdd": a.cap_add,
            "CapDrop": a.cap_drop,
            "NetworkMode": a.network.clone().unwrap_or_else(|| "default".into()),
            "ExtraHosts": a.add_host,
            "Dns": a.dns,
        },
    });
    if let Some(h) = &a.hostname {
        body["Hostname"] = json!(h);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(e) = &a.entrypoint {
        body["Entrypoint"] = json!([e]);
    }
    if let Some(p) = a.pids_limit {
        body["HostConfig"]["PidsLimit"] = json!(p);
    }
    if let Some(sig) = &a.stop_signal {
        body["StopSignal"] = json!(sig);
    }
    if let Some(t) = a.stop_timeout {
        body["StopTimeout"] = json!(t);
    }
    if let Some(h) = health {
        body["Healthcheck"] = h;
    }
    Ok(body)
}

async fn run_container(c: &Client, a: RunArgs) -> CliResult {
    let body = create_body(&a)?;
    let mut q = Vec::new();
    if let Some(n) = &a.name {
        q.push(("name", n.clone()));
    }
    let created: Value = c
        .send_json(Method::POST, &with_query("/containers/create", &q), &body)
        .await?;
    for w in created["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    let id = created["Id"]
        .as_str()
        .ok_or_else(|| CliError::Other("the daemon returned no container id".into()))?
        .to_string();
    post(c, format!("/containers/{id}/start")).await?;
    if a.detach {
        out(&format!("{id}\n"));
        return Ok(());
    }
    // Foreground: stream the output until the container stops, then exit with its code.
    let path = with_query(
        &format!("/containers/{id}/logs"),
        &[
            ("stdout", "1".into()),
            ("stderr", "1".into()),
            ("follow", "1".into()),
        ],
    );
    if let Ok(stream) = c.stream(Method::GET, &path).await {
        print_frames(demux_stream(stream)).await?;
    }
    let code = wait(c, &id, "not-running").await?;
    if a.rm {
        let path = with_query(
            &format!("/containers/{id}"),
            &[("force", "true".into()), ("v", "true".into())],
        );
        c.send_json::<_, ()>(Method::DELETE, &path, &json!(null))
            .await?;
    }
    if code != 0 {
        std::process::exit(code.clamp(1, 255) as i32);
    }
    Ok(())
}

async fn print_frames(
    mut frames: futures::stream::BoxStream<
        'static,
        Result<(StdStream, bytes::Bytes), shoal_api::types::ApiError>,
    >,
) -> CliResult {
    use std::io::Write;
    while let Some(f) = frames.next().await {
        let (which, data) = f?;
        if which == StdStream::Stderr {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(&data);
            let _ = e.flush();
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&data);
            let _ = o.flush();
        }
    }
    Ok(())
}

async fn logs(c: &Client, a: LogsArgs) -> CliResult {
    let mut q = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("tail", a.tail.clone()),
    ];
    if a.tail != "all" && a.tail.parse::<u64>().is_err() {
        return Err(CliError::Other(format!("invalid tail value {:?}", a.tail)));
    }
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    for (flag, v) in [("since", &a.since), ("until", &a.until)] {
        if let Some(v) = v {
            let t = super::events::parse_when(flag, v)?;
            q.push((
                flag,
                format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos()),
            ));
        }
    }
    // The log stream is multiplexed unless the container has a TTY (never, here).
    let info: Value = c
        .get_json(&format!(
            "/containers/{}/json",
            escape_segment(&a.container)
        ))
        .await?;
    let path = with_query(
        &format!("/containers/{}/logs", escape_segment(&a.container)),
        &q,
    );
    let stream = c.stream(Method::GET, &path).await?;
    if info.pointer("/Config/Tty").and_then(Value::as_bool) == Some(true) {
        let mut stream = stream;
        while let Some(b) = stream.next().await {
            out(&String::from_utf8_lossy(&b?));
        }
        return Ok(());
    }
    print_frames(demux_stream(stream)).await
}

async fn exec(c: &Client, a: ExecArgs) -> CliResult {
    let interactive = a.interactive && !a.detach;
    let mut body = json!({
        "Cmd": a.command, "Env": a.env, "Tty": a.tty,
        "AttachStdout": !a.detach, "AttachStderr": !a.detach, "AttachStdin": interactive,
    });
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    let created: Value = c
        .send_json(
            Method::POST,
            &format!("/containers/{}/exec", escape_segment(&a.container)),
            &body,
        )
        .await?;
    let id = created["Id"]
        .as_str()
        .ok_or_else(|| CliError::Other("the daemon returned no exec id".into()))?
        .to_string();
    if a.detach {
        c.send_json::<_, ()>(
            Method::POST,
            &format!("/exec/{id}/start"),
            &json!({"Detach": true, "Tty": a.tty}),
        )
        .await?;
        return Ok(());
    }
    if interactive {
        exec_interactive(c, &id, a.tty).await?;
        return exit_with_exec_code(c, &id).await;
    }
    // No body: the daemon treats it as {"Detach":false} and streams the output.
    let stream = c.stream(Method::POST, &format!("/exec/{id}/start")).await?;
    print_exec_output(stream, a.tty).await?;
    exit_with_exec_code(c, &id).await
}

/// An exec session's output: raw with a TTY, else Docker's stdout/stderr frames.
async fn print_exec_output(
    mut stream: futures::stream::BoxStream<
        'static,
        Result<bytes::Bytes, shoal_api::types::ApiError>,
    >,
    tty: bool,
) -> CliResult {
    if !tty {
        return print_frames(demux_stream(stream)).await;
    }
    while let Some(b) = stream.next().await {
        out(&String::from_utf8_lossy(&b?));
    }
    Ok(())
}

async fn exit_with_exec_code(c: &Client, id: &str) -> CliResult {
    let info: Value = c.get_json(&format!("/exec/{id}/json")).await?;
    let code = info["ExitCode"].as_i64().unwrap_or(0);
    if code != 0 {
        std::process::exit(code.clamp(1, 255) as i32);
    }
    Ok(())
}

/// `exec -i`: hijacks the start request, copies our stdin into the connection (half-closing
/// it at the end, which closes the process's stdin) and prints what comes back.
async fn exec_interactive(c: &Client, id: &str, tty: bool) -> CliResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let conn = c
        .hijack(
            &format!("/exec/{id}/start"),
            &json!({"Detach": false, "Tty": tty}),
        )
        .await?;
    let (rd, mut wr) = tokio::io::split(conn);
    let input = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if wr.write_all(&buf[..n]).await.is_err() || wr.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = wr.shutdown().await;
    });
    let output = futures::stream::unfold(rd, |mut rd| async move {
        let mut buf = vec![0u8; 16 * 1024];
        match rd.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), rd))
            }
            Err(e) => Some((
                Err(shoal_api::types::ApiError::internal(format!(
                    "reading exec output: {e}"
                ))),
                rd,
            )),
        }
    })
    .boxed();
    let res = print_exec_output(output, tty).await;
    // The process is gone: whatever stdin still holds is not wanted any more.
    input.abort();
    res
}

/// `0.0.0.0:8080->80/tcp, 443/tcp` from the list's `Ports`.
fn ports_text(ports: &Value) -> String {
    let mut parts: Vec<String> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let private = p["PrivatePort"].as_u64().unwrap_or(0);
            let typ = p["Type"].as_str().unwrap_or("tcp");
            match p["PublicPort"].as_u64() {
                Some(public) => format!(
                    "{}:{public}->{private}/{typ}",
                    p["IP"].as_str().unwrap_or("0.0.0.0")
                ),
                None => format!("{private}/{typ}"),
            }
        })
        .collect();
    parts.dedup();
    parts.join(", ")
}

async fn ps(c: &Client, a: PsArgs) -> CliResult {
    let f = parse_filters(&a.filter)?;
    let mut q = vec![("all", a.all.to_string())];
    if !f.is_empty() {
        q.push(("filters", f.to_json()));
    }
    let list: Vec<Value> = c.get_json(&with_query("/containers/json", &q)).await?;
    let id = |v: &Value| {
        if a.no_trunc {
            s(v, &["Id"])
        } else {
            truncate_id(&s(v, &["Id"]))
        }
    };
    if a.quiet {
        out(&list
            .iter()
            .map(|v| format!("{}\n", id(v)))
            .collect::<String>());
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows: Vec<Value> = list
        .iter()
        .map(|v| {
            let created = v["Created"]
                .as_i64()
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .unwrap_or(now);
            let mut cmd = s(v, &["Command"]);
            if !a.no_trunc && cmd.chars().count() > 20 {
                cmd = cmd.chars().take(19).collect::<String>() + "…";
            }
            let names: Vec<String> = v["Names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(|n| n.trim_start_matches('/').to_string()))
                .collect();
            json!({
                "ID": id(v), "Image": s(v, &["Image"]), "Command": format!("\"{cmd}\""),
                "CreatedAt": created.to_rfc3339(), "RunningFor": ago_from(created, now),
                "Status": s(v, &["Status"]), "State": s(v, &["State"]),
                "Ports": ports_text(&v["Ports"]), "Names": names.join(","),
                "Labels": v.get("Labels").cloned().unwrap_or(json!({})),
            })
        })
        .collect();
    let headers = json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS",
        "Names": "NAMES", "Labels": "LABELS",
    });
    let def = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
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
    fn publish_specs() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(p, vec![("80/tcp".into(), String::new(), "8080".into())]);
        let p = parse_publish("127.0.0.1:53:53/udp").unwrap();
        assert_eq!(p, vec![("53/udp".into(), "127.0.0.1".into(), "53".into())]);
        let p = parse_publish("80").unwrap();
        assert_eq!(p, vec![("80/tcp".into(), String::new(), String::new())]);
        let p = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1], ("81/tcp".into(), String::new(), "8001".into()));
        let p = parse_publish("8000-8010:80").unwrap();
        assert_eq!(p[0].2, "8000-8010");
        for bad in ["", "x:80", "80/icmp", "1:2:3:4", "8000-8002:80-81", "0"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_column() {
        let v = json!([
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 443, "Type": "tcp"}
        ]);
        assert_eq!(ports_text(&v), "0.0.0.0:8080->80/tcp, 443/tcp");
    }

    #[test]
    fn run_body_shape() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: RunArgs,
        }
        let t = T::parse_from([
            "t",
            "-d",
            "-p",
            "8080:80",
            "-e",
            "A=1",
            "--restart",
            "on-failure:3",
            "--memory",
            "64m",
            "img",
            "sh",
            "-c",
            "x",
        ]);
        let b = create_body(&t.a).unwrap();
        assert_eq!(b["Cmd"], json!(["sh", "-c", "x"]));
        assert_eq!(
            b["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            "8080"
        );
        assert_eq!(b["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
        assert_eq!(b["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(b["Env"], json!(["A=1"]));
    }
}
