//! Secrets and configs created with `--template-driver golang` are Go templates rendered on the
//! node for each task, as Docker does: fields `.Service`, `.Node`, `.Task`, and the functions
//! `env "VAR"` (the container's environment), `secret "TARGET"` and `config "TARGET"` (the
//! task's other secrets/configs, by target name). Rendering happens in memory; the result goes
//! to the container's tmpfs like any secret.

use crate::cli::template::Template;
use serde_json::{Value, json};
use shoal_types::Task;
use shoal_types::secret::TEMPLATE_DRIVER_GOLANG;
use shoal_types::task_spec::ContainerSpec;
use std::collections::BTreeMap;

/// What a template can read besides the task: this node and the task's other files.
pub struct TemplateInputs<'a> {
    pub node_hostname: &'a str,
    /// Secret files of the task by target name (unrendered data).
    pub secrets: BTreeMap<String, &'a [u8]>,
    /// Config files of the task by target name (unrendered data).
    pub configs: BTreeMap<String, &'a [u8]>,
}

fn context(task: &Task, node_hostname: &str) -> Value {
    json!({
        "Service": {
            "ID": task.service_id,
            "Name": task.service_annotations.name,
            "Labels": task.service_annotations.labels,
        },
        "Node": {
            "ID": task.node_id,
            "Hostname": node_hostname,
            "Platform": {"OS": std::env::consts::OS, "Architecture": std::env::consts::ARCH},
        },
        "Task": {
            "ID": task.id,
            "Name": task.annotations.name,
            "Slot": task.slot,
        },
    })
}

fn env_var(spec: Option<&ContainerSpec>, name: &str) -> String {
    // The last definition wins, as in the container itself.
    spec.map(|c| c.env.as_slice())
        .unwrap_or_default()
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
        .unwrap_or_default()
}

/// Renders `data` when `driver` asks for it; other data is returned unchanged. `what` names
/// the file in errors.
pub fn render(
    driver: Option<&str>,
    what: &str,
    data: &[u8],
    task: &Task,
    inputs: &TemplateInputs<'_>,
) -> Result<Vec<u8>, String> {
    match driver {
        None | Some("") => return Ok(data.to_vec()),
        Some(TEMPLATE_DRIVER_GOLANG) => {}
        Some(other) => {
            return Err(format!(
                "{what}: template driver {other:?} is not supported"
            ));
        }
    }
    let src = std::str::from_utf8(data).map_err(|_| format!("{what}: template is not UTF-8"))?;
    let tpl = Template::parse_with(src, &["env", "secret", "config"])
        .map_err(|e| format!("{what}: {e}"))?;
    let spec = task.spec.container_spec.as_ref();
    let lookup = |files: &BTreeMap<String, &[u8]>, kind: &str, key: &str| {
        files
            .get(key)
            .map(|d| Value::String(String::from_utf8_lossy(d).into_owned()))
            .ok_or_else(|| format!("{kind} {key:?} is not referenced by this task"))
    };
    let extra = |name: &str, args: &[Value]| {
        let key = args.first().map(crate::cli::template::go_string)?;
        Some(match name {
            "env" => Ok(Value::String(env_var(spec, &key))),
            "secret" => lookup(&inputs.secrets, "secret", &key),
            "config" => lookup(&inputs.configs, "config", &key),
            _ => return None,
        })
    };
    tpl.render_with(&context(task, inputs.node_hostname), &extra)
        .map(String::into_bytes)
        .map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        let mut t = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            slot: 2,
            node_id: "n1".into(),
            ..Default::default()
        };
        t.service_annotations.name = "web".into();
        t.annotations.name = "web.2.t1".into();
        t.spec.container_spec = Some(ContainerSpec {
            env: vec!["A=1".into(), "A=2".into()],
            ..Default::default()
        });
        t
    }

    fn inputs() -> TemplateInputs<'static> {
        TemplateInputs {
            node_hostname: "node1",
            secrets: BTreeMap::from([("pw".to_string(), &b"s3cret"[..])]),
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn renders_fields_and_functions() {
        let src =
            b"{{.Service.Name}} {{.Task.Slot}} {{.Node.Hostname}} {{env \"A\"}} {{secret \"pw\"}}";
        let out = render(Some("golang"), "cfg", src, &task(), &inputs()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "web 2 node1 2 s3cret");
    }

    #[test]
    fn plain_data_untouched_and_errors_named() {
        let raw = b"{{.Service.Name}}";
        assert_eq!(render(None, "c", raw, &task(), &inputs()).unwrap(), raw);
        let e = render(
            Some("golang"),
            "cfg",
            b"{{secret \"nope\"}}",
            &task(),
            &inputs(),
        );
        assert!(e.unwrap_err().contains("\"nope\" is not referenced"));
        let e = render(Some("jinja"), "cfg", raw, &task(), &inputs());
        assert!(e.unwrap_err().contains("not supported"));
    }
}
