//! Small helpers the bench programs share: figures from repeated runs, counts from the
//! environment.

use anyhow::{Result, anyhow};

/// The median of `v` (the mean of the two middle values for an even count; NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A count from environment variable `name` (1 to 101), or `default` when it is unset.
pub fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=101).contains(n))
            .ok_or_else(|| anyhow!("{name}={v:?}: expected a count from 1 to 101")),
        Err(_) => Ok(default),
    }
}

/// Can a thread in the network namespace at `netns_path` open an echo session (first byte
/// `E`) with the bench server at `to` within a second?
pub fn echo_reachable(netns_path: &str, to: std::net::SocketAddr) -> bool {
    use std::io::Write;
    crate::in_netns_path(netns_path, move || {
        std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(1))
            .and_then(|mut s| s.write_all(b"E"))
            .is_ok()
    })
    .unwrap_or(false)
}
