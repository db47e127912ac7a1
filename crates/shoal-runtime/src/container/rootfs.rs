//! Host-side filesystem work for a container: the overlay rootfs, the generated
//! /etc/hosts, /etc/hostname, /etc/resolv.conf, and the secrets tmpfs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::error::{Error, IoContext, Result};

/// Whether `path` is a mount point (per /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    text.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp) == want)
    })
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts overlayfs: `lower` (top-most first) under a per-container upper/work dir.
pub fn mount_overlay(lower: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    if lower.is_empty() {
        return Err(Error::invalid(
            "the image has no layers (no overlay lower dirs)",
        ));
    }
    for l in lower {
        if !l.is_dir() {
            return Err(Error::invalid(format!(
                "image layer dir {} does not exist",
                l.display()
            )));
        }
    }
    for d in [upper, work, target] {
        std::fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
    }
    if is_mounted(target) {
        return Ok(());
    }
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    if data.len() > 4000 {
        return Err(Error::Runtime(format!(
            "overlay mount options too long ({} bytes, {} layers)",
            data.len(),
            lower.len()
        )));
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| Error::Runtime(format!("mounting overlay at {}: {e}", target.display())))
}

/// Unmounts `path` if mounted (lazily when busy).
pub fn unmount(path: &Path) -> Result<()> {
    if !is_mounted(path) {
        return Ok(());
    }
    match nix::mount::umount2(path, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => nix::mount::umount2(path, MntFlags::MNT_DETACH)
            .map_err(|e| Error::Runtime(format!("unmounting {}: {e}", path.display()))),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::Runtime(format!(
            "unmounting {}: {e}",
            path.display()
        ))),
    }
}

/// Mounts a small tmpfs (mode 0700) for secrets; its content lives only in memory.
pub fn mount_secrets_tmpfs(target: &Path) -> Result<()> {
    std::fs::create_dir_all(target).ctx(|| format!("creating {}", target.display()))?;
    if is_mounted(target) {
        return Ok(());
    }
    nix::mount::mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700,size=16m"),
    )
    .map_err(|e| {
        Error::Runtime(format!(
            "mounting secrets tmpfs at {}: {e}",
            target.display()
        ))
    })
}

/// Writes a file with owner and mode (for secrets/configs).
pub fn write_owned_file(path: &Path, data: &[u8], uid: u32, gid: u32, mode: u32) -> Result<()> {
    std::fs::write(path, data).ctx(|| format!("writing {}", path.display()))?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .ctx(|| format!("chown {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .ctx(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// The generated /etc/hosts.
pub fn hosts_file(hostname: &str, own_ips: &[String], extra: &[(String, String)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (host, ip) in extra {
        s.push_str(&format!("{ip}\t{host}\n"));
    }
    for ip in own_ips {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// The host's resolv.conf without loopback nameservers (they mean nothing in a container's
/// netns); falls back to no nameserver at all rather than inventing a public one.
pub fn default_resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if ns.starts_with("127.") || ns == "::1" {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Recursively copies `src` into `dst` keeping owners and modes (volume copy-up).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(src).follow_links(false) {
        let entry = entry.map_err(|e| Error::Runtime(format!("walking {}: {e}", src.display())))?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .map_err(|e| Error::Runtime(format!("copy-up: {e}")))?;
        let to = dst.join(rel);
        let md = entry
            .path()
            .symlink_metadata()
            .ctx(|| format!("stat {}", entry.path().display()))?;
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&to).ctx(|| format!("mkdir {}", to.display()))?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(entry.path()).ctx(|| "readlink".to_string())?;
            let _ = std::fs::remove_file(&to);
            std::os::unix::fs::symlink(t, &to).ctx(|| format!("symlink {}", to.display()))?;
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &to).ctx(|| format!("copy to {}", to.display()))?;
        } else {
            continue;
        }
        let _ = std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()));
        if !ft.is_symlink() {
            let _ =
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode() & 0o7777));
        }
    }
    Ok(())
}

/// Joins a container path onto the rootfs without letting `..` or absolute symlinks in the
/// last component escape it (good enough for the copy-up source check).
pub fn in_rootfs(rootfs: &Path, ctr_path: &str) -> PathBuf {
    let mut p = rootfs.to_path_buf();
    for comp in ctr_path.split('/') {
        match comp {
            "" | "." | ".." => {}
            c => p.push(c),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn hosts_content() {
        let h = hosts_file(
            "web",
            &["10.0.0.2".into()],
            &[("db".into(), "10.0.0.3".into())],
        );
        assert!(h.contains("127.0.0.1\tlocalhost"));
        assert!(h.contains("10.0.0.3\tdb"));
        assert!(h.ends_with("10.0.0.2\tweb\n"));
    }

    #[test]
    fn rootfs_join_stays_inside() {
        let p = in_rootfs(Path::new("/r"), "/../etc/./x");
        assert_eq!(p, PathBuf::from("/r/etc/x"));
    }
}
