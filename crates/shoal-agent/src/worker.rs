//! The agent's worker: receives the node's assignments from the leader and drives one runner per
//! task through the task lifecycle (accepted → preparing → ready → starting → running →
//! complete/failed, or shutdown when the managers ask), reporting every step back in batches.
//!
//! When the managers are unreachable, runners keep going: a lost stream never stops tasks; the
//! next complete set from a leader reconciles them.

use async_trait::async_trait;
use shoal_proto::dispatcher::{
    AssignmentsMessage, AssignmentsRequest, TaskStatusUpdate, UpdateTaskStatusRequest,
    dispatcher_client::DispatcherClient,
};
use shoal_types::task::NetworkAttachment;
use shoal_types::{Config, Secret, Task, TaskState, TaskStatus};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

use crate::session::{ChannelFactory, SessionState, follow_leader};

/// An executor error: `fatal` ones end the task (rejected before start, failed after).
#[derive(Debug, Clone)]
pub struct ExecError {
    pub fatal: bool,
    pub message: String,
}

impl ExecError {
    pub fn fatal(message: impl Into<String>) -> Self {
        ExecError {
            fatal: true,
            message: message.into(),
        }
    }
}

/// How the container of a task ended.
#[derive(Debug, Clone)]
pub struct Exit {
    pub code: i32,
    pub error: Option<String>,
}

/// What runs tasks on this node (containers through the runtime in the daemon).
#[async_trait]
pub trait TaskExecutor: Send + Sync + 'static {
    /// Pull the image and create the container; returns the container ID.
    async fn prepare(
        &self,
        task: &Task,
        secrets: &[Secret],
        configs: &[Config],
    ) -> Result<String, ExecError>;
    /// Start it; returns once it runs (healthy, if it has a healthcheck).
    async fn start(&self, container: &str) -> Result<(), ExecError>;
    async fn wait(&self, container: &str) -> Result<Exit, ExecError>;
    async fn shutdown(&self, container: &str, grace: Duration) -> Result<(), ExecError>;
    async fn remove(&self, container: &str) -> Result<(), ExecError>;
    /// The container already made for this task (after an agent restart), if any, and
    /// whether it is running.
    async fn existing(&self, task: &Task) -> Option<(String, bool)>;
    /// This node's own network attachments from the managers (its `ingress` address for the
    /// routing mesh), on every complete assignment set and whenever they change. Executors
    /// without a network data plane have nothing to set up and ignore them.
    async fn set_node_attachments(&self, attachments: Vec<NetworkAttachment>) {
        let _ = attachments;
    }
    /// Reads this node's task logs for `service logs`; None when the executor keeps none.
    fn log_reader(&self) -> Option<Arc<dyn crate::logs::TaskLogReader>> {
        None
    }
}

#[derive(Default)]
struct Dependencies {
    secrets: BTreeMap<String, Secret>,
    configs: BTreeMap<String, Config>,
}

struct Runner {
    task_tx: watch::Sender<Task>,
}

pub struct Worker {
    executor: Arc<dyn TaskExecutor>,
    runners: Mutex<HashMap<String, Runner>>,
    deps: Mutex<Dependencies>,
    status_tx: mpsc::UnboundedSender<(String, TaskStatus)>,
}

const REPORT_EVERY: Duration = Duration::from_millis(100);

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

impl Worker {
    /// Start the worker: it follows the leader named by `leader` (from the session) and runs
    /// until `stop` turns true.
    pub fn start(
        executor: Arc<dyn TaskExecutor>,
        channels: ChannelFactory,
        leader: watch::Receiver<SessionState>,
        stop: watch::Receiver<bool>,
    ) -> Arc<Worker> {
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let worker = Arc::new(Worker {
            executor,
            runners: Mutex::new(HashMap::new()),
            deps: Mutex::new(Dependencies::default()),
            status_tx,
        });
        tokio::spawn(report_loop(
            status_rx,
            channels.clone(),
            leader.clone(),
            stop.clone(),
        ));
        let me = worker.clone();
        tokio::spawn(async move { me.assignment_loop(channels, leader, stop).await });
        worker
    }

    async fn assignment_loop(
        self: Arc<Self>,
        channels: ChannelFactory,
        leader: watch::Receiver<SessionState>,
        stop: watch::Receiver<bool>,
    ) {
        follow_leader(
            channels,
            leader,
            stop,
            "assignment stream",
            |ch, mut stop| {
                let me = self.clone();
                async move { me.follow(ch, &mut stop).await }
            },
        )
        .await
    }

    async fn follow(
        self: &Arc<Self>,
        ch: Channel,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), tonic::Status> {
        let mut stream = DispatcherClient::new(ch)
            .assignments(AssignmentsRequest {})
            .await?
            .into_inner();
        let mut pending_complete: Option<Vec<Task>> = None;
        loop {
            let msg = tokio::select! {
                m = stream.message() => m?,
                _ = stop.changed() => return Ok(()),
            };
            let Some(msg) = msg else { return Ok(()) };
            self.apply(msg, &mut pending_complete).await;
        }
    }

    async fn apply(self: &Arc<Self>, msg: AssignmentsMessage, pending: &mut Option<Vec<Task>>) {
        {
            let mut deps = self.deps.lock().unwrap_or_else(|p| p.into_inner());
            if msg.complete && pending.is_none() {
                deps.secrets.clear();
                deps.configs.clear();
            }
            for s in msg
                .secrets_json
                .iter()
                .filter_map(|b| serde_json::from_slice::<Secret>(b).ok())
            {
                deps.secrets.insert(s.id.clone(), s);
            }
            for c in msg
                .configs_json
                .iter()
                .filter_map(|b| serde_json::from_slice::<Config>(b).ok())
            {
                deps.configs.insert(c.id.clone(), c);
            }
            for id in &msg.removed_secret_ids {
                deps.secrets.remove(id);
            }
            for id in &msg.removed_config_ids {
                deps.configs.remove(id);
            }
        }
        // Absent on an incremental message means unchanged; a complete set always carries it.
        if !msg.node_attachments_json.is_empty() {
            match serde_json::from_slice::<Vec<NetworkAttachment>>(&msg.node_attachments_json) {
                Ok(a) => self.executor.set_node_attachments(a).await,
                Err(e) => tracing::warn!("agent: bad node attachments from the manager: {e}"),
            }
        }
        let tasks: Vec<Task> = msg
            .tasks_json
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect();
        if msg.complete {
            let set = pending.get_or_insert_with(Vec::new);
            set.extend(tasks);
            if msg.last_of_set {
                let set = pending.take().unwrap_or_default();
                let keep: std::collections::HashSet<String> =
                    set.iter().map(|t| t.id.clone()).collect();
                let gone: Vec<String> = {
                    let runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
                    runners
                        .keys()
                        .filter(|id| !keep.contains(*id))
                        .cloned()
                        .collect()
                };
                for id in gone {
                    self.drop_task(&id);
                }
                for t in set {
                    self.upsert(t);
                }
            }
            return;
        }
        for t in tasks {
            self.upsert(t);
        }
        for id in msg.removed_task_ids {
            self.drop_task(&id);
        }
    }

    /// The tasks this worker runs, as last assigned.
    pub fn tasks(&self) -> Vec<Task> {
        let runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
        runners
            .values()
            .map(|r| r.task_tx.borrow().clone())
            .collect()
    }

    /// Supervises tasks remembered from before a restart (see `persist`), until the
    /// managers' next complete set says otherwise.
    pub fn restore(self: &Arc<Self>, tasks: Vec<Task>) {
        for t in tasks {
            self.upsert(t);
        }
    }

    fn upsert(self: &Arc<Self>, task: Task) {
        let mut runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = runners.get(&task.id) {
            let _ = r.task_tx.send(task);
            return;
        }
        let (tx, rx) = watch::channel(task.clone());
        runners.insert(task.id.clone(), Runner { task_tx: tx });
        let me = self.clone();
        tokio::spawn(async move { me.run_task(rx).await });
    }

    /// A task the managers no longer list: stop and remove its container.
    fn drop_task(self: &Arc<Self>, id: &str) {
        let runner = self
            .runners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(r) = runner {
            r.task_tx
                .send_modify(|t| t.desired_state = TaskState::Remove);
        }
    }

    fn report(
        &self,
        task: &Task,
        state: TaskState,
        message: &str,
        err: &str,
        container: Option<(&str, i32)>,
    ) {
        let mut status = TaskStatus::new(state, message, now());
        status.err = err.to_string();
        if let Some((id, code)) = container {
            status.container_status = Some(shoal_types::task::ContainerStatus {
                container_id: id.to_string(),
                exit_code: code as i64,
                ..Default::default()
            });
        }
        let _ = self.status_tx.send((task.id.clone(), status));
    }

    fn deps_for(&self, task: &Task) -> (Vec<Secret>, Vec<Config>) {
        let deps = self.deps.lock().unwrap_or_else(|p| p.into_inner());
        (
            task.spec
                .secret_ids()
                .filter_map(|id| deps.secrets.get(id).cloned())
                .collect(),
            task.spec
                .config_ids()
                .filter_map(|id| deps.configs.get(id).cloned())
                .collect(),
        )
    }

    /// One task's lifecycle (the reference agent's `exec.Do`, as a loop).
    async fn run_task(self: Arc<Self>, mut rx: watch::Receiver<Task>) {
        let first = rx.borrow().clone();
        let mut observed = first.status.state;
        let mut container: Option<String> = None;
        if let Some((id, running)) = self.executor.existing(&first).await {
            container = Some(id);
            if running && observed < TaskState::Running {
                observed = TaskState::Running;
            }
        }
        loop {
            let task = rx.borrow_and_update().clone();
            let desired = task.desired_state;
            if desired >= TaskState::Shutdown || observed.is_terminal() {
                if !observed.is_terminal() {
                    if let Some(c) = &container {
                        let grace = Duration::from_nanos(
                            task.spec
                                .container_spec
                                .as_ref()
                                .and_then(|c| c.stop_grace_period)
                                .unwrap_or(10_000_000_000)
                                .max(0) as u64,
                        );
                        if let Err(e) = self.executor.shutdown(c, grace).await {
                            tracing::warn!(task = %task.id, "shutdown: {}", e.message);
                        }
                    }
                    observed = TaskState::Shutdown;
                    self.report(&task, observed, "shutdown", "", None);
                }
                if desired >= TaskState::Remove {
                    if let Some(c) = container.take()
                        && let Err(e) = self.executor.remove(&c).await
                    {
                        tracing::warn!(task = %task.id, "remove: {}", e.message);
                    }
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            match observed {
                s if s < TaskState::Accepted => {
                    observed = TaskState::Accepted;
                    self.report(&task, observed, "accepted", "", None);
                }
                TaskState::Accepted => {
                    observed = TaskState::Preparing;
                    self.report(&task, observed, "preparing", "", None);
                    let (secrets, configs) = self.deps_for(&task);
                    match self.executor.prepare(&task, &secrets, &configs).await {
                        Ok(id) => {
                            container = Some(id);
                            observed = TaskState::Ready;
                            self.report(&task, observed, "prepared", "", None);
                        }
                        Err(e) if e.fatal => {
                            observed = TaskState::Rejected;
                            self.report(&task, observed, "preparing", &e.message, None);
                        }
                        Err(e) => {
                            tracing::warn!(task = %task.id, "prepare (will retry): {}", e.message);
                            observed = TaskState::Accepted;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                TaskState::Ready | TaskState::Preparing if desired < TaskState::Running => {
                    // Held ready (restart delay, stop-first update): wait for the go.
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
                TaskState::Ready | TaskState::Preparing | TaskState::Starting => {
                    let Some(c) = container.clone() else {
                        observed = TaskState::Accepted;
                        continue;
                    };
                    observed = TaskState::Starting;
                    self.report(&task, observed, "starting", "", None);
                    match self.executor.start(&c).await {
                        Ok(()) => {
                            observed = TaskState::Running;
                            self.report(&task, observed, "started", "", Some((&c, 0)));
                        }
                        Err(e) => {
                            observed = TaskState::Failed;
                            self.report(&task, observed, "starting", &e.message, Some((&c, -1)));
                        }
                    }
                }
                TaskState::Running => {
                    let Some(c) = container.clone() else {
                        observed = TaskState::Failed;
                        self.report(&task, observed, "lost", "container is gone", None);
                        continue;
                    };
                    tokio::select! {
                        exit = self.executor.wait(&c) => {
                            match exit {
                                Ok(Exit { code: 0, .. }) => {
                                    observed = TaskState::Complete;
                                    self.report(&task, observed, "finished", "", Some((&c, 0)));
                                }
                                Ok(Exit { code, error }) => {
                                    observed = TaskState::Failed;
                                    let err = error.unwrap_or_else(|| format!("task: non-zero exit ({code})"));
                                    self.report(&task, observed, "failed", &err, Some((&c, code)));
                                }
                                Err(e) => {
                                    observed = TaskState::Failed;
                                    self.report(&task, observed, "failed", &e.message, Some((&c, -1)));
                                }
                            }
                        }
                        r = rx.changed() => {
                            if r.is_err() {
                                return;
                            }
                        }
                    }
                }
                _ => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Sends status reports to the leader in batches; keeps the latest status per task and
/// retries until a leader takes them.
async fn report_loop(
    mut rx: mpsc::UnboundedReceiver<(String, TaskStatus)>,
    channels: ChannelFactory,
    leader: watch::Receiver<SessionState>,
    stop: watch::Receiver<bool>,
) {
    let mut pending: BTreeMap<String, TaskStatus> = BTreeMap::new();
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            item = rx.recv() => match item {
                Some((id, st)) => { pending.insert(id, st); }
                None => return,
            },
            _ = tokio::time::sleep(REPORT_EVERY) => {}
        }
        while let Ok((id, st)) = rx.try_recv() {
            // A later report of the same task supersedes an unsent earlier one.
            pending.insert(id, st);
        }
        if pending.is_empty() {
            continue;
        }
        let Some(addr) = leader.borrow().manager.clone() else {
            continue;
        };
        let Ok(ch) = channels(&addr) else { continue };
        let updates: Vec<TaskStatusUpdate> = pending
            .iter()
            .map(|(id, st)| TaskStatusUpdate {
                task_id: id.clone(),
                status_json: serde_json::to_vec(st).unwrap_or_default(),
            })
            .collect();
        match tokio::time::timeout(
            Duration::from_secs(5),
            DispatcherClient::new(ch).update_task_status(UpdateTaskStatusRequest { updates }),
        )
        .await
        {
            Ok(Ok(_)) => pending.clear(),
            Ok(Err(s)) if s.code() == tonic::Code::PermissionDenied => pending.clear(),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
