//! Standalone container endpoints: Docker's container, exec and volume API over this node's
//! runtime and image store. Containers join the default bridge network (their own namespace,
//! an address, published ports), the host's network, or none (loopback only).

use super::Daemon;
use super::bridge::{self, Bridge, PortRequest};
use futures::StreamExt;
use serde_json::{Value, json};
use shoal_api::{Logs, LogsOptions, StdStream};
use shoal_runtime::container::{
    self as rt, ExecOptions, ExecSpec, NetworkMode, RemoveOptions, Runtime, WaitCondition,
};
use shoal_types::ApiError;
use shoal_types::container::{ContainerCreateRequest, ExecCreateRequest};
use std::collections::HashSet;
use std::sync::Arc;
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

/// The bridge, or why this daemon has none.
fn bridge_of(d: &Daemon) -> Result<&Arc<Bridge>, ApiError> {
    d.bridge.as_ref().map_err(|e| {
        ApiError::unavailable(format!("the default bridge network is not available: {e}"))
    })
}

fn network_mode_name(c: &rt::ContainerConfig, on_bridge: bool) -> &'static str {
    match &c.network {
        _ if on_bridge => bridge::NETWORK_NAME,
        NetworkMode::Host => "host",
        NetworkMode::Isolated => "none",
        NetworkMode::Netns(_) => "default",
    }
}

pub fn list(d: &Daemon, all: bool) -> Vec<Value> {
    let br = d.bridge.as_ref().ok();
    d.runtime
        .list(all)
        .into_iter()
        .map(|c| {
            let ep = br.and_then(|b| b.endpoint_of(&c.id));
            let (ports, nets, mode) = match (br, &ep) {
                (Some(b), Some(ep)) => (
                    bridge::ps_ports(ep),
                    super::attach::with_swarm_networks(
                        d,
                        &c.id,
                        b.network_settings(Some(ep))["Networks"].clone(),
                    ),
                    bridge::NETWORK_NAME.to_string(),
                ),
                _ => match super::attach::network_settings(d, &c.id) {
                    Some((name, s)) => (json!([]), s["Networks"].clone(), name),
                    None => (json!([]), json!({}), "default".to_string()),
                },
            };
            json!({
                "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image,
                "ImageID": c.image_id, "Command": c.command, "Created": c.created.timestamp(),
                "State": c.state, "Status": c.status, "Labels": c.labels, "Ports": ports,
                "Mounts": [], "HostConfig": {"NetworkMode": mode},
                "NetworkSettings": {"Networks": nets},
            })
        })
        .collect()
}

/// `GET /containers/json`: Docker's filters (keys AND, values of a key OR; labels AND);
/// a status filter or a limit looks at stopped containers too.
pub fn list_filtered(
    d: &Daemon,
    opts: &shoal_api::ContainerListOptions,
) -> Result<Vec<Value>, ApiError> {
    let f = &opts.filters;
    f.validate(&["id", "name", "label", "status", "ancestor", "network"])?;
    for st in f.get("status") {
        if !matches!(
            st,
            "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
        ) {
            return Err(ApiError::invalid_argument(format!(
                "invalid filter 'status={st}'"
            )));
        }
    }
    let limit = opts.limit.filter(|l| *l > 0);
    let all = opts.all || !f.get("status").is_empty() || limit.is_some();
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let vals = f.get(key);
        vals.is_empty() || vals.iter().any(|v| pred(v))
    };
    let mut out: Vec<Value> = list(d, all)
        .into_iter()
        .filter(|c| {
            let str_of = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            let name = c["Names"][0]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            any("id", &|v| str_of("Id").starts_with(v))
                && any("name", &|v| name.contains(v.trim_start_matches('/')))
                && any("status", &|v| str_of("State") == v)
                && any("ancestor", &|v| {
                    let image_id = str_of("ImageID");
                    str_of("Image") == v
                        || image_id == v
                        || image_id.trim_start_matches("sha256:").starts_with(v)
                })
                && any("network", &|v| c["HostConfig"]["NetworkMode"] == v)
                && f.get("label").iter().all(|want| {
                    let l = &c["Labels"];
                    match want.split_once('=') {
                        Some((k, v)) => l[k] == v,
                        None => !l[*want].is_null(),
                    }
                })
        })
        .collect();
    if let Some(l) = limit {
        out.truncate(l as usize);
    }
    Ok(out)
}

pub fn inspect(d: &Daemon, id: &str) -> Result<Value, ApiError> {
    let c = d.runtime.inspect(id).map_err(api_error)?;
    let ep = d.bridge.as_ref().ok().and_then(|b| b.endpoint_of(&c.id));
    let swarm_net = super::attach::network_settings(d, &c.id);
    let net = match (d.bridge.as_ref().ok(), &ep, &swarm_net) {
        (Some(b), Some(ep), _) => {
            let mut s = b.network_settings(Some(ep));
            s["Networks"] = super::attach::with_swarm_networks(d, &c.id, s["Networks"].take());
            s
        }
        (_, _, Some((_, settings))) => settings.clone(),
        _ => json!({"Networks": {}, "Ports": {}}),
    };
    let port_bindings = ep
        .as_ref()
        .map(|e| {
            let mut m = serde_json::Map::new();
            for p in &e.ports {
                let key = format!("{}/{}", p.container_port, p.proto);
                let entry = m.entry(key).or_insert_with(|| json!([]));
                if let Some(a) = entry.as_array_mut() {
                    a.push(json!({
                        "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                        "HostPort": p.host_port.to_string(),
                    }));
                }
            }
            Value::Object(m)
        })
        .unwrap_or_else(|| json!({}));
    let exposed: serde_json::Map<String, Value> = ep
        .as_ref()
        .map(|e| e.exposed.iter().map(|k| (k.clone(), json!({}))).collect())
        .unwrap_or_default();
    let s = &c.state;
    let status = serde_json::to_value(s.status).unwrap_or(json!("created"));
    let health = s
        .health
        .as_ref()
        .map(|h| json!({"Status": h.status, "FailingStreak": h.failing_streak, "Log": h.log}));
    let hostname = c
        .config
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| c.id.chars().take(12).collect());
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
            "Hostname": hostname, "Image": c.image,
            "Env": c.config.env, "Cmd": c.config.cmd, "Entrypoint": c.config.entrypoint,
            "WorkingDir": c.config.working_dir.clone().unwrap_or_default(),
            "Labels": c.config.labels, "User": c.config.user.clone().unwrap_or_default(),
            "ExposedPorts": exposed, "StopSignal": c.config.stop_signal,
            "Tty": false, "OpenStdin": false, "AttachStdout": false, "AttachStderr": false,
        },
        "HostConfig": {
            "NetworkMode": swarm_net.as_ref().filter(|_| ep.is_none()).map_or(network_mode_name(&c.config, ep.is_some()), |(n, _)| n.as_str()),
            "PortBindings": port_bindings,
            "Memory": c.config.resources.memory, "NanoCpus": c.config.resources.nano_cpus,
            "PidsLimit": c.config.resources.pids_limit, "ReadonlyRootfs": c.config.read_only,
            "RestartPolicy": {"Name": c.config.restart_policy.name(), "MaximumRetryCount": 0},
            "CapAdd": c.config.cap_add, "CapDrop": c.config.cap_drop,
            "AutoRemove": c.config.auto_remove,
        },
        "Mounts": c.volumes.iter().map(|(n, d)| json!({"Type": "volume", "Name": n, "Destination": d})).collect::<Vec<_>>(),
        "NetworkSettings": net,
    }))
}

/// Container ids the runtime knows (any state).
fn live_ids(rt: &Runtime) -> HashSet<String> {
    rt.list(true).into_iter().map(|c| c.id).collect()
}

/// Docker's create: the image resolved locally, the network wired (bridge: a namespace with an
/// address and published ports), then the container created in the runtime. On failure
/// nothing is left behind.
pub async fn create(d: &Daemon, name: Option<String>, body: Value) -> Result<Value, ApiError> {
    let req: ContainerCreateRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid_argument(format!("invalid container config: {e}")))?;
    req.validate()?;
    let image = d.images.resolve(&req.config.image)?;
    let mut cfg = rt::from_create_request(&req, name.as_deref(), image).map_err(api_error)?;
    let h = &req.host_config;
    let mut warnings: Vec<String> = Vec::new();
    let mut attached = None;
    let endpoint = match h.network_mode.as_str() {
        "" | "default" | "bridge" => {
            let br = bridge_of(d)?;
            // -P publishes what the image EXPOSEs too.
            let mut exposed: std::collections::BTreeSet<String> =
                req.config.exposed_ports.keys().cloned().collect();
            if let Ok(ic) = d.images.store.image_config(&req.config.image) {
                exposed.extend(ic.exposed_ports.unwrap_or_default().into_keys());
            }
            let ports = PortRequest {
                bindings: h.port_bindings.clone(),
                publish_all: h.publish_all_ports,
                exposed,
            };
            let ep = br
                .allocate(&ports)
                .await
                .map_err(|e| ApiError::invalid_argument(format!("{e:#}")))?;
            cfg.network = NetworkMode::Netns(ep.netns.clone());
            cfg.addresses = vec![ep.ip.to_string()];
            Some((br.clone(), ep))
        }
        "host" | "none" => {
            if !h.port_bindings.is_empty() || h.publish_all_ports {
                warnings.push(format!(
                    "Published ports are discarded when using {} network mode",
                    h.network_mode
                ));
            }
            cfg.network = if h.network_mode == "host" {
                NetworkMode::Host
            } else {
                NetworkMode::Isolated
            };
            None
        }
        // A swarm network: attachable overlays (daemon/attach.rs).
        other => {
            if !h.port_bindings.is_empty() || h.publish_all_ports {
                warnings.push(format!(
                    "Published ports are discarded on swarm network {other} (not supported for standalone containers)"
                ));
            }
            attached = Some(super::attach::prepare(d, other, &req, &mut cfg).await?);
            None
        }
    };
    let id = match d.runtime.create(cfg).await {
        Ok(id) => id,
        Err(e) => {
            if let Some((br, ep)) = &endpoint {
                br.release(&ep.key).await;
            }
            if let Some(p) = attached {
                super::attach::abort(d, p).await;
            }
            return Err(api_error(e));
        }
    };
    // The container exists now: bind its network endpoint, or remove it again.
    let bound = match (attached, &endpoint) {
        (Some(p), _) => super::attach::bind(d, p, &id).await,
        (None, Some((br, ep))) => br
            .bind(&ep.key, &id)
            .await
            .map_err(|e| ApiError::internal(format!("{e:#}"))),
        (None, None) => Ok(()),
    };
    if let Err(e) = bound {
        let _ = d
            .runtime
            .remove(
                &id,
                RemoveOptions {
                    force: true,
                    volumes: true,
                },
            )
            .await;
        if let Some((br, _)) = &endpoint {
            br.gc(&live_ids(&d.runtime)).await;
        }
        return Err(e);
    }
    Ok(json!({"Id": id, "Warnings": warnings}))
}

/// Releases the bridge endpoints of containers that are gone (removed, or auto-removed by
/// the runtime after they exited).
pub async fn collect_endpoints(d: &Daemon) {
    if let Ok(b) = &d.bridge {
        b.gc(&live_ids(&d.runtime)).await;
    }
    super::attach::reconcile(d).await;
}

/// Runs [`collect_endpoints`] every few seconds for containers removed by the runtime itself.
pub fn spawn_endpoint_gc(d: std::sync::Weak<Daemon>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(d) = d.upgrade() else { return };
            collect_endpoints(&d).await;
        }
    });
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

/// How long an attach to a created container waits for its start.
const ATTACH_START_WAIT: Duration = Duration::from_secs(3600);

/// `attach`: the output written from now on (and before, with `logs`). On a created container
/// it first waits for the start (`docker run` attaches before it starts the container); a
/// container that started and already stopped in the meantime still has its output sent.
pub fn attach(rt: &Runtime, id: &str, opts: shoal_api::AttachOptions) -> Result<Logs, ApiError> {
    let c = rt.inspect(id).map_err(api_error)?;
    let id = c.id.clone();
    let since = chrono::Utc::now();
    let rt = rt.clone();
    let log_opts = LogsOptions {
        follow: opts.stream,
        stdout: opts.stdout,
        stderr: opts.stderr,
        since: (!opts.logs).then_some(since),
        ..Default::default()
    };
    let lines = futures::stream::once(async move {
        // Woken by each state change of the container (no polling): a `--rm` container that
        // starts, exits and is removed quickly is seen started at its first change.
        if opts.stream
            && let Ok(mut changes) = rt.subscribe(&id)
        {
            let started = async {
                while let Ok(c) = rt.inspect(&id) {
                    let started_since = c.state.started_at.is_some_and(|t| t >= since);
                    if c.state.is_running() || started_since || changes.changed().await.is_err() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(ATTACH_START_WAIT, started).await;
        }
        match logs(&rt, &id, log_opts) {
            Ok(l) => l.lines,
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    })
    .flatten()
    .boxed();
    Ok(Logs { tty: false, lines })
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

pub async fn remove(d: &Daemon, id: &str, force: bool, volumes: bool) -> Result<(), ApiError> {
    d.runtime
        .remove(id, RemoveOptions { force, volumes })
        .await
        .map_err(api_error)?;
    collect_endpoints(d).await;
    Ok(())
}

pub async fn top(rt: &Runtime, id: &str) -> Result<Value, ApiError> {
    let t = rt.top(id).await.map_err(api_error)?;
    Ok(json!({"Titles": t.titles, "Processes": t.processes}))
}

// ---- exec ----

pub fn exec_create(rt: &Runtime, container: &str, body: Value) -> Result<Value, ApiError> {
    let req: ExecCreateRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid_argument(format!("invalid exec config: {e}")))?;
    req.validate()?;
    if req.privileged {
        return Err(ApiError::invalid_argument(
            "privileged exec is not supported by Shoal",
        ));
    }
    let spec = ExecSpec {
        opts: ExecOptions {
            cmd: req.cmd,
            env: req.env,
            user: Some(req.user).filter(|u| !u.is_empty()),
            working_dir: Some(req.working_dir).filter(|w| !w.is_empty()),
            tty: req.tty,
        },
        attach_stdin: req.attach_stdin,
        attach_stdout: req.attach_stdout,
        attach_stderr: req.attach_stderr,
    };
    let id = rt.exec_create(container, spec).map_err(api_error)?;
    Ok(json!({"Id": id}))
}

pub async fn exec_start(
    rt: &Runtime,
    id: &str,
    body: Value,
    stdin: Option<shoal_api::ByteStream>,
) -> Result<Logs, ApiError> {
    let detach = body.get("Detach").and_then(Value::as_bool).unwrap_or(false);
    let tty = rt.exec_inspect(id).map_err(api_error)?.spec.opts.tty;
    // A read error on the client's connection ends the input like a close would.
    let stdin = stdin.map(|s| {
        s.take_while(|r| futures::future::ready(r.is_ok()))
            .filter_map(|r| futures::future::ready(r.ok().map(|b| b.to_vec())))
            .boxed()
    });
    let out = rt.exec_start(id, stdin).await.map_err(api_error)?;
    if detach {
        drop(out);
        return Ok(Logs {
            tty,
            lines: futures::stream::empty().boxed(),
        });
    }
    let lines = out
        .map(|(stream, data)| {
            Ok(shoal_api::LogLine {
                stream: match stream {
                    rt::LogStream::Stdout => StdStream::Stdout,
                    rt::LogStream::Stderr => StdStream::Stderr,
                },
                timestamp: chrono::Utc::now(),
                attrs: Vec::new(),
                line: bytes::Bytes::from(data),
            })
        })
        .boxed();
    Ok(Logs { tty, lines })
}

pub fn exec_resize(rt: &Runtime, id: &str, height: u16, width: u16) -> Result<(), ApiError> {
    rt.exec_resize(id, height, width).map_err(api_error)
}

pub fn exec_inspect(rt: &Runtime, id: &str) -> Result<Value, ApiError> {
    let e = rt.exec_inspect(id).map_err(api_error)?;
    let o = &e.spec.opts;
    Ok(json!({
        "ID": e.id, "Running": e.running, "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": o.tty, "entrypoint": o.cmd.first().cloned().unwrap_or_default(),
            "arguments": o.cmd.iter().skip(1).collect::<Vec<_>>(), "privileged": false,
            "user": o.user.clone().unwrap_or_default(),
        },
        "OpenStdin": e.spec.attach_stdin, "OpenStderr": e.spec.attach_stderr,
        "OpenStdout": e.spec.attach_stdout, "CanRemove": false,
        "ContainerID": e.container_id, "DetachKeys": "", "Pid": e.pid,
    }))
}

// ---- volumes ----

fn volume_json(rt: &Runtime, v: &rt::Volume) -> Value {
    json!({
        "Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint,
        "CreatedAt": v.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "Labels": v.labels, "Scope": v.scope, "Options": v.options,
        "UsageData": {"Size": -1, "RefCount": rt.volume_users(&v.name).len()},
    })
}

fn volume_matches(rt: &Runtime, v: &rt::Volume, f: &shoal_api::Filters) -> bool {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let vals = f.get(key);
        vals.is_empty() || vals.iter().any(|x| pred(x))
    };
    any("name", &|x| v.name.contains(x))
        && any("driver", &|x| x == v.driver)
        && any("label", &|x| match x.split_once('=') {
            Some((k, val)) => v.labels.get(k).is_some_and(|have| have == val),
            None => v.labels.contains_key(x),
        })
        && any("dangling", &|x| {
            let unused = rt.volume_users(&v.name).is_empty();
            matches!(x, "true" | "1") == unused
        })
}

pub fn volume_list(rt: &Runtime, filters: &shoal_api::Filters) -> Result<Value, ApiError> {
    filters.validate(&["name", "driver", "label", "dangling"])?;
    let vols = rt.volume_list().map_err(api_error)?;
    let list: Vec<Value> = vols
        .iter()
        .filter(|v| volume_matches(rt, v, filters))
        .map(|v| volume_json(rt, v))
        .collect();
    Ok(json!({"Volumes": list, "Warnings": []}))
}

pub fn volume_create(rt: &Runtime, body: Value) -> Result<Value, ApiError> {
    let req: shoal_types::volume::VolumeCreateRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid_argument(format!("invalid volume config: {e}")))?;
    req.validate()?;
    let v = rt
        .volume_create(
            Some(req.name.as_str()),
            Some(req.driver.as_str()),
            req.labels,
            req.driver_opts,
        )
        .map_err(api_error)?;
    Ok(volume_json(rt, &v))
}

pub fn volume_inspect(rt: &Runtime, name: &str) -> Result<Value, ApiError> {
    let v = rt.volume_inspect(name).map_err(api_error)?;
    Ok(volume_json(rt, &v))
}

pub fn volume_remove(rt: &Runtime, name: &str, force: bool) -> Result<(), ApiError> {
    rt.volume_remove(name, force).map_err(api_error)
}

/// Removes volumes no container uses: anonymous ones only, or every unused one with
/// `all=true` (Docker's rule since API 1.42).
pub fn volume_prune(rt: &Runtime, filters: &shoal_api::Filters) -> Result<Value, ApiError> {
    filters.validate(&["label", "all"])?;
    let all = filters
        .get("all")
        .first()
        .is_some_and(|v| matches!(*v, "true" | "1"));
    let mut deleted = Vec::new();
    let mut reclaimed: u64 = 0;
    for v in rt.volume_list().map_err(api_error)? {
        if (!all && !v.anonymous)
            || !rt.volume_users(&v.name).is_empty()
            || !volume_matches(rt, &v, filters)
        {
            continue;
        }
        let size = dir_size(&v.mountpoint);
        if rt.volume_remove(&v.name, false).is_ok() {
            reclaimed += size;
            deleted.push(v.name);
        }
    }
    Ok(json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}))
}

fn dir_size(p: &std::path::Path) -> u64 {
    fn walk(p: &std::path::Path, depth: u32) -> u64 {
        let Ok(md) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if !md.is_dir() || depth > 64 {
            return md.len();
        }
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| walk(&e.path(), depth + 1)).sum())
            .unwrap_or(0)
    }
    walk(p, 0)
}
