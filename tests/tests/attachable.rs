//! Standalone containers on an `--attachable` overlay, on a 3-node lab (node1 the manager):
//! containers on a worker (stock docker CLI) and on node2 (shoal CLI) get addresses from the
//! network's subnet, reach a 2-replica service by name (VIP) and each other by container name,
//! and the service's tasks reach them by name; `network inspect` on the worker lists its
//! container; a non-attachable or unknown network is refused and nothing is left; the network
//! cannot be removed while containers are attached; a daemon restart keeps the attachment
//! working; `rm` releases the address; everything is cleaned up (only the routing mesh's
//! ingress overlay stays on each node). Attachment tasks are not in `GET /tasks` (as in
//! Docker); they are followed by ID (`GET /tasks/{id}`) and by the nodes' records.
//!
//! `network connect` / `disconnect` (stock docker CLI): a running container on one attachable
//! overlay joins another as eth1 with an address from the managers, resolves and reaches that
//! network's service by name and is reached by its name and alias; it leaves again with the
//! interface, its names and its attachment; bad input is refused and changes nothing; a
//! container on the default bridge joins and leaves an overlay the same way (its resolv.conf
//! points at the embedded DNS server meanwhile); a stopped container connected later finds the
//! network when it starts; a daemon restart keeps connected networks.

use anyhow::{Result, anyhow};
use serde_json::Value;
use shoal_e2e::probe::{busybox_in, http_get_in, nslookup_in};
use shoal_e2e::services::{running, task_container};
use shoal_e2e::{Lab, netplane_namespaces, wait_for};
use std::collections::BTreeSet;
use std::time::Duration;

/// What the httpd test image serves on `/`.
const MARKER: &str = "shoal-test-httpd-ok";
const BUSYBOX: &str = "shoal-test/busybox:latest";

/// The attachment task behind `container`'s endpoint on `network` (its EndpointID is
/// `<attachment ID>-<network ID>`).
fn attachment_of(lab: &Lab, host: usize, container: &str, network: &str) -> Result<String> {
    let v = lab
        .host(host)
        .api_get(&format!("/v1.47/containers/{container}/json"))?;
    let n = &v["NetworkSettings"]["Networks"][network];
    let ep = n["EndpointID"].as_str().unwrap_or("");
    let net = n["NetworkID"].as_str().unwrap_or("");
    ep.strip_suffix(&format!("-{net}"))
        .filter(|id| !id.is_empty() && !net.is_empty())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{container} has no endpoint on {network}: {v}"))
}

/// The attachment task `id` as the managers hold it: (node ID, address); None once released.
fn held(lab: &Lab, id: &str) -> Result<Option<(String, String)>> {
    let t = lab.host(1).api_get(&format!("/v1.47/tasks/{id}"))?;
    if t["ID"] != id {
        return Ok(None);
    }
    Ok(Some((
        t["NodeID"].as_str().unwrap_or("").to_string(),
        t["NetworksAttachments"][0]["Addresses"][0]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )))
}

/// Attachment records the nodes keep (each is dropped only once the managers released it).
fn recorded(lab: &Lab, hosts: usize) -> usize {
    (1..=hosts)
        .map(|i| {
            std::fs::read_dir(lab.host(i).data_root().join("attachments"))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .sum()
}

/// Whether `GET /tasks` lists task `id` (attachments must not be listed, as in Docker).
fn listed(lab: &Lab, id: &str) -> bool {
    lab.host(1)
        .api_get("/v1.47/tasks")
        .ok()
        .and_then(|v| v.as_array().cloned())
        .into_iter()
        .flatten()
        .any(|t| t["ID"] == id)
}

/// Running task containers of a service: (container ID, lab host index).
fn service_containers(lab: &Lab, service: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for t in running(lab.host(1), service) {
        let c = task_container(&t).to_string();
        if let Some(i) = (1..=lab.hosts.len()).find(|i| {
            lab.host(*i)
                .api_get(&format!("/v1.47/containers/{c}/json"))
                .is_ok_and(|v| v["State"]["Pid"].as_i64().unwrap_or(0) > 0)
        }) {
            out.push((c, i));
        }
    }
    out
}

/// The container's PID on lab host `host`.
fn pid_of(lab: &Lab, host: usize, container: &str) -> Result<String> {
    let v = lab
        .host(host)
        .api_get(&format!("/v1.47/containers/{container}/json"))?;
    v["State"]["Pid"]
        .as_i64()
        .filter(|p| *p > 0)
        .map(|p| p.to_string())
        .ok_or_else(|| anyhow!("{container} is not running on node{host}: {v}"))
}

/// A busybox applet inside a running container (its namespaces and root: its resolv.conf).
fn in_container(lab: &Lab, host: usize, container: &str, args: &[&str]) -> Result<String> {
    busybox_in(&pid_of(lab, host, container)?, args)
}

/// The addresses `name` resolves to through the container's embedded DNS server.
fn resolve(lab: &Lab, host: usize, container: &str, name: &str) -> Result<BTreeSet<String>> {
    nslookup_in(&pid_of(lab, host, container)?, name)
}

/// The body of `GET /` to `target:80` from inside a container.
fn http_get(lab: &Lab, host: usize, container: &str, target: &str) -> Result<String> {
    http_get_in(&pid_of(lab, host, container)?, target, "/")
}

/// The container's address on `network` as its node's `inspect` shows it.
fn address_on(lab: &Lab, host: usize, container: &str, network: &str) -> Result<String> {
    let v = lab
        .host(host)
        .api_get(&format!("/v1.47/containers/{container}/json"))?;
    v["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{container} has no address on {network}: {v}"))
}

fn node_id(lab: &Lab, host: usize) -> String {
    lab.host(host)
        .api_get("/v1.47/info")
        .map(|v| v["Swarm"]["NodeID"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Waits until `check` holds (it is retried while it errs or returns false).
fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> Result<bool>) {
    wait_for(what, Duration::from_secs(secs), || {
        Ok(check().unwrap_or(false).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

fn container_names(lab: &Lab, host: usize) -> Vec<String> {
    let v = lab
        .host(host)
        .api_get("/v1.47/containers/json?all=1")
        .unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c["Names"][0]
                .as_str()
                .map(|n| n.trim_start_matches('/').to_string())
        })
        .collect()
}

#[test]
fn standalone_containers_on_an_attachable_overlay() {
    let mut lab = Lab::swarm_with_images(3, "both.tar").unwrap();
    let h1 = lab.host(1);
    let app = h1
        .docker(&["network", "create", "-d", "overlay", "--attachable", "app"])
        .unwrap()
        .trim()
        .to_string();
    h1.docker(&["network", "create", "-d", "overlay", "svconly"])
        .unwrap();
    let subnet =
        h1.api_get(&format!("/v1.47/networks/{app}")).unwrap()["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap_or("")
            .to_string();
    let prefix = subnet
        .rsplit_once('.')
        .map(|(p, _)| format!("{p}."))
        .unwrap_or_default();
    assert!(!prefix.is_empty(), "subnet of app: {subnet:?}");
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--network",
        "app",
        "shoal-test/httpd:latest",
        "sh",
        "-c",
        "hostname > /www/host; exec httpd -f -p 80 -h /www",
    ])
    .unwrap();
    let web = wait_for("2 running web tasks", Duration::from_secs(60), || {
        let t = service_containers(&lab, "web");
        Ok((t.len() == 2).then_some(t))
    })
    .unwrap();

    // A container on node3 (a worker) with the stock docker CLI, one on node2 with ours.
    let c3 = lab
        .host(3)
        .docker(&[
            "run",
            "-d",
            "--name",
            "c3",
            "--network",
            "app",
            "--network-alias",
            "db3",
            BUSYBOX,
            "sleep",
            "600",
        ])
        .unwrap()
        .trim()
        .to_string();
    let c2 = lab
        .host(2)
        .shoal(&[
            "run",
            "-d",
            "--name",
            "c2",
            "--network",
            "app",
            BUSYBOX,
            "sleep",
            "600",
        ])
        .unwrap()
        .trim()
        .to_string();
    assert!(!c3.is_empty() && !c2.is_empty());
    let ip3 = address_on(&lab, 3, "c3", "app").unwrap();
    let ip2 = address_on(&lab, 2, "c2", "app").unwrap();
    assert!(
        ip3.starts_with(&prefix) && ip2.starts_with(&prefix),
        "{ip3} {ip2} in {subnet}"
    );
    assert_ne!(ip3, ip2);
    // The managers hold one attachment task per container, on its node, with that address;
    // `GET /tasks` does not list them (Docker lists only tasks with a container).
    let a3 = attachment_of(&lab, 3, "c3", "app").unwrap();
    let a2 = attachment_of(&lab, 2, "c2", "app").unwrap();
    let n3 = node_id(&lab, 3);
    let (node, addr) = held(&lab, &a3).unwrap().expect("c3's attachment task");
    assert_eq!(node, n3);
    assert_eq!(addr.split('/').next(), Some(ip3.as_str()));
    assert!(held(&lab, &a2).unwrap().is_some());
    assert!(!listed(&lab, &a3) && !listed(&lab, &a2));
    assert_eq!(recorded(&lab, 3), 2);

    // c3 reaches the service by name (its VIP) and c2 by container name, across nodes.
    eventually("c3 reaches web by name", 30, || {
        Ok(http_get(&lab, 3, "c3", "web")?.contains(MARKER))
    });
    eventually("c3 resolves c2", 20, || {
        Ok(resolve(&lab, 3, "c3", "c2")? == BTreeSet::from([ip2.clone()]))
    });
    eventually("c3 pings c2", 20, || {
        Ok(in_container(&lab, 3, "c3", &["ping", "-c", "1", "-W", "2", "c2"]).is_ok())
    });
    // A service task reaches c3 by its name.
    let (task_c, task_host) = web[0].clone();
    eventually("a web task resolves c3", 20, || {
        Ok(resolve(&lab, task_host, &task_c, "c3")? == BTreeSet::from([ip3.clone()]))
    });
    eventually("a web task resolves c3's alias", 20, || {
        Ok(resolve(&lab, task_host, &task_c, "db3")? == BTreeSet::from([ip3.clone()]))
    });
    eventually("a web task pings c3", 20, || {
        Ok(in_container(
            &lab,
            task_host,
            &task_c,
            &["ping", "-c", "1", "-W", "2", "c3"],
        )
        .is_ok())
    });

    // `network inspect` on the worker lists its container.
    eventually("network inspect on node3 lists c3", 10, || {
        let v = lab.host(3).api_get("/v1.47/networks/app")?;
        Ok(v["Containers"][&c3]["Name"] == "c3"
            && v["Containers"][&c3]["IPv4Address"]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("{ip3}/"))))
    });

    let shown = lab.host(3).docker(&["network", "inspect", "app"]).unwrap();
    assert!(shown.contains("\"c3\"") && shown.contains(&ip3), "{shown}");

    // A foreground `docker run --rm` on the network resolves the others at once, and its
    // attachment goes with it.
    let out = lab
        .host(2)
        .docker(&[
            "run",
            "--rm",
            "--network",
            "app",
            BUSYBOX,
            "nslookup",
            "c3",
            "127.0.0.11",
        ])
        .unwrap();
    assert!(out.contains(&ip3), "{out}");
    eventually("the --rm container's attachment released", 20, || {
        Ok(recorded(&lab, 3) == 2)
    });

    // A stopped container leaves DNS; started again it comes back with the same address.
    lab.host(2).docker(&["stop", "-t", "1", "c2"]).unwrap();
    eventually("c2 leaves DNS while stopped", 20, || {
        Ok(resolve(&lab, 3, "c3", "c2").map_or(true, |ips| ips.is_empty()))
    });
    lab.host(2).docker(&["start", "c2"]).unwrap();
    assert_eq!(address_on(&lab, 2, "c2", "app").unwrap(), ip2);
    eventually("c2 back in DNS", 20, || {
        Ok(resolve(&lab, 3, "c3", "c2")? == BTreeSet::from([ip2.clone()]))
    });

    // A network that is not attachable: Docker's refusal, nothing created or held.
    let err = lab
        .host(3)
        .docker(&[
            "run",
            "-d",
            "--name",
            "bad",
            "--network",
            "svconly",
            BUSYBOX,
            "sleep",
            "600",
        ])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "Could not attach to network svconly: rpc error: code = PermissionDenied desc = network svconly not manually attachable"
        ),
        "{err}"
    );
    let err = lab
        .host(2)
        .shoal(&[
            "run",
            "-d",
            "--name",
            "bad2",
            "--network",
            "nope",
            BUSYBOX,
            "sleep",
            "600",
        ])
        .unwrap_err()
        .to_string();
    assert!(err.contains("network nope not found"), "{err}");
    assert!(!container_names(&lab, 3).contains(&"bad".to_string()));
    assert!(!container_names(&lab, 2).contains(&"bad2".to_string()));
    assert_eq!(recorded(&lab, 3), 2);

    // The network stays while containers use it (the service gone).
    h1.docker(&["service", "rm", "web"]).unwrap();
    eventually("web tasks gone", 30, || {
        Ok(service_containers(&lab, "web").is_empty())
    });
    let err = lab
        .host(1)
        .docker(&["network", "rm", "app"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use"), "{err}");

    // A daemon restart on the worker keeps c3 attached and reachable.
    lab.host_mut(3).restart().unwrap();
    lab.wait_ready(3).unwrap();
    eventually("c3 reaches c2 after node3's restart", 40, || {
        Ok(
            resolve(&lab, 3, "c3", "c2")? == BTreeSet::from([ip2.clone()])
                && in_container(&lab, 3, "c3", &["ping", "-c", "1", "-W", "2", "c2"]).is_ok(),
        )
    });
    eventually("c2 reaches c3 after node3's restart", 40, || {
        Ok(
            resolve(&lab, 2, "c2", "c3")? == BTreeSet::from([ip3.clone()])
                && in_container(&lab, 2, "c2", &["ping", "-c", "1", "-W", "2", "c3"]).is_ok(),
        )
    });

    // rm releases the address: the attachment task goes, and c3's name leaves DNS.
    lab.host(3).docker(&["rm", "-f", "c3"]).unwrap();
    eventually("c3's attachment released", 20, || {
        Ok(held(&lab, &a3)?.is_none() && held(&lab, &a2)?.is_some())
    });
    eventually("c3 leaves DNS", 20, || {
        Ok(resolve(&lab, 2, "c2", "c3").map_or(true, |ips| ips.is_empty()))
    });
    lab.host(2).shoal(&["rm", "-f", "c2"]).unwrap();
    eventually("no attachment left", 20, || {
        Ok(held(&lab, &a2)?.is_none() && recorded(&lab, 3) == 0)
    });
    lab.host(1).docker(&["network", "rm", "app"]).unwrap();
    lab.host(1).docker(&["network", "rm", "svconly"]).unwrap();
    for i in 1..=3 {
        let root = lab.host(i).data_root();
        // Only the node's own ingress overlay may stay (it belongs to the routing mesh).
        eventually(
            &format!("node{i} has no container namespaces left"),
            30,
            || {
                let ns = netplane_namespaces(&root);
                let tasks = ns.iter().filter(|n| n.contains("-t-")).count();
                let overlays = ns.iter().filter(|n| n.contains("-ov-")).count();
                Ok(tasks == 0 && overlays <= 1)
            },
        );
    }
}

/// The interfaces of a container (busybox `ip -o addr`): their names and IPv4 addresses.
fn addresses_in(lab: &Lab, host: usize, container: &str) -> Result<String> {
    in_container(lab, host, container, &["ip", "-o", "-4", "addr", "show"])
}

#[test]
fn network_connect_and_disconnect() {
    let mut lab = Lab::swarm_with_images(2, "both.tar").unwrap();
    let h1 = lab.host(1);
    for args in [
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "front",
        ][..],
        &["network", "create", "-d", "overlay", "--attachable", "back"],
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "third",
        ],
        &["network", "create", "-d", "overlay", "svconly"],
    ] {
        h1.docker(args).unwrap();
    }
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "api",
        "--network",
        "back",
        "--constraint",
        "node.hostname==node1",
        "shoal-test/httpd:latest",
        "sh",
        "-c",
        "exec httpd -f -p 80 -h /www",
    ])
    .unwrap();
    let api = wait_for("a running api task", Duration::from_secs(60), || {
        let t = service_containers(&lab, "api");
        Ok((t.len() == 1).then(|| t[0].clone()))
    })
    .unwrap();
    let n2 = lab.host(2);
    n2.docker(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "front",
        BUSYBOX,
        "sleep",
        "600",
    ])
    .unwrap();
    let front_ip = address_on(&lab, 2, "c1", "front").unwrap();

    // Connect: a second interface with an address from `back`, the network in inspect, an
    // attachment task held by the managers (not listed in /tasks).
    n2.docker(&["network", "connect", "--alias", "cache", "back", "c1"])
        .unwrap();
    let back_ip = address_on(&lab, 2, "c1", "back").unwrap();
    assert_eq!(address_on(&lab, 2, "c1", "front").unwrap(), front_ip);
    let addrs = addresses_in(&lab, 2, "c1").unwrap();
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("eth1") && l.contains(&format!(" {back_ip}/"))),
        "{addrs}"
    );
    let att = attachment_of(&lab, 2, "c1", "back").unwrap();
    let (node, addr) = held(&lab, &att)
        .unwrap()
        .expect("the connect's attachment task");
    assert_eq!(node, node_id(&lab, 2));
    assert_eq!(addr.split('/').next(), Some(back_ip.as_str()));
    assert!(!listed(&lab, &att));
    // The worker's `network inspect` lists the connected container.
    let c1_id = n2
        .api_get("/v1.47/containers/c1/json")
        .map(|v| v["Id"].as_str().unwrap_or("").to_string())
        .unwrap();
    eventually("network inspect on node2 lists c1 on back", 10, || {
        let v = lab.host(2).api_get("/v1.47/networks/back")?;
        Ok(v["Containers"][&c1_id]["Name"] == "c1"
            && v["Containers"][&c1_id]["IPv4Address"]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("{back_ip}/"))))
    });
    // `node ps` shows only tasks with a container (as Docker): node2 runs none.
    let ps = h1.docker(&["node", "ps", "node2"]).unwrap();
    assert_eq!(ps.lines().skip(1).count(), 0, "{ps}");

    // c1 resolves and reaches the service on `back`; the service's task reaches c1 by its
    // name and alias there.
    eventually("c1 reaches api by name", 30, || {
        Ok(http_get(&lab, 2, "c1", "api")?.contains(MARKER))
    });
    let (api_c, api_host) = api.clone();
    eventually("api resolves c1 on back", 20, || {
        Ok(resolve(&lab, api_host, &api_c, "c1")? == BTreeSet::from([back_ip.clone()]))
    });
    eventually("api resolves the alias", 20, || {
        Ok(resolve(&lab, api_host, &api_c, "cache")? == BTreeSet::from([back_ip.clone()]))
    });
    eventually("api pings c1", 20, || {
        Ok(in_container(
            &lab,
            api_host,
            &api_c,
            &["ping", "-c", "1", "-W", "2", "c1"],
        )
        .is_ok())
    });

    // A daemon restart adopts the connected network too.
    lab.host_mut(2).restart().unwrap();
    lab.wait_ready(2).unwrap();
    let n2 = lab.host(2);
    eventually("c1 reaches api after node2's restart", 40, || {
        Ok(http_get(&lab, 2, "c1", "api")?.contains(MARKER)
            && resolve(&lab, api_host, &api_c, "c1")? == BTreeSet::from([back_ip.clone()]))
    });

    // Bad input: Docker's errors, nothing changes.
    let before = recorded(&lab, 2);
    let err = n2
        .docker(&["network", "connect", "back", "c1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("endpoint with name c1 already exists in network back"),
        "{err}"
    );
    let err = n2
        .docker(&["network", "connect", "svconly", "c1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("network svconly not manually attachable"),
        "{err}"
    );
    let err = n2
        .docker(&["network", "connect", "nope", "c1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("network nope not found"), "{err}");
    let err = n2
        .docker(&["network", "connect", "back", "ghost"])
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("no such container"), "{err}");
    assert_eq!(recorded(&lab, 2), before);
    assert_eq!(address_on(&lab, 2, "c1", "back").unwrap(), back_ip);

    // Disconnect: the interface, the names and the attachment go; `front` stays.
    n2.docker(&["network", "disconnect", "back", "c1"]).unwrap();
    let v = n2.api_get("/v1.47/containers/c1/json").unwrap();
    assert!(v["NetworkSettings"]["Networks"]["back"].is_null(), "{v}");
    assert_eq!(address_on(&lab, 2, "c1", "front").unwrap(), front_ip);
    let addrs = addresses_in(&lab, 2, "c1").unwrap();
    assert!(!addrs.contains(&back_ip), "{addrs}");
    eventually("the connect's attachment released", 20, || {
        Ok(held(&lab, &att)?.is_none())
    });
    eventually("c1 leaves back's DNS", 20, || {
        Ok(resolve(&lab, api_host, &api_c, "c1").map_or(true, |ips| ips.is_empty()))
    });
    let err = n2
        .docker(&["network", "disconnect", "back", "c1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not connected to network back"), "{err}");

    // A gap in the interface names (eth1 disconnected, eth2 kept) survives a daemon restart:
    // the kept interface is adopted, not made again.
    n2.docker(&["network", "connect", "back", "c1"]).unwrap();
    n2.docker(&["network", "connect", "third", "c1"]).unwrap();
    let third_ip = address_on(&lab, 2, "c1", "third").unwrap();
    n2.docker(&["network", "disconnect", "back", "c1"]).unwrap();
    lab.host_mut(2).restart().unwrap();
    lab.wait_ready(2).unwrap();
    let n2 = lab.host(2);
    eventually("c1 keeps eth2 on third after node2's restart", 30, || {
        let addrs = addresses_in(&lab, 2, "c1")?;
        Ok(addrs.matches(&format!(" {third_ip}/")).count() == 1
            && addrs
                .lines()
                .any(|l| l.contains("eth2") && l.contains(&format!(" {third_ip}/")))
            && !addrs.contains("eth1"))
    });
    n2.docker(&["network", "disconnect", "third", "c1"])
        .unwrap();

    // A container on the default bridge joins `back` too (eth1 next to the bridge's eth0),
    // keeps it across a stop/start, and leaves it with its old resolv.conf.
    n2.docker(&["run", "-d", "--name", "plain", BUSYBOX, "sleep", "600"])
        .unwrap();
    let bridge_ip = address_on(&lab, 2, "plain", "bridge").unwrap();
    n2.docker(&["network", "connect", "back", "plain"]).unwrap();
    let plain_ip = address_on(&lab, 2, "plain", "back").unwrap();
    assert_eq!(address_on(&lab, 2, "plain", "bridge").unwrap(), bridge_ip);
    let v = n2.api_get("/v1.47/containers/plain/json").unwrap();
    assert_eq!(v["HostConfig"]["NetworkMode"], "bridge", "{v}");
    let addrs = addresses_in(&lab, 2, "plain").unwrap();
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("eth1") && l.contains(&format!(" {plain_ip}/"))),
        "{addrs}"
    );
    eventually("plain reaches api by name", 30, || {
        Ok(http_get(&lab, 2, "plain", "api")?.contains(MARKER))
    });
    eventually("api resolves plain", 20, || {
        Ok(resolve(&lab, api_host, &api_c, "plain")? == BTreeSet::from([plain_ip.clone()]))
    });
    let err = n2
        .docker(&["network", "connect", "bridge", "plain"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("endpoint with name plain already exists in network bridge"),
        "{err}"
    );
    n2.docker(&["stop", "-t", "1", "plain"]).unwrap();
    n2.docker(&["start", "plain"]).unwrap();
    eventually("the restarted plain reaches api", 30, || {
        Ok(http_get(&lab, 2, "plain", "api")?.contains(MARKER))
    });
    // A daemon restart adopts the bridge container's swarm network.
    lab.host_mut(2).restart().unwrap();
    lab.wait_ready(2).unwrap();
    let (h1, n2) = (lab.host(1), lab.host(2));
    eventually("plain reaches api after node2's restart", 40, || {
        Ok(http_get(&lab, 2, "plain", "api")?.contains(MARKER)
            && resolve(&lab, api_host, &api_c, "plain")? == BTreeSet::from([plain_ip.clone()]))
    });
    let plain_att = attachment_of(&lab, 2, "plain", "back").unwrap();
    n2.docker(&["network", "disconnect", "back", "plain"])
        .unwrap();
    let conf = in_container(&lab, 2, "plain", &["cat", "/etc/resolv.conf"]).unwrap();
    assert!(!conf.contains("127.0.0.11"), "{conf}");
    assert!(!addresses_in(&lab, 2, "plain").unwrap().contains(&plain_ip));
    assert_eq!(address_on(&lab, 2, "plain", "bridge").unwrap(), bridge_ip);
    eventually("plain's attachment released", 20, || {
        Ok(held(&lab, &plain_att)?.is_none())
    });
    n2.docker(&["rm", "-f", "plain"]).unwrap();

    // A stopped container connected later finds the network when it starts.
    n2.docker(&["stop", "-t", "1", "c1"]).unwrap();
    n2.shoal(&["network", "connect", "back", "c1"]).unwrap();
    n2.docker(&["start", "c1"]).unwrap();
    let back_ip = address_on(&lab, 2, "c1", "back").unwrap();
    eventually("the restarted c1 reaches api", 30, || {
        Ok(addresses_in(&lab, 2, "c1")?.contains(&back_ip)
            && http_get(&lab, 2, "c1", "api")?.contains(MARKER))
    });
    let att = attachment_of(&lab, 2, "c1", "back").unwrap();

    // The network the container was created on can go too while another stays; the last one
    // cannot.
    let front_att = attachment_of(&lab, 2, "c1", "front").unwrap();
    n2.docker(&["network", "disconnect", "front", "c1"])
        .unwrap();
    let v = n2.api_get("/v1.47/containers/c1/json").unwrap();
    assert!(v["NetworkSettings"]["Networks"]["front"].is_null(), "{v}");
    assert!(!addresses_in(&lab, 2, "c1").unwrap().contains(&front_ip));
    assert_eq!(attachment_of(&lab, 2, "c1", "back").unwrap(), att);
    eventually("c1's first attachment released", 20, || {
        Ok(held(&lab, &front_att)?.is_none())
    });
    eventually("c1 still reaches api", 20, || {
        Ok(http_get(&lab, 2, "c1", "api")?.contains(MARKER))
    });
    let err = n2
        .docker(&["network", "disconnect", "back", "c1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("is its last network"), "{err}");

    // rm releases every attachment of the container.
    n2.docker(&["rm", "-f", "c1"]).unwrap();
    eventually("c1's attachments released", 20, || {
        Ok(held(&lab, &att)?.is_none() && recorded(&lab, 2) == 0)
    });
    h1.docker(&["service", "rm", "api"]).unwrap();
    eventually("api gone", 30, || {
        Ok(service_containers(&lab, "api").is_empty())
    });
    for n in ["front", "back", "third", "svconly"] {
        eventually(&format!("network {n} removed"), 20, || {
            Ok(h1.docker(&["network", "rm", n]).is_ok())
        });
    }
    for i in 1..=2 {
        let root = lab.host(i).data_root();
        eventually(
            &format!("node{i} has no container namespaces left"),
            30,
            || {
                let ns = netplane_namespaces(&root);
                let tasks = ns.iter().filter(|n| n.contains("-t-")).count();
                let overlays = ns.iter().filter(|n| n.contains("-ov-")).count();
                if tasks > 0 || overlays > 1 {
                    eprintln!("node{i} namespaces: {ns:?}");
                }
                Ok(tasks == 0 && overlays <= 1)
            },
        );
    }
}
