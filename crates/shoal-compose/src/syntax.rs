//! Short-syntax parsers for service ports, volumes and secret/config references, and the
//! serde glue that accepts either the short string or the long mapping for each.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_yaml::Value;

use crate::lenient::{self, from_long, nest, scalar_string, type_name};

// ---------------------------------------------------------------------------------------------
// Ports

/// One published or exposed port of a service (the long syntax; short entries expand to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    #[serde(deserialize_with = "port_number")]
    pub target: u16,
    #[serde(
        default,
        deserialize_with = "opt_port_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub published: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Accepted for compatibility; swarm services cannot bind to one host address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

fn parse_port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    match t.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(format!("invalid port {s:?}")),
    }
}

fn port_value(v: &Value) -> Result<u16, String> {
    match v {
        Value::Number(n) => parse_port(&n.to_string()),
        Value::String(s) => parse_port(s),
        other => Err(format!("must be a port number, not {}", type_name(other))),
    }
}

fn port_number<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = Value::deserialize(d)?;
    port_value(&v).map_err(D::Error::custom)
}

fn opt_port_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        // An empty string (e.g. an unset variable) means "not published".
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => port_value(&v).map(Some).map_err(D::Error::custom),
    }
}

/// Parses `a` or `a-b` into an inclusive range.
fn port_range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_port(a)?, parse_port(b)?);
            if a > b {
                return Err(format!("invalid port range {s:?}"));
            }
            Ok((a, b))
        }
        None => parse_port(s).map(|p| (p, p)),
    }
}

/// Parses the short syntax: `[[host_ip:][published]:]target[/protocol]`, with ranges.
pub fn parse_port_spec(spec: &str) -> Result<Vec<ServicePort>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, Some(p)),
        None => (spec, None),
    };
    if let Some(p) = protocol
        && !matches!(p, "tcp" | "udp" | "sctp")
    {
        return Err(format!("invalid protocol {p:?} in port {spec:?}"));
    }
    // An IPv6 host address is written in brackets.
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once("]:")
            .ok_or_else(|| format!("invalid port {spec:?}"))?;
        (Some(ip.to_string()), after)
    } else {
        (None, rest)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, target) = match parts.as_slice() {
        [t] => (host_ip, None, *t),
        [p, t] => (host_ip, Some(*p), *t),
        [ip, p, t] if host_ip.is_none() => (Some(ip.to_string()), Some(*p), *t),
        _ => return Err(format!("invalid port {spec:?}")),
    };
    let published = published.filter(|p| !p.is_empty());
    let (t0, t1) = port_range(target)?;
    let count = (t1 - t0) as usize + 1;
    let pub_range = match published {
        Some(p) => {
            let (p0, p1) = port_range(p)?;
            if (p1 - p0) as usize + 1 != count {
                return Err(format!(
                    "invalid port {spec:?}: published and target port ranges differ in length"
                ));
            }
            Some(p0)
        }
        None => None,
    };
    Ok((0..count)
        .map(|i| ServicePort {
            target: t0 + i as u16,
            published: pub_range.map(|p0| p0 + i as u16),
            protocol: Some(protocol.unwrap_or("tcp").to_string()),
            mode: Some("ingress".to_string()),
            name: None,
            host_ip: host_ip.clone(),
            app_protocol: None,
        })
        .collect())
}

/// `ports:` — each entry short or long; short entries with ranges expand to several ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Ports(pub Vec<ServicePort>);

struct PortEntry(Vec<ServicePort>);

impl<'de> Deserialize<'de> for PortEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let ports = match v {
            Value::String(s) => parse_port_spec(&s),
            Value::Number(n) => parse_port_spec(&n.to_string()),
            m @ Value::Mapping(_) => from_long::<ServicePort>(m).and_then(|p| {
                validate_port(&p)?;
                Ok(vec![p])
            }),
            other => Err(format!(
                "must be a port string, number or mapping, not {}",
                type_name(&other)
            )),
        };
        ports.map(PortEntry).map_err(D::Error::custom)
    }
}

fn validate_port(p: &ServicePort) -> Result<(), String> {
    if let Some(proto) = &p.protocol
        && !matches!(proto.as_str(), "tcp" | "udp" | "sctp")
    {
        return Err(nest("protocol", &format!("invalid protocol {proto:?}")));
    }
    if let Some(mode) = &p.mode
        && !matches!(mode.as_str(), "ingress" | "host")
    {
        return Err(nest(
            "mode",
            &format!("invalid port mode {mode:?} (expected ingress or host)"),
        ));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Option::<Vec<PortEntry>>::deserialize(d)?;
        Ok(Ports(
            entries
                .unwrap_or_default()
                .into_iter()
                .flat_map(|e| e.0)
                .collect(),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Volumes (service mounts)

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub create_host_path: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeMountOptions {
    #[serde(
        default,
        deserialize_with = "lenient::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub nocopy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    #[serde(
        default,
        deserialize_with = "opt_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<i64>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_mode",
        skip_serializing_if = "Option::is_none"
    )]
    pub mode: Option<u32>,
}

/// A size in bytes: a number or a string such as "64M".
pub fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid size {n}"))),
        Some(Value::String(s)) => crate::units::parse_bytes(&s)
            .map(Some)
            .map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!(
            "must be a size, not {}",
            type_name(&other)
        ))),
    }
}

/// One mount of a service (the long syntax; short entries are converted to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceVolume {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<String>,
    pub target: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeMountOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

/// True when a short-syntax source is a host path rather than a volume name.
pub fn is_host_path(src: &str) -> bool {
    src.starts_with('/') || src.starts_with('.') || src.starts_with('~')
}

/// Parses `target`, `source:target` or `source:target:options` (options: ro, rw, z, Z,
/// nocopy, and a bind propagation such as rshared).
pub fn parse_volume_spec(spec: &str) -> Result<ServiceVolume, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, o] => (Some(*s), *t, Some(*o)),
        _ => return Err(format!("invalid volume specification {spec:?}")),
    };
    if target.is_empty() || !target.starts_with('/') {
        return Err(format!(
            "invalid volume specification {spec:?}: the target must be an absolute path"
        ));
    }
    let source = source.filter(|s| !s.is_empty());
    let bind = source.is_some_and(is_host_path);
    let mut vol = ServiceVolume {
        kind: if bind { "bind" } else { "volume" }.to_string(),
        source: source.map(str::to_string),
        target: target.to_string(),
        read_only: None,
        consistency: None,
        bind: None,
        volume: None,
        tmpfs: None,
    };
    for opt in opts.into_iter().flat_map(|o| o.split(',')) {
        match opt {
            "ro" => vol.read_only = Some(true),
            "rw" => vol.read_only = Some(false),
            "z" | "Z" => {
                vol.bind.get_or_insert_with(Default::default).selinux = Some(opt.to_string())
            }
            "nocopy" if !bind => {
                vol.volume.get_or_insert_with(Default::default).nocopy = Some(true)
            }
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" if bind => {
                vol.bind.get_or_insert_with(Default::default).propagation = Some(opt.to_string())
            }
            "consistent" | "cached" | "delegated" => vol.consistency = Some(opt.to_string()),
            other => {
                return Err(format!(
                    "invalid volume specification {spec:?}: unknown option {other:?}"
                ));
            }
        }
    }
    Ok(vol)
}

fn validate_volume(v: &ServiceVolume) -> Result<(), String> {
    match v.kind.as_str() {
        "volume" | "bind" | "tmpfs" | "npipe" | "cluster" => {}
        other => {
            return Err(nest(
                "type",
                &format!("invalid mount type {other:?} (expected volume, bind or tmpfs)"),
            ));
        }
    }
    if !v.target.starts_with('/') {
        return Err(nest(
            "target",
            &format!("{:?} is not an absolute path", v.target),
        ));
    }
    if v.kind == "bind" && v.source.as_deref().is_none_or(str::is_empty) {
        return Err(nest("source", "a bind mount needs a source"));
    }
    if v.kind == "tmpfs" && v.source.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(nest("source", "a tmpfs mount takes no source"));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for VolumeEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let vol = match v {
            Value::String(s) => parse_volume_spec(&s),
            m @ Value::Mapping(_) => from_long::<ServiceVolume>(m),
            other => Err(format!(
                "must be a volume string or mapping, not {}",
                type_name(&other)
            )),
        }
        .and_then(|v| validate_volume(&v).map(|_| v));
        vol.map(VolumeEntry).map_err(D::Error::custom)
    }
}

/// Helper for `volumes:` entries in either syntax.
pub struct VolumeEntry(pub ServiceVolume);

pub fn service_volumes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ServiceVolume>, D::Error> {
    let entries = Option::<Vec<VolumeEntry>>::deserialize(d)?;
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.0)
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Secret and config references

/// A service's use of a secret or config (long syntax; `- name` is `{source: name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileReference {
    #[serde(deserialize_with = "required_string")]
    pub source: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub target: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub uid: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub gid: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_mode",
        skip_serializing_if = "Option::is_none"
    )]
    pub mode: Option<u32>,
}

fn required_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    let s = scalar_string(&v).map_err(D::Error::custom)?;
    if s.is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(s)
}

struct FileRefEntry(FileReference);

impl<'de> Deserialize<'de> for FileRefEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let r = match v {
            Value::String(s) if !s.is_empty() => Ok(FileReference {
                source: s,
                target: None,
                uid: None,
                gid: None,
                mode: None,
            }),
            m @ Value::Mapping(_) => from_long::<FileReference>(m),
            other => Err(format!(
                "must be a name or a mapping, not {}",
                if other == Value::String(String::new()) {
                    "an empty string"
                } else {
                    type_name(&other)
                }
            )),
        };
        r.map(FileRefEntry).map_err(D::Error::custom)
    }
}

pub fn file_references<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FileReference>, D::Error> {
    let entries = Option::<Vec<FileRefEntry>>::deserialize(d)?;
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(target: u16, published: Option<u16>, proto: &str) -> ServicePort {
        ServicePort {
            target,
            published,
            protocol: Some(proto.into()),
            mode: Some("ingress".into()),
            name: None,
            host_ip: None,
            app_protocol: None,
        }
    }

    #[test]
    fn short_ports() {
        assert_eq!(parse_port_spec("80"), Ok(vec![port(80, None, "tcp")]));
        assert_eq!(
            parse_port_spec("8080:80"),
            Ok(vec![port(80, Some(8080), "tcp")])
        );
        assert_eq!(
            parse_port_spec("53:53/udp"),
            Ok(vec![port(53, Some(53), "udp")])
        );
        assert_eq!(
            parse_port_spec("9090-9091:8080-8081"),
            Ok(vec![
                port(8080, Some(9090), "tcp"),
                port(8081, Some(9091), "tcp")
            ])
        );
        let with_ip = parse_port_spec("127.0.0.1:8001:8001").expect("parses");
        assert_eq!(with_ip[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(with_ip[0].published, Some(8001));
        let v6 = parse_port_spec("[::1]:8002:80").expect("parses");
        assert_eq!(v6[0].host_ip.as_deref(), Some("::1"));
        assert_eq!(
            parse_port_spec("127.0.0.1::5000").expect("parses")[0].published,
            None
        );
    }

    #[test]
    fn bad_short_ports() {
        assert_eq!(
            parse_port_spec("80800"),
            Err("invalid port \"80800\"".into())
        );
        assert_eq!(
            parse_port_spec("8080:80800"),
            Err("invalid port \"80800\"".into())
        );
        assert!(parse_port_spec("0:80").is_err());
        assert!(parse_port_spec("80/xtp").is_err());
        assert!(parse_port_spec("8000-8002:80-81").is_err());
        assert!(parse_port_spec("a:b:c:d").is_err());
        assert!(parse_port_spec("").is_err());
    }

    #[test]
    fn short_volumes() {
        let v = parse_volume_spec("data:/var/lib/data:ro").expect("parses");
        assert_eq!(
            (v.kind.as_str(), v.source.as_deref(), v.read_only),
            ("volume", Some("data"), Some(true))
        );
        let b = parse_volume_spec("./conf:/etc/conf:ro,rshared").expect("parses");
        assert_eq!(b.kind, "bind");
        assert_eq!(
            b.bind.and_then(|b| b.propagation).as_deref(),
            Some("rshared")
        );
        let anon = parse_volume_spec("/scratch").expect("parses");
        assert_eq!((anon.kind.as_str(), anon.source), ("volume", None));
        let nc = parse_volume_spec("cache:/cache:nocopy").expect("parses");
        assert_eq!(nc.volume.and_then(|v| v.nocopy), Some(true));
        assert!(parse_volume_spec("data:relative").is_err());
        assert!(parse_volume_spec("data:/x:bogus").is_err());
        assert!(parse_volume_spec("a:/b:ro:extra").is_err());
    }
}
