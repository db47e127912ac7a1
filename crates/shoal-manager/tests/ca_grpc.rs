//! Real tonic mTLS on 127.0.0.1: the NodeCA service with a test registrar, joining with
//! tokens (CA pinning), renewal with the cluster's current role, and per-RPC authorization.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use shoal_manager::ca::tls::{self, client_tls_config, pinned_endpoint, server_tls_config};
use shoal_manager::ca::{
    CaError, DEFAULT_NODE_CERT_VALIDITY, Identity, JoinInfo, JoinParams, JoinToken, NodeCaService,
    NodeCredentials, NodeKey, NodeRegistrar, Role, RoleGuard, RootCa, join_bootstrap, renew,
};
use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::ca::{Empty, IssueRequest, RenewRequest};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status};

const CLUSTER: &str = "cluster0test";
const UNLOCK: &str = "SWMKEY-1-testunlockkey";

struct TestRegistrar {
    ca: Arc<RootCa>,
    tokens: Mutex<(String, String)>,
    revoked: Mutex<HashSet<String>>,
    roles: Mutex<HashMap<String, Role>>,
    joined: Mutex<Vec<JoinInfo>>,
    next: AtomicU32,
}

impl NodeRegistrar for TestRegistrar {
    async fn register(&self, info: JoinInfo) -> Result<String, Status> {
        let id = format!("node{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.roles.lock().unwrap().insert(id.clone(), info.role);
        self.joined.lock().unwrap().push(info);
        Ok(id)
    }
    fn current_ca(&self) -> Result<Arc<RootCa>, Status> {
        Ok(self.ca.clone())
    }
    fn tokens(&self) -> (String, String) {
        self.tokens.lock().unwrap().clone()
    }
    fn cluster_id(&self) -> String {
        CLUSTER.to_string()
    }
    fn is_revoked(&self, node_id: &str) -> bool {
        self.revoked.lock().unwrap().contains(node_id)
    }
    fn node_role(&self, node_id: &str) -> Option<Role> {
        self.roles.lock().unwrap().get(node_id).copied()
    }
    fn unlock_key(&self) -> Option<String> {
        Some(UNLOCK.to_string())
    }
}

struct Cluster {
    ca: Arc<RootCa>,
    reg: Arc<TestRegistrar>,
    addr: SocketAddr,
    worker_token: String,
    manager_token: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Credentials signed directly by `ca` (what a node holds after joining).
fn creds(ca: &RootCa, node_id: &str, role: Role, cluster: &str) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let cert = ca
        .issue(
            &key.csr_pem().unwrap(),
            node_id,
            role,
            cluster,
            DEFAULT_NODE_CERT_VALIDITY,
        )
        .unwrap();
    NodeCredentials::from_parts(key.key_pem(), cert, ca.cert_pem().to_string()).unwrap()
}

async fn start() -> Cluster {
    let ca = Arc::new(RootCa::generate().unwrap());
    let worker_token = JoinToken::generate(&ca).to_string();
    let manager_token = JoinToken::generate(&ca).to_string();
    let reg = Arc::new(TestRegistrar {
        ca: ca.clone(),
        tokens: Mutex::new((worker_token.clone(), manager_token.clone())),
        revoked: Mutex::new(HashSet::new()),
        roles: Mutex::new(HashMap::new()),
        joined: Mutex::new(Vec::new()),
        next: AtomicU32::new(1),
    });
    reg.roles
        .lock()
        .unwrap()
        .insert("mgr0".into(), Role::Manager);
    let server_creds = creds(&ca, "mgr0", Role::Manager, CLUSTER);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = NodeCaService::new(reg.clone()).into_server();
    let tls = server_tls_config(&server_creds).unwrap();
    let server = tokio::spawn(async move {
        let res = Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
        if let Err(e) = res {
            eprintln!("test server stopped: {e}");
        }
    });
    Cluster {
        ca,
        reg,
        addr,
        worker_token,
        manager_token,
        server,
    }
}

async fn mtls(c: &Cluster, who: &NodeCredentials) -> NodeCaClient<Channel> {
    NodeCaClient::new(tls::connect(&c.addr.to_string(), who).await.unwrap())
}

/// A TLS channel that verifies the server but presents no client certificate.
async fn anonymous(c: &Cluster) -> NodeCaClient<Channel> {
    let ch = pinned_endpoint(&c.addr.to_string(), c.ca.digest())
        .unwrap()
        .connect()
        .await
        .unwrap();
    NodeCaClient::new(ch)
}

#[tokio::test]
async fn manager_cert_may_call_manager_only_rpc() {
    let c = start().await;
    let m = creds(&c.ca, "mgr2", Role::Manager, CLUSTER);
    let resp = mtls(&c, &m).await.get_unlock_key(Empty {}).await.unwrap();
    assert_eq!(resp.into_inner().unlock_key, UNLOCK);
}

#[tokio::test]
async fn worker_cert_is_denied_on_manager_only_rpc() {
    let c = start().await;
    let w = creds(&c.ca, "wrk1", Role::Worker, CLUSTER);
    let err = mtls(&c, &w)
        .await
        .get_unlock_key(Empty {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("worker"), "{}", err.message());
}

#[tokio::test]
async fn no_cert_is_unauthenticated() {
    let c = start().await;
    let mut cl = anonymous(&c).await;
    let err = cl.get_unlock_key(Empty {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
    let err = cl
        .renew_node_certificate(RenewRequest { csr_pem: csr })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // The root download needs no certificate.
    let root = cl.get_root_ca_certificate(Empty {}).await.unwrap();
    assert_eq!(root.into_inner().cert_pem, c.ca.cert_pem());
}

#[tokio::test]
async fn revoked_node_is_denied() {
    let c = start().await;
    let w = creds(&c.ca, "wrk9", Role::Worker, CLUSTER);
    c.reg
        .roles
        .lock()
        .unwrap()
        .insert("wrk9".into(), Role::Worker);
    let ch = tls::connect(&c.addr.to_string(), &w).await.unwrap();
    // Before removal, renewal works.
    renew(ch.clone(), &w).await.unwrap();
    c.reg.revoked.lock().unwrap().insert("wrk9".into());
    let err = renew(ch, &w).await.unwrap_err();
    assert!(err.to_string().contains("removed"), "{err}");
}

#[tokio::test]
async fn cert_of_another_cluster_with_same_ca_is_unauthenticated() {
    let c = start().await;
    let stranger = creds(&c.ca, "mgr7", Role::Manager, "othercluster");
    let err = mtls(&c, &stranger)
        .await
        .get_unlock_key(Empty {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

#[tokio::test]
async fn client_cert_from_another_ca_is_refused_at_tls() {
    let c = start().await;
    let other = RootCa::generate().unwrap();
    let forged = creds(&other, "mgr8", Role::Manager, CLUSTER);
    // Trusts our root (so the server verifies), presents a certificate of another CA.
    let mixed = NodeCredentials {
        ca_pem: c.ca.cert_pem().to_string(),
        ..forged.clone()
    };
    let result = async {
        let ch = tls::connect(&c.addr.to_string(), &mixed).await?;
        NodeCaClient::new(ch)
            .get_unlock_key(Empty {})
            .await
            .map_err(|s| CaError::Rpc(format!("{s:?}")))
    }
    .await;
    let err = result.expect_err("a certificate from another CA must be refused");
    // Refused by the TLS layer, not by the handler's role check.
    assert!(err.to_string().contains("alert"), "{err}");
    assert!(!err.to_string().contains("PermissionDenied"), "{err}");
    assert!(!err.to_string().contains("Unauthenticated"), "{err}");

    // And a node of another cluster does not trust our server.
    let err = tls::connect(&c.addr.to_string(), &forged)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn worker_certificate_cannot_serve() {
    let ca = RootCa::generate().unwrap();
    let w = creds(&ca, "wrk1", Role::Worker, CLUSTER);
    assert!(server_tls_config(&w).is_err());
}

#[tokio::test]
async fn join_with_worker_token_then_renew_over_mtls() {
    let c = start().await;
    let params = JoinParams {
        hostname: "host-a".into(),
        advertise_addr: "127.0.0.1:2377".into(),
        availability: "drain".into(),
        ..Default::default()
    };
    let w = join_bootstrap(&c.addr.to_string(), &c.worker_token, &params)
        .await
        .unwrap();
    assert_eq!(w.role, Role::Worker);
    assert_eq!(w.cluster_id, CLUSTER);
    assert_eq!(w.ca_pem, c.ca.cert_pem());
    let id = Identity::from_pem(&w.cert_pem).unwrap();
    assert_eq!(id.node_id, w.node_id);
    {
        let joined = c.reg.joined.lock().unwrap();
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].hostname, "host-a");
        assert_eq!(joined[0].advertise_addr, "127.0.0.1:2377");
        assert_eq!(joined[0].availability, "drain");
        assert_eq!(joined[0].role, Role::Worker);
        assert!(joined[0].peer_addr.is_some());
    }

    // The new certificate works for mTLS; renewal keeps the role...
    let ch = tls::connect(&c.addr.to_string(), &w).await.unwrap();
    let w2 = renew(ch.clone(), &w).await.unwrap();
    assert_eq!(w2.role, Role::Worker);
    assert_eq!(w2.node_id, w.node_id);
    assert_ne!(w2.key_pem, w.key_pem);
    // ...until the cluster promotes the node: the next renewal carries the manager role.
    c.reg
        .roles
        .lock()
        .unwrap()
        .insert(w.node_id.clone(), Role::Manager);
    let m = renew(ch, &w).await.unwrap();
    assert_eq!(m.role, Role::Manager);
    let resp = mtls(&c, &m).await.get_unlock_key(Empty {}).await.unwrap();
    assert_eq!(resp.into_inner().unlock_key, UNLOCK);
}

#[tokio::test]
async fn join_with_manager_token_gives_manager_cert() {
    let c = start().await;
    let m = join_bootstrap(
        &c.addr.to_string(),
        &c.manager_token,
        &JoinParams::default(),
    )
    .await
    .unwrap();
    assert_eq!(m.role, Role::Manager);
    // A manager from a join can serve the cluster port.
    assert!(server_tls_config(&m).is_ok());
    assert_eq!(c.reg.joined.lock().unwrap()[0].availability, "active");
}

#[tokio::test]
async fn join_with_wrong_ca_digest_fails_pinning() {
    let c = start().await;
    let other = RootCa::generate().unwrap();
    let wrong = JoinToken::generate(&other).to_string();
    let err = join_bootstrap(&c.addr.to_string(), &wrong, &JoinParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err, CaError::Pinning(_)), "{err:?}");
    assert!(err.to_string().contains("join token"), "{err}");
    assert!(c.reg.joined.lock().unwrap().is_empty());
}

#[tokio::test]
async fn join_with_wrong_or_rotated_secret_is_refused() {
    let c = start().await;
    let addr = c.addr.to_string();
    let guessed = JoinToken::for_digest(c.ca.digest()).to_string();
    let err = join_bootstrap(&addr, &guessed, &JoinParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid join token");

    // Rotate the worker token: the old one stops working, the new one works.
    let new_worker = JoinToken::parse(&c.worker_token)
        .unwrap()
        .rotate()
        .to_string();
    c.reg.tokens.lock().unwrap().0 = new_worker.clone();
    let err = join_bootstrap(&addr, &c.worker_token, &JoinParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid join token");
    assert!(c.reg.joined.lock().unwrap().is_empty());
    let w = join_bootstrap(&addr, &new_worker, &JoinParams::default())
        .await
        .unwrap();
    assert_eq!(w.role, Role::Worker);
}

#[tokio::test]
async fn malformed_join_input_changes_nothing() {
    let c = start().await;
    let addr = c.addr.to_string();
    let err = join_bootstrap(&addr, "SWMTKN-1-nope", &JoinParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err, CaError::Invalid(_)), "{err:?}");

    let mut cl = anonymous(&c).await;
    let bad_csr = cl
        .issue_node_certificate(IssueRequest {
            csr_pem: "not a csr".into(),
            token: c.worker_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_csr.code(), Code::InvalidArgument, "{bad_csr:?}");
    let bad_avail = cl
        .issue_node_certificate(IssueRequest {
            csr_pem: NodeKey::generate().unwrap().csr_pem().unwrap(),
            token: c.worker_token.clone(),
            availability: "sometimes".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_avail.code(), Code::InvalidArgument, "{bad_avail:?}");
    assert!(c.reg.joined.lock().unwrap().is_empty());
}

#[tokio::test]
async fn server_is_verified_by_role_name_not_address() {
    let c = start().await;
    // A worker's certificate does not carry the manager server name, so a client refuses a
    // "manager" that presents it, even with the right root.
    let ca = c.ca.clone();
    let w = creds(&ca, "wrk5", Role::Worker, CLUSTER);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let chain = format!("{}{}", w.cert_pem, w.ca_pem);
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(chain, &w.key_pem));
    let svc = NodeCaService::new(c.reg.clone()).into_server();
    let fake = tokio::spawn(async move {
        let _ = Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    let m = creds(&ca, "mgr3", Role::Manager, CLUSTER);
    let res = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(client_tls_config(&m))
        .unwrap()
        .connect()
        .await;
    fake.abort();
    let err = res.expect_err("a worker certificate must not pass as a manager");
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
}

#[tokio::test]
async fn role_guard_interceptor_protects_a_whole_service() {
    let c = start().await;
    let reg = c.reg.clone();
    let guard = RoleGuard::new(
        &[Role::Manager],
        || CLUSTER.to_string(),
        move |n| reg.is_revoked(n),
    );
    let svc = InterceptedService::new(NodeCaService::new(c.reg.clone()).into_server(), guard);
    let server_creds = creds(&c.ca, "mgr0", Role::Manager, CLUSTER);
    let tls = server_tls_config(&server_creds).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let _ = Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    let call = |who: NodeCredentials| {
        let addr = addr.clone();
        async move {
            let ch = tls::connect(&addr, &who).await.unwrap();
            NodeCaClient::new(ch)
                .get_root_ca_certificate(Empty {})
                .await
        }
    };
    let m = creds(&c.ca, "mgr4", Role::Manager, CLUSTER);
    assert!(call(m).await.is_ok());
    let w = creds(&c.ca, "wrk4", Role::Worker, CLUSTER);
    assert_eq!(call(w).await.unwrap_err().code(), Code::PermissionDenied);
    c.reg.revoked.lock().unwrap().insert("mgr5".into());
    let removed = creds(&c.ca, "mgr5", Role::Manager, CLUSTER);
    assert_eq!(
        call(removed).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let anon = pinned_endpoint(&addr, c.ca.digest())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = NodeCaClient::new(anon)
        .get_root_ca_certificate(Empty {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    server.abort();
}
