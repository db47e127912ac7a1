//! The variables compose files are interpolated with: the process environment, completed by a
//! `.env` file next to the first compose file (the process environment wins, as in Docker).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::ComposeError;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

/// Names only: values may be credentials and must not end up in logs.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// The process environment plus `<dir of first_file>/.env` if that file exists.
    pub fn for_compose_file(first_file: &Path) -> Result<Self, ComposeError> {
        let mut env = Self::from_process();
        let dir = match first_file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let dotenv = dir.join(".env");
        match std::fs::read_to_string(&dotenv) {
            Ok(text) => env.add_dotenv(&text, &dotenv.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ComposeError::Io {
                    path: dotenv,
                    source,
                });
            }
        }
        Ok(env)
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(key.into(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// Adds the variables of a `.env` file that are not already set. `name` is used in errors.
    pub fn add_dotenv(&mut self, text: &str, name: &str) -> Result<(), ComposeError> {
        for (k, v) in parse_env_lines(text, name)? {
            if let Some(v) = v {
                self.vars.entry(k).or_insert(v);
            }
        }
        Ok(())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Env {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Parses `KEY=VALUE` lines (as in `.env` and `env_file` files). Blank lines and `#` comments
/// are skipped, `export ` is allowed, values may be single- or double-quoted. A bare `KEY`
/// yields `(KEY, None)`: the caller takes its value from the environment.
pub fn parse_env_lines(
    text: &str,
    name: &str,
) -> Result<Vec<(String, Option<String>)>, ComposeError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let err = |message: String| ComposeError::EnvFile {
            file: name.to_string(),
            line: n + 1,
            message,
        };
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (line, None),
        };
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(err(format!("invalid variable name {key:?}")));
        }
        let value = match value {
            None => None,
            Some(v) => Some(unquote(v.trim()).map_err(err)?),
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn unquote(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest
            .find('\'')
            .ok_or_else(|| "unterminated single quote".to_string())?;
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(o) => out.push(o),
                    None => break,
                },
                o => out.push(o),
            }
        }
        return Err("unterminated double quote".to_string());
    }
    // An unquoted value ends at " #" (an inline comment).
    let v = match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    };
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_forms() {
        let text =
            "# comment\n\nA=1\nexport B = two \nC='x y # z'\nD=\"q\\\"n\\n\"\nE=v # note\nF\nG=\n";
        let parsed = parse_env_lines(text, ".env").expect("parses");
        assert_eq!(
            parsed,
            vec![
                ("A".into(), Some("1".into())),
                ("B".into(), Some("two".into())),
                ("C".into(), Some("x y # z".into())),
                ("D".into(), Some("q\"n\n".into())),
                ("E".into(), Some("v".into())),
                ("F".into(), None),
                ("G".into(), Some(String::new())),
            ]
        );
    }

    #[test]
    fn process_env_wins_over_dotenv() {
        let mut env: Env = [("A", "from-process")].into_iter().collect();
        env.add_dotenv("A=from-file\nB=b\n", ".env")
            .expect("parses");
        assert_eq!(env.get("A"), Some("from-process"));
        assert_eq!(env.get("B"), Some("b"));
    }

    #[test]
    fn bad_line_is_named() {
        let err = parse_env_lines("OK=1\nBAD KEY=2\n", "x/.env").expect_err("rejects");
        assert_eq!(
            err.to_string(),
            "x/.env:2: invalid variable name \"BAD KEY\""
        );
        let err = parse_env_lines("A='open\n", ".env").expect_err("rejects");
        assert_eq!(err.to_string(), ".env:1: unterminated single quote");
    }
}
