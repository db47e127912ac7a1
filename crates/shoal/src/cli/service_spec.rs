//! Turning `service create|update` flags into a ServiceSpec (as JSON, so every field the
//! daemon returned survives an update round trip).

use clap::Args;
use serde_json::{Map, Value, json};
use shoal_api::Client;
use shoal_api::client::{escape_segment, with_query};
use shoal_api::types::parse_duration;

use super::CliError;
use super::format::s;

/// Settings shared by create and update; in update only the given ones change.
#[derive(Debug, Args, Default, Clone)]
pub struct Tuning {
    /// Maximum number of tasks updated simultaneously (0 to update all at once)
    #[arg(long)]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (ns|us|ms|s|m|h)
    #[arg(long)]
    pub update_delay: Option<String>,
    /// Action on update failure ("pause", "continue", "rollback")
    #[arg(long)]
    pub update_failure_action: Option<String>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h)
    #[arg(long)]
    pub update_monitor: Option<String>,
    /// Failure rate to tolerate during an update
    #[arg(long)]
    pub update_max_failure_ratio: Option<f64>,
    /// Update order ("start-first", "stop-first")
    #[arg(long)]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously
    #[arg(long)]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h)
    #[arg(long)]
    pub rollback_delay: Option<String>,
    /// Action on rollback failure ("pause", "continue")
    #[arg(long)]
    pub rollback_failure_action: Option<String>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h)
    #[arg(long)]
    pub rollback_monitor: Option<String>,
    /// Failure rate to tolerate during a rollback
    #[arg(long)]
    pub rollback_max_failure_ratio: Option<f64>,
    /// Rollback order ("start-first", "stop-first")
    #[arg(long)]
    pub rollback_order: Option<String>,
    /// Restart when condition is met ("none", "on-failure", "any")
    #[arg(long)]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h)
    #[arg(long)]
    pub restart_delay: Option<String>,
    /// Maximum number of restarts before giving up
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h)
    #[arg(long)]
    pub restart_window: Option<String>,
    /// Limit CPUs
    #[arg(long)]
    pub limit_cpu: Option<f64>,
    /// Limit memory (e.g. 64m)
    #[arg(long)]
    pub limit_memory: Option<String>,
    /// Limit maximum number of processes
    #[arg(long)]
    pub limit_pids: Option<i64>,
    /// Reserve CPUs
    #[arg(long)]
    pub reserve_cpu: Option<f64>,
    /// Reserve memory (e.g. 64m)
    #[arg(long)]
    pub reserve_memory: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h)
    #[arg(long)]
    pub stop_grace_period: Option<String>,
    /// Signal to stop the container
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Command to run to check health
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long)]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before counting retries (ms|s|m|h)
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Container hostname
    #[arg(long)]
    pub hostname: Option<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Use an init inside each service container to forward signals and reap processes
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Endpoint mode (vip or dnsrr)
    #[arg(long)]
    pub endpoint_mode: Option<String>,
    /// Maximum number of tasks per node (default 0 = unlimited); Docker's flag name
    #[arg(long = "replicas-max-per-node", visible_alias = "max-replicas")]
    pub max_replicas: Option<u64>,
}

fn err(m: impl Into<String>) -> CliError {
    CliError::Other(m.into())
}

pub fn dur(flag: &str, v: &str) -> Result<i64, CliError> {
    parse_duration(v).map_err(|e| err(format!("invalid argument {v:?} for \"--{flag}\" flag: {e}")))
}

/// go-units RAMInBytes: `64m`, `1g`, `512k`, `1024` (binary multiples).
pub fn ram_bytes(v: &str) -> Result<i64, CliError> {
    let t = v.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| err(format!("invalid size: {v:?}")))?;
    if n < 0.0 || !n.is_finite() {
        return Err(err(format!("invalid size: {v:?}")));
    }
    Ok((n * mult as f64) as i64)
}

fn nano_cpus(v: f64) -> Result<i64, CliError> {
    if v < 0.0 || !v.is_finite() {
        return Err(err(format!("invalid CPU value {v}")));
    }
    Ok((v * 1e9).round() as i64)
}

/// Makes `v[key]` an object (creating or replacing a null) and returns it.
pub fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = json!({});
    }
    if !v[key].is_object() {
        v[key] = json!({});
    }
    &mut v[key]
}

/// `a=b,c=d` fields of a long-syntax option; bare words become `word=""`.
fn csv_fields(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), v.trim().to_string()),
            None => (p.trim().to_lowercase(), String::new()),
        })
        .collect()
}

/// `-p 8080:80[/udp]`, `-p 80`, or `-p published=8080,target=80,protocol=udp,mode=host`.
pub fn parse_publish(s: &str) -> Result<Value, CliError> {
    let bad = || err(format!("invalid port specification {s:?}"));
    let mut proto = "tcp".to_string();
    let mut mode = "ingress".to_string();
    let (mut published, mut target) = (0u64, 0u64);
    if s.contains('=') {
        for (k, v) in csv_fields(s) {
            match k.as_str() {
                "published" => published = v.parse().map_err(|_| bad())?,
                "target" => target = v.parse().map_err(|_| bad())?,
                "protocol" => proto = v,
                "mode" => mode = v,
                _ => {
                    return Err(err(format!(
                        "invalid field {k:?} in port specification {s:?}"
                    )));
                }
            }
        }
    } else {
        let (ports, p) = s.split_once('/').unwrap_or((s, "tcp"));
        proto = p.to_string();
        match ports.rsplit_once(':') {
            Some((pubp, tgt)) => {
                let pubp = pubp.rsplit_once(':').map(|(_, p)| p).unwrap_or(pubp);
                published = pubp.parse().map_err(|_| bad())?;
                target = tgt.parse().map_err(|_| bad())?;
            }
            None => target = ports.parse().map_err(|_| bad())?,
        }
    }
    if target == 0 || target > 65535 || published > 65535 {
        return Err(bad());
    }
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp")
        || !matches!(mode.as_str(), "ingress" | "host")
    {
        return Err(bad());
    }
    let mut p = json!({"Protocol": proto, "TargetPort": target, "PublishMode": mode});
    if published != 0 {
        p["PublishedPort"] = json!(published);
    }
    Ok(p)
}

/// `--mount type=bind,source=/a,target=/b,readonly`.
pub fn parse_mount(s: &str) -> Result<Value, CliError> {
    let mut m = Map::new();
    let mut ty = "volume".to_string();
    for (k, v) in csv_fields(s) {
        match k.as_str() {
            "type" => ty = v,
            "source" | "src" => {
                m.insert("Source".into(), json!(v));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), json!(v));
            }
            "readonly" | "ro" => {
                let ro = v.is_empty() || matches!(v.as_str(), "1" | "true");
                m.insert("ReadOnly".into(), json!(ro));
            }
            "tmpfs-size" => {
                m.insert("TmpfsOptions".into(), json!({"SizeBytes": ram_bytes(&v)?}));
            }
            "volume-nocopy" => {
                m.insert("VolumeOptions".into(), json!({"NoCopy": true}));
            }
            _ => return Err(err(format!("unexpected key {k:?} in mount {s:?}"))),
        }
    }
    if !matches!(ty.as_str(), "bind" | "volume" | "tmpfs") {
        return Err(err(format!("invalid mount type {ty:?}")));
    }
    if !m.contains_key("Target") {
        return Err(err(format!("target is required in mount {s:?}")));
    }
    m.insert("Type".into(), json!(ty));
    Ok(Value::Object(m))
}

/// `--secret name` or `--secret source=name,target=file,uid=0,gid=0,mode=0444`; the ID is
/// looked up by exact name, as docker does.
pub async fn parse_file_ref(c: &Client, kind: &str, s: &str) -> Result<Value, CliError> {
    let (mut source, mut target, mut uid, mut gid, mut mode) = (
        String::new(),
        String::new(),
        "0".to_string(),
        "0".to_string(),
        0o444u64,
    );
    if s.contains('=') {
        for (k, v) in csv_fields(s) {
            match k.as_str() {
                "source" | "src" => source = v,
                "target" => target = v,
                "uid" => uid = v,
                "gid" => gid = v,
                "mode" => {
                    mode = u64::from_str_radix(v.trim_start_matches("0o"), 8)
                        .map_err(|_| err(format!("invalid mode {v:?}")))?
                }
                _ => return Err(err(format!("invalid field {k:?} in {kind} request {s:?}"))),
            }
        }
    } else {
        source = s.to_string();
    }
    if source.is_empty() {
        return Err(err(format!("source is required in {kind} {s:?}")));
    }
    if target.is_empty() {
        target = if kind == "config" {
            format!("/{source}")
        } else {
            source.clone()
        };
    }
    let mut f = shoal_api::Filters::default();
    f.add("name", source.clone());
    let list: Vec<Value> = c
        .get_json(&with_query(
            &format!("/{kind}s"),
            &[("filters", f.to_json())],
        ))
        .await?;
    let id = list
        .iter()
        .find(|o| super::format::s(o, &["Spec", "Name"]) == source)
        .map(|o| super::format::s(o, &["ID"]))
        .ok_or_else(|| err(format!("{kind} not found: {source}")))?;
    let (id_key, name_key) = if kind == "config" {
        ("ConfigID", "ConfigName")
    } else {
        ("SecretID", "SecretName")
    };
    Ok(
        json!({"File": {"Name": target, "UID": uid, "GID": gid, "Mode": mode}, id_key: id, name_key: source}),
    )
}

/// `--network name` or `--network name=x,alias=y`: the target becomes the network's ID.
pub async fn parse_network(c: &Client, s: &str) -> Result<Value, CliError> {
    let (mut name, mut aliases) = (String::new(), Vec::new());
    if s.contains('=') {
        for (k, v) in csv_fields(s) {
            match k.as_str() {
                "name" | "target" => name = v,
                "alias" => aliases.push(v),
                _ => return Err(err(format!("invalid field {k:?} in network {s:?}"))),
            }
        }
    } else {
        name = s.to_string();
    }
    let net: Value = c
        .get_json(&with_query(
            &format!("/networks/{}", escape_segment(&name)),
            &[("scope", "swarm".into())],
        ))
        .await?;
    let mut v = json!({"Target": s_or(&net, "Id", &name)});
    if !aliases.is_empty() {
        v["Aliases"] = json!(aliases);
    }
    Ok(v)
}

fn s_or(v: &Value, key: &str, default: &str) -> String {
    let x = s(v, &[key]);
    if x.is_empty() { default.to_string() } else { x }
}

/// The six update/rollback settings of one kind, borrowed from the flags.
struct UpdCfg<'a> {
    par: Option<u64>,
    delay: &'a Option<String>,
    fa: &'a Option<String>,
    mon: &'a Option<String>,
    ratio: Option<f64>,
    order: &'a Option<String>,
}

fn update_cfg(spec: &mut Value, key: &str, cfg: UpdCfg<'_>, prefix: &str) -> Result<(), CliError> {
    let UpdCfg {
        par,
        delay,
        fa,
        mon,
        ratio,
        order,
    } = cfg;
    if par.is_none()
        && delay.is_none()
        && fa.is_none()
        && mon.is_none()
        && ratio.is_none()
        && order.is_none()
    {
        return Ok(());
    }
    let u = obj(spec, key);
    if let Some(p) = par {
        u["Parallelism"] = json!(p);
    }
    if let Some(d) = delay {
        u["Delay"] = json!(dur(&format!("{prefix}-delay"), d)?);
    }
    if let Some(f) = fa {
        let ok = if prefix == "update" {
            matches!(f.as_str(), "pause" | "continue" | "rollback")
        } else {
            matches!(f.as_str(), "pause" | "continue")
        };
        if !ok {
            return Err(err(format!("invalid --{prefix}-failure-action {f:?}")));
        }
        u["FailureAction"] = json!(f);
    }
    if let Some(m) = mon {
        u["Monitor"] = json!(dur(&format!("{prefix}-monitor"), m)?);
    }
    if let Some(r) = ratio {
        if !(0.0..=1.0).contains(&r) {
            return Err(err(format!(
                "--{prefix}-max-failure-ratio must be between 0 and 1"
            )));
        }
        u["MaxFailureRatio"] = json!(r);
    }
    if let Some(o) = order {
        if !matches!(o.as_str(), "start-first" | "stop-first") {
            return Err(err(format!("invalid --{prefix}-order {o:?}")));
        }
        u["Order"] = json!(o);
    }
    Ok(())
}

/// Applies the given tuning flags to a ServiceSpec JSON value.
pub fn apply_tuning(spec: &mut Value, t: &Tuning) -> Result<(), CliError> {
    let upd = UpdCfg {
        par: t.update_parallelism,
        delay: &t.update_delay,
        fa: &t.update_failure_action,
        mon: &t.update_monitor,
        ratio: t.update_max_failure_ratio,
        order: &t.update_order,
    };
    update_cfg(spec, "UpdateConfig", upd, "update")?;
    let rb = UpdCfg {
        par: t.rollback_parallelism,
        delay: &t.rollback_delay,
        fa: &t.rollback_failure_action,
        mon: &t.rollback_monitor,
        ratio: t.rollback_max_failure_ratio,
        order: &t.rollback_order,
    };
    update_cfg(spec, "RollbackConfig", rb, "rollback")?;
    let tt = obj(spec, "TaskTemplate");
    if t.restart_condition.is_some()
        || t.restart_delay.is_some()
        || t.restart_max_attempts.is_some()
        || t.restart_window.is_some()
    {
        let r = obj(tt, "RestartPolicy");
        if let Some(cnd) = &t.restart_condition {
            if !matches!(cnd.as_str(), "none" | "on-failure" | "any") {
                return Err(err(format!(
                    "invalid restart condition {cnd:?}: must be none, on-failure or any"
                )));
            }
            r["Condition"] = json!(cnd);
        }
        if let Some(d) = &t.restart_delay {
            r["Delay"] = json!(dur("restart-delay", d)?);
        }
        if let Some(n) = t.restart_max_attempts {
            r["MaxAttempts"] = json!(n);
        }
        if let Some(w) = &t.restart_window {
            r["Window"] = json!(dur("restart-window", w)?);
        }
    }
    if t.limit_cpu.is_some() || t.limit_memory.is_some() || t.limit_pids.is_some() {
        let l = obj(obj(tt, "Resources"), "Limits");
        if let Some(c) = t.limit_cpu {
            l["NanoCPUs"] = json!(nano_cpus(c)?);
        }
        if let Some(m) = &t.limit_memory {
            l["MemoryBytes"] = json!(ram_bytes(m)?);
        }
        if let Some(p) = t.limit_pids {
            l["Pids"] = json!(p);
        }
    }
    if t.reserve_cpu.is_some() || t.reserve_memory.is_some() {
        let r = obj(obj(tt, "Resources"), "Reservations");
        if let Some(c) = t.reserve_cpu {
            r["NanoCPUs"] = json!(nano_cpus(c)?);
        }
        if let Some(m) = &t.reserve_memory {
            r["MemoryBytes"] = json!(ram_bytes(m)?);
        }
    }
    if let Some(m) = t.max_replicas {
        obj(tt, "Placement")["MaxReplicas"] = json!(m);
    }
    let cs = obj(tt, "ContainerSpec");
    if let Some(g) = &t.stop_grace_period {
        cs["StopGracePeriod"] = json!(dur("stop-grace-period", g)?);
    }
    if let Some(sig) = &t.stop_signal {
        cs["StopSignal"] = json!(sig);
    }
    if t.no_healthcheck {
        cs["Healthcheck"] = json!({"Test": ["NONE"]});
    } else if t.health_cmd.is_some()
        || t.health_interval.is_some()
        || t.health_timeout.is_some()
        || t.health_retries.is_some()
        || t.health_start_period.is_some()
    {
        let h = obj(cs, "Healthcheck");
        if let Some(cmd) = &t.health_cmd {
            h["Test"] = json!(["CMD-SHELL", cmd]);
        }
        if let Some(i) = &t.health_interval {
            h["Interval"] = json!(dur("health-interval", i)?);
        }
        if let Some(i) = &t.health_timeout {
            h["Timeout"] = json!(dur("health-timeout", i)?);
        }
        if let Some(r) = t.health_retries {
            h["Retries"] = json!(r);
        }
        if let Some(i) = &t.health_start_period {
            h["StartPeriod"] = json!(dur("health-start-period", i)?);
        }
    }
    if let Some(u) = &t.user {
        cs["User"] = json!(u);
    }
    if let Some(w) = &t.workdir {
        cs["Dir"] = json!(w);
    }
    if let Some(h) = &t.hostname {
        cs["Hostname"] = json!(h);
    }
    if t.tty {
        cs["TTY"] = json!(true);
    }
    if t.init {
        cs["Init"] = json!(true);
    }
    if t.read_only {
        cs["ReadOnly"] = json!(true);
    }
    if let Some(m) = &t.endpoint_mode {
        if !matches!(m.as_str(), "vip" | "dnsrr") {
            return Err(err(format!(
                "invalid endpoint mode {m:?}: must be vip or dnsrr"
            )));
        }
        obj(spec, "EndpointSpec")["Mode"] = json!(m);
    }
    Ok(())
}

/// `KEY=VALUE` list into a JSON map.
pub fn kv_map(list: &[String]) -> Value {
    let mut m = Map::new();
    for l in list {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        m.insert(k.to_string(), json!(v));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            json!({"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"})
        );
        assert_eq!(parse_publish("53:53/udp").unwrap()["Protocol"], "udp");
        assert_eq!(
            parse_publish("80").unwrap(),
            json!({"Protocol": "tcp", "TargetPort": 80, "PublishMode": "ingress"})
        );
        let p = parse_publish("published=9000,target=90,mode=host").unwrap();
        assert_eq!(
            (p["PublishedPort"].as_u64(), p["PublishMode"].as_str()),
            (Some(9000), Some("host"))
        );
        for bad in [
            "x",
            "80:y",
            "0",
            "70000",
            "8080:80/icmp",
            "published=1,color=red",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_sizes_tuning() {
        assert_eq!(
            parse_mount("type=bind,source=/srv,target=/srv,readonly").unwrap(),
            json!({"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": true})
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/cache").unwrap(),
            json!({"Type": "tmpfs", "Target": "/cache"})
        );
        assert!(parse_mount("type=bind,source=/a").is_err());
        assert!(parse_mount("type=weird,target=/a").is_err());
        assert_eq!(ram_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_bytes("1GB").unwrap(), 1 << 30);
        assert_eq!(ram_bytes("100").unwrap(), 100);
        assert!(ram_bytes("lots").is_err());
        let mut spec = json!({"TaskTemplate": {"ContainerSpec": {"Image": "x"}}});
        let t = Tuning {
            update_parallelism: Some(1),
            restart_condition: Some("on-failure".into()),
            stop_grace_period: Some("20s".into()),
            limit_memory: Some("64m".into()),
            ..Default::default()
        };
        apply_tuning(&mut spec, &t).unwrap();
        assert_eq!(spec["UpdateConfig"]["Parallelism"], 1);
        assert_eq!(
            spec["TaskTemplate"]["RestartPolicy"]["Condition"],
            "on-failure"
        );
        assert_eq!(
            spec["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"],
            20_000_000_000i64
        );
        assert_eq!(
            spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"],
            64 << 20
        );
        assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Image"], "x");
        let bad = Tuning {
            restart_condition: Some("sometimes".into()),
            ..Default::default()
        };
        assert!(apply_tuning(&mut spec, &bad).is_err());
    }
}
