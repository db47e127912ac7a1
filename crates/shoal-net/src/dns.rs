//! The embedded service-discovery DNS server (hand-rolled on hickory-proto's wire format).
//!
//! It answers A queries for swarm names from a [`DnsTable`] that the agent swaps atomically
//! whenever tasks, services or health change (answers carry TTL 0, so clients see changes at
//! once), and forwards every other name to the node's upstream resolvers.
//!
//! Names: `<service>`, `<stack>_<service>`, aliases (→ VIP, or the task IPs for dnsrr),
//! `tasks.<service>` (→ task IPs), container hostnames. A table is split into scopes (one per
//! network); a server only sees the scopes of the networks its container is attached to.
//! Single-label names and `tasks.*` are swarm names: unknown ones get NXDOMAIN rather than a
//! trip upstream.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::{NetError, Result};

/// How long to wait for an upstream resolver before trying the next.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Names → addresses, per network scope. Names are stored lowercase without trailing dot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsTable {
    scopes: HashMap<String, HashMap<String, Vec<Ipv4Addr>>>,
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn check_name(name: &str) -> Result<()> {
    let n = name.trim_end_matches('.');
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid(format!("bad DNS name {name:?}")))
    }
}

impl DnsTable {
    pub fn new() -> DnsTable {
        DnsTable::default()
    }

    /// Set `name` in `scope` to `ips` (replacing what was there). Empty `ips` removes it.
    pub fn set_name(&mut self, scope: &str, name: &str, ips: Vec<Ipv4Addr>) -> Result<()> {
        check_name(name)?;
        let s = self.scopes.entry(scope.to_string()).or_default();
        if ips.is_empty() {
            s.remove(&norm(name));
        } else {
            s.insert(norm(name), ips);
        }
        Ok(())
    }

    /// A service on network `scope`: each of `names` (service name, `<stack>_<service>`,
    /// aliases) resolves to the VIP, or to the task IPs when `vip` is None (dnsrr);
    /// `tasks.<name>` resolves to the task IPs. Pass only running, healthy tasks.
    pub fn add_service(
        &mut self,
        scope: &str,
        names: &[&str],
        vip: Option<Ipv4Addr>,
        task_ips: &[Ipv4Addr],
    ) -> Result<()> {
        for n in names {
            check_name(n)?;
        }
        for n in names {
            let ips = match vip {
                Some(v) => vec![v],
                None => task_ips.to_vec(),
            };
            self.set_name(scope, n, ips)?;
            self.set_name(scope, &format!("tasks.{}", norm(n)), task_ips.to_vec())?;
        }
        Ok(())
    }

    /// Look `name` up in `scopes`, first scope with the name wins.
    pub fn lookup(&self, scopes: &[String], name: &str) -> Option<&[Ipv4Addr]> {
        let n = norm(name);
        scopes
            .iter()
            .filter_map(|s| self.scopes.get(s))
            .find_map(|m| m.get(&n))
            .map(|v| v.as_slice())
    }
}

/// A table shared between the agent (writer) and DNS servers (readers), swapped whole.
#[derive(Debug, Clone, Default)]
pub struct SharedTable(Arc<RwLock<Arc<DnsTable>>>);

impl SharedTable {
    pub fn new(t: DnsTable) -> SharedTable {
        SharedTable(Arc::new(RwLock::new(Arc::new(t))))
    }

    /// Replace the table; queries in flight finish on the old one.
    pub fn swap(&self, t: DnsTable) {
        match self.0.write() {
            Ok(mut g) => *g = Arc::new(t),
            Err(p) => *p.into_inner() = Arc::new(t),
        }
    }

    /// The current table.
    pub fn load(&self) -> Arc<DnsTable> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// What one server answers for.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Network scopes visible to the container, in lookup order.
    pub scopes: Vec<String>,
    /// Upstream resolvers for other names (the node's resolv.conf servers).
    pub upstreams: Vec<SocketAddr>,
}

/// Is this a name the swarm owns (answered locally, NXDOMAIN when unknown)?
pub fn is_swarm_name(name: &str) -> bool {
    let n = norm(name);
    !n.contains('.') || n.starts_with("tasks.")
}

struct Resolver {
    table: SharedTable,
    cfg: DnsConfig,
    rr: AtomicUsize,
    own: Vec<SocketAddr>,
}

impl Resolver {
    /// Build the answer for one query packet; None = drop (unparseable).
    async fn answer(&self, packet: &[u8], udp: bool) -> Option<Vec<u8>> {
        let req = Message::from_vec(packet).ok()?;
        if req.metadata.message_type != MessageType::Query {
            return None;
        }
        let id = req.metadata.id;
        let Some(q) = req.queries.first().cloned() else {
            return Message::error_msg(id, req.metadata.op_code, ResponseCode::FormErr)
                .to_vec()
                .ok();
        };
        if req.metadata.op_code != OpCode::Query || req.queries.len() != 1 {
            return Message::error_msg(id, req.metadata.op_code, ResponseCode::NotImp)
                .to_vec()
                .ok();
        }
        let name = q.name().to_ascii();
        let table = self.table.load();
        let found = table.lookup(&self.cfg.scopes, &name).map(|v| v.to_vec());
        drop(table);
        match found {
            Some(ips) => {
                let mut resp = Message::response(id, OpCode::Query);
                resp.metadata.authoritative = true;
                resp.metadata.recursion_desired = req.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.add_query(q.clone());
                if q.query_type() == RecordType::A || q.query_type() == RecordType::ANY {
                    // Round robin: rotate the list on every answer.
                    let k = self.rr.fetch_add(1, Ordering::Relaxed) % ips.len().max(1);
                    for ip in ips.iter().cycle().skip(k).take(ips.len()) {
                        resp.add_answer(Record::from_rdata(q.name().clone(), 0, RData::A(A(*ip))));
                    }
                }
                // Other types for a known name: NOERROR with no data (we have only IPv4).
                let out = resp.to_vec().ok()?;
                if udp && out.len() > req.max_payload() as usize {
                    // Too big for this client over UDP: TC set, it retries over TCP.
                    return resp.truncate().to_vec().ok();
                }
                Some(out)
            }
            None if is_swarm_name(&name) => {
                let mut resp = Message::error_msg(id, OpCode::Query, ResponseCode::NXDomain);
                resp.metadata.recursion_desired = req.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.add_query(q.clone());
                resp.to_vec().ok()
            }
            None => match self.forward(packet).await {
                Some(r) => Some(r),
                None => {
                    let mut resp = Message::error_msg(id, OpCode::Query, ResponseCode::ServFail);
                    resp.add_query(q.clone());
                    resp.to_vec().ok()
                }
            },
        }
    }

    /// Relay the query verbatim to the upstreams in order; first valid answer wins.
    async fn forward(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let id = Message::from_vec(packet).ok()?.metadata.id;
        for up in &self.cfg.upstreams {
            if self.own.contains(up) {
                continue; // never forward to ourselves
            }
            let bind: SocketAddr = if up.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let Ok(sock) = UdpSocket::bind(bind).await else {
                continue;
            };
            if sock.send_to(packet, up).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            let got = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
                loop {
                    let (n, from) = sock.recv_from(&mut buf).await.ok()?;
                    // Only the upstream we asked, only our query id.
                    if from == *up
                        && Message::from_vec(&buf[..n])
                            .map(|m| m.metadata.id == id)
                            .unwrap_or(false)
                    {
                        return Some(buf[..n].to_vec());
                    }
                }
            })
            .await;
            if let Ok(Some(r)) = got {
                return Some(r);
            }
        }
        None
    }
}

/// A running DNS server (UDP + TCP on the same address). Stops on drop.
pub struct DnsServer {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Bind UDP and TCP on `addr` in the caller's namespace and serve.
    pub async fn bind(addr: SocketAddr, table: SharedTable, cfg: DnsConfig) -> Result<DnsServer> {
        let udp = std::net::UdpSocket::bind(addr)?;
        let tcp = std::net::TcpListener::bind(udp.local_addr()?)?;
        Self::from_std(udp, tcp, table, cfg)
    }

    /// Bind inside the namespace at `netns` (e.g. a container's) and serve from this runtime.
    pub async fn bind_in_netns(
        netns: &std::path::Path,
        addr: SocketAddr,
        table: SharedTable,
        cfg: DnsConfig,
    ) -> Result<DnsServer> {
        let (udp, tcp) = crate::netns::run_in(netns, || -> Result<_> {
            let udp = std::net::UdpSocket::bind(addr)?;
            let tcp = std::net::TcpListener::bind(udp.local_addr()?)?;
            Ok((udp, tcp))
        })??;
        Self::from_std(udp, tcp, table, cfg)
    }

    /// Serve on sockets the caller bound (in whatever namespace). Needs a tokio runtime.
    pub fn from_std(
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        table: SharedTable,
        cfg: DnsConfig,
    ) -> Result<DnsServer> {
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let udp_addr = udp.local_addr()?;
        let tcp_addr = tcp.local_addr()?;
        let udp = Arc::new(UdpSocket::from_std(udp)?);
        let tcp = TcpListener::from_std(tcp)?;
        let res = Arc::new(Resolver {
            table,
            cfg,
            rr: AtomicUsize::new(0),
            own: vec![udp_addr, tcp_addr],
        });
        let r1 = res.clone();
        let u = udp.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = u.recv_from(&mut buf).await else {
                    continue;
                };
                let pkt = buf[..n].to_vec();
                let (r, u) = (r1.clone(), u.clone());
                tokio::spawn(async move {
                    if let Some(out) = r.answer(&pkt, true).await {
                        let _ = u.send_to(&out, from).await;
                    }
                });
            }
        });
        let r2 = res;
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    continue;
                };
                let r = r2.clone();
                tokio::spawn(async move {
                    // Length-prefixed messages; bounded by an idle timeout.
                    loop {
                        let read = tokio::time::timeout(Duration::from_secs(10), async {
                            let len = s.read_u16().await.ok()? as usize;
                            let mut pkt = vec![0u8; len];
                            s.read_exact(&mut pkt).await.ok()?;
                            Some(pkt)
                        })
                        .await;
                        let Ok(Some(pkt)) = read else { return };
                        let Some(out) = r.answer(&pkt, false).await else {
                            return;
                        };
                        let Ok(len) = u16::try_from(out.len()) else {
                            return;
                        };
                        if s.write_u16(len).await.is_err() || s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(DnsServer {
            udp_addr,
            tcp_addr,
            tasks: vec![udp_task, tcp_task],
        })
    }

    /// The UDP address served.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The TCP address served.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `resolv.conf` content for a container whose DNS server listens on `server`.
pub fn resolv_conf(server: std::net::IpAddr, search: &[String], ndots: Option<u8>) -> String {
    let mut s = format!("nameserver {server}\n");
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if let Some(n) = ndots {
        s.push_str(&format!("options ndots:{n}\n"));
    }
    s
}

/// Build an A query packet (for tests and health checks).
pub fn a_query(id: u16, name: &str) -> Result<Vec<u8>> {
    let n = Name::from_ascii(name).map_err(|e| NetError::Invalid(format!("name {name:?}: {e}")))?;
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(hickory_proto::op::Query::query(n, RecordType::A));
    m.to_vec().map_err(|e| NetError::Dns(e.to_string()))
}

/// Parse an answer: response code and the A addresses in order.
pub fn parse_a_answer(packet: &[u8]) -> Result<(ResponseCode, Vec<Ipv4Addr>)> {
    let m = Message::from_vec(packet).map_err(|e| NetError::Dns(format!("bad answer: {e}")))?;
    let ips = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    Ok((m.metadata.response_code, ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_scopes_and_services() {
        let mut t = DnsTable::new();
        let ips = [Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)];
        t.add_service(
            "n1",
            &["web", "stack_web"],
            Some(Ipv4Addr::new(10, 0, 0, 2)),
            &ips,
        )
        .unwrap();
        t.add_service("n2", &["db"], None, &ips).unwrap();
        let s1 = vec!["n1".to_string()];
        assert_eq!(
            t.lookup(&s1, "WEB."),
            Some(&[Ipv4Addr::new(10, 0, 0, 2)][..])
        );
        assert_eq!(t.lookup(&s1, "tasks.web"), Some(&ips[..]));
        assert_eq!(t.lookup(&s1, "tasks.stack_web"), Some(&ips[..]));
        assert_eq!(
            t.lookup(&s1, "db"),
            None,
            "other network's names are invisible"
        );
        let s2 = vec!["n2".to_string()];
        assert_eq!(t.lookup(&s2, "db"), Some(&ips[..]));
        assert!(t.set_name("n1", "bad name", vec![]).is_err());
        assert!(t.set_name("n1", "", vec![]).is_err());
    }

    #[test]
    fn swarm_names() {
        assert!(is_swarm_name("web"));
        assert!(is_swarm_name("tasks.web"));
        assert!(!is_swarm_name("example.org"));
    }

    #[test]
    fn resolv_conf_text() {
        let s = resolv_conf("127.0.0.11".parse().unwrap(), &["a.b".into()], Some(0));
        assert_eq!(s, "nameserver 127.0.0.11\nsearch a.b\noptions ndots:0\n");
    }
}
