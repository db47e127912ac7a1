//! The OCI runtime spec (`config.json`) of a container: namespaces, Docker's default
//! capabilities, masked/readonly paths, seccomp, cgroup limits and mounts.

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use super::config::{NetworkMode, Resources};
use super::error::{Error, Result};
use super::seccomp;
use super::users::ResolvedUser;

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Parses a capability name (`NET_ADMIN`, `CAP_NET_ADMIN`, `net_admin`).
pub fn parse_capability(name: &str) -> Result<Capability> {
    let up = name.trim().to_ascii_uppercase();
    let bare = up.strip_prefix("CAP_").unwrap_or(&up);
    Capability::from_str(bare).map_err(|_| Error::invalid(format!("unknown capability {name:?}")))
}

/// Docker's rule: start from the defaults, add `cap_add`, remove `cap_drop`; `ALL` works in both.
pub fn capability_set(cap_add: &[String], cap_drop: &[String]) -> Result<HashSet<Capability>> {
    let all = || -> HashSet<Capability> { ALL_CAPS.iter().copied().collect() };
    let mut caps: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
    let drop_all = cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
    if drop_all {
        caps.clear();
    } else {
        for c in cap_drop {
            caps.remove(&parse_capability(c)?);
        }
    }
    for c in cap_add {
        if c.eq_ignore_ascii_case("ALL") {
            caps = all();
        } else {
            caps.insert(parse_capability(c)?);
        }
    }
    Ok(caps)
}

const ALL_CAPS: &[Capability] = &[
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

/// Resolved inputs of one container start.
pub struct BundleSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: ResolvedUser,
    pub hostname: String,
    pub domainname: Option<String>,
    pub read_only: bool,
    pub caps: HashSet<Capability>,
    pub network: NetworkMode,
    pub cgroups_path: String,
    pub resources: Resources,
    /// Mounts after the defaults (etc files, binds, volumes, tmpfs, secrets).
    pub mounts: Vec<Mount>,
}

fn oci_err(e: oci_spec::OciSpecError) -> Error {
    Error::Runtime(format!("building the OCI spec: {e}"))
}

pub fn mount(dst: &str, typ: &str, src: &str, opts: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(PathBuf::from(dst))
        .typ(typ)
        .source(PathBuf::from(src))
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(oci_err)
}

fn default_mounts() -> Result<Vec<Mount>> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        )?,
    ])
}

/// Builds the spec. Root is `rootfs` inside the bundle dir.
pub fn build_spec(b: &BundleSpec) -> Result<Spec> {
    let caps = b.caps.clone();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        // Explicitly empty: the builder's defaults would grant inheritable/ambient caps.
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(oci_err)?;
    let user = UserBuilder::default()
        .uid(b.user.uid)
        .gid(b.user.gid)
        .additional_gids(b.user.additional_gids.clone())
        .build()
        .map_err(oci_err)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(b.args.clone())
        .env(b.env.clone())
        .cwd(PathBuf::from(&b.cwd))
        .capabilities(capabilities)
        .no_new_privileges(false)
        .oom_score_adj(0)
        .build()
        .map_err(oci_err)?;

    let mut namespaces = Vec::new();
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(t)
                .build()
                .map_err(oci_err)?,
        );
    }
    match &b.network {
        NetworkMode::Isolated => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()
                .map_err(oci_err)?,
        ),
        NetworkMode::Netns(path) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()
                .map_err(oci_err)?,
        ),
        NetworkMode::Host => {}
    }

    let mut resources = LinuxResourcesBuilder::default().devices(vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(oci_err)?,
    ]);
    if b.resources.memory > 0 {
        let limit = i64::try_from(b.resources.memory)
            .map_err(|_| Error::invalid("memory limit too large"))?;
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(oci_err)?,
        );
    }
    if b.resources.nano_cpus > 0 {
        let period: u64 = 100_000;
        let quota = (b.resources.nano_cpus as u128 * period as u128 / 1_000_000_000) as i64;
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota(quota.max(1000))
                .build()
                .map_err(oci_err)?,
        );
    }
    if b.resources.pids_limit > 0 {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(b.resources.pids_limit)
                .build()
                .map_err(oci_err)?,
        );
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(&b.cgroups_path))
        .resources(resources.build().map_err(oci_err)?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .seccomp(seccomp::default_profile(&caps)?)
        .build()
        .map_err(oci_err)?;

    let mut mounts = default_mounts()?;
    mounts.extend(b.mounts.iter().cloned());
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(PathBuf::from("rootfs"))
                .readonly(b.read_only)
                .build()
                .map_err(oci_err)?,
        )
        .hostname(b.hostname.clone())
        .mounts(mounts)
        .process(process)
        .linux(linux);
    if let Some(d) = &b.domainname {
        spec = spec.domainname(d.clone());
    }
    spec.build().map_err(oci_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_add_drop_all() {
        let c = capability_set(&["NET_ADMIN".into()], &["cap_chown".into()]).unwrap();
        assert!(c.contains(&Capability::NetAdmin));
        assert!(!c.contains(&Capability::Chown));
        assert!(c.contains(&Capability::Kill));
        let c = capability_set(&["KILL".into()], &["ALL".into()]).unwrap();
        assert_eq!(c.len(), 1);
        assert!(capability_set(&["BOGUS".into()], &[]).is_err());
        let c = capability_set(&["ALL".into()], &[]).unwrap();
        assert!(c.contains(&Capability::SysAdmin));
    }

    #[test]
    fn spec_has_limits_namespaces_and_seccomp() {
        let b = BundleSpec {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: ResolvedUser {
                uid: 1,
                gid: 2,
                additional_gids: vec![3],
                home: None,
            },
            hostname: "h".into(),
            domainname: None,
            read_only: true,
            caps: capability_set(&[], &[]).unwrap(),
            network: NetworkMode::Isolated,
            cgroups_path: "/shoal/abc".into(),
            resources: Resources {
                memory: 64 << 20,
                nano_cpus: 500_000_000,
                pids_limit: 50,
            },
            mounts: vec![],
        };
        let s = build_spec(&b).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 50);
        assert_eq!(v["linux"]["namespaces"].as_array().unwrap().len(), 5);
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["user"]["uid"], 1);
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    }
}
