//! What service tests and benches ask a lab host's Engine API about services: their tasks, the
//! tasks' containers, and node IDs by hostname.

use crate::{Host, Lab, wait_for};
use anyhow::{Result, anyhow, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// All tasks of `service` as the API on `h` shows them.
pub fn try_tasks(h: &Host, service: &str) -> Result<Vec<Value>> {
    let v = h.api_get(&format!(
        "/v1.47/tasks?filters=%7B%22service%22%3A%7B%22{service}%22%3Atrue%7D%7D"
    ))?;
    v.as_array()
        .cloned()
        .ok_or_else(|| anyhow!("tasks of {service}: not a list: {v}"))
}

/// [`try_tasks`], empty while the API does not answer (callers poll).
pub fn tasks(h: &Host, service: &str) -> Vec<Value> {
    try_tasks(h, service).unwrap_or_default()
}

pub fn task_state(t: &Value) -> &str {
    t["Status"]["State"].as_str().unwrap_or("")
}

/// Running, and meant to keep running (not on its way out).
pub fn is_running(t: &Value) -> bool {
    task_state(t) == "running" && t["DesiredState"] == "running"
}

/// The tasks of `service` that [`is_running`].
pub fn running(h: &Host, service: &str) -> Vec<Value> {
    tasks(h, service).into_iter().filter(is_running).collect()
}

/// The task's container ID ("" before it has one).
pub fn task_container(t: &Value) -> &str {
    t["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap_or("")
}

/// The task's first address on the network with ID `net`, without its prefix length.
pub fn task_address(t: &Value, net: &str) -> Option<String> {
    t["NetworksAttachments"]
        .as_array()?
        .iter()
        .find(|a| a["Network"]["ID"] == net)
        .and_then(|a| a["Addresses"][0].as_str())
        .map(|s| s.split('/').next().unwrap_or("").to_string())
}

/// The PID of a running container, on whichever lab host runs it.
pub fn container_pid(lab: &Lab, container: &str) -> Result<String> {
    for h in &lab.hosts {
        if let Ok(info) = h.api_get(&format!("/v1.47/containers/{container}/json"))
            && let Some(pid) = info["State"]["Pid"].as_i64().filter(|p| *p > 0)
        {
            return Ok(pid.to_string());
        }
    }
    bail!("container {container} is not running on any node")
}

/// `/proc/<pid>/ns/net` of a running container, on whichever lab host runs it.
pub fn container_netns(lab: &Lab, container: &str) -> Result<String> {
    Ok(format!("/proc/{}/ns/net", container_pid(lab, container)?))
}

/// Hostname of every node, by node ID.
pub fn node_hostnames(h: &Host) -> Result<BTreeMap<String, String>> {
    let nodes = h.api_get("/v1.47/nodes")?;
    Ok(nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            Some((
                n["ID"].as_str()?.to_string(),
                n["Description"]["Hostname"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// The node ID of the node named `hostname`.
pub fn node_id(h: &Host, hostname: &str) -> Result<String> {
    node_hostnames(h)?
        .into_iter()
        .find(|(_, n)| n == hostname)
        .map(|(id, _)| id)
        .ok_or_else(|| anyhow!("no node {hostname}"))
}

/// Waits until no container (running or not) is left on any lab host whose daemon runs.
pub fn wait_no_containers(lab: &Lab, limit: Duration) -> Result<()> {
    wait_for("no containers left on any host", limit, || {
        let mut total = 0;
        for h in lab.hosts.iter().filter(|h| h.daemon.is_some()) {
            total += h
                .api_get("/v1.47/containers/json?all=1")?
                .as_array()
                .map_or(0, Vec::len);
        }
        Ok((total == 0).then_some(()))
    })
}
