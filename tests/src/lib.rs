//! Lab harness for end-to-end tests: N "hosts" made of network namespaces on one machine.
//!
//! Layout: one *switch* namespace holds a bridge; every host namespace is joined to it by a veth
//! pair and gets `10.77.0.<i>/24` on `eth0`. The machine's root namespace is never given an
//! address on the lab network, so lab traffic stays inside namespaces the lab created. Each host
//! runs its own `shoal daemon` (data dir, exec root, socket) entered into the host's network
//! namespace only (mounts stay shared, so tests can inspect files).
//!
//! Everything is torn down by `Drop`, also when a test panics: daemons are killed by PID, nft
//! tables live inside the lab namespaces and disappear with them, namespaces are deleted.

use anyhow::{Context, Result, anyhow, bail};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod bench;
pub mod probe;
pub mod services;
pub mod wireguard;

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

/// Prefix of the lab subnet; host `i` (1-based) gets `.i`, the switch keeps `.254`.
pub const LAB_NET: &str = "10.77.0";

pub fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cmd args…` with `input` on stdin; its stdout.
pub fn run_stdin(cmd: &str, args: &[&str], input: &str) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd}"))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip netns exec NS CMD…` for short helper commands (nft, ip) inside a lab namespace.
pub fn in_ns(ns: &str, cmd: &[&str]) -> Result<String> {
    let mut args = vec!["netns", "exec", ns];
    args.extend_from_slice(cmd);
    run("ip", &args)
}

/// Where the `shoal` binary is: `$SHOAL_BIN`, else the workspace's target dir.
pub fn shoal_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SHOAL_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/shoal")
}

pub struct Host {
    pub index: usize,
    pub name: String,
    pub netns: String,
    pub addr: String,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub daemon: Option<Child>,
    extra_args: Vec<String>,
}

impl Host {
    pub fn host_uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|c| c.id())
    }

    /// Run the `shoal` CLI against this host's daemon; returns stdout, or an error with stderr.
    pub fn shoal(&self, args: &[&str]) -> Result<String> {
        let out = self.shoal_output(args)?;
        if !out.status.success() {
            bail!(
                "shoal {} on {} failed: {}",
                args.join(" "),
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run the `shoal` CLI with `input` on its standard input.
    pub fn shoal_stdin(&self, args: &[&str], input: &str) -> Result<std::process::Output> {
        use std::io::Write;
        let mut child = Command::new(shoal_bin())
            .arg("-H")
            .arg(self.host_uri())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running shoal CLI")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    }

    pub fn shoal_output(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new(shoal_bin())
            .arg("-H")
            .arg(self.host_uri())
            .args(args)
            .output()
            .context("running shoal CLI")
    }

    /// Run the stock `docker` CLI against this host's daemon.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.host_uri())
            .args(args)
            .output()
            .context("running docker CLI")?;
        if !out.status.success() {
            bail!(
                "docker {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Raw API GET against the daemon socket (uses the shoal CLI's `api` helper-free path: curl).
    pub fn api_get(&self, path: &str) -> Result<serde_json::Value> {
        let out = run(
            "curl",
            &[
                "-s",
                "--unix-socket",
                &self.socket.to_string_lossy(),
                &format!("http://shoal{path}"),
            ],
        )?;
        serde_json::from_str(&out).with_context(|| format!("GET {path}: {out}"))
    }

    fn start_daemon(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))?;
        let ns_path = format!("/run/netns/{}", self.netns);
        let ns_file = std::fs::File::open(&ns_path).with_context(|| ns_path.clone())?;
        let mut cmd = Command::new(shoal_bin());
        cmd.arg("daemon")
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("run"))
            .arg("--host")
            .arg(self.host_uri())
            .arg("--node-hostname")
            .arg(&self.name)
            .arg("--log-level")
            .arg("info")
            // Every lab daemon gets its own cgroup subtree, so labs never collide.
            .arg("--cgroup-parent")
            .arg(format!("{}-{}", self.netns, self.name))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&ns_file);
        // SAFETY: pre_exec runs in the forked child before exec; setns is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("spawning shoal daemon")?;
        drop(ns_file);
        self.daemon = Some(child);
        self.wait_api(Duration::from_secs(20))
    }

    fn wait_api(&mut self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.daemon.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "daemon on {} exited early ({status}); log:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            if self.socket.exists()
                && let Ok(out) = self.shoal_output(&["version"])
                && out.status.success()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "daemon on {} did not answer within {limit:?}; log:\n{}",
            self.name,
            self.log_tail(40)
        )
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `kill -9` the daemon (by PID).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit (bounded).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.daemon.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            loop {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        bail!("daemon on {} exited with {status}", self.name);
                    }
                    return Ok(());
                }
                if start.elapsed() > Duration::from_secs(15) {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("daemon on {} ignored SIGTERM for 15 s", self.name);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.start_daemon()
    }

    pub fn start(&mut self) -> Result<()> {
        if self.daemon.is_some() {
            return Ok(());
        }
        self.start_daemon()
    }

    /// Take the host's link down or up (a cable cut).
    pub fn set_link(&self, up: bool) -> Result<()> {
        in_ns(
            &self.netns,
            &["ip", "link", "set", "eth0", if up { "up" } else { "down" }],
        )?;
        Ok(())
    }
}

pub struct Lab {
    pub id: String,
    pub switch_ns: String,
    pub hosts: Vec<Host>,
    pub dir: tempfile::TempDir,
}

pub struct LabOptions {
    pub hosts: usize,
    /// Extra `shoal daemon` arguments for every host.
    pub daemon_args: Vec<String>,
}

impl Lab {
    /// Create the namespaces and start one daemon per host (not yet in a swarm).
    pub fn new(opts: LabOptions) -> Result<Lab> {
        if unsafe { libc::geteuid() } != 0 {
            bail!("the lab needs root (network namespaces)");
        }
        if !shoal_bin().exists() {
            bail!(
                "shoal binary not found at {} (run `cargo build -p shoal` or set SHOAL_BIN)",
                shoal_bin().display()
            );
        }
        let seq = LAB_SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}x{}", std::process::id() % 100_000, seq);
        let dir = tempfile::Builder::new().prefix("shoal-lab-").tempdir()?;
        let mut lab = Lab {
            switch_ns: format!("shl{id}-sw"),
            id: id.clone(),
            hosts: Vec::new(),
            dir,
        };
        lab.build_network(&opts)?;
        for host in lab.hosts.iter_mut() {
            host.start_daemon()?;
        }
        Ok(lab)
    }

    fn build_network(&mut self, opts: &LabOptions) -> Result<()> {
        let sw = self.switch_ns.clone();
        run("ip", &["netns", "add", &sw])?;
        in_ns(&sw, &["ip", "link", "set", "lo", "up"])?;
        in_ns(&sw, &["ip", "link", "add", "br0", "type", "bridge"])?;
        // The switch stands in for a physical one, which costs the hosts no CPU. With
        // br_netfilter built in, every frame crossing a bridge would also take the IP hooks
        // and a route lookup here; the routing mesh crosses the switch twice per direction
        // where a direct connection crosses it once, so that cost would count against it.
        // (The settings are per namespace; the hosts' own stay as they are.)
        if Path::new("/proc/sys/net/bridge").exists() {
            // Written by a shell inside the namespace: /proc/sys/net is the writer's namespace's.
            in_ns(
                &sw,
                &[
                    "sh",
                    "-c",
                    "for k in iptables ip6tables arptables; do echo 0 > /proc/sys/net/bridge/bridge-nf-call-$k; done",
                ],
            )?;
        }
        in_ns(
            &sw,
            &[
                "ip",
                "addr",
                "add",
                &format!("{LAB_NET}.254/24"),
                "dev",
                "br0",
            ],
        )?;
        in_ns(&sw, &["ip", "link", "set", "br0", "up"])?;
        for i in 1..=opts.hosts {
            let ns = format!("shl{}-h{i}", self.id);
            let name = format!("node{i}");
            // Register the host before creating anything so Drop cleans it up on failure.
            let dir = self.dir.path().join(&name);
            self.hosts.push(Host {
                index: i,
                name,
                netns: ns.clone(),
                addr: format!("{LAB_NET}.{i}"),
                socket: dir.join("shoal.sock"),
                dir,
                daemon: None,
                extra_args: opts.daemon_args.clone(),
            });
            run("ip", &["netns", "add", &ns])?;
            let veth_host = format!("shl{}h{i}", self.id);
            let veth_sw = format!("shl{}s{i}", self.id);
            run(
                "ip",
                &[
                    "link", "add", &veth_host, "type", "veth", "peer", "name", &veth_sw,
                ],
            )?;
            run("ip", &["link", "set", &veth_host, "netns", &ns])?;
            run("ip", &["link", "set", &veth_sw, "netns", &sw])?;
            in_ns(&sw, &["ip", "link", "set", &veth_sw, "master", "br0"])?;
            in_ns(&sw, &["ip", "link", "set", &veth_sw, "up"])?;
            in_ns(&ns, &["ip", "link", "set", &veth_host, "name", "eth0"])?;
            in_ns(
                &ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{LAB_NET}.{i}/24"),
                    "dev",
                    "eth0",
                ],
            )?;
            in_ns(&ns, &["ip", "link", "set", "eth0", "up"])?;
            in_ns(&ns, &["ip", "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i - 1]
    }

    pub fn host_mut(&mut self, i: usize) -> &mut Host {
        &mut self.hosts[i - 1]
    }

    /// Drop all traffic between the hosts in `a` and the hosts in `b` (both directions),
    /// with an nft table inside each affected host namespace.
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<()> {
        for (side, other) in [(a, b), (b, a)] {
            for &i in side {
                let peers: Vec<String> = other.iter().map(|j| format!("{LAB_NET}.{j}")).collect();
                let set = peers.join(", ");
                let rules = format!(
                    "table inet shoal_lab_partition {{\n chain in {{ type filter hook input priority -10; ip saddr {{ {set} }} drop\n }}\n chain out {{ type filter hook output priority -10; ip daddr {{ {set} }} drop\n }}\n}}\n"
                );
                let path = self.dir.path().join(format!("part-{i}.nft"));
                std::fs::write(&path, rules)?;
                let _ = in_ns(
                    &self.host(i).netns,
                    &["nft", "delete", "table", "inet", "shoal_lab_partition"],
                );
                in_ns(&self.host(i).netns, &["nft", "-f", &path.to_string_lossy()])?;
            }
        }
        Ok(())
    }

    /// Remove every partition.
    pub fn heal(&self) -> Result<()> {
        for h in &self.hosts {
            let _ = in_ns(
                &h.netns,
                &["nft", "delete", "table", "inet", "shoal_lab_partition"],
            );
        }
        Ok(())
    }

    /// `swarm init` on host 1; returns (worker token, manager token).
    pub fn init_swarm(&self) -> Result<(String, String)> {
        let h1 = self.host(1);
        h1.shoal(&["swarm", "init", "--advertise-addr", &h1.addr])?;
        let worker = h1.shoal(&["swarm", "join-token", "-q", "worker"])?;
        let manager = h1.shoal(&["swarm", "join-token", "-q", "manager"])?;
        Ok((worker.trim().to_string(), manager.trim().to_string()))
    }

    /// Join host `i` with `token` to the manager at host `via`.
    pub fn join(&self, i: usize, token: &str, via: usize) -> Result<String> {
        let h = self.host(i);
        let remote = format!("{}:2377", self.host(via).addr);
        h.shoal(&[
            "swarm",
            "join",
            "--token",
            token,
            "--advertise-addr",
            &h.addr,
            &remote,
        ])
    }

    /// A cluster of `managers` managers and the rest workers, all joined through host 1.
    pub fn form_cluster(&self, managers: usize) -> Result<()> {
        let (worker, manager) = self.init_swarm()?;
        for i in 2..=self.hosts.len() {
            let token = if i <= managers { &manager } else { &worker };
            self.join(i, token, 1)
                .with_context(|| format!("joining node{i}"))?;
        }
        Ok(())
    }

    /// Loads one of the test image archives (`busybox.tar`, `httpd.tar`, `both.tar`, from
    /// [`test_images`]) on every host.
    pub fn load_images(&self, archive: &str) -> Result<()> {
        let path = test_images()?.join(archive);
        for h in &self.hosts {
            h.docker(&["load", "-i", &path.to_string_lossy()])
                .with_context(|| format!("loading {archive} on {}", h.name))?;
        }
        Ok(())
    }

    /// Waits until host 1 sees `n` nodes Ready.
    pub fn wait_ready(&self, n: usize) -> Result<()> {
        wait_for(&format!("{n} ready nodes"), Duration::from_secs(60), || {
            let out = self.host(1).shoal(&["node", "ls"])?;
            Ok((out.matches("Ready").count() == n).then_some(()))
        })
    }

    /// The usual test cluster: `hosts` nodes (host 1 the one manager), the test image archive
    /// `archive` loaded on every node, every node Ready.
    pub fn swarm_with_images(hosts: usize, archive: &str) -> Result<Lab> {
        let lab = Lab::new(LabOptions {
            hosts,
            daemon_args: Vec::new(),
        })?;
        lab.form_cluster(1)?;
        lab.load_images(archive)?;
        lab.wait_ready(hosts)?;
        Ok(lab)
    }
}

/// Containers outlive their daemon by design, so a lab removes what its daemons started:
/// processes in the lab's cgroups or running from the lab's directory (killed by PID), mounts
/// under the lab's directory, and the lab's cgroup directories.
pub fn remove_leftovers(dir: &Path, cgroup_prefix: &str) {
    let dir_s = dir.to_string_lossy().to_string();
    let cg_dirs = cgroup_dirs(cgroup_prefix);
    for _round in 0..3 {
        let mut pids = Vec::new();
        for d in &cg_dirs {
            for entry in walkdir_procs(d) {
                pids.push(entry);
            }
        }
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains(&dir_s) {
                    pids.push(pid);
                }
            }
        }
        let me = std::process::id() as i32;
        pids.retain(|p| *p != me && *p > 1);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&dir_s))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for m in points {
        if let Ok(c) = std::ffi::CString::new(m) {
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let mut all: Vec<PathBuf> = Vec::new();
    for d in &cg_dirs {
        collect_dirs(d, &mut all);
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in all {
        let _ = std::fs::remove_dir(&d);
    }
}

/// `<hierarchy>/<name>` for every cgroup hierarchy and every top-level group starting with
/// `prefix`.
fn cgroup_dirs(prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for root in roots {
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) && e.path().is_dir() {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

fn collect_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    out.push(d.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(d) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

fn walkdir_procs(d: &Path) -> Vec<i32> {
    let mut dirs = Vec::new();
    collect_dirs(d, &mut dirs);
    dirs.iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in self.hosts.iter_mut() {
            h.kill9();
        }
        remove_leftovers(self.dir.path(), &format!("shl{}-", self.id));
        for h in &self.hosts {
            remove_netplane_namespaces(&h.data_root());
        }
        if std::env::var_os("SHOAL_LAB_KEEP_LOGS").is_some() {
            for h in &self.hosts {
                eprintln!("--- {} daemon log ---\n{}", h.name, h.log_tail(200));
            }
        }
        for h in &self.hosts {
            let _ = run("ip", &["netns", "del", &h.netns]);
        }
        let _ = run("ip", &["netns", "del", &self.switch_ns]);
    }
}

/// The netns name prefix the daemon with data root `data_root` uses for its task and overlay
/// namespaces (must match `shoal::daemon::netplane::prefix_for`: FNV-1a of the path bytes).
pub fn netplane_prefix(data_root: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u32 = 0x811c_9dc5;
    for b in data_root.as_os_str().as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("shn{:06x}-", h & 0xff_ffff)
}

/// Names under /run/netns made by the daemon with data root `data_root`.
pub fn netplane_namespaces(data_root: &Path) -> Vec<String> {
    let prefix = netplane_prefix(data_root);
    let mut out: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    out.sort();
    out
}

/// Task and overlay namespaces outlive a killed daemon (as its containers do): remove them.
pub fn remove_netplane_namespaces(data_root: &Path) {
    for n in netplane_namespaces(data_root) {
        let _ = run("ip", &["netns", "del", &n]);
    }
}

/// Poll `f` until it returns `Ok(Some(v))` or `limit` passes; the last error is reported.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last = String::from("condition never held");
    while start.elapsed() < limit {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(anyhow!(
        "timed out after {limit:?} waiting for {what}: {last}"
    ))
}

/// Run `f` on a thread inside network namespace `ns` (with its own current-thread runtime), so
/// a test can speak gRPC to lab hosts as if it were on one of them.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    in_netns_path(&format!("/run/netns/{ns}"), f)
}

/// Run `f` on a thread inside the network namespace at `path` (a /run/netns entry or a
/// container's `/proc/<pid>/ns/net`) and wait for it.
pub fn in_netns_path<T: Send + 'static>(
    path: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    spawn_in_netns_path(path, f)?
        .join()
        .map_err(|_| anyhow!("thread in {path} panicked"))?
}

/// Start `f` on a new thread inside the network namespace at `path`; the handle gives
/// `Err` if the thread could not enter it.
pub fn spawn_in_netns_path<T: Send + 'static>(
    path: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T>>> {
    let file = std::fs::File::open(path).with_context(|| path.to_string())?;
    Ok(std::thread::spawn(move || -> Result<T> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: setns on this thread only; the thread ends after `f`.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        Ok(f())
    }))
}

/// Resident set size of process `pid` in KiB (`VmRSS` in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

/// The busybox-based test images (docker archives), built once per test process with
/// `deploy/images/build.sh` into a temp dir that lives as long as the process.
pub fn test_images() -> Result<PathBuf> {
    static DIR: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("shoal-test-images-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/images/build.sh");
        let out = Command::new("sh")
            .arg(&script)
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(dir)
    })
    .clone()
    .map_err(|e| anyhow!("building test images: {e}"))
}
