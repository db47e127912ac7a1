//! Checks on the merged project that no single key can make: allowed values, combinations
//! swarm refuses, and references to networks, volumes, secrets and configs that must exist.

use crate::error::ComposeError;
use crate::model::{Project, Service, UpdateConfig};

pub fn validate(project: &Project) -> Result<(), ComposeError> {
    if let Some(v) = &project.version {
        let major = v.trim().split('.').next().unwrap_or("");
        if matches!(major, "1" | "2") || major.parse::<u32>().is_err() {
            return Err(ComposeError::schema(
                "version",
                format!(
                    "unsupported Compose file version {v:?}: stack deploy needs version 3.x (or no version, the Compose Specification)"
                ),
            ));
        }
    }
    for (name, svc) in &project.services {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ComposeError::schema(
                format!("services.{name}"),
                "invalid service name (letters, digits, '_', '.' and '-' only)",
            ));
        }
        validate_service(name, svc)?;
        validate_references(project, name, svc)?;
    }
    for (name, net) in &project.networks {
        if net.external
            && (net.driver.is_some()
                || !net.driver_opts.is_empty()
                || net.ipam.is_some()
                || net.attachable
                || net.internal
                || !net.labels.is_empty())
        {
            return Err(ComposeError::schema(
                format!("networks.{name}"),
                "an external network cannot also set driver, driver_opts, ipam, attachable, internal or labels",
            ));
        }
    }
    for (name, vol) in &project.volumes {
        if vol.external && (vol.driver.is_some() || !vol.driver_opts.is_empty()) {
            return Err(ComposeError::schema(
                format!("volumes.{name}"),
                "an external volume cannot also set driver or driver_opts",
            ));
        }
    }
    for (name, s) in &project.secrets {
        let sources = [s.external, s.file.is_some(), s.environment.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        let path = format!("secrets.{name}");
        if sources > 1 {
            return Err(ComposeError::schema(
                path,
                "only one of file, environment and external may be set",
            ));
        }
        if sources == 0 && s.driver.is_none() {
            return Err(ComposeError::schema(
                path,
                "needs one of file, environment, driver or external",
            ));
        }
    }
    for (name, c) in &project.configs {
        let sources = [
            c.external,
            c.file.is_some(),
            c.content.is_some(),
            c.environment.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let path = format!("configs.{name}");
        if sources != 1 {
            return Err(ComposeError::schema(
                path,
                "needs exactly one of file, content, environment or external",
            ));
        }
    }
    Ok(())
}

fn one_of(path: String, value: &Option<String>, allowed: &[&str]) -> Result<(), ComposeError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ComposeError::schema(
            path,
            format!(
                "invalid value {v:?} (expected one of: {})",
                allowed.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

fn validate_service(name: &str, svc: &Service) -> Result<(), ComposeError> {
    let p = |k: &str| format!("services.{name}.{k}");
    if svc.image.as_deref().is_none_or(str::is_empty) {
        return Err(ComposeError::schema(
            p("image"),
            "is required (stack deploy runs images; it does not build them)",
        ));
    }
    if let Some(r) = &svc.restart {
        let ok = matches!(
            r.as_str(),
            "no" | "always" | "unless-stopped" | "on-failure"
        ) || r
            .strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u64>().is_ok());
        if !ok {
            return Err(ComposeError::schema(
                p("restart"),
                format!("invalid restart policy {r:?}"),
            ));
        }
    }
    if let Some(h) = &svc.healthcheck
        && h.disable
        && h.test
            .as_ref()
            .is_some_and(|t| t.first().is_some_and(|c| c != "NONE"))
    {
        return Err(ComposeError::schema(
            p("healthcheck"),
            "test and disable cannot both be set",
        ));
    }
    if let Some(l) = &svc.logging
        && l.driver.is_none()
        && !l.options.is_empty()
    {
        return Err(ComposeError::schema(
            p("logging.driver"),
            "is required when logging options are set",
        ));
    }
    for (i, t) in svc.tmpfs.iter().enumerate() {
        if !t.starts_with('/') {
            return Err(ComposeError::schema(
                format!("services.{name}.tmpfs[{i}]"),
                format!("{t:?} is not an absolute path"),
            ));
        }
    }
    let Some(d) = &svc.deploy else { return Ok(()) };
    one_of(
        p("deploy.mode"),
        &d.mode,
        &["replicated", "global", "replicated-job", "global-job"],
    )?;
    let mode = d.mode.as_deref().unwrap_or("replicated");
    if d.replicas.is_some() && !matches!(mode, "replicated" | "replicated-job") {
        return Err(ComposeError::schema(
            p("deploy.replicas"),
            format!("replicas cannot be used with mode {mode:?}"),
        ));
    }
    if let Some(pl) = &d.placement {
        if pl.max_replicas_per_node.is_some() && matches!(mode, "global" | "global-job") {
            return Err(ComposeError::schema(
                p("deploy.placement.max_replicas_per_node"),
                format!("cannot be used with mode {mode:?}"),
            ));
        }
        for (i, c) in pl.constraints.iter().enumerate() {
            if !(c.contains("==") || c.contains("!=")) {
                return Err(ComposeError::schema(
                    format!("services.{name}.deploy.placement.constraints[{i}]"),
                    format!("invalid constraint {c:?} (expected key==value or key!=value)"),
                ));
            }
        }
        for (i, pref) in pl.preferences.iter().enumerate() {
            if pref.spread.is_empty() {
                return Err(ComposeError::schema(
                    format!("services.{name}.deploy.placement.preferences[{i}].spread"),
                    "must not be empty",
                ));
            }
        }
    }
    if let Some(rp) = &d.restart_policy {
        one_of(
            p("deploy.restart_policy.condition"),
            &rp.condition,
            &["none", "on-failure", "any"],
        )?;
    }
    for (key, uc) in [
        ("update_config", &d.update_config),
        ("rollback_config", &d.rollback_config),
    ] {
        if let Some(uc) = uc {
            validate_update(&p(&format!("deploy.{key}")), uc)?;
        }
    }
    one_of(
        p("deploy.endpoint_mode"),
        &d.endpoint_mode,
        &["vip", "dnsrr"],
    )?;
    if d.endpoint_mode.as_deref() == Some("dnsrr")
        && svc
            .ports
            .0
            .iter()
            .any(|port| port.mode.as_deref().unwrap_or("ingress") == "ingress")
    {
        return Err(ComposeError::schema(
            p("ports"),
            "ports published in ingress mode cannot be used with endpoint_mode dnsrr (use mode: host)",
        ));
    }
    Ok(())
}

fn validate_update(path: &str, uc: &UpdateConfig) -> Result<(), ComposeError> {
    one_of(
        format!("{path}.failure_action"),
        &uc.failure_action,
        &["pause", "continue", "rollback"],
    )?;
    one_of(
        format!("{path}.order"),
        &uc.order,
        &["stop-first", "start-first"],
    )?;
    if let Some(r) = uc.max_failure_ratio
        && !(0.0..=1.0).contains(&r)
    {
        return Err(ComposeError::schema(
            format!("{path}.max_failure_ratio"),
            format!("{r} is not between 0 and 1"),
        ));
    }
    Ok(())
}

fn validate_references(project: &Project, name: &str, svc: &Service) -> Result<(), ComposeError> {
    let undefined = |kind: &'static str, what: &str| ComposeError::Undefined {
        service: name.to_string(),
        kind,
        name: what.to_string(),
    };
    if let Some(nets) = &svc.networks {
        for net in nets.keys() {
            if net != "default" && !project.networks.contains_key(net) {
                return Err(undefined("network", net));
            }
        }
    }
    for v in &svc.volumes {
        if v.kind == "volume"
            && let Some(src) = &v.source
            && !project.volumes.contains_key(src)
        {
            return Err(undefined("volume", src));
        }
    }
    for s in &svc.secrets {
        if !project.secrets.contains_key(&s.source) {
            return Err(undefined("secret", &s.source));
        }
    }
    for c in &svc.configs {
        if !project.configs.contains_key(&c.source) {
            return Err(undefined("config", &c.source));
        }
    }
    Ok(())
}
