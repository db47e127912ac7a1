//! Stack figures on the lab: `shoal stack deploy` of a 10-service stack (3 replicas each) on a
//! 3-node cluster, timed from the command's start to every task running, then a redeploy
//! where one service changed, and `stack rm` until no task is left. Median of `--runs N`.
//!
//! Run as root after `cargo build -p shoal -p shoal-e2e`:
//!   `SHOAL_BIN=target/debug/shoal target/debug/bench-stack [--runs N] [--services N] [--replicas N]`

use anyhow::{Context, Result, bail};
use serde_json::Value;
use shoal_e2e::bench::median;
use shoal_e2e::{Host, Lab, wait_for};
use std::time::{Duration, Instant};

struct Args {
    runs: usize,
    services: usize,
    replicas: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        runs: 3,
        services: 10,
        replicas: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |what: &str| -> Result<usize> {
            it.next()
                .with_context(|| format!("{what} N"))?
                .parse()
                .with_context(|| format!("{what} takes a number"))
        };
        match arg.as_str() {
            "--runs" => a.runs = num("--runs")?,
            "--services" => a.services = num("--services")?,
            "--replicas" => a.replicas = num("--replicas")?,
            other => bail!("unknown argument {other:?} (use --runs N --services N --replicas N)"),
        }
    }
    if a.runs == 0 || a.services == 0 || a.replicas == 0 || a.runs > 20 || a.services > 100 {
        bail!("need 1 <= runs <= 20, 1 <= services <= 100, replicas >= 1");
    }
    Ok(a)
}

/// A stack of `n` busybox services; `marker` goes into the first one's command, so changing it
/// changes exactly one service.
fn compose(n: usize, replicas: usize, marker: &str) -> String {
    let mut y = String::from("version: \"3.8\"\nservices:\n");
    for i in 0..n {
        let tag = if i == 0 { marker } else { "steady" };
        y.push_str(&format!(
            "  svc{i:02}:\n    image: shoal-test/busybox:latest\n    command: [\"sh\", \"-c\", \"echo {tag}; exec sleep 3600\"]\n    stop_grace_period: 1s\n    deploy:\n      replicas: {replicas}\n"
        ));
    }
    y
}

fn running(h: &Host, stack: &str) -> Result<(usize, usize)> {
    let f = format!("{{\"label\":{{\"com.docker.stack.namespace={stack}\":true}}}}");
    let enc: String = f
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let tasks = h.api_get(&format!("/v1.47/tasks?filters={enc}"))?;
    let all = tasks.as_array().cloned().unwrap_or_default();
    let run = all
        .iter()
        .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
        .count();
    let stale = all
        .iter()
        .filter(|t| t["DesiredState"] == "running" && t["Status"]["State"] != "running")
        .count();
    Ok((run, stale))
}

fn deploy(h: &Host, file: &std::path::Path, stack: &str) -> Result<()> {
    h.shoal(&[
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "-c",
        &file.to_string_lossy(),
        stack,
    ])?;
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let want = args.services * args.replicas;
    let lab = Lab::swarm_with_images(3, "busybox.tar")?;
    let h = lab.host(1);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("stack.yml");
    let (mut up, mut redeploy, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..args.runs {
        let stack = format!("bench{run}");
        std::fs::write(&file, compose(args.services, args.replicas, "v1"))?;
        let t0 = Instant::now();
        deploy(h, &file, &stack)?;
        wait_for("every task running", Duration::from_secs(300), || {
            Ok((running(h, &stack)?.0 == want).then_some(()))
        })?;
        up.push(t0.elapsed().as_secs_f64());

        std::fs::write(&file, compose(args.services, args.replicas, "v2"))?;
        let t0 = Instant::now();
        deploy(h, &file, &stack)?;
        // Converged: every task running again and none of the old spec left wanting to run.
        std::thread::sleep(Duration::from_millis(200));
        wait_for(
            "the changed service converged",
            Duration::from_secs(300),
            || {
                let svc: Value = h.api_get(&format!("/v1.47/services/{stack}_svc00"))?;
                let state = svc["UpdateStatus"]["State"].as_str().unwrap_or("completed");
                let (run, stale) = running(h, &stack)?;
                Ok((run == want && stale == 0 && state == "completed").then_some(()))
            },
        )?;
        redeploy.push(t0.elapsed().as_secs_f64());

        let t0 = Instant::now();
        h.shoal(&["stack", "rm", &stack])?;
        wait_for("the stack gone", Duration::from_secs(300), || {
            let left = h.shoal(&["stack", "ls"])?;
            let gone = !left
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&stack));
            Ok((gone && running(h, &stack)? == (0, 0)).then_some(()))
        })?;
        down.push(t0.elapsed().as_secs_f64());
        println!(
            "run {}: deploy→all running {:.2} s, redeploy 1 changed service {:.2} s, rm {:.2} s",
            run + 1,
            up[run],
            redeploy[run],
            down[run]
        );
    }
    println!(
        "\nstack of {} services × {} replicas = {want} tasks on a 3-node lab (1 manager), median of {} runs:",
        args.services, args.replicas, args.runs
    );
    println!(
        "  stack deploy → all {want} tasks running:         {:.2} s",
        median(&up)
    );
    println!(
        "  redeploy with 1 service changed → converged:  {:.2} s  (rolling update, default parallelism 1 and 5 s monitor)",
        median(&redeploy)
    );
    println!(
        "  stack rm → no service or task left:            {:.2} s",
        median(&down)
    );
    let has_dockerd = std::process::Command::new("dockerd")
        .arg("--version")
        .output()
        .is_ok();
    println!(
        "  Docker swarm mode: not measured ({})",
        if has_dockerd {
            "this benchmark does not start dockerd: it would take over the machine's networking"
        } else {
            "no dockerd on this machine to compare against"
        }
    );
    Ok(())
}
