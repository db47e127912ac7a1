//! Placement constraints (`node.labels.zone==a`, `node.role!=manager`): parsing and matching a node.

use std::net::IpAddr;

use crate::error::ApiError;
use crate::node::Node;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintOp {
    Eq,
    Ne,
}

/// One parsed `key==value` / `key!=value` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: String,
    pub op: ConstraintOp,
    pub value: String,
}

const FIXED_KEYS: [&str; 6] = [
    "node.id",
    "node.hostname",
    "node.role",
    "node.ip",
    "node.platform.os",
    "node.platform.arch",
];
const LABEL_PREFIXES: [&str; 2] = ["node.labels.", "engine.labels."];

fn key_chars_ok(key: &str) -> bool {
    // `^(?i)[a-z_][a-z0-9\-_.]+$`
    let b = key.as_bytes();
    b.len() >= 2
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

impl Constraint {
    /// Parses one expression; only `==` and `!=` exist, keys must be known.
    pub fn parse(expr: &str) -> Result<Constraint, ApiError> {
        let bad =
            |why: &str| ApiError::invalid_argument(format!("invalid constraint {expr:?}: {why}"));
        let (key, op, value) = if let Some((k, v)) = expr.split_once("==") {
            (k, ConstraintOp::Eq, v)
        } else if let Some((k, v)) = expr.split_once("!=") {
            (k, ConstraintOp::Ne, v)
        } else {
            return Err(bad("expected key==value or key!=value"));
        };
        let key = key.trim();
        let value = value.trim();
        if value.contains("==") || value.contains("!=") {
            return Err(bad("more than one operator"));
        }
        if !key_chars_ok(key) {
            return Err(bad("malformed key"));
        }
        let known = FIXED_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
            || LABEL_PREFIXES
                .iter()
                .any(|p| key.len() > p.len() && key[..p.len()].eq_ignore_ascii_case(p));
        if !known {
            return Err(bad(&format!(
                "unknown key {key:?} (use node.id, node.hostname, node.role, node.ip, node.platform.os, node.platform.arch, node.labels.<k> or engine.labels.<k>)"
            )));
        }
        if value.is_empty() {
            return Err(bad("empty value"));
        }
        if key.eq_ignore_ascii_case("node.ip") && parse_ip_or_cidr(value).is_none() {
            return Err(bad("node.ip needs an IP address or CIDR"));
        }
        Ok(Constraint {
            key: key.to_string(),
            op,
            value: value.to_string(),
        })
    }

    /// Whether `node` satisfies this constraint. Missing attributes read as "".
    pub fn matches(&self, node: &Node) -> bool {
        let lower = self.key.to_ascii_lowercase();
        let equal = if lower == "node.ip" {
            let addr = host_part(&node.status.addr);
            match (addr.parse::<IpAddr>(), parse_ip_or_cidr(&self.value)) {
                (Ok(ip), Some(net)) => net.contains(&ip),
                _ => false,
            }
        } else {
            let actual: &str = match lower.as_str() {
                "node.id" => &node.id,
                "node.hostname" => &node.description.hostname,
                "node.role" => node.spec.role.as_str(),
                "node.platform.os" => &node.description.platform.os,
                "node.platform.arch" => &node.description.platform.architecture,
                _ => {
                    // Label keys are case-sensitive.
                    let (map, k) = if lower.starts_with("node.labels.") {
                        (
                            &node.spec.annotations.labels,
                            &self.key["node.labels.".len()..],
                        )
                    } else {
                        (
                            &node.description.engine.labels,
                            &self.key["engine.labels.".len()..],
                        )
                    };
                    map.get(k).map(String::as_str).unwrap_or("")
                }
            };
            actual.eq_ignore_ascii_case(&self.value)
        };
        match self.op {
            ConstraintOp::Eq => equal,
            ConstraintOp::Ne => !equal,
        }
    }
}

fn host_part(addr: &str) -> &str {
    // Strip a port from "ip:port" / "[v6]:port".
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h,
        _ => addr,
    }
}

fn parse_ip_or_cidr(v: &str) -> Option<ipnet::IpNet> {
    if let Ok(n) = v.parse::<ipnet::IpNet>() {
        return Some(n);
    }
    v.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
}

/// Parses a list of constraints (all must hold).
pub fn parse_constraints(exprs: &[String]) -> Result<Vec<Constraint>, ApiError> {
    exprs.iter().map(|e| Constraint::parse(e)).collect()
}

/// Whether `node` satisfies all of `constraints`.
pub fn node_matches(constraints: &[Constraint], node: &Node) -> bool {
    constraints.iter().all(|c| c.matches(node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeRole;

    #[test]
    fn parse_ok_and_bad() {
        let c = Constraint::parse("node.role==manager").unwrap();
        assert_eq!(
            (c.key.as_str(), c.op, c.value.as_str()),
            ("node.role", ConstraintOp::Eq, "manager")
        );
        assert_eq!(
            Constraint::parse("node.labels.zone != a").unwrap().op,
            ConstraintOp::Ne
        );
        for bad in [
            "node.role=manager",
            "foo.bar==1",
            "node.role==",
            "node.ip==zz",
            "==x",
            "node.labels.==x",
            "a==b==c",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let mut n = Node {
            id: "abc".into(),
            ..Node::default()
        };
        n.spec.role = NodeRole::Manager;
        n.spec
            .annotations
            .labels
            .insert("zone".into(), "East".into());
        n.description.hostname = "vm1".into();
        n.status.addr = "10.1.2.3".into();
        let m = |e: &str| Constraint::parse(e).unwrap().matches(&n);
        assert!(m("node.role==manager"));
        assert!(m("node.hostname==VM1"));
        assert!(m("node.labels.zone==east"));
        assert!(!m("node.labels.Zone==east"));
        assert!(m("node.labels.rack!=r1"));
        assert!(m("node.ip==10.1.0.0/16"));
        assert!(!m("node.ip==10.2.0.0/16"));
        assert!(m("engine.labels.x!=y"));
        assert!(!m("node.id!=abc"));
    }
}
