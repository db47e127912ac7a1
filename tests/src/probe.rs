//! Looking from inside a lab container: busybox applets run in its network and mount
//! namespaces and its root (nsenter by PID), so names resolve through its own resolv.conf and
//! the embedded DNS server.

use crate::{run, run_stdin};
use anyhow::{Result, anyhow};
use std::collections::BTreeSet;

/// `nsenter` arguments that run the container's busybox with `args`.
fn busybox_args<'a>(pid: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["-t", pid, "-n", "-m", "-r", "-w", "--", "/bin/busybox"];
    a.extend_from_slice(args);
    a
}

/// A busybox applet inside the container whose process is `pid`; its stdout.
pub fn busybox_in(pid: &str, args: &[&str]) -> Result<String> {
    run("nsenter", &busybox_args(pid, args))
}

/// The addresses `name` resolves to through the container's embedded DNS server.
pub fn nslookup_in(pid: &str, name: &str) -> Result<BTreeSet<String>> {
    let out = busybox_in(pid, &["nslookup", name, "127.0.0.11"])?;
    // The answer section follows the "Name:" line; the server's own address comes before.
    let answers = out
        .split_once("Name:")
        .map(|(_, a)| a)
        .ok_or_else(|| anyhow!("no answer for {name}: {out}"))?;
    Ok(answers
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .map(|a| a.trim().trim_start_matches("1 ").to_string())
        .collect())
}

/// An HTTP/1.0 `GET path` request.
pub fn http_request(path: &str) -> String {
    format!("GET {path} HTTP/1.0\r\n\r\n")
}

/// The body of an HTTP response.
pub fn http_body(resp: &str) -> Result<String> {
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .ok_or_else(|| anyhow!("no HTTP response: {resp:?}"))
}

/// The body of `GET path` to `host:80` from inside the container whose process is `pid`
/// (busybox nc, 3 s limit).
pub fn http_get_in(pid: &str, host: &str, path: &str) -> Result<String> {
    let out = run_stdin(
        "nsenter",
        &busybox_args(pid, &["nc", "-w", "3", host, "80"]),
        &http_request(path),
    )?;
    http_body(&out)
}
