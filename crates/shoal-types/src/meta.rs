//! Object metadata shared by every swarm object: version index, timestamps, annotations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::wire;

/// `{"Index":N}`: the Raft index of the object's last write.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    #[serde(default)]
    pub index: u64,
}

/// Docker's embedded `Meta`: flattened into each object beside its `ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Meta {
    #[serde(default)]
    pub version: Version,
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub created_at: DateTime<Utc>,
    #[serde(default = "wire::zero_time", with = "wire::time")]
    pub updated_at: DateTime<Utc>,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            version: Version::default(),
            created_at: wire::zero_time(),
            updated_at: wire::zero_time(),
        }
    }
}

impl Meta {
    /// Fresh metadata for an object created at `now` (version is set by the store).
    pub fn created(now: DateTime<Utc>) -> Self {
        Meta {
            version: Version::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Fresh metadata stamped with the current time.
    pub fn now() -> Self {
        Self::created(Utc::now())
    }
}

/// Docker's embedded `Annotations`: `Name` and `Labels` flattened into a spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Annotations {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: BTreeMap<String, String>,
}

impl Annotations {
    pub fn named(name: impl Into<String>) -> Self {
        Annotations {
            name: name.into(),
            labels: BTreeMap::new(),
        }
    }
}

/// A named driver with options (`LogDriver`, secret `Driver`, `Templating`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Driver {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Obj {
        #[serde(rename = "ID")]
        id: String,
        #[serde(flatten)]
        meta: Meta,
        spec: Annotations,
    }

    #[test]
    fn flattened_meta_round_trip() {
        let j = r#"{"ID":"abc","Version":{"Index":7},"CreatedAt":"2026-11-23T08:47:52.466838412Z","UpdatedAt":"2026-11-23T08:47:53Z","Spec":{"Name":"x","Labels":null}}"#;
        let o: Obj = serde_json::from_str(j).unwrap();
        assert_eq!(o.meta.version.index, 7);
        assert!(o.spec.labels.is_empty());
        let v: serde_json::Value = serde_json::to_value(&o).unwrap();
        assert_eq!(v["Version"]["Index"], 7);
        assert_eq!(v["CreatedAt"], "2026-11-23T08:47:52.466838412Z");
        assert_eq!(v["UpdatedAt"], "2026-11-23T08:47:53Z");
        assert_eq!(v["Spec"]["Labels"], serde_json::json!({}));
    }

    #[test]
    fn missing_meta_defaults_to_zero_time() {
        let o: Obj = serde_json::from_str(r#"{"ID":"a","Spec":{}}"#).unwrap();
        assert!(crate::wire::is_zero_time(&o.meta.created_at));
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["CreatedAt"], "0001-01-01T00:00:00Z");
        assert!(v["Spec"].get("Name").is_none());
    }
}

/// Service and network names: `^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`, at most 63 characters
/// (a DNS label, so it can be resolved by the embedded DNS).
pub fn validate_object_name(kind: &str, name: &str) -> Result<(), crate::error::ApiError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
    if ok {
        Ok(())
    } else if b.is_empty() {
        Err(crate::error::ApiError::invalid_argument(format!(
            "{kind} name must be provided"
        )))
    } else {
        Err(crate::error::ApiError::invalid_argument(format!(
            "invalid {kind} name {name:?}: must be at most 63 characters of letters, digits, '-' and '_', starting and ending with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod name_tests {
    use super::validate_object_name;

    #[test]
    fn names() {
        for ok in ["web", "a", "apiprobe_web", "my-svc-1", "A_b-C"] {
            validate_object_name("service", ok).unwrap();
        }
        for bad in ["", "-web", "web-", "we.b", "we b", &"a".repeat(64)] {
            assert!(validate_object_name("service", bad).is_err(), "{bad}");
        }
    }
}
