//! `POST /containers/create` (shoal-types' Docker shapes) → `ContainerConfig`.
//! Options Shoal cannot honour are refused with a clear error instead of being ignored.

use std::path::PathBuf;

use shoal_types::container::{ContainerCreateRequest, HostConfig};
use shoal_types::task_spec::{HealthConfig as WireHealth, Mount as WireMount, MountType};

use super::config::{
    ContainerConfig, HealthConfig, ImageDefaults, MountKind, MountSpec, NetworkMode, Resources,
    RestartPolicy, validate_container_name,
};
use super::error::{Error, Result};

/// The image as the image store resolved it.
#[derive(Clone, Debug, Default)]
pub struct ResolvedImage {
    pub image_id: String,
    /// Overlay lower dirs, top-most layer first.
    pub lower_dirs: Vec<PathBuf>,
    pub defaults: ImageDefaults,
}

/// Longest stop timeout we wait (Docker's -1 means "forever").
const FOREVER_SECS: u64 = 365 * 24 * 3600;

fn nonneg(name: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::invalid(format!("{name} must not be negative")))
}

pub fn health_from_wire(h: &WireHealth) -> Result<HealthConfig> {
    Ok(HealthConfig {
        test: h.test.clone(),
        interval: nonneg("Healthcheck.Interval", h.interval)?,
        timeout: nonneg("Healthcheck.Timeout", h.timeout)?,
        retries: u32::try_from(h.retries)
            .map_err(|_| Error::invalid("Healthcheck.Retries must be between 0 and 2^32"))?,
        start_period: nonneg("Healthcheck.StartPeriod", h.start_period)?,
    })
}

fn mount_from_wire(m: &WireMount) -> Result<MountSpec> {
    if !m.target.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid mount target {:?}: must be an absolute path",
            m.target
        )));
    }
    let kind = match m.r#type {
        Some(MountType::Bind) => MountKind::Bind,
        Some(MountType::Volume) | None => MountKind::Volume,
        Some(MountType::Tmpfs) => MountKind::Tmpfs,
        Some(other) => {
            return Err(Error::invalid(format!(
                "mount type {:?} is not supported (bind, volume, tmpfs)",
                other.as_str()
            )));
        }
    };
    let mut spec = MountSpec {
        kind,
        source: Some(m.source.clone()).filter(|s| !s.is_empty()),
        target: m.target.clone(),
        read_only: m.read_only,
        ..Default::default()
    };
    if let Some(v) = &m.volume_options {
        spec.no_copy = v.no_copy;
        if !v.subpath.is_empty() {
            return Err(Error::invalid("volume subpath is not supported"));
        }
        if let Some(d) = &v.driver_config
            && !d.name.is_empty()
            && d.name != "local"
        {
            return Err(Error::invalid(format!(
                "volume driver {:?} is not supported (only \"local\")",
                d.name
            )));
        }
    }
    if let Some(t) = &m.tmpfs_options {
        if t.size_bytes > 0 {
            spec.tmpfs_size = Some(t.size_bytes as u64);
        }
        if t.mode != 0 {
            spec.tmpfs_mode = Some(t.mode);
        }
    }
    if kind == MountKind::Bind && !spec.source.as_deref().unwrap_or("").starts_with('/') {
        return Err(Error::invalid(format!(
            "bind source {:?} must be an absolute path",
            m.source
        )));
    }
    Ok(spec)
}

fn refuse_unsupported(h: &HostConfig) -> Result<()> {
    let mut bad: Vec<&str> = Vec::new();
    if h.privileged {
        bad.push("Privileged");
    }
    if !h.devices.is_empty() {
        bad.push("Devices");
    }
    if !h.sysctls.is_empty() {
        bad.push("Sysctls");
    }
    if !h.ulimits.is_empty() {
        bad.push("Ulimits");
    }
    if !h.security_opt.is_empty() {
        bad.push("SecurityOpt");
    }
    if !h.volumes_from.is_empty() {
        bad.push("VolumesFrom");
    }
    if !matches!(h.ipc_mode.as_str(), "" | "private" | "shareable") {
        bad.push("IpcMode");
    }
    if !h.pid_mode.is_empty() {
        bad.push("PidMode");
    }
    if !h.uts_mode.is_empty() {
        bad.push("UTSMode");
    }
    if !matches!(h.userns_mode.as_str(), "" | "host") {
        bad.push("UsernsMode");
    }
    if !matches!(h.log_config.r#type.as_str(), "" | "json-file" | "local") {
        bad.push("LogConfig.Type");
    }
    if !matches!(h.runtime.as_str(), "" | "runc" | "crun") {
        bad.push("Runtime");
    }
    if h.init == Some(true) {
        bad.push("Init");
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "not supported by Shoal: {}",
            bad.join(", ")
        )))
    }
}

/// Builds the container config of a create request. The daemon then replaces `network`
/// with the netns it wired (for bridge/overlay networks) and fills `files` with secrets.
pub fn from_create_request(
    req: &ContainerCreateRequest,
    name: Option<&str>,
    image: ResolvedImage,
) -> Result<ContainerConfig> {
    let c = &req.config;
    let h = &req.host_config;
    if c.tty || c.open_stdin {
        return Err(Error::invalid(
            "interactive containers (Tty / OpenStdin) are not supported; use exec -it",
        ));
    }
    refuse_unsupported(h)?;
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => Some(validate_container_name(n)?),
        None => None,
    };
    let entrypoint = match c.entrypoint.as_slice() {
        [] => None,
        [only] if only.is_empty() => Some(Vec::new()),
        e => Some(e.to_vec()),
    };
    let mut mounts = Vec::new();
    for b in &h.binds {
        mounts.push(MountSpec::parse_volume_flag(b)?);
    }
    for m in &h.mounts {
        mounts.push(mount_from_wire(m)?);
    }
    for (path, opts) in &h.tmpfs {
        let spec = if opts.is_empty() {
            path.clone()
        } else {
            format!("{path}:{opts}")
        };
        mounts.push(MountSpec::parse_tmpfs_flag(&spec)?);
    }
    // Anonymous volumes declared by Config.Volumes, unless something else mounts there.
    for path in c.volumes.keys() {
        if !mounts.iter().any(|m| &m.target == path) {
            mounts.push(MountSpec::parse_volume_flag(path)?);
        }
    }
    let restart_policy = match h.restart_policy.name.as_str() {
        "" | "no" => RestartPolicy::No,
        "always" => RestartPolicy::Always,
        "unless-stopped" => RestartPolicy::UnlessStopped,
        "on-failure" => RestartPolicy::OnFailure {
            max_retries: u32::try_from(h.restart_policy.maximum_retry_count)
                .map_err(|_| Error::invalid("invalid restart policy retry count"))?,
        },
        other => return Err(Error::invalid(format!("invalid restart policy {other:?}"))),
    };
    if restart_policy != RestartPolicy::No && h.auto_remove {
        return Err(Error::invalid(
            "conflicting options: AutoRemove and a restart policy",
        ));
    }
    let mut nano_cpus = nonneg("NanoCpus", h.nano_cpus)?;
    if nano_cpus == 0 && h.cpu_quota > 0 {
        let period = if h.cpu_period > 0 {
            h.cpu_period
        } else {
            100_000
        };
        nano_cpus = (h.cpu_quota as u128 * 1_000_000_000 / period as u128) as u64;
    }
    let resources = Resources {
        memory: nonneg("Memory", h.memory)?,
        nano_cpus,
        pids_limit: h.pids_limit.filter(|p| *p > 0).unwrap_or(0),
    };
    let network = match h.network_mode.as_str() {
        "host" => NetworkMode::Host,
        _ => NetworkMode::Isolated,
    };
    let resolv_conf = if h.dns.is_empty() && h.dns_search.is_empty() && h.dns_options.is_empty() {
        None
    } else {
        let mut s = String::new();
        for d in &h.dns {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::invalid(format!("invalid DNS server {d:?}")));
            }
            s.push_str(&format!("nameserver {d}\n"));
        }
        if !h.dns_search.is_empty() {
            s.push_str(&format!("search {}\n", h.dns_search.join(" ")));
        }
        if !h.dns_options.is_empty() {
            s.push_str(&format!("options {}\n", h.dns_options.join(" ")));
        }
        Some(s)
    };
    let stop_timeout = match c.stop_timeout {
        None => None,
        Some(t) if t < 0 => Some(FOREVER_SECS),
        Some(t) => Some(t as u64),
    };
    Ok(ContainerConfig {
        name,
        image: c.image.clone(),
        image_id: image.image_id,
        lower_dirs: image.lower_dirs,
        image_config: image.defaults,
        cmd: Some(c.cmd.clone()).filter(|v| !v.is_empty()),
        entrypoint,
        env: c.env.clone(),
        working_dir: Some(c.working_dir.clone()).filter(|w| !w.is_empty()),
        user: Some(c.user.clone()).filter(|u| !u.is_empty()),
        hostname: Some(c.hostname.clone()).filter(|v| !v.is_empty()),
        domainname: Some(c.domainname.clone()).filter(|v| !v.is_empty()),
        mounts,
        resources,
        restart_policy,
        healthcheck: c.healthcheck.as_ref().map(health_from_wire).transpose()?,
        stop_signal: Some(c.stop_signal.clone()).filter(|v| !v.is_empty()),
        stop_timeout,
        read_only: h.readonly_rootfs,
        cap_add: h.cap_add.clone(),
        cap_drop: h.cap_drop.clone(),
        labels: c.labels.clone(),
        network,
        extra_hosts: h.extra_hosts.clone(),
        hosts_file: None,
        addresses: Vec::new(),
        resolv_conf,
        files: Vec::new(),
        auto_remove: h.auto_remove,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> ContainerCreateRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn converts_a_docker_run_request() {
        let r = req(r#"{
            "Image": "busybox", "Cmd": ["sleep", "10"], "Env": ["A=1"], "Hostname": "h1",
            "Entrypoint": [""], "Volumes": {"/anon": {}}, "StopTimeout": 3,
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000, "Retries": 2},
            "HostConfig": {
                "Binds": ["/tmp:/host:ro", "named:/named"],
                "Tmpfs": {"/run": "size=1m"},
                "Memory": 67108864, "CpuQuota": 50000, "CpuPeriod": 100000, "PidsLimit": 10,
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
                "CapAdd": ["NET_ADMIN"], "ReadonlyRootfs": true, "Dns": ["192.0.2.53"],
                "NetworkMode": "host",
                "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024}}]
            }
        }"#);
        let c = from_create_request(&r, Some("/web"), ResolvedImage::default()).unwrap();
        assert_eq!(c.name.as_deref(), Some("web"));
        assert_eq!(c.entrypoint, Some(vec![]));
        assert_eq!(c.cmd, Some(vec!["sleep".to_string(), "10".to_string()]));
        assert_eq!(c.mounts.len(), 5);
        assert!(c.mounts[0].read_only);
        assert_eq!(c.mounts[1].kind, MountKind::Volume);
        assert_eq!(c.resources.nano_cpus, 500_000_000);
        assert_eq!(c.resources.pids_limit, 10);
        assert_eq!(
            c.restart_policy,
            RestartPolicy::OnFailure { max_retries: 2 }
        );
        assert_eq!(c.network, NetworkMode::Host);
        assert_eq!(c.resolv_conf.as_deref(), Some("nameserver 192.0.2.53\n"));
        assert_eq!(c.healthcheck.unwrap().retries, 2);
        assert_eq!(c.stop_timeout, Some(3));
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for body in [
            r#"{"Image":"b","Tty":true}"#,
            r#"{"Image":"b","HostConfig":{"Privileged":true}}"#,
            r#"{"Image":"b","HostConfig":{"PidMode":"host"}}"#,
            r#"{"Image":"b","HostConfig":{"Binds":["relative:dir"]}}"#,
            r#"{"Image":"b","HostConfig":{"Dns":["not-an-ip"]}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#,
        ] {
            assert!(
                from_create_request(&req(body), None, ResolvedImage::default()).is_err(),
                "{body}"
            );
        }
    }
}
