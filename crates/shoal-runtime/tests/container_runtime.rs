//! Container runtime tests against real runc. They need root, runc, overlayfs and the
//! `shoal-monitor` binary (`cargo build -p shoal-monitor`), and build their rootfs from
//! /bin/busybox (Debian's busybox-static). Every mount, cgroup and process they create is
//! removed by the `Env` guard, also when a test fails.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use shoal_runtime::container::*;

static SEQ: AtomicU32 = AtomicU32::new(0);

fn monitor_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SHOAL_MONITOR") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test> → target/<profile>/shoal-monitor
    let exe = std::env::current_exe().expect("current exe");
    let p = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("shoal-monitor"))
        .expect("target dir");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p shoal-monitor` first (or set SHOAL_MONITOR)",
        p.display()
    );
    p
}

fn require_env() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "container tests must run as root"
    );
    assert!(
        std::process::Command::new("runc")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "runc is not installed (apt-get install runc)"
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing (apt-get install busybox-static)"
    );
}

/// A lower dir with busybox and its applets, plus passwd/group.
fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["etc", "tmp", "proc", "sys", "dev", "root", "data"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("data/seed"), "from-image\n").unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n",
    )
    .unwrap();
}

struct Env {
    tmp: PathBuf,
    root: PathBuf,
    run_root: PathBuf,
    lower: PathBuf,
    cgroup_parent: String,
    rt: Option<Runtime>,
}

impl Env {
    fn new() -> Env {
        require_env();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("shoal-ct-{}-{n}", std::process::id());
        let tmp = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&tmp);
        let lower = tmp.join("lower");
        busybox_rootfs(&lower);
        let mut e = Env {
            root: tmp.join("data"),
            run_root: tmp.join("run"),
            tmp,
            lower,
            cgroup_parent: tag,
            rt: None,
        };
        e.rt = Some(e.open());
        e
    }

    fn open(&self) -> Runtime {
        Runtime::open(
            self.root.clone(),
            self.run_root.clone(),
            RuntimeOptions {
                runtime_bin: std::env::var("SHOAL_OCI_RUNTIME").unwrap_or_else(|_| "runc".into()),
                cgroup_parent: self.cgroup_parent.clone(),
                monitor_bin: monitor_bin(),
            },
        )
        .expect("open runtime")
    }

    fn rt(&self) -> &Runtime {
        self.rt.as_ref().expect("runtime")
    }

    fn config(&self, cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            image: "busybox-test".into(),
            image_id: "sha256:test".into(),
            lower_dirs: vec![self.lower.clone()],
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    async fn run(&self, cfg: ContainerConfig) -> String {
        let id = self.rt().create(cfg).await.expect("create");
        self.rt().start(&id).await.expect("start");
        id
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Kill every container of this env by pid, then unmount and remove everything.
        let mut pids = Vec::new();
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in ["monitor.pid"] {
                if let Some(p) = std::fs::read_to_string(e.path().join(f))
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                {
                    pids.push((p, e.path()));
                }
            }
        }
        for e in std::fs::read_dir(&self.run_root)
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(p) = std::fs::read_to_string(e.path().join("container.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                // Only our container's init (its cmdline check is not possible; the pid file
                // is ours): SIGKILL ends the whole pid namespace.
                if Path::new(&format!("/proc/{p}")).exists() {
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        for (p, dir) in pids {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let want = dir.display().to_string();
            if cmd.split(|b| *b == 0).any(|a| a == want.as_bytes()) {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        self.rt = None;
        let runc_root = self.run_root.join("runc");
        for e in std::fs::read_dir(&self.run_root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = e.file_name().to_string_lossy().to_string();
            if id.len() == 64 {
                let _ = std::process::Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "--force", &id])
                    .output();
                for m in ["rootfs", "secrets"] {
                    let p = e.path().join(m);
                    let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
        remove_cgroup_parent(&self.cgroup_parent);
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

async fn wait_for<F: Fn() -> bool>(what: &str, timeout: Duration, f: F) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn exec_out(rt: &Runtime, id: &str, cmd: &[&str]) -> (i32, String) {
    let out = rt
        .exec(
            id,
            ExecOptions {
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("exec");
    (
        out.exit_code,
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn all_logs(rt: &Runtime, id: &str) -> Vec<LogRecord> {
    rt.logs(id, LogOptions::default())
        .expect("logs")
        .map(|r| r.expect("log record"))
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_exec_logs_and_exit_code() {
    let env = Env::new();
    let rt = env.rt();
    let mut cfg = env.config(&[
        "sh",
        "-c",
        "echo out-line; echo err-line >&2; echo pid=$$; hostname; sleep 30; exit 3",
    ]);
    cfg.hostname = Some("box1".into());
    cfg.name = Some("iso".into());
    let id = env.run(cfg).await;
    let info = rt.inspect("iso").unwrap();
    assert_eq!(info.state.status, Status::Running);
    assert!(info.state.pid > 0);

    // Own pid namespace: the shell is pid 1; own hostname; own netns with only lo.
    wait_for("first log lines", Duration::from_secs(10), || {
        std::fs::read_to_string(&info.log_path)
            .unwrap_or_default()
            .contains("box1")
    })
    .await;
    let logs = all_logs(rt, &id).await;
    let lines: Vec<&str> = logs.iter().map(|r| r.line.as_str()).collect();
    assert!(lines.contains(&"out-line"), "{lines:?}");
    assert!(lines.contains(&"pid=1"), "{lines:?}");
    assert!(lines.contains(&"box1"), "{lines:?}");
    let err = logs.iter().find(|r| r.line == "err-line").unwrap();
    assert_eq!(err.stream, LogStream::Stderr);
    assert!(
        err.format(true)
            .starts_with(&err.time.format("%Y-%m-%dT").to_string())
    );

    let (code, out) = exec_out(rt, &id, &["ls", "/sys/class/net"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), vec!["lo"]);
    let (code, out) = exec_out(rt, &id, &["cat", "/proc/1/cmdline"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("sh"), "{out}");
    let (code, out) = exec_out(rt, &id, &["sh", "-c", "exit 7"]).await;
    assert_eq!(code, 7, "{out}");
    // Default seccomp profile: no new namespaces.
    let (code, out) = exec_out(rt, &id, &["unshare", "-n", "true"]).await;
    assert_ne!(code, 0, "unshare allowed: {out}");
    // /proc/timer_list is masked (bound to /dev/null): reads as empty.
    let (code, out) = exec_out(rt, &id, &["sh", "-c", "cat /proc/timer_list | wc -c"]).await;
    assert_eq!((code, out.trim()), (0, "0"), "masked path readable");
    let (_, out) = exec_out(rt, &id, &["cat", "/etc/hostname"]).await;
    assert_eq!(out.trim(), "box1");

    // exec with a user resolved from the image's passwd.
    let out = rt
        .exec(
            &id,
            ExecOptions {
                cmd: vec!["id".into()],
                user: Some("app".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("uid=1000") && text.contains("2000"), "{text}");

    // top lists the shell and the sleep.
    let top = rt.top(&id).await.unwrap();
    assert!(top.processes.len() >= 2, "{top:?}");

    // Follow: a new line written by exec shows up in a following stream.
    let mut follow = rt
        .logs(
            &id,
            LogOptions {
                follow: true,
                tail: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    let (code, _) = exec_out(rt, &id, &["sh", "-c", "echo late-line > /proc/1/fd/1"]).await;
    assert_eq!(code, 0);
    let rec = tokio::time::timeout(Duration::from_secs(10), follow.next())
        .await
        .expect("followed line in time")
        .expect("stream open")
        .unwrap();
    assert_eq!(rec.line, "late-line");

    // ps shows it; kill makes it exit; the exit code is recorded.
    assert!(rt.list(false).iter().any(|s| s.id == id));
    rt.kill(&id, "SIGKILL").await.unwrap();
    let st = tokio::time::timeout(
        Duration::from_secs(20),
        rt.wait(&id, WaitCondition::NotRunning),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(st.exit_code, 137);
    // The follow stream ends once the container stopped.
    let rest = tokio::time::timeout(Duration::from_secs(10), follow.count()).await;
    assert!(rest.is_ok(), "follow did not end after exit");
    assert!(!rt.list(false).iter().any(|s| s.id == id));
    assert!(rt.list(true).iter().any(|s| s.id == id));
    let info = rt.inspect(&id).unwrap();
    assert_eq!(info.state.status, Status::Exited);
    assert!(info.state.finished_at.is_some());

    // Exit code of a normal exit.
    let id2 = env.run(env.config(&["sh", "-c", "exit 3"])).await;
    let st = tokio::time::timeout(
        Duration::from_secs(20),
        rt.wait(&id2, WaitCondition::NotRunning),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(st.exit_code, 3);
    assert!(!st.oom_killed);

    // rm refuses a running container without force.
    let id3 = env.run(env.config(&["sleep", "30"])).await;
    let e = rt.remove(&id3, RemoveOptions::default()).await.unwrap_err();
    assert_eq!(e.http_status(), 409);
    rt.remove(
        &id3,
        RemoveOptions {
            force: true,
            volumes: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(rt.inspect(&id3).unwrap_err().http_status(), 404);
    for id in [id, id2] {
        rt.remove(&id, RemoveOptions::default()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_grace_then_sigkill() {
    let env = Env::new();
    let rt = env.rt();
    // Ignores TERM: stop must fall back to SIGKILL after the grace period.
    let id = env
        .run(env.config(&["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]))
        .await;
    let t0 = std::time::Instant::now();
    rt.stop(&id, Some(Duration::from_secs(1))).await.unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "stopped too early: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "stop took {took:?}");
    let info = rt.inspect(&id).unwrap();
    assert_eq!(info.state.exit_code, 137);

    // A container that handles TERM stops quickly with its own exit code. (A bare
    // `sleep` as pid 1 would ignore TERM: the kernel drops default-action signals to init.)
    let id2 = env
        .run(env.config(&[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ]))
        .await;
    let t0 = std::time::Instant::now();
    rt.stop(&id2, Some(Duration::from_secs(20))).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(rt.inspect(&id2).unwrap().state.exit_code, 0);

    // Stopped containers can start again.
    rt.start(&id2).await.unwrap();
    assert_eq!(rt.inspect(&id2).unwrap().state.status, Status::Running);
    rt.stop(&id2, Some(Duration::from_secs(5))).await.unwrap();

    // AutoRemove: gone once it exits, with its dirs.
    let mut cfg = env.config(&["true"]);
    cfg.auto_remove = true;
    let id3 = env.run(cfg).await;
    wait_for("auto-remove", Duration::from_secs(15), || {
        rt.inspect(&id3).is_err()
    })
    .await;
    assert!(!env.root.join(&id3).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_oom_kill() {
    let env = Env::new();
    let rt = env.rt();
    let mut cfg = env.config(&["tail", "/dev/zero"]);
    cfg.resources.memory = 32 << 20;
    let id = env.run(cfg).await;
    let st = tokio::time::timeout(
        Duration::from_secs(60),
        rt.wait(&id, WaitCondition::NotRunning),
    )
    .await
    .expect("the hog was not killed in time")
    .unwrap();
    assert_eq!(st.exit_code, 137);
    assert!(st.oom_killed, "{st:?}");
    assert!(rt.inspect(&id).unwrap().state.oom_killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_limits_applied() {
    let env = Env::new();
    let rt = env.rt();
    let mut cfg = env.config(&["sleep", "60"]);
    cfg.resources.memory = 64 << 20;
    cfg.resources.nano_cpus = 500_000_000;
    cfg.resources.pids_limit = 20;
    let id = env.run(cfg).await;
    let cg = rt.cgroup_path(&id);
    // cgroup v1 on this kind of host; v2 (unified) elsewhere.
    let v1 = format!("/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes");
    let v2 = format!("/sys/fs/cgroup{cg}/memory.max");
    let mem = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .expect("memory limit file (v1 or v2)");
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let pids = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{cg}/pids.max"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup{cg}/pids.max")))
        .unwrap();
    assert_eq!(pids.trim(), "20");
    let quota = std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{cg}/cpu.cfs_quota_us"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup{cg}/cpu.max")))
        .unwrap();
    assert!(quota.trim().starts_with("50000"), "{quota}");
    rt.stop(&id, Some(Duration::from_secs(5))).await.unwrap();
    // runc delete removed the container's cgroup.
    assert!(!Path::new(&v1).exists() && !Path::new(&v2).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_turns_unhealthy() {
    let env = Env::new();
    let rt = env.rt();
    let mut cfg = env.config(&["sh", "-c", "touch /tmp/ok; sleep 60"]);
    cfg.healthcheck = Some(HealthConfig {
        test: vec!["CMD-SHELL".into(), "test -e /tmp/ok".into()],
        interval: 300_000_000,
        timeout: 2_000_000_000,
        retries: 2,
        start_period: 0,
    });
    let id = env.run(cfg).await;
    assert_eq!(
        rt.inspect(&id).unwrap().state.health.unwrap().status,
        HealthStatus::Starting
    );
    wait_for("healthy", Duration::from_secs(20), || {
        rt.inspect(&id).unwrap().state.health.unwrap().status == HealthStatus::Healthy
    })
    .await;
    assert!(rt.list(false)[0].status.contains("(healthy)"));
    let (code, _) = exec_out(rt, &id, &["rm", "/tmp/ok"]).await;
    assert_eq!(code, 0);
    wait_for("unhealthy", Duration::from_secs(20), || {
        rt.inspect(&id).unwrap().state.health.unwrap().status == HealthStatus::Unhealthy
    })
    .await;
    let h = rt.inspect(&id).unwrap().state.health.unwrap();
    assert!(h.failing_streak >= 2);
    assert!(h.log.len() <= 5 && h.log.last().unwrap().exit_code != 0);

    // The executor refuses to call an unhealthy-from-the-start container started.
    let ex = Executor::new(rt.clone());
    let mut cfg = env.config(&["sleep", "60"]);
    cfg.healthcheck = Some(HealthConfig {
        test: vec!["CMD".into(), "false".into()],
        interval: 200_000_000,
        retries: 1,
        ..Default::default()
    });
    let id2 = ex.prepare(cfg).await.unwrap();
    let e = ex.start(&id2).await.unwrap_err();
    assert!(
        matches!(
            e,
            ExecutorError::Fatal {
                before_start: false,
                ..
            }
        ),
        "{e:?}"
    );
    ex.shutdown(&id2, Duration::from_secs(2)).await.unwrap();
    ex.remove(&id2).await.unwrap();
    // Bad config is rejected before start.
    let e = ex.prepare(env.config(&[])).await.unwrap_err();
    assert!(
        matches!(
            e,
            ExecutorError::Fatal {
                before_start: true,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_restart_reattaches() {
    let env = Env::new();
    let id = env
        .run(env.config(&[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ]))
        .await;
    let id_dead = env.run(env.config(&["sleep", "60"])).await;
    let pid_dead = env.rt().inspect(&id_dead).unwrap().state.pid;
    let log_path = env.rt().inspect(&id).unwrap().log_path;
    wait_for("ticks", Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("tick 2")
    })
    .await;

    // "Stop the daemon": drop the runtime. The containers keep running.
    let mut env = env;
    env.rt = None;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One container dies while no daemon watches.
    unsafe { libc::kill(pid_dead, libc::SIGKILL) };
    let before = std::fs::read_to_string(&log_path).unwrap().lines().count();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = std::fs::read_to_string(&log_path).unwrap().lines().count();
    assert!(after > before, "logging stopped without the daemon");

    // "Start the daemon again".
    env.rt = Some(env.open());
    let rt = env.rt();
    wait_for(
        "the dead one's monitor to record it",
        Duration::from_secs(10),
        || std::fs::metadata(env.root.join(&id_dead).join("exit")).is_ok(),
    )
    .await;
    let report = rt.restore().await.unwrap();
    assert_eq!(report.reattached, vec![id.clone()]);
    assert_eq!(report.reconciled, vec![id_dead.clone()]);
    let dead = rt.inspect(&id_dead).unwrap();
    assert_eq!(dead.state.status, Status::Exited);
    assert_eq!(dead.state.exit_code, 137);

    // Logs continue, and the re-attached container's exit is noticed.
    let n1 = all_logs(rt, &id).await.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let n2 = all_logs(rt, &id).await.len();
    assert!(n2 > n1);
    rt.kill(&id, "KILL").await.unwrap();
    let st = tokio::time::timeout(
        Duration::from_secs(20),
        rt.wait(&id, WaitCondition::NotRunning),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(st.exit_code, 137);
    assert_eq!(rt.inspect(&id).unwrap().state.status, Status::Exited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policy_and_hostname_regenerated() {
    let env = Env::new();
    let rt = env.rt();
    let mut cfg = env.config(&[
        "sh",
        "-c",
        "cat /etc/hostname; echo edited > /etc/hostname; sleep 0.5; exit 1",
    ]);
    cfg.hostname = Some("orig".into());
    cfg.restart_policy = RestartPolicy::Always;
    let id = env.run(cfg).await;
    wait_for("two restarts", Duration::from_secs(30), || {
        rt.inspect(&id).unwrap().state.restart_count >= 2
    })
    .await;
    // Every run saw the generated hostname file, never the edit of the previous run.
    wait_for("log of the third run", Duration::from_secs(10), || {
        std::fs::read_to_string(rt.inspect(&id).unwrap().log_path)
            .unwrap_or_default()
            .matches("orig")
            .count()
            >= 3
    })
    .await;
    let logs = all_logs(rt, &id).await;
    assert!(logs.iter().all(|r| r.line == "orig"), "{logs:?}");

    // An explicit stop is never restarted.
    wait_for("running", Duration::from_secs(10), || {
        rt.inspect(&id).unwrap().state.status == Status::Running
    })
    .await;
    rt.stop(&id, Some(Duration::from_secs(5))).await.unwrap();
    let count = rt.inspect(&id).unwrap().state.restart_count;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = rt.inspect(&id).unwrap().state;
    assert_eq!(st.status, Status::Exited);
    assert_eq!(st.restart_count, count);

    // on-failure:1 restarts a failing container once only.
    let mut cfg = env.config(&["sh", "-c", "exit 5"]);
    cfg.restart_policy = RestartPolicy::OnFailure { max_retries: 1 };
    let id2 = env.run(cfg).await;
    wait_for("on-failure to give up", Duration::from_secs(20), || {
        let st = rt.inspect(&id2).unwrap().state;
        st.status == Status::Exited && st.restart_count == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rt.inspect(&id2).unwrap().state.restart_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_volumes_tmpfs_readonly() {
    let env = Env::new();
    let rt = env.rt();
    let mut cfg = env.config(&["sleep", "60"]);
    cfg.files = vec![SecretFile {
        target: "db_password".into(),
        data: b"s3cret".to_vec(),
        uid: 1000,
        gid: 2000,
        mode: 0o400,
    }];
    cfg.mounts = vec![
        MountSpec::parse_volume_flag("shoalvol:/data").unwrap(),
        MountSpec::parse_tmpfs_flag("/scratch:size=1m").unwrap(),
    ];
    cfg.read_only = true;
    cfg.cap_drop = vec!["ALL".into()];
    let id = env.run(cfg).await;
    let (code, out) = exec_out(
        rt,
        &id,
        &["stat", "-c", "%a %u %g", "/run/secrets/db_password"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "400 1000 2000");
    // Mode 0400: its owner reads it; root without capabilities cannot.
    let out = rt
        .exec(
            &id,
            ExecOptions {
                cmd: vec!["cat".into(), "/run/secrets/db_password".into()],
                user: Some("1000".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "s3cret");
    let (code, _) = exec_out(rt, &id, &["cat", "/run/secrets/db_password"]).await;
    assert_ne!(code, 0);
    // The secret lives on tmpfs on the host, never on disk.
    let (_, mounts) = exec_out(rt, &id, &["cat", "/proc/mounts"]).await;
    let line = mounts
        .lines()
        .find(|l| l.contains("/run/secrets/db_password"))
        .expect("secret mount");
    assert!(line.contains("tmpfs"), "{line}");
    // Read-only rootfs, writable tmpfs and volume; the volume got the image's content.
    let (code, _) = exec_out(rt, &id, &["touch", "/etc/x"]).await;
    assert_ne!(code, 0);
    let (code, _) = exec_out(rt, &id, &["touch", "/scratch/x"]).await;
    assert_eq!(code, 0);
    let (_, seed) = exec_out(rt, &id, &["cat", "/data/seed"]).await;
    assert_eq!(seed, "from-image\n");
    let (code, _) = exec_out(rt, &id, &["sh", "-c", "echo kept > /data/new"]).await;
    assert_eq!(code, 0);
    // No capabilities: chown is refused even for root.
    let (code, _) = exec_out(rt, &id, &["chown", "1:1", "/scratch/x"]).await;
    assert_ne!(code, 0);

    // Volumes: listed, in use refused, survives the container, then removed.
    let vols = rt.volume_list().unwrap();
    assert!(vols.iter().any(|v| v.name == "shoalvol"));
    assert_eq!(
        rt.volume_remove("shoalvol", false)
            .unwrap_err()
            .http_status(),
        409
    );
    rt.remove(
        &id,
        RemoveOptions {
            force: true,
            volumes: true,
        },
    )
    .await
    .unwrap();
    let v = rt.volume_inspect("shoalvol").unwrap();
    assert_eq!(
        std::fs::read_to_string(v.mountpoint.join("new")).unwrap(),
        "kept\n"
    );
    rt.volume_remove("shoalvol", false).unwrap();
    assert_eq!(
        rt.volume_inspect("shoalvol").unwrap_err().http_status(),
        404
    );
    // The secrets tmpfs was unmounted with the container.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_changes_nothing() {
    let env = Env::new();
    let rt = env.rt();
    let mut cfg = env.config(&["true"]);
    cfg.cap_add = vec!["NOT_A_CAP".into()];
    assert_eq!(rt.create(cfg).await.unwrap_err().http_status(), 400);
    let mut cfg = env.config(&["true"]);
    cfg.mounts = vec![MountSpec {
        kind: MountKind::Bind,
        source: Some("/does/not/exist".into()),
        target: "/x".into(),
        ..Default::default()
    }];
    assert_eq!(rt.create(cfg).await.unwrap_err().http_status(), 400);
    let mut cfg = env.config(&["true"]);
    cfg.name = Some("dup".into());
    rt.create(cfg.clone()).await.unwrap();
    assert_eq!(rt.create(cfg).await.unwrap_err().http_status(), 409);
    assert_eq!(rt.list(true).len(), 1);
    // A missing binary fails the start with a clear error and leaves it created.
    let id = rt.create(env.config(&["/no/such/binary"])).await.unwrap();
    let e = rt.start(&id).await.unwrap_err();
    assert!(
        e.to_string().contains("no such file") || e.to_string().contains("not found"),
        "{e}"
    );
    let st = rt.inspect(&id).unwrap().state;
    assert_eq!(st.status, Status::Created);
    assert!(!st.error.is_empty());
    assert!(rt.kill(&id, "KILL").await.is_err());
    assert!(rt.kill("nope", "KILL").await.is_err());
}
