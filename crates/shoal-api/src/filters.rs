//! `?filters=` values: `{"key":{"value":true}}` (current) or `{"key":["value"]}` (legacy).

use std::collections::{BTreeMap, BTreeSet};

use crate::types::ApiError;
use serde::{Deserialize, Serialize};

/// Filter values by key, e.g. `label` → {`a=b`, `c`}.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Filters(pub BTreeMap<String, BTreeSet<String>>);

#[derive(Deserialize)]
#[serde(untagged)]
enum Values {
    Map(BTreeMap<String, bool>),
    List(Vec<String>),
}

impl Filters {
    /// Parses either JSON form; an empty string means no filters.
    pub fn from_json(s: &str) -> Result<Self, ApiError> {
        if s.trim().is_empty() {
            return Ok(Filters::default());
        }
        let raw: BTreeMap<String, Values> = serde_json::from_str(s)
            .map_err(|e| ApiError::invalid_argument(format!("invalid filter: {e}")))?;
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let set: BTreeSet<String> = match v {
                Values::Map(m) => m
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(v, _)| v)
                    .collect(),
                Values::List(l) => l.into_iter().collect(),
            };
            out.insert(k, set);
        }
        Ok(Filters(out))
    }

    /// The current form, as the Go client sends it.
    pub fn to_json(&self) -> String {
        let m: BTreeMap<&String, BTreeMap<&String, bool>> = self
            .0
            .iter()
            .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect()))
            .collect();
        serde_json::to_string(&m).unwrap_or_else(|_| "{}".to_string())
    }

    /// Adds `value` under `key`.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.entry(key.into()).or_default().insert(value.into());
        self
    }

    /// The values of `key` (empty when absent).
    pub fn get(&self, key: &str) -> Vec<&str> {
        self.0
            .get(key)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// 400 "invalid filter 'x'" for any key outside `allowed`.
    pub fn validate(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for k in self.0.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::invalid_argument(format!("invalid filter '{k}'")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let f = Filters::from_json(
            r#"{"label":{"com.docker.stack.namespace=demo":true},"name":{"x":false}}"#,
        )
        .unwrap();
        assert_eq!(f.get("label"), vec!["com.docker.stack.namespace=demo"]);
        assert!(f.get("name").is_empty());
        let g = Filters::from_json(r#"{"name":["web","db"]}"#).unwrap();
        assert_eq!(g.get("name"), vec!["db", "web"]);
        assert!(Filters::from_json("").unwrap().is_empty());
        assert_eq!(Filters::from_json("{bad").unwrap_err().status_code(), 400);
        assert_eq!(
            Filters::from_json(r#"{"a":1}"#).unwrap_err().status_code(),
            400
        );
        let mut h = Filters::default();
        h.add("node", "abc");
        assert_eq!(h.to_json(), r#"{"node":{"abc":true}}"#);
        assert_eq!(Filters::from_json(&h.to_json()).unwrap(), h);
        assert!(h.validate(&["node"]).is_ok());
        assert_eq!(
            h.validate(&["id"]).unwrap_err().message,
            "invalid filter 'node'"
        );
    }
}

impl From<Filters> for shoal_types::Filters {
    fn from(f: Filters) -> Self {
        let mut out = shoal_types::Filters::default();
        for (k, vs) in &f.0 {
            for v in vs {
                out.add(k, v);
            }
        }
        out
    }
}

impl From<shoal_types::Filters> for Filters {
    fn from(f: shoal_types::Filters) -> Self {
        let mut out = Filters::default();
        for (k, vs) in f.0 {
            for v in vs {
                out.add(k.clone(), v);
            }
        }
        out
    }
}

impl Filters {
    /// The same filters as shoal-types' `Filters` (what the manager's matchers take).
    pub fn to_types(&self) -> shoal_types::Filters {
        self.clone().into()
    }
}

#[cfg(test)]
mod conversion_tests {
    use super::*;

    #[test]
    fn round_trip_through_shoal_types() {
        let f = Filters::from_json(r#"{"label":{"a=b":true,"c":true},"name":["web"]}"#).unwrap();
        let t = f.to_types();
        assert_eq!(t.get("label").len(), 2);
        assert_eq!(t.get("name"), ["web".to_string()]);
        assert_eq!(Filters::from(t), f);
    }
}
