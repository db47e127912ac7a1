//! Secret and config objects, name/size validation and the labels-only update rule.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::meta::{Annotations, Driver, Meta};
use crate::wire;

/// Secret data must be 1 byte to under 500 KiB.
pub const MAX_SECRET_SIZE: usize = 500 * 1024;
/// Config data must be 1 byte to under 1000 KiB.
pub const MAX_CONFIG_SIZE: usize = 1000 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    /// Base64 in JSON; only in requests (never returned by the API).
    #[serde(
        default,
        with = "wire::opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templating: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Secret {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: SecretSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    /// Base64 in JSON; configs do return their data.
    #[serde(
        default,
        with = "wire::opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templating: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub spec: ConfigSpec,
}

/// Secret/config names: `^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`, at most 64 characters.
/// The one template driver there is (Go text/template syntax, rendered on the node).
pub const TEMPLATE_DRIVER_GOLANG: &str = "golang";

fn validate_templating(driver: Option<&Driver>) -> Result<(), ApiError> {
    match driver.map(|d| d.name.as_str()) {
        None | Some("") | Some(TEMPLATE_DRIVER_GOLANG) => Ok(()),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "template driver {other:?} is not supported (use {TEMPLATE_DRIVER_GOLANG:?})"
        ))),
    }
}

pub fn validate_secret_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "invalid name {name:?}: {kind} names must be 1-64 characters of [a-zA-Z0-9-_.] starting and ending with a letter or digit"
        )))
    }
}

fn validate_data(kind: &str, data: Option<&[u8]>, max: usize) -> Result<(), ApiError> {
    let len = data.map_or(0, <[u8]>::len);
    if len == 0 || len >= max {
        return Err(ApiError::invalid_argument(format!(
            "invalid {kind} data: must be larger than 0 and less than {} KiB",
            max / 1024
        )));
    }
    Ok(())
}

impl SecretSpec {
    /// Name and data checks for create. Secrets from an external driver carry no data.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_secret_name("secret", &self.annotations.name)?;
        validate_templating(self.templating.as_ref())?;
        if self.driver.as_ref().is_some_and(|d| !d.name.is_empty()) {
            if self
                .data
                .as_ref()
                .is_some_and(|d| d.len() >= MAX_SECRET_SIZE)
            {
                return validate_data("secret", self.data.as_deref(), MAX_SECRET_SIZE);
            }
            return Ok(());
        }
        validate_data("secret", self.data.as_deref(), MAX_SECRET_SIZE)
    }

    /// Only labels may change on update; the same (or absent) data is accepted.
    pub fn validate_update(&self, current: &SecretSpec) -> Result<(), ApiError> {
        let data_same = self.data.is_none() || self.data == current.data;
        if self.annotations.name != current.annotations.name
            || !data_same
            || self.driver != current.driver
            || self.templating != current.templating
        {
            return Err(ApiError::invalid_argument(
                "only updates to Labels are allowed",
            ));
        }
        Ok(())
    }
}

impl Secret {
    /// The API view: secret data is never returned.
    pub fn without_data(&self) -> Secret {
        let mut s = self.clone();
        s.spec.data = None;
        s
    }
}

impl ConfigSpec {
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_secret_name("config", &self.annotations.name)?;
        validate_templating(self.templating.as_ref())?;
        validate_data("config", self.data.as_deref(), MAX_CONFIG_SIZE)
    }

    /// Only labels may change on update.
    pub fn validate_update(&self, current: &ConfigSpec) -> Result<(), ApiError> {
        let data_same = self.data.is_none() || self.data == current.data;
        if self.annotations.name != current.annotations.name
            || !data_same
            || self.templating != current.templating
        {
            return Err(ApiError::invalid_argument(
                "only updates to Labels are allowed",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        let s: Secret = serde_json::from_str(
            r#"{"ID":"46b70j","Version":{"Index":218},"CreatedAt":"2026-11-23T08:47:52.466838412Z","UpdatedAt":"2026-11-23T08:47:52.466838412Z","Spec":{"Name":"apiprobe-sec","Labels":{}}}"#,
        )
        .unwrap();
        assert_eq!(s.spec.annotations.name, "apiprobe-sec");
        let c: Config = serde_json::from_str(
            r#"{"ID":"wb9zgv","Version":{"Index":219},"CreatedAt":"2026-11-23T08:47:52Z","UpdatedAt":"2026-11-23T08:47:52Z","Spec":{"Name":"apiprobe-cfg","Labels":{},"Data":"Y2ZnPTEK"}}"#,
        )
        .unwrap();
        assert_eq!(c.spec.data.as_deref(), Some(&b"cfg=1\n"[..]));
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["Spec"]["Data"], "Y2ZnPTEK");
    }

    #[test]
    fn create_body_and_validation() {
        let spec: SecretSpec = serde_json::from_str(
            r#"{"Name":"NAME_x","Labels":{"com.docker.stack.namespace":"NAME"},"Data":"aGVsbG8="}"#,
        )
        .unwrap();
        spec.validate().unwrap();
        let secret = Secret {
            id: "x".into(),
            spec: spec.clone(),
            ..Secret::default()
        };
        let shown = serde_json::to_value(secret.without_data()).unwrap();
        assert!(shown["Spec"].get("Data").is_none());

        let mut bad = spec.clone();
        bad.annotations.name = "-bad".into();
        assert!(bad.validate().is_err());
        bad.annotations.name = "a".repeat(65);
        assert!(bad.validate().is_err());
        let mut empty = spec.clone();
        empty.data = Some(vec![]);
        assert!(empty.validate().is_err());
        let mut big = spec.clone();
        big.data = Some(vec![0; MAX_SECRET_SIZE]);
        assert!(big.validate().is_err());
        let ext = SecretSpec {
            annotations: Annotations::named("ext"),
            driver: Some(Driver {
                name: "vault".into(),
                ..Driver::default()
            }),
            ..SecretSpec::default()
        };
        ext.validate().unwrap();
        let cfg = ConfigSpec {
            annotations: Annotations::named("c.1"),
            data: Some(vec![0; MAX_SECRET_SIZE + 1]),
            templating: None,
        };
        cfg.validate().unwrap();
        assert!(serde_json::from_str::<SecretSpec>(r#"{"Name":"x","Data":"!!"}"#).is_err());
    }

    #[test]
    fn labels_only_updates() {
        let cur = SecretSpec {
            annotations: Annotations::named("s"),
            data: Some(b"a".to_vec()),
            ..SecretSpec::default()
        };
        let mut upd = cur.clone();
        upd.annotations.labels.insert("k".into(), "v".into());
        upd.validate_update(&cur).unwrap();
        upd.data = None;
        upd.validate_update(&cur).unwrap();
        upd.data = Some(b"b".to_vec());
        let e = upd.validate_update(&cur).unwrap_err();
        assert_eq!(e.message, "only updates to Labels are allowed");
    }
}
