//! Control functions: create/update rules, ports, filters.

use shoal_store::Change;
use shoal_types::service::{EndpointSpec, PortConfig, PublishMode, ServiceMode, UpdateState};
use shoal_types::{ErrorKind, Filters, Object, TaskState};

use super::*;
use crate::orchestrator::testutil::{Sim, spec};

fn port(target: u32, published: u32) -> PortConfig {
    PortConfig {
        target_port: target,
        published_port: published,
        ..PortConfig::default()
    }
}

fn with_ports(name: &str, ports: Vec<PortConfig>) -> shoal_types::ServiceSpec {
    let mut s = spec(name, "bb:1", 1);
    s.endpoint_spec = Some(EndpointSpec {
        ports,
        ..EndpointSpec::default()
    });
    s
}

#[test]
fn create_defaults_and_name_conflict() {
    let mut sim = Sim::new();
    let mut s = spec("web", "bb:1", 1);
    s.mode = ServiceMode::default();
    s.mode.replicated = Some(Default::default());
    let svc = create_service(&sim.mem, s.clone(), sim.now).unwrap();
    assert_eq!(svc.spec.mode.replicated.as_ref().unwrap().replicas, Some(1));
    assert!(svc.update_status.is_none());
    sim.mem
        .apply(&[Change::Create(Object::Service(svc))])
        .unwrap();
    let e = create_service(&sim.mem, s, sim.now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("service web already exists"));
    let mut bad = spec("nocontainer", "bb:1", 1);
    bad.task_template.container_spec = None;
    assert_eq!(
        create_service(&sim.mem, bad, sim.now).unwrap_err().kind,
        ErrorKind::InvalidArgument
    );
}

#[test]
fn ports_allocated_and_duplicates_refused() {
    let mut sim = Sim::new();
    let a = sim.create(with_ports("a", vec![port(80, 8080), port(81, 0)]));
    let svc = sim.service(&a);
    assert_eq!(svc.endpoint.ports[0].published_port, 8080);
    assert_eq!(svc.endpoint.ports[0].publish_mode, PublishMode::Ingress);
    assert_eq!(svc.endpoint.ports[1].published_port, 30000);
    let b = sim.create(with_ports("b", vec![port(80, 0)]));
    assert_eq!(sim.service(&b).endpoint.ports[0].published_port, 30001);
    let e = create_service(&sim.mem, with_ports("c", vec![port(80, 8080)]), sim.now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert_eq!(
        e.message,
        "port '8080' is already in use by service 'a' as an ingress port"
    );
    // Host-mode ports are per node: no cluster-wide reservation.
    let mut host = port(80, 8080);
    host.publish_mode = PublishMode::Host;
    create_service(&sim.mem, with_ports("d", vec![host]), sim.now).unwrap();
    // An update keeps a dynamic port it already had.
    sim.update(&a, |s| s.task_template.force_update += 1);
    assert_eq!(sim.service(&a).endpoint.ports[1].published_port, 30000);
}

#[test]
fn update_rules() {
    let mut sim = Sim::new();
    let id = sim.create(spec("web", "bb:1", 1));
    let cur = sim.service(&id);
    let v = cur.meta.version.index;
    let e = update_service(&sim.mem, "web", v + 5, cur.spec.clone(), false, sim.now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutOfSequence);
    let e = update_service(&sim.mem, "web", v, cur.spec.clone(), true, sim.now).unwrap_err();
    assert_eq!(e.message, "service web does not have a previous spec");
    let mut renamed = cur.spec.clone();
    renamed.annotations.name = "other".into();
    assert!(update_service(&sim.mem, "web", v, renamed, false, sim.now).is_err());

    sim.update(&id, |s| {
        if let Some(c) = &mut s.task_template.container_spec {
            c.image = "bb:2".into();
        }
    });
    let svc = sim.service(&id);
    assert_eq!(
        svc.previous_spec.as_ref().unwrap().task_template.image(),
        "bb:1"
    );
    let us = svc.update_status.clone().unwrap();
    assert_eq!(us.state, Some(UpdateState::Updating));
    assert!(us.started_at.is_some());
    let rb = update_service(
        &sim.mem,
        &id,
        svc.meta.version.index,
        svc.spec.clone(),
        true,
        sim.now,
    )
    .unwrap();
    assert_eq!(rb.spec.task_template.image(), "bb:1");
    assert_eq!(
        rb.update_status.unwrap().state,
        Some(UpdateState::RollbackStarted)
    );
    assert_ne!(rb.spec_version, svc.spec_version);
}

#[test]
fn task_and_service_filters() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    sim.add_node("n2", &[]);
    let mut s = spec("web", "bb:1", 2);
    s.annotations.labels.insert("stack".into(), "demo".into());
    let web = sim.create(s);
    let mut g = spec("agent", "bb:1", 1);
    g.mode = ServiceMode::global();
    sim.create(g);
    sim.run(3);

    let f = |j: &str| Filters::parse(j).unwrap();
    let by_svc = list_tasks(&sim.mem, &f(r#"{"service":{"web":true}}"#)).unwrap();
    assert_eq!(by_svc.len(), 2);
    assert!(by_svc.iter().all(|t| t.service_id == web));
    let by_label = list_tasks(&sim.mem, &f(r#"{"label":{"stack=demo":true}}"#)).unwrap();
    assert_eq!(by_label.len(), 2, "task label filter uses service labels");
    let by_node = list_tasks(&sim.mem, &f(r#"{"node":{"host-n1":true}}"#)).unwrap();
    assert!(by_node.iter().all(|t| t.node_id == "n1"));
    assert_eq!(by_node.len(), 2);
    let running = list_tasks(&sim.mem, &f(r#"{"desired-state":{"running":true}}"#)).unwrap();
    assert_eq!(running.len(), 4);
    let up = list_tasks(
        &sim.mem,
        &f(r#"{"_up-to-date":{"true":true},"service":{"web":true}}"#),
    )
    .unwrap();
    assert_eq!(up.len(), 2);
    sim.update(&web, |s| s.task_template.force_update += 1);
    let up = list_tasks(
        &sim.mem,
        &f(r#"{"_up-to-date":{"true":true},"service":{"web":true}}"#),
    )
    .unwrap();
    assert_eq!(up.len(), 0, "old tasks are not up to date");
    let e = list_tasks(&sim.mem, &f(r#"{"color":{"red":true}}"#)).unwrap_err();
    assert_eq!(e.message, "invalid filter 'color'");
    assert!(list_tasks(&sim.mem, &f(r#"{"desired-state":{"dancing":true}}"#)).is_err());

    let all = list_services(&sim.mem, &Filters::new(), true).unwrap();
    assert_eq!(all.len(), 2);
    let w = all.iter().find(|s| s.id == web).unwrap();
    let st = w.service_status.as_ref().unwrap();
    assert_eq!((st.running_tasks, st.desired_tasks), (2, 2));
    let globals = list_services(&sim.mem, &f(r#"{"mode":{"global":true}}"#), false).unwrap();
    assert_eq!(globals.len(), 1);
    assert_eq!(
        list_services(&sim.mem, &f(r#"{"name":{"we":true}}"#), false)
            .unwrap()
            .len(),
        1
    );
    assert!(list_services(&sim.mem, &f(r#"{"bogus":{"x":true}}"#), false).is_err());
    let _ = TaskState::Running;
}
