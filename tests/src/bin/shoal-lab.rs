//! The main job: a local multi-node Shoal cluster on this machine (hosts are network
//! namespaces), formed with the real CLI, shown with `shoal node ls` and the stock docker CLI.
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
    println!("\n$ docker -H {} info | grep -A8 Swarm:", h1.host_uri());
    let info = h1.docker(&["info"])?;
    for line in info.lines().skip_while(|l| !l.contains("Swarm:")).take(9) {
        println!("{line}");
    }
    for h in &lab.hosts {
        println!(
            "host {}: address {}, socket {}",
            h.name,
            h.addr,
            h.host_uri()
        );
    }
    if args.check {
        println!("\ncluster of {} nodes OK; tearing down", args.hosts);
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
