//! `shoal events`: the daemon's event stream, printed as docker prints it.

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use futures::StreamExt;
use serde_json::Value;
use shoal_api::{Client, EventsOptions};

use super::format::s;
use super::node::parse_filters;
use super::template::Template;
use super::{CliError, CliResult, out, to_value};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp (unix seconds, RFC 3339, or a duration like 10m)
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided (key=value)
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template ('json' for one JSON object per line)
    #[arg(long)]
    pub format: Option<String>,
}

/// Unix seconds, RFC 3339, or a duration before now.
pub fn parse_when(flag: &str, v: &str) -> Result<DateTime<Utc>, CliError> {
    if let Ok(t) = shoal_api::parse_timestamp(v) {
        return Ok(t);
    }
    let ns = shoal_api::types::parse_duration(v)
        .map_err(|e| CliError::Other(format!("invalid value for \"{flag}\": {v:?} ({e})")))?;
    Ok(Utc::now() - chrono::Duration::nanoseconds(ns))
}

/// `<time> <Type> <Action> <Actor.ID> (k=v, …)`, attributes sorted by key.
pub fn event_line(ev: &Value) -> String {
    let nanos = ev.get("timeNano").and_then(Value::as_i64).unwrap_or(0);
    let t = DateTime::<Utc>::from_timestamp(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default()
    .to_rfc3339_opts(SecondsFormat::Nanos, true);
    let mut line = format!(
        "{t} {} {} {}",
        s(ev, &["Type"]),
        s(ev, &["Action"]),
        s(ev, &["Actor", "ID"])
    );
    if let Some(attrs) = ev
        .pointer("/Actor/Attributes")
        .and_then(Value::as_object)
        .filter(|a| !a.is_empty())
    {
        let mut kv: Vec<String> = attrs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        kv.sort();
        line.push_str(&format!(" ({})", kv.join(", ")));
    }
    line
}

pub async fn events(c: &Client, a: EventsArgs) -> CliResult {
    let opts = EventsOptions {
        since: a
            .since
            .as_deref()
            .map(|v| parse_when("since", v))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|v| parse_when("until", v))
            .transpose()?,
        filters: parse_filters(&a.filter)?,
    };
    let tmpl = match a.format.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(f)?),
    };
    let mut stream = c.events(&opts).await?;
    while let Some(ev) = stream.next().await {
        let ev = to_value(&ev?)?;
        let line = match &tmpl {
            Some(t) => t.render(&ev)?,
            None => event_line(&ev),
        };
        out(&format!("{line}\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_event_line() {
        let ev = json!({"Type": "service", "Action": "update", "Actor": {"ID": "svc1", "Attributes": {"name": "web", "replicas.new": "3", "replicas.old": "2"}},
                        "scope": "swarm", "time": 1795423672, "timeNano": 1795423672466838412i64});
        assert_eq!(
            event_line(&ev),
            "2026-11-23T08:47:52.466838412Z service update svc1 (name=web, replicas.new=3, replicas.old=2)"
        );
        assert!(parse_when("since", "10m").is_ok());
        assert!(parse_when("since", "later").is_err());
    }
}
