//! The log broker (swarmkit's logbroker idea): `service logs` on any manager becomes a
//! subscription at the leader; the leader tells the agents that hold the selected tasks
//! (`ListenSubscriptions`), they publish their container logs back (`PublishLogs`), and the
//! leader forwards them to the subscriber. A follower manager subscribes at the leader over
//! `Logs.SubscribeLogs`.
//!
//! A plain subscription ends once every node asked has sent its last line (or is known to be
//! unable to); a following one lasts until the subscriber goes away, is sent to every node
//! (tasks may start anywhere later) and to nodes that connect later.

use crate::ca::{Role, authorize};
use crate::manager::Manager;
use crate::services::is_revoked;
use futures::StreamExt;
use futures::stream::BoxStream;
use shoal_proto::logs::log_broker_server::{LogBroker as LogBrokerRpc, LogBrokerServer};
use shoal_proto::logs::logs_client::LogsClient;
use shoal_proto::logs::logs_server::{Logs as LogsRpc, LogsServer};
use shoal_proto::logs::{
    ListenSubscriptionsRequest, LogMessage, PublishLogsMessage, PublishLogsResponse,
    SubscribeLogsMessage, SubscribeLogsRequest, SubscriptionMessage,
};
use shoal_types::{ApiError, Object, ObjectKind, new_id};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// Opens channels to other managers (mTLS with this node's certificate).
pub type ChannelFactory = Arc<dyn Fn(&str) -> anyhow::Result<Channel> + Send + Sync>;

/// Messages buffered per subscriber before publishers wait.
const SUBSCRIBER_BUFFER: usize = 256;
/// Subscription notices buffered per listening agent.
const LISTENER_BUFFER: usize = 64;
/// How often a listener checks that this manager still leads.
const LEADER_CHECK: Duration = Duration::from_secs(1);

pub struct LogBroker {
    manager: Arc<Manager>,
    channels: ChannelFactory,
    state: Mutex<State>,
}

type ListenerTx = mpsc::Sender<Result<SubscriptionMessage, Status>>;

#[derive(Default)]
struct State {
    next_listener: u64,
    /// Agents listening for subscriptions, by node (a node may briefly have two streams).
    listeners: HashMap<String, Vec<(u64, ListenerTx)>>,
    subs: HashMap<String, Sub>,
}

struct Sub {
    notice: SubscriptionMessage,
    follow: bool,
    tx: mpsc::Sender<SubscribeLogsMessage>,
    /// Nodes still to send their last line (plain subscriptions).
    pending: BTreeSet<String>,
    /// Nodes told about it (to tell them when it closes).
    told: BTreeSet<String>,
    problems: Vec<String>,
}

/// A subscription at the leader; dropping it tells the nodes to stop.
pub struct Subscription {
    id: String,
    broker: Arc<LogBroker>,
    rx: mpsc::Receiver<SubscribeLogsMessage>,
}

impl Subscription {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next batch; None once the subscription is complete.
    pub async fn next(&mut self) -> Option<SubscribeLogsMessage> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.broker.cancel(&self.id);
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LogBroker {
    pub fn new(manager: Arc<Manager>, channels: ChannelFactory) -> Arc<LogBroker> {
        Arc::new(LogBroker {
            manager,
            channels,
            state: Mutex::new(State::default()),
        })
    }

    /// The gRPC services: `Logs` (managers) and `LogBroker` (agents).
    pub fn servers(
        self: &Arc<Self>,
    ) -> (LogsServer<LogsService>, LogBrokerServer<LogBrokerService>) {
        (
            LogsServer::new(LogsService {
                broker: self.clone(),
            }),
            LogBrokerServer::new(LogBrokerService {
                broker: self.clone(),
            }),
        )
    }

    fn node_name(&self, node_id: &str) -> String {
        match self.manager.view().get(ObjectKind::Node, node_id) {
            Some(Object::Node(n)) if !n.description.hostname.is_empty() => {
                n.description.hostname.clone()
            }
            _ => node_id.to_string(),
        }
    }

    /// Subscribe here; this manager must be the leader.
    pub fn subscribe(
        self: &Arc<Self>,
        req: SubscribeLogsRequest,
    ) -> Result<Subscription, ApiError> {
        if !self.manager.is_leader() {
            return Err(ApiError::unavailable(
                "log subscriptions are served by the leader, and this manager is not it",
            ));
        }
        let selector = req.selector.unwrap_or_default();
        let options = req.options.unwrap_or_default();
        if selector.service_ids.is_empty() && selector.task_ids.is_empty() {
            return Err(ApiError::invalid_argument(
                "a log subscription needs a service or a task",
            ));
        }
        let follow = options.follow;
        // The nodes holding selected tasks (any state: exited containers keep their logs).
        let nodes: BTreeSet<String> = self
            .manager
            .view()
            .list(ObjectKind::Task)
            .filter_map(|o| match o {
                Object::Task(t)
                    if !t.node_id.is_empty()
                        && (selector.service_ids.contains(&t.service_id)
                            || selector.task_ids.contains(&t.id)) =>
                {
                    Some(t.node_id.clone())
                }
                _ => None,
            })
            .collect();
        let id = new_id();
        let notice = SubscriptionMessage {
            id: id.clone(),
            selector: Some(selector),
            options: Some(options),
            close: false,
        };
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let mut sub = Sub {
            notice: notice.clone(),
            follow,
            tx,
            pending: BTreeSet::new(),
            told: BTreeSet::new(),
            problems: Vec::new(),
        };
        let mut st = lock(&self.state);
        let targets: Vec<String> = if follow {
            st.listeners.keys().cloned().collect()
        } else {
            nodes.iter().cloned().collect()
        };
        for node in targets {
            let delivered = st.listeners.get(&node).is_some_and(|ls| {
                ls.iter()
                    .rev()
                    .any(|(_, l)| l.try_send(Ok(notice.clone())).is_ok())
            });
            if delivered {
                sub.told.insert(node.clone());
                if !follow {
                    sub.pending.insert(node);
                }
            } else {
                sub.problems
                    .push(format!("node {} is not connected", self.node_name(&node)));
            }
        }
        if !follow && plain_done(&sub) {
            finish(sub);
        } else {
            st.subs.insert(id.clone(), sub);
        }
        drop(st);
        Ok(Subscription {
            id,
            broker: self.clone(),
            rx,
        })
    }

    /// Subscribe from any manager: here when this one leads, else at the leader over gRPC.
    /// The stream ends when the logs are complete (not following) or when it is dropped.
    pub async fn open(
        self: &Arc<Self>,
        req: SubscribeLogsRequest,
    ) -> Result<BoxStream<'static, Result<SubscribeLogsMessage, ApiError>>, ApiError> {
        if self.manager.is_leader() {
            let sub = self.subscribe(req)?;
            return Ok(futures::stream::unfold(sub, |mut sub| async move {
                sub.next().await.map(|m| (Ok(m), sub))
            })
            .boxed());
        }
        let leader = self
            .manager
            .leader_addr()
            .ok_or_else(|| ApiError::unavailable("no leader is known to get the logs from"))?;
        let ch = (self.channels)(&leader)
            .map_err(|e| ApiError::unavailable(format!("leader {leader}: {e:#}")))?;
        let stream = LogsClient::new(ch)
            .subscribe_logs(req)
            .await
            .map_err(|s| {
                ApiError::unavailable(format!("logs from leader {leader}: {}", s.message()))
            })?
            .into_inner();
        Ok(stream
            .map(move |r| {
                r.map_err(|s| {
                    ApiError::unavailable(format!("log stream from the leader: {}", s.message()))
                })
            })
            .boxed())
    }

    /// The subscriber went away: forget it and tell the nodes.
    fn cancel(&self, id: &str) {
        let mut st = lock(&self.state);
        let Some(sub) = st.subs.remove(id) else {
            return;
        };
        let close = SubscriptionMessage {
            id: id.to_string(),
            close: true,
            ..Default::default()
        };
        for node in &sub.told {
            for (_, l) in st.listeners.get(node).into_iter().flatten() {
                // A full listener is not waited for: its next publish is refused anyway.
                let _ = l.try_send(Ok(close.clone()));
            }
        }
    }

    /// An agent listens: it gets every following subscription now and every new one later.
    fn listen(
        self: &Arc<Self>,
        node_id: String,
    ) -> mpsc::Receiver<Result<SubscriptionMessage, Status>> {
        let (tx, rx) = mpsc::channel(LISTENER_BUFFER);
        let lid = {
            let mut st = lock(&self.state);
            st.next_listener += 1;
            let lid = st.next_listener;
            let State {
                listeners, subs, ..
            } = &mut *st;
            for sub in subs.values_mut().filter(|s| s.follow) {
                if tx.try_send(Ok(sub.notice.clone())).is_ok() {
                    sub.told.insert(node_id.clone());
                }
            }
            listeners
                .entry(node_id.clone())
                .or_default()
                .push((lid, tx.clone()));
            lid
        };
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(LEADER_CHECK) => {
                        if !me.manager.is_leader() {
                            let _ = tx.send(Err(Status::unavailable("this manager is no longer the leader"))).await;
                            break;
                        }
                    }
                }
            }
            me.unlisten(&node_id, lid);
        });
        rx
    }

    fn unlisten(&self, node_id: &str, lid: u64) {
        let mut st = lock(&self.state);
        let gone = match st.listeners.get_mut(node_id) {
            Some(ls) => {
                ls.retain(|(id, _)| *id != lid);
                ls.is_empty()
            }
            None => false,
        };
        if !gone {
            return;
        }
        st.listeners.remove(node_id);
        // Plain subscriptions waiting on this node will not hear from it any more.
        let name = self.node_name(node_id);
        let waiting: Vec<String> = st
            .subs
            .iter()
            .filter(|(_, s)| s.pending.contains(node_id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            node_done(
                &mut st,
                &id,
                node_id,
                Some(format!("node {name} disconnected")),
            );
        }
    }

    /// One node's publish stream for one or more subscriptions.
    async fn publish(
        &self,
        node_id: &str,
        mut stream: Streaming<PublishLogsMessage>,
    ) -> Result<(), Status> {
        let mut open: BTreeSet<String> = BTreeSet::new();
        let result = loop {
            match stream.message().await {
                Ok(Some(msg)) => {
                    if let Err(e) = self.publish_one(node_id, msg, &mut open).await {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.publisher_gone(node_id, open);
        result
    }

    /// One message of a node's publish stream; `open` tracks the subscriptions it has not
    /// closed yet.
    async fn publish_one(
        &self,
        node_id: &str,
        msg: PublishLogsMessage,
        open: &mut BTreeSet<String>,
    ) -> Result<(), Status> {
        let tx = {
            let st = lock(&self.state);
            match st.subs.get(&msg.subscription_id) {
                Some(s) if s.follow || s.pending.contains(node_id) => Some(s.tx.clone()),
                _ => None,
            }
        };
        let Some(tx) = tx else {
            // Gone (subscriber left) or never asked of this node: the agent stops.
            return Err(Status::not_found(format!(
                "log subscription {} is not open for this node",
                msg.subscription_id
            )));
        };
        open.insert(msg.subscription_id.clone());
        if !msg.messages.is_empty() {
            let messages: Vec<LogMessage> = msg
                .messages
                .into_iter()
                .map(|mut m| {
                    // A node speaks only for itself.
                    m.node_id = node_id.to_string();
                    m
                })
                .collect();
            let batch = SubscribeLogsMessage {
                messages,
                incomplete: String::new(),
            };
            if tx.send(batch).await.is_err() {
                return Err(Status::not_found("the log subscriber went away"));
            }
        }
        if msg.close {
            open.remove(&msg.subscription_id);
            let problem = (!msg.error.is_empty())
                .then(|| format!("node {}: {}", self.node_name(node_id), msg.error));
            let mut st = lock(&self.state);
            node_done(&mut st, &msg.subscription_id, node_id, problem);
        }
        Ok(())
    }

    /// A publish stream ended: subscriptions it left open will not hear from it again.
    fn publisher_gone(&self, node_id: &str, open: BTreeSet<String>) {
        if open.is_empty() {
            return;
        }
        let name = self.node_name(node_id);
        let mut st = lock(&self.state);
        for id in open {
            node_done(
                &mut st,
                &id,
                node_id,
                Some(format!("node {name} stopped publishing")),
            );
        }
    }
}

fn plain_done(sub: &Sub) -> bool {
    !sub.follow && sub.pending.is_empty()
}

/// A node has sent all it will for a subscription; a plain one ends with its last node.
fn node_done(st: &mut State, id: &str, node_id: &str, problem: Option<String>) {
    let Some(sub) = st.subs.get_mut(id) else {
        return;
    };
    if !sub.follow && !sub.pending.remove(node_id) {
        return;
    }
    sub.problems.extend(problem);
    if plain_done(sub)
        && let Some(sub) = st.subs.remove(id)
    {
        finish(sub);
    }
}

/// Ends a plain subscription: the problems, if any, then the end of the stream.
fn finish(sub: Sub) {
    if sub.problems.is_empty() {
        return;
    }
    let last = SubscribeLogsMessage {
        messages: Vec::new(),
        incomplete: sub.problems.join("; "),
    };
    tokio::spawn(async move {
        let _ = sub.tx.send(last).await;
    });
}

fn not_leader(manager: &Manager) -> Status {
    let mut status = Status::unavailable("this manager is not the leader");
    if let Some(l) = manager.leader_addr()
        && let Ok(v) = l.parse()
    {
        status.metadata_mut().insert("x-shoal-leader", v);
    }
    status
}

fn caller<T>(manager: &Manager, req: &Request<T>, roles: &[Role]) -> Result<String, Status> {
    let cid = manager
        .cluster()
        .map(|c| c.id)
        .ok_or_else(|| Status::unavailable("the cluster state is not known yet"))?;
    let who = authorize(req, &cid, roles, |id| is_revoked(manager, id))?;
    if !manager.is_leader() {
        return Err(not_leader(manager));
    }
    Ok(who.node_id)
}

/// `Logs`: managers subscribing at the leader.
pub struct LogsService {
    broker: Arc<LogBroker>,
}

#[tonic::async_trait]
impl LogsRpc for LogsService {
    type SubscribeLogsStream =
        tokio_stream::wrappers::ReceiverStream<Result<SubscribeLogsMessage, Status>>;

    async fn subscribe_logs(
        &self,
        req: Request<SubscribeLogsRequest>,
    ) -> Result<Response<Self::SubscribeLogsStream>, Status> {
        caller(&self.broker.manager, &req, &[Role::Manager])?;
        let mut sub = self
            .broker
            .subscribe(req.into_inner())
            .map_err(|e| Status::invalid_argument(e.message))?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = sub.next() => match m {
                        Some(m) => if tx.send(Ok(m)).await.is_err() { return },
                        None => return,
                    },
                    // The subscriber hung up: dropping `sub` tells the nodes.
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }
}

/// `LogBroker`: agents listening for subscriptions and publishing lines.
pub struct LogBrokerService {
    broker: Arc<LogBroker>,
}

#[tonic::async_trait]
impl LogBrokerRpc for LogBrokerService {
    type ListenSubscriptionsStream =
        tokio_stream::wrappers::ReceiverStream<Result<SubscriptionMessage, Status>>;

    async fn listen_subscriptions(
        &self,
        req: Request<ListenSubscriptionsRequest>,
    ) -> Result<Response<Self::ListenSubscriptionsStream>, Status> {
        let node = caller(&self.broker.manager, &req, &[Role::Manager, Role::Worker])?;
        let rx = self.broker.listen(node);
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn publish_logs(
        &self,
        req: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let node = caller(&self.broker.manager, &req, &[Role::Manager, Role::Worker])?;
        self.broker.publish(&node, req.into_inner()).await?;
        Ok(Response::new(PublishLogsResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::logs::{LogOptions, LogSelector};
    use shoal_store::{Change, RaftConfig, Store, plaintext_channels};
    use shoal_types::{Meta, Task};

    async fn broker_with_tasks(
        dir: &std::path::Path,
        tasks: &[(&str, &str, &str)],
    ) -> Arc<LogBroker> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("loopback port")
            .to_string();
        let mut cfg = RaftConfig::new(1, &addr, dir);
        cfg.heartbeat_ms = 50;
        cfg.election_min_ms = 150;
        cfg.election_max_ms = 300;
        let store = Store::start(cfg, plaintext_channels())
            .await
            .expect("store");
        store.initialize_single().await.expect("single node");
        store
            .wait_leader(Duration::from_secs(10))
            .await
            .expect("leader");
        let manager = Manager::new(store, "mgr".into(), addr, plaintext_channels());
        for (id, service, node) in tasks {
            let t = Task {
                id: id.to_string(),
                service_id: service.to_string(),
                node_id: node.to_string(),
                meta: Meta::now(),
                ..Task::default()
            };
            manager
                .propose(vec![Change::Create(Object::Task(t))])
                .await
                .expect("task created");
        }
        LogBroker::new(
            manager,
            Arc::new(|_: &str| Err(anyhow::anyhow!("no dialing"))),
        )
    }

    fn request(service: &str, follow: bool) -> SubscribeLogsRequest {
        SubscribeLogsRequest {
            selector: Some(LogSelector {
                service_ids: vec![service.into()],
                task_ids: Vec::new(),
            }),
            options: Some(LogOptions {
                follow,
                tail: -1,
                ..Default::default()
            }),
        }
    }

    fn line(sub: &str, task: &str, text: &str, close: bool) -> PublishLogsMessage {
        PublishLogsMessage {
            subscription_id: sub.into(),
            messages: vec![LogMessage {
                // Whatever the node claims, the broker stamps the caller's ID.
                node_id: "forged".into(),
                service_id: "svc".into(),
                task_id: task.into(),
                time_unix_nanos: 1,
                stream: 1,
                data: text.as_bytes().to_vec(),
            }],
            close,
            error: String::new(),
        }
    }

    async fn notice(
        rx: &mut mpsc::Receiver<Result<SubscriptionMessage, Status>>,
    ) -> SubscriptionMessage {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a notice in time")
            .expect("listener open")
            .expect("not an error")
    }

    #[tokio::test]
    async fn plain_subscription_gathers_every_node_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker_with_tasks(
            dir.path(),
            &[
                ("t1", "svc", "n1"),
                ("t2", "svc", "n2"),
                ("t3", "other", "n3"),
            ],
        )
        .await;
        let mut l1 = b.listen("n1".into());
        let mut l2 = b.listen("n2".into());
        let mut l3 = b.listen("n3".into());
        let mut sub = b.subscribe(request("svc", false)).unwrap();
        let id = notice(&mut l1).await.id;
        assert_eq!(notice(&mut l2).await.id, id);
        // n3 holds no task of the service: it is not asked.
        assert!(l3.try_recv().is_err());
        let mut open = BTreeSet::new();
        b.publish_one("n1", line(&id, "t1", "one\n", true), &mut open)
            .await
            .unwrap();
        // A node not asked cannot publish into it.
        assert!(
            b.publish_one(
                "n3",
                line(&id, "t3", "intruder\n", false),
                &mut BTreeSet::new()
            )
            .await
            .is_err()
        );
        b.publish_one("n2", line(&id, "t2", "two\n", false), &mut open)
            .await
            .unwrap();
        b.publish_one("n2", line(&id, "t2", "three\n", true), &mut open)
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(m) = sub.next().await {
            assert!(m.incomplete.is_empty(), "{}", m.incomplete);
            for l in m.messages {
                got.push((l.node_id, String::from_utf8_lossy(&l.data).into_owned()));
            }
        }
        assert_eq!(
            got,
            vec![
                ("n1".to_string(), "one\n".to_string()),
                ("n2".to_string(), "two\n".to_string()),
                ("n2".to_string(), "three\n".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn missing_and_vanishing_nodes_make_it_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker_with_tasks(dir.path(), &[("t1", "svc", "n1"), ("t2", "svc", "n2")]).await;
        // n1 listens then goes away mid-subscription; n2 never listens.
        let l1 = b.listen("n1".into());
        let mut sub = b.subscribe(request("svc", false)).unwrap();
        drop(l1);
        let mut last = String::new();
        while let Some(m) = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("the subscription ends")
        {
            last = m.incomplete;
        }
        assert!(last.contains("node n2 is not connected"), "{last}");
        assert!(last.contains("node n1 disconnected"), "{last}");
        assert!(
            b.subscribe(SubscribeLogsRequest {
                selector: Some(LogSelector::default()),
                options: None,
            })
            .is_err(),
            "nothing selected"
        );
    }

    #[tokio::test]
    async fn following_reaches_late_listeners_and_closes_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker_with_tasks(dir.path(), &[("t1", "svc", "n1")]).await;
        let sub = b.subscribe(request("svc", true)).unwrap();
        let id = sub.id().to_string();
        // A node that connects later (where tasks may start) hears of it.
        let mut late = b.listen("n9".into());
        assert_eq!(notice(&mut late).await.id, id);
        let mut open = BTreeSet::new();
        b.publish_one("n9", line(&id, "t9", "late\n", false), &mut open)
            .await
            .unwrap();
        drop(sub);
        let close = notice(&mut late).await;
        assert!(close.close && close.id == id);
        assert!(
            b.publish_one("n9", line(&id, "t9", "after\n", false), &mut open)
                .await
                .is_err()
        );
    }
}
