//! `shoal swarm init|join|join-token|leave|inspect|update|unlock|unlock-key`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use shoal_api::Client;
use shoal_api::types::{
    ClusterSpec, InitRequest, JoinRequest, UnlockRequest, UpdateFlags, parse_duration,
};

use super::format::{render_inspect, s};
use super::{CliError, CliResult, from_value, out, to_value};

#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Initialize a swarm
    Init(Box<InitArgs>),
    /// Join a swarm as a node and/or manager
    Join(Box<JoinArgs>),
    /// Manage join tokens
    JoinToken(JoinTokenArgs),
    /// Leave the swarm
    Leave(LeaveArgs),
    /// Display the swarm's cluster object
    Inspect(InspectArgs),
    /// Update the swarm
    Update(Box<UpdateArgs>),
    /// Unlock swarm
    Unlock,
    /// Manage the unlock key
    UnlockKey(UnlockKeyArgs),
}

/// Cluster settings shared by `init` and `update`.
#[derive(Debug, Args, Default)]
pub struct SpecFlags {
    /// Task history retention limit
    #[arg(long)]
    pub task_history_limit: Option<i64>,
    /// Dispatcher heartbeat period (ns|us|ms|s|m|h)
    #[arg(long)]
    pub dispatcher_heartbeat: Option<String>,
    /// Validity period for node certificates (ns|us|ms|s|m|h)
    #[arg(long)]
    pub cert_expiry: Option<String>,
    /// Number of log entries between Raft snapshots
    #[arg(long)]
    pub snapshot_interval: Option<u64>,
    /// Number of additional Raft snapshots to retain
    #[arg(long)]
    pub max_snapshots: Option<u64>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long, default_value = "")]
    pub advertise_addr: String,
    /// Listen address (format: "<ip|interface>[:port]")
    #[arg(long, default_value = "0.0.0.0:2377")]
    pub listen_addr: String,
    /// Address or interface to use for data path traffic
    #[arg(long, default_value = "")]
    pub data_path_addr: String,
    /// Port number to use for data path traffic (1024 - 49151); 0 means 4789
    #[arg(long, default_value_t = 0)]
    pub data_path_port: u32,
    /// Force create a new cluster from current state
    #[arg(long)]
    pub force_new_cluster: bool,
    /// Enable manager autolocking (requiring an unlock key to start a stopped manager)
    #[arg(long)]
    pub autolock: bool,
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long, default_value = "active")]
    pub availability: String,
    /// Default address pool in CIDR format (repeatable)
    #[arg(long = "default-addr-pool")]
    pub default_addr_pool: Vec<String>,
    /// Default address pool subnet mask length
    #[arg(long = "default-addr-pool-mask-length", default_value_t = 24)]
    pub default_addr_pool_mask_length: u32,
    #[command(flatten)]
    pub spec: SpecFlags,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Token for entry into the swarm
    #[arg(long)]
    pub token: String,
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long, default_value = "")]
    pub advertise_addr: String,
    /// Listen address (format: "<ip|interface>[:port]")
    #[arg(long, default_value = "0.0.0.0:2377")]
    pub listen_addr: String,
    /// Address or interface to use for data path traffic
    #[arg(long, default_value = "")]
    pub data_path_addr: String,
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long, default_value = "active")]
    pub availability: String,
    /// A manager's address (HOST:PORT)
    pub remote: String,
}

#[derive(Debug, Args)]
pub struct JoinTokenArgs {
    /// Only display token
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate join token
    #[arg(long)]
    pub rotate: bool,
    /// worker or manager
    pub role: String,
}

#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Force this node to leave the swarm, ignoring warnings
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Change manager autolocking setting (true|false)
    #[arg(long)]
    pub autolock: Option<bool>,
    #[command(flatten)]
    pub spec: SpecFlags,
}

#[derive(Debug, Args)]
pub struct UnlockKeyArgs {
    /// Only display token
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate unlock key
    #[arg(long)]
    pub rotate: bool,
}

pub async fn run(c: &Client, cmd: SwarmCommand) -> CliResult {
    match cmd {
        SwarmCommand::Init(a) => init(c, *a).await,
        SwarmCommand::Join(a) => join(c, *a).await,
        SwarmCommand::JoinToken(a) => join_token(c, a).await,
        SwarmCommand::Leave(a) => {
            c.swarm_leave(a.force).await?;
            out("Node left the swarm.\n");
            Ok(())
        }
        SwarmCommand::Inspect(a) => {
            let sw = to_value(&c.swarm_inspect().await?)?;
            out(&render_inspect(a.format.as_deref(), &[sw])?);
            Ok(())
        }
        SwarmCommand::Update(a) => update(c, *a).await,
        SwarmCommand::Unlock => unlock(c).await,
        SwarmCommand::UnlockKey(a) => unlock_key(c, a).await,
    }
}

fn duration_ns(flag: &str, v: &str) -> Result<i64, CliError> {
    parse_duration(v)
        .map_err(|e| CliError::Other(format!("invalid argument {v:?} for \"--{flag}\" flag: {e}")))
}

fn check_availability(a: &str) -> Result<(), CliError> {
    match a {
        "active" | "pause" | "drain" => Ok(()),
        _ => Err(CliError::Other(format!(
            "invalid availability {a:?}: must be active, pause or drain"
        ))),
    }
}

/// Writes the flags that were given into a spec (as JSON, so every other field is kept).
fn apply_spec_flags(spec: &mut Value, f: &SpecFlags) -> Result<(), CliError> {
    if !spec.is_object() {
        *spec = json!({});
    }
    let mut set = |section: &str, key: &str, v: Value| {
        if !spec[section].is_object() {
            spec[section] = json!({});
        }
        spec[section][key] = v;
    };
    if let Some(n) = f.task_history_limit {
        set("Orchestration", "TaskHistoryRetentionLimit", json!(n));
    }
    if let Some(d) = &f.dispatcher_heartbeat {
        set(
            "Dispatcher",
            "HeartbeatPeriod",
            json!(duration_ns("dispatcher-heartbeat", d)?),
        );
    }
    if let Some(d) = &f.cert_expiry {
        set(
            "CAConfig",
            "NodeCertExpiry",
            json!(duration_ns("cert-expiry", d)?),
        );
    }
    if let Some(n) = f.snapshot_interval {
        set("Raft", "SnapshotInterval", json!(n));
    }
    if let Some(n) = f.max_snapshots {
        set("Raft", "KeepOldSnapshots", json!(n));
    }
    Ok(())
}

/// The worker join command, as docker prints it; needs the node's manager address.
async fn join_command(
    c: &Client,
    node_id: &str,
    role: &str,
    worker: bool,
) -> Result<Option<String>, CliError> {
    let node = to_value(&c.node_inspect(node_id).await?)?;
    let addr = s(&node, &["ManagerStatus", "Addr"]);
    if addr.is_empty() {
        // Without ManagerStatus there is no address to give (not a manager).
        return Ok(None);
    }
    let sw = c.swarm_inspect().await?;
    let token = if worker {
        sw.join_tokens.worker
    } else {
        sw.join_tokens.manager
    };
    Ok(Some(format!(
        "To add a {role} to this swarm, run the following command:\n\n    shoal swarm join --token {token} {addr}\n\n"
    )))
}

async fn init(c: &Client, a: InitArgs) -> CliResult {
    check_availability(&a.availability)?;
    let mut spec = json!({});
    apply_spec_flags(&mut spec, &a.spec)?;
    let req: InitRequest = from_value(json!({
        "ListenAddr": a.listen_addr,
        "AdvertiseAddr": a.advertise_addr,
        "DataPathAddr": a.data_path_addr,
        "DataPathPort": a.data_path_port,
        "ForceNewCluster": a.force_new_cluster,
        "Spec": spec,
        "AutoLockManagers": a.autolock,
        "Availability": a.availability,
        "DefaultAddrPool": a.default_addr_pool,
        "SubnetSize": a.default_addr_pool_mask_length,
    }))?;
    let node_id = c.swarm_init(&req).await.map_err(|e| {
        if e.message
            .contains("could not choose an IP address to advertise")
            || e.message.contains("could not find the system's IP address")
        {
            CliError::Daemon(shoal_api::types::ApiError::new(
                e.kind,
                format!("{} - specify one with --advertise-addr", e.message),
            ))
        } else {
            CliError::from(e)
        }
    })?;
    let mut text = format!("Swarm initialized: current node ({node_id}) is now a manager.\n\n");
    if let Some(cmd) = join_command(c, &node_id, "worker", true).await? {
        text.push_str(&cmd);
    }
    text.push_str("To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n");
    out(&text);
    if a.autolock {
        let key = c.swarm_unlock_key().await?;
        out(&unlock_key_message(&key.unlock_key));
    }
    Ok(())
}

async fn join(c: &Client, a: JoinArgs) -> CliResult {
    check_availability(&a.availability)?;
    let req: JoinRequest = from_value(json!({
        "ListenAddr": a.listen_addr,
        "AdvertiseAddr": a.advertise_addr,
        "DataPathAddr": a.data_path_addr,
        "RemoteAddrs": [a.remote],
        "JoinToken": a.token,
        "Availability": a.availability,
    }))?;
    c.swarm_join(&req).await?;
    let info = c.info().await?;
    if info.swarm.control_available {
        out("This node joined a swarm as a manager.\n");
    } else {
        out("This node joined a swarm as a worker.\n");
    }
    Ok(())
}

async fn join_token(c: &Client, a: JoinTokenArgs) -> CliResult {
    let worker = match a.role.as_str() {
        "worker" => true,
        "manager" => false,
        other => return Err(CliError::Other(format!("unknown role {other}"))),
    };
    if a.rotate {
        let sw = c.swarm_inspect().await?;
        let flags = UpdateFlags {
            rotate_worker_token: worker,
            rotate_manager_token: !worker,
            rotate_manager_unlock_key: false,
        };
        let spec = sw.cluster_info.spec.clone();
        c.swarm_update(sw.cluster_info.meta.version.index, &spec, flags)
            .await?;
        if !a.quiet {
            out(&format!("Successfully rotated {} join token.\n\n", a.role));
        }
    }
    if a.quiet {
        let sw = c.swarm_inspect().await?;
        out(&format!(
            "{}\n",
            if worker {
                sw.join_tokens.worker
            } else {
                sw.join_tokens.manager
            }
        ));
        return Ok(());
    }
    let info = c.info().await?;
    match join_command(c, &info.swarm.node_id, &a.role, worker).await? {
        Some(cmd) => out(&cmd),
        None => {
            return Err(CliError::Other(
                "this node is not a swarm manager: no join address to show".into(),
            ));
        }
    }
    Ok(())
}

async fn update(c: &Client, a: UpdateArgs) -> CliResult {
    let sw = c.swarm_inspect().await?;
    let mut spec = to_value(&sw.cluster_info.spec)?;
    apply_spec_flags(&mut spec, &a.spec)?;
    let was_locked = spec["EncryptionConfig"]["AutoLockManagers"]
        .as_bool()
        .unwrap_or(false);
    if let Some(al) = a.autolock {
        if !spec["EncryptionConfig"].is_object() {
            spec["EncryptionConfig"] = json!({});
        }
        spec["EncryptionConfig"]["AutoLockManagers"] = json!(al);
    }
    let spec: ClusterSpec = from_value(spec)?;
    c.swarm_update(
        sw.cluster_info.meta.version.index,
        &spec,
        UpdateFlags::default(),
    )
    .await?;
    out("Swarm updated.\n");
    if a.autolock == Some(true) && !was_locked {
        let key = c.swarm_unlock_key().await?;
        out(&unlock_key_message(&key.unlock_key));
    }
    Ok(())
}

async fn unlock(c: &Client) -> CliResult {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Enter unlock key: ");
        let _ = std::io::stderr().flush();
    }
    let mut key = String::new();
    stdin
        .lock()
        .read_line(&mut key)
        .map_err(|e| CliError::Other(format!("reading unlock key: {e}")))?;
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(CliError::Other("unlock key is empty".into()));
    }
    c.swarm_unlock(&UnlockRequest { unlock_key: key }).await?;
    Ok(())
}

fn unlock_key_message(key: &str) -> String {
    format!(
        "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\ncommand and provide the following key:\n\n    {key}\n\nPlease remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.\n"
    )
}

async fn unlock_key(c: &Client, a: UnlockKeyArgs) -> CliResult {
    if a.rotate {
        let sw = c.swarm_inspect().await?;
        if !sw.cluster_info.spec.encryption_config.auto_lock_managers {
            return Err(CliError::Other(
                "cannot rotate because autolock is not turned on".into(),
            ));
        }
        let flags = UpdateFlags {
            rotate_manager_unlock_key: true,
            ..UpdateFlags::default()
        };
        let spec = sw.cluster_info.spec.clone();
        c.swarm_update(sw.cluster_info.meta.version.index, &spec, flags)
            .await?;
        if !a.quiet {
            out("Successfully rotated manager unlock key.\n\n");
        }
    }
    let key = c.swarm_unlock_key().await?;
    if key.unlock_key.is_empty() {
        return Err(CliError::Other("no unlock key is set".into()));
    }
    if a.quiet {
        out(&format!("{}\n", key.unlock_key));
    } else {
        out(&unlock_key_message(&key.unlock_key));
    }
    Ok(())
}
