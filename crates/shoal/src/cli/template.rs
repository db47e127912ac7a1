//! A small Go `text/template` subset over JSON values, for `--format`: `{{.A.B}}`, `{{.}}`,
//! `{{json .X}}`, `{{upper|lower|title|len .X}}`, `{{join .X ", "}}`, `{{index .X "k"}}`,
//! `{{println .X}}`, `{{if .X}}…{{else}}…{{end}}` and `{{range .X}}…{{end}}`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.A.B` (empty path = `.`).
    Field(Vec<String>),
    Str(String),
    Num(f64),
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    func: Option<String>,
    args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

/// Functions a caller adds to the built-in ones (config templates' `env`, `secret`, `config`).
pub type ExtraFuncs<'a> = &'a dyn Fn(&str, &[Value]) -> Option<Result<Value, String>>;

const FUNCS: &[&str] = &[
    "json", "upper", "lower", "title", "len", "join", "index", "println", "print", "pad",
    "truncate",
];

enum Tok {
    Text(String),
    Action(String),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Tok::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("template parsing error: unclosed action in {src:?}"))?;
        let mut inner = &after[..end];
        // `{{-` and `-}}` trim markers: accepted, whitespace trimming applied below.
        let trim_left = inner.starts_with("- ");
        let trim_right = inner.ends_with(" -");
        if trim_left {
            inner = &inner[2..];
            if let Some(Tok::Text(t)) = out.last_mut() {
                *t = t.trim_end().to_string();
            }
        }
        if trim_right {
            inner = &inner[..inner.len() - 2];
        }
        out.push(Tok::Action(inner.trim().to_string()));
        rest = &after[end + 2..];
        if trim_right {
            rest = rest.trim_start();
        }
    }
    if !rest.is_empty() {
        out.push(Tok::Text(rest.to_string()));
    }
    Ok(out)
}

fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut w = String::from("\"");
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => w.push('\n'),
                        Some('t') => w.push('\t'),
                        Some(o) => w.push(o),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    o => w.push(o),
                }
            }
            if !closed {
                return Err(format!(
                    "template parsing error: unterminated quoted string in {s:?}"
                ));
            }
            words.push(w);
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
            words.push(w);
        }
    }
    Ok(words)
}

fn parse_arg(w: &str) -> Result<Arg, String> {
    if let Some(s) = w.strip_prefix('"') {
        return Ok(Arg::Str(s.to_string()));
    }
    if w == "." {
        return Ok(Arg::Field(vec![]));
    }
    if let Some(path) = w.strip_prefix('.') {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("template parsing error: bad field {w:?}"));
        }
        return Ok(Arg::Field(parts));
    }
    if let Ok(n) = w.parse::<f64>() {
        return Ok(Arg::Num(n));
    }
    Err(format!(
        "template parsing error: function {w:?} not defined"
    ))
}

fn parse_pipeline(s: &str, extra: &[&str]) -> Result<Pipeline, String> {
    let words = split_words(s)?;
    let Some(first) = words.first() else {
        return Err("template parsing error: missing value for command".into());
    };
    if FUNCS.contains(&first.as_str()) || extra.contains(&first.as_str()) {
        let args = words[1..]
            .iter()
            .map(|w| parse_arg(w))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Pipeline {
            func: Some(first.clone()),
            args,
        });
    }
    if words.len() > 1 {
        return Err(format!(
            "template parsing error: can't give argument to non-function {first}"
        ));
    }
    Ok(Pipeline {
        func: None,
        args: vec![parse_arg(first)?],
    })
}

/// Parses nodes until one of `stops` (an `else` or `end`), which is returned.
fn parse_nodes(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
    stops: &[&str],
    extra: &[&str],
) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(tok) = toks.next() {
        match tok {
            Tok::Text(t) => nodes.push(Node::Text(t)),
            Tok::Action(a) => {
                if a.starts_with("/*") {
                    continue;
                }
                if stops.contains(&a.as_str()) {
                    return Ok((nodes, Some(a)));
                }
                if let Some(cond) = a.strip_prefix("if ") {
                    let p = parse_pipeline(cond, extra)?;
                    let (then, stop) = parse_nodes(toks, &["else", "end"], extra)?;
                    let otherwise = match stop.as_deref() {
                        Some("else") => {
                            let (e, stop) = parse_nodes(toks, &["end"], extra)?;
                            if stop.is_none() {
                                return Err(
                                    "template parsing error: unexpected EOF (missing {{end}})"
                                        .into(),
                                );
                            }
                            e
                        }
                        Some(_) => vec![],
                        None => {
                            return Err(
                                "template parsing error: unexpected EOF (missing {{end}})".into()
                            );
                        }
                    };
                    nodes.push(Node::If(p, then, otherwise));
                } else if let Some(over) = a.strip_prefix("range ") {
                    let p = parse_pipeline(over, extra)?;
                    let (body, stop) = parse_nodes(toks, &["end"], extra)?;
                    if stop.is_none() {
                        return Err(
                            "template parsing error: unexpected EOF (missing {{end}})".into()
                        );
                    }
                    nodes.push(Node::Range(p, body));
                } else if a == "end" || a == "else" {
                    return Err(format!("template parsing error: unexpected {{{{{a}}}}}"));
                } else {
                    nodes.push(Node::Action(parse_pipeline(&a, extra)?));
                }
            }
        }
    }
    Ok((nodes, None))
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        Template::parse_with(src, &[])
    }

    /// Parses with functions of the caller's (`extra`) besides the built-in ones; render such
    /// a template with [`Template::render_with`].
    pub fn parse_with(src: &str, extra: &[&str]) -> Result<Template, String> {
        let mut toks = lex(src)?.into_iter().peekable();
        let (nodes, stop) = parse_nodes(&mut toks, &[], extra)?;
        debug_assert!(stop.is_none());
        Ok(Template { nodes })
    }

    /// Renders against `data`. Missing fields print `<no value>`, as Go does for maps.
    pub fn render(&self, data: &Value) -> Result<String, String> {
        self.render_with(data, &|_, _| None)
    }

    /// Renders with the caller's functions: `extra(name, args)` answers `None` for names it
    /// does not know.
    pub fn render_with(&self, data: &Value, extra: ExtraFuncs<'_>) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out, extra)?;
        Ok(out)
    }
}

fn lookup<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = data;
    for p in path {
        v = match v {
            Value::Object(m) => m.get(p)?,
            _ => return None,
        };
    }
    Some(v)
}

/// A value as Go's `fmt.Print` shows it.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_string(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn eval_arg(a: &Arg, data: &Value) -> Value {
    match a {
        Arg::Field(p) => lookup(data, p).cloned().unwrap_or(Value::Null),
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(n) => serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    }
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

fn eval(p: &Pipeline, data: &Value, extra: ExtraFuncs<'_>) -> Result<Value, String> {
    let args: Vec<Value> = p.args.iter().map(|a| eval_arg(a, data)).collect();
    let one = || args.first().cloned().unwrap_or(Value::Null);
    let Some(f) = p.func.as_deref() else {
        return Ok(one());
    };
    let s = |v: &Value| go_string(v);
    Ok(match f {
        "json" => Value::String(serde_json::to_string(&one()).map_err(|e| e.to_string())?),
        "upper" => Value::String(s(&one()).to_uppercase()),
        "lower" => Value::String(s(&one()).to_lowercase()),
        "title" => Value::String(title_case(&s(&one()))),
        "len" => Value::from(match one() {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(x) => x.len(),
            Value::Null => 0,
            other => return Err(format!("error calling len: len of {}", s(&other))),
        }),
        "join" => {
            let sep = args.get(1).map(s).unwrap_or_default();
            match one() {
                Value::Array(a) => Value::String(a.iter().map(s).collect::<Vec<_>>().join(&sep)),
                Value::Null => Value::String(String::new()),
                other => Value::String(s(&other)),
            }
        }
        "index" => {
            let mut v = one();
            for k in &args[1.min(args.len())..] {
                v = match (&v, k) {
                    (Value::Object(m), Value::String(key)) => {
                        m.get(key).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(a), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| a.get(i as usize).cloned())
                        .ok_or_else(|| format!("error calling index: index {n} out of range"))?,
                    _ => return Err("error calling index: cannot index".into()),
                };
            }
            v
        }
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(s).collect::<Vec<_>>().join(" ")
        )),
        "print" => Value::String(args.iter().map(s).collect::<Vec<_>>().join(" ")),
        "pad" => {
            let l = args.get(1).and_then(Value::as_u64).unwrap_or(0) as usize;
            let r = args.get(2).and_then(Value::as_u64).unwrap_or(0) as usize;
            Value::String(format!("{}{}{}", " ".repeat(l), s(&one()), " ".repeat(r)))
        }
        "truncate" => {
            let n = args.get(1).and_then(Value::as_u64).unwrap_or(u64::MAX) as usize;
            Value::String(s(&one()).chars().take(n).collect())
        }
        other => match extra(other, &args) {
            Some(v) => v?,
            None => return Err(format!("function {other:?} not defined")),
        },
    })
}

fn render_nodes(
    nodes: &[Node],
    data: &Value,
    out: &mut String,
    extra: ExtraFuncs<'_>,
) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                // A missing map key prints "<no value>" in Go (but is falsy in `if`).
                let missing = p.func.is_none()
                    && matches!(p.args.first(), Some(Arg::Field(path)) if lookup(data, path).is_none());
                if missing {
                    out.push_str("<no value>");
                } else {
                    out.push_str(&go_string(&eval(p, data, extra)?));
                }
            }
            Node::If(p, then, otherwise) => {
                if truthy(&eval(p, data, extra)?) {
                    render_nodes(then, data, out, extra)?;
                } else {
                    render_nodes(otherwise, data, out, extra)?;
                }
            }
            Node::Range(p, body) => match eval(p, data, extra)? {
                Value::Array(items) => {
                    for it in &items {
                        render_nodes(body, it, out, extra)?;
                    }
                }
                Value::Object(m) => {
                    for v in m.values() {
                        render_nodes(body, v, out, extra)?;
                    }
                }
                Value::Null => {}
                other => return Err(format!("range can't iterate over {}", go_string(&other))),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_and_functions() {
        let v = json!({"ID": "abc", "Spec": {"Name": "web", "Labels": {"a": "1"}}, "Ports": ["80", "443"], "N": 3, "On": true});
        assert_eq!(r("{{.ID}}", &v), "abc");
        assert_eq!(r("id={{ .ID }} name={{.Spec.Name}}", &v), "id=abc name=web");
        assert_eq!(r("{{json .Spec.Labels}}", &v), r#"{"a":"1"}"#);
        assert_eq!(r("{{json .}}", &json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(r("{{.Missing}}", &v), "<no value>");
        assert_eq!(r("{{.Spec.Labels}}", &v), "map[a:1]");
        assert_eq!(
            r("{{upper .Spec.Name}}/{{title .Spec.Name}}", &v),
            "WEB/Web"
        );
        assert_eq!(r(r#"{{join .Ports ", "}}"#, &v), "80, 443");
        assert_eq!(r("{{len .Ports}} {{.N}} {{.On}}", &v), "2 3 true");
        assert_eq!(r(r#"{{index .Spec.Labels "a"}}"#, &v), "1");
        assert_eq!(r("{{.}}", &json!("x")), "x");
    }

    #[test]
    fn control_flow() {
        let v = json!({"L": [{"N": "a"}, {"N": "b"}], "T": true, "F": ""});
        assert_eq!(r("{{range .L}}[{{.N}}]{{end}}", &v), "[a][b]");
        assert_eq!(r("{{if .T}}yes{{else}}no{{end}}", &v), "yes");
        assert_eq!(r("{{if .F}}yes{{else}}no{{end}}", &v), "no");
        assert_eq!(r("{{if .Nope}}yes{{end}}!", &v), "!");
        assert_eq!(r("a {{- .T -}} b", &v), "atrueb");
    }

    #[test]
    fn errors_not_panics() {
        for bad in [
            "{{.A",
            "{{if .A}}x",
            "{{end}}",
            "{{nosuch .A}}",
            "{{.A .B}}",
            r#"{{join .A "x}}"#,
            "{{.A..B}}",
            "{{}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let t = Template::parse("{{range .A}}{{end}}").unwrap();
        assert!(t.render(&json!({"A": 5})).is_err());
    }
}
