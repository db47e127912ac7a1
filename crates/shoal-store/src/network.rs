//! The Raft transport over tonic: the client side (openraft's `RaftNetworkFactory`/`RaftNetwork`)
//! and the server side (`RaftService`). Payloads are serde_json of openraft's own request and
//! response types; snapshot chunks carry their data as raw bytes beside a JSON header.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shoal_proto::raft::raft_service_client::RaftServiceClient;
use shoal_proto::raft::raft_service_server::{RaftService, RaftServiceServer};
use shoal_proto::raft::{RaftMessage, SnapshotChunk};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::command::{NodeId, Raft, TypeConfig};

/// Largest gRPC message accepted or sent: a batch of log entries (max_payload_entries) of large
/// objects must fit; snapshots travel in chunks well below this.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Makes a channel to another manager's `host:port`. The daemon supplies one with mTLS; tests and
/// benchmarks use [`plaintext_channels`].
pub type ChannelFactory = Arc<dyn Fn(&str) -> anyhow::Result<Channel> + Send + Sync>;

/// Plain-text HTTP/2 channels (loopback tests only: Raft traffic must use mTLS otherwise).
pub fn plaintext_channels() -> ChannelFactory {
    Arc::new(|addr: &str| {
        let ep = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        Ok(ep.connect_lazy())
    })
}

/// When each peer last answered us (leader side) or last sent us a valid leader message
/// (follower side): the basis of the Reachability column.
#[derive(Default)]
pub(crate) struct Contacts {
    last: Mutex<HashMap<NodeId, Instant>>,
}

impl Contacts {
    fn record(&self, id: NodeId) {
        let mut g = self.last.lock().unwrap_or_else(|p| p.into_inner());
        g.insert(id, Instant::now());
    }

    pub(crate) fn seen_within(&self, id: NodeId, window: Duration) -> bool {
        let g = self.last.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&id).is_some_and(|t| t.elapsed() <= window)
    }
}

pub(crate) struct NetworkFactory {
    pub(crate) self_id: NodeId,
    pub(crate) channels: ChannelFactory,
    pub(crate) contacts: Arc<Contacts>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            self_id: self.self_id,
            target,
            addr: node.addr.clone(),
            client: None,
            channels: self.channels.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

/// The connection to one peer, made lazily and reused.
pub(crate) struct PeerClient {
    self_id: NodeId,
    target: NodeId,
    addr: String,
    client: Option<RaftServiceClient<Channel>>,
    channels: ChannelFactory,
    contacts: Arc<Contacts>,
}

type RpcErr<E> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

enum Call {
    Append(RaftMessage),
    Vote(RaftMessage),
    Snapshot(SnapshotChunk),
}

impl PeerClient {
    // The error type is openraft's (fixed by the RaftNetwork trait), large or not.
    #[allow(clippy::result_large_err)]
    fn client<E: std::error::Error>(&mut self) -> Result<RaftServiceClient<Channel>, RpcErr<E>> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let channel = (self.channels)(&self.addr).map_err(|e| {
            let e =
                std::io::Error::other(format!("raft peer {} at {}: {e:#}", self.target, self.addr));
            RPCError::Unreachable(Unreachable::new(&e))
        })?;
        let c = RaftServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        self.client = Some(c.clone());
        Ok(c)
    }

    async fn call<Resp, E>(
        &mut self,
        call: Call,
        action: RPCTypes,
        ttl: Duration,
    ) -> Result<Resp, RpcErr<E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = self.client::<E>()?;
        let fut = async move {
            match call {
                Call::Append(m) => client.append_entries(m).await,
                Call::Vote(m) => client.vote(m).await,
                Call::Snapshot(c) => client.install_snapshot(c).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, fut).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.self_id,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            Ok(Err(status)) => return Err(status_error(self.target, &self.addr, status)),
            Ok(Ok(r)) => r.into_inner(),
        };
        self.contacts.record(self.target);
        let res: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.json)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn status_error<E: std::error::Error>(target: NodeId, addr: &str, status: Status) -> RpcErr<E> {
    let e = std::io::Error::other(format!(
        "raft peer {target} at {addr}: {} ({:?})",
        status.message(),
        status.code()
    ));
    match status.code() {
        // Down, refusing connections, or shutting down: back off rather than hammer it.
        Code::Unavailable | Code::Cancelled | Code::Unknown | Code::PermissionDenied => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

#[allow(clippy::result_large_err)]
fn encode<T: Serialize, E: std::error::Error>(v: &T) -> Result<Vec<u8>, RpcErr<E>> {
    serde_json::to_vec(v).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        let json = encode(&rpc)?;
        self.call(
            Call::Append(RaftMessage { json }),
            RPCTypes::AppendEntries,
            option.hard_ttl(),
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let data = std::mem::take(&mut rpc.data);
        let header = encode(&rpc)?;
        self.call(
            Call::Snapshot(SnapshotChunk { header, data }),
            RPCTypes::InstallSnapshot,
            option.hard_ttl(),
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        let json = encode(&rpc)?;
        self.call(
            Call::Vote(RaftMessage { json }),
            RPCTypes::Vote,
            option.hard_ttl(),
        )
        .await
    }
}

/// The gRPC server side: decodes, hands to openraft, encodes openraft's `Result` back.
pub struct RaftGrpc {
    pub(crate) raft: Raft,
    pub(crate) contacts: Arc<Contacts>,
    /// Members dropped by force-new-cluster: their messages are refused so an old cluster cannot
    /// pull this one back.
    pub(crate) removed: Arc<HashSet<NodeId>>,
}

impl RaftGrpc {
    pub(crate) fn into_server(self) -> RaftServiceServer<RaftGrpc> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn check_sender(&self, from: Option<NodeId>) -> Result<(), Status> {
        match from {
            Some(id) if self.removed.contains(&id) => Err(Status::permission_denied(format!(
                "raft member {id} was removed from this cluster"
            ))),
            _ => Ok(()),
        }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("bad raft {what}: {e}")))
}

fn reply<T: Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    let json =
        serde_json::to_vec(v).map_err(|e| Status::internal(format!("encoding raft reply: {e}")))?;
    Ok(Response::new(RaftMessage { json }))
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&req.get_ref().json, "append-entries")?;
        let from = rpc.vote.leader_id().voted_for();
        self.check_sender(from)?;
        let res = self.raft.append_entries(rpc).await;
        if let (Ok(r), Some(id)) = (&res, from)
            && r.is_success()
        {
            self.contacts.record(id);
        }
        reply(&res)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&req.get_ref().json, "vote")?;
        self.check_sender(rpc.vote.leader_id().voted_for())?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<SnapshotChunk>,
    ) -> Result<Response<RaftMessage>, Status> {
        let chunk = req.into_inner();
        let mut rpc: InstallSnapshotRequest<TypeConfig> =
            decode(&chunk.header, "install-snapshot")?;
        let from = rpc.vote.leader_id().voted_for();
        self.check_sender(from)?;
        rpc.data = chunk.data;
        let res = self.raft.install_snapshot(rpc).await;
        if let (Ok(_), Some(id)) = (&res, from) {
            self.contacts.record(id);
        }
        reply(&res)
    }
}
