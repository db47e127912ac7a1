//! Publishing this node's task logs to the leader's log broker: the agent listens for the log
//! subscriptions that concern it and, for each, streams the logs of the matching task
//! containers back with `PublishLogs` (batched), ending with `close` unless following. A
//! following subscription also picks up matching tasks that start later on this node.

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use shoal_proto::logs::log_broker_client::LogBrokerClient;
use shoal_proto::logs::{
    ListenSubscriptionsRequest, LogMessage, LogOptions, LogSelector, PublishLogsMessage,
    SubscriptionMessage,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::session::{ChannelFactory, SessionState, follow_leader};

/// A container of a swarm task on this node (running or exited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskContainer {
    pub task_id: String,
    pub service_id: String,
    pub container_id: String,
}

/// One line of a container's log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub time: DateTime<Utc>,
    pub stderr: bool,
    /// The line with its trailing newline.
    pub line: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub follow: bool,
    pub tail: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    /// Both false means both.
    pub stdout: bool,
    pub stderr: bool,
}

pub type LogEntries = BoxStream<'static, Result<LogEntry, String>>;

/// Where task logs come from on this node (the container runtime, in the daemon).
pub trait TaskLogReader: Send + Sync + 'static {
    fn task_containers(&self) -> Vec<TaskContainer>;
    fn read(&self, container_id: &str, opts: ReadOptions) -> Result<LogEntries, String>;
}

/// Lines per published message.
const BATCH: usize = 256;
/// How often a following subscription looks for newly started tasks.
const RESCAN: Duration = Duration::from_millis(500);

/// Listens for log subscriptions at the leader named by the session until `stop` turns true.
pub fn start(
    reader: Arc<dyn TaskLogReader>,
    channels: ChannelFactory,
    leader: watch::Receiver<SessionState>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        follow_leader(
            channels,
            leader,
            stop,
            "log subscriptions",
            |ch, mut stop| {
                let reader = reader.clone();
                async move { listen(&reader, ch, &mut stop).await }
            },
        )
        .await
    });
}

async fn listen(
    reader: &Arc<dyn TaskLogReader>,
    ch: Channel,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), tonic::Status> {
    let mut stream = LogBrokerClient::new(ch.clone())
        .listen_subscriptions(ListenSubscriptionsRequest {})
        .await?
        .into_inner();
    // Dropping a sender cancels that subscription's publisher; all go with this stream.
    let mut active: HashMap<String, watch::Sender<bool>> = HashMap::new();
    loop {
        let msg = tokio::select! {
            m = stream.message() => m?,
            _ = stop.changed() => return Ok(()),
        };
        let Some(sub) = msg else { return Ok(()) };
        active.retain(|_, c| !c.is_closed());
        if sub.close {
            active.remove(&sub.id);
            continue;
        }
        let (cancel_tx, cancel_rx) = watch::channel(false);
        active.insert(sub.id.clone(), cancel_tx);
        let reader = reader.clone();
        let ch = ch.clone();
        tokio::spawn(async move {
            if let Err(e) = publish(reader, ch, sub, cancel_rx).await {
                tracing::debug!("publishing logs: {e}");
            }
        });
    }
}

fn selected(sel: &LogSelector, c: &TaskContainer) -> bool {
    sel.service_ids.contains(&c.service_id) || sel.task_ids.contains(&c.task_id)
}

fn read_options(o: &LogOptions, initial: bool) -> ReadOptions {
    ReadOptions {
        follow: o.follow,
        // The tail applies to what exists now; tasks started later are shown whole.
        tail: if initial {
            usize::try_from(o.tail).ok()
        } else {
            None
        },
        since: (o.since_unix_nanos > 0).then(|| Utc.timestamp_nanos(o.since_unix_nanos)),
        stdout: o.stdout,
        stderr: o.stderr,
    }
}

/// Streams one subscription's lines to the leader.
async fn publish(
    reader: Arc<dyn TaskLogReader>,
    ch: Channel,
    sub: SubscriptionMessage,
    mut cancel: watch::Receiver<bool>,
) -> Result<(), tonic::Status> {
    let selector = sub.selector.clone().unwrap_or_default();
    let options = sub.options.unwrap_or_default();
    let (out_tx, out_rx) = mpsc::channel::<PublishLogsMessage>(16);
    let mut call = tokio::spawn(async move {
        LogBrokerClient::new(ch)
            .publish_logs(tokio_stream::wrappers::ReceiverStream::new(out_rx))
            .await
    });
    let (line_tx, mut line_rx) = mpsc::channel::<LogMessage>(BATCH * 4);
    let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut readers = JoinSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut spawn_new =
        |initial: bool, readers: &mut JoinSet<()>, line_tx: &mpsc::Sender<LogMessage>| {
            for c in reader.task_containers() {
                if !selected(&selector, &c) || !seen.insert(c.container_id.clone()) {
                    continue;
                }
                let opts = read_options(&options, initial);
                let tx = line_tx.clone();
                let errors = errors.clone();
                match reader.read(&c.container_id, opts) {
                    Ok(entries) => {
                        readers.spawn(forward(entries, c, tx, errors));
                    }
                    Err(e) => errors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("task {}: {e}", c.task_id)),
                }
            }
        };
    spawn_new(true, &mut readers, &line_tx);
    // A plain subscription ends when its readers have: keep no sender of our own.
    let own_tx = options.follow.then_some(line_tx);
    let mut rescan = tokio::time::interval(RESCAN);
    rescan.tick().await;
    loop {
        tokio::select! {
            m = line_rx.recv() => {
                let Some(m) = m else { break };
                let mut messages = vec![m];
                while messages.len() < BATCH {
                    match line_rx.try_recv() {
                        Ok(m) => messages.push(m),
                        Err(_) => break,
                    }
                }
                let msg = PublishLogsMessage {
                    subscription_id: sub.id.clone(),
                    messages,
                    close: false,
                    error: String::new(),
                };
                if out_tx.send(msg).await.is_err() {
                    break;
                }
            }
            _ = rescan.tick(), if own_tx.is_some() => {
                if let Some(tx) = &own_tx {
                    spawn_new(false, &mut readers, tx);
                }
            }
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
            r = &mut call => {
                // The leader ended the call (subscription gone): nothing more to do.
                return match r {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(s)) => Err(s),
                    Err(e) => Err(tonic::Status::internal(e.to_string())),
                };
            }
            // Dropping the readers stops them.
            _ = cancel.changed() => return Ok(()),
        }
    }
    drop(own_tx);
    let error = errors.lock().unwrap_or_else(|p| p.into_inner()).join("; ");
    let _ = out_tx
        .send(PublishLogsMessage {
            subscription_id: sub.id.clone(),
            messages: Vec::new(),
            close: true,
            error,
        })
        .await;
    drop(out_tx);
    match tokio::time::timeout(Duration::from_secs(10), call).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err(s))) => Err(s),
        Ok(Err(e)) => Err(tonic::Status::internal(e.to_string())),
        Err(_) => Err(tonic::Status::deadline_exceeded(
            "the leader did not acknowledge the logs",
        )),
    }
}

async fn forward(
    mut entries: LogEntries,
    c: TaskContainer,
    tx: mpsc::Sender<LogMessage>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    while let Some(item) = entries.next().await {
        match item {
            Ok(e) => {
                let m = LogMessage {
                    node_id: String::new(),
                    service_id: c.service_id.clone(),
                    task_id: c.task_id.clone(),
                    time_unix_nanos: e.time.timestamp_nanos_opt().unwrap_or(0),
                    stream: if e.stderr { 2 } else { 1 },
                    data: e.line,
                };
                if tx.send(m).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("task {}: {e}", c.task_id));
                return;
            }
        }
    }
}
