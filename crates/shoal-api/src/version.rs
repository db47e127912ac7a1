//! API version handling: the optional `/v{X.Y}` prefix, the supported range, and the headers
//! moby puts on every response.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, StatusCode, Uri, header};
use http_body_util::BodyExt;

use crate::error::{JSON, error_response};

/// The API version Shoal advertises (Docker 27). The CLI talks to us at min(this, its own).
pub const API_VERSION: &str = "1.47";
/// The oldest client API version accepted (moby's minimum).
pub const MIN_API_VERSION: &str = "1.24";
/// Value of the `Server` header.
pub const SERVER: &str = concat!("Shoal/", env!("CARGO_PKG_VERSION"), " (linux)");

/// Parses "1.47" into comparable numeric components; None when it is not dotted digits.
pub fn parse_version(v: &str) -> Option<Vec<u64>> {
    if v.is_empty() {
        return None;
    }
    v.split('.').map(|p| p.parse::<u64>().ok()).collect()
}

/// Compares two dotted versions numerically (missing components count as 0, as in Go's `versions`).
pub fn compare_versions(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            std::cmp::Ordering::Equal => continue,
            o => return o,
        }
    }
    std::cmp::Ordering::Equal
}

/// Splits `/v1.47/info` into (`Some("1.47")`, `/info`). Paths without a prefix come back unchanged.
pub fn split_version_prefix(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let ver = &rest[..end];
        if !ver.is_empty() && ver.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let tail = &rest[end..];
            return (Some(ver), if tail.is_empty() { "/" } else { tail });
        }
    }
    (None, path)
}

/// Checks a client version against the supported range; the error text is moby's.
pub fn check_version(ver: &str) -> Result<(), String> {
    let Some(v) = parse_version(ver) else {
        return Err(format!("invalid API version {ver:?}"));
    };
    let max = parse_version(API_VERSION).unwrap_or_default();
    let min = parse_version(MIN_API_VERSION).unwrap_or_default();
    if compare_versions(&v, &max) == std::cmp::Ordering::Greater {
        return Err(format!(
            "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
        ));
    }
    if compare_versions(&v, &min) == std::cmp::Ordering::Less {
        return Err(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ));
    }
    Ok(())
}

/// Outer middleware (runs before routing): strips and checks the version prefix, stamps the
/// common headers, and rewrites any non-JSON error body (axum rejections) into `{"message"}`.
pub async fn version_middleware(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let (ver, rest) = split_version_prefix(&path);
    let mut resp = if let Some(ver) = ver {
        match check_version(ver) {
            Err(msg) => error_response(StatusCode::BAD_REQUEST, &msg),
            Ok(()) => {
                let pq = match req.uri().query() {
                    Some(q) => format!("{rest}?{q}"),
                    None => rest.to_string(),
                };
                match pq.parse::<Uri>() {
                    Ok(uri) => {
                        *req.uri_mut() = uri;
                        next.run(req).await
                    }
                    Err(e) => error_response(StatusCode::BAD_REQUEST, &format!("invalid URI: {e}")),
                }
            }
        }
    } else {
        next.run(req).await
    };
    if resp.status().as_u16() >= 400 && !is_json(&resp) {
        resp = to_json_error(resp).await;
    }
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static(SERVER));
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == JSON.as_bytes())
}

/// Rejections from axum extractors are plain text; the CLI wants JSON with a message.
async fn to_json_error(resp: Response) -> Response {
    let status = resp.status();
    let (_, body) = resp.into_parts();
    // Error bodies are small; cap what is read so a broken handler cannot make us buffer much.
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    let text = match limited.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let msg = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    } else {
        text
    };
    error_response(status, &msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_split() {
        assert_eq!(split_version_prefix("/v1.47/info"), (Some("1.47"), "/info"));
        assert_eq!(split_version_prefix("/v1.47"), (Some("1.47"), "/"));
        assert_eq!(split_version_prefix("/info"), (None, "/info"));
        assert_eq!(split_version_prefix("/volumes"), (None, "/volumes"));
        assert_eq!(split_version_prefix("/v/x"), (None, "/v/x"));
    }

    #[test]
    fn version_range() {
        assert!(check_version("1.47").is_ok());
        assert!(check_version("1.24").is_ok());
        assert!(check_version("1.41").is_ok());
        assert_eq!(
            check_version("1.99").unwrap_err(),
            "client version 1.99 is too new. Maximum supported API version is 1.47"
        );
        assert!(check_version("1.23").unwrap_err().contains("too old"));
        assert!(check_version("1..2").is_err());
        // Numeric, not lexical: 1.100 > 1.47.
        assert!(check_version("1.100").unwrap_err().contains("too new"));
    }
}
