//! The untyped stage of loading one file: YAML parsing with positions in errors, `<<` merge
//! keys, removal of `x-` extension fields, and interpolation of every string value.

use std::collections::BTreeSet;

use serde_yaml::{Mapping, Value};

use crate::env::Env;
use crate::error::ComposeError;
use crate::interpolate::{InterpolateError, interpolate};

/// Parses one file. Syntax errors carry `file:line:col`.
pub fn parse(file: &str, text: &str) -> Result<Mapping, ComposeError> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        ComposeError::Syntax {
            file: file.to_string(),
            line,
            column,
            message: strip_positions(&e.to_string()),
        }
    })?;
    match value {
        Value::Mapping(m) => Ok(m),
        // An empty file is an empty project, as in Docker.
        Value::Null => Ok(Mapping::new()),
        _ => Err(ComposeError::Schema {
            file: Some(file.to_string()),
            path: ".".into(),
            message: "top-level object must be a mapping".into(),
        }),
    }
}

/// The position is reported separately, so drop libyaml's " at line N column M" from the text.
fn strip_positions(msg: &str) -> String {
    match regex::Regex::new(r" at line \d+ column \d+") {
        Ok(re) => re.replace_all(msg, "").into_owned(),
        Err(_) => msg.to_string(),
    }
}

/// Applies YAML merge keys (`<<: *anchor` or `<<: [*a, *b]`) everywhere, nested ones first, so
/// that an anchor that itself uses `<<` merges completely. Keys written in the mapping win over
/// merged ones, and earlier sources win over later ones.
pub fn resolve_merges(value: &mut Value, path: &str) -> Result<(), ComposeError> {
    match value {
        Value::Mapping(map) => {
            let merge = map.remove("<<");
            for (k, v) in map.iter_mut() {
                resolve_merges(v, &join(path, k))?;
            }
            if let Some(mut merge) = merge {
                let here = join_str(path, "<<");
                resolve_merges(&mut merge, &here)?;
                let sources = match merge {
                    Value::Mapping(m) => vec![m],
                    Value::Sequence(seq) => {
                        let mut out = Vec::new();
                        for (i, item) in seq.into_iter().enumerate() {
                            match item {
                                Value::Mapping(m) => out.push(m),
                                _ => {
                                    return Err(ComposeError::schema(
                                        format!("{here}[{i}]"),
                                        "a merge key (<<) can only merge mappings",
                                    ));
                                }
                            }
                        }
                        out
                    }
                    _ => {
                        return Err(ComposeError::schema(
                            here,
                            "a merge key (<<) can only merge a mapping or a list of mappings",
                        ));
                    }
                };
                for source in sources {
                    for (k, v) in source {
                        if !map.contains_key(&k) {
                            map.insert(k, v);
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(seq) => {
            for (i, v) in seq.iter_mut().enumerate() {
                resolve_merges(v, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::Tagged(t) => resolve_merges(&mut t.value, path),
        _ => Ok(()),
    }
}

/// Maps whose keys are user data: an `x-` key there is a real entry, not an extension.
const USER_KEYED: &[&str] = &[
    "labels",
    "environment",
    "driver_opts",
    "options",
    "sysctls",
    "extra_hosts",
    "ulimits",
    "aux_addresses",
];

/// Maps whose keys are object names (services, networks, …).
const NAME_KEYED: &[&str] = &["services", "networks", "volumes", "secrets", "configs"];

/// Removes `x-*` extension keys from the structural mappings of a file.
pub fn strip_extensions(value: &mut Value, parent_key: Option<&str>, name_keyed: bool) {
    match value {
        Value::Mapping(map) => {
            let user_keyed = parent_key.is_some_and(|k| USER_KEYED.contains(&k));
            if !user_keyed && !name_keyed {
                map.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
            }
            if user_keyed {
                return;
            }
            for (k, v) in map.iter_mut() {
                let key = k.as_str();
                // The children of a name-keyed map are object definitions.
                let child_name_keyed = !name_keyed && key.is_some_and(|k| NAME_KEYED.contains(&k));
                let child_parent = if name_keyed { None } else { key };
                strip_extensions(v, child_parent, child_name_keyed);
            }
        }
        Value::Sequence(seq) => {
            for v in seq {
                strip_extensions(v, None, false);
            }
        }
        _ => {}
    }
}

/// Interpolates every string scalar (never keys). Names of unset variables go to `missing`.
pub fn interpolate_values(
    value: &mut Value,
    path: &str,
    env: &Env,
    missing: &mut BTreeSet<String>,
) -> Result<(), ComposeError> {
    match value {
        Value::String(s) => {
            if !s.contains('$') {
                return Ok(());
            }
            let lookup = |k: &str| env.get(k).map(str::to_string);
            match interpolate(s, &lookup, missing) {
                Ok(v) => {
                    *s = v;
                    Ok(())
                }
                Err(InterpolateError::InvalidFormat) => Err(ComposeError::Interpolation {
                    file: None,
                    path: path.to_string(),
                    message: format!(
                        "invalid interpolation format: {s:?}; you may need to escape any $ with another $"
                    ),
                }),
                Err(InterpolateError::Required(message)) => Err(ComposeError::Interpolation {
                    file: None,
                    path: path.to_string(),
                    message,
                }),
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                interpolate_values(v, &join(path, k), env, missing)?;
            }
            Ok(())
        }
        Value::Sequence(seq) => {
            for (i, v) in seq.iter_mut().enumerate() {
                interpolate_values(v, &format!("{path}[{i}]"), env, missing)?;
            }
            Ok(())
        }
        Value::Tagged(t) => interpolate_values(&mut t.value, path, env, missing),
        _ => Ok(()),
    }
}

/// Renders a scalar key for a path.
pub fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => "?".into(),
    }
}

fn join(path: &str, k: &Value) -> String {
    join_str(path, &key_string(k))
}

fn join_str(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_has_position() {
        let err = parse("stack.yml", "services:\n  web:\n    image: [a\n").expect_err("bad yaml");
        let text = err.to_string();
        assert!(text.starts_with("stack.yml:"), "{text}");
        match err {
            ComposeError::Syntax { line, .. } => assert!(line >= 3, "{text}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn nested_merge_keys_resolve_fully() {
        let text = "base: &base\n  a: 1\n  b: 1\nmid: &mid\n  <<: *base\n  b: 2\n  c: 2\nleaf:\n  <<: [*mid]\n  c: 3\n";
        let mut v = Value::Mapping(parse("f", text).expect("parses"));
        resolve_merges(&mut v, "").expect("merges");
        let leaf = &v["leaf"];
        assert_eq!(leaf["a"], Value::from(1));
        assert_eq!(leaf["b"], Value::from(2));
        assert_eq!(leaf["c"], Value::from(3));
        assert!(leaf.get("<<").is_none());
    }

    #[test]
    fn extensions_stripped_but_not_in_user_maps() {
        let text = "x-top: 1\nservices:\n  x-svc-named:\n    image: a\n    x-ext: 1\n    labels:\n      x-keep: v\n    deploy:\n      x-ext: 1\n";
        let mut v = Value::Mapping(parse("f", text).expect("parses"));
        strip_extensions(&mut v, None, false);
        assert!(v.get("x-top").is_none());
        let svc = &v["services"]["x-svc-named"];
        assert!(svc.get("x-ext").is_none());
        assert!(svc["labels"].get("x-keep").is_some());
        assert!(svc["deploy"].get("x-ext").is_none());
    }

    #[test]
    fn hostile_documents_fail_cleanly() {
        // Exponential alias expansion ("billion laughs") and very deep nesting are refused by
        // the parser instead of exhausting memory or the stack.
        let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = (b'a' + (i - 1) as u8) as char;
            let cur = (b'a' + i as u8) as char;
            laughs.push_str(&format!(
                "{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert!(parse("laughs.yml", &laughs).is_err());
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse("deep.yml", &deep).is_err());
    }
}
