//! The default seccomp profile: allow by default, refuse (EPERM) the syscalls Docker's
//! profile keeps from unprivileged containers, unless the matching capability was added.
//! A deny list rather than Docker's long allow list: new, harmless syscalls keep working on
//! old profiles, and the dangerous ones are the same set.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use super::error::{Error, Result};

/// (syscalls, capability that lifts the restriction)
const DENIED: &[(&[&str], Option<Capability>)] = &[
    (&["acct"], Some(Capability::SysPacct)),
    (
        &[
            "bpf",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        Some(Capability::SysAdmin),
    ),
    (&["reboot"], Some(Capability::SysBoot)),
    (
        &["delete_module", "finit_module", "init_module"],
        Some(Capability::SysModule),
    ),
    (
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        Some(Capability::SysPtrace),
    ),
    (&["iopl", "ioperm"], Some(Capability::SysRawio)),
    (
        &["clock_adjtime", "clock_settime", "settimeofday", "stime"],
        Some(Capability::SysTime),
    ),
    (
        &["get_mempolicy", "mbind", "move_pages", "set_mempolicy"],
        Some(Capability::SysNice),
    ),
    (
        &[
            "add_key",
            "create_module",
            "get_kernel_syms",
            "kexec_file_load",
            "kexec_load",
            "keyctl",
            "nfsservctl",
            "open_by_handle_at",
            "query_module",
            "request_key",
            "swapoff",
            "swapon",
            "_sysctl",
            "sysfs",
            "uselib",
            "userfaultfd",
            "ustat",
            "vm86",
            "vm86old",
        ],
        None,
    ),
];

/// clone() flags that create namespaces (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET).
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

/// Builds the profile for a container holding `caps`.
pub fn default_profile(caps: &HashSet<Capability>) -> Result<LinuxSeccomp> {
    let err = |e: oci_spec::OciSpecError| Error::Runtime(format!("building seccomp profile: {e}"));
    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (list, cap) in DENIED {
        if cap.is_some_and(|c| caps.contains(&c)) {
            continue;
        }
        names.extend(list.iter().map(|s| s.to_string()));
    }
    let eperm = libc::EPERM as u32;
    if !names.is_empty() {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(names)
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(eperm)
                .build()
                .map_err(err)?,
        );
    }
    if !caps.contains(&Capability::SysAdmin) {
        // New namespaces through clone() need CAP_SYS_ADMIN, as in Docker's profile:
        // one masked compare per namespace flag refuses a clone() that sets any of them.
        for bit in 0..32u64 {
            let flag = 1u64 << bit;
            if CLONE_NS_FLAGS & flag == 0 {
                continue;
            }
            syscalls.push(
                LinuxSyscallBuilder::default()
                    .names(vec!["clone".to_string()])
                    .action(LinuxSeccompAction::ScmpActErrno)
                    .errno_ret(eperm)
                    .args(vec![
                        LinuxSeccompArgBuilder::default()
                            .index(0usize)
                            .value(flag)
                            .value_two(flag)
                            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                            .build()
                            .map_err(err)?,
                    ])
                    .build()
                    .map_err(err)?,
            );
        }
    }
    // glibc falls back to clone() when clone3 says ENOSYS; EPERM would break threads.
    if !caps.contains(&Capability::SysAdmin) {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::ENOSYS as u32)
                .build()
                .map_err(err)?,
        );
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .syscalls(syscalls)
        .build()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn caps_lift_restrictions() {
        let p = default_profile(&HashSet::new()).unwrap();
        let d = denied(&p);
        assert!(d.contains(&"mount".to_string()));
        assert!(d.contains(&"ptrace".to_string()));
        assert!(d.contains(&"clone3".to_string()));
        let caps: HashSet<Capability> = [Capability::SysPtrace].into_iter().collect();
        let d = denied(&default_profile(&caps).unwrap());
        assert!(!d.contains(&"ptrace".to_string()));
        assert!(d.contains(&"mount".to_string()));
    }
}
