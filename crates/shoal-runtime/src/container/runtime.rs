//! The container runtime: lifecycle (create/start/stop/kill/wait/remove), supervision of
//! running containers through their monitors, restart policies, restore after a daemon
//! restart, exec, logs, top and volumes.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use oci_spec::runtime::Mount;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::{
    ContainerConfig, DEFAULT_STOP_TIMEOUT, MountKind, NetworkMode, RestartPolicy,
    validate_container_name,
};
use super::error::{Error, IoContext, Result};
use super::health::{self, ResolvedHealth};
use super::logs::{self, LogOptions, LogStreamBox};
use super::rootfs;
use super::runc::RuncCli;
use super::signal::parse_signal;
use super::spec::{self, BundleSpec};
use super::state::{
    ContainerInfo, ContainerState, ContainerSummary, Health, HealthStatus, Status, status_text,
};
use super::top::{self, TopOutput};
use super::users::resolve_user;
use super::volumes::{Volume, VolumeStore, dir_is_empty};

#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// `runc` or `crun` (name on PATH or a path).
    pub runtime_bin: String,
    /// cgroup parent for all containers of this daemon, e.g. `shoal` or `shoal-lab1`.
    pub cgroup_parent: String,
    /// Path of the `shoal-monitor` binary.
    pub monitor_bin: PathBuf,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return at once if not running, else at the next exit (Docker's default).
    #[default]
    NotRunning,
    /// Wait for the next exit even if not running now.
    NextExit,
    /// Wait until the container is removed.
    Removed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub oom_killed: bool,
    /// Start failure or monitor error, if any.
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RemoveOptions {
    /// Kill a running container first.
    pub force: bool,
    /// Also remove the container's anonymous volumes.
    pub volumes: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    /// Added to the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// Allocate a terminal (runc proxies it over the child's stdio).
    pub tty: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestoreReport {
    /// Running containers whose monitors were found alive.
    pub reattached: Vec<String>,
    /// Containers found dead and marked exited with their recorded exit code.
    pub reconciled: Vec<String>,
}

/// The on-disk record of a container (everything but its changing state).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    id: String,
    name: String,
    created: DateTime<Utc>,
    config: ContainerConfig,
}

/// What the monitor writes to `<dir>/exit`.
#[derive(Clone, Debug, Deserialize)]
struct ExitRecord {
    exit_code: i32,
    #[serde(default)]
    oom_killed: bool,
    #[serde(default)]
    finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    error: Option<String>,
}

pub(crate) struct Ctr {
    pub(crate) id: String,
    name: String,
    created: DateTime<Utc>,
    pub(crate) config: ContainerConfig,
    pub(crate) dir: PathBuf,
    pub(crate) run_dir: PathBuf,
    state: Mutex<ContainerState>,
    changed: watch::Sender<u64>,
    /// Serializes start/stop/remove.
    op: tokio::sync::Mutex<()>,
    /// Bumped by every start, stop of a restarting container and remove: tasks of an older
    /// run see it and quit.
    pub(crate) epoch: AtomicU64,
    exits: AtomicU64,
    removed: AtomicBool,
    /// Consecutive quick restarts, for the policy's back-off.
    quick_restarts: AtomicU64,
}

impl Ctr {
    pub(crate) fn state(&self) -> ContainerState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Applies `f` to the state, persists it and wakes watchers.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ContainerState)) {
        let snapshot = match self.state.lock() {
            Ok(mut st) => {
                f(&mut st);
                st.clone()
            }
            Err(_) => return,
        };
        if !self.removed.load(Ordering::SeqCst)
            && let Err(e) = write_json_atomic(&self.dir.join("state.json"), &snapshot)
        {
            tracing::warn!(id = %self.id, "saving container state: {e}");
        }
        self.changed.send_modify(|v| *v += 1);
    }

    fn stop_signal(&self) -> i32 {
        self.config
            .stop_signal
            .as_deref()
            .or(self.config.image_config.stop_signal.as_deref())
            .and_then(|s| parse_signal(s).ok())
            .unwrap_or(libc::SIGTERM)
    }

    fn hostname(&self) -> String {
        self.config
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| self.id[..12].to_string())
    }

    pub(crate) fn rootfs(&self) -> PathBuf {
        self.run_dir.join("rootfs")
    }

    pub(crate) fn healthcheck(&self) -> Option<ResolvedHealth> {
        health::resolve(
            self.config.healthcheck.as_ref(),
            self.config.image_config.healthcheck.as_ref(),
        )
    }
}

pub(crate) struct Inner {
    root: PathBuf,
    run_root: PathBuf,
    opts: RuntimeOptions,
    pub(crate) runc: RuncCli,
    containers: Mutex<BTreeMap<String, Arc<Ctr>>>,
    volumes: VolumeStore,
    /// Makes name checks and inserts of concurrent creates atomic.
    create_lock: Mutex<()>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) execs: super::exec::ExecTable,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Supervision tasks stop; containers and monitors keep running.
        self.shutdown.cancel();
    }
}

/// Handle to the runtime; cheap to clone. Dropping the last handle stops supervision but
/// leaves every container running.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

fn write_json_atomic<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let data =
        serde_json::to_vec_pretty(v).map_err(|e| Error::Runtime(format!("encoding JSON: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, data).ctx(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("renaming to {}", path.display()))
}

fn new_id() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nimble", "proud", "quiet", "sharp", "swift", "witty",
];
const NOUNS: &[&str] = &[
    "anchovy",
    "barracuda",
    "carp",
    "dory",
    "eel",
    "flounder",
    "grouper",
    "herring",
    "koi",
    "marlin",
    "perch",
    "salmon",
    "sardine",
    "tetra",
    "trout",
    "wrasse",
];

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p: &i32| *p > 0)
}

/// Whether `pid` is the monitor of the container whose dir is `dir` (guards against pid reuse).
fn monitor_alive(pid: i32, dir: &Path) -> bool {
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = dir.display().to_string();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie has exited already.
    let zombie = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        .unwrap_or(false);
    !zombie && cmd.split(|b| *b == 0).any(|a| a == want.as_bytes())
}

/// Waits until process `pid` (not necessarily our child) exits; false when cancelled.
async fn wait_pid_exit(pid: i32, dir: PathBuf, token: &CancellationToken) -> bool {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: the AsyncFd owns the pidfd and is the only user of it.
        if let Ok(afd) = unsafe { tokio::io::unix::AsyncFd::register(owned) } {
            // Re-check after opening: the pid may have been reused before pidfd_open.
            if !monitor_alive(pid, &dir) {
                return true;
            }
            return tokio::select! {
                r = afd.readable() => { drop(r); true }
                _ = token.cancelled() => false,
            };
        }
    }
    // No pidfd (old kernel or already gone): poll /proc.
    loop {
        if !monitor_alive(pid, &dir) {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = token.cancelled() => return false,
        }
    }
}

/// Removes `<cgroup_parent>` from every cgroup hierarchy (v1 controllers and v2), if empty.
/// For test teardown and daemon uninstall; containers' own cgroups go with `runc delete`.
pub fn remove_cgroup_parent(parent: &str) {
    let rel = parent.trim_matches('/');
    if rel.is_empty() {
        return;
    }
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            if e.path().is_dir() {
                roots.push(e.path());
            }
        }
    }
    for r in roots {
        let p = r.join(rel);
        if p.is_dir() {
            // Children first (bounded by depth of the walk).
            let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(&p)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_dir())
                .map(|e| e.into_path())
                .collect();
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                let _ = std::fs::remove_dir(&d);
            }
        }
    }
}

impl Runtime {
    /// Opens (creating if needed) the runtime's dirs and loads known containers. Call
    /// [`Runtime::restore`] next to re-attach running ones.
    pub fn open(root: PathBuf, run_root: PathBuf, opts: RuntimeOptions) -> Result<Runtime> {
        if opts.cgroup_parent.trim_matches('/').is_empty()
            || opts.cgroup_parent.contains("..")
            || opts.cgroup_parent.contains(char::is_whitespace)
        {
            return Err(Error::invalid(format!(
                "invalid cgroup parent {:?}",
                opts.cgroup_parent
            )));
        }
        super::host_check::check_runtime(&opts.runtime_bin, &super::host_check::cgroup_layout())?;
        for d in [&root, &run_root] {
            std::fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
        }
        let runc_root = run_root.join("runc");
        std::fs::create_dir_all(&runc_root).ctx(|| format!("creating {}", runc_root.display()))?;
        let volumes = VolumeStore::open(root.join("volumes"))?;
        let mut containers = BTreeMap::new();
        let rd = std::fs::read_dir(&root).ctx(|| format!("reading {}", root.display()))?;
        for e in rd.flatten() {
            let Some(id) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_container_id(&id) {
                continue;
            }
            let dir = e.path();
            let stored: Stored = match std::fs::read(dir.join("container.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                Some(s) => s,
                None => {
                    tracing::warn!("skipping {}: no readable container.json", dir.display());
                    continue;
                }
            };
            let state: ContainerState = std::fs::read(dir.join("state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let ctr = Arc::new(Ctr {
                id: id.clone(),
                name: stored.name,
                created: stored.created,
                config: stored.config,
                run_dir: run_root.join(&id),
                dir,
                state: Mutex::new(state),
                changed: watch::channel(0).0,
                op: tokio::sync::Mutex::new(()),
                epoch: AtomicU64::new(0),
                exits: AtomicU64::new(0),
                removed: AtomicBool::new(false),
                quick_restarts: AtomicU64::new(0),
            });
            containers.insert(id, ctr);
        }
        let runc = RuncCli {
            bin: opts.runtime_bin.clone(),
            root: runc_root,
        };
        Ok(Runtime {
            inner: Arc::new(Inner {
                root,
                run_root,
                opts,
                runc,
                containers: Mutex::new(containers),
                volumes,
                create_lock: Mutex::new(()),
                shutdown: CancellationToken::new(),
                execs: Default::default(),
            }),
        })
    }

    fn all(&self) -> Vec<Arc<Ctr>> {
        self.inner
            .containers
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Finds a container by full id, name or unique id prefix.
    pub(crate) fn lookup(&self, key: &str) -> Result<Arc<Ctr>> {
        let key = key.strip_prefix('/').unwrap_or(key);
        let map = self
            .inner
            .containers
            .lock()
            .map_err(|_| Error::Runtime("container table poisoned".into()))?;
        if let Some(c) = map.get(key) {
            return Ok(c.clone());
        }
        if let Some(c) = map.values().find(|c| c.name == key) {
            return Ok(c.clone());
        }
        if !key.is_empty() {
            let hits: Vec<&Arc<Ctr>> = map.values().filter(|c| c.id.starts_with(key)).collect();
            match hits.len() {
                1 => return Ok(hits[0].clone()),
                n if n > 1 => {
                    return Err(Error::invalid(format!(
                        "multiple containers match prefix {key:?}"
                    )));
                }
                _ => {}
            }
        }
        Err(Error::NotFound(format!("no such container: {key}")))
    }

    /// Subscribe to state changes of a container (the value is a change counter).
    pub fn subscribe(&self, id: &str) -> Result<watch::Receiver<u64>> {
        Ok(self.lookup(id)?.changed.subscribe())
    }

    pub fn cgroup_path(&self, id: &str) -> String {
        format!(
            "/{}/{}",
            self.inner.opts.cgroup_parent.trim_matches('/'),
            id
        )
    }

    // ----- create -------------------------------------------------------------------

    /// Validates the config and creates the container (not started). Returns its id.
    pub async fn create(&self, mut cfg: ContainerConfig) -> Result<String> {
        let _create = self
            .inner
            .create_lock
            .lock()
            .map_err(|_| Error::Runtime("create lock poisoned".into()))?;
        // Validation first: bad input changes nothing.
        let name = match cfg.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => validate_container_name(n)?,
            None => self.generate_name(),
        };
        if self.lookup(&name).is_ok_and(|c| c.name == name) {
            return Err(Error::Conflict(format!(
                "the container name \"/{name}\" is already in use"
            )));
        }
        if cfg.lower_dirs.is_empty() {
            return Err(Error::invalid(
                "no image layers given (lower_dirs is empty)",
            ));
        }
        if process_args(&cfg).is_empty() {
            return Err(Error::invalid("no command specified"));
        }
        spec::capability_set(&cfg.cap_add, &cfg.cap_drop)?;
        let layout = super::host_check::cgroup_layout();
        if layout == super::host_check::CgroupLayout::Unified {
            let root =
                std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
            super::host_check::check_limits(
                &layout,
                &root,
                cfg.resources.memory > 0,
                cfg.resources.nano_cpus > 0,
                cfg.resources.pids_limit > 0,
            )?;
        }
        if let Some(s) = cfg.stop_signal.as_deref() {
            parse_signal(s)?;
        }
        if let Some(h) = &cfg.hostname
            && (h.len() > 64 || h.contains(|c: char| c.is_whitespace() || c == '/'))
        {
            return Err(Error::invalid(format!("invalid hostname {h:?}")));
        }
        for e in cfg.env.iter().chain(cfg.image_config.env.iter()) {
            if e.is_empty() || e.starts_with('=') || e.contains('\0') {
                return Err(Error::invalid(format!(
                    "invalid environment variable {e:?}"
                )));
            }
        }
        for m in &cfg.mounts {
            if !m.target.starts_with('/') || m.target.contains('\0') {
                return Err(Error::invalid(format!(
                    "mount target {:?} must be an absolute path",
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
                    if !Path::new(src).exists() {
                        return Err(Error::invalid(format!(
                            "bind source path does not exist: {src}"
                        )));
                    }
                }
                MountKind::Volume => {
                    if let Some(n) = &m.source {
                        super::config::validate_volume_name(n)?;
                    }
                }
                MountKind::Tmpfs => {}
            }
        }
        if let Some(h) = health::resolve(
            cfg.healthcheck.as_ref(),
            cfg.image_config.healthcheck.as_ref(),
        ) && h.args.is_empty()
        {
            return Err(Error::invalid("healthcheck test is empty"));
        }
        if let Some(hc) = &cfg.healthcheck {
            health::validate(hc)?;
        }
        if let NetworkMode::Netns(p) = &cfg.network
            && !p.exists()
        {
            return Err(Error::invalid(format!(
                "network namespace {} does not exist",
                p.display()
            )));
        }
        for f in &cfg.files {
            if f.target.is_empty()
                || f.target.contains('\0')
                || f.target.split('/').any(|c| c == "..")
            {
                return Err(Error::invalid(format!(
                    "invalid secret target {:?}",
                    f.target
                )));
            }
        }

        let id = loop {
            let id = new_id();
            if self.lookup(&id).is_err() {
                break id;
            }
        };
        // Volumes: anonymous ones get a generated name; named ones are created on first use.
        let mut made_volumes: Vec<String> = Vec::new();
        for m in cfg
            .mounts
            .iter_mut()
            .filter(|m| m.kind == MountKind::Volume)
        {
            let (vname, anon) = match &m.source {
                Some(n) => (n.clone(), false),
                None => (new_id(), true),
            };
            let existed = self.inner.volumes.inspect(&vname).is_ok();
            if let Err(e) =
                self.inner
                    .volumes
                    .create(&vname, None, BTreeMap::new(), BTreeMap::new(), anon)
            {
                for v in &made_volumes {
                    let _ = self.inner.volumes.remove_unchecked(v);
                }
                return Err(e);
            }
            if !existed {
                made_volumes.push(vname.clone());
            }
            m.source = Some(vname);
        }
        for f in cfg.files.iter_mut() {
            if !f.target.starts_with('/') {
                f.target = format!("/run/secrets/{}", f.target);
            }
        }
        cfg.name = Some(name.clone());

        let dir = self.inner.root.join(&id);
        let run_dir = self.inner.run_root.join(&id);
        let res = self.materialize(&id, &name, &cfg, &dir, &run_dir);
        match res {
            Ok(ctr) => {
                if let Ok(mut m) = self.inner.containers.lock() {
                    m.insert(id.clone(), ctr);
                }
                Ok(id)
            }
            Err(e) => {
                let _ = rootfs::unmount(&run_dir.join("secrets"));
                let _ = std::fs::remove_dir_all(&run_dir);
                let _ = std::fs::remove_dir_all(&dir);
                for v in &made_volumes {
                    let _ = self.inner.volumes.remove_unchecked(v);
                }
                Err(e)
            }
        }
    }

    fn generate_name(&self) -> String {
        let mut rng = rand::thread_rng();
        for _ in 0..64 {
            let a = ADJECTIVES[(rng.next_u32() as usize) % ADJECTIVES.len()];
            let n = NOUNS[(rng.next_u32() as usize) % NOUNS.len()];
            let name = format!("{a}_{n}");
            if self.lookup(&name).is_err() {
                return name;
            }
        }
        format!("shoal_{}", &new_id()[..12])
    }

    fn materialize(
        &self,
        id: &str,
        name: &str,
        cfg: &ContainerConfig,
        dir: &Path,
        run_dir: &Path,
    ) -> Result<Arc<Ctr>> {
        for d in [
            dir.to_path_buf(),
            dir.join("upper"),
            dir.join("work"),
            run_dir.to_path_buf(),
        ] {
            std::fs::create_dir_all(&d).ctx(|| format!("creating {}", d.display()))?;
        }
        if !cfg.files.is_empty() {
            let sdir = run_dir.join("secrets");
            rootfs::mount_secrets_tmpfs(&sdir)?;
            for (i, f) in cfg.files.iter().enumerate() {
                rootfs::write_owned_file(
                    &sdir.join(format!("file-{i}")),
                    &f.data,
                    f.uid,
                    f.gid,
                    f.mode,
                )?;
            }
        }
        let created = Utc::now();
        let stored = Stored {
            id: id.to_string(),
            name: name.to_string(),
            created,
            config: cfg.clone(),
        };
        write_json_atomic(&dir.join("container.json"), &stored)?;
        let state = ContainerState::default();
        write_json_atomic(&dir.join("state.json"), &state)?;
        // Secret data stays only in the tmpfs.
        let mut config = cfg.clone();
        for f in config.files.iter_mut() {
            f.data.clear();
        }
        Ok(Arc::new(Ctr {
            id: id.to_string(),
            name: name.to_string(),
            created,
            config,
            dir: dir.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            state: Mutex::new(state),
            changed: watch::channel(0).0,
            op: tokio::sync::Mutex::new(()),
            epoch: AtomicU64::new(0),
            exits: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            quick_restarts: AtomicU64::new(0),
        }))
    }

    // ----- start --------------------------------------------------------------------

    /// Starts a created or exited container. Starting a running one is a no-op.
    pub async fn start(&self, id: &str) -> Result<()> {
        let ctr = self.lookup(id)?;
        let _g = ctr.op.lock().await;
        ctr.update(|s| s.stopped_by_user = false);
        start_locked(&self.inner, &ctr).await
    }

    // ----- stop / kill --------------------------------------------------------------

    /// Sends the stop signal, waits up to `timeout` (default: the container's stop timeout,
    /// else 10 s), then SIGKILL. The restart policy never restarts a stopped container.
    pub async fn stop(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        let ctr = self.lookup(id)?;
        let _g = ctr.op.lock().await;
        stop_locked(&self.inner, &ctr, timeout).await
    }

    /// Sends a signal to the container's init. SIGKILL and the stop signal count as an
    /// explicit stop for the restart policy.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let sig = parse_signal(signal)?;
        let ctr = self.lookup(id)?;
        if !ctr.state().is_running() {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                ctr.id
            )));
        }
        if sig == libc::SIGKILL || sig == ctr.stop_signal() {
            ctr.update(|s| s.stopped_by_user = true);
        }
        self.inner.runc.kill(&ctr.id, sig).await
    }

    /// Stops (if running) and starts again.
    pub async fn restart(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        let ctr = self.lookup(id)?;
        let _g = ctr.op.lock().await;
        stop_locked(&self.inner, &ctr, timeout).await?;
        ctr.update(|s| s.stopped_by_user = false);
        start_locked(&self.inner, &ctr).await
    }

    // ----- wait ---------------------------------------------------------------------

    pub async fn wait(&self, id: &str, condition: WaitCondition) -> Result<ExitStatus> {
        let ctr = self.lookup(id)?;
        let mut rx = ctr.changed.subscribe();
        let exits0 = ctr.exits.load(Ordering::SeqCst);
        loop {
            let st = ctr.state();
            let done = match condition {
                WaitCondition::NotRunning => {
                    !matches!(st.status, Status::Running | Status::Restarting)
                        || ctr.exits.load(Ordering::SeqCst) > exits0
                }
                WaitCondition::NextExit => ctr.exits.load(Ordering::SeqCst) > exits0,
                WaitCondition::Removed => ctr.removed.load(Ordering::SeqCst),
            };
            if done || ctr.removed.load(Ordering::SeqCst) {
                return Ok(ExitStatus {
                    exit_code: st.exit_code,
                    oom_killed: st.oom_killed,
                    error: Some(st.error.clone()).filter(|e| !e.is_empty()),
                });
            }
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        return Err(Error::NotFound(format!("no such container: {id}")));
                    }
                }
                _ = self.inner.shutdown.cancelled() => {
                    return Err(Error::Runtime("runtime is shutting down".into()));
                }
            }
        }
    }

    // ----- remove -------------------------------------------------------------------

    pub async fn remove(&self, id: &str, opts: RemoveOptions) -> Result<()> {
        let ctr = self.lookup(id)?;
        let _g = ctr.op.lock().await;
        let st = ctr.state();
        if st.status == Status::Running {
            if !opts.force {
                return Err(Error::Conflict(format!(
                    "you cannot remove a running container {}. Stop the container before \
                     attempting removal or force remove",
                    ctr.id
                )));
            }
            ctr.update(|s| s.stopped_by_user = true);
            let _ = self.inner.runc.kill(&ctr.id, libc::SIGKILL).await;
            if !wait_not_running(&ctr, Duration::from_secs(30)).await {
                return Err(Error::Runtime(format!(
                    "container {} did not exit after SIGKILL",
                    ctr.id
                )));
            }
        }
        ctr.epoch.fetch_add(1, Ordering::SeqCst);
        ctr.update(|s| s.status = Status::Removing);
        self.inner.runc.delete_force(&ctr.id).await?;
        rootfs::unmount(&ctr.rootfs())?;
        rootfs::unmount(&ctr.run_dir.join("secrets"))?;
        ctr.removed.store(true, Ordering::SeqCst);
        if let Ok(mut m) = self.inner.containers.lock() {
            m.remove(&ctr.id);
        }
        self.inner.execs.forget_container(&ctr.id);
        let _ = std::fs::remove_dir_all(&ctr.run_dir);
        std::fs::remove_dir_all(&ctr.dir).ctx(|| format!("removing {}", ctr.dir.display()))?;
        if opts.volumes {
            for m in ctr
                .config
                .mounts
                .iter()
                .filter(|m| m.kind == MountKind::Volume)
            {
                if let Some(v) = &m.source
                    && self.inner.volumes.inspect(v).is_ok_and(|v| v.anonymous)
                    && self.volume_users(v).is_empty()
                {
                    let _ = self.inner.volumes.remove_unchecked(v);
                }
            }
        }
        ctr.changed.send_modify(|v| *v += 1);
        Ok(())
    }

    // ----- queries ------------------------------------------------------------------

    /// `ps`: running (and restarting) containers, or all; newest first.
    pub fn list(&self, all: bool) -> Vec<ContainerSummary> {
        let now = Utc::now();
        let mut out: Vec<ContainerSummary> = self
            .all()
            .into_iter()
            .filter_map(|c| {
                let st = c.state();
                if !all && !matches!(st.status, Status::Running | Status::Restarting) {
                    return None;
                }
                Some(ContainerSummary {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    image: c.config.image.clone(),
                    image_id: c.config.image_id.clone(),
                    command: process_args(&c.config).join(" "),
                    created: c.created,
                    state: st.status,
                    status: status_text(&st, now),
                    labels: c.config.labels.clone(),
                })
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.created));
        out
    }

    pub fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let c = self.lookup(id)?;
        let args = process_args(&c.config);
        Ok(ContainerInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            created: c.created,
            image: c.config.image.clone(),
            image_id: c.config.image_id.clone(),
            path: args.first().cloned().unwrap_or_default(),
            args: args.iter().skip(1).cloned().collect(),
            config: c.config.clone(),
            state: c.state(),
            rootfs: c.rootfs(),
            log_path: c.dir.join("log"),
            hostname_path: c.dir.join("hostname"),
            hosts_path: c.dir.join("hosts"),
            resolv_conf_path: c.dir.join("resolv.conf"),
            cgroup_path: self.cgroup_path(&c.id),
            volumes: c
                .config
                .mounts
                .iter()
                .filter(|m| m.kind == MountKind::Volume)
                .map(|m| (m.source.clone().unwrap_or_default(), m.target.clone()))
                .collect(),
        })
    }

    /// The container's log records; with `follow`, until it stops.
    pub fn logs(&self, id: &str, opts: LogOptions) -> Result<LogStreamBox> {
        let c = self.lookup(id)?;
        let path = c.dir.join("log");
        let watch = c.clone();
        Ok(logs::stream_log(
            path,
            opts,
            Box::new(move || {
                !watch.removed.load(Ordering::SeqCst)
                    && matches!(watch.state().status, Status::Running | Status::Restarting)
            }),
        ))
    }

    /// Processes in the container, as `docker top` shows them.
    pub async fn top(&self, id: &str) -> Result<TopOutput> {
        let c = self.lookup(id)?;
        if !c.state().is_running() {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let pids = self.inner.runc.ps(&c.id).await?;
        Ok(top::top(&pids))
    }

    // ----- exec ---------------------------------------------------------------------

    /// A `runc exec` command for the container, stdio left for the caller to set (for
    /// interactive exec the API hijacks the connection and pipes it to the child).
    pub fn exec_command(&self, id: &str, opts: &ExecOptions) -> Result<tokio::process::Command> {
        let c = self.lookup(id)?;
        exec_command(&self.inner, &c, opts, None)
    }

    /// Runs a command in the container and collects its output and exit code.
    pub async fn exec(&self, id: &str, opts: ExecOptions) -> Result<ExecOutput> {
        let mut cmd = self.exec_command(id, &opts)?;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = cmd
            .output()
            .await
            .map_err(|e| Error::Runtime(format!("running {} exec: {e}", self.inner.runc.bin)))?;
        Ok(ExecOutput {
            exit_code: exit_code_of(&out.status),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    // ----- restore ------------------------------------------------------------------

    /// Re-attaches to containers whose monitors survived, and records the exit of the ones
    /// that died while no daemon was watching (applying their restart policy).
    pub async fn restore(&self) -> Result<RestoreReport> {
        let mut report = RestoreReport::default();
        for ctr in self.all() {
            let st = ctr.state();
            match st.status {
                Status::Running => {
                    let mpid = read_pid(&ctr.dir.join("monitor.pid")).unwrap_or(st.monitor_pid);
                    if mpid > 0 && monitor_alive(mpid, &ctr.dir) {
                        let epoch = ctr.epoch.load(Ordering::SeqCst);
                        spawn_supervisor(&self.inner, ctr.clone(), epoch, mpid);
                        if let Some(h) = ctr.healthcheck() {
                            health::spawn(&self.inner, ctr.clone(), epoch, h);
                        }
                        report.reattached.push(ctr.id.clone());
                    } else {
                        let epoch = ctr.epoch.load(Ordering::SeqCst);
                        on_monitor_exit(Arc::downgrade(&self.inner), ctr.clone(), epoch).await;
                        report.reconciled.push(ctr.id.clone());
                    }
                }
                Status::Restarting => {
                    let epoch = ctr.epoch.load(Ordering::SeqCst);
                    spawn_restart(&self.inner, ctr.clone(), epoch);
                    report.reconciled.push(ctr.id.clone());
                }
                Status::Removing => {
                    // A removal was interrupted: finish it.
                    let _ = self.inner.runc.delete_force(&ctr.id).await;
                    let _ = rootfs::unmount(&ctr.rootfs());
                    let _ = rootfs::unmount(&ctr.run_dir.join("secrets"));
                    ctr.removed.store(true, Ordering::SeqCst);
                    if let Ok(mut m) = self.inner.containers.lock() {
                        m.remove(&ctr.id);
                    }
                    let _ = std::fs::remove_dir_all(&ctr.run_dir);
                    let _ = std::fs::remove_dir_all(&ctr.dir);
                }
                Status::Created | Status::Exited => {
                    // A start interrupted by a crash may have left the rootfs mounted.
                    if rootfs::is_mounted(&ctr.rootfs()) {
                        let _ = self.inner.runc.delete_force(&ctr.id).await;
                        let _ = rootfs::unmount(&ctr.rootfs());
                    }
                }
            }
        }
        Ok(report)
    }

    // ----- volumes ------------------------------------------------------------------

    pub fn volume_create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume> {
        let (name, anon) = match name.filter(|n| !n.is_empty()) {
            Some(n) => (n.to_string(), false),
            None => (new_id(), true),
        };
        self.inner
            .volumes
            .create(&name, driver, labels, options, anon)
    }

    pub fn volume_list(&self) -> Result<Vec<Volume>> {
        self.inner.volumes.list()
    }

    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        self.inner.volumes.inspect(name)
    }

    /// Ids of containers (any state) that mount the volume.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|c| {
                c.config
                    .mounts
                    .iter()
                    .any(|m| m.kind == MountKind::Volume && m.source.as_deref() == Some(name))
            })
            .map(|c| c.id.clone())
            .collect()
    }

    /// Removes a volume; refused while any container (even stopped) uses it, unless `force`
    /// and none of them runs.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.inner.volumes.inspect(name)?;
        let users = self.volume_users(name);
        if !users.is_empty() {
            let running = users
                .iter()
                .any(|u| self.lookup(u).is_ok_and(|c| c.state().is_running()));
            if !force || running {
                let short: Vec<&str> = users.iter().map(|u| &u[..12]).collect();
                return Err(Error::Conflict(format!(
                    "remove {name}: volume is in use - [{}]",
                    short.join(", ")
                )));
            }
        }
        self.inner.volumes.remove_unchecked(name)
    }
}

/// Entrypoint + cmd, following Docker: an entrypoint set on the container drops the
/// image's cmd unless a cmd is set too.
pub(crate) fn process_args(cfg: &ContainerConfig) -> Vec<String> {
    let entry = cfg
        .entrypoint
        .clone()
        .or_else(|| cfg.image_config.entrypoint.clone())
        .unwrap_or_default();
    let cmd = match (&cfg.cmd, &cfg.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => cfg.image_config.cmd.clone().unwrap_or_default(),
    };
    entry.into_iter().chain(cmd).collect()
}

/// Image env overridden by container env, key by key.
fn merged_env(cfg: &ContainerConfig, hostname: &str, home: Option<&str>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut map: HashMap<String, String> = HashMap::new();
    let mut entries: Vec<String> = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        format!("HOSTNAME={hostname}"),
    ];
    entries.extend(cfg.image_config.env.iter().cloned());
    entries.extend(cfg.env.iter().cloned());
    for kv in &entries {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !map.contains_key(k) {
            order.push(k.to_string());
        }
        map.insert(k.to_string(), v.to_string());
    }
    if !map.contains_key("HOME") {
        order.push("HOME".into());
        map.insert("HOME".into(), home.unwrap_or("/").to_string());
    }
    order
        .into_iter()
        .map(|k| {
            let v = map.get(&k).cloned().unwrap_or_default();
            format!("{k}={v}")
        })
        .collect()
}

pub(crate) fn exit_code_of(st: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code()
        .unwrap_or_else(|| st.signal().map(|s| 128 + s).unwrap_or(-1))
}

pub(crate) fn exec_command(
    inner: &Inner,
    c: &Ctr,
    opts: &ExecOptions,
    pid_file: Option<&Path>,
) -> Result<tokio::process::Command> {
    if opts.cmd.is_empty() {
        return Err(Error::invalid("no exec command specified"));
    }
    if !c.state().is_running() {
        return Err(Error::Conflict(format!(
            "container {} is not running",
            c.id
        )));
    }
    let mut cmd = inner.runc.command();
    cmd.arg("exec");
    if opts.tty {
        cmd.arg("--tty");
    }
    if let Some(p) = pid_file {
        cmd.arg("--pid-file").arg(p);
    }
    for e in &opts.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(Error::invalid(format!(
                "invalid environment variable {e:?}"
            )));
        }
        cmd.arg("--env").arg(e);
    }
    if let Some(w) = opts.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            return Err(Error::invalid(format!("working dir {w:?} is not absolute")));
        }
        cmd.arg("--cwd").arg(w);
    }
    let user = opts
        .user
        .clone()
        .or_else(|| c.config.user.clone())
        .or_else(|| c.config.image_config.user.clone());
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        let r = resolve_user(&c.rootfs(), &u)?;
        cmd.arg("--user").arg(format!("{}:{}", r.uid, r.gid));
        for g in r.additional_gids {
            cmd.arg("--additional-gids").arg(g.to_string());
        }
    }
    cmd.arg(&c.id);
    cmd.args(&opts.cmd);
    Ok(cmd)
}

/// Waits until the container is no longer running; false on timeout.
async fn wait_not_running(ctr: &Ctr, timeout: Duration) -> bool {
    let mut rx = ctr.changed.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !ctr.state().is_running() {
            return true;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return !ctr.state().is_running(),
            Err(_) => return !ctr.state().is_running(),
        }
    }
}

async fn stop_locked(inner: &Arc<Inner>, ctr: &Arc<Ctr>, timeout: Option<Duration>) -> Result<()> {
    let st = ctr.state();
    match st.status {
        Status::Running => {}
        Status::Restarting => {
            ctr.epoch.fetch_add(1, Ordering::SeqCst);
            ctr.update(|s| {
                s.stopped_by_user = true;
                s.status = Status::Exited;
            });
            return Ok(());
        }
        _ => {
            ctr.update(|s| s.stopped_by_user = true);
            return Ok(());
        }
    }
    ctr.update(|s| s.stopped_by_user = true);
    let grace = timeout.unwrap_or_else(|| {
        Duration::from_secs(ctr.config.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT))
    });
    let sig = ctr.stop_signal();
    if let Err(e) = inner.runc.kill(&ctr.id, sig).await
        && ctr.state().is_running()
    {
        tracing::warn!(id = %ctr.id, "stop signal failed: {e}");
    }
    if wait_not_running(ctr, grace).await {
        return Ok(());
    }
    let _ = inner.runc.kill(&ctr.id, libc::SIGKILL).await;
    if wait_not_running(ctr, Duration::from_secs(30)).await {
        return Ok(());
    }
    Err(Error::Runtime(format!(
        "container {} did not exit after SIGKILL",
        ctr.id
    )))
}

pub(crate) async fn start_locked(inner: &Arc<Inner>, ctr: &Arc<Ctr>) -> Result<()> {
    let st = ctr.state();
    match st.status {
        Status::Running => return Ok(()),
        Status::Removing => {
            return Err(Error::Conflict(format!(
                "container {} is being removed",
                ctr.id
            )));
        }
        _ => {}
    }
    let epoch = ctr.epoch.fetch_add(1, Ordering::SeqCst) + 1;
    match launch(inner, ctr).await {
        Ok((monitor_pid, pid)) => {
            let health = ctr.healthcheck();
            ctr.update(|s| {
                s.status = Status::Running;
                s.pid = pid;
                s.monitor_pid = monitor_pid;
                s.exit_code = 0;
                s.error.clear();
                s.oom_killed = false;
                s.started_at = Some(Utc::now());
                s.finished_at = None;
                s.health = health.as_ref().map(|_| Health {
                    status: HealthStatus::Starting,
                    failing_streak: 0,
                    log: s.health.take().map(|h| h.log).unwrap_or_default(),
                });
            });
            spawn_supervisor(inner, ctr.clone(), epoch, monitor_pid);
            if let Some(h) = health {
                health::spawn(inner, ctr.clone(), epoch, h);
            }
            Ok(())
        }
        Err(e) => {
            let _ = inner.runc.delete_force(&ctr.id).await;
            let _ = rootfs::unmount(&ctr.rootfs());
            let msg = e.to_string();
            ctr.exits.fetch_add(1, Ordering::SeqCst);
            ctr.update(|s| {
                s.status = if s.started_at.is_some() {
                    Status::Exited
                } else {
                    Status::Created
                };
                s.exit_code = if matches!(e, Error::InvalidArgument(_)) {
                    126
                } else {
                    127
                };
                s.error = msg.clone();
                s.pid = 0;
                s.monitor_pid = 0;
                s.finished_at = Some(Utc::now());
            });
            Err(e)
        }
    }
}

/// Prepares the rootfs and bundle and starts the monitor; returns (monitor pid, init pid).
async fn launch(inner: &Arc<Inner>, ctr: &Arc<Ctr>) -> Result<(i32, i32)> {
    let cfg = &ctr.config;
    let rootfs_dir = ctr.rootfs();
    rootfs::mount_overlay(
        &cfg.lower_dirs,
        &ctr.dir.join("upper"),
        &ctr.dir.join("work"),
        &rootfs_dir,
    )?;
    let hostname = ctr.hostname();
    // Regenerated on every start: edits inside the container do not persist.
    std::fs::write(ctr.dir.join("hostname"), format!("{hostname}\n"))
        .ctx(|| "writing hostname".to_string())?;
    let hosts = match &cfg.hosts_file {
        Some(h) => h.clone(),
        None => {
            let extra: Vec<(String, String)> = cfg
                .extra_hosts
                .iter()
                .filter_map(|e| {
                    e.split_once(':')
                        .map(|(h, ip)| (h.to_string(), ip.to_string()))
                })
                .collect();
            rootfs::hosts_file(&hostname, &cfg.addresses, &extra)
        }
    };
    std::fs::write(ctr.dir.join("hosts"), hosts).ctx(|| "writing hosts".to_string())?;
    let resolv = cfg
        .resolv_conf
        .clone()
        .unwrap_or_else(rootfs::default_resolv_conf);
    std::fs::write(ctr.dir.join("resolv.conf"), resolv)
        .ctx(|| "writing resolv.conf".to_string())?;

    let bind = |src: &Path, dst: &str, ro: bool| -> Result<Mount> {
        let mode = if ro { "ro" } else { "rw" };
        spec::mount(
            dst,
            "bind",
            &src.display().to_string(),
            &["rbind", "rprivate", mode],
        )
    };
    let mut mounts = vec![
        bind(&ctr.dir.join("hostname"), "/etc/hostname", false)?,
        bind(&ctr.dir.join("hosts"), "/etc/hosts", false)?,
        bind(&ctr.dir.join("resolv.conf"), "/etc/resolv.conf", false)?,
    ];
    let mut user_mounts = cfg.mounts.clone();
    user_mounts.sort_by_key(|m| m.target.split('/').filter(|c| !c.is_empty()).count());
    for m in &user_mounts {
        match m.kind {
            MountKind::Bind => {
                let src = m.source.as_deref().unwrap_or_default();
                if !Path::new(src).exists() {
                    return Err(Error::invalid(format!(
                        "bind source path does not exist: {src}"
                    )));
                }
                mounts.push(bind(Path::new(src), &m.target, m.read_only)?);
            }
            MountKind::Volume => {
                let name = m.source.as_deref().unwrap_or_default();
                let vol = match inner.volumes.inspect(name) {
                    Ok(v) => v,
                    Err(_) => {
                        inner
                            .volumes
                            .create(name, None, BTreeMap::new(), BTreeMap::new(), false)?
                    }
                };
                let image_dir = rootfs::in_rootfs(&rootfs_dir, &m.target);
                if !m.no_copy && dir_is_empty(&vol.mountpoint) && image_dir.is_dir() {
                    rootfs::copy_tree(&image_dir, &vol.mountpoint)?;
                }
                mounts.push(bind(&vol.mountpoint, &m.target, m.read_only)?);
            }
            MountKind::Tmpfs => {
                let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
                if m.read_only {
                    opts.push("ro".into());
                }
                if let Some(s) = m.tmpfs_size {
                    opts.push(format!("size={s}"));
                }
                if let Some(md) = m.tmpfs_mode {
                    opts.push(format!("mode={md:o}"));
                }
                let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
                mounts.push(spec::mount(&m.target, "tmpfs", "tmpfs", &refs)?);
            }
        }
    }
    if !cfg.files.is_empty() {
        let sdir = ctr.run_dir.join("secrets");
        if !rootfs::is_mounted(&sdir) {
            return Err(Error::Runtime(
                "the container's secrets are no longer available (the node restarted?); \
                 recreate the container"
                    .into(),
            ));
        }
        for (i, f) in cfg.files.iter().enumerate() {
            mounts.push(bind(&sdir.join(format!("file-{i}")), &f.target, true)?);
        }
    }

    let user_spec = cfg
        .user
        .clone()
        .or_else(|| cfg.image_config.user.clone())
        .unwrap_or_default();
    let user = resolve_user(&rootfs_dir, &user_spec)?;
    let cwd = cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| {
            cfg.image_config
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
        })
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::invalid(format!(
            "working dir {cwd:?} is not absolute"
        )));
    }
    let cwd_host = rootfs::in_rootfs(&rootfs_dir, &cwd);
    if !cwd_host.exists() && !cfg.read_only {
        std::fs::create_dir_all(&cwd_host).ctx(|| format!("creating working dir {cwd}"))?;
    }
    let env = merged_env(cfg, &hostname, user.home.as_deref());
    let args = process_args(cfg);
    let bundle = BundleSpec {
        args,
        env,
        cwd,
        user,
        hostname,
        domainname: cfg.domainname.clone().filter(|d| !d.is_empty()),
        read_only: cfg.read_only,
        caps: spec::capability_set(&cfg.cap_add, &cfg.cap_drop)?,
        network: cfg.network.clone(),
        cgroups_path: format!("/{}/{}", inner.opts.cgroup_parent.trim_matches('/'), ctr.id),
        resources: cfg.resources.clone(),
        mounts,
    };
    let spec = spec::build_spec(&bundle)?;
    write_json_atomic(&ctr.run_dir.join("config.json"), &spec)?;

    inner.runc.delete_force(&ctr.id).await?;
    let pidfile = ctr.run_dir.join("container.pid");
    let _ = std::fs::remove_file(&pidfile);
    let _ = std::fs::remove_file(ctr.dir.join("exit"));
    let mut cmd = tokio::process::Command::new(&inner.opts.monitor_bin);
    cmd.arg("--dir")
        .arg(&ctr.dir)
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--cgroup")
        .arg(&bundle.cgroups_path)
        .arg("--")
        .args(inner.runc.run_argv(&ctr.id, &ctr.run_dir, &pidfile))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().map_err(|e| {
        Error::Runtime(format!(
            "cannot run the monitor {}: {e}",
            inner.opts.monitor_bin.display()
        ))
    })?;
    // The launcher exits as soon as the runtime has started the container (or failed).
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .map_err(|_| Error::Runtime("timed out starting the container".into()))?
        .map_err(|e| Error::Runtime(format!("waiting for the monitor: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::Runtime(if msg.is_empty() {
            "the container failed to start".into()
        } else {
            msg
        }));
    }
    let mpid = read_pid(&ctr.dir.join("monitor.pid"))
        .ok_or_else(|| Error::Runtime("monitor did not write its pid".into()))?;
    let pid = read_pid(&pidfile).unwrap_or(0);
    Ok((mpid, pid))
}

fn spawn_supervisor(inner: &Arc<Inner>, ctr: Arc<Ctr>, epoch: u64, monitor_pid: i32) {
    let weak = Arc::downgrade(inner);
    let token = inner.shutdown.clone();
    tokio::spawn(async move {
        if !wait_pid_exit(monitor_pid, ctr.dir.clone(), &token).await {
            return;
        }
        on_monitor_exit(weak, ctr, epoch).await;
    });
}

/// The monitor ended: record the exit, clean up, and apply the restart policy.
async fn on_monitor_exit(weak: Weak<Inner>, ctr: Arc<Ctr>, epoch: u64) {
    let Some(inner) = weak.upgrade() else { return };
    let rec: Option<ExitRecord> = std::fs::read(ctr.dir.join("exit"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let rec = rec.unwrap_or(ExitRecord {
        exit_code: 255,
        oom_killed: false,
        finished_at: None,
        error: Some("the monitor ended without recording an exit status".into()),
    });
    if let Err(e) = inner.runc.delete_force(&ctr.id).await {
        tracing::warn!(id = %ctr.id, "{e}");
    }
    if let Err(e) = rootfs::unmount(&ctr.rootfs()) {
        tracing::warn!(id = %ctr.id, "{e}");
    }
    let st = ctr.state();
    let ran_for = st
        .started_at
        .map(|t| (Utc::now() - t).num_seconds())
        .unwrap_or(0);
    let restart = epoch == ctr.epoch.load(Ordering::SeqCst)
        && should_restart(&ctr.config.restart_policy, &st, rec.exit_code);
    if ran_for >= 10 {
        ctr.quick_restarts.store(0, Ordering::SeqCst);
    }
    ctr.exits.fetch_add(1, Ordering::SeqCst);
    ctr.update(|s| {
        s.status = if restart {
            Status::Restarting
        } else {
            Status::Exited
        };
        s.exit_code = rec.exit_code;
        s.oom_killed = rec.oom_killed;
        s.error = rec.error.clone().unwrap_or_default();
        s.finished_at = Some(rec.finished_at.unwrap_or_else(Utc::now));
        s.pid = 0;
        s.monitor_pid = 0;
    });
    if restart {
        spawn_restart(&inner, ctr, epoch);
    } else if ctr.config.auto_remove {
        let rt = Runtime {
            inner: inner.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = rt
                .remove(
                    &ctr.id,
                    RemoveOptions {
                        force: true,
                        volumes: true,
                    },
                )
                .await
            {
                tracing::warn!(id = %ctr.id, "auto-remove: {e}");
            }
        });
    }
}

fn should_restart(policy: &RestartPolicy, st: &ContainerState, exit_code: i32) -> bool {
    if st.stopped_by_user || st.status == Status::Removing {
        return false;
    }
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => {
            exit_code != 0 && (*max_retries == 0 || st.restart_count < *max_retries)
        }
    }
}

/// Restarts after the policy's back-off (100 ms doubling per quick restart, max 1 min).
fn spawn_restart(inner: &Arc<Inner>, ctr: Arc<Ctr>, epoch: u64) {
    let weak = Arc::downgrade(inner);
    let token = inner.shutdown.clone();
    tokio::spawn(async move {
        let n = ctr.quick_restarts.fetch_add(1, Ordering::SeqCst).min(10);
        let delay = Duration::from_millis((100u64 << n).min(60_000));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = token.cancelled() => return,
        }
        let Some(inner) = weak.upgrade() else { return };
        let _g = ctr.op.lock().await;
        let st = ctr.state();
        if ctr.epoch.load(Ordering::SeqCst) != epoch
            || st.status != Status::Restarting
            || st.stopped_by_user
        {
            return;
        }
        ctr.update(|s| s.restart_count += 1);
        if let Err(e) = start_locked(&inner, &ctr).await {
            tracing::warn!(id = %ctr.id, "restart failed: {e}");
            // A failed start counts as an exit (127) for the policy.
            let st = ctr.state();
            if should_restart(&ctr.config.restart_policy, &st, st.exit_code) {
                let epoch = ctr.epoch.load(Ordering::SeqCst);
                ctr.update(|s| s.status = Status::Restarting);
                spawn_restart(&inner, ctr.clone(), epoch);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::ImageDefaults;

    #[test]
    fn args_follow_docker_rules() {
        let mut cfg = ContainerConfig {
            image_config: ImageDefaults {
                entrypoint: Some(vec!["/entry".into()]),
                cmd: Some(vec!["default".into()]),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(process_args(&cfg), vec!["/entry", "default"]);
        cfg.cmd = Some(vec!["x".into()]);
        assert_eq!(process_args(&cfg), vec!["/entry", "x"]);
        cfg.cmd = None;
        cfg.entrypoint = Some(vec!["/other".into()]);
        assert_eq!(process_args(&cfg), vec!["/other"]);
        cfg.entrypoint = Some(vec![]);
        assert!(process_args(&cfg).is_empty());
    }

    #[test]
    fn env_merge_overrides_by_key() {
        let cfg = ContainerConfig {
            env: vec!["A=2".into(), "PATH=/x".into()],
            image_config: ImageDefaults {
                env: vec!["A=1".into(), "B=1".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let env = merged_env(&cfg, "h", Some("/root"));
        assert!(env.contains(&"A=2".to_string()));
        assert!(env.contains(&"B=1".to_string()));
        assert!(env.contains(&"PATH=/x".to_string()));
        assert!(env.contains(&"HOSTNAME=h".to_string()));
        assert!(env.contains(&"HOME=/root".to_string()));
    }

    #[test]
    fn restart_decisions() {
        let st = ContainerState::default();
        assert!(should_restart(&RestartPolicy::Always, &st, 0));
        assert!(!should_restart(&RestartPolicy::No, &st, 1));
        let p = RestartPolicy::OnFailure { max_retries: 2 };
        assert!(!should_restart(&p, &st, 0));
        assert!(should_restart(&p, &st, 1));
        let st2 = ContainerState {
            restart_count: 2,
            ..Default::default()
        };
        assert!(!should_restart(&p, &st2, 1));
        let stopped = ContainerState {
            stopped_by_user: true,
            ..Default::default()
        };
        assert!(!should_restart(&RestartPolicy::Always, &stopped, 0));
    }
}
