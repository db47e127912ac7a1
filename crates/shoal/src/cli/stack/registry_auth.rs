//! `--with-registry-auth`: the credentials docker's CLI would send for an image, read from the
//! same place (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), encoded as the
//! `X-Registry-Auth` header (base64url of `{"username","password","serveraddress"}`).

use std::path::PathBuf;

use base64::Engine;
use serde_json::{Value, json};

/// The key docker's config uses for Docker Hub.
const HUB_KEY: &str = "https://index.docker.io/v1/";

/// The registry host of an image reference, as docker decides it: the first path component
/// when it looks like a host (has `.` or `:`, or is `localhost`), else Docker Hub.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => HUB_KEY.to_string(),
    }
}

fn config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The encoded header for `image`'s registry, or `Ok(None)` when no credentials are stored for
/// it (the daemon then pulls anonymously). Credential helpers are not run: they are named in
/// the error so the user knows why nothing was sent.
pub fn encoded_auth(image: &str) -> Result<Option<String>, String> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let cfg: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    Ok(auth_from_config(&cfg, &registry_of(image)))
}

/// Finds `registry` in a docker config (`auths` keys may carry a scheme) and encodes it.
pub fn auth_from_config(cfg: &Value, registry: &str) -> Option<String> {
    let auths = cfg.get("auths")?.as_object()?;
    let strip = |k: &str| {
        k.trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    };
    let wanted = if registry == HUB_KEY {
        strip(HUB_KEY)
    } else {
        strip(registry)
    };
    let entry = auths.iter().find_map(|(k, v)| {
        let k = strip(k);
        let k = k.strip_suffix("/v1").unwrap_or(&k).to_string();
        let w = wanted.strip_suffix("/v1").unwrap_or(&wanted);
        (k == w).then_some(v)
    })?;
    let mut out = json!({"serveraddress": registry});
    if let Some(token) = entry.get("identitytoken").and_then(Value::as_str) {
        out["identitytoken"] = json!(token);
    }
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, pass) = text.split_once(':')?;
        out["username"] = json!(user);
        out["password"] = json!(pass);
    } else {
        if let Some(u) = entry.get("username").and_then(Value::as_str) {
            out["username"] = json!(u);
        }
        if let Some(p) = entry.get("password").and_then(Value::as_str) {
            out["password"] = json!(p);
        }
    }
    Some(base64::engine::general_purpose::URL_SAFE.encode(out.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        assert_eq!(registry_of("busybox"), HUB_KEY);
        assert_eq!(registry_of("library/busybox:1"), HUB_KEY);
        assert_eq!(registry_of("127.0.0.1:5000/a/b"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("reg.example/x"), "reg.example");
    }

    #[test]
    fn encodes_stored_credentials() {
        let cfg = json!({"auths": {"https://127.0.0.1:5000": {"auth": "dXNlcjpwYXNz"}}});
        let enc = auth_from_config(&cfg, "127.0.0.1:5000").expect("found");
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(enc)
            .expect("base64url");
        let v: Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(v["username"], "user");
        assert_eq!(v["password"], "pass");
        assert_eq!(v["serveraddress"], "127.0.0.1:5000");
        assert!(auth_from_config(&cfg, "other:5000").is_none());
        let hub = json!({"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"}}});
        assert!(auth_from_config(&hub, HUB_KEY).is_some());
    }
}
