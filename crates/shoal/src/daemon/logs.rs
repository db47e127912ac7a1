//! `service logs` / `task logs`: a subscription at the leader's log broker (every node holding a
//! selected task publishes its container logs), turned into Docker's log lines with the
//! `com.docker.swarm.*` details the CLI builds its `name.slot.task@node` prefix from. Also the
//! agent's view of this node's task logs, read from the container runtime.

use super::Daemon;
use super::swarm::Slot;
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use shoal_agent::logs::{LogEntries, LogEntry, ReadOptions, TaskContainer, TaskLogReader};
use shoal_api::{LogLine, Logs, LogsOptions, StdStream};
use shoal_manager::logbroker::LogBroker;
use shoal_proto::logs::{LogMessage, LogOptions, LogSelector, SubscribeLogsRequest};
use shoal_runtime::container::{self as rt, Runtime};
use shoal_types::ApiError;
use std::sync::Arc;

/// The logs of a service's tasks (`id` already resolved to the full service ID).
pub async fn service_logs(d: &Daemon, id: &str, opts: LogsOptions) -> Result<Logs, ApiError> {
    let selector = LogSelector {
        service_ids: vec![id.to_string()],
        task_ids: Vec::new(),
    };
    subscribe(d, selector, opts).await
}

/// The logs of one task (`id` already resolved to the full task ID).
pub async fn task_logs(d: &Daemon, id: &str, opts: LogsOptions) -> Result<Logs, ApiError> {
    let selector = LogSelector {
        service_ids: Vec::new(),
        task_ids: vec![id.to_string()],
    };
    subscribe(d, selector, opts).await
}

async fn broker(d: &Daemon) -> Result<Arc<LogBroker>, ApiError> {
    // Also the "not a manager" error when this node is a worker.
    d.manager().await?;
    match &*d.slot.read().await {
        Slot::Active(node) => node
            .log_broker
            .clone()
            .ok_or_else(|| ApiError::unavailable("this manager has no log broker running")),
        _ => Err(ApiError::unavailable("this node is not in a swarm")),
    }
}

fn options(opts: &LogsOptions) -> LogOptions {
    LogOptions {
        follow: opts.follow,
        tail: opts.tail.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1),
        since_unix_nanos: opts
            .since
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(0),
        stdout: opts.stdout,
        stderr: opts.stderr,
    }
}

async fn subscribe(d: &Daemon, selector: LogSelector, opts: LogsOptions) -> Result<Logs, ApiError> {
    let broker = broker(d).await?;
    let until = opts.until;
    let stream = broker
        .open(SubscribeLogsRequest {
            selector: Some(selector),
            options: Some(options(&opts)),
        })
        .await?;
    let lines = stream
        .flat_map(move |item| {
            let out: Vec<Result<LogLine, ApiError>> = match item {
                Err(e) => vec![Err(e)],
                Ok(batch) => {
                    let mut v: Vec<Result<LogLine, ApiError>> = batch
                        .messages
                        .into_iter()
                        .map(log_line)
                        .filter(|l| until.is_none_or(|u| l.timestamp <= u))
                        .map(Ok)
                        .collect();
                    if !batch.incomplete.is_empty() {
                        // Docker's wording and channel (a stderr line, the stream goes on) for
                        // logs some nodes could not give.
                        v.push(Ok(LogLine {
                            stream: StdStream::Stderr,
                            timestamp: Utc::now(),
                            attrs: Vec::new(),
                            line: bytes::Bytes::from(format!(
                                "Error grabbing logs: warning: incomplete log stream. some logs could not be retrieved for the following reasons: {}\n",
                                batch.incomplete
                            )),
                        }));
                    }
                    v
                }
            };
            futures::stream::iter(out)
        })
        .boxed();
    Ok(Logs { tty: false, lines })
}

fn log_line(m: LogMessage) -> LogLine {
    LogLine {
        stream: if m.stream == 2 {
            StdStream::Stderr
        } else {
            StdStream::Stdout
        },
        timestamp: Utc.timestamp_nanos(m.time_unix_nanos),
        attrs: vec![
            ("com.docker.swarm.node.id".into(), m.node_id),
            ("com.docker.swarm.service.id".into(), m.service_id),
            ("com.docker.swarm.task.id".into(), m.task_id),
        ],
        line: bytes::Bytes::from(m.data),
    }
}

/// This node's task containers and their logs, for the agent's log publisher.
pub struct RuntimeLogReader(pub Runtime);

impl TaskLogReader for RuntimeLogReader {
    fn task_containers(&self) -> Vec<TaskContainer> {
        self.0
            .list(true)
            .into_iter()
            .filter_map(|c| {
                Some(TaskContainer {
                    task_id: c.labels.get("com.docker.swarm.task.id")?.clone(),
                    service_id: c.labels.get("com.docker.swarm.service.id")?.clone(),
                    container_id: c.id,
                })
            })
            .collect()
    }

    fn read(&self, container_id: &str, opts: ReadOptions) -> Result<LogEntries, String> {
        let stream = self
            .0
            .logs(
                container_id,
                rt::LogOptions {
                    follow: opts.follow,
                    since: opts.since,
                    until: None,
                    tail: opts.tail,
                    stdout: opts.stdout,
                    stderr: opts.stderr,
                },
            )
            .map_err(|e| e.to_string())?;
        Ok(stream
            .map(|r| {
                r.map(|rec| LogEntry {
                    time: rec.time,
                    stderr: rec.stream == rt::LogStream::Stderr,
                    line: format!("{}\n", rec.line).into_bytes(),
                })
                .map_err(|e| e.to_string())
            })
            .boxed())
    }
}
