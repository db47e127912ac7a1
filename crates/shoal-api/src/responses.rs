//! Small response bodies that belong to the HTTP layer rather than to the object model.

use serde::{Deserialize, Serialize};

/// `{"ID":"…"}` (secret and config create).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// `POST /services/create` reply: `{"ID":"…","Warnings":null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCreateResponse {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Warnings", default)]
    pub warnings: Option<Vec<String>>,
}

/// `POST /services/{id}/update` reply: `{"Warnings":null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceUpdateResponse {
    #[serde(rename = "Warnings", default)]
    pub warnings: Option<Vec<String>>,
}

/// `POST /networks/create` reply: `{"Id":"…","Warning":""}` (note `Id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCreateResponse {
    #[serde(rename = "Id", default)]
    pub id: String,
    #[serde(rename = "Warning", default)]
    pub warning: String,
}
