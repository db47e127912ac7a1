//! Merging several compose files in order, on their normalized (long-syntax) form, with
//! Docker's rules: mappings merge key by key, scalars are overridden, `ports`, `volumes`,
//! `secrets` and `configs` merge entry by entry (by published port, target path and source),
//! `command`, `entrypoint`, `healthcheck.test`, `dns*`, `env_file` and `tmpfs` are replaced,
//! and other lists are appended without duplicates.

use serde_yaml::Value;

/// Merges `over` into `base`. `path` holds the keys from the top of the file down to here.
pub fn merge(base: &mut Value, over: Value, path: &mut Vec<String>) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => {
                        path.push(crate::yaml::key_string(&k));
                        merge(existing, v, path);
                        path.pop();
                    }
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) => match list_rule(path) {
            ListRule::Replace => *b = o,
            ListRule::ByKey(key) => {
                for item in o {
                    let k = key(&item);
                    match b.iter_mut().find(|x| key(x) == k) {
                        Some(slot) => *slot = item,
                        None => b.push(item),
                    }
                }
            }
            ListRule::Append => {
                for item in o {
                    if !b.contains(&item) {
                        b.push(item);
                    }
                }
            }
        },
        (b, o) => *b = o,
    }
}

enum ListRule {
    Replace,
    Append,
    ByKey(fn(&Value) -> Value),
}

fn list_rule(path: &[String]) -> ListRule {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["services", _, "ports"] => ListRule::ByKey(port_key),
        ["services", _, "volumes"] => ListRule::ByKey(|v| field(v, "target")),
        ["services", _, "secrets" | "configs"] => ListRule::ByKey(|v| field(v, "source")),
        [
            "services",
            _,
            "command" | "entrypoint" | "dns" | "dns_search" | "dns_opt" | "env_file" | "tmpfs",
        ] => ListRule::Replace,
        ["services", _, "healthcheck", "test"] => ListRule::Replace,
        _ => ListRule::Append,
    }
}

fn field(v: &Value, name: &str) -> Value {
    v.get(name).cloned().unwrap_or(Value::Null)
}

/// A published port is identified by its published number and protocol; an unpublished one by
/// its target.
fn port_key(v: &Value) -> Value {
    let proto = match field(v, "protocol") {
        Value::Null => Value::from("tcp"),
        p => p,
    };
    match v.get("published") {
        Some(p) if !p.is_null() => Value::Sequence(vec!["published".into(), p.clone(), proto]),
        _ => Value::Sequence(vec!["target".into(), field(v, "target"), proto]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).expect("valid yaml")
    }

    #[test]
    fn rules() {
        let mut base = y(
            "services:\n  web:\n    image: a\n    command: [x, y]\n    cap_add: [A]\n    ports:\n      - {target: 80, published: 8080, protocol: tcp}\n      - {target: 443, published: 8443, protocol: tcp}\n    volumes:\n      - {type: volume, source: d, target: /data}\n    environment: {A: '1', B: '2'}\n",
        );
        let over = y(
            "services:\n  web:\n    image: b\n    command: [z]\n    cap_add: [A, B]\n    ports:\n      - {target: 8080, published: 8080, protocol: tcp}\n    volumes:\n      - {type: volume, source: e, target: /data}\n    environment: {B: '3'}\n",
        );
        merge(&mut base, over, &mut Vec::new());
        let web = &base["services"]["web"];
        assert_eq!(web["image"], Value::from("b"));
        assert_eq!(web["command"], y("[z]"));
        assert_eq!(web["cap_add"], y("[A, B]"));
        assert_eq!(
            web["ports"],
            y(
                "- {target: 8080, published: 8080, protocol: tcp}\n- {target: 443, published: 8443, protocol: tcp}"
            )
        );
        assert_eq!(
            web["volumes"],
            y("- {type: volume, source: e, target: /data}")
        );
        assert_eq!(web["environment"], y("{A: '1', B: '3'}"));
    }
}
