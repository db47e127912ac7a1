//! Event stream messages (`GET /events`, `events.Message`) and their filter matching.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::filters::{Filters, matches_label};
use crate::wire;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Actor {
    #[serde(default, rename = "ID")]
    pub id: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub attributes: BTreeMap<String, String>,
}

/// One event. Swarm events use scope "swarm".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    #[serde(default, rename = "Type")]
    pub r#type: String,
    #[serde(default, rename = "Action")]
    pub action: String,
    #[serde(default, rename = "Actor")]
    pub actor: Actor,
    #[serde(default)]
    pub scope: String,
    /// Unix seconds.
    #[serde(default)]
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(default, rename = "timeNano")]
    pub time_nano: i64,
    /// Legacy container-event fields.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
}

/// Filter keys `GET /events` accepts.
pub const EVENT_FILTER_KEYS: &[&str] = &[
    "type",
    "event",
    "scope",
    "label",
    "service",
    "node",
    "secret",
    "config",
    "network",
    "container",
    "image",
    "volume",
];

impl EventMessage {
    pub fn new(
        r#type: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Self {
        EventMessage {
            r#type: r#type.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: scope.to_string(),
            time: now.timestamp(),
            time_nano: now
                .timestamp_nanos_opt()
                .unwrap_or(now.timestamp().saturating_mul(1_000_000_000)),
            ..EventMessage::default()
        }
    }

    /// A swarm-scoped event (`service`, `node`, `secret`, `config`, `network`).
    pub fn swarm(
        r#type: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self::new(r#type, action, id, attributes, "swarm", now)
    }

    /// Whether this event passes `filters` (moby semantics: each key must match one of its values;
    /// an object key such as `service=` matches the actor ID or its `name` attribute).
    pub fn matches(&self, f: &Filters) -> bool {
        if !f.matches_exact("type", &self.r#type) || !f.matches_exact("event", &self.action) {
            return false;
        }
        if !f.matches_exact("scope", &self.scope) {
            return false;
        }
        if f.contains("label")
            && !f
                .get("label")
                .iter()
                .all(|l| matches_label(&self.actor.attributes, l))
        {
            return false;
        }
        for key in [
            "service",
            "node",
            "secret",
            "config",
            "network",
            "container",
            "image",
            "volume",
        ] {
            if !f.contains(key) {
                continue;
            }
            if self.r#type != key {
                return false;
            }
            let name = self
                .actor
                .attributes
                .get("name")
                .map(String::as_str)
                .unwrap_or("");
            if !f.get(key).iter().any(|v| v == &self.actor.id || v == name) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_and_filters() {
        let j = r#"{"Type":"service","Action":"update","Actor":{"ID":"abc","Attributes":{"name":"web","replicas.old":"2","replicas.new":"3"}},"scope":"swarm","time":1795423672,"timeNano":1795423672466838412}"#;
        let m: EventMessage = serde_json::from_str(j).unwrap();
        assert_eq!(m.actor.attributes["name"], "web");
        let out: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(out, serde_json::from_str::<serde_json::Value>(j).unwrap());

        let f = |s: &str| Filters::parse(s).unwrap();
        assert!(m.matches(&f(r#"{"type":{"service":true}}"#)));
        assert!(!m.matches(&f(r#"{"type":{"node":true}}"#)));
        assert!(m.matches(&f(r#"{"service":{"web":true},"event":{"update":true}}"#)));
        assert!(m.matches(&f(r#"{"service":{"abc":true}}"#)));
        assert!(!m.matches(&f(r#"{"service":{"api":true}}"#)));
        assert!(!m.matches(&f(r#"{"node":{"abc":true}}"#)));
        assert!(m.matches(&f(r#"{"label":{"replicas.new=3":true}}"#)));
        let now = chrono::DateTime::from_timestamp(1_795_423_672, 5).unwrap();
        let e = EventMessage::swarm("node", "update", "n1", BTreeMap::new(), now);
        assert_eq!(
            (e.time, e.time_nano, e.scope.as_str()),
            (1_795_423_672, 1_795_423_672_000_000_005, "swarm")
        );
    }
}
