//! `shoal version` and `shoal info`.

use clap::Args;
use serde_json::{Value, json};
use shoal_api::API_VERSION;

use super::format::{human_duration, render_inspect, s, tabwrite};
use super::{CliError, CliResult, out, to_value};
use shoal_api::Client;

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Format output using a custom template ('json' or a Go template, e.g. '{{.Server.Version}}')
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short, long)]
    pub format: Option<String>,
}

fn client_block() -> Value {
    json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
    })
}

/// Go's GOARCH spelling, which the daemon also reports.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version(c: &Client, a: VersionArgs) -> CliResult {
    let server = c.version().await;
    let server_v = match &server {
        Ok(v) => Some(to_value(v)?),
        Err(_) => None,
    };
    let doc =
        json!({ "Client": client_block(), "Server": server_v.clone().unwrap_or(Value::Null) });
    if let Some(f) = a.format.as_deref().filter(|f| !f.trim().is_empty()) {
        let f = if f.trim() == "json" { "{{json .}}" } else { f };
        out(&render_inspect(Some(f), &[doc])?);
        return server.map(|_| ()).map_err(CliError::from);
    }
    let cl = &doc["Client"];
    let mut text = format!(
        "Client:\n Version:\t{}\n API version:\t{}\n OS/Arch:\t{}/{}\n",
        s(cl, &["Version"]),
        s(cl, &["ApiVersion"]),
        s(cl, &["Os"]),
        s(cl, &["Arch"]),
    );
    if let Some(v) = &server_v {
        text.push_str(&format!("\nServer: {}\n", s(v, &["Platform", "Name"])));
        let comps = v
            .get("Components")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for comp in comps {
            text.push_str(&format!(" {}:\n", s(&comp, &["Name"])));
            if s(&comp, &["Name"]) == "Engine" {
                let min = s(v, &["MinAPIVersion"]);
                let api = if min.is_empty() {
                    s(v, &["ApiVersion"])
                } else {
                    format!("{} (minimum version {min})", s(v, &["ApiVersion"]))
                };
                text.push_str(&format!(
                    "  Version:\t{}\n  API version:\t{api}\n  Git commit:\t{}\n  Built:\t{}\n  OS/Arch:\t{}/{}\n  Kernel version:\t{}\n",
                    s(v, &["Version"]),
                    s(v, &["GitCommit"]),
                    s(v, &["BuildTime"]),
                    s(v, &["Os"]),
                    s(v, &["Arch"]),
                    s(v, &["KernelVersion"]),
                ));
            } else {
                text.push_str(&format!("  Version:\t{}\n", s(&comp, &["Version"])));
            }
        }
    }
    out(&tabwrite(&text));
    server.map(|_| ()).map_err(CliError::from)
}

pub async fn info(c: &Client, a: InfoArgs) -> CliResult {
    let info = to_value(&c.info().await?)?;
    if let Some(f) = a.format.as_deref().filter(|f| !f.trim().is_empty()) {
        let f = if f.trim() == "json" { "{{json .}}" } else { f };
        out(&render_inspect(Some(f), &[info])?);
        return Ok(());
    }
    let g = |k: &str| s(&info, &[k]);
    let mut t = String::new();
    t.push_str(&format!(
        "Client:\n Version:    {}\n\nServer:\n",
        env!("CARGO_PKG_VERSION")
    ));
    t.push_str(&format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n Images: {}\n Server Version: {}\n",
        num(&info, "Containers"),
        num(&info, "ContainersRunning"),
        num(&info, "ContainersPaused"),
        num(&info, "ContainersStopped"),
        num(&info, "Images"),
        g("ServerVersion"),
    ));
    if !g("Driver").is_empty() {
        t.push_str(&format!(" Storage Driver: {}\n", g("Driver")));
    }
    if !g("CgroupDriver").is_empty() {
        t.push_str(&format!(
            " Cgroup Driver: {}\n Cgroup Version: {}\n",
            g("CgroupDriver"),
            g("CgroupVersion")
        ));
    }
    let sw = info.get("Swarm").cloned().unwrap_or(Value::Null);
    let state = s(&sw, &["LocalNodeState"]);
    t.push_str(&format!(
        " Swarm: {}\n",
        if state.is_empty() {
            "inactive".into()
        } else {
            state.clone()
        }
    ));
    if state != "inactive" && state != "locked" && !state.is_empty() {
        t.push_str(&format!("  NodeID: {}\n", s(&sw, &["NodeID"])));
        if !s(&sw, &["Error"]).is_empty() {
            t.push_str(&format!("  Error: {}\n", s(&sw, &["Error"])));
        }
        let manager = sw
            .get("ControlAvailable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        t.push_str(&format!("  Is Manager: {manager}\n"));
        if manager {
            let cl = sw.get("Cluster").cloned().unwrap_or(Value::Null);
            t.push_str(&format!("  ClusterID: {}\n", s(&cl, &["ID"])));
            t.push_str(&format!(
                "  Managers: {}\n  Nodes: {}\n",
                num(&sw, "Managers"),
                num(&sw, "Nodes")
            ));
            if let Some(pools) = cl.get("DefaultAddrPool").and_then(Value::as_array) {
                t.push_str("  Default Address Pool: ");
                t.push_str(
                    &pools
                        .iter()
                        .map(|p| p.as_str().unwrap_or_default().to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                t.push('\n');
            }
            t.push_str(&format!(
                "  SubnetSize: {}\n  Data Path Port: {}\n",
                num(&cl, "SubnetSize"),
                num(&cl, "DataPathPort")
            ));
            let spec = cl.get("Spec").cloned().unwrap_or(Value::Null);
            t.push_str(&format!(
                "  Orchestration:\n   Task History Retention Limit: {}\n",
                num(&spec["Orchestration"], "TaskHistoryRetentionLimit")
            ));
            t.push_str(&format!(
                "  Raft:\n   Snapshot Interval: {}\n   Number of Old Snapshots to Retain: {}\n   Heartbeat Tick: {}\n   Election Tick: {}\n",
                num(&spec["Raft"], "SnapshotInterval"),
                num(&spec["Raft"], "KeepOldSnapshots"),
                num(&spec["Raft"], "HeartbeatTick"),
                num(&spec["Raft"], "ElectionTick"),
            ));
            // Durations are humanized, as docker info shows them ("5 seconds", "3 months").
            let human = |ns: i64| human_duration(chrono::Duration::nanoseconds(ns));
            let hb = spec["Dispatcher"]["HeartbeatPeriod"].as_i64().unwrap_or(0);
            t.push_str(&format!(
                "  Dispatcher:\n   Heartbeat Period: {}\n",
                human(hb)
            ));
            let exp = spec["CAConfig"]["NodeCertExpiry"].as_i64().unwrap_or(0);
            t.push_str(&format!(
                "  CA Configuration:\n   Expiry Duration: {}\n   Force Rotate: {}\n",
                human(exp),
                num(&spec["CAConfig"], "ForceRotate")
            ));
            let autolock = spec["EncryptionConfig"]["AutoLockManagers"]
                .as_bool()
                .unwrap_or(false);
            t.push_str(&format!("  Autolock Managers: {autolock}\n"));
            let rot = cl
                .get("RootRotationInProgress")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            t.push_str(&format!("  Root Rotation In Progress: {rot}\n"));
        }
        t.push_str(&format!("  Node Address: {}\n", s(&sw, &["NodeAddr"])));
        if let Some(rms) = sw
            .get("RemoteManagers")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
        {
            t.push_str("  Manager Addresses:\n");
            let mut addrs: Vec<String> = rms.iter().map(|m| s(m, &["Addr"])).collect();
            addrs.sort();
            for a in addrs {
                t.push_str(&format!("   {a}\n"));
            }
        }
    }
    t.push_str(&format!(
        " Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}\n CPUs: {}\n Total Memory: {}\n Name: {}\n ID: {}\n Root Dir: {}\n",
        g("KernelVersion"),
        g("OperatingSystem"),
        g("OSType"),
        g("Architecture"),
        num(&info, "NCPU"),
        bytes_size(info.get("MemTotal").and_then(Value::as_i64).unwrap_or(0)),
        g("Name"),
        g("ID"),
        g("DockerRootDir"),
    ));
    out(&t);
    Ok(())
}

fn num(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// go-units `BytesSize` (binary units, 4 significant digits).
pub fn bytes_size(n: i64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = n as f64;
    let mut i = 0;
    while x >= 1024.0 && i < UNITS.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    let s = format!("{x:.4}");
    // %.4g: four significant digits, trailing zeros trimmed.
    let digits_before = s.split('.').next().map(str::len).unwrap_or(1);
    let prec = 4usize.saturating_sub(digits_before);
    let s = format!("{x:.prec$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(1024), "1KiB");
        assert_eq!(bytes_size(25276502016), "23.54GiB");
        assert_eq!(bytes_size(1536), "1.5KiB");
    }
}
