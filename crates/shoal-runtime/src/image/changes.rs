//! `--change` instructions of `image import` (a Dockerfile subset: CMD, ENTRYPOINT, ENV,
//! EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK) applied to a config.

use std::collections::BTreeMap;

use super::error::{ImageError, Result};
use super::spec::{ContainerConfig, HealthConfig};

/// Applies each instruction in order to `cfg`. Any bad instruction fails the whole call and
/// leaves `cfg` unchanged.
pub fn apply_changes(cfg: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    let mut out = cfg.clone();
    for c in changes {
        apply_one(&mut out, c)?;
    }
    *cfg = out;
    Ok(())
}

fn apply_one(cfg: &mut ContainerConfig, change: &str) -> Result<()> {
    let bad = |reason: &str| ImageError::InvalidChange {
        change: change.to_string(),
        reason: reason.to_string(),
    };
    let line = change.trim();
    let (instr, rest) = match line.split_once(char::is_whitespace) {
        Some((i, r)) => (i, r.trim()),
        None => (line, ""),
    };
    let instr = instr.to_ascii_uppercase();
    if rest.is_empty() && instr != "HEALTHCHECK" {
        return Err(bad(&format!("{instr} needs an argument")));
    }
    match instr.as_str() {
        "CMD" => cfg.cmd = Some(command_form(rest)),
        "ENTRYPOINT" => cfg.entrypoint = Some(command_form(rest)),
        "ENV" => {
            let env = cfg.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(rest).map_err(|e| bad(&e))? {
                env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values(rest).map_err(|e| bad(&e))? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
            for w in words(rest).map_err(|e| bad(&e))? {
                let (port, proto) = w.split_once('/').unwrap_or((w.as_str(), "tcp"));
                let proto = proto.to_ascii_lowercase();
                if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(bad(&format!("unknown protocol {proto:?}")));
                }
                let ok = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
                let valid = match port.split_once('-') {
                    Some((a, b)) => ok(a) && ok(b),
                    None => ok(port),
                };
                if !valid {
                    return Err(bad(&format!("invalid port {port:?}")));
                }
                ports.insert(format!("{port}/{proto}"), serde_json::json!({}));
            }
        }
        "USER" => cfg.user = Some(rest.to_string()),
        "WORKDIR" => {
            let w = if rest.starts_with('/') {
                rest.to_string()
            } else {
                let base = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
                format!("{}/{rest}", base.trim_end_matches('/'))
            };
            cfg.working_dir = Some(w);
        }
        "VOLUME" => {
            let list = match json_array(rest) {
                Some(v) => v,
                None => words(rest).map_err(|e| bad(&e))?,
            };
            let vols = cfg.volumes.get_or_insert_with(BTreeMap::new);
            for v in list {
                if v.is_empty() {
                    return Err(bad("empty volume path"));
                }
                vols.insert(v, serde_json::json!({}));
            }
        }
        "STOPSIGNAL" => {
            if rest.contains(char::is_whitespace) {
                return Err(bad("one signal expected"));
            }
            cfg.stop_signal = Some(rest.to_string());
        }
        "HEALTHCHECK" => cfg.healthcheck = Some(healthcheck(rest).map_err(|e| bad(&e))?),
        "FROM" | "RUN" | "COPY" | "ADD" | "ONBUILD" | "ARG" | "SHELL" | "MAINTAINER" => {
            return Err(bad(&format!("{instr} is not allowed in image import")));
        }
        _ => return Err(bad(&format!("unknown instruction {instr}"))),
    }
    Ok(())
}

/// JSON (exec) form when it parses as a string array, else shell form.
fn command_form(rest: &str) -> Vec<String> {
    json_array(rest)
        .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string(), rest.to_string()])
}

fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Splits on whitespace honouring single/double quotes and backslash escapes.
fn words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("trailing backslash".into()),
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `k=v k2="v 2"`, or the legacy `k value with spaces`.
fn key_values(rest: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let ws = words(rest)?;
    let first_has_eq = ws.first().is_some_and(|w| w.contains('='));
    if !first_has_eq {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| "expected key=value".to_string())?;
        let v = words(v.trim())?.join(" ");
        return Ok(vec![(k.to_string(), v)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("expected key=value, got {w:?}")),
        })
        .collect()
}

fn healthcheck(rest: &str) -> std::result::Result<HealthConfig, String> {
    let mut hc = HealthConfig::default();
    let mut rest = rest.trim();
    if rest.eq_ignore_ascii_case("NONE") {
        hc.test = Some(vec!["NONE".into()]);
        return Ok(hc);
    }
    while let Some(opt) = rest.strip_prefix("--") {
        let (flag, after) = opt.split_once(char::is_whitespace).ok_or("missing CMD")?;
        let (name, value) = flag
            .split_once('=')
            .ok_or(format!("flag --{flag} needs =value"))?;
        match name {
            "interval" => hc.interval = Some(parse_duration(value)?),
            "timeout" => hc.timeout = Some(parse_duration(value)?),
            "start-period" => hc.start_period = Some(parse_duration(value)?),
            "start-interval" => hc.start_interval = Some(parse_duration(value)?),
            "retries" => {
                hc.retries = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad --retries {value:?}"))?,
                )
            }
            _ => return Err(format!("unknown HEALTHCHECK flag --{name}")),
        }
        rest = after.trim_start();
    }
    let (kw, cmd) = rest
        .split_once(char::is_whitespace)
        .ok_or("expected CMD <command>")?;
    if !kw.eq_ignore_ascii_case("CMD") {
        return Err("expected CMD <command>".into());
    }
    let cmd = cmd.trim();
    hc.test = Some(match json_array(cmd) {
        Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        None => vec!["CMD-SHELL".to_string(), cmd.to_string()],
    });
    Ok(hc)
}

/// Go-style durations (`1m30s`, `500ms`) to nanoseconds.
fn parse_duration(s: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply() {
        let mut c = ContainerConfig::default();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["httpd","-f"]"#.into(),
                "ENTRYPOINT echo hi".into(),
                r#"ENV A=1 B="two words""#.into(),
                "ENV A 3".into(),
                "EXPOSE 80 53/udp".into(),
                "WORKDIR /www".into(),
                "WORKDIR sub".into(),
                "HEALTHCHECK --interval=1m30s --retries=2 CMD wget -q localhost".into(),
            ],
        )
        .expect("valid changes");
        assert_eq!(c.cmd, Some(vec!["httpd".to_string(), "-f".to_string()]));
        assert_eq!(
            c.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(c.env, Some(vec!["B=two words".into(), "A=3".into()]));
        assert_eq!(c.working_dir.as_deref(), Some("/www/sub"));
        let ports = c.exposed_ports.expect("ports");
        assert!(ports.contains_key("80/tcp") && ports.contains_key("53/udp"));
        let hc = c.healthcheck.expect("healthcheck");
        assert_eq!(hc.interval, Some(90_000_000_000));
        assert_eq!(hc.retries, Some(2));
        let mut d = ContainerConfig::default();
        assert!(apply_changes(&mut d, &["RUN rm -rf /".into()]).is_err());
        assert!(apply_changes(&mut d, &["EXPOSE 99999".into()]).is_err());
        assert_eq!(d, ContainerConfig::default());
    }
}
