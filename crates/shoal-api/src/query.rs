//! Query-string access with Docker's conventions: booleans per moby's `BoolValue`, `?filters=`,
//! and the `?version=` of optimistic-concurrency updates.

use crate::types::{ApiError, Filters};
use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::error::HttpError;

/// The decoded query pairs of a request. Never fails to extract: bad percent-encoding is
/// decoded lossily, as Go's url.ParseQuery would keep going too.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: &str) -> Self {
        QueryParams(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, or "" when absent.
    pub fn str(&self, key: &str) -> String {
        self.get(key).unwrap_or_default().to_string()
    }

    /// moby's BoolValue: "", "0", "no", "false" and "none" are false; anything else is true.
    pub fn bool(&self, key: &str) -> bool {
        self.get(key).is_some_and(bool_value)
    }

    /// Like `bool`, but `default` when the key is absent (Docker's `stdout`/`stderr` defaults).
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.get(key).map(bool_value).unwrap_or(default)
    }

    /// `?filters=` in either JSON form; absent or empty means no filters.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        match self.get("filters") {
            None | Some("") => Ok(Filters::default()),
            Some(s) => Filters::from_json(s),
        }
    }

    /// The required `?version=N` of an update; `kind` names the object in the error.
    pub fn object_version(&self, kind: &str) -> Result<u64, ApiError> {
        let raw = self.str("version");
        raw.parse::<u64>().map_err(|_| {
            ApiError::invalid_argument(format!(
                "invalid {kind} version '{raw}': the version must be an unsigned integer"
            ))
        })
    }

    /// An optional signed integer (e.g. `t` seconds for stop); a malformed value is a 400.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::invalid_argument(format!("invalid value for {key}: {v:?}"))),
        }
    }
}

/// moby's `httputils.BoolValue`.
pub fn bool_value(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryParams::parse(parts.uri.query().unwrap_or("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for f in ["", "0", "no", "false", "none", "FALSE", " No "] {
            assert!(!bool_value(f), "{f:?} should be false");
        }
        for t in ["1", "true", "yes", "anything"] {
            assert!(bool_value(t), "{t:?} should be true");
        }
        let q = QueryParams::parse("force=1&status=true&x=0&insertDefaults=false");
        assert!(q.bool("force"));
        assert!(q.bool("status"));
        assert!(!q.bool("x"));
        assert!(!q.bool("insertDefaults"));
        assert!(!q.bool("missing"));
        assert!(q.bool_or("stdout", true));
    }

    #[test]
    fn versions() {
        let q = QueryParams::parse("version=12");
        assert_eq!(q.object_version("service").unwrap(), 12);
        let e = QueryParams::parse("")
            .object_version("service")
            .unwrap_err();
        assert_eq!(e.status_code(), 400);
        assert!(
            e.message.starts_with("invalid service version ''"),
            "{}",
            e.message
        );
        assert!(
            QueryParams::parse("version=-1")
                .object_version("node")
                .is_err()
        );
    }

    #[test]
    fn percent_decoding() {
        let q = QueryParams::parse("filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D&a=%ZZ");
        assert_eq!(q.get("filters"), Some(r#"{"name":{"web":true}}"#));
        assert!(q.get("a").is_some());
    }
}
