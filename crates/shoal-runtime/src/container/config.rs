//! What a container is asked to be: `ContainerConfig` and the parsers for the `docker run`
//! flag syntaxes (`-v`, `--mount`, `--tmpfs`, `--restart`, `--env-file`, sizes, cpus).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};

/// Everything needed to create a container. The image is already resolved: the daemon
/// asks the image store for the layer dirs and the image config and fills them in.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerConfig {
    /// Container name (without the leading `/`); generated when absent.
    pub name: Option<String>,
    /// Image reference as the user wrote it (shown by ps/inspect).
    pub image: String,
    /// Image id (`sha256:…`).
    pub image_id: String,
    /// Overlay lower dirs, top-most layer first (overlayfs `lowerdir` order).
    pub lower_dirs: Vec<PathBuf>,
    /// Defaults from the image config.
    pub image_config: ImageDefaults,
    /// Overrides the image's Cmd when set.
    pub cmd: Option<Vec<String>>,
    /// Overrides the image's Entrypoint when set (an empty list clears it).
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` entries; override the image's Env by key.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved against the rootfs.
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub mounts: Vec<MountSpec>,
    pub resources: Resources,
    pub restart_policy: RestartPolicy,
    /// Overrides (field by field) the image's healthcheck.
    pub healthcheck: Option<HealthConfig>,
    /// Signal name or number; default the image's, else SIGTERM.
    pub stop_signal: Option<String>,
    /// Seconds between the stop signal and SIGKILL; default 10.
    pub stop_timeout: Option<u64>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub network: NetworkMode,
    /// Extra `/etc/hosts` entries, `host:ip`.
    pub extra_hosts: Vec<String>,
    /// Full `/etc/hosts` content, replacing the generated one.
    pub hosts_file: Option<String>,
    /// The container's own addresses (on the networks the daemon wired), listed with its
    /// hostname in the generated `/etc/hosts`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Full `/etc/resolv.conf` content; default: the host's, without loopback servers.
    pub resolv_conf: Option<String>,
    /// Secrets and configs, written to a per-container tmpfs and bind-mounted read-only.
    pub files: Vec<SecretFile>,
    /// Remove the container when it exits (and is not restarted).
    #[serde(default)]
    pub auto_remove: bool,
}

/// The part of an image config a container run needs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageDefaults {
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub healthcheck: Option<HealthConfig>,
    pub stop_signal: Option<String>,
}

/// How the container gets its network namespace.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "mode", content = "path")]
pub enum NetworkMode {
    /// A new namespace with only `lo` (up). The default.
    #[default]
    Isolated,
    /// Join a namespace the daemon prepared (e.g. `<run_root>/netns/<id>`, wired by shoal-net).
    Netns(PathBuf),
    /// Share the host's network namespace.
    Host,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

/// One mount into the container.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MountSpec {
    pub kind: MountKind,
    /// Host path (bind), volume name (volume; None = anonymous), unused for tmpfs.
    pub source: Option<String>,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
    /// tmpfs size in bytes.
    pub tmpfs_size: Option<u64>,
    /// tmpfs root mode.
    pub tmpfs_mode: Option<u32>,
    /// Do not copy image content into an empty volume.
    pub no_copy: bool,
}

/// cgroup limits. Zero means unlimited.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: u64,
    /// CPU in units of 1e-9 CPUs (`--cpus 1.5` = 1_500_000_000).
    pub nano_cpus: u64,
    /// Max number of processes.
    pub pids_limit: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure {
        /// 0 = unlimited.
        max_retries: u32,
    },
    Always,
    UnlessStopped,
}

/// Healthcheck settings, durations in nanoseconds as in the Docker API (0 = default).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HealthConfig {
    /// `["CMD", args…]`, `["CMD-SHELL", command]` or `["NONE"]`; empty = inherit.
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub retries: u32,
    pub start_period: u64,
}

/// A secret or config handed to the container as a file.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SecretFile {
    /// Absolute path in the container; a relative one is taken under `/run/secrets/`.
    pub target: String,
    /// The content; never written to disk (not persisted with the config).
    #[serde(skip)]
    pub data: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFile")
            .field("target", &self.target)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

pub const DEFAULT_STOP_TIMEOUT: u64 = 10;
const SECOND: u64 = 1_000_000_000;
pub const DEFAULT_HEALTH_INTERVAL: u64 = 30 * SECOND;
pub const DEFAULT_HEALTH_TIMEOUT: u64 = 30 * SECOND;
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

impl RestartPolicy {
    /// Parses `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let max_retries = match count {
                    None => 0,
                    Some(c) => c.parse().map_err(|_| {
                        Error::invalid(format!("invalid restart policy count {c:?} in {s:?}"))
                    })?,
                };
                return Ok(RestartPolicy::OnFailure { max_retries });
            }
            _ => return Err(Error::invalid(format!("invalid restart policy {s:?}"))),
        };
        if count.is_some() {
            return Err(Error::invalid(format!(
                "maximum retry count cannot be used with restart policy {name:?}"
            )));
        }
        Ok(policy)
    }

    /// Docker's wire names: `no`, `on-failure`, `always`, `unless-stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

impl MountSpec {
    /// Parses `-v`: `src:dst[:opts]` (src absolute = bind, else a volume name) or `dst`
    /// (an anonymous volume). Options: `ro`, `rw`, `nocopy`, SELinux `z`/`Z` (ignored).
    pub fn parse_volume_flag(s: &str) -> Result<MountSpec> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [dst] => (None, *dst, ""),
            [src, dst] => (Some(*src), *dst, ""),
            [src, dst, opts] => (Some(*src), *dst, *opts),
            _ => {
                return Err(Error::invalid(format!(
                    "invalid volume specification {s:?}"
                )));
            }
        };
        if !dst.starts_with('/') {
            return Err(Error::invalid(format!(
                "invalid volume specification {s:?}: destination must be an absolute path"
            )));
        }
        let mut m = MountSpec {
            target: dst.to_string(),
            ..Default::default()
        };
        match src {
            None => m.kind = MountKind::Volume,
            Some("") => {
                return Err(Error::invalid(format!(
                    "invalid volume specification {s:?}"
                )));
            }
            Some(p) if p.starts_with('/') => {
                m.kind = MountKind::Bind;
                m.source = Some(p.to_string());
            }
            Some(name) => {
                validate_volume_name(name)?;
                m.kind = MountKind::Volume;
                m.source = Some(name.to_string());
            }
        }
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => m.read_only = true,
                "rw" => m.read_only = false,
                "nocopy" => m.no_copy = true,
                "z" | "Z" => {}
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid mode {o:?} in volume specification {s:?}"
                    )));
                }
            }
        }
        Ok(m)
    }

    /// Parses `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…]…`.
    pub fn parse_mount_flag(s: &str) -> Result<MountSpec> {
        let mut m = MountSpec {
            kind: MountKind::Volume,
            ..Default::default()
        };
        let mut target = None;
        for field in s.split(',').filter(|f| !f.is_empty()) {
            let (k, v) = match field.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (field.trim(), None),
            };
            let need = |v: Option<&str>| -> Result<String> {
                v.map(str::to_string).ok_or_else(|| {
                    Error::invalid(format!("invalid field {field:?}: must be a key=value pair"))
                })
            };
            match k {
                "type" => {
                    m.kind = match need(v)?.as_str() {
                        "bind" => MountKind::Bind,
                        "volume" => MountKind::Volume,
                        "tmpfs" => MountKind::Tmpfs,
                        t => return Err(Error::invalid(format!("unsupported mount type {t:?}"))),
                    }
                }
                "source" | "src" => m.source = Some(need(v)?),
                "target" | "destination" | "dst" => target = Some(need(v)?),
                "readonly" | "ro" => {
                    m.read_only = match v {
                        None | Some("1") | Some("true") => true,
                        Some("0") | Some("false") => false,
                        Some(x) => {
                            return Err(Error::invalid(format!("invalid value for {k}: {x:?}")));
                        }
                    }
                }
                "volume-nocopy" => m.no_copy = !matches!(v, Some("0") | Some("false")),
                "tmpfs-size" => m.tmpfs_size = Some(parse_bytes(&need(v)?)?),
                "tmpfs-mode" => {
                    let v = need(v)?;
                    m.tmpfs_mode = Some(
                        u32::from_str_radix(&v, 8)
                            .map_err(|_| Error::invalid(format!("invalid tmpfs-mode {v:?}")))?,
                    )
                }
                "bind-propagation" | "consistency" | "volume-driver" => {}
                _ => return Err(Error::invalid(format!("unexpected key {k:?} in {s:?}"))),
            }
        }
        m.target = target.ok_or_else(|| Error::invalid(format!("target is required in {s:?}")))?;
        if !m.target.starts_with('/') {
            return Err(Error::invalid(format!(
                "mount target {:?} is not absolute",
                m.target
            )));
        }
        match m.kind {
            MountKind::Bind => {
                let src = m.source.as_deref().unwrap_or("");
                if !src.starts_with('/') {
                    return Err(Error::invalid(format!(
                        "bind source {src:?} must be an absolute path"
                    )));
                }
            }
            MountKind::Volume => {
                if let Some(name) = &m.source {
                    validate_volume_name(name)?;
                }
            }
            MountKind::Tmpfs => {
                if m.source.is_some() {
                    return Err(Error::invalid("source must not be set for tmpfs mounts"));
                }
            }
        }
        Ok(m)
    }

    /// Parses `--tmpfs /path[:opts]` with opts `size=…`, `mode=…`, `ro`, `rw`, others ignored.
    pub fn parse_tmpfs_flag(s: &str) -> Result<MountSpec> {
        let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
        if !dst.starts_with('/') {
            return Err(Error::invalid(format!(
                "tmpfs target {dst:?} is not absolute"
            )));
        }
        let mut m = MountSpec {
            kind: MountKind::Tmpfs,
            target: dst.to_string(),
            ..Default::default()
        };
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o.split_once('=') {
                Some(("size", v)) => m.tmpfs_size = Some(parse_bytes(v)?),
                Some(("mode", v)) => {
                    m.tmpfs_mode = Some(
                        u32::from_str_radix(v, 8)
                            .map_err(|_| Error::invalid(format!("invalid tmpfs mode {v:?}")))?,
                    )
                }
                None if o == "ro" => m.read_only = true,
                None if o == "rw" => m.read_only = false,
                _ => {}
            }
        }
        Ok(m)
    }
}

/// Volume names as Docker allows them.
pub fn validate_volume_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok_first || !ok_rest || name.len() < 2 {
        return Err(Error::invalid(format!(
            "{name:?} includes invalid characters for a local volume name, only \
             \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
        )));
    }
    Ok(())
}

/// Container names as Docker allows them (a leading `/` is accepted and dropped).
pub fn validate_container_name(name: &str) -> Result<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok_first || !ok_rest || n.len() < 2 {
        return Err(Error::invalid(format!(
            "invalid container name {name:?}, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

/// Parses sizes such as `512m`, `1g`, `1048576`, `64k`, `1.5g` (binary units).
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| Error::invalid(format!("invalid size {s:?}")))?;
    if !v.is_finite() || v < 0.0 || v * mult as f64 > u64::MAX as f64 {
        return Err(Error::invalid(format!("invalid size {s:?}")));
    }
    Ok((v * mult as f64) as u64)
}

/// Parses `--cpus 1.5` into nano CPUs.
pub fn parse_cpus(s: &str) -> Result<u64> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| Error::invalid(format!("invalid --cpus value {s:?}")))?;
    if !v.is_finite() || v <= 0.0 || v > 1_000_000.0 {
        return Err(Error::invalid(format!("invalid --cpus value {s:?}")));
    }
    Ok((v * 1e9).round() as u64)
}

/// Parses an `--env-file`: `KEY=VALUE` lines; `#` comments and blank lines skipped; a bare
/// `KEY` takes its value from `lookup` (the CLI's environment) and is dropped when unset.
pub fn parse_env_file(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line.trim_end(), None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(Error::invalid(format!(
                "env file line {}: variable {key:?} contains whitespaces or is empty",
                n + 1
            )));
        }
        match value {
            Some(v) => out.push(format!("{key}={v}")),
            None => {
                if let Some(v) = lookup(key) {
                    out.push(format!("{key}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// Parses a Go-style duration (`30s`, `1m30s`, `500ms`, `1h`) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64> {
    let bad = || Error::invalid(format!("invalid duration {s:?}"));
    let mut total: f64 = 0.0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0);
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let v: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += v * mult;
        rest = tail;
    }
    if total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        assert_eq!(
            RestartPolicy::parse("always").unwrap(),
            RestartPolicy::Always
        );
        assert!(RestartPolicy::parse("always:3").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }

    #[test]
    fn volume_flags() {
        let m = MountSpec::parse_volume_flag("/host:/ctr:ro").unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert!(m.read_only);
        let m = MountSpec::parse_volume_flag("data:/var/lib/data").unwrap();
        assert_eq!(m.kind, MountKind::Volume);
        assert_eq!(m.source.as_deref(), Some("data"));
        let m = MountSpec::parse_volume_flag("/anon").unwrap();
        assert_eq!(m.kind, MountKind::Volume);
        assert!(m.source.is_none());
        assert!(MountSpec::parse_volume_flag("relative").is_err());
        assert!(MountSpec::parse_volume_flag("/a:/b:bogus").is_err());
        assert!(MountSpec::parse_volume_flag("bad name:/b").is_err());
    }

    #[test]
    fn mount_flags() {
        let m = MountSpec::parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770")
            .unwrap();
        assert_eq!(m.kind, MountKind::Tmpfs);
        assert_eq!(m.tmpfs_size, Some(64 << 20));
        assert_eq!(m.tmpfs_mode, Some(0o1770));
        let m = MountSpec::parse_mount_flag("type=bind,src=/a,dst=/b,readonly").unwrap();
        assert!(m.read_only);
        assert!(MountSpec::parse_mount_flag("type=bind,src=a,dst=/b").is_err());
        assert!(MountSpec::parse_mount_flag("type=volume,src=v").is_err());
        assert!(MountSpec::parse_mount_flag("type=nfs,dst=/b").is_err());
        let m = MountSpec::parse_tmpfs_flag("/run:size=1k,mode=700").unwrap();
        assert_eq!(m.tmpfs_size, Some(1024));
        assert_eq!(m.tmpfs_mode, Some(0o700));
    }

    #[test]
    fn sizes_cpus_durations_env() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("-1").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), 90 * SECOND);
        assert_eq!(parse_duration("500ms").unwrap(), SECOND / 2);
        assert!(parse_duration("5 parsecs").is_err());
        let env = parse_env_file("# c\nA=1\n\nB\nC\n", |k| (k == "B").then(|| "2".into())).unwrap();
        assert_eq!(env, vec!["A=1", "B=2"]);
        assert!(parse_env_file("BAD KEY=1", |_| None).is_err());
        assert_eq!(validate_container_name("/web.1").unwrap(), "web.1");
        assert!(validate_container_name("-x").is_err());
    }
}
