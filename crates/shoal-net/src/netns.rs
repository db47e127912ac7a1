//! Network namespaces: create and delete named ones (as `ip netns` does) and run code inside one.
//!
//! A network namespace is a per-thread attribute, so code "inside" a namespace runs on a
//! dedicated OS thread that called `setns()`. Sockets keep the namespace they were created in,
//! so a socket made on such a thread can be handed back and used from anywhere.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::{NetError, Result};

/// Where named namespaces are bind-mounted (the iproute2 convention, so `ip netns` sees them).
pub const NETNS_DIR: &str = "/run/netns";

/// Check a namespace name: one path component, printable, not too long.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || name == "."
        || name == ".."
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(NetError::Invalid(format!("bad netns name {name:?}")));
    }
    Ok(())
}

/// The path of a named namespace.
pub fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Move the calling thread into the network namespace at `path`.
pub fn enter(path: &Path) -> Result<()> {
    let f =
        File::open(path).map_err(|e| NetError::Netns(format!("open {}: {e}", path.display())))?;
    nix::sched::setns(f.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| NetError::Netns(format!("setns {}: {e}", path.display())))
}

/// Run `f` on a fresh OS thread inside the namespace at `path` and wait for it.
/// Blocks the caller; from async code wrap it in `spawn_blocking`.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetError::Netns(format!("thread in {} panicked", path.display())))?
    })
}

/// Spawn a long-running thread inside the namespace at `path`.
pub fn spawn_in<T, F>(path: &Path, f: F) -> std::thread::JoinHandle<Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        enter(&path)?;
        Ok(f())
    })
}

/// Create the named namespace `name` under [`NETNS_DIR`]. Fails if it exists.
pub fn create(name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    let dir = Path::new(NETNS_DIR);
    std::fs::create_dir_all(dir)?;
    let path = path_of(name);
    // create_new: refuse to reuse (and later delete) somebody else's namespace.
    File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| NetError::Netns(format!("create {}: {e}", path.display())))?;
    let p2 = path.clone();
    let res = std::thread::spawn(move || -> Result<()> {
        // unshare on this thread only: the rest of the process keeps its namespace.
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::Netns(format!("unshare: {e}")))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &p2,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| NetError::Netns(format!("bind mount {}: {e}", p2.display())))
    })
    .join()
    .map_err(|_| NetError::Netns("netns creation thread panicked".into()))
    .and_then(|r| r);
    if let Err(e) = res {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Delete the named namespace; succeeds if it is already gone.
pub fn delete(name: &str) -> Result<()> {
    validate_name(name)?;
    let path = path_of(name);
    if !path.exists() {
        return Ok(());
    }
    // Detach: the namespace lives on while processes or sockets still use it, then goes.
    let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
    std::fs::remove_file(&path)
        .map_err(|e| NetError::Netns(format!("remove {}: {e}", path.display())))
}

/// A named namespace deleted on drop (tests, the lab, and per-overlay namespaces).
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
    path: PathBuf,
}

impl NetnsGuard {
    /// Create the namespace and own it.
    pub fn create(name: &str) -> Result<NetnsGuard> {
        let path = create(name)?;
        Ok(NetnsGuard {
            name: name.to_string(),
            path,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path under /run/netns.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` inside it (see [`run_in`]).
    pub fn run<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> Result<T> {
        run_in(&self.path, f)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = delete(&self.name) {
            tracing::warn!("deleting netns {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("shoal-1-ov").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("../x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("..").is_err());
    }
}
