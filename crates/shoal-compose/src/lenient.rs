//! Serde helpers for compose values that come in several shapes: numbers written as strings
//! (after interpolation everything is a string), lists-or-maps, strings-or-lists, short-or-long
//! syntax. Each reads a `Value` and converts it with a clear message.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

/// Marks an error message that carries a sub-path below the field being read (see
/// `load::schema_error`), so long-syntax errors point at the inner key.
pub const SUBPATH_MARK: char = '\u{1}';

/// Deserializes a long-syntax mapping into `T`, keeping the path of the inner key in errors.
pub fn from_long<T: DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        nest(&path, &inner)
    })
}

/// Prefixes `msg` with a sub-path, merging with a sub-path the message may already carry.
pub fn nest(path: &str, msg: &str) -> String {
    if path == "." || path.is_empty() {
        return msg.to_string();
    }
    match msg.strip_prefix(SUBPATH_MARK) {
        Some(rest) => match rest.split_once(SUBPATH_MARK) {
            Some((sub, m)) => format!("{SUBPATH_MARK}{}{SUBPATH_MARK}{m}", join(path, sub)),
            None => format!("{SUBPATH_MARK}{path}{SUBPATH_MARK}{msg}"),
        },
        None => format!("{SUBPATH_MARK}{path}{SUBPATH_MARK}{msg}"),
    }
}

pub fn join(a: &str, b: &str) -> String {
    if a.is_empty() || a == "." {
        b.to_string()
    } else if b.is_empty() || b == "." {
        a.to_string()
    } else if b.starts_with('[') {
        format!("{a}{b}")
    } else {
        format!("{a}.{b}")
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A scalar as text (numbers and booleans are accepted where Docker takes strings).
pub fn scalar_string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("must be a string, not {}", type_name(other))),
    }
}

pub fn to_u64(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("must be a non-negative integer, not {n}")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("must be a non-negative integer, not {s:?}")),
        other => Err(format!(
            "must be a non-negative integer, not {}",
            type_name(other)
        )),
    }
}

pub fn to_i64(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("must be an integer, not {n}")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("must be an integer, not {s:?}")),
        other => Err(format!("must be an integer, not {}", type_name(other))),
    }
}

pub fn to_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("must be a number, not {n}")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("must be a number, not {s:?}")),
        other => Err(format!("must be a number, not {}", type_name(other))),
    }
}

pub fn to_bool(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Ok(true),
            "false" | "no" | "off" | "n" => Ok(false),
            _ => Err(format!("must be a boolean, not {s:?}")),
        },
        other => Err(format!("must be a boolean, not {}", type_name(other))),
    }
}

fn read<'de, D: Deserializer<'de>, T>(
    d: D,
    f: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<Option<T>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => f(&v).map(Some).map_err(D::Error::custom),
    }
}

pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    read(d, to_u64)
}

pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    read(d, to_i64)
}

pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    read(d, to_f64)
}

pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    read(d, to_bool)
}

pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    read(d, scalar_string)
}

/// A file mode: an integer, or a string read as octal ("0440", "0o440"). YAML 1.1 readers
/// (Docker's) take `0440` as octal; the YAML 1.2 reader here keeps it as the string "0440".
pub fn opt_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    read(d, |v| match v {
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix("0o").unwrap_or(t);
            u32::from_str_radix(digits, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("invalid file mode {s:?}"))
        }
        other => to_u64(other).and_then(|m| {
            u32::try_from(m)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("invalid file mode {m}"))
        }),
    })
}

/// A string or a list of strings (`dns`, `env_file`, `tmpfs`, …).
pub fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    read(d, |v| match v {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| scalar_string(x).map_err(|m| nest(&format!("[{i}]"), &m)))
            .collect(),
        other => scalar_string(other).map(|s| vec![s]),
    })
    .map(Option::unwrap_or_default)
}

/// A list of strings (items may be numbers).
pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    read(d, |v| match v {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| scalar_string(x).map_err(|m| nest(&format!("[{i}]"), &m)))
            .collect(),
        other => Err(format!("must be a list, not {}", type_name(other))),
    })
    .map(Option::unwrap_or_default)
}

/// A `KEY=VALUE` list or a mapping, with values possibly null (`environment`).
/// In the list form a bare `KEY` is a null value.
pub fn list_or_map_nullable<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    read(d, |v| list_or_map(v, "=")).map(Option::unwrap_or_default)
}

/// Like `list_or_map_nullable`, but a missing value is the empty string (`labels`, `sysctls`).
pub fn list_or_map_strings<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    read(d, |v| {
        list_or_map(v, "=").map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect()
        })
    })
    .map(Option::unwrap_or_default)
}

pub fn list_or_map(v: &Value, sep: &str) -> Result<BTreeMap<String, Option<String>>, String> {
    let mut out = BTreeMap::new();
    match v {
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let s = scalar_string(item).map_err(|m| nest(&format!("[{i}]"), &m))?;
                match s.split_once(sep) {
                    Some((k, val)) => out.insert(k.to_string(), Some(val.to_string())),
                    None => out.insert(s, None),
                };
            }
        }
        Value::Mapping(map) => {
            for (k, val) in map {
                let key = scalar_string(k)?;
                let val = match val {
                    Value::Null => None,
                    other => Some(scalar_string(other).map_err(|m| nest(&key, &m))?),
                };
                out.insert(key, val);
            }
        }
        other => {
            return Err(format!(
                "must be a list or a mapping, not {}",
                type_name(other)
            ));
        }
    }
    Ok(out)
}

/// `command`/`entrypoint`: a string (split like a shell would) or a list.
pub fn opt_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    read(d, |v| match v {
        Value::String(s) => crate::shell::split(s),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| scalar_string(x).map_err(|m| nest(&format!("[{i}]"), &m)))
            .collect(),
        other => Err(format!(
            "must be a string or a list, not {}",
            type_name(other)
        )),
    })
}

/// A mapping of definitions whose values may be null (`networks: {front: }`).
pub fn nullable_defs<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let m = Option::<BTreeMap<String, Option<T>>>::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}
