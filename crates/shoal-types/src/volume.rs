//! Local volume shapes of the Engine API: volume, create request, list reply.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::wire;

pub const VOLUME_DRIVER_LOCAL: &str = "local";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeUsageData {
    /// -1 when not computed.
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub ref_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub mountpoint: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub status: BTreeMap<String, serde_json::Value>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: BTreeMap<String, String>,
    /// "local" or "global".
    #[serde(default)]
    pub scope: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<VolumeUsageData>,
}

/// `POST /volumes/create` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeCreateRequest {
    /// Empty = generate one.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: BTreeMap<String, String>,
}

/// Volume names: `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$` (at least 2 characters), as moby's local driver.
pub fn validate_volume_name(name: &str) -> Result<(), ApiError> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "create {name}: {name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
        )))
    }
}

impl VolumeCreateRequest {
    /// Checks name (when given) and driver; only the local driver exists.
    pub fn validate(&self) -> Result<(), ApiError> {
        if !self.name.is_empty() {
            validate_volume_name(&self.name)?;
        }
        if !matches!(self.driver.as_str(), "" | VOLUME_DRIVER_LOCAL) {
            return Err(ApiError::not_found(format!(
                "plugin {:?} not found: only the \"local\" volume driver is available",
                self.driver
            )));
        }
        Ok(())
    }
}

/// `GET /volumes` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeListResponse {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub volumes: Vec<Volume>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub warnings: Vec<String>,
}

/// `POST /volumes/prune` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumePruneReport {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub volumes_deleted: Vec<String>,
    #[serde(default)]
    pub space_reclaimed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_validation() {
        let r: VolumeCreateRequest =
            serde_json::from_str(r#"{"Name":"data","Driver":"local","DriverOpts":{},"Labels":{"com.docker.stack.namespace":"s"}}"#).unwrap();
        r.validate().unwrap();
        let bad = VolumeCreateRequest {
            name: "a/b".into(),
            ..VolumeCreateRequest::default()
        };
        assert!(bad.validate().is_err());
        let nfs = VolumeCreateRequest {
            name: "ok".into(),
            driver: "nfs".into(),
            ..VolumeCreateRequest::default()
        };
        assert_eq!(nfs.validate().unwrap_err().status_code(), 404);
        let v = Volume {
            name: "data".into(),
            driver: "local".into(),
            mountpoint: "/var/lib/shoal/volumes/data/_data".into(),
            created_at: "2026-11-23T08:47:52Z".into(),
            scope: "local".into(),
            ..Volume::default()
        };
        let list = VolumeListResponse {
            volumes: vec![v.clone()],
            warnings: vec![],
        };
        let j = serde_json::to_value(&list).unwrap();
        assert_eq!(
            j["Volumes"][0]["Mountpoint"],
            "/var/lib/shoal/volumes/data/_data"
        );
        assert_eq!(j["Volumes"][0]["Labels"], serde_json::json!({}));
        assert_eq!(j["Warnings"], serde_json::json!([]));
        let back: VolumeListResponse = serde_json::from_value(j).unwrap();
        assert_eq!(back.volumes[0], v);
    }
}
