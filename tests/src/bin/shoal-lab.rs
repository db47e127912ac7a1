//! The main job: a local multi-node Shoal cluster on this machine (hosts are network
//! namespaces), formed with the real CLI, shown with `shoal node ls` and the stock docker CLI.
//!
//! `shoal-lab [--hosts N] [--managers M] [--check]`: with `--check` it verifies and exits;
//! otherwise it keeps the cluster up until Ctrl-C, then removes everything it made.

use anyhow::{Context, Result, bail};
use shoal_e2e::{Lab, LabOptions, test_images, wait_for};
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
    let h1 = lab.host(1);
    wait_for("every node Ready", Duration::from_secs(60), || {
        let out = h1.shoal(&["node", "ls"])?;
        Ok((out.matches("Ready").count() == args.hosts).then_some(()))
    })?;
    println!("\n$ shoal -H {} node ls", h1.host_uri());
    print!("{}", h1.shoal(&["node", "ls"])?);
    println!(
        "\n$ docker -H {} node ls   (the stock docker CLI)",
        h1.host_uri()
    );
    print!("{}", h1.docker(&["node", "ls"])?);
    println!("\nloading the busybox-based test images on every node…");
    let images = test_images()?;
    for h in &lab.hosts {
        h.docker(&["load", "-i", &images.join("both.tar").to_string_lossy()])?;
    }
    let replicas = (args.hosts * 2).to_string();
    println!(
        "\n$ docker service create -d --name web --replicas {replicas} shoal-test/httpd:latest"
    );
    print!(
        "{}",
        h1.docker(&[
            "service",
            "create",
            "-d",
            "--name",
            "web",
            "--replicas",
            &replicas,
            "shoal-test/httpd:latest",
        ])?
    );
    wait_for("every replica running", Duration::from_secs(120), || {
        let out = h1.docker(&["service", "ls"])?;
        Ok(out
            .contains(&format!("{replicas}/{replicas}"))
            .then_some(()))
    })?;
    println!("\n$ docker service ls");
    print!("{}", h1.docker(&["service", "ls"])?);
    println!("\n$ docker service ps web");
    print!("{}", h1.docker(&["service", "ps", "web"])?);
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
        h1.docker(&["service", "rm", "web"])?;
        println!(
            "\ncluster of {} nodes and its service OK; tearing down",
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
