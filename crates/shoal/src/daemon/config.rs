//! `shoal daemon` settings: command-line flags, optionally a TOML or JSON config file.
//! A flag given on the command line wins over the file.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct DaemonArgs {
    /// Root of persistent state (certificates, raft, images, containers).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Root of runtime state (sockets, mounts, pid files).
    #[arg(long)]
    pub exec_root: Option<PathBuf>,
    /// API socket, from the global `-H/--host` (unix:///run/shoal/shoal.sock by default).
    #[arg(skip)]
    pub host: Option<String>,
    /// A TOML or JSON config file (keys as the long flags, with underscores).
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Registries reached over plain HTTP (repeatable), e.g. 10.77.0.254:5000.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Parent cgroup for containers (keeps several daemons on one machine apart).
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Hostname this node reports (defaults to the machine's).
    #[arg(long)]
    pub node_hostname: Option<String>,
    /// OCI runtime binary: runc or crun.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Gateway address and subnet of the default bridge network (like dockerd's --bip),
    /// e.g. 172.17.0.1/16 (the default).
    #[arg(long)]
    pub bip: Option<String>,
    /// Name of the default bridge's interface (default: derived from the data root, so
    /// daemons sharing a network namespace never collide).
    #[arg(long)]
    pub bridge: Option<String>,
    /// Lifetime of the node's WireGuard key (encrypted overlays) before it is rotated, e.g.
    /// 24h (the default) or 30s. SIGUSR2 rotates it at once.
    #[arg(long)]
    pub wg_key_rotation: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    host: Option<String>,
    log_level: Option<String>,
    log_json: Option<bool>,
    #[serde(default)]
    insecure_registries: Vec<String>,
    cgroup_parent: Option<String>,
    node_hostname: Option<String>,
    runtime: Option<String>,
    bip: Option<String>,
    bridge: Option<String>,
    wg_key_rotation: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub socket: PathBuf,
    pub log_level: String,
    pub log_json: bool,
    pub insecure_registries: Vec<String>,
    pub cgroup_parent: String,
    pub hostname: String,
    pub runtime: String,
    /// `--bip`: the default bridge's gateway/prefix (checked when the bridge is set up).
    pub bip: Option<String>,
    /// `--bridge`: the default bridge's interface name.
    pub bridge: Option<String>,
    /// `--wg-key-rotation`: how long a WireGuard key is used before it is rotated.
    pub wg_key_rotation: std::time::Duration,
}

pub const DEFAULT_SOCKET: &str = "/run/shoal/shoal.sock";

fn socket_from_host(host: &str) -> Result<PathBuf> {
    if let Some(p) = host.strip_prefix("unix://") {
        return Ok(PathBuf::from(p));
    }
    if host.starts_with('/') {
        return Ok(PathBuf::from(host));
    }
    bail!("--host must be unix:///path/to/socket, got {host:?}")
}

fn load_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let cfg = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
    };
    Ok(cfg)
}

fn machine_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

impl DaemonConfig {
    pub fn from_args(args: DaemonArgs) -> Result<DaemonConfig> {
        let file = match &args.config_file {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        let host = args
            .host
            .or(file.host)
            .unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"));
        let mut insecure = file.insecure_registries;
        insecure.extend(args.insecure_registries);
        let runtime = args
            .runtime
            .or(file.runtime)
            .unwrap_or_else(|| "runc".into());
        if runtime != "runc" && runtime != "crun" {
            bail!("--runtime must be runc or crun, got {runtime:?}");
        }
        let wg_key_rotation = match args.wg_key_rotation.or(file.wg_key_rotation) {
            Some(s) => super::netplane::wg_keys::parse_rotation(&s)
                .map_err(|e| anyhow::anyhow!("--wg-key-rotation {s:?}: {e}"))?,
            None => super::netplane::wg_keys::DEFAULT_ROTATION,
        };
        Ok(DaemonConfig {
            data_root: args
                .data_root
                .or(file.data_root)
                .unwrap_or_else(|| "/var/lib/shoal".into()),
            exec_root: args
                .exec_root
                .or(file.exec_root)
                .unwrap_or_else(|| "/run/shoal".into()),
            socket: socket_from_host(&host)?,
            log_level: args
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            log_json: args.log_json || file.log_json.unwrap_or(false),
            insecure_registries: insecure,
            cgroup_parent: args
                .cgroup_parent
                .or(file.cgroup_parent)
                .unwrap_or_else(|| "shoal".into()),
            hostname: args
                .node_hostname
                .or(file.node_hostname)
                .unwrap_or_else(machine_hostname),
            runtime,
            bip: args.bip.or(file.bip),
            bridge: args.bridge.or(file.bridge),
            wg_key_rotation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.toml");
        std::fs::write(
            &f,
            "data_root = \"/a\"\nlog_level = \"debug\"\ninsecure_registries = [\"r:5000\"]\n",
        )
        .unwrap();
        let cfg = DaemonConfig::from_args(DaemonArgs {
            config_file: Some(f),
            data_root: Some("/b".into()),
            insecure_registries: vec!["s:5000".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.data_root, PathBuf::from("/b"));
        assert_eq!(cfg.log_level, "debug");
        assert_eq!(cfg.insecure_registries, vec!["r:5000", "s:5000"]);
        assert_eq!(cfg.socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn unknown_file_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.json");
        std::fs::write(&f, r#"{"data_rot": "/x"}"#).unwrap();
        let err = DaemonConfig::from_args(DaemonArgs {
            config_file: Some(f),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("data_rot"), "{err:#}");
    }

    #[test]
    fn bad_host_refused() {
        let err = DaemonConfig::from_args(DaemonArgs {
            host: Some("tcp://1.2.3.4:1".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("unix://"));
    }
}
