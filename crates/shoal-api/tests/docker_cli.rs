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
