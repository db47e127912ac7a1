//! Standalone container endpoints: Docker's container API over this node's runtime and image
//! store. Containers get their own network namespace (loopback only) or the host's; bridge
//! networking and `-p` publishing come with the network data plane and are refused clearly.

use super::images::Images;
use futures::StreamExt;
use serde_json::{Value, json};
use shoal_api::{Logs, LogsOptions, StdStream};
use shoal_runtime::container::{
    self as rt, ContainerConfig, RemoveOptions, Runtime, WaitCondition,
};
use shoal_types::ApiError;
use shoal_types::container::ContainerCreateRequest;
use std::time::Duration;

pub fn api_error(e: rt::Error) -> ApiError {
    let msg = e.to_string();
    match e {
        rt::Error::NotFound(_) => ApiError::not_found(msg),
        rt::Error::InvalidArgument(_) => ApiError::invalid_argument(msg),
        rt::Error::Conflict(_) => ApiError::conflict(msg),
        _ => ApiError::internal(msg),
    }
}

fn ts(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

pub fn list(rt: &Runtime, all: bool) -> Vec<Value> {
    rt.list(all)
        .into_iter()
        .map(|c| {
            json!({
                "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image,
                "ImageID": c.image_id, "Command": c.command, "Created": c.created.timestamp(),
                "State": c.state, "Status": c.status, "Labels": c.labels, "Ports": [],
                "Mounts": [], "HostConfig": {"NetworkMode": "default"},
                "NetworkSettings": {"Networks": {}},
            })
        })
        .collect()
}

pub fn inspect(rt: &Runtime, id: &str) -> Result<Value, ApiError> {
    let c = rt.inspect(id).map_err(api_error)?;
    let s = &c.state;
    let status = serde_json::to_value(s.status).unwrap_or(json!("created"));
    let health = s
        .health
        .as_ref()
        .map(|h| json!({"Status": h.status, "FailingStreak": h.failing_streak, "Log": h.log}));
    Ok(json!({
        "Id": c.id, "Created": ts(Some(c.created)), "Path": c.path, "Args": c.args,
        "State": {
            "Status": status, "Running": s.is_running(), "Paused": false,
            "Restarting": status == "restarting", "OOMKilled": s.oom_killed, "Dead": false,
            "Pid": s.pid, "ExitCode": s.exit_code, "Error": s.error,
            "StartedAt": ts(s.started_at), "FinishedAt": ts(s.finished_at), "Health": health,
        },
        "Image": c.image_id, "Name": format!("/{}", c.name), "RestartCount": s.restart_count,
        "Driver": "overlay2", "Platform": "linux",
        "ResolvConfPath": c.resolv_conf_path, "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path, "LogPath": c.log_path,
        "Config": {
            "Hostname": c.config.hostname.clone().unwrap_or_default(), "Image": c.image,
            "Env": c.config.env, "Cmd": c.config.cmd, "Entrypoint": c.config.entrypoint,
            "WorkingDir": c.config.working_dir.clone().unwrap_or_default(),
            "Labels": c.config.labels, "User": c.config.user.clone().unwrap_or_default(),
        },
        "HostConfig": {
            "Memory": c.config.resources.memory, "NanoCpus": c.config.resources.nano_cpus,
            "PidsLimit": c.config.resources.pids_limit, "ReadonlyRootfs": c.config.read_only,
            "RestartPolicy": {"Name": c.config.restart_policy.name(), "MaximumRetryCount": 0},
            "CapAdd": c.config.cap_add, "CapDrop": c.config.cap_drop,
        },
        "Mounts": c.volumes.iter().map(|(n, d)| json!({"Type": "volume", "Name": n, "Destination": d})).collect::<Vec<_>>(),
        "NetworkSettings": {"Networks": {}},
    }))
}

/// Docker's create request → a runtime config, with the image resolved locally.
pub fn create_config(
    images: &Images,
    name: Option<String>,
    body: Value,
) -> Result<ContainerConfig, ApiError> {
    let req: ContainerCreateRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid_argument(format!("invalid container config: {e}")))?;
    req.validate()?;
    let h = &req.host_config;
    if !h.port_bindings.is_empty() || h.publish_all_ports {
        return Err(ApiError::invalid_argument(
            "publishing ports (-p/-P) needs the bridge network, which this build does not provide yet",
        ));
    }
    let image = images.resolve(&req.config.image)?;
    rt::from_create_request(&req, name.as_deref(), image).map_err(api_error)
}

pub async fn wait(rt: &Runtime, id: &str, condition: &str) -> Result<Value, ApiError> {
    let cond = match condition {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return Err(ApiError::invalid_argument(format!(
                "invalid condition: {other:?}"
            )));
        }
    };
    let exit = rt.wait(id, cond).await.map_err(api_error)?;
    Ok(json!({"StatusCode": exit.exit_code, "Error": exit.error.map(|m| json!({"Message": m}))}))
}

pub fn logs(rt: &Runtime, id: &str, opts: LogsOptions) -> Result<Logs, ApiError> {
    let stream = rt
        .logs(
            id,
            rt::LogOptions {
                follow: opts.follow,
                since: opts.since,
                until: opts.until,
                tail: opts.tail.map(|n| n as usize),
                stdout: opts.stdout,
                stderr: opts.stderr,
            },
        )
        .map_err(api_error)?;
    let lines = stream
        .map(|r| {
            r.map(|rec| shoal_api::LogLine {
                stream: match rec.stream {
                    rt::LogStream::Stdout => StdStream::Stdout,
                    rt::LogStream::Stderr => StdStream::Stderr,
                },
                timestamp: rec.time,
                attrs: Vec::new(),
                line: bytes::Bytes::from(format!("{}\n", rec.line)),
            })
            .map_err(api_error)
        })
        .boxed();
    Ok(Logs { tty: false, lines })
}

pub async fn stop(
    rt: &Runtime,
    id: &str,
    timeout: Option<i64>,
    signal: Option<String>,
) -> Result<(), ApiError> {
    if let Some(sig) = signal.filter(|s| !s.is_empty()) {
        return rt.kill(id, &sig).await.map_err(api_error);
    }
    rt.stop(id, timeout.map(|t| Duration::from_secs(t.max(0) as u64)))
        .await
        .map_err(api_error)
}

pub async fn remove(rt: &Runtime, id: &str, force: bool, volumes: bool) -> Result<(), ApiError> {
    rt.remove(id, RemoveOptions { force, volumes })
        .await
        .map_err(api_error)
}

pub async fn top(rt: &Runtime, id: &str) -> Result<Value, ApiError> {
    let t = rt.top(id).await.map_err(api_error)?;
    Ok(json!({"Titles": t.titles, "Processes": t.processes}))
}
