//! Where the client connects: `-H`, then `SHOAL_HOST`, then the default socket.

use std::path::PathBuf;

use crate::types::ApiError;

/// The daemon's default API socket.
pub const DEFAULT_HOST: &str = "unix:///run/shoal/shoal.sock";
/// Environment variable that overrides the default host.
pub const HOST_ENV: &str = "SHOAL_HOST";

/// A parsed daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

impl Host {
    /// Parses `unix:///path`, `tcp://host:port` (port defaults to 2375), or a bare absolute path.
    pub fn parse(s: &str) -> Result<Host, ApiError> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(ApiError::invalid_argument(format!(
                    "invalid host {s:?}: empty socket path"
                )));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
        {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() || rest.contains('/') {
                return Err(ApiError::invalid_argument(format!(
                    "invalid host {s:?}: expected tcp://host:port"
                )));
            }
            let has_port = rest
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                && !rest.ends_with(']');
            return Ok(Host::Tcp(if has_port {
                rest.to_string()
            } else {
                format!("{rest}:2375")
            }));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(s)));
        }
        Err(ApiError::invalid_argument(format!(
            "invalid host {s:?}: use unix:///path/to/socket or tcp://host:port"
        )))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// The host to use: the `-H` value if given, else `$SHOAL_HOST` if set and non-empty, else
/// [`DEFAULT_HOST`].
pub fn resolve_host(flag: Option<&str>) -> String {
    if let Some(h) = flag.filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    match std::env::var(HOST_ENV) {
        Ok(h) if !h.is_empty() => h,
        _ => DEFAULT_HOST.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_hosts() {
        assert_eq!(
            Host::parse("unix:///run/shoal/shoal.sock").unwrap(),
            Host::Unix("/run/shoal/shoal.sock".into())
        );
        assert_eq!(
            Host::parse("/tmp/x.sock").unwrap(),
            Host::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375").unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Host::parse("tcp://localhost").unwrap(),
            Host::Tcp("localhost:2375".into())
        );
        assert!(Host::parse("unix://").is_err());
        assert!(Host::parse("ssh://x").is_err());
        assert!(Host::parse("tcp://a/b").is_err());
        assert_eq!(Host::parse("tcp://h:1").unwrap().to_string(), "tcp://h:1");
    }

    #[test]
    fn flag_wins() {
        assert_eq!(resolve_host(Some("tcp://a:1")), "tcp://a:1");
    }
}
