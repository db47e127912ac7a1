//! Output helpers shared by the client commands: docker-style tables (tabwriter with
//! minwidth 10 and padding 3), `--format` handling, ID truncation and "x ago" times.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::template::Template;

/// Go's tabwriter as docker configures it: a cell ends at `\t`; columns are as wide as
/// their widest cell plus 3 spaces, at least 10; the last cell of a line is not padded.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        // Only tab-terminated cells are aligned (all but the last).
        for (i, c) in cells.iter().take(cells.len().saturating_sub(1)).enumerate() {
            let w = c.chars().count();
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(w);
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (li, cells) in lines.iter().enumerate() {
        if li > 0 {
            out.push('\n');
        }
        let last = cells.len().saturating_sub(1);
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i < last {
                let width = (widths[i] + 3).max(10);
                let pad = width - c.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    out
}

/// How a list command prints: the user's `--format` (or `json`/`table`), the command's default.
pub struct ListFormat<'a> {
    pub user: Option<&'a str>,
    /// e.g. `table {{.ID}}\t{{.Name}}`.
    pub default_table: &'a str,
}

fn preformat(f: &str) -> (bool, String) {
    let (table, body) = match f.strip_prefix("table") {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => (true, rest),
        _ => (false, f),
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    (table, body)
}

/// Renders rows (each a JSON object of the formatter's fields) with a header row made by
/// rendering the same template over `headers` (field → column title).
pub fn render_list(fmt: ListFormat<'_>, headers: &Value, rows: &[Value]) -> Result<String, String> {
    let chosen = match fmt.user.map(str::trim) {
        None | Some("") | Some("table") => fmt.default_table.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let (table, body) = preformat(&chosen);
    let tmpl = Template::parse(&body)?;
    let mut text = String::new();
    if table {
        text.push_str(&tmpl.render(headers)?);
        text.push('\n');
    }
    for r in rows {
        text.push_str(&tmpl.render(r)?);
        text.push('\n');
    }
    Ok(tabwrite(&text))
}

/// `inspect`-style output: a JSON array (indented 4, as docker prints it) or one template
/// rendering per object.
pub fn render_inspect(format: Option<&str>, objects: &[Value]) -> Result<String, String> {
    match format.map(str::trim) {
        None | Some("") | Some("json") => {
            let s = serde_json::to_string_pretty(&Value::Array(objects.to_vec()))
                .map_err(|e| e.to_string())?;
            Ok(reindent(&s) + "\n")
        }
        Some(f) => {
            let (_, body) = preformat(f);
            let t = Template::parse(&body)?;
            let mut out = String::new();
            for o in objects {
                out.push_str(&t.render(o)?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// serde_json indents by 2; docker inspect indents by 4.
fn reindent(s: &str) -> String {
    s.lines()
        .map(|l| {
            let n = l.len() - l.trim_start_matches(' ').len();
            format!("{}{}", " ".repeat(n * 2), &l[n..])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// docker's `stringid.TruncateID`: cut at `:` (digests), then 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.rsplit_once(':').map(|(_, r)| r).unwrap_or(id);
    id.chars().take(12).collect()
}

/// Capitalizes the first letter: `ready` → `Ready`.
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// go-units `HumanDuration`.
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = d.num_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.num_seconds() as f64 / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", d.num_seconds() / 3600 / 24 / 365)
}

/// "5 minutes ago" for an RFC 3339 time; empty or unparsable input gives "".
pub fn ago(rfc3339: &str) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => ago_from(t.with_timezone(&Utc), Utc::now()),
        Err(_) => String::new(),
    }
}

pub fn ago_from(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", human_duration(now - t))
}

/// A string field of a JSON value by path ("" when missing).
pub fn s(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_matches_docker_widths() {
        let t = tabwrite(
            "ID\tHOSTNAME\tSTATUS\tENGINE VERSION\nabcdefghijklmnopqrstuvwxy *\tmgr1\tReady\t0.1.0\n",
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            format!("ID{}HOSTNAME   STATUS    ENGINE VERSION", " ".repeat(28))
        );
        assert_eq!(
            lines[1],
            "abcdefghijklmnopqrstuvwxy *   mgr1       Ready     0.1.0"
        );
    }

    #[test]
    fn list_formats() {
        let headers = json!({"ID": "ID", "Name": "NAME"});
        let rows = vec![
            json!({"ID": "1", "Name": "web"}),
            json!({"ID": "22", "Name": "db"}),
        ];
        let def = "table {{.ID}}\t{{.Name}}";
        let out = render_list(
            ListFormat {
                user: None,
                default_table: def,
            },
            &headers,
            &rows,
        )
        .unwrap();
        assert_eq!(out, "ID        NAME\n1         web\n22        db\n");
        let out = render_list(
            ListFormat {
                user: Some("{{.Name}}"),
                default_table: def,
            },
            &headers,
            &rows,
        )
        .unwrap();
        assert_eq!(out, "web\ndb\n");
        let out = render_list(
            ListFormat {
                user: Some("table {{.Name}}\\t{{.ID}}"),
                default_table: def,
            },
            &headers,
            &rows,
        )
        .unwrap();
        assert_eq!(out, "NAME      ID\nweb       1\ndb        22\n");
        let out = render_list(
            ListFormat {
                user: Some("json"),
                default_table: def,
            },
            &headers,
            &rows,
        )
        .unwrap();
        assert_eq!(
            out,
            "{\"ID\":\"1\",\"Name\":\"web\"}\n{\"ID\":\"22\",\"Name\":\"db\"}\n"
        );
        assert!(
            render_list(
                ListFormat {
                    user: Some("{{.ID"),
                    default_table: def
                },
                &headers,
                &rows
            )
            .is_err()
        );
    }

    #[test]
    fn inspect_output() {
        let out = render_inspect(None, &[json!({"A": {"B": 1}})]).unwrap();
        assert_eq!(
            out,
            "[\n    {\n        \"A\": {\n            \"B\": 1\n        }\n    }\n]\n"
        );
        assert_eq!(
            render_inspect(Some("{{.A.B}}"), &[json!({"A": {"B": 1}})]).unwrap(),
            "1\n"
        );
    }

    #[test]
    fn ids_times_words() {
        assert_eq!(truncate_id("3bwzn9m0a1b2c3d4e5f6g7h8i"), "3bwzn9m0a1b2");
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(capitalize("ready"), "Ready");
        assert_eq!(capitalize(""), "");
        let now = Utc::now();
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (45, "45 seconds"),
            (60, "About a minute"),
            (300, "5 minutes"),
            (3600, "About an hour"),
            (5 * 3600, "5 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                ago_from(now - chrono::Duration::seconds(secs), now),
                format!("{want} ago")
            );
        }
        assert_eq!(ago("not a time"), "");
    }
}
