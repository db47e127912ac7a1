//! Services on the lab with real containers: replicas spread over the nodes, a killed
//! container's task is replaced, scale down, remove. Driven by the stock docker CLI.

use shoal_e2e::services::{running, task_container, wait_no_containers};
use shoal_e2e::{Lab, wait_for};
use std::time::Duration;

fn running_tasks(lab: &Lab, service: &str) -> Vec<(String, String)> {
    running(lab.host(1), service)
        .iter()
        .map(|t| {
            (
                t["NodeID"].as_str().unwrap_or("").to_string(),
                task_container(t).to_string(),
            )
        })
        .collect()
}

#[test]
fn replicated_service_runs_spreads_heals_and_goes_away() {
    let lab = Lab::swarm_with_images(3, "busybox.tar").unwrap();
    let h1 = lab.host(1);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token.txt");
    std::fs::write(&secret, "t0ken\n").unwrap();
    h1.docker(&["secret", "create", "token", &secret.to_string_lossy()])
        .unwrap();
    h1.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "sleeper",
        "--replicas",
        "3",
        "--restart-delay",
        "1s",
        "--secret",
        "token",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])
    .unwrap();
    let tasks = wait_for("3 running tasks", Duration::from_secs(60), || {
        let t = running_tasks(&lab, "sleeper");
        Ok((t.len() == 3).then_some(t))
    })
    .unwrap();
    let mut nodes: Vec<&String> = tasks.iter().map(|(n, _)| n).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "replicas not spread: {tasks:?}");
    let ls = h1.docker(&["service", "ls"]).unwrap();
    assert!(ls.contains("3/3"), "{ls}");

    // Kill one task's container from outside: the task fails and is replaced.
    let (_, container) = &tasks[0];
    let victim = lab
        .hosts
        .iter()
        .find_map(|h| {
            let info = h
                .api_get(&format!("/v1.47/containers/{container}/json"))
                .ok()?;
            info["State"]["Pid"].as_i64().filter(|p| *p > 0)
        })
        .expect("the container's pid");
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    wait_for("the killed task replaced", Duration::from_secs(60), || {
        let t = running_tasks(&lab, "sleeper");
        Ok((t.len() == 3 && !t.iter().any(|(_, c)| c == container)).then_some(()))
    })
    .unwrap();

    h1.docker(&["service", "scale", "-d", "sleeper=1"]).unwrap();
    wait_for("1 running task", Duration::from_secs(60), || {
        Ok((running_tasks(&lab, "sleeper").len() == 1).then_some(()))
    })
    .unwrap();
    // A secret in use by a service cannot be removed; it can once the service is gone.
    let err = h1
        .docker(&["secret", "rm", "token"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("in use by the following service: sleeper"),
        "{err}"
    );
    h1.docker(&["service", "rm", "sleeper"]).unwrap();
    h1.docker(&["secret", "rm", "token"]).unwrap();
    wait_no_containers(&lab, Duration::from_secs(60)).unwrap();
}
