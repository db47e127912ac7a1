//! Standalone containers on one lab host: the default bridge (published port reached from the
//! host's namespace and from localhost, two containers talking over the bridge), exec, a named
//! volume that outlives its containers, a daemon restart under a running container, the stock
//! docker CLI, and nothing left behind.

use shoal_e2e::{Lab, LabOptions, in_ns, test_images, wait_for};
use std::time::Duration;

/// busybox wget inside the lab host's namespace (its `-T` option crashes this busybox build,
/// so the time limit comes from `timeout`).
fn wget(ns: &str, url: &str) -> anyhow::Result<String> {
    in_ns(ns, &["timeout", "5", "busybox", "wget", "-qO-", url])
}

const PAGE: &str = "shoal-test-httpd-ok";

#[test]
fn standalone_containers_bridge_exec_volumes_and_docker_cli() {
    let images = test_images().unwrap();
    let mut lab = Lab::new(LabOptions {
        hosts: 1,
        daemon_args: Vec::new(),
    })
    .unwrap();
    let h = lab.host(1);
    let ns = h.netns.clone();
    h.shoal(&[
        "image",
        "load",
        "-i",
        &images.join("both.tar").to_string_lossy(),
    ])
    .unwrap();

    // `image import` of a bare rootfs with a CMD; save and load round-trip it.
    h.shoal(&[
        "image",
        "import",
        "--change",
        "CMD [\"echo\", \"imported-ok\"]",
        &images.join("busybox-rootfs.tar").to_string_lossy(),
        "shoal-test/imported:1",
    ])
    .unwrap();
    let saved = h.dir.join("imported.tar");
    h.shoal(&[
        "image",
        "save",
        "-o",
        &saved.to_string_lossy(),
        "shoal-test/imported:1",
    ])
    .unwrap();
    h.shoal(&["image", "rm", "shoal-test/imported:1"]).unwrap();
    h.shoal(&["image", "load", "-i", &saved.to_string_lossy()])
        .unwrap();
    let said = h.shoal(&["run", "--rm", "shoal-test/imported:1"]).unwrap();
    assert_eq!(said.trim(), "imported-ok");
    h.shoal(&["image", "rm", "shoal-test/imported:1"]).unwrap();

    // A published port answers on the host's address and on localhost.
    h.shoal(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8080:80",
        "shoal-test/httpd:latest",
    ])
    .unwrap();
    let url = format!("http://{}:8080/", h.addr);
    let page = wait_for("the published port", Duration::from_secs(20), || {
        Ok(wget(&ns, &url).ok().filter(|p| p.contains(PAGE)))
    })
    .unwrap();
    assert!(page.contains(PAGE));
    let local = wget(&ns, "http://127.0.0.1:8080/").unwrap();
    assert!(local.contains(PAGE), "{local}");
    let ps = h.shoal(&["ps"]).unwrap();
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    // A port already published is refused, and the refused container leaves nothing behind.
    let err = h
        .shoal(&[
            "run",
            "-d",
            "--name",
            "clash",
            "-p",
            "8080:80",
            "shoal-test/httpd:latest",
        ])
        .unwrap_err()
        .to_string();
    assert!(err.contains("port is already allocated"), "{err}");
    let names = h.shoal(&["ps", "-a", "--format", "{{.Names}}"]).unwrap();
    assert_eq!(names.trim(), "web");
    let namespaces = std::fs::read_dir(h.dir.join("run/netns")).unwrap().count();
    assert_eq!(namespaces, 1);
    let ip = h
        .shoal(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])
        .unwrap()
        .trim()
        .to_string();
    assert!(ip.starts_with("172.17."), "{ip}");

    // The daemon killed and restarted: the container kept running and its port still answers
    // (the bridge, veth and rules are adopted, not rebuilt from scratch).
    lab.host_mut(1).restart().unwrap();
    let h = lab.host(1);
    let page = wait_for(
        "the published port after a restart",
        Duration::from_secs(20),
        || {
            Ok(wget(&ns, "http://127.0.0.1:8080/")
                .ok()
                .filter(|p| p.contains(PAGE)))
        },
    )
    .unwrap();
    assert!(page.contains(PAGE));
    let ip_again = h
        .shoal(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])
        .unwrap();
    assert_eq!(ip_again.trim(), ip);

    // A second container reaches the first over the bridge; exec shows output and exit codes.
    h.shoal(&[
        "run",
        "-d",
        "--name",
        "client",
        "shoal-test/busybox:latest",
        "sleep",
        "300",
    ])
    .unwrap();
    let got = h
        .shoal(&["exec", "client", "wget", "-qO-", &format!("http://{ip}/")])
        .unwrap();
    assert!(got.contains(PAGE), "{got}");
    let hosts = h.shoal(&["exec", "client", "cat", "/etc/hosts"]).unwrap();
    let client_ip = h
        .shoal(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "client"])
        .unwrap();
    assert!(hosts.contains(client_ip.trim()), "{hosts}");
    let o = h
        .shoal_output(&["exec", "client", "sh", "-c", "echo from-exec; exit 3"])
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "from-exec\n");

    // A named volume keeps its data across container removal.
    h.shoal(&["volume", "create", "keep"]).unwrap();
    h.shoal(&[
        "run",
        "--name",
        "writer",
        "-v",
        "keep:/data",
        "shoal-test/busybox:latest",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .unwrap();
    h.shoal(&["rm", "writer"]).unwrap();
    let read = h
        .shoal(&[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "shoal-test/busybox:latest",
            "cat",
            "/data/f",
        ])
        .unwrap();
    assert_eq!(read.trim(), "kept");

    // The stock docker CLI.
    h.docker(&[
        "run",
        "-d",
        "--name",
        "dk",
        "-p",
        "8090:80",
        "shoal-test/httpd:latest",
    ])
    .unwrap();
    let ps = h.docker(&["ps"]).unwrap();
    assert!(
        ps.contains("dk") && ps.contains("0.0.0.0:8090->80/tcp"),
        "{ps}"
    );
    let page = wait_for("docker's published port", Duration::from_secs(20), || {
        Ok(wget(&ns, "http://127.0.0.1:8090/")
            .ok()
            .filter(|p| p.contains(PAGE)))
    })
    .unwrap();
    assert!(page.contains(PAGE));
    let ex = h.docker(&["exec", "dk", "cat", "/www/index.html"]).unwrap();
    assert!(ex.contains(PAGE), "{ex}");
    let port = h
        .docker(&[
            "inspect",
            "-f",
            "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}",
            "dk",
        ])
        .unwrap();
    assert_eq!(port.trim(), "8090");
    h.docker(&[
        "create",
        "--name",
        "say",
        "shoal-test/busybox:latest",
        "echo",
        "docker-logs-ok",
    ])
    .unwrap();
    h.docker(&["start", "say"]).unwrap();
    assert_eq!(h.docker(&["wait", "say"]).unwrap().trim(), "0");
    assert!(
        h.docker(&["logs", "say"])
            .unwrap()
            .contains("docker-logs-ok")
    );
    h.docker(&["stop", "-t", "1", "dk"]).unwrap();
    h.docker(&["rm", "dk", "say"]).unwrap();
    h.docker(&["volume", "create", "dv"]).unwrap();
    assert!(h.docker(&["volume", "ls"]).unwrap().contains("dv"));
    let vi = h.docker(&["volume", "inspect", "dv"]).unwrap();
    assert!(vi.contains("\"Driver\": \"local\""), "{vi}");
    h.docker(&["volume", "rm", "dv"]).unwrap();

    // Removal releases each container's namespace, veth and port rules.
    h.shoal(&["rm", "-f", "web", "client"]).unwrap();
    h.shoal(&["volume", "rm", "keep"]).unwrap();
    assert_eq!(h.shoal(&["ps", "-aq"]).unwrap().trim(), "");
    let netns_dir = h.dir.join("run/netns");
    let left: Vec<_> = std::fs::read_dir(&netns_dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let links = in_ns(&ns, &["ip", "-br", "link"]).unwrap();
    assert!(!links.contains("shv"), "veths left: {links}");
    assert!(wget(&ns, "http://127.0.0.1:8080/").is_err());

    // A clean daemon stop with nothing running removes the bridge and its nft table.
    let bridge_count = links.lines().filter(|l| l.starts_with("sh")).count();
    assert_eq!(bridge_count, 1, "{links}");
    lab.host_mut(1).stop().unwrap();
    let links = in_ns(&ns, &["ip", "-br", "link"]).unwrap();
    assert!(
        !links.lines().any(|l| l.starts_with("sh")),
        "bridge left: {links}"
    );
    let tables = in_ns(&ns, &["nft", "list", "tables"]).unwrap();
    assert!(!tables.contains("-bridge"), "{tables}");
}
