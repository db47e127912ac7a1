//! Stacks on the lab: `shoal stack deploy` of examples/stacks/web runs every service with its
//! secret and config inside the containers; a redeploy of an edited file changes only the
//! edited service; `--prune`; bad files change nothing; `stack rm` removes exactly what the
//! stack made; the stock `docker stack` commands work against Shoal too.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use shoal_e2e::{Host, Lab, LabOptions, in_ns, test_images, wait_for};

const NS_LABEL: &str = "com.docker.stack.namespace";

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn filtered(h: &Host, what: &str, key: &str, value: &str) -> Vec<Value> {
    let f = serde_json::json!({ key: { value: true } }).to_string();
    h.api_get(&format!("/v1.47/{what}?filters={}", enc(&f)))
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn stack_objects(h: &Host, what: &str, stack: &str) -> Vec<Value> {
    filtered(h, what, "label", &format!("{NS_LABEL}={stack}"))
}

/// name → (ID, version) of a stack's services, secrets, configs and networks.
fn snapshot(h: &Host, stack: &str) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    for what in ["services", "secrets", "configs", "networks"] {
        for o in stack_objects(h, what, stack) {
            let name = o["Spec"]["Name"]
                .as_str()
                .or(o["Name"].as_str())
                .unwrap_or_default()
                .to_string();
            let id = o["ID"].as_str().or(o["Id"].as_str()).unwrap_or_default();
            let version = o["Version"]["Index"].as_u64().unwrap_or(0);
            out.insert(format!("{what}/{name}"), (id.to_string(), version));
        }
    }
    out
}

fn running_tasks(h: &Host, service: &str) -> Vec<Value> {
    filtered(h, "tasks", "service", service)
        .into_iter()
        .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
        .collect()
}

fn task_ids(ts: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = ts
        .iter()
        .map(|t| t["ID"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

fn wait_running(h: &Host, service: &str, n: usize) -> Vec<Value> {
    wait_for(
        &format!("{n} running tasks of {service}"),
        Duration::from_secs(90),
        || {
            let t = running_tasks(h, service);
            Ok((t.len() == n).then_some(t))
        },
    )
    .unwrap()
}

/// The root directory of a task's container as the host sees it (`/proc/<pid>/root`).
fn container_root(lab: &Lab, task: &Value) -> PathBuf {
    let cid = task["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap_or_default();
    let pid = lab
        .hosts
        .iter()
        .find_map(|h| {
            let info = h.api_get(&format!("/v1.47/containers/{cid}/json")).ok()?;
            info["State"]["Pid"].as_i64().filter(|p| *p > 0)
        })
        .unwrap_or_else(|| panic!("no running container {cid}"));
    PathBuf::from(format!("/proc/{pid}/root"))
}

fn file_mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Copies examples/stacks/web into a scratch directory (the test edits its copy).
fn copy_web_example(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/stacks/web");
    for f in ["stack.yml", "index.html", "api_token.txt"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    dir.join("stack.yml")
}

fn deploy(h: &Host, file: &Path, stack: &str, extra: &[&str]) -> std::process::Output {
    let f = file.to_string_lossy().to_string();
    let mut args = vec!["stack", "deploy", "-c", f.as_str()];
    args.extend_from_slice(extra);
    args.push(stack);
    h.shoal_output(&args).unwrap()
}

fn ok(out: std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // Shown with --nocapture or when the test fails.
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn refused(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn lab_with_images(hosts: usize) -> Lab {
    Lab::swarm_with_images(hosts, "both.tar").unwrap()
}

#[test]
fn web_stack_deploy_redeploy_prune_and_rm() {
    let lab = lab_with_images(3);
    let h = lab.host(1);
    let dir = tempfile::tempdir().unwrap();
    let file = copy_web_example(dir.path());

    // Objects outside the stack that `stack rm` must leave alone.
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "outside\n").unwrap();
    h.shoal(&["secret", "create", "outsider", &outside.to_string_lossy()])
        .unwrap();
    h.shoal(&[
        "service",
        "create",
        "-d",
        "--name",
        "outsider",
        "--publish",
        "9090:80",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])
    .unwrap();

    let out = ok(deploy(h, &file, "web", &[]));
    for line in [
        "Creating network web_default",
        "Creating secret web_api_token",
        "Creating config web_index_html",
        "Creating service web_web",
        "Creating service web_client",
    ] {
        assert!(out.contains(line), "{out}");
    }
    let web = wait_running(h, "web_web", 2);
    let client = wait_running(h, "web_client", 1);

    // Labels as docker's stack deploy sets them.
    let svc = h.api_get("/v1.47/services/web_web").unwrap();
    assert_eq!(svc["Spec"]["Labels"][NS_LABEL], "web");
    assert_eq!(
        svc["Spec"]["Labels"]["com.docker.stack.image"],
        "shoal-test/httpd:latest"
    );

    // The secret and the config are files in the containers, with their content and mode.
    let root = container_root(&lab, &web[0]);
    let secret = root.join("run/secrets/api_token");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "example-token-not-a-real-secret\n"
    );
    assert_eq!(file_mode(&secret), 0o400);
    let page = root.join("www/index.html");
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("hello from shoal")
    );
    assert_eq!(file_mode(&page), 0o444);

    // The client reaches the web service by name (DNS + VIP on the stack's overlay) ...
    let client_cid = client[0]["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait_for(
        "the client's answers from web",
        Duration::from_secs(60),
        || {
            let logs = lab
                .hosts
                .iter()
                .find_map(|h| h.docker(&["logs", &client_cid]).ok())
                .unwrap_or_default();
            Ok(logs.contains("hello from shoal").then_some(()))
        },
    )
    .unwrap();
    // ... and the page is published on port 8080 of every node (the routing mesh), asked from
    // another host on the lab LAN.
    for (i, host) in lab.hosts.iter().enumerate() {
        let from = &lab.hosts[(i + 1) % lab.hosts.len()].netns;
        let url = format!("http://{}:8080/", host.addr);
        let page = wait_for("the published port", Duration::from_secs(60), || {
            let r = in_ns(from, &["curl", "-s", "-m", "2", &url]);
            Ok(r.ok().filter(|p| p.contains("hello from shoal")))
        })
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(page.contains("<h1>"), "{page}");
    }

    // ls / services / ps.
    let ls = h.shoal(&["stack", "ls"]).unwrap();
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["web", "2"]),
        "{ls}"
    );
    let services = h.shoal(&["stack", "services", "web"]).unwrap();
    assert!(
        services.contains("web_web") && services.contains("web_client"),
        "{services}"
    );
    assert!(!services.contains("outsider"), "{services}");
    let ps = h.shoal(&["stack", "ps", "--no-trunc", "web"]).unwrap();
    assert_eq!(ps.matches("Running").count(), 6, "{ps}");
    for t in web.iter().chain(&client) {
        assert!(ps.contains(t["ID"].as_str().unwrap()), "{ps}");
    }
    let ps_q = h
        .shoal(&["stack", "ps", "-q", "-f", "desired-state=running", "web"])
        .unwrap();
    assert_eq!(ps_q.lines().count(), 3, "{ps_q}");

    // Redeploy unchanged: nothing is updated.
    let before = snapshot(h, "web");
    let out = ok(deploy(h, &file, "web", &[]));
    assert!(!out.contains("Updating service"), "{out}");
    assert!(out.contains("Service web_web is up to date"), "{out}");
    let after = snapshot(h, "web");
    for (k, v) in &before {
        if k.starts_with("services/") {
            assert_eq!(
                after.get(k),
                Some(v),
                "{k} changed on an unchanged redeploy"
            );
        }
    }

    // Redeploy an edited file: only the client changes.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("sleep 2;", "sleep 3;")).unwrap();
    let out = ok(deploy(h, &file, "web", &[]));
    assert!(out.contains("Updating service web_client"), "{out}");
    assert!(!out.contains("Updating service web_web"), "{out}");
    wait_for(
        "the client's task replaced",
        Duration::from_secs(90),
        || {
            let t = running_tasks(h, "web_client");
            Ok((t.len() == 1 && task_ids(&t) != task_ids(&client)).then_some(()))
        },
    )
    .unwrap();
    assert_eq!(task_ids(&running_tasks(h, "web_web")), task_ids(&web));
    let now = snapshot(h, "web");
    assert_eq!(now.get("services/web_web"), before.get("services/web_web"));

    // Bad files change nothing, in this stack or a new one.
    let snap = snapshot(h, "web");
    let bad = dir.path().join("bad.yml");
    let cases: [(&str, &str); 6] = [
        (
            "services:\n  web:\n    image: [unclosed\n",
            "bad.yml:4:1: did not find expected",
        ),
        (
            "services:\n  web:\n    image: shoal-test/busybox:latest\n    bogus: 1\n",
            "services.web.bogus",
        ),
        (
            "services:\n  web:\n    image: shoal-test/busybox:${STACK_TEST_UNSET_VAR:?set STACK_TEST_UNSET_VAR first}\n",
            "set STACK_TEST_UNSET_VAR first",
        ),
        (
            "services:\n  web:\n    image: shoal-test/busybox:latest\n    secrets: [missing]\nsecrets:\n  missing:\n    external: true\n",
            "secret \"missing\" is declared as external, but could not be found",
        ),
        (
            "services:\n  web:\n    image: shoal-test/busybox:latest\n    networks: [ext]\nnetworks:\n  ext:\n    external: true\n",
            "network \"ext\" is declared as external, but could not be found",
        ),
        (
            "services:\n  web:\n    image: shoal-test/busybox:latest\n    ports: [\"9090:80\"]\n",
            "port 9090/tcp is already published by service \"outsider\"",
        ),
    ];
    for (text, expect) in cases {
        std::fs::write(&bad, text).unwrap();
        for stack in ["web", "fresh"] {
            let err = refused(deploy(h, &bad, stack, &[]));
            assert!(err.contains(expect), "{text}\n→ {err}");
        }
        assert_eq!(snapshot(h, "web"), snap, "a bad file changed the stack");
        assert!(snapshot(h, "fresh").is_empty());
    }
    // A service of the same name made outside the stack is not taken over.
    h.shoal(&[
        "service",
        "create",
        "-d",
        "--name",
        "fresh_web",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])
    .unwrap();
    std::fs::write(
        &bad,
        "services:\n  web:\n    image: shoal-test/busybox:latest\n",
    )
    .unwrap();
    let err = refused(deploy(h, &bad, "fresh", &[]));
    assert!(
        err.contains("service \"fresh_web\" already exists and is not part of stack \"fresh\""),
        "{err}"
    );
    assert!(snapshot(h, "fresh").is_empty());
    h.shoal(&["service", "rm", "fresh_web"]).unwrap();

    // --prune: the client is no longer in the file.
    let text = std::fs::read_to_string(&file).unwrap();
    let start = text.find("  client:").unwrap();
    let end = text.find("\nconfigs:").unwrap();
    let pruned = format!("{}{}", &text[..start], &text[end + 1..]);
    std::fs::write(&file, pruned).unwrap();
    let out = ok(deploy(h, &file, "web", &[]));
    assert!(!out.contains("Removing service"), "{out}");
    assert!(h.api_get("/v1.47/services/web_client").unwrap()["ID"].is_string());
    // A secret's content cannot change: refused before anything is pruned or created.
    let token = dir.path().join("api_token.txt");
    std::fs::write(&token, "rotated\n").unwrap();
    let snap = snapshot(h, "web");
    let err = refused(deploy(h, &file, "web", &["--prune"]));
    assert!(err.contains("a secret's content cannot change"), "{err}");
    assert_eq!(snapshot(h, "web"), snap);
    std::fs::write(&token, "example-token-not-a-real-secret\n").unwrap();
    let out = ok(deploy(h, &file, "web", &["--prune"]));
    assert!(out.contains("Removing service web_client"), "{out}");
    assert!(!out.contains("Updating service web_web"), "{out}");
    assert_eq!(stack_objects(h, "services", "web").len(), 1);
    assert_eq!(task_ids(&running_tasks(h, "web_web")), task_ids(&web));

    // rm: exactly the stack's objects go.
    let out = h.shoal(&["stack", "rm", "web"]).unwrap();
    for line in [
        "Removing service web_web",
        "Removing secret web_api_token",
        "Removing config web_index_html",
        "Removing network web_default",
    ] {
        assert!(out.contains(line), "{out}");
    }
    wait_for("the stack gone", Duration::from_secs(60), || {
        Ok(snapshot(h, "web").is_empty().then_some(()))
    })
    .unwrap();
    assert!(h.api_get("/v1.47/secrets/outsider").unwrap()["ID"].is_string());
    assert_eq!(running_tasks(h, "outsider").len(), 1);
    let err = h.shoal_output(&["stack", "rm", "web"]).unwrap();
    assert!(String::from_utf8_lossy(&err.stderr).contains("Nothing found in stack: web"));
}

#[test]
fn stock_docker_stack_commands_work_against_shoal() {
    let lab = lab_with_images(2);
    let h = lab.host(1);
    let dir = tempfile::tempdir().unwrap();
    let file = copy_web_example(dir.path());
    let f = file.to_string_lossy().to_string();

    h.docker(&["stack", "deploy", "-c", &f, "dock"]).unwrap();
    wait_running(h, "dock_web", 2);
    wait_running(h, "dock_client", 1);
    let ls = h.docker(&["stack", "ls"]).unwrap();
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["dock", "2"]),
        "{ls}"
    );
    let services = h.docker(&["stack", "services", "dock"]).unwrap();
    assert!(
        services.contains("dock_web") && services.contains("2/2"),
        "{services}"
    );
    let ps = h.docker(&["stack", "ps", "dock"]).unwrap();
    assert_eq!(ps.matches("Running").count(), 6, "{ps}");
    // Shoal's own commands see docker's stack the same way.
    let shoal_ls = h.shoal(&["stack", "ls"]).unwrap();
    assert!(shoal_ls.contains("dock"), "{shoal_ls}");
    // A shoal redeploy of the same file finds nothing to change.
    let out = ok(deploy(h, &file, "dock", &[]));
    assert!(!out.contains("Updating service"), "{out}");
    // And docker's redeploy is accepted by the daemon.
    h.docker(&["stack", "deploy", "-c", &f, "dock"]).unwrap();

    let rm = h.docker(&["stack", "rm", "dock"]).unwrap();
    assert!(rm.contains("Removing service dock_web"), "{rm}");
    wait_for("docker's stack gone", Duration::from_secs(60), || {
        Ok(snapshot(h, "dock").is_empty().then_some(()))
    })
    .unwrap();
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/stacks")
        .join(name)
        .join("stack.yml")
        .to_string_lossy()
        .to_string()
}

fn container_logs(lab: &Lab, task: &Value) -> String {
    let cid = task["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap_or_default();
    lab.hosts
        .iter()
        .find_map(|h| h.docker(&["logs", cid]).ok())
        .unwrap_or_default()
}

fn node_id(h: &Host) -> String {
    h.api_get("/v1.47/info").unwrap()["Swarm"]["NodeID"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn multi_tier_and_global_agent_examples() {
    let lab = lab_with_images(3);
    let h = lab.host(1);
    // --detach=false returns once every service runs all its tasks.
    let out = ok(h
        .shoal_output(&[
            "stack",
            "deploy",
            "--detach=false",
            "-c",
            &example("multi-tier"),
            "shop",
        ])
        .unwrap());
    assert!(out.contains("Stack shop: all services converged"), "{out}");
    for (svc, n) in [
        ("shop_front", 2),
        ("shop_api", 2),
        ("shop_worker", 1),
        ("shop_store", 1),
    ] {
        assert_eq!(running_tasks(h, svc).len(), n, "{svc}");
    }
    ok(
        h.shoal_output(&["stack", "deploy", "-c", &example("global-agent"), "agents"])
            .unwrap(),
    );

    wait_running(h, "shop_front", 2);
    wait_running(h, "shop_api", 2);
    let worker = wait_running(h, "shop_worker", 1);
    let store = wait_running(h, "shop_store", 1);
    // The store is pinned to the manager (node1) and keeps its page on the named volume.
    assert_eq!(store[0]["NodeID"].as_str().unwrap(), node_id(h));
    let page = container_root(&lab, &store[0]).join("data/index.html");
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .starts_with("stored since")
    );
    let mut nets = h
        .shoal(&["network", "ls", "--format", "{{.Name}}"])
        .unwrap();
    nets = nets
        .lines()
        .filter(|l| l.starts_with("shop_"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(nets, "shop_back shop_front");
    // The worker reaches the api by its alias on "back" and the store by name.
    wait_for("the worker's answers", Duration::from_secs(60), || {
        let logs = container_logs(&lab, &worker[0]);
        Ok((logs.contains("api on") && logs.contains("stored since")).then_some(()))
    })
    .unwrap();
    // front is published through the mesh on 8081.
    let url = format!("http://{}:8081/", lab.host(3).addr);
    wait_for("front on 8081", Duration::from_secs(60), || {
        Ok(in_ns(&lab.host(2).netns, &["curl", "-s", "-m", "2", &url])
            .ok()
            .filter(|p| !p.is_empty()))
    })
    .unwrap();

    // One agent on every node, each serving its own hostname, on host-mode port 9100 of the
    // node it runs on.
    let agents = wait_running(h, "agents_agent", 3);
    let mut nodes: Vec<&str> = agents.iter().filter_map(|t| t["NodeID"].as_str()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "{agents:?}");
    for t in &agents {
        let root = container_root(&lab, t);
        let page = wait_for("the agent's page", Duration::from_secs(30), || {
            Ok(std::fs::read_to_string(root.join("www/index.html"))
                .ok()
                .filter(|p| !p.trim().is_empty()))
        })
        .unwrap();
        let hostname = std::fs::read_to_string(root.join("etc/hostname")).unwrap_or_default();
        assert_eq!(page.trim(), hostname.trim(), "{t}");
    }
    let mut served = Vec::new();
    for (i, host) in lab.hosts.iter().enumerate() {
        let url = format!("http://{}:9100/", host.addr);
        let from = &lab.hosts[(i + 1) % lab.hosts.len()].netns;
        let page = wait_for("the host-mode port 9100", Duration::from_secs(60), || {
            Ok(in_ns(from, &["curl", "-s", "-m", "2", &url])
                .ok()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()))
        })
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        served.push(page);
    }
    served.sort();
    served.dedup();
    assert_eq!(
        served.len(),
        3,
        "each node's port 9100 serves its own agent: {served:?}"
    );

    // A worker cannot deploy.
    let err = refused(
        lab.host(2)
            .shoal_output(&["stack", "deploy", "-c", &example("global-agent"), "other"])
            .unwrap(),
    );
    assert!(err.contains("this node is not a swarm manager"), "{err}");

    let ls = h.shoal(&["stack", "ls"]).unwrap();
    let rows: Vec<Vec<&str>> = ls
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, vec![vec!["agents", "1"], vec!["shop", "4"]], "{ls}");
    h.shoal(&["stack", "rm", "shop", "agents"]).unwrap();
    wait_for("both stacks gone", Duration::from_secs(60), || {
        Ok((snapshot(h, "shop").is_empty() && snapshot(h, "agents").is_empty()).then_some(()))
    })
    .unwrap();
}

/// A `docker-registry` (Debian's distribution registry) inside a lab host's namespace, killed
/// by PID on drop.
struct Registry {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(netns: &str, addr: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", netns, "docker-registry", "serve"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        let reg = Registry { child, _dir: dir };
        let url = format!("http://{addr}/v2/");
        wait_for("the registry", Duration::from_secs(20), || {
            Ok(in_ns(netns, &["curl", "-s", "-m", "1", &url]).ok())
        })
        .unwrap();
        reg
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn resolve_image_pins_digests_from_a_registry() {
    let images = test_images().unwrap();
    let registry = format!("{}.1:5000", shoal_e2e::LAB_NET);
    let lab = Lab::new(LabOptions {
        hosts: 2,
        daemon_args: vec!["--insecure-registry".into(), registry.clone()],
    })
    .unwrap();
    lab.form_cluster(1).unwrap();
    let h = lab.host(1);
    let _reg = Registry::start(&h.netns, &registry);
    h.docker(&["load", "-i", &images.join("busybox.tar").to_string_lossy()])
        .unwrap();
    let image = format!("{registry}/shoal-test/busybox:latest");
    h.docker(&["tag", "shoal-test/busybox:latest", &image])
        .unwrap();
    h.docker(&["push", &image]).unwrap();
    wait_for("ready nodes", Duration::from_secs(30), || {
        let out = h.shoal(&["node", "ls"])?;
        Ok((out.matches("Ready").count() == 2).then_some(()))
    })
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.yml");
    std::fs::write(
        &file,
        format!(
            "services:\n  app:\n    image: {image}\n    command: [\"sleep\", \"600\"]\n    deploy:\n      replicas: 2\n"
        ),
    )
    .unwrap();
    let out = deploy(h, &file, "reg", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out);
    assert!(!stderr.contains("could not be accessed"), "{stderr}");
    // Both nodes pull the image from the registry, by digest.
    wait_running(h, "reg_app", 2);
    let svc = h.api_get("/v1.47/services/reg_app").unwrap();
    let pinned = svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(pinned.starts_with(&format!("{image}@sha256:")), "{pinned}");
    assert_eq!(
        svc["Spec"]["Labels"]["com.docker.stack.image"],
        image.as_str()
    );
    let version = svc["Version"]["Index"].as_u64();

    // Same file, same digest: nothing to update, whichever resolve mode.
    for mode in ["always", "changed", "never"] {
        let out = ok(deploy(h, &file, "reg", &["--resolve-image", mode]));
        assert!(
            out.contains("Service reg_app is up to date"),
            "{mode}: {out}"
        );
    }
    let svc = h.api_get("/v1.47/services/reg_app").unwrap();
    assert_eq!(svc["Version"]["Index"].as_u64(), version);
    h.shoal(&["stack", "rm", "reg"]).unwrap();
}

#[test]
fn external_secret_from_stdin_used_by_a_stack() {
    let lab = lab_with_images(1);
    let h = lab.host(1);
    // `secret create NAME -` reads stdin; `-l` labels it.
    let out = h
        .shoal_stdin(
            &["secret", "create", "-l", "owner=ops", "shared_token", "-"],
            "from-stdin\n",
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let inspect = h.shoal(&["secret", "inspect", "shared_token"]).unwrap();
    assert!(inspect.contains("\"owner\": \"ops\""), "{inspect}");
    let out = h
        .shoal_stdin(
            &[
                "config",
                "create",
                "--template-driver",
                "golang",
                "tmpl",
                "-",
            ],
            "x\n",
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cfg = h
        .shoal(&[
            "config",
            "inspect",
            "--format",
            "{{json .Spec.Templating}}",
            "tmpl",
        ])
        .unwrap();
    assert_eq!(cfg.trim(), r#"{"Name":"golang"}"#);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.yml");
    std::fs::write(
        &file,
        "services:\n  app:\n    image: shoal-test/busybox:latest\n    command: [\"sleep\", \"600\"]\n    secrets:\n      - source: token\n        target: /run/secrets/app_token\n        mode: 0440\nsecrets:\n  token:\n    external: true\n    name: shared_token\n",
    )
    .unwrap();
    let out = ok(deploy(h, &file, "ext", &[]));
    assert!(!out.contains("Creating secret"), "{out}");
    let task = wait_running(h, "ext_app", 1);
    let path = container_root(&lab, &task[0]).join("run/secrets/app_token");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "from-stdin\n");
    assert_eq!(file_mode(&path), 0o440);
    // The stack did not make the secret, so removing the stack keeps it.
    h.shoal(&["stack", "rm", "ext"]).unwrap();
    wait_for("the stack gone", Duration::from_secs(60), || {
        Ok(snapshot(h, "ext").is_empty().then_some(()))
    })
    .unwrap();
    assert!(h.api_get("/v1.47/secrets/shared_token").unwrap()["ID"].is_string());
}

#[test]
fn stack_config_prints_the_merged_interpolated_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join(".env"), "TAG=1.5\nPORT=8088\n").unwrap();
    std::fs::write(
        d.join("base.yml"),
        "x-common: &common\n  stop_grace_period: 3s\nservices:\n  app:\n    <<: *common\n    image: shoal-test/busybox:${TAG}\n    build: .\n    command: sh -c 'echo $$HOME'\n    ports: [\"${PORT}:80\"]\n",
    )
    .unwrap();
    std::fs::write(
        d.join("override.yml"),
        "services:\n  app:\n    environment:\n      MODE: ${MODE:-prod}\n    deploy:\n      replicas: 2\n",
    )
    .unwrap();
    let out = std::process::Command::new(shoal_e2e::shoal_bin())
        .current_dir(d)
        .args(["stack", "config", "-c", "base.yml", "-c", "override.yml"])
        .env_remove("MODE")
        .env_remove("TAG")
        .env_remove("PORT")
        .output()
        .unwrap();
    let yaml = ok(out.clone());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Ignoring unsupported options: build"),
        "{stderr}"
    );
    for want in [
        "image: shoal-test/busybox:1.5",
        "published: 8088",
        "MODE: prod",
        "replicas: 2",
        "stop_grace_period: 3s",
        "$$HOME",
    ] {
        assert!(yaml.contains(want), "{want} missing in:\n{yaml}");
    }
    assert!(
        !yaml.contains("x-common") && !yaml.contains("build"),
        "{yaml}"
    );
}
