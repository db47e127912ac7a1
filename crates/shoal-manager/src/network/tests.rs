use std::collections::BTreeSet;

use shoal_store::Change;
use shoal_types::network::{IPAMConfig, IPAMOptions, NetworkCreateRequest};
use shoal_types::service::{EndpointSpec, PortConfig, PublishMode, ResolutionMode};
use shoal_types::task_spec::NetworkAttachmentConfig;
use shoal_types::{
    ErrorKind, Filters, Network, NetworkSpec, Object, ObjectKind, ServiceSpec, Task, TaskState,
};

use super::ipam::{AddressPool, NODE_ADDR_PREFIX, parse_addr};
use super::*;
use crate::orchestrator::testutil::{Sim, spec};
use crate::orchestrator::{MemObjects, ObjectSource, pass};

fn net_spec(name: &str, subnet: &str) -> NetworkSpec {
    let mut req = NetworkCreateRequest {
        name: name.into(),
        driver: "overlay".into(),
        ..Default::default()
    };
    if !subnet.is_empty() {
        req.ipam = Some(shoal_types::network::IPAM {
            config: vec![shoal_types::network::IPAMRequestConfig {
                subnet: subnet.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    req.to_spec().expect("valid request")
}

fn add_network(sim: &mut Sim, name: &str, subnet: &str) -> String {
    let n = create_network(&sim.mem, net_spec(name, subnet), sim.now).expect("network creates");
    let id = n.id.clone();
    sim.mem
        .apply(&[Change::Create(Object::Network(n))])
        .expect("create applies");
    id
}

fn network(src: &dyn ObjectSource, id: &str) -> Network {
    match src.object(ObjectKind::Network, id) {
        Some(Object::Network(n)) => n.clone(),
        _ => panic!("no network {id}"),
    }
}

fn on_network(name: &str, replicas: u64, net: &str) -> ServiceSpec {
    let mut s = spec(name, "bb:1", replicas);
    s.task_template.networks = vec![NetworkAttachmentConfig {
        target: net.into(),
        aliases: vec![format!("{name}-alias")],
        ..Default::default()
    }];
    s
}

/// Every address held by a live task, per network, asserting none is held twice.
fn live_addresses(sim: &Sim) -> BTreeSet<(String, String)> {
    let mut seen = BTreeSet::new();
    for o in sim.mem.objects(ObjectKind::Task) {
        let Object::Task(t) = o else { continue };
        if t.status.state.is_terminal() {
            continue;
        }
        for a in &t.networks_attachments {
            for addr in &a.addresses {
                assert!(
                    seen.insert((a.network.id.clone(), addr.clone())),
                    "address {addr} handed out twice"
                );
            }
        }
    }
    for o in sim.mem.objects(ObjectKind::Service) {
        let Object::Service(s) = o else { continue };
        for v in &s.endpoint.virtual_ips {
            assert!(
                seen.insert((v.network_id.clone(), v.addr.clone())),
                "VIP {} also handed out elsewhere",
                v.addr
            );
        }
    }
    seen
}

#[test]
fn create_allocates_subnets_and_vnis() {
    let mut sim = Sim::new();
    let ingress = ingress_network(&sim.mem).expect("ingress").clone();
    assert_eq!(ingress.vni(), Some(4096));
    let cfg = &ingress.ipam_options.as_ref().unwrap().configs[0];
    assert_eq!(
        (cfg.subnet.as_str(), cfg.gateway.as_str()),
        ("10.0.0.0/24", "10.0.0.1")
    );

    let a = add_network(&mut sim, "a", "");
    let b = add_network(&mut sim, "b", "10.0.2.0/24");
    let c = add_network(&mut sim, "c", "");
    let subnet = |id: &str| network(&sim.mem, id).ipam_options.unwrap().configs[0].clone();
    assert_eq!(subnet(&a).subnet, "10.0.1.0/24");
    assert_eq!(subnet(&a).gateway, "10.0.1.1");
    assert_eq!(subnet(&b).subnet, "10.0.2.0/24");
    // The pool skips the user's subnet.
    assert_eq!(subnet(&c).subnet, "10.0.3.0/24");
    let vnis: BTreeSet<u32> = [&a, &b, &c]
        .iter()
        .map(|id| network(&sim.mem, id).vni().unwrap())
        .collect();
    assert_eq!(vnis, BTreeSet::from([4097, 4098, 4099]));
    let v = inspect_view(&network(&sim.mem, &a));
    assert_eq!(v.ipam.config[0].subnet, "10.0.1.0/24");
    assert_eq!(
        v.options["com.docker.network.driver.overlay.vxlanid_list"],
        "4097"
    );
}

fn with_option(mut spec: NetworkSpec, key: &str, value: &str) -> NetworkSpec {
    spec.driver_configuration
        .get_or_insert_with(Default::default)
        .options
        .insert(key.into(), value.into());
    spec
}

#[test]
fn a_requested_vxlan_id_is_honoured_once() {
    let mut sim = Sim::new();
    let vni_opt = "com.docker.network.driver.overlay.vxlanid_list";
    let n = create_network(
        &sim.mem,
        with_option(net_spec("a", ""), vni_opt, "5000"),
        sim.now,
    )
    .expect("free id");
    assert_eq!(n.vni(), Some(5000));
    sim.mem
        .apply(&[Change::Create(Object::Network(n))])
        .expect("create applies");
    let before = sim.mem.index();
    let e = create_network(
        &sim.mem,
        with_option(net_spec("b", ""), vni_opt, "5000"),
        sim.now,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message.contains("already used by network a"),
        "{}",
        e.message
    );
    let e = create_network(
        &sim.mem,
        with_option(net_spec("c", ""), vni_opt, "4096"),
        sim.now,
    )
    .unwrap_err();
    assert!(e.message.contains("network ingress"), "{}", e.message);
    assert_eq!(sim.mem.index(), before, "nothing written");
}

#[test]
fn bad_networks_refused() {
    let mut sim = Sim::new();
    add_network(&mut sim, "a", "10.5.0.0/16");
    let before = sim.mem.index();
    let e = create_network(&sim.mem, net_spec("a", ""), sim.now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("already exists"), "{}", e.message);
    let e = create_network(&sim.mem, net_spec("b", "10.5.3.0/24"), sim.now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("overlaps"), "{}", e.message);
    let e = create_network(&sim.mem, net_spec("c", "10.0.0.0/16"), sim.now).unwrap_err();
    assert!(e.message.contains("ingress"), "{}", e.message);
    let mut ingress2 = net_spec("ing2", "");
    ingress2.ingress = true;
    assert_eq!(
        create_network(&sim.mem, ingress2, sim.now)
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    assert_eq!(sim.mem.index(), before, "nothing written");
}

#[test]
fn lookup_list_and_filters() {
    let mut sim = Sim::new();
    let front = add_network(&mut sim, "front", "");
    let mut labelled = net_spec("back", "");
    labelled
        .annotations
        .labels
        .insert("tier".into(), "db".into());
    let n = create_network(&sim.mem, labelled, sim.now).unwrap();
    sim.mem
        .apply(&[Change::Create(Object::Network(n))])
        .unwrap();
    assert_eq!(find_network(&sim.mem, "front").unwrap().id, front);
    assert_eq!(find_network(&sim.mem, &front[..6]).unwrap().id, front);
    let e = find_network(&sim.mem, "nope").unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(e.message, "network nope not found");
    let names = |f: &str| -> Vec<String> {
        list_networks(&sim.mem, &Filters::parse(f).unwrap())
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect()
    };
    assert_eq!(names("{}"), vec!["back", "front", "ingress"]);
    assert_eq!(names(r#"{"label":["tier=db"]}"#), vec!["back"]);
    assert_eq!(names(r#"{"name":["ron"]}"#), vec!["front"]);
    assert_eq!(names(r#"{"driver":["bridge"]}"#), Vec::<String>::new());
    assert_eq!(names(r#"{"scope":["swarm"]}"#).len(), 3);
    assert!(list_networks(&sim.mem, &Filters::parse(r#"{"bogus":["x"]}"#).unwrap()).is_err());
}

#[test]
fn services_resolve_networks_and_rm_is_refused_while_used() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    let net = add_network(&mut sim, "front", "");
    let e = crate::control::create_service(&sim.mem, on_network("x", 1, "missing"), sim.now)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("missing"), "{}", e.message);
    let e = crate::control::create_service(&sim.mem, on_network("x", 1, "ingress"), sim.now)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);

    let svc = sim.create(on_network("web", 2, "front"));
    assert_eq!(sim.service(&svc).spec.task_template.networks[0].target, net);
    let e = remove_network(&sim.mem, "front").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(e.message, "network front is in use by service web");
    sim.run(3);
    // A task of a live service blocks removal even without the service naming the network.
    let mut spec_only = sim.service(&svc);
    spec_only.spec.task_template.networks.clear();
    let v = spec_only.meta.version.index;
    let mut view = sim.mem.clone();
    view.apply(&[Change::Update {
        object: Object::Service(spec_only),
        expected_version: Some(v),
    }])
    .unwrap();
    let e = remove_network(&view, "front").unwrap_err();
    assert!(e.message.contains("in use by task"), "{}", e.message);
    // Once the service is gone its tasks (still stopping) do not block: `stack rm` works at once.
    let old = network(&sim.mem, &net);
    let changes = crate::control::remove_service(&sim.mem, &svc).unwrap();
    sim.mem.apply(&changes).unwrap();
    let del = remove_network(&sim.mem, "front").unwrap();
    sim.mem.apply(&[del]).unwrap();
    assert!(find_network(&sim.mem, "front").is_err());
    // While those tasks still run, their subnet and VXLAN id are not handed out again.
    let again = create_network(&sim.mem, net_spec("again", ""), sim.now).unwrap();
    assert_ne!(again.vni(), old.vni());
    assert_ne!(
        again.ipam_options.as_ref().unwrap().configs[0].subnet,
        old.ipam_options.as_ref().unwrap().configs[0].subnet
    );
    sim.run(5);
    assert!(sim.tasks(&svc).is_empty(), "tasks stopped and reaped");
    let later = create_network(&sim.mem, net_spec("later", ""), sim.now).unwrap();
    assert_eq!(later.vni(), old.vni(), "reused once the tasks are gone");
}

#[test]
fn tasks_of_a_removed_node_give_their_addresses_back() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    sim.add_node("n2", &[]);
    add_network(&mut sim, "tiny", "10.7.0.0/29");
    let svc = sim.create(on_network("w", 4, "tiny"));
    sim.run(3);
    assert_eq!(sim.running(&svc).len(), 4);
    // n2 vanishes (node rm --force while down): its tasks never report again.
    sim.edit_node("n2", |n| n.status.state = shoal_types::NodeState::Down);
    sim.mem
        .apply(&[Change::Delete {
            kind: ObjectKind::Node,
            id: "n2".into(),
            expected_version: None,
        }])
        .unwrap();
    sim.run(10);
    let running = sim.running(&svc);
    let on_n1 = running.iter().filter(|t| t.node_id == "n1").count();
    assert_eq!(on_n1, 4, "replacements got the freed addresses");
}

#[test]
fn ingress_rm_refused_while_ports_published_and_prune_keeps_it() {
    let mut sim = Sim::new();
    let mut s = spec("pub", "bb:1", 1);
    s.endpoint_spec = Some(EndpointSpec {
        ports: vec![PortConfig {
            target_port: 80,
            published_port: 8080,
            ..Default::default()
        }],
        ..Default::default()
    });
    let id = sim.create(s);
    let e = remove_network(&sim.mem, "ingress").unwrap_err();
    assert!(
        e.message.contains("service pub depends on it"),
        "{}",
        e.message
    );
    add_network(&mut sim, "unused", "");
    let pruned = prune_networks(&sim.mem, &Filters::default(), sim.now).unwrap();
    let names: Vec<&str> = pruned.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["unused"]);
    let changes = crate::control::remove_service(&sim.mem, &id).unwrap();
    sim.mem.apply(&changes).unwrap();
    remove_network(&sim.mem, "ingress").unwrap();
    // Without an ingress network, ingress ports are refused.
    let mut s = spec("pub2", "bb:1", 1);
    s.endpoint_spec = Some(EndpointSpec {
        ports: vec![PortConfig {
            target_port: 80,
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut mem = MemObjects::new();
    let e = crate::control::create_service(&mem, s.clone(), sim.now).unwrap_err();
    assert!(e.message.contains("ingress"), "{}", e.message);
    mem.put(Object::Network(
        default_ingress(&Default::default(), sim.now).unwrap(),
    ));
    crate::control::create_service(&mem, s, sim.now).unwrap();
}

#[test]
fn tasks_get_distinct_addresses_and_services_vips() {
    let mut sim = Sim::new();
    for n in ["n1", "n2", "n3"] {
        sim.add_node(n, &[]);
    }
    let net = add_network(&mut sim, "front", "10.9.0.0/24");
    let mut s = on_network("web", 5, "front");
    s.endpoint_spec = Some(EndpointSpec {
        ports: vec![PortConfig {
            target_port: 80,
            published_port: 8080,
            publish_mode: PublishMode::Ingress,
            ..Default::default()
        }],
        ..Default::default()
    });
    let svc = sim.create(s);
    sim.run(3);
    let service = sim.service(&svc);
    let vips = &service.endpoint.virtual_ips;
    assert_eq!(vips.len(), 2, "{vips:?}");
    let ingress = ingress_network(&sim.mem).unwrap().id.clone();
    assert!(vips.iter().any(|v| v.network_id == ingress));
    let vip = vips.iter().find(|v| v.network_id == net).unwrap();
    assert!(vip.addr.starts_with("10.9.0.") && vip.addr.ends_with("/24"));
    let tasks = sim.running(&svc);
    assert_eq!(tasks.len(), 5);
    for t in &tasks {
        assert_eq!(t.networks_attachments.len(), 2);
        let a = t
            .networks_attachments
            .iter()
            .find(|a| a.network.id == net)
            .unwrap();
        assert!(a.addresses[0].starts_with("10.9.0."), "{:?}", a.addresses);
        assert_eq!(a.aliases, vec!["web-alias"]);
        assert_eq!(a.network.vni(), Some(4097));
        assert!(a.addresses[0] != "10.9.0.1/24", "gateway handed out");
        let ep = t.endpoint.as_ref().expect("endpoint copied");
        assert_eq!(&ep.virtual_ips, vips);
    }
    live_addresses(&sim);
    // Every node has one ingress address, all distinct, none equal to a task's or a VIP.
    let ing = network(&sim.mem, &ingress);
    let node_addrs: BTreeSet<&String> = ing
        .driver_state
        .options
        .iter()
        .filter(|(k, _)| k.starts_with(NODE_ADDR_PREFIX))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(node_addrs.len(), 3);
    let live = live_addresses(&sim);
    for a in &node_addrs {
        assert!(!live.contains(&(ingress.clone(), (*a).clone())));
    }
    let att = node_attachments(Some(&ing), "n2");
    assert_eq!(att.len(), 1);
    assert!(att[0].addresses[0].starts_with("10.0.0."));
    assert!(
        !att[0]
            .network
            .driver_state
            .options
            .keys()
            .any(|k| k.starts_with(NODE_ADDR_PREFIX))
    );
    // A removed node gives its address back.
    sim.mem
        .apply(&[Change::Delete {
            kind: ObjectKind::Node,
            id: "n3".into(),
            expected_version: None,
        }])
        .unwrap();
    sim.step();
    assert!(node_attachments(ingress_network(&sim.mem), "n3").is_empty());
}

#[test]
fn no_duplicates_under_churn_and_reuse_after_terminal() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    sim.add_node("n2", &[]);
    // A /29: 6 usable addresses, minus the gateway and one VIP = 4 for tasks.
    add_network(&mut sim, "tiny", "10.7.0.0/29");
    let svc = sim.create(on_network("churn", 4, "tiny"));
    sim.run(3);
    assert_eq!(sim.running(&svc).len(), 4);
    let first: BTreeSet<String> = sim
        .running(&svc)
        .iter()
        .map(|t| t.networks_attachments[0].addresses[0].clone())
        .collect();
    assert_eq!(first.len(), 4);
    // Kill tasks over and over: replacements must reuse the freed addresses, never a live one.
    sim.failing_images.push("bb:1".into());
    for _ in 0..20 {
        sim.run(1);
        live_addresses(&sim);
    }
    sim.failing_images.clear();
    sim.run(30);
    let running = sim.running(&svc);
    assert_eq!(running.len(), 4, "the pool of 4 keeps serving replacements");
    let now: BTreeSet<String> = running
        .iter()
        .map(|t| t.networks_attachments[0].addresses[0].clone())
        .collect();
    assert_eq!(now.len(), 4);
    for a in &now {
        let ip = parse_addr(a).unwrap().octets();
        assert!((2..=6).contains(&ip[3]), "{a} outside the usable range");
    }
    live_addresses(&sim);
}

#[test]
fn exhaustion_is_a_pending_status_not_a_panic() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    add_network(&mut sim, "tiny", "10.7.0.0/29");
    let svc = sim.create(on_network("big", 6, "tiny"));
    sim.run(3);
    let tasks = sim.tasks(&svc);
    let running = tasks
        .iter()
        .filter(|t| t.status.state == TaskState::Running)
        .count();
    assert_eq!(running, 4);
    let stuck: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.status.state == TaskState::Pending)
        .collect();
    assert_eq!(stuck.len(), 2);
    for t in stuck {
        assert_eq!(t.status.message, "no available IP address in network tiny");
        assert!(t.node_id.is_empty() && t.networks_attachments.is_empty());
    }
    // Stuck tasks are retried every pass without rewriting anything meanwhile.
    let changes = pass(&sim.mem, sim.now);
    assert!(changes.is_empty(), "{changes:?}");
    // Scaling down frees addresses; nothing stays stuck.
    sim.update(&svc, |s| {
        s.mode = shoal_types::service::ServiceMode::replicated(3)
    });
    sim.run(5);
    assert_eq!(sim.running(&svc).len(), 3);
    assert!(
        sim.tasks(&svc)
            .iter()
            .all(|t| t.status.state != TaskState::Pending)
    );
    live_addresses(&sim);
}

#[test]
fn vips_stable_across_updates_and_reallocated_when_networks_change() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    let a = add_network(&mut sim, "a", "");
    let b = add_network(&mut sim, "b", "");
    let svc = sim.create(on_network("web", 2, "a"));
    sim.run(2);
    let vip_a = sim.service(&svc).endpoint.virtual_ips.clone();
    assert_eq!(vip_a.len(), 1);
    assert_eq!(vip_a[0].network_id, a);
    sim.update(&svc, |s| {
        s.task_template.force_update += 1;
        s.mode = shoal_types::service::ServiceMode::replicated(3);
    });
    sim.run(5);
    assert_eq!(sim.service(&svc).endpoint.virtual_ips, vip_a, "VIP kept");
    sim.update(&svc, |s| {
        s.task_template.networks.push(NetworkAttachmentConfig {
            target: "b".into(),
            ..Default::default()
        })
    });
    sim.run(10);
    let vips = sim.service(&svc).endpoint.virtual_ips.clone();
    assert_eq!(vips.len(), 2);
    assert_eq!(vips[0], vip_a[0], "the VIP on a stays");
    assert_eq!(vips[1].network_id, b);
    for t in sim.running(&svc) {
        assert_eq!(
            t.networks_attachments.len(),
            2,
            "updated tasks attach to both"
        );
    }
    sim.update(&svc, |s| s.task_template.networks.retain(|n| n.target == b));
    sim.run(10);
    let vips = sim.service(&svc).endpoint.virtual_ips.clone();
    assert_eq!(vips.len(), 1);
    assert_eq!(vips[0].network_id, b);
    // dnsrr: no VIPs at all.
    sim.update(&svc, |s| {
        s.endpoint_spec = Some(EndpointSpec {
            mode: ResolutionMode::Dnsrr,
            ..Default::default()
        })
    });
    sim.run(2);
    assert!(sim.service(&svc).endpoint.virtual_ips.is_empty());
    live_addresses(&sim);
}

#[test]
fn a_new_leader_continues_from_the_store() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    add_network(&mut sim, "front", "");
    let svc = sim.create(on_network("web", 3, "front"));
    sim.run(3);
    let before = live_addresses(&sim);
    // A "new leader" is just a pass over the same store: nothing moves.
    let changes = pass(&sim.mem.clone(), sim.now);
    assert!(
        changes.iter().all(|c| !matches!(
            c,
            Change::Update {
                object: Object::Network(_),
                ..
            }
        )),
        "no network rewritten"
    );
    sim.mem.apply(&changes).unwrap();
    assert_eq!(live_addresses(&sim), before);
    sim.update(&svc, |s| {
        s.mode = shoal_types::service::ServiceMode::replicated(5)
    });
    sim.run(3);
    let after = live_addresses(&sim);
    assert!(before.is_subset(&after));
    assert_eq!(after.len(), before.len() + 2);
}

#[test]
fn address_pool_math() {
    let net = Network {
        id: "n".into(),
        ipam_options: Some(IPAMOptions {
            configs: vec![IPAMConfig {
                subnet: "10.1.0.0/24".into(),
                range: "10.1.0.128/30".into(),
                gateway: "10.1.0.1".into(),
            }],
            ..Default::default()
        }),
        ..Network::default()
    };
    let mut p = AddressPool::of(&net).unwrap();
    assert_eq!(p.free(), 4);
    let got: Vec<String> = (0..4).map(|_| p.take().unwrap()).collect();
    assert_eq!(
        got,
        vec![
            "10.1.0.128/24",
            "10.1.0.129/24",
            "10.1.0.130/24",
            "10.1.0.131/24"
        ]
    );
    assert!(p.take().is_err());
    p.release("10.1.0.129/24");
    assert_eq!(p.take().unwrap(), "10.1.0.129/24");
    assert!(!p.mark("10.2.0.1"));
    assert!(!p.mark("10.1.0.128/24"), "already taken");
}

#[test]
fn networks_created_concurrently_are_repaired_before_use() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    // Two creates computed from the same view: same subnet and VXLAN id.
    let a = create_network(&sim.mem, net_spec("a", ""), sim.now).unwrap();
    let mut b = create_network(&sim.mem, net_spec("b", ""), sim.now).unwrap();
    b.meta.created_at = sim.now + chrono::Duration::milliseconds(1);
    assert_eq!(a.vni(), b.vni());
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    sim.mem
        .apply(&[
            Change::Create(Object::Network(a)),
            Change::Create(Object::Network(b)),
        ])
        .unwrap();
    sim.step();
    let (a, b) = (network(&sim.mem, &a_id), network(&sim.mem, &b_id));
    assert_ne!(a.vni(), b.vni());
    let sub = |n: &Network| n.ipam_options.as_ref().unwrap().configs[0].subnet.clone();
    assert_eq!(sub(&a), "10.0.1.0/24", "the older keeps its subnet");
    assert_eq!(sub(&b), "10.0.2.0/24");
    let changes = pass(&sim.mem, sim.now);
    assert!(changes.is_empty(), "stable afterwards: {changes:?}");
}

#[test]
fn publishing_a_port_later_rolls_tasks_onto_ingress() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    let svc = sim.create(spec("web", "bb:1", 2));
    sim.run(3);
    assert!(
        sim.running(&svc)
            .iter()
            .all(|t| t.networks_attachments.is_empty())
    );
    sim.update(&svc, |s| {
        s.endpoint_spec = Some(EndpointSpec {
            ports: vec![PortConfig {
                target_port: 80,
                published_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        })
    });
    sim.run(15);
    let running = sim.running(&svc);
    assert_eq!(running.len(), 2);
    for t in &running {
        assert_eq!(
            t.networks_attachments.len(),
            1,
            "{:?}",
            t.networks_attachments
        );
        assert!(t.networks_attachments[0].network.spec.ingress);
    }
    assert_eq!(sim.service(&svc).endpoint.virtual_ips.len(), 1);
    live_addresses(&sim);
}

#[test]
fn endpoint_mode_change_redeploys_tasks() {
    let mut sim = Sim::new();
    sim.add_node("n1", &[]);
    add_network(&mut sim, "front", "");
    let svc = sim.create(on_network("web", 2, "front"));
    sim.run(3);
    assert!(sim.running(&svc).iter().all(|t| {
        t.endpoint
            .as_ref()
            .is_some_and(|e| e.spec.mode == ResolutionMode::Vip && e.virtual_ips.len() == 1)
    }));
    sim.update(&svc, |s| {
        s.endpoint_spec = Some(EndpointSpec {
            mode: ResolutionMode::Dnsrr,
            ..Default::default()
        })
    });
    sim.run(15);
    let running = sim.running(&svc);
    assert_eq!(running.len(), 2);
    for t in &running {
        let e = t.endpoint.as_ref().expect("endpoint");
        assert_eq!(e.spec.mode, ResolutionMode::Dnsrr);
        assert!(e.virtual_ips.is_empty());
    }
    live_addresses(&sim);
}

#[test]
fn custom_address_pools() {
    let cluster = shoal_types::Cluster {
        default_addr_pool: vec!["10.20.0.0/16".into(), "172.30.0.0/16".into()],
        subnet_size: 26,
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let ingress = default_ingress(&cluster, now).unwrap();
    let cfg = &ingress.ipam_options.as_ref().unwrap().configs[0];
    assert_eq!(
        cfg.subnet, "10.20.0.0/26",
        "ingress from the cluster's pool"
    );
    assert_eq!(cfg.gateway, "10.20.0.1");
    assert_eq!(ingress.vni(), Some(4096));

    let mut mem = MemObjects::new();
    mem.put(Object::Cluster(cluster));
    mem.put(Object::Network(ingress));
    let n = create_network(&mem, net_spec("a", ""), now).unwrap();
    assert_eq!(
        n.ipam_options.as_ref().unwrap().configs[0].subnet,
        "10.20.0.64/26"
    );

    // A pool with room for one subnet: the next network is refused with a clear error.
    let tiny = shoal_types::Cluster {
        default_addr_pool: vec!["10.99.0.0/24".into()],
        subnet_size: 24,
        ..Default::default()
    };
    let mut mem = MemObjects::new();
    mem.put(Object::Cluster(tiny.clone()));
    mem.put(Object::Network(default_ingress(&tiny, now).unwrap()));
    let e = create_network(&mem, net_spec("b", ""), now).unwrap_err();
    assert!(
        e.message.contains("could not find an available"),
        "{}",
        e.message
    );
    // A user subnet outside the pool still works.
    create_network(&mem, net_spec("c", "192.168.77.0/24"), now).unwrap();
}
