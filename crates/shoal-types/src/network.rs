//! Swarm network object, the network create request and the `network inspect` view.

use serde::{Deserialize, Serialize};

use crate::meta::{Annotations, Meta};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
}

/// A swarm-scoped network as stored by the managers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: NetworkSpec,
}
