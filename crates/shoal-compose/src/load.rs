//! Loading: each file is parsed, merge keys applied, `x-` fields dropped, ignored keys
//! reported, variables substituted and the result checked against the typed model; then the
//! files are merged in order, relative paths resolved and cross-references validated. Nothing
//! here touches the cluster.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::env::Env;
use crate::error::ComposeError;
use crate::lenient::{SUBPATH_MARK, join};
use crate::merge::merge;
use crate::model::Project;
use crate::yaml;

/// Service keys `docker stack deploy` accepts but ignores, with a warning.
const UNSUPPORTED: &[&str] = &[
    "build",
    "cgroup_parent",
    "cgroupns_mode",
    "cpu_count",
    "cpu_percent",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpuset",
    "depends_on",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "memswap_limit",
    "network_mode",
    "pid",
    "platform",
    "privileged",
    "profiles",
    "pull_policy",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
    "volumes_from",
];

/// Service keys that are deprecated: ignored with an explanation.
const DEPRECATED: &[(&str, &str)] = &[
    (
        "container_name",
        "Setting the container name is not supported.",
    ),
    (
        "expose",
        "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
    ),
];

/// Service keys that make `docker stack deploy` fail.
const FORBIDDEN: &[(&str, &str)] = &[
    ("extends", "Support for `extends` is not implemented yet."),
    (
        "volume_driver",
        "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.",
    ),
];

/// Loads and merges compose files. `files` are (path, contents) in order; relative paths in the
/// files are resolved against the first file's directory. `env` supplies the variables (see
/// [`Env::for_compose_file`]).
pub fn load<P: AsRef<Path>, S: AsRef<str>>(
    files: &[(P, S)],
    env: &Env,
) -> Result<Project, ComposeError> {
    let (first, _) = files.first().ok_or(ComposeError::NoFiles)?;
    let working_dir = match first.as_ref().parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Absolute, as docker resolves it: `stack config` output then works from any directory.
    let working_dir = std::path::absolute(&working_dir).unwrap_or(working_dir);
    let mut unsupported = BTreeSet::new();
    let mut deprecated = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut merged = Value::Mapping(Mapping::new());
    for (path, text) in files {
        let name = path.as_ref().display().to_string();
        let normalized = load_one(
            &name,
            text.as_ref(),
            env,
            &mut unsupported,
            &mut deprecated,
            &mut missing,
        )
        .map_err(|e| e.in_file(&name))?;
        merge(&mut merged, normalized, &mut Vec::new());
    }
    // With a single file, problems found after merging still belong to that file.
    let only_file = match files {
        [(p, _)] => Some(p.as_ref().display().to_string()),
        _ => None,
    };
    let in_only = |e: ComposeError| match &only_file {
        Some(f) => e.in_file(f),
        None => e,
    };
    let mut project: Project = deserialize(merged).map_err(in_only)?;
    project.working_dir = working_dir;
    project.env = env.clone();
    for var in &missing {
        project.warnings.push(format!(
            "The {var:?} variable is not set. Defaulting to a blank string."
        ));
    }
    if !unsupported.is_empty() {
        let list: Vec<&str> = unsupported.iter().map(String::as_str).collect();
        project
            .warnings
            .push(format!("Ignoring unsupported options: {}", list.join(", ")));
    }
    if !deprecated.is_empty() {
        let mut msg = String::from("Ignoring deprecated options:\n");
        for key in &deprecated {
            if let Some((_, why)) = DEPRECATED.iter().find(|(k, _)| k == key) {
                msg.push_str(&format!("\n{key}: {why}\n"));
            }
        }
        project.warnings.push(msg);
    }
    resolve_paths(&mut project);
    resolve_environment(&mut project);
    crate::validate::validate(&project).map_err(in_only)?;
    Ok(project)
}

/// Reads the files from disk and loads them with the process environment plus the `.env`
/// file next to the first one (what `stack deploy -c a.yml -c b.yml` and `stack config` do).
pub fn load_paths(paths: &[PathBuf]) -> Result<Project, ComposeError> {
    let first = paths.first().ok_or(ComposeError::NoFiles)?;
    let env = Env::for_compose_file(first)?;
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|source| ComposeError::Io {
            path: p.clone(),
            source,
        })?;
        files.push((p.clone(), text));
    }
    load(&files, &env)
}

/// Everything that can be done to one file alone; returns its normalized form.
fn load_one(
    name: &str,
    text: &str,
    env: &Env,
    unsupported: &mut BTreeSet<String>,
    deprecated: &mut BTreeSet<String>,
    missing: &mut BTreeSet<String>,
) -> Result<Value, ComposeError> {
    let mut value = Value::Mapping(yaml::parse(name, text)?);
    yaml::resolve_merges(&mut value, "")?;
    yaml::strip_extensions(&mut value, None, false);
    if let Some(Value::Mapping(services)) = value.get_mut("services") {
        for (svc_name, svc) in services.iter_mut() {
            let Value::Mapping(svc) = svc else { continue };
            let svc_name = yaml::key_string(svc_name);
            for (key, why) in FORBIDDEN {
                if svc.contains_key(*key) {
                    return Err(ComposeError::Forbidden(format!(
                        "{name}: services.{svc_name}.{key}: {why}"
                    )));
                }
            }
            for key in UNSUPPORTED {
                if svc.contains_key(*key) {
                    unsupported.insert(key.to_string());
                    // `restart` is still used to derive a restart policy.
                    if *key != "restart" {
                        svc.remove(*key);
                    }
                }
            }
            for (key, _) in DEPRECATED {
                if svc.remove(*key).is_some() {
                    deprecated.insert(key.to_string());
                }
            }
        }
    }
    yaml::interpolate_values(&mut value, "", env, missing)?;
    let project: Project = deserialize(value)?;
    serde_yaml::to_value(&project).map_err(|e| ComposeError::schema(".", e.to_string()))
}

/// Typed deserialization with the key path of the first problem.
fn deserialize(value: Value) -> Result<Project, ComposeError> {
    serde_path_to_error::deserialize::<_, Project>(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        schema_error(&path, &msg)
    })
}

/// Builds a schema error, folding in a sub-path carried by the message and rewording serde's
/// unknown/missing field messages to name the key.
pub(crate) fn schema_error(path: &str, msg: &str) -> ComposeError {
    let (mut path, mut msg) = (path.to_string(), msg.to_string());
    if let Some(rest) = msg.strip_prefix(SUBPATH_MARK)
        && let Some((sub, m)) = rest.split_once(SUBPATH_MARK)
    {
        path = join(&path, sub);
        msg = m.to_string();
    }
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((key, _)) = rest.split_once('`')
    {
        // The path of an unknown field already ends with the key itself.
        if !(path == key || path.ends_with(&format!(".{key}"))) {
            path = join(&path, key);
        }
        msg = "unknown key".to_string();
    } else if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some((key, _)) = rest.split_once('`')
    {
        path = join(&path, key);
        msg = "is required".to_string();
    }
    if path.is_empty() {
        path = ".".into();
    }
    ComposeError::schema(path, msg)
}

/// Makes host paths absolute: bind mount sources, secret/config files, env files.
fn resolve_paths(project: &mut Project) {
    let home = project.env.get("HOME").map(PathBuf::from);
    let wd = project.working_dir.clone();
    let abs = |p: &str| -> String { absolute(&wd, home.as_deref(), p) };
    for svc in project.services.values_mut() {
        for v in &mut svc.volumes {
            if v.kind == "bind"
                && let Some(src) = &v.source
            {
                v.source = Some(abs(src));
            }
        }
        for f in &mut svc.env_file {
            f.path = abs(&f.path);
        }
    }
    for s in project.secrets.values_mut() {
        if let Some(f) = &s.file {
            s.file = Some(abs(f));
        }
    }
    for c in project.configs.values_mut() {
        if let Some(f) = &c.file {
            c.file = Some(abs(f));
        }
    }
}

/// `p` relative to `wd` (with `~` as home), normalized lexically.
fn absolute(wd: &Path, home: Option<&Path>, p: &str) -> String {
    let joined = if let Some(rest) = p
        .strip_prefix("~/")
        .or(if p == "~" { Some("") } else { None })
        && let Some(h) = home
    {
        h.join(rest)
    } else {
        wd.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out.display().to_string()
}

/// `environment: {KEY: }` takes KEY from the environment, as Docker does.
fn resolve_environment(project: &mut Project) {
    let env = project.env.clone();
    for svc in project.services.values_mut() {
        for (k, v) in svc.environment.iter_mut() {
            if v.is_none()
                && let Some(val) = env.get(k)
            {
                *v = Some(val.to_string());
            }
        }
    }
}

impl Project {
    /// The merged, interpolated project as YAML (what `shoal stack config` prints). Literal
    /// `$` are written as `$$`, so the output is itself a compose file meaning the same.
    pub fn to_yaml(&self) -> Result<String, ComposeError> {
        let mut value =
            serde_yaml::to_value(self).map_err(|e| ComposeError::schema(".", e.to_string()))?;
        escape_dollars(&mut value);
        serde_yaml::to_string(&value).map_err(|e| ComposeError::schema(".", e.to_string()))
    }
}

fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, v)| escape_dollars(v)),
        Value::Sequence(seq) => seq.iter_mut().for_each(escape_dollars),
        Value::Tagged(t) => escape_dollars(&mut t.value),
        _ => {}
    }
}
