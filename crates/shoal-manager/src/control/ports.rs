//! Ingress published ports are reserved cluster-wide: a fixed port may be used by one service
//! only, and a published port of 0 gets a free one from 30000-32767. Host-mode ports are checked
//! per node by the scheduler instead.

use std::collections::HashMap;

use shoal_types::service::{EndpointSpec, PortConfig, PortProtocol, PublishMode};
use shoal_types::{ApiError, Object, ObjectKind};

use crate::orchestrator::ObjectSource;

pub const DYNAMIC_PORT_START: u32 = 30000;
pub const DYNAMIC_PORT_END: u32 = 32767;

/// Fills `Endpoint.Ports` for a service from its endpoint spec: protocol and mode defaulted,
/// ingress ports checked against other services, dynamic ones allocated. `previous` are the
/// service's current ports (kept on update when the same target asks for port 0 again).
pub fn allocate_ports(
    src: &dyn ObjectSource,
    service_id: &str,
    spec: Option<&EndpointSpec>,
    previous: &[PortConfig],
) -> Result<Vec<PortConfig>, ApiError> {
    let Some(spec) = spec else {
        return Ok(Vec::new());
    };
    let mut used: HashMap<(u32, PortProtocol), String> = HashMap::new();
    for o in src.objects(ObjectKind::Service) {
        if let Object::Service(s) = o
            && s.id != service_id
        {
            for p in &s.endpoint.ports {
                if p.publish_mode == PublishMode::Ingress && p.published_port != 0 {
                    used.insert(
                        (p.published_port, p.protocol),
                        s.spec.annotations.name.clone(),
                    );
                }
            }
        }
    }
    let mut out = Vec::with_capacity(spec.ports.len());
    for p in &spec.ports {
        let mut p = p.clone();
        if p.publish_mode == PublishMode::Ingress {
            if p.published_port != 0 {
                if let Some(owner) = used.get(&(p.published_port, p.protocol)) {
                    return Err(ApiError::invalid_argument(format!(
                        "port '{}' is already in use by service '{owner}' as an ingress port",
                        p.published_port
                    )));
                }
            } else {
                // Keep the port this target had, if it still is free.
                let kept = previous.iter().find(|q| {
                    q.target_port == p.target_port
                        && q.protocol == p.protocol
                        && q.publish_mode == PublishMode::Ingress
                        && q.published_port != 0
                        && !used.contains_key(&(q.published_port, q.protocol))
                        && !out.iter().any(|o: &PortConfig| {
                            o.published_port == q.published_port && o.protocol == q.protocol
                        })
                });
                p.published_port = match kept {
                    Some(q) => q.published_port,
                    None => {
                        let taken =
                            |port: u32| {
                                used.contains_key(&(port, p.protocol))
                                    || spec.ports.iter().chain(out.iter()).any(|o| {
                                        o.published_port == port && o.protocol == p.protocol
                                    })
                            };
                        (DYNAMIC_PORT_START..=DYNAMIC_PORT_END)
                            .find(|port| !taken(*port))
                            .ok_or_else(|| {
                                ApiError::invalid_argument(format!(
                                    "no free port left in the dynamic range {DYNAMIC_PORT_START}-{DYNAMIC_PORT_END}"
                                ))
                            })?
                    }
                };
            }
            used.insert((p.published_port, p.protocol), String::new());
        }
        out.push(p);
    }
    Ok(out)
}
