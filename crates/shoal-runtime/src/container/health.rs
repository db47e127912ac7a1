//! Healthchecks: a tokio task per running container probes with `runc exec` at the
//! interval, with a timeout, and keeps Docker's status (starting / healthy / unhealthy),
//! failing streak and last five results in the container state.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;

use super::config::{
    DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_RETRIES, DEFAULT_HEALTH_TIMEOUT, HealthConfig,
};
use super::error::{Error, Result};
use super::runtime::{Ctr, ExecOptions, Inner, exec_command};
use super::state::{HealthResult, HealthStatus};

const MAX_OUTPUT: usize = 4096;
const KEEP_RESULTS: usize = 5;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResolvedHealth {
    pub args: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

fn test_args(test: &[String]) -> Option<Option<Vec<String>>> {
    // None: inherit; Some(None): disabled; Some(Some(args)): run these.
    match test.first().map(String::as_str) {
        None => None,
        Some("NONE") => Some(None),
        Some("CMD") => Some(Some(test[1..].to_vec())),
        Some("CMD-SHELL") => Some(Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            test[1..].join(" "),
        ])),
        Some(_) => Some(Some(test.to_vec())),
    }
}

pub(crate) fn validate(h: &HealthConfig) -> Result<()> {
    if let Some(first) = h.test.first()
        && !matches!(first.as_str(), "CMD" | "CMD-SHELL" | "NONE")
    {
        return Err(Error::invalid(format!(
            "healthcheck test must start with CMD, CMD-SHELL or NONE, got {first:?}"
        )));
    }
    if h.test.first().is_some_and(|f| f != "NONE") && h.test.len() < 2 {
        return Err(Error::invalid("healthcheck test has no command"));
    }
    Ok(())
}

/// The container's healthcheck over the image's, field by field; None when disabled.
pub(crate) fn resolve(
    cfg: Option<&HealthConfig>,
    image: Option<&HealthConfig>,
) -> Option<ResolvedHealth> {
    let args = match cfg.and_then(|c| test_args(&c.test)) {
        Some(a) => a,
        None => image.and_then(|i| test_args(&i.test)).unwrap_or(None),
    }?;
    let pick = |f: fn(&HealthConfig) -> u64, default: u64| -> u64 {
        cfg.map(f)
            .filter(|v| *v > 0)
            .or_else(|| image.map(f).filter(|v| *v > 0))
            .unwrap_or(default)
    };
    let retries = cfg
        .map(|c| c.retries)
        .filter(|r| *r > 0)
        .or_else(|| image.map(|i| i.retries).filter(|r| *r > 0))
        .unwrap_or(DEFAULT_HEALTH_RETRIES);
    Some(ResolvedHealth {
        args,
        interval: Duration::from_nanos(pick(|c| c.interval, DEFAULT_HEALTH_INTERVAL)),
        timeout: Duration::from_nanos(pick(|c| c.timeout, DEFAULT_HEALTH_TIMEOUT)),
        retries,
        start_period: Duration::from_nanos(pick(|c| c.start_period, 0)),
    })
}

/// Runs the probe loop for one run (`epoch`) of the container.
pub(crate) fn spawn(inner: &Arc<Inner>, ctr: Arc<Ctr>, epoch: u64, h: ResolvedHealth) {
    let weak = Arc::downgrade(inner);
    let token = inner.shutdown.clone();
    tokio::spawn(async move {
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(h.interval) => {}
                _ = token.cancelled() => return,
            }
            if ctr.epoch.load(Ordering::SeqCst) != epoch || !ctr.state().is_running() {
                return;
            }
            let Some(inner) = weak.upgrade() else { return };
            n += 1;
            let start = Utc::now();
            let (exit_code, output) = probe(&inner, &ctr, &h, n).await;
            drop(inner);
            let end = Utc::now();
            if ctr.epoch.load(Ordering::SeqCst) != epoch || !ctr.state().is_running() {
                return;
            }
            let in_start_period = ctr
                .state()
                .started_at
                .map(|t| (end - t).to_std().unwrap_or_default() < h.start_period)
                .unwrap_or(false);
            ctr.update(|s| {
                let health = s.health.get_or_insert_with(Default::default);
                health.log.push(HealthResult {
                    start,
                    end,
                    exit_code,
                    output: output.clone(),
                });
                if health.log.len() > KEEP_RESULTS {
                    let extra = health.log.len() - KEEP_RESULTS;
                    health.log.drain(..extra);
                }
                if exit_code == 0 {
                    health.failing_streak = 0;
                    health.status = HealthStatus::Healthy;
                } else if in_start_period && health.status != HealthStatus::Healthy {
                    // Failures during the start period do not count.
                } else {
                    health.failing_streak += 1;
                    if health.failing_streak >= h.retries {
                        health.status = HealthStatus::Unhealthy;
                    }
                }
            });
        }
    });
}

async fn probe(inner: &Arc<Inner>, ctr: &Arc<Ctr>, h: &ResolvedHealth, n: u64) -> (i32, String) {
    let pid_file = ctr.run_dir.join(format!("health-{}.pid", n % 2));
    let _ = std::fs::remove_file(&pid_file);
    let opts = ExecOptions {
        cmd: h.args.clone(),
        ..Default::default()
    };
    let mut cmd = match exec_command(inner, ctr, &opts, Some(&pid_file)) {
        Ok(c) => c,
        Err(e) => return (-1, e.to_string()),
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (-1, format!("cannot run the health probe: {e}")),
    };
    let res = tokio::time::timeout(h.timeout, child.wait_with_output()).await;
    let out = match res {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return (-1, format!("health probe failed: {e}")),
        Err(_) => {
            // Kill the probe process inside the container; the runc exec child is killed
            // when its handle drops.
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .filter(|p| *p > 0)
            {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = std::fs::remove_file(&pid_file);
            return (
                -1,
                format!("Health check exceeded timeout ({:?})", h.timeout),
            );
        }
    };
    let _ = std::fs::remove_file(&pid_file);
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .unwrap_or_else(|| out.status.signal().map(|s| 128 + s).unwrap_or(-1));
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    text.truncate(MAX_OUTPUT);
    (code, String::from_utf8_lossy(&text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_merges_and_disables() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 7,
            ..Default::default()
        };
        let cfg = HealthConfig {
            test: vec!["CMD-SHELL".into(), "exit 1".into()],
            timeout: 1_000_000_000,
            ..Default::default()
        };
        let r = resolve(Some(&cfg), Some(&image)).unwrap();
        assert_eq!(r.args, vec!["/bin/sh", "-c", "exit 1"]);
        assert_eq!(r.interval, Duration::from_secs(5));
        assert_eq!(r.timeout, Duration::from_secs(1));
        assert_eq!(r.retries, 7);
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert!(resolve(Some(&none), Some(&image)).is_none());
        assert!(resolve(None, None).is_none());
        assert!(
            validate(&HealthConfig {
                test: vec!["RUN".into(), "x".into()],
                ..Default::default()
            })
            .is_err()
        );
    }
}
