//! Docker Engine API shapes of image objects (`GET /images/json`, `GET /images/{name}/json`)
//! and of the JSON progress stream of pull/push/load, built from store records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{ImageError, Result};
use super::registry::Progress;
use super::spec::ContainerConfig;
use super::store::{ImageRecord, ImageStore};

/// One entry of `GET /images/json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size: i64,
    pub shared_size: i64,
    pub labels: BTreeMap<String, String>,
    pub containers: i64,
}

impl ImageSummary {
    /// `containers`: how many containers use the image (-1 when not computed, as Docker).
    pub fn from_record(rec: &ImageRecord, containers: i64) -> ImageSummary {
        ImageSummary {
            id: rec.id.to_string(),
            parent_id: String::new(),
            repo_tags: rec.repo_tags.clone(),
            repo_digests: rec.repo_digests.clone(),
            created: chrono::DateTime::parse_from_rfc3339(&rec.created)
                .map(|t| t.timestamp())
                .unwrap_or(0),
            size: rec.size as i64,
            shared_size: -1,
            labels: rec.config.labels.clone().unwrap_or_default(),
            containers,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RootFsInfo {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

/// `GET /images/{name}/json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    /// RFC 3339.
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    pub size: i64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFsInfo,
}

impl ImageStore {
    /// `docker image inspect` of a local image.
    pub fn inspect(&self, name: &str) -> Result<ImageInspect> {
        let rec = self.get(name)?;
        let cfg = self.config_file(rec.id.as_str())?;
        let lowers = self.layer_paths(rec.id.as_str())?;
        let mut data = BTreeMap::new();
        data.insert(
            "LowerDir".to_string(),
            lowers
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        );
        let comment = cfg
            .history
            .as_ref()
            .and_then(|h| h.last())
            .and_then(|h| h.comment.clone())
            .unwrap_or_default();
        Ok(ImageInspect {
            id: rec.id.to_string(),
            repo_tags: rec.repo_tags.clone(),
            repo_digests: rec.repo_digests.clone(),
            parent: String::new(),
            comment,
            created: rec.created.clone(),
            docker_version: String::new(),
            author: cfg.author.unwrap_or_default(),
            config: rec.config.clone(),
            architecture: rec.architecture.clone(),
            variant: cfg.variant,
            os: rec.os.clone(),
            size: rec.size as i64,
            graph_driver: GraphDriver {
                name: "overlay2".into(),
                data,
            },
            root_fs: RootFsInfo {
                kind: "layers".into(),
                layers: rec.diff_ids.iter().map(|d| d.to_string()).collect(),
            },
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProgressDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ErrorDetail {
    pub message: String,
}

/// One line of Docker's JSON message stream (pull, push, load, import).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct JsonMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(
        default,
        rename = "progressDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<ProgressDetail>,
    /// The text progress bar the CLI shows when not on a terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// `docker load` reports "Loaded image: …" here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(
        default,
        rename = "errorDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<ErrorDetail>,
}

impl JsonMessage {
    pub fn from_progress(p: &Progress) -> JsonMessage {
        let detail = match (p.current, p.total) {
            (None, None) => None,
            (current, total) => Some(ProgressDetail { current, total }),
        };
        let bar = match (p.current, p.total) {
            (Some(c), Some(t)) if t > 0 => Some(progress_bar(c, t)),
            _ => None,
        };
        JsonMessage {
            status: Some(p.status.clone()),
            id: p.id.clone(),
            progress_detail: detail,
            progress: bar,
            ..JsonMessage::default()
        }
    }

    /// The error line that ends a failed stream.
    pub fn from_error(e: &ImageError) -> JsonMessage {
        let message = e.to_string();
        JsonMessage {
            error: Some(message.clone()),
            error_detail: Some(ErrorDetail { message }),
            ..JsonMessage::default()
        }
    }

    /// A `stream` line, e.g. "Loaded image: busybox:latest\n".
    pub fn stream(text: impl Into<String>) -> JsonMessage {
        JsonMessage {
            stream: Some(text.into()),
            ..JsonMessage::default()
        }
    }
}

fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    // Four significant digits without trailing zeros, like Go's %.4g in Docker's HumanSize.
    let decimals = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    let s = if v >= 1000.0 {
        format!("{v:.0}")
    } else {
        s.to_string()
    };
    format!("{s}{}", UNITS[u])
}

/// Docker's `[=====>      ]  1.2MB/3.4MB`.
fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH / total) as usize;
    let mut bar = "=".repeat(filled);
    if (filled as u64) < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH as usize - filled - 1));
    }
    format!("[{bar}] {:>8}/{}", human(current), human(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let p = Progress {
            id: Some("0123456789ab".into()),
            status: "Downloading".into(),
            current: Some(500_000),
            total: Some(1_000_000),
        };
        let j = serde_json::to_value(JsonMessage::from_progress(&p)).expect("json");
        assert_eq!(j["status"], "Downloading");
        assert_eq!(j["id"], "0123456789ab");
        assert_eq!(j["progressDetail"]["current"], 500_000);
        assert!(
            j["progress"]
                .as_str()
                .is_some_and(|s| s.contains("500kB/1MB"))
        );
        let e = JsonMessage::from_error(&ImageError::NotFound("x".into()));
        let j = serde_json::to_value(e).expect("json");
        assert_eq!(j["errorDetail"]["message"], "No such image: x");
        assert!(j.get("status").is_none());
    }
}
