//! Image shapes of the Engine API: list, inspect, delete, pull/push progress messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::container::{Empty, GraphDriver};
use crate::task_spec::HealthConfig;
use crate::wire;

/// `GET /images/json` item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(default, rename = "ParentId")]
    pub parent_id: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub size: i64,
    /// -1 when not computed.
    #[serde(default)]
    pub shared_size: i64,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub labels: BTreeMap<String, String>,
    /// -1 when not computed.
    #[serde(default)]
    pub containers: i64,
}

/// The image's own run configuration (subset of `container.Config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub args_escaped: bool,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(
        default,
        deserialize_with = "wire::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFS {
    /// "layers".
    #[serde(default)]
    pub r#type: String,
    /// Diff IDs (`sha256:…`).
    #[serde(default, deserialize_with = "wire::nullable")]
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    #[serde(
        default,
        with = "wire::opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_tag_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    pub repo_digests: Vec<String>,
    #[serde(default)]
    pub parent: String,
    #[serde(default)]
    pub comment: String,
    /// RFC 3339 (the image config's `created`), "" if unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    #[serde(default)]
    pub author: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfig>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub graph_driver: GraphDriver,
    #[serde(default, rename = "RootFS")]
    pub root_fs: RootFS,
    #[serde(default)]
    pub metadata: ImageMetadata,
}

/// One entry of `DELETE /images/{name}`: exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageDeleteResponseItem {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub untagged: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deleted: String,
}

impl ImageDeleteResponseItem {
    pub fn untagged(reference: impl Into<String>) -> Self {
        ImageDeleteResponseItem {
            untagged: reference.into(),
            deleted: String::new(),
        }
    }
    pub fn deleted(id: impl Into<String>) -> Self {
        ImageDeleteResponseItem {
            untagged: String::new(),
            deleted: id.into(),
        }
    }
}

/// `POST /images/prune` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImagePruneReport {
    #[serde(default, deserialize_with = "wire::nullable")]
    pub images_deleted: Vec<ImageDeleteResponseItem>,
    #[serde(default)]
    pub space_reclaimed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressDetail {
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub current: i64,
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub total: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default, skip_serializing_if = "wire::is_zero")]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// One line of a pull/push/load stream (`jsonmessage.JSONMessage`, lowercase names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressMessage {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(
        default,
        rename = "progressDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<ProgressDetail>,
    /// Pre-rendered progress bar (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub progress: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stream: String,
    /// Deprecated text of `errorDetail`; the CLI still prints it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(
        default,
        rename = "errorDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<ErrorDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

impl ProgressMessage {
    pub fn status(status: impl Into<String>) -> Self {
        ProgressMessage {
            status: status.into(),
            ..ProgressMessage::default()
        }
    }

    /// A per-layer line, e.g. ("a1b2c3d4e5f6", "Downloading", 100, 200).
    pub fn layer(
        id: impl Into<String>,
        status: impl Into<String>,
        current: i64,
        total: i64,
    ) -> Self {
        ProgressMessage {
            status: status.into(),
            id: id.into(),
            progress_detail: Some(ProgressDetail { current, total }),
            ..ProgressMessage::default()
        }
    }

    /// An error line: ends the stream for the CLI.
    pub fn error(message: impl Into<String>) -> Self {
        let m = message.into();
        ProgressMessage {
            error: m.clone(),
            error_detail: Some(ErrorDetail {
                code: 0,
                message: m,
            }),
            ..ProgressMessage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_inspect() {
        let s: ImageSummary = serde_json::from_str(
            r#"{"Containers":-1,"Created":1700000000,"Id":"sha256:ab","Labels":null,"ParentId":"","RepoDigests":["bb@sha256:cd"],"RepoTags":["bb:1"],"SharedSize":-1,"Size":1234}"#,
        )
        .unwrap();
        assert_eq!(s.repo_tags, ["bb:1"]);
        assert!(s.labels.is_empty());
        let i = ImageInspect {
            id: "sha256:ab".into(),
            os: "linux".into(),
            architecture: "amd64".into(),
            root_fs: RootFS {
                r#type: "layers".into(),
                layers: vec!["sha256:01".into()],
            },
            config: Some(ImageConfig {
                cmd: vec!["sh".into()],
                ..ImageConfig::default()
            }),
            ..ImageInspect::default()
        };
        let j = serde_json::to_value(&i).unwrap();
        assert_eq!(j["RootFS"]["Type"], "layers");
        assert_eq!(j["Os"], "linux");
        assert_eq!(j["Config"]["Cmd"][0], "sh");
        assert_eq!(serde_json::from_value::<ImageInspect>(j).unwrap(), i);
    }

    #[test]
    fn delete_and_progress() {
        let items = vec![
            ImageDeleteResponseItem::untagged("bb:1"),
            ImageDeleteResponseItem::deleted("sha256:ab"),
        ];
        assert_eq!(
            serde_json::to_string(&items).unwrap(),
            r#"[{"Untagged":"bb:1"},{"Deleted":"sha256:ab"}]"#
        );
        let p = ProgressMessage::layer("a1b2", "Downloading", 10, 20);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"status":"Downloading","id":"a1b2","progressDetail":{"current":10,"total":20}}"#
        );
        let e = ProgressMessage::error("manifest unknown");
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["errorDetail"]["message"], "manifest unknown");
        assert_eq!(j["error"], "manifest unknown");
        let parsed: ProgressMessage =
            serde_json::from_str(r#"{"status":"Pull complete","progressDetail":{},"id":"x"}"#)
                .unwrap();
        assert_eq!(parsed.progress_detail, Some(ProgressDetail::default()));
    }
}
