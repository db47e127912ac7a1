//! Service object and spec (`GET /services`), defaults and validation.

use serde::{Deserialize, Serialize};

use crate::meta::{Annotations, Meta};
use crate::task::TaskSpec;

/// What a user asks for (`POST /services/create` body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    #[serde(default)]
    pub task_template: TaskSpec,
}

/// A service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: ServiceSpec,
}
