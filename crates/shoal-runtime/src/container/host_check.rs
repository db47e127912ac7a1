//! Checks of the host that turn an obscure failure at the first container start into a clear
//! error when the runtime opens: the OCI runtime binary is there, and the cgroup layout is one
//! that runtime can drive.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Only the unified (v2) hierarchy, at /sys/fs/cgroup.
    Unified,
    /// v1 controllers, with a v2 hierarchy beside them (`/sys/fs/cgroup/unified`) holding
    /// these controllers.
    Hybrid { v2_controllers: Vec<String> },
    /// Only v1 controllers.
    Legacy,
}

/// The filesystem type mounted at `point`, from a `/proc/self/mounts` text.
fn fs_type_at<'a>(mounts: &'a str, point: &str) -> Option<&'a str> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mp, ty) = (f.next()?, f.next()?, f.next()?);
            Some((mp, ty))
        })
        .filter(|(mp, _)| *mp == point)
        .map(|(_, ty)| ty)
        .next_back()
}

/// The layout described by a mounts table (and, in hybrid mode, the v2 controllers file).
pub fn layout_from(mounts: &str, unified_controllers: Option<&str>) -> CgroupLayout {
    if fs_type_at(mounts, "/sys/fs/cgroup") == Some("cgroup2") {
        return CgroupLayout::Unified;
    }
    if fs_type_at(mounts, "/sys/fs/cgroup/unified") == Some("cgroup2") {
        return CgroupLayout::Hybrid {
            v2_controllers: unified_controllers
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        };
    }
    CgroupLayout::Legacy
}

/// This host's cgroup layout.
pub fn cgroup_layout() -> CgroupLayout {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let ctl = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").ok();
    layout_from(&mounts, ctl.as_deref())
}

/// A binary as found on `PATH` (or the path given, if it is a file).
pub fn find_binary(bin: &str) -> Option<PathBuf> {
    if bin.contains('/') {
        return Path::new(bin).is_file().then(|| PathBuf::from(bin));
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|c| c.is_file())
    })
}

fn is_crun(bin: &str) -> bool {
    Path::new(bin)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("crun"))
}

/// Refuses a runtime that cannot work here, naming what is missing.
pub fn check_runtime(bin: &str, layout: &CgroupLayout) -> Result<()> {
    if find_binary(bin).is_none() {
        return Err(Error::invalid(format!(
            "OCI runtime {bin:?} not found on PATH (install the runc or crun package)"
        )));
    }
    if let CgroupLayout::Hybrid { v2_controllers } = layout
        && is_crun(bin)
        && !v2_controllers.is_empty()
    {
        // crun refuses hybrid hosts whose v2 hierarchy holds controllers ("cgroups in hybrid
        // mode not supported, drop all controllers from cgroupv2"); runc drives v1 there.
        return Err(Error::invalid(format!(
            "crun cannot run containers on this host: cgroups are in hybrid mode and the v2 \
             hierarchy at /sys/fs/cgroup/unified holds controllers ({}); use --runtime runc, \
             or boot with a unified (v2-only) or pure v1 cgroup layout",
            v2_controllers.join(" ")
        )));
    }
    Ok(())
}

/// On a unified (v2) host, the controllers a container's limits need must be available at the
/// root (on hybrid hosts they can be bound to v1 and so missing from v2).
pub fn check_limits(
    layout: &CgroupLayout,
    root_controllers: &str,
    memory: bool,
    cpu: bool,
    pids: bool,
) -> Result<()> {
    if *layout != CgroupLayout::Unified {
        return Ok(());
    }
    let have: Vec<&str> = root_controllers.split_whitespace().collect();
    let missing: Vec<&str> = [("memory", memory), ("cpu", cpu), ("pids", pids)]
        .into_iter()
        .filter(|(c, wanted)| *wanted && !have.contains(c))
        .map(|(c, _)| c)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "cgroup v2 controller(s) {} not available on this host (the v2 hierarchy has: {}), so \
         the requested limits cannot be enforced",
        missing.join(", "),
        if have.is_empty() {
            "none".to_string()
        } else {
            have.join(" ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
        cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";

    #[test]
    fn layouts() {
        assert_eq!(
            layout_from("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", None),
            CgroupLayout::Unified
        );
        assert_eq!(
            layout_from(HYBRID, Some("hugetlb\n")),
            CgroupLayout::Hybrid {
                v2_controllers: vec!["hugetlb".into()]
            }
        );
        assert_eq!(
            layout_from("cgroup /sys/fs/cgroup/memory cgroup rw 0 0\n", None),
            CgroupLayout::Legacy
        );
    }

    #[test]
    fn crun_on_hybrid_with_controllers_is_refused() {
        let hybrid = layout_from(HYBRID, Some("hugetlb"));
        let empty = layout_from(HYBRID, Some(""));
        // Only meaningful where crun is installed; the message must name the way out.
        if find_binary("crun").is_some() {
            let e = check_runtime("crun", &hybrid).unwrap_err().to_string();
            assert!(e.contains("--runtime runc") && e.contains("hugetlb"), "{e}");
            assert!(check_runtime("crun", &empty).is_ok());
        }
        let e = check_limits(&CgroupLayout::Unified, "hugetlb", true, false, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory, pids") && e.contains("hugetlb"), "{e}");
        assert!(check_limits(&CgroupLayout::Unified, "cpu memory pids", true, true, true).is_ok());
        assert!(check_limits(&hybrid, "", true, true, true).is_ok());
        let e = check_runtime("no-such-runtime-xyz", &CgroupLayout::Unified)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found"), "{e}");
    }
}
