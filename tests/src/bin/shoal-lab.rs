//! The main job: a local multi-node Shoal cluster on this machine (hosts are network
//! namespaces), formed with the real CLI, serving the example stack `examples/stacks/web`
//! (deployed with `shoal stack deploy`) on its published port from every node.
//!
//! `shoal-lab [--hosts N] [--managers M] [--check]`: with `--check` it verifies and exits;
//! otherwise it keeps the cluster up until Ctrl-C, then removes everything it made.

use anyhow::{Context, Result, bail};
use shoal_e2e::{Lab, LabOptions, wait_for};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

struct Args {
    hosts: usize,
    managers: usize,
    check: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        hosts: 3,
        managers: 1,
        check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--hosts" => args.hosts = it.next().context("--hosts N")?.parse()?,
            "--managers" => args.managers = it.next().context("--managers M")?.parse()?,
            "--check" => args.check = true,
            other => bail!("unknown argument {other:?} (use --hosts N --managers M --check)"),
        }
    }
    if args.hosts == 0 || args.managers == 0 || args.managers > args.hosts {
        bail!("need 1 <= managers <= hosts");
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            flag.store(true, Ordering::SeqCst);
        });
    }
    println!("creating {} hosts (network namespaces)…", args.hosts);
    let lab = Lab::new(LabOptions {
        hosts: args.hosts,
        daemon_args: Vec::new(),
    })?;
    lab.form_cluster(args.managers)?;
    lab.wait_ready(args.hosts)?;
    let h1 = lab.host(1);
    println!("\n$ shoal -H {} node ls", h1.host_uri());
    print!("{}", h1.shoal(&["node", "ls"])?);
    println!(
        "\n$ docker -H {} node ls   (the stock docker CLI)",
        h1.host_uri()
    );
    print!("{}", h1.docker(&["node", "ls"])?);
    println!("\nloading the busybox-based test images on every node…");
    lab.load_images("both.tar")?;
    let stack_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/stacks/web/stack.yml")
        .canonicalize()
        .context("examples/stacks/web/stack.yml")?;
    let stack_file = stack_file.to_string_lossy().to_string();
    println!("\n$ shoal stack deploy -c {stack_file} web");
    print!(
        "{}",
        h1.shoal(&["stack", "deploy", "-c", &stack_file, "web"])?
    );
    wait_for("every replica running", Duration::from_secs(180), || {
        let out = h1.shoal(&["stack", "services", "web"])?;
        let all_up = out.contains("2/2") && out.contains("1/1");
        Ok(all_up.then_some(()))
    })?;
    println!("\n$ shoal stack services web");
    print!("{}", h1.shoal(&["stack", "services", "web"])?);
    println!("\n$ docker stack ps web   (the stock docker CLI)");
    print!("{}", h1.docker(&["stack", "ps", "web"])?);
    println!(
        "\nthe published port 8080 answers on every node (routing mesh), asked from another host:"
    );
    for (i, host) in lab.hosts.iter().enumerate() {
        let from = &lab.hosts[(i + 1) % lab.hosts.len()];
        let url = format!("http://{}:8080/", host.addr);
        let page = wait_for(&url, Duration::from_secs(60), || {
            let r = shoal_e2e::in_ns(&from.netns, &["curl", "-s", "-m", "2", &url]);
            Ok(r.ok().filter(|p| p.contains("hello from shoal")))
        })?;
        let running_here = host
            .api_get("/v1.47/containers/json")?
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter(|c| c["Names"].to_string().contains("web_web."))
                    .count()
            })
            .unwrap_or(0);
        let title = page
            .lines()
            .find(|l| l.contains("hello from shoal"))
            .unwrap_or("")
            .trim();
        println!(
            "  {} (from {}): {title}   [{running_here} web task(s) on this node]",
            url, from.name
        );
    }
    println!("\n$ shoal service logs --tail 2 web_client   (the client calls http://web/ by name)");
    let logs = wait_for("the client's answer", Duration::from_secs(60), || {
        let out = h1.shoal(&["service", "logs", "--tail", "2", "web_client"])?;
        // Both lines answered: requests made before a web task was healthy get no answer.
        Ok((out.matches("hello from shoal").count() == 2).then_some(out))
    })?;
    print!("{logs}");
    for h in &lab.hosts {
        let n = h
            .api_get("/v1.47/containers/json")?
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        println!(
            "host {}: address {}, socket {}, {n} running containers",
            h.name,
            h.addr,
            h.host_uri()
        );
    }
    if args.check {
        println!("\n$ shoal stack rm web");
        print!("{}", h1.shoal(&["stack", "rm", "web"])?);
        println!(
            "\ncluster of {} nodes and its stack OK; tearing down",
            args.hosts
        );
        return Ok(());
    }
    println!(
        "\nThe cluster runs until Ctrl-C. Try: shoal -H {} node ls",
        h1.host_uri()
    );
    while !interrupted.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\ntearing down the lab");
    Ok(())
}
