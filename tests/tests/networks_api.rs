//! Overlay network objects through the stock docker CLI on a 3-node lab: `ingress` exists from
//! `swarm init`; create / ls / inspect / rm / prune; bad input refused with nothing changed; a
//! service on a network gets a VIP and its tasks distinct addresses in the subnet; a network in
//! use cannot be removed.

use serde_json::Value;
use shoal_e2e::services::tasks;
use shoal_e2e::{Lab, LabOptions, wait_for};
use std::collections::BTreeSet;
use std::time::Duration;

fn network_names(lab: &Lab, host: usize) -> BTreeSet<String> {
    lab.host(host)
        .docker(&[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ])
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn inspect(lab: &Lab, net: &str) -> Value {
    let out = lab.host(1).docker(&["network", "inspect", net]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// The addresses of the service's live tasks on network `net_id` (once all `n` have one).
fn task_addresses(lab: &Lab, service: &str, net_id: &str, n: usize) -> Option<Vec<String>> {
    let addrs: Vec<String> = tasks(lab.host(1), service)
        .iter()
        .filter(|t| t["DesiredState"] == "running")
        .filter_map(|t| {
            t["NetworksAttachments"]
                .as_array()?
                .iter()
                .find(|a| a["Network"]["ID"] == net_id)?["Addresses"][0]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    (addrs.len() == n).then_some(addrs)
}

#[test]
fn overlay_networks_through_the_docker_cli() {
    let lab = Lab::new(LabOptions {
        hosts: 3,
        daemon_args: Vec::new(),
    })
    .unwrap();
    lab.form_cluster(2).unwrap();
    wait_for("3 ready nodes", Duration::from_secs(30), || {
        let out = lab.host(1).shoal(&["node", "ls"])?;
        Ok((out.matches("Ready").count() == 3).then_some(()))
    })
    .unwrap();
    let h1 = lab.host(1);

    // `ingress` from swarm init, on every manager.
    assert!(
        network_names(&lab, 1).contains("ingress overlay swarm"),
        "{:?}",
        network_names(&lab, 1)
    );
    wait_for(
        "ingress on the second manager",
        Duration::from_secs(10),
        || {
            Ok(network_names(&lab, 2)
                .contains("ingress overlay swarm")
                .then_some(()))
        },
    )
    .unwrap();
    let ingress = inspect(&lab, "ingress");
    assert_eq!(ingress["Ingress"], true);
    assert_eq!(ingress["IPAM"]["Config"][0]["Subnet"], "10.0.0.0/24");
    assert_eq!(
        ingress["Options"]["com.docker.network.driver.overlay.vxlanid_list"],
        "4096"
    );
    let opts = ingress["Options"].as_object().cloned().unwrap_or_default();
    assert_eq!(opts.len(), 1, "per-node bookkeeping hidden: {opts:?}");

    // Create with the stock CLI's flags.
    let id = h1
        .docker(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.42.0.0/24",
            "--gateway",
            "10.42.0.254",
            "--attachable",
            "--label",
            "tier=front",
            "front",
        ])
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(id.len(), 25, "{id}");
    let front = inspect(&lab, "front");
    assert_eq!(front["Id"], id.as_str());
    assert_eq!(front["Driver"], "overlay");
    assert_eq!(front["Scope"], "swarm");
    assert_eq!(front["Attachable"], true);
    assert_eq!(front["Labels"]["tier"], "front");
    assert_eq!(front["IPAM"]["Config"][0]["Subnet"], "10.42.0.0/24");
    assert_eq!(front["IPAM"]["Config"][0]["Gateway"], "10.42.0.254");
    assert_eq!(inspect(&lab, &id[..8])["Name"], "front", "prefix lookup");
    let auto = h1
        .docker(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--opt",
            "encrypted",
            "back",
        ])
        .unwrap();
    let back = inspect(&lab, auto.trim());
    assert_eq!(back["IPAM"]["Config"][0]["Subnet"], "10.0.1.0/24");
    assert!(back["Options"].get("encrypted").is_some());
    let labelled = h1
        .docker(&[
            "network",
            "ls",
            "--filter",
            "label=tier=front",
            "--format",
            "{{.Name}}",
        ])
        .unwrap();
    assert_eq!(labelled.trim(), "front");

    // The shoal CLI speaks the same API.
    let cli_id = h1
        .shoal(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.43.0.0/24",
            "--ip-range",
            "10.43.0.128/25",
            "cli-net",
        ])
        .unwrap();
    let ls = h1.shoal(&["network", "ls"]).unwrap();
    assert!(ls.contains("cli-net") && ls.contains("ingress"), "{ls}");
    let v: Value =
        serde_json::from_str(&h1.shoal(&["network", "inspect", "cli-net"]).unwrap()).unwrap();
    assert_eq!(v[0]["Id"], cli_id.trim());
    assert_eq!(v[0]["IPAM"]["Config"][0]["IPRange"], "10.43.0.128/25");
    assert_eq!(
        h1.shoal(&["network", "rm", "cli-net"]).unwrap().trim(),
        "cli-net"
    );

    // Bad input: a clear error, nothing changed.
    let before = network_names(&lab, 1);
    let refused = [
        (
            vec!["-d", "overlay", "--subnet", "10.42.0.0/16", "overlap"],
            "overlap",
        ),
        (
            vec![
                "-d",
                "overlay",
                "--subnet",
                "10.50.0.0/24",
                "--gateway",
                "10.51.0.1",
                "badgw",
            ],
            "gateway",
        ),
        (
            vec!["-d", "overlay", "--subnet", "nonsense", "badnet"],
            "subnet",
        ),
        (vec!["-d", "overlay", "front"], "already exists"),
        (vec!["-d", "nosuchdriver", "odd"], "nosuchdriver"),
        (vec!["-d", "overlay", "--ipv6", "six"], "IPv6"),
        (
            vec![
                "-d",
                "overlay",
                "--subnet",
                "10.60.0.0/24",
                "--subnet",
                "10.61.0.0/24",
                "two",
            ],
            "one IPv4 subnet",
        ),
        (
            vec!["-d", "overlay", "--subnet", "127.0.0.0/24", "lo"],
            "loopback",
        ),
        (
            vec![
                "-d",
                "overlay",
                "--subnet",
                "10.62.0.0/24",
                "--aux-address",
                "h=10.62.0.9",
                "aux",
            ],
            "auxiliary addresses",
        ),
        (
            vec![
                "-d",
                "overlay",
                "-o",
                "com.docker.network.driver.mtu=100",
                "tiny",
            ],
            "an MTU from 576",
        ),
        (
            vec![
                "-d",
                "overlay",
                "-o",
                "com.docker.network.driver.overlay.vxlanid_list=4096",
                "vni",
            ],
            "already used by network ingress",
        ),
    ];
    for (args, want) in refused {
        let mut full = vec!["network", "create"];
        full.extend(args.iter().copied());
        let e = h1.docker(&full).unwrap_err().to_string();
        assert!(e.contains(want), "{full:?}: {e}");
    }
    assert_eq!(network_names(&lab, 1), before, "nothing created");

    // A service on the network: VIP and distinct task addresses in the subnet.
    lab.load_images("busybox.tar").unwrap();
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--network",
        "name=front,alias=www",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])
    .unwrap();
    let e = h1
        .docker(&[
            "service",
            "create",
            "-d",
            "--name",
            "lost",
            "--network",
            "nosuchnet",
            "shoal-test/busybox:latest",
        ])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nosuchnet"), "{e}");
    let e = h1
        .docker(&[
            "service",
            "create",
            "-d",
            "--name",
            "rr",
            "--endpoint-mode",
            "dnsrr",
            "-p",
            "8088:80",
            "shoal-test/busybox:latest",
        ])
        .unwrap_err()
        .to_string();
    assert!(e.contains("dnsrr"), "{e}");
    let vip = wait_for("web's VIP", Duration::from_secs(20), || {
        let out = h1.docker(&["service", "inspect", "web"])?;
        let v: Value = serde_json::from_str(&out)?;
        Ok(v[0]["Endpoint"]["VirtualIPs"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["NetworkID"] == id.as_str()))
            .and_then(|x| x["Addr"].as_str())
            .map(str::to_string))
    })
    .unwrap();
    assert!(vip.starts_with("10.42.0.") && vip.ends_with("/24"), "{vip}");
    let svc: Value =
        serde_json::from_str(&h1.docker(&["service", "inspect", "web"]).unwrap()).unwrap();
    let target = &svc[0]["Spec"]["TaskTemplate"]["Networks"][0];
    assert_eq!(target["Target"], id.as_str());
    assert_eq!(target["Aliases"][0], "www");
    let addrs = wait_for("3 task addresses", Duration::from_secs(30), || {
        Ok(task_addresses(&lab, "web", &id, 3))
    })
    .unwrap();
    let distinct: BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(distinct.len(), 3, "{addrs:?}");
    for a in &addrs {
        assert!(a.starts_with("10.42.0.") && a.ends_with("/24"), "{a}");
        assert_ne!(a, &vip);
        assert_ne!(a, "10.42.0.254/24", "gateway handed out");
    }

    // In use: refused, nothing changed.
    let e = h1
        .docker(&["network", "rm", "front"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("in use"), "{e}");
    assert!(network_names(&lab, 1).contains("front overlay swarm"));

    // Prune removes only unused networks (not ingress, not front).
    let pruned = h1.docker(&["network", "prune", "-f"]).unwrap();
    assert!(pruned.contains("back"), "{pruned}");
    let names = network_names(&lab, 1);
    assert!(names.contains("ingress overlay swarm") && names.contains("front overlay swarm"));
    assert!(!names.iter().any(|n| n.starts_with("back ")), "{names:?}");

    // Once the service is gone, rm works at once (its tasks still stopping do not block).
    h1.docker(&["service", "rm", "web"]).unwrap();
    wait_for("front removable", Duration::from_secs(10), || {
        match h1.docker(&["network", "rm", "front"]) {
            Ok(_) => Ok(Some(())),
            Err(e) if e.to_string().contains("in use") => Ok(None),
            Err(e) => Err(e),
        }
    })
    .unwrap();
    let e = h1
        .docker(&["network", "inspect", "front"])
        .unwrap_err()
        .to_string();
    assert!(e.to_lowercase().contains("not found"), "{e}");
}
