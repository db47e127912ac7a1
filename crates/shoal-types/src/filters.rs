//! `?filters=` query values (both JSON forms), key checks, prefix/label matching, query booleans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Parsed filters: key → accepted values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

#[derive(Deserialize)]
#[serde(untagged)]
enum RawValues {
    Map(BTreeMap<String, bool>),
    List(Vec<String>),
}

impl Filters {
    pub fn new() -> Self {
        Filters::default()
    }

    /// Parses `{"k":{"v":true}}` or the legacy `{"k":["v"]}`; "" and "{}" are empty.
    pub fn parse(json: &str) -> Result<Filters, ApiError> {
        if json.trim().is_empty() {
            return Ok(Filters::default());
        }
        let raw: BTreeMap<String, RawValues> = serde_json::from_str(json)
            .map_err(|e| ApiError::invalid_argument(format!("invalid filter: {e}")))?;
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let vals = match v {
                RawValues::Map(m) => m.into_keys().collect(),
                RawValues::List(l) => l,
            };
            out.insert(k, vals);
        }
        Ok(Filters(out))
    }

    /// The map form the Docker CLI sends, for clients.
    pub fn to_json(&self) -> String {
        let m: BTreeMap<&String, BTreeMap<&String, bool>> = self
            .0
            .iter()
            .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect()))
            .collect();
        serde_json::to_string(&m).unwrap_or_else(|_| "{}".to_string())
    }

    pub fn add(&mut self, key: &str, value: &str) -> &mut Self {
        self.0
            .entry(key.to_string())
            .or_default()
            .push(value.to_string());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Values of a key (empty if absent).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Refuses keys outside `allowed` with 400 "invalid filter 'x'".
    pub fn validate_keys(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::invalid_argument(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// True if `key` is not filtered, or some value of it is a prefix of `actual` (id, name).
    pub fn matches_prefix(&self, key: &str, actual: &str) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vs) => vs.iter().any(|v| actual.starts_with(v.as_str())),
        }
    }

    /// True if `key` is not filtered, or some value equals `actual` exactly.
    pub fn matches_exact(&self, key: &str, actual: &str) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vs) => vs.iter().any(|v| v == actual),
        }
    }

    /// True if `key` is not filtered, or `labels` satisfy every value of it (`k` present or `k=v`).
    pub fn matches_labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vs) => vs.iter().all(|v| matches_label(labels, v)),
        }
    }

    /// Parses a boolean filter value ("true"/"1"/"false"/"0"); errors name the key.
    pub fn bool_value(&self, key: &str) -> Result<Option<bool>, ApiError> {
        let Some(v) = self.get(key).first() else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(ApiError::invalid_argument(format!(
                "invalid filter '{key}={v}': expected true or false"
            ))),
        }
    }
}

/// `k` matches if the label exists; `k=v` if it has that value.
pub fn matches_label(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

/// Query booleans as moby reads them: "", "0", "no", "false", "none" are false; anything else true.
pub fn parse_query_bool(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let a = Filters::parse(
            r#"{"label":{"com.docker.stack.namespace=demo":true},"name":{"web":true}}"#,
        )
        .unwrap();
        let b = Filters::parse(r#"{"label":["com.docker.stack.namespace=demo"],"name":["web"]}"#)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.get("name"), ["web".to_string()]);
        assert!(Filters::parse("").unwrap().is_empty());
        assert!(Filters::parse("{}").unwrap().is_empty());
        assert!(Filters::parse("[1]").is_err());
        assert!(Filters::parse(r#"{"k":"v"}"#).is_err());
        assert_eq!(Filters::parse(&a.to_json()).unwrap(), a);
    }

    #[test]
    fn keys_and_matching() {
        let f = Filters::parse(r#"{"name":{"we":true},"label":{"a":true,"b=2":true}}"#).unwrap();
        f.validate_keys(&["name", "label", "id"]).unwrap();
        let e = f.validate_keys(&["name"]).unwrap_err();
        assert_eq!(e.message, "invalid filter 'label'");
        assert_eq!(e.status_code(), 400);
        assert!(f.matches_prefix("name", "web"));
        assert!(!f.matches_prefix("name", "api"));
        assert!(f.matches_prefix("id", "anything"));
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "x".to_string());
        assert!(!f.matches_labels("label", &labels));
        labels.insert("b".to_string(), "2".to_string());
        assert!(f.matches_labels("label", &labels));
        assert!(!matches_label(&labels, "b=3"));
        let up = Filters::parse(r#"{"_up-to-date":{"true":true}}"#).unwrap();
        assert_eq!(up.bool_value("_up-to-date").unwrap(), Some(true));
        assert!(
            Filters::parse(r#"{"x":["maybe"]}"#)
                .unwrap()
                .bool_value("x")
                .is_err()
        );
    }

    #[test]
    fn query_bools() {
        for f in ["", "0", "no", "false", "none", "FALSE"] {
            assert!(!parse_query_bool(f), "{f}");
        }
        for t in ["1", "true", "yes", "on", "anything"] {
            assert!(parse_query_bool(t), "{t}");
        }
    }
}
