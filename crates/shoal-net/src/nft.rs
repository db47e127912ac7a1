//! nftables rulesets: NAT for bridge subnets, host-port publishing, VIP load balancing and the
//! ingress routing mesh (this kernel has no IPVS; numgen maps do the spreading).
//!
//! The ruleset is a pure function of a [`DesiredState`] ([`build_ruleset`]), applied
//! atomically: one `nft -j` transaction adds the table (so it exists), deletes it and recreates
//! it with everything in it. Existing connections keep their NAT binding in conntrack, so a
//! backend dropped from a map is drained: no new connections, established ones keep going.
//!
//! Each daemon owns exactly one table (`ip <name>`), so several daemons on one machine (or in
//! one namespace) never touch each other's rules.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Map, Meta, MetaKey, NamedExpression, NgMode, Numgen,
    Payload, PayloadField, Prefix, SetItem,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Mangle, Match, NAT, Operator, Reject, RejectType, Statement};
use nftables::types::RejectCode;
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::{NetError, Result};

/// Packet mark set on ingress-mesh connections so postrouting masquerades them (replies then
/// return through the node that took the request).
pub const INGRESS_MARK: u32 = 0x5348_0001;

/// Transport protocol of a port rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl std::str::FromStr for Proto {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Proto> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(NetError::Invalid(format!(
                "protocol {s:?} is not tcp or udp"
            ))),
        }
    }
}

/// Source NAT for traffic leaving a bridge subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masquerade {
    pub subnet: Ipv4Net,
    /// When set, traffic going out through this bridge is left alone (container to container).
    pub bridge: Option<String>,
}

/// `-p [host_ip:]host_port:target_port/proto` for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub proto: Proto,
    pub host_port: u16,
    /// Only this local address (None: every local address).
    pub host_ip: Option<Ipv4Addr>,
    pub target: Ipv4Addr,
    pub target_port: u16,
}

/// A virtual IP port spread over backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipService {
    pub vip: Ipv4Addr,
    pub proto: Proto,
    pub port: u16,
    pub target_port: u16,
    /// Running, healthy tasks. Empty: connections are refused (TCP reset / ICMP unreachable).
    pub backends: Vec<Ipv4Addr>,
}

/// A virtual IP that answers on every port and protocol of its backends (Docker's VIP
/// semantics: the service address stands for its tasks whatever port a client picks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipAll {
    pub vip: Ipv4Addr,
    /// Running, healthy tasks. Empty: everything to the VIP is refused (ICMP unreachable).
    pub backends: Vec<Ipv4Addr>,
}

/// A port published through the routing mesh: every local address of the node answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPort {
    pub proto: Proto,
    pub published_port: u16,
    pub target_port: u16,
    pub backends: Vec<Ipv4Addr>,
}

/// Everything one daemon wants in its table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub masquerade: Vec<Masquerade>,
    pub host_ports: Vec<HostPort>,
    pub vips: Vec<VipService>,
    pub vips_all: Vec<VipAll>,
    pub ingress: Vec<IngressPort>,
    /// Source-NAT (masquerade) everything routed towards these subnets: connections DNATed to
    /// a container over a point-to-point link then answer on that link.
    pub masquerade_to: Vec<Ipv4Net>,
    /// Masquerade connections from 127.0.0.0/8 that were DNATed to a container (so
    /// `curl localhost:<published>` works; needs `route_localnet` on the bridge).
    pub masquerade_loopback: bool,
    /// UDP destination ports kept out of connection tracking (the overlay's VXLAN port): the
    /// kernel picks the outer source port from a hash of the inner flow, so every inner
    /// connection would cost a new conntrack entry and a NAT-chain pass per direction on both
    /// nodes, for packets nothing here NATs or filters.
    pub notrack_udp: Vec<u16>,
}

/// Build a per-daemon table name `<prefix>-<suffix>`, checked for nft's rules.
pub fn table_name(prefix: &str, suffix: &str) -> Result<String> {
    let name = if suffix.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}-{suffix}")
    };
    validate_table(&name)?;
    Ok(name)
}

fn validate_table(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid(format!("bad nft table name {name:?}")))
    }
}

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}

fn field(proto: &str, f: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Owned(proto.to_string()),
            field: Cow::Owned(f.to_string()),
        },
    )))
}

fn m(left: Expression<'static>, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    m(left, Operator::EQ, right)
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(net.network().to_string())),
        len: net.prefix_len() as u32,
    }))
}

fn dport(p: Proto, port: u16) -> Statement<'static> {
    eq(field(p.as_str(), "dport"), Expression::Number(port as u32))
}

fn daddr_is_local() -> Statement<'static> {
    let mut flags = HashSet::new();
    flags.insert(FibFlag::Daddr);
    eq(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags,
        })),
        s("local"),
    )
}

fn meta(k: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key: k }))
}

/// `dnat to numgen random mod N map { 0: a, 1: b, … } : port` (or a plain address for N = 1).
fn dnat_spread(backends: &[Ipv4Addr], port: Option<u16>) -> Statement<'static> {
    let addr = if backends.len() == 1 {
        s(backends[0].to_string())
    } else {
        let items = backends
            .iter()
            .enumerate()
            .map(|(i, b)| SetItem::Mapping(Expression::Number(i as u32), s(b.to_string())))
            .collect();
        Expression::Named(NamedExpression::Map(Box::new(Map {
            key: Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Random,
                ng_mod: backends.len() as u32,
                offset: None,
            })),
            data: Expression::Named(NamedExpression::Set(items)),
        })))
    };
    Statement::DNAT(Some(NAT {
        addr: Some(addr),
        family: None,
        port: port.map(|p| Expression::Number(p as u32)),
        flags: None,
    }))
}

fn reject(p: Proto) -> Statement<'static> {
    Statement::Reject(Some(match p {
        Proto::Tcp => Reject::new(Some(RejectType::TCPReset), None),
        Proto::Udp => Reject::new(Some(RejectType::ICMP), Some(RejectCode::PortUnreach)),
    }))
}

/// Check the state for contradictions before any rule is generated.
pub fn validate(st: &DesiredState) -> Result<()> {
    let mut local_ports: HashMap<(Proto, u16, Option<Ipv4Addr>), &str> = HashMap::new();
    for h in &st.host_ports {
        if h.host_port == 0 || h.target_port == 0 {
            return Err(NetError::Invalid(format!("host port {h:?}: port 0")));
        }
        if local_ports
            .insert((h.proto, h.host_port, h.host_ip), "host")
            .is_some()
        {
            return Err(NetError::Invalid(format!(
                "host port {}/{} published twice",
                h.host_port,
                h.proto.as_str()
            )));
        }
    }
    for i in &st.ingress {
        if i.published_port == 0 || i.target_port == 0 {
            return Err(NetError::Invalid(format!("ingress port {i:?}: port 0")));
        }
        let clash = st
            .host_ports
            .iter()
            .any(|h| h.proto == i.proto && h.host_port == i.published_port);
        if clash
            || local_ports
                .insert((i.proto, i.published_port, None), "ingress")
                .is_some()
        {
            return Err(NetError::Invalid(format!(
                "port {}/{} is published twice",
                i.published_port,
                i.proto.as_str()
            )));
        }
    }
    if st.notrack_udp.contains(&0) {
        return Err(NetError::Invalid("untracked udp port 0".into()));
    }
    let mut vips = HashSet::new();
    let mut all = HashSet::new();
    for v in &st.vips_all {
        if !all.insert(v.vip) {
            return Err(NetError::Invalid(format!("VIP {} listed twice", v.vip)));
        }
    }
    for v in &st.vips {
        if v.port == 0 || v.target_port == 0 {
            return Err(NetError::Invalid(format!("VIP {}: port 0", v.vip)));
        }
        if !vips.insert((v.vip, v.proto, v.port)) {
            return Err(NetError::Invalid(format!(
                "VIP {}:{}/{} listed twice",
                v.vip,
                v.port,
                v.proto.as_str()
            )));
        }
    }
    Ok(())
}

/// The ruleset (a replace-the-table transaction) for `st` in table `table`.
pub fn build_ruleset(table: &str, st: &DesiredState) -> Result<Nftables<'static>> {
    validate_table(table)?;
    validate(st)?;
    let t: Cow<'static, str> = Cow::Owned(table.to_string());
    let fam = NfFamily::IP;
    let mut b = Batch::new();
    let tbl = Table {
        family: fam,
        name: t.clone(),
        handle: None,
    };
    // add + delete + add: atomically replaces the table whether or not it existed.
    b.add(NfListObject::Table(tbl.clone()));
    b.delete(NfListObject::Table(tbl.clone()));
    b.add(NfListObject::Table(tbl));

    let chain = |name: &str, ty: Option<NfChainType>, hook: Option<NfHook>, prio: i32| Chain {
        family: fam,
        table: t.clone(),
        name: Cow::Owned(name.to_string()),
        newname: None,
        handle: None,
        _type: ty,
        hook,
        prio: hook.map(|_| prio),
        dev: None,
        policy: hook.map(|_| NfChainPolicy::Accept),
    };
    b.add(NfListObject::Chain(chain("services", None, None, 0)));
    b.add(NfListObject::Chain(chain(
        "prerouting",
        Some(NfChainType::NAT),
        Some(NfHook::Prerouting),
        -100,
    )));
    b.add(NfListObject::Chain(chain(
        "output",
        Some(NfChainType::NAT),
        Some(NfHook::Output),
        -100,
    )));
    b.add(NfListObject::Chain(chain(
        "postrouting",
        Some(NfChainType::NAT),
        Some(NfHook::Postrouting),
        100,
    )));
    // Filter chains only hold the rejects of ports without backends, raw chains (priority
    // -300: before conntrack sees the packet) the untracked ports. A base chain is called for
    // every packet even when empty, so each exists only while it has rules.
    let rejects = st.vips.iter().any(|v| v.backends.is_empty())
        || st.vips_all.iter().any(|v| v.backends.is_empty())
        || st.ingress.iter().any(|i| i.backends.is_empty());
    let filter_chains = [
        ("filter-input", NfHook::Input, 0),
        ("filter-forward", NfHook::Forward, 0),
        ("filter-output", NfHook::Output, 0),
    ];
    let raw_chains = [
        ("raw-prerouting", NfHook::Prerouting, -300),
        ("raw-output", NfHook::Output, -300),
    ];
    let filter_chains = filter_chains.iter().filter(|_| rejects);
    let raw_chains = raw_chains.iter().filter(|_| !st.notrack_udp.is_empty());
    for (name, hook, prio) in filter_chains.chain(raw_chains) {
        b.add(NfListObject::Chain(chain(
            name,
            Some(NfChainType::Filter),
            Some(*hook),
            *prio,
        )));
    }

    let mut rule = |chain: &str, expr: Vec<Statement<'static>>, comment: Option<String>| {
        b.add(NfListObject::Rule(Rule {
            family: fam,
            table: t.clone(),
            chain: Cow::Owned(chain.to_string()),
            expr: Cow::Owned(expr),
            handle: None,
            index: None,
            comment: comment.map(Cow::Owned),
        }));
    };
    let jump = || {
        Statement::Jump(nftables::stmt::JumpTarget {
            target: Cow::Borrowed("services"),
        })
    };
    rule("prerouting", vec![jump()], None);
    rule("output", vec![jump()], None);
    for port in &st.notrack_udp {
        for ch in ["raw-prerouting", "raw-output"] {
            rule(
                ch,
                vec![dport(Proto::Udp, *port), Statement::Notrack],
                Some(format!("untracked udp {port}")),
            );
        }
    }

    for v in &st.vips {
        let matchv = vec![
            eq(field("ip", "daddr"), s(v.vip.to_string())),
            dport(v.proto, v.port),
        ];
        let c = Some(format!("vip {}:{}/{}", v.vip, v.port, v.proto.as_str()));
        if v.backends.is_empty() {
            for ch in ["filter-output", "filter-forward", "filter-input"] {
                let mut e = matchv.clone();
                e.push(reject(v.proto));
                rule(ch, e, c.clone());
            }
        } else {
            let mut e = matchv;
            e.push(dnat_spread(&v.backends, Some(v.target_port)));
            rule("services", e, c);
        }
    }
    for v in &st.vips_all {
        let matchv = eq(field("ip", "daddr"), s(v.vip.to_string()));
        let c = Some(format!("vip {} all ports", v.vip));
        if v.backends.is_empty() {
            for ch in ["filter-output", "filter-forward", "filter-input"] {
                rule(
                    ch,
                    vec![
                        matchv.clone(),
                        Statement::Reject(Some(Reject::new(
                            Some(RejectType::ICMP),
                            Some(RejectCode::HostUnreach),
                        ))),
                    ],
                    c.clone(),
                );
            }
        } else {
            rule("services", vec![matchv, dnat_spread(&v.backends, None)], c);
        }
    }
    for h in &st.host_ports {
        let mut e = vec![daddr_is_local()];
        if let Some(ip) = h.host_ip {
            e.push(eq(field("ip", "daddr"), s(ip.to_string())));
        }
        e.push(dport(h.proto, h.host_port));
        e.push(dnat_spread(&[h.target], Some(h.target_port)));
        rule(
            "services",
            e,
            Some(format!(
                "port {}/{} -> {}:{}",
                h.host_port,
                h.proto.as_str(),
                h.target,
                h.target_port
            )),
        );
    }
    for i in &st.ingress {
        let c = Some(format!("ingress {}/{}", i.published_port, i.proto.as_str()));
        if i.backends.is_empty() {
            rule(
                "filter-input",
                vec![
                    daddr_is_local(),
                    dport(i.proto, i.published_port),
                    reject(i.proto),
                ],
                c,
            );
        } else {
            rule(
                "services",
                vec![
                    daddr_is_local(),
                    dport(i.proto, i.published_port),
                    Statement::Mangle(Mangle {
                        key: meta(MetaKey::Mark),
                        value: Expression::Number(INGRESS_MARK),
                    }),
                    dnat_spread(&i.backends, Some(i.target_port)),
                ],
                c,
            );
        }
    }
    if !st.ingress.is_empty() {
        rule(
            "postrouting",
            vec![
                eq(meta(MetaKey::Mark), Expression::Number(INGRESS_MARK)),
                Statement::Masquerade(None),
            ],
            Some("ingress mesh".into()),
        );
    }
    for mq in &st.masquerade {
        let mut e = vec![eq(field("ip", "saddr"), prefix(mq.subnet))];
        match &mq.bridge {
            Some(br) => {
                crate::netlink::validate_ifname(br)?;
                e.push(m(meta(MetaKey::Oifname), Operator::NEQ, s(br.clone())));
            }
            None => e.push(m(field("ip", "daddr"), Operator::NEQ, prefix(mq.subnet))),
        }
        e.push(Statement::Masquerade(None));
        rule("postrouting", e, Some(format!("masquerade {}", mq.subnet)));
    }
    for net in &st.masquerade_to {
        rule(
            "postrouting",
            vec![
                eq(field("ip", "daddr"), prefix(*net)),
                Statement::Masquerade(None),
            ],
            Some(format!("masquerade to {net}")),
        );
    }
    if st.masquerade_loopback {
        rule(
            "postrouting",
            vec![
                eq(
                    field("ip", "saddr"),
                    prefix(
                        Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8)
                            .map_err(|e| NetError::Invalid(e.to_string()))?,
                    ),
                ),
                m(meta(MetaKey::Oifname), Operator::NEQ, s("lo")),
                Statement::Masquerade(None),
            ],
            Some("loopback to published ports".into()),
        );
    }
    Ok(b.to_nftables())
}

fn nft_err(e: nftables::helper::NftablesError) -> NetError {
    NetError::Nft(e.to_string())
}

fn in_ns<T: Send>(netns: Option<&Path>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    match netns {
        // `nft` is forked from a thread inside the namespace and so runs there.
        Some(p) => crate::netns::run_in(p, f)?,
        None => f(),
    }
}

/// Apply a ruleset (one atomic `nft -j` transaction) in `netns` (None: the caller's).
pub fn apply(netns: Option<&Path>, rs: &Nftables<'_>) -> Result<()> {
    let payload = nft_json(rs)?;
    in_ns(netns, move || {
        nftables::helper::apply_ruleset_raw(&payload, None::<&str>, std::iter::empty::<&str>())
            .map(|_| ())
            .map_err(nft_err)
    })
}

/// The `nft -j` input for `rs`. The nftables crate writes the `notrack` statement as a bare
/// string, which nft refuses; nft wants `{"notrack": null}`.
fn nft_json(rs: &Nftables<'_>) -> Result<String> {
    let mut v = serde_json::to_value(rs).map_err(|e| NetError::Nft(e.to_string()))?;
    let cmds = v.get_mut("nftables").and_then(|c| c.as_array_mut());
    for cmd in cmds.into_iter().flatten() {
        let expr = cmd
            .pointer_mut("/add/rule/expr")
            .and_then(|e| e.as_array_mut());
        for st in expr.into_iter().flatten() {
            if st.as_str() == Some("notrack") {
                *st = serde_json::json!({ "notrack": null });
            }
        }
    }
    Ok(v.to_string())
}

/// Remove table `table` from `netns`; fine if it does not exist.
pub fn delete_table(netns: Option<&Path>, table: &str) -> Result<()> {
    validate_table(table)?;
    let tbl = Table {
        family: NfFamily::IP,
        name: Cow::Owned(table.to_string()),
        handle: None,
    };
    let mut b = Batch::new();
    b.add(NfListObject::Table(tbl.clone()));
    b.delete(NfListObject::Table(tbl));
    let rs = b.to_nftables();
    apply(netns, &rs)
}

/// `nft list table ip <table>` as text, or None when it does not exist (for checks and logs).
pub fn list_table(netns: Option<&Path>, table: &str) -> Result<Option<String>> {
    validate_table(table)?;
    let table = table.to_string();
    in_ns(netns, move || {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "ip", &table])
            .output()
            .map_err(|e| NetError::Nft(format!("running nft: {e}")))?;
        if out.status.success() {
            Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
        } else {
            Ok(None)
        }
    })
}

/// A table that is deleted on drop (tests, and a daemon's scoped ownership).
#[derive(Debug)]
pub struct TableGuard {
    pub netns: Option<std::path::PathBuf>,
    pub table: String,
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        if let Err(e) = delete_table(self.netns.as_deref(), &self.table) {
            tracing::warn!("deleting nft table {}: {e}", self.table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(st: &DesiredState) -> String {
        serde_json::to_string(&build_ruleset("shoal-n1", st).unwrap()).unwrap()
    }

    #[test]
    fn table_names() {
        assert_eq!(table_name("shoal", "n1").unwrap(), "shoal-n1");
        assert!(table_name("shoal", "a b").is_err());
        assert!(table_name("1shoal", "").is_err());
    }

    #[test]
    fn replaces_table_atomically() {
        let rs = build_ruleset("shoal-n1", &DesiredState::default()).unwrap();
        let v = serde_json::to_value(&rs).unwrap();
        let cmds = v["nftables"].as_array().unwrap();
        assert!(cmds[0]["add"]["table"]["name"] == "shoal-n1");
        assert!(cmds[1]["delete"]["table"]["name"] == "shoal-n1");
        assert!(cmds[2]["add"]["table"]["name"] == "shoal-n1");
        // Nothing to reject: no filter chain runs for every packet.
        assert!(!serde_json::to_string(&rs).unwrap().contains("filter-"));
    }

    #[test]
    fn vxlan_port_untracked_before_conntrack() {
        let st = DesiredState {
            notrack_udp: vec![4789],
            ..Default::default()
        };
        let j = nft_json(&build_ruleset("shoal-n1", &st).unwrap()).unwrap();
        assert!(j.contains(r#""name":"raw-prerouting""#), "{j}");
        assert!(j.contains(r#""name":"raw-output""#), "{j}");
        assert!(j.contains(r#""prio":-300"#), "{j}");
        assert!(j.contains(r#""notrack":null"#), "{j}");
        assert!(j.contains(r#""right":4789"#), "{j}");
        let none = json(&DesiredState::default());
        assert!(!none.contains("raw-"), "{none}");
        let zero = DesiredState {
            notrack_udp: vec![0],
            ..Default::default()
        };
        assert!(build_ruleset("shoal-n1", &zero).is_err());
    }

    #[test]
    fn vip_uses_numgen_map() {
        let st = DesiredState {
            vips: vec![VipService {
                vip: Ipv4Addr::new(10, 0, 0, 2),
                proto: Proto::Tcp,
                port: 80,
                target_port: 8080,
                backends: vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)],
            }],
            ..Default::default()
        };
        let j = json(&st);
        assert!(j.contains(r#""numgen":{"mode":"random","mod":2}"#), "{j}");
        assert!(
            j.contains(r#"[0,"10.0.0.5"]"#) && j.contains(r#"[1,"10.0.0.6"]"#),
            "{j}"
        );
        assert!(j.contains(r#""port":8080"#), "{j}");
        assert!(!j.contains("reject"));
    }

    #[test]
    fn vip_all_ports_keeps_port() {
        let st = DesiredState {
            vips_all: vec![
                VipAll {
                    vip: Ipv4Addr::new(10, 0, 1, 2),
                    backends: vec![Ipv4Addr::new(10, 0, 1, 5), Ipv4Addr::new(10, 0, 1, 6)],
                },
                VipAll {
                    vip: Ipv4Addr::new(10, 0, 1, 3),
                    backends: vec![],
                },
            ],
            ..Default::default()
        };
        let j = json(&st);
        assert!(j.contains(r#""numgen":{"mode":"random","mod":2}"#), "{j}");
        // No port in the DNAT: the client's port is kept.
        assert!(!j.contains(r#""port":"#), "{j}");
        assert!(j.contains(r#""expr":"host-unreachable""#), "{j}");
        assert!(j.contains(r#""name":"filter-output""#), "{j}");
        let dup = DesiredState {
            vips_all: vec![st.vips_all[0].clone(), st.vips_all[0].clone()],
            ..Default::default()
        };
        assert!(build_ruleset("shoal-n1", &dup).is_err());
    }

    #[test]
    fn empty_vip_rejects() {
        let st = DesiredState {
            vips: vec![VipService {
                vip: Ipv4Addr::new(10, 0, 0, 2),
                proto: Proto::Udp,
                port: 53,
                target_port: 53,
                backends: vec![],
            }],
            ..Default::default()
        };
        let j = json(&st);
        assert!(
            j.contains(r#""reject":{"type":"icmp","expr":"port-unreachable"}"#),
            "{j}"
        );
        assert!(!j.contains("dnat"));
    }

    #[test]
    fn ingress_marks_and_masquerades() {
        let st = DesiredState {
            ingress: vec![IngressPort {
                proto: Proto::Tcp,
                published_port: 8080,
                target_port: 80,
                backends: vec![Ipv4Addr::new(10, 255, 0, 5)],
            }],
            ..Default::default()
        };
        let j = json(&st);
        assert!(
            j.contains(r#""fib":{"result":"type","flags":["daddr"]}"#),
            "{j}"
        );
        assert!(j.contains(&format!(r#""value":{INGRESS_MARK}"#)), "{j}");
        assert!(j.contains(r#""masquerade":null"#), "{j}");
    }

    #[test]
    fn conflicts_are_refused() {
        let hp = HostPort {
            proto: Proto::Tcp,
            host_port: 8080,
            host_ip: None,
            target: Ipv4Addr::new(172, 17, 0, 2),
            target_port: 80,
        };
        let st = DesiredState {
            host_ports: vec![hp.clone(), hp.clone()],
            ..Default::default()
        };
        assert!(build_ruleset("shoal-n1", &st).is_err());
        let st = DesiredState {
            host_ports: vec![hp],
            ingress: vec![IngressPort {
                proto: Proto::Tcp,
                published_port: 8080,
                target_port: 80,
                backends: vec![],
            }],
            ..Default::default()
        };
        assert!(build_ruleset("shoal-n1", &st).is_err());
    }

    #[test]
    fn masquerade_towards_a_subnet() {
        let st = DesiredState {
            masquerade_to: vec!["169.254.128.0/17".parse().unwrap()],
            ..Default::default()
        };
        let j = json(&st);
        assert!(
            j.contains(r#""prefix":{"addr":"169.254.128.0","len":17}"#) && j.contains("daddr"),
            "{j}"
        );
        assert!(j.contains(r#""masquerade":null"#), "{j}");
    }

    #[test]
    fn masquerade_excludes_own_bridge() {
        let st = DesiredState {
            masquerade: vec![Masquerade {
                subnet: "172.17.0.0/16".parse().unwrap(),
                bridge: Some("shoal0".into()),
            }],
            ..Default::default()
        };
        let j = json(&st);
        assert!(
            j.contains(r#""prefix":{"addr":"172.17.0.0","len":16}"#),
            "{j}"
        );
        assert!(
            j.contains(r#""op":"!=""#) && j.contains(r#""shoal0""#),
            "{j}"
        );
    }
}
