//! Variable substitution in compose values, as `docker stack deploy` does it:
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`,
//! `${VAR:+alt}`, `${VAR+alt}` and `$$` for a literal `$`. Defaults may themselves contain
//! variables. A variable that is unset (and has no default) becomes the empty string and is
//! reported back so the caller can warn about it.

use std::collections::BTreeSet;

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolateError {
    /// Bad syntax, e.g. `$1`, `${` without `}` or `${a b}`.
    InvalidFormat,
    /// `${VAR:?msg}` / `${VAR?msg}` with VAR missing; holds the full message.
    Required(String),
}

/// Expands `template`. Names of variables that were unset and defaulted to "" go to `missing`.
pub fn interpolate(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut BTreeSet<String>,
) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(template.len());
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(off) = template[i..].find('$') else {
            out.push_str(&template[i..]);
            break;
        };
        out.push_str(&template[i..i + off]);
        i += off + 1;
        match bytes.get(i) {
            Some(b'$') => {
                out.push('$');
                i += 1;
            }
            Some(b'{') => {
                let close = matching_brace(template, i).ok_or(InterpolateError::InvalidFormat)?;
                let inner = &template[i + 1..close];
                out.push_str(&expand_braced(inner, lookup, missing)?);
                i = close + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let end = name_end(template, i);
                let name = &template[i..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        missing.insert(name.to_string());
                    }
                }
                i = end;
            }
            _ => return Err(InterpolateError::InvalidFormat),
        }
    }
    Ok(out)
}

/// Index just past the variable name starting at `start`.
fn name_end(s: &str, start: usize) -> usize {
    s[start..]
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map(|(n, _)| start + n)
        .unwrap_or(s.len())
}

/// Index of the `}` closing the `{` at `open`, counting nested `${`.
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn expand_braced(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut BTreeSet<String>,
) -> Result<String, InterpolateError> {
    let first = inner
        .chars()
        .next()
        .ok_or(InterpolateError::InvalidFormat)?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(InterpolateError::InvalidFormat);
    }
    let end = name_end(inner, 0);
    let name = &inner[..end];
    let rest = &inner[end..];
    let value = lookup(name);
    if rest.is_empty() {
        return Ok(match value {
            Some(v) => v,
            None => {
                missing.insert(name.to_string());
                String::new()
            }
        });
    }
    let (colon, op_and_word) = match rest.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut chars = op_and_word.chars();
    let op = chars.next().ok_or(InterpolateError::InvalidFormat)?;
    let word = chars.as_str();
    // With ':' an empty value counts as unset.
    let present = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    match op {
        '-' => {
            if present {
                Ok(value.unwrap_or_default())
            } else {
                interpolate(word, lookup, missing)
            }
        }
        '+' => {
            if present {
                interpolate(word, lookup, missing)
            } else {
                Ok(String::new())
            }
        }
        '?' => {
            if present {
                Ok(value.unwrap_or_default())
            } else {
                let msg = interpolate(word, lookup, missing)?;
                Err(InterpolateError::Required(if msg.is_empty() {
                    format!("required variable {name} is missing a value")
                } else {
                    format!("required variable {name} is missing a value: {msg}")
                }))
            }
        }
        _ => Err(InterpolateError::InvalidFormat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &str) -> Result<(String, BTreeSet<String>), InterpolateError> {
        let lookup = |k: &str| match k {
            "SET" => Some("value".to_string()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".to_string()),
            _ => None,
        };
        let mut missing = BTreeSet::new();
        interpolate(t, &lookup, &mut missing).map(|s| (s, missing))
    }

    fn ok(t: &str) -> String {
        run(t).expect("interpolates").0
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(ok("nothing here"), "nothing here");
        assert_eq!(ok(""), "");
    }

    #[test]
    fn dollar_name() {
        assert_eq!(ok("$SET"), "value");
        assert_eq!(ok("a-$SET-b"), "a-value-b");
        assert_eq!(ok("$PORT:80"), "8080:80");
    }

    #[test]
    fn braced_name() {
        assert_eq!(ok("${SET}x"), "valuex");
        assert_eq!(ok("${PORT}:80/udp"), "8080:80/udp");
    }

    #[test]
    fn unset_becomes_empty_and_is_reported() {
        let (s, missing) = run("a${NOPE}b$ALSO_NOPE").expect("interpolates");
        assert_eq!(s, "ab");
        assert_eq!(
            missing.into_iter().collect::<Vec<_>>(),
            vec!["ALSO_NOPE".to_string(), "NOPE".to_string()]
        );
    }

    #[test]
    fn colon_dash_default_applies_when_unset_or_empty() {
        assert_eq!(ok("${NOPE:-d}"), "d");
        assert_eq!(ok("${EMPTY:-d}"), "d");
        assert_eq!(ok("${SET:-d}"), "value");
    }

    #[test]
    fn dash_default_applies_only_when_unset() {
        assert_eq!(ok("${NOPE-d}"), "d");
        assert_eq!(ok("${EMPTY-d}"), "");
        assert_eq!(ok("${SET-d}"), "value");
    }

    #[test]
    fn default_may_contain_colons_and_variables() {
        assert_eq!(ok("${REGISTRY:-127.0.0.1:5000}/img"), "127.0.0.1:5000/img");
        assert_eq!(ok("${NOPE:-${SET}}"), "value");
        assert_eq!(ok("${NOPE:-$PORT}"), "8080");
    }

    #[test]
    fn colon_question_errors_when_unset_or_empty() {
        assert_eq!(
            run("${NOPE:?set NOPE please}"),
            Err(InterpolateError::Required(
                "required variable NOPE is missing a value: set NOPE please".into()
            ))
        );
        assert!(matches!(
            run("${EMPTY:?x}"),
            Err(InterpolateError::Required(_))
        ));
        assert_eq!(ok("${SET:?x}"), "value");
    }

    #[test]
    fn question_errors_only_when_unset() {
        assert!(matches!(
            run("${NOPE?x}"),
            Err(InterpolateError::Required(_))
        ));
        assert_eq!(ok("${EMPTY?x}"), "");
        assert_eq!(
            run("${NOPE?}"),
            Err(InterpolateError::Required(
                "required variable NOPE is missing a value".into()
            ))
        );
    }

    #[test]
    fn plus_alternative() {
        assert_eq!(ok("${SET:+alt}"), "alt");
        assert_eq!(ok("${EMPTY:+alt}"), "");
        assert_eq!(ok("${EMPTY+alt}"), "alt");
        assert_eq!(ok("${NOPE+alt}"), "");
    }

    #[test]
    fn double_dollar_escapes() {
        assert_eq!(ok("$$"), "$");
        assert_eq!(ok("echo $$HOME"), "echo $HOME");
        assert_eq!(ok("$${SET}"), "${SET}");
    }

    #[test]
    fn invalid_forms_are_errors() {
        for t in [
            "$", "$1", "cost $ 5", "${", "${SET", "${}", "${1A}", "${a b}", "${SET:x}",
        ] {
            assert_eq!(run(t), Err(InterpolateError::InvalidFormat), "{t}");
        }
    }
}
