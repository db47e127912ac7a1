//! Container start benchmark: time to create+start 1 and 50 busybox `sleep` containers
//! from a cached rootfs (median of a few runs), and the RSS of each container's monitor.
//!
//! Needs root, runc (or crun: SHOAL_OCI_RUNTIME=crun) and the shoal-monitor binary:
//!   cargo build -p shoal-monitor && cargo run -p shoal-runtime --example container_bench
//! Options: `--runs N` (default 3), `--count N` (default 50).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shoal_runtime::container::{
    ContainerConfig, RemoveOptions, Runtime, RuntimeOptions, remove_cgroup_parent,
};

fn busybox_rootfs(dir: &Path) -> std::io::Result<()> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))?;
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    std::fs::create_dir_all(dir.join("etc"))?;
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

fn monitor_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SHOAL_MONITOR") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(|d| d.join("shoal-monitor")))
        .unwrap_or_else(|| PathBuf::from("shoal-monitor"))
}

fn vm_rss_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn start_many(
    rt: &Runtime,
    lower: &Path,
    n: usize,
) -> Result<(Duration, Vec<String>), String> {
    let t0 = Instant::now();
    let futs = (0..n).map(|_| {
        let rt = rt.clone();
        let cfg = ContainerConfig {
            image: "busybox-bench".into(),
            lower_dirs: vec![lower.to_path_buf()],
            cmd: Some(vec!["sleep".into(), "600".into()]),
            ..Default::default()
        };
        async move {
            let id = rt.create(cfg).await.map_err(|e| e.to_string())?;
            rt.start(&id).await.map_err(|e| format!("{id}: {e}"))?;
            Ok::<String, String>(id)
        }
    });
    let results = futures::future::join_all(futs).await;
    let took = t0.elapsed();
    let mut ids = Vec::new();
    let mut err = None;
    for r in results {
        match r {
            Ok(id) => ids.push(id),
            Err(e) => err = Some(e),
        }
    }
    match err {
        Some(e) => {
            cleanup(rt, &ids).await;
            Err(e)
        }
        None => Ok((took, ids)),
    }
}

async fn cleanup(rt: &Runtime, ids: &[String]) {
    let futs = ids.iter().map(|id| {
        let rt = rt.clone();
        async move {
            if let Err(e) = rt
                .remove(
                    id,
                    RemoveOptions {
                        force: true,
                        volumes: true,
                    },
                )
                .await
            {
                eprintln!("cleanup {id}: {e}");
            }
        }
    });
    futures::future::join_all(futs).await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = opt("--runs", 3).max(1);
    let count = opt("--count", 50).max(1);
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("container_bench needs root");
        std::process::exit(1);
    }
    let tag = format!("shoal-bench-{}", std::process::id());
    let base = std::env::temp_dir().join(&tag);
    let lower = base.join("lower");
    if let Err(e) = busybox_rootfs(&lower) {
        eprintln!("building the busybox rootfs from /bin/busybox: {e}");
        std::process::exit(1);
    }
    let runtime_bin = std::env::var("SHOAL_OCI_RUNTIME").unwrap_or_else(|_| "runc".into());
    let rt = match Runtime::open(
        base.join("data"),
        base.join("run"),
        RuntimeOptions {
            runtime_bin: runtime_bin.clone(),
            cgroup_parent: tag.clone(),
            monitor_bin: monitor_bin(),
        },
    ) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("opening the runtime: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "runtime={runtime_bin} cpus={} runs={runs}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let mut failed = false;
    for n in [1usize, count] {
        let mut times = Vec::new();
        for run in 0..runs {
            match start_many(&rt, &lower, n).await {
                Ok((took, ids)) => {
                    times.push(took);
                    if run == runs - 1 {
                        let mut rss: Vec<u64> = ids
                            .iter()
                            .filter_map(|id| rt.inspect(id).ok())
                            .filter_map(|i| vm_rss_kib(i.state.monitor_pid))
                            .collect();
                        rss.sort();
                        if !rss.is_empty() {
                            let avg = rss.iter().sum::<u64>() / rss.len() as u64;
                            println!(
                                "  monitor RSS over {} containers: min {} KiB, avg {} KiB, max {} KiB (target <= 2048 KiB)",
                                rss.len(),
                                rss[0],
                                avg,
                                rss[rss.len() - 1]
                            );
                        }
                    }
                    cleanup(&rt, &ids).await;
                }
                Err(e) => {
                    eprintln!("starting {n} containers failed: {e}");
                    failed = true;
                    break;
                }
            }
        }
        if !times.is_empty() {
            let all: Vec<String> = times
                .iter()
                .map(|t| format!("{:.2}s", t.as_secs_f64()))
                .collect();
            println!(
                "start {n:>3} containers: median {:.3}s (runs: {})",
                median(times).as_secs_f64(),
                all.join(", ")
            );
        }
    }
    drop(rt);
    remove_cgroup_parent(&tag);
    let _ = std::fs::remove_dir_all(&base);
    if failed {
        std::process::exit(1);
    }
}
