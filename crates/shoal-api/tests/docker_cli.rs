//! Wire compatibility: the real docker CLI (client only) against the server with a fake backend.

mod common;

use common::{SELF_ID, TestServer, WORKER_ID};

const DOCKER: &str = "/usr/local/bin/docker";

async fn docker(srv: &TestServer, args: &[&str]) -> (i32, String, String) {
    assert!(
        std::path::Path::new(DOCKER).exists(),
        "this test needs the docker CLI at {DOCKER}"
    );
    let cfg = srv.dir.path().join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(DOCKER)
            .arg("-H")
            .arg(srv.host())
            .args(args)
            .env("DOCKER_CONFIG", &cfg)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("docker finishes within 60 s")
    .expect("docker runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_version_talks_to_shoal() {
    let srv = TestServer::start().await;
    let (code, out, err) = docker(&srv, &["version"]).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("Server: Shoal"), "{out}");
    assert!(out.contains("1.47 (minimum version 1.24)"), "{out}");
    // The CLI negotiated 1.47 (ours), not its own 1.50.
    assert!(out.contains("API version:       1.47"), "{out}");
    let (code, out, _) = docker(
        &srv,
        &[
            "version",
            "--format",
            "{{.Server.Platform.Name}} {{.Server.APIVersion}}",
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "Shoal 1.47");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_node_ls_reads_our_nodes() {
    let srv = TestServer::start().await;
    let (code, out, err) = docker(&srv, &["node", "ls"]).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let cols: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        cols,
        [
            "ID",
            "HOSTNAME",
            "STATUS",
            "AVAILABILITY",
            "MANAGER STATUS",
            "ENGINE VERSION"
        ]
    );
    // Sorted by hostname: alpha (worker) before mgr1 (self, leader).
    let w: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(w, [WORKER_ID, "alpha", "Down", "Drain", "0.1.0"]);
    let m: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        m,
        [SELF_ID, "*", "mgr1", "Ready", "Active", "Leader", "0.1.0"]
    );
    // Filters reach the backend in the form the CLI sends.
    let (code, out, _) = docker(&srv, &["node", "ls", "-q", "--filter", "role=manager"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), SELF_ID);
    // Errors print the daemon's message.
    let (code, _, err) = docker(&srv, &["node", "inspect", "nosuch"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("node nosuch not found"), "{err}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_swarm_init_prints_join_command() {
    let srv = TestServer::start().await;
    let (code, out, err) = docker(&srv, &["swarm", "init", "--advertise-addr", "127.0.0.1"]).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.starts_with(&format!(
            "Swarm initialized: current node ({SELF_ID}) is now a manager."
        )),
        "{out}"
    );
    assert!(
        out.contains("docker swarm join --token SWMTKN-1-aaa-worker 127.0.0.1:2377"),
        "{out}"
    );
    let (code, out, _) = docker(&srv, &["swarm", "join-token", "-q", "manager"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "SWMTKN-1-aaa-manager");
    let (code, _, err) = docker(&srv, &["swarm", "leave"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("Error response from daemon: You are attempting to leave"),
        "{err}"
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_service_create_and_logs() {
    let srv = TestServer::start().await;
    let (code, out, err) = docker(
        &srv,
        &[
            "service",
            "create",
            "-d",
            "--no-resolve-image",
            "--name",
            "web",
            "--replicas",
            "2",
            "-p",
            "8080:80",
            "--env",
            "A=1",
            "busybox:latest",
            "sleep",
            "100",
        ],
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.trim(), "svc1");
    {
        let s = srv.fake.services.lock().unwrap();
        let spec = serde_json::to_value(&s[0].0).unwrap();
        assert_eq!(spec["Name"], "web");
        assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 2);
        assert_eq!(
            spec["TaskTemplate"]["ContainerSpec"]["Image"],
            "busybox:latest"
        );
        assert_eq!(
            spec["TaskTemplate"]["ContainerSpec"]["Args"],
            serde_json::json!(["sleep", "100"])
        );
        assert_eq!(spec["EndpointSpec"]["Ports"][0]["PublishedPort"], 8080);
    }
    // The CLI resolves the details triple through /nodes, /services and /tasks and prints
    // "<service>.<slot>.<task>@<node>    | <line>".
    let (code, out, err) = docker(&srv, &["service", "logs", "web"]).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out, "web.1.task1@mgr1    | line 0\n");
    assert_eq!(err, "web.1.task1@mgr1    | oops\n");
    let (_, out, _) = docker(&srv, &["service", "logs", "--raw", "-t", "web"]).await;
    assert_eq!(out, "2026-11-23T08:49:25.575405293Z line 0\n");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_events_secret_network() {
    let srv = TestServer::start().await;
    let (code, out, err) = docker(
        &srv,
        &[
            "events",
            "--since",
            "1795423000",
            "--until",
            "1795423700",
            "--filter",
            "type=service",
        ],
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].ends_with("service create svc1 (name=web)"),
        "{out}"
    );
    assert!(
        lines[1].contains(&format!("node update {SELF_ID} (name=mgr1)")),
        "{out}"
    );
    let file = srv.dir.path().join("secret.txt");
    std::fs::write(&file, "s3cret\n").unwrap();
    let (code, out, err) =
        docker(&srv, &["secret", "create", "db_pw", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "sec1");
    let (code, out, err) = docker(
        &srv,
        &["network", "create", "-d", "overlay", "--attachable", "n1"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "net1");
    let (code, _, err) = docker(&srv, &["network", "inspect", "nosuch"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("network nosuch not found"), "{err}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_exec_uses_the_upgraded_connection() {
    let srv = TestServer::start().await;
    // Create, start over a hijacked (101 Upgrade) connection, then the exit code from inspect.
    let (code, out, err) = docker(&srv, &["exec", "c1", "echo", "hi"]).await;
    assert_eq!(out, "hi\n", "stderr: {err}");
    assert_eq!(err, "warn\n");
    assert_eq!(code, 3);
    let (code, _, err) = docker(&srv, &["exec", "nosuch", "true"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("No such container: nosuch"), "{err}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pull_reads_the_progress_stream() {
    let srv = TestServer::start().await;
    let (code, out, err) = docker(&srv, &["pull", "busybox"]).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // The CLI normalizes the reference before it asks: fromImage=docker.io/library/busybox, tag=latest.
    assert!(
        out.contains("Status: Downloaded newer image for docker.io/library/busybox:latest"),
        "{out}"
    );
    // An error after the stream started arrives as an errorDetail message.
    let (code, _, err) = docker(&srv, &["pull", "broken/image"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("manifest unknown"), "{err}");
    srv.shutdown().await;
}
