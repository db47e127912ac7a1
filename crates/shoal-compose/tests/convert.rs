//! Conversion tests: the example stacks become the objects `docker stack deploy` would
//! create (names, labels, aliases, ports, mounts, secret and config files), and every valid
//! corpus file converts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use shoal_compose::{ComposeError, Env, ExternalKind, Project, StackPlan, convert, load};

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(rel)
}

fn env() -> Env {
    [
        ("TAG", "1.2.3"),
        ("WEB_PORT", "8088"),
        ("APP_ENV", "staging"),
        ("HOME", "/home/test"),
    ]
    .into_iter()
    .collect()
}

fn load_file(rel: &str, env: &Env) -> Project {
    let path = corpus(rel);
    let text = std::fs::read_to_string(&path).expect("readable");
    load(&[(path.as_path(), text.as_str())], env).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn plan(rel: &str, stack: &str) -> StackPlan {
    convert(&load_file(rel, &Env::new()), stack, |p| std::fs::read(p))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn service(plan: &StackPlan, name: &str) -> serde_json::Value {
    let spec = plan
        .services
        .iter()
        .find(|s| s.annotations.name == name)
        .unwrap_or_else(|| panic!("no service {name}"));
    serde_json::to_value(spec).expect("serializes")
}

#[test]
fn web_example_matches_what_stack_deploy_builds() {
    let p = plan("valid/examples/web/stack.yml", "web");
    assert!(p.external_networks.is_empty());

    // One default network, overlay, labelled.
    assert_eq!(p.networks.len(), 1);
    let net = serde_json::to_value(&p.networks[0]).expect("json");
    assert_eq!(net["Name"], "web_default");
    assert_eq!(net["Driver"], "overlay");
    assert_eq!(net["Labels"], json!({"com.docker.stack.namespace": "web"}));

    // Secret and config carry the file contents and the namespace label.
    assert_eq!(p.secrets.len(), 1);
    assert_eq!(p.secrets[0].annotations.name, "web_api_token");
    assert_eq!(
        p.secrets[0].data.as_deref(),
        Some(&b"example-token-not-a-real-secret\n"[..])
    );
    assert_eq!(
        p.secrets[0].annotations.labels["com.docker.stack.namespace"],
        "web"
    );
    assert_eq!(p.configs[0].annotations.name, "web_index_html");
    assert!(
        String::from_utf8_lossy(p.configs[0].data.as_deref().unwrap_or_default())
            .contains("hello from shoal")
    );

    let web = service(&p, "web_web");
    assert_eq!(
        web["Labels"],
        json!({"com.docker.stack.image": "shoal-test/httpd:latest",
               "com.docker.stack.namespace": "web"})
    );
    let c = &web["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["Image"], "shoal-test/httpd:latest");
    assert_eq!(c["Labels"], json!({"com.docker.stack.namespace": "web"}));
    // compose `command` is the container's Args; `entrypoint` would be Command.
    assert_eq!(c["Args"], json!(["httpd", "-f", "-p", "80", "-h", "/www"]));
    assert!(c.get("Command").is_none());
    assert_eq!(
        c["Secrets"],
        json!([{"File": {"Name": "api_token", "UID": "0", "GID": "0", "Mode": 0o400},
                "SecretID": "", "SecretName": "web_api_token"}])
    );
    assert_eq!(
        c["Configs"],
        json!([{"File": {"Name": "/www/index.html", "UID": "0", "GID": "0", "Mode": 0o444},
                "ConfigID": "", "ConfigName": "web_index_html"}])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    assert_eq!(c["Healthcheck"]["Retries"], 3);
    assert_eq!(
        web["TaskTemplate"]["Networks"],
        json!([{"Target": "web_default", "Aliases": ["web"]}])
    );
    assert_eq!(
        web["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "on-failure", "Delay": 2_000_000_000i64})
    );
    assert_eq!(web["Mode"], json!({"Replicated": {"Replicas": 2}}));
    assert_eq!(web["UpdateConfig"]["Parallelism"], 1);
    assert_eq!(web["UpdateConfig"]["Order"], "start-first");
    assert_eq!(
        web["EndpointSpec"]["Ports"],
        json!([{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}])
    );

    let client = service(&p, "web_client");
    let args = &client["TaskTemplate"]["ContainerSpec"]["Args"];
    assert_eq!(args[0], "sh");
    // `$$` in the file is a literal `$` for the shell.
    assert!(
        args[2].as_str().is_some_and(|s| s.contains("$((i+1))")),
        "{args}"
    );
    assert!(
        args[2].as_str().is_some_and(|s| s.contains("http://web/")),
        "{args}"
    );
}

#[test]
fn web_example_snapshot() {
    let p = plan("valid/examples/web/stack.yml", "web");
    let actual = serde_json::to_string_pretty(&json!({
        "networks": p.networks,
        "secrets": p.secrets.iter().map(|s| &s.annotations).collect::<Vec<_>>(),
        "configs": p.configs.iter().map(|c| &c.annotations).collect::<Vec<_>>(),
        "services": p.services,
    }))
    .expect("json");
    let snap = corpus("snapshots/web.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snap, format!("{actual}\n")).expect("write snapshot");
    }
    let expected =
        std::fs::read_to_string(&snap).expect("snapshot exists (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(
        actual.trim_end(),
        expected.trim_end(),
        "snapshot {} differs",
        snap.display()
    );
}

#[test]
fn multi_tier_example() {
    let p = plan("valid/examples/multi-tier/stack.yml", "shop");
    let names: Vec<_> = p.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["shop_back", "shop_front"]);
    assert!(p.networks[0].attachable);
    let svc_names: Vec<_> = p
        .services
        .iter()
        .map(|s| s.annotations.name.as_str())
        .collect();
    assert_eq!(
        svc_names,
        ["shop_api", "shop_front", "shop_store", "shop_worker"]
    );

    let api = service(&p, "shop_api");
    assert_eq!(
        api["TaskTemplate"]["Networks"],
        json!([{"Target": "shop_back", "Aliases": ["api", "backend"]},
               {"Target": "shop_front", "Aliases": ["api"]}])
    );
    assert_eq!(
        api["TaskTemplate"]["Resources"]["Limits"],
        json!({"NanoCPUs": 500_000_000i64, "MemoryBytes": 64i64 << 20})
    );
    assert_eq!(
        api["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"],
        5_000_000_000i64
    );

    let store = service(&p, "shop_store");
    assert_eq!(
        store["TaskTemplate"]["ContainerSpec"]["Mounts"],
        json!([{"Type": "volume", "Source": "shop_store-data", "Target": "/data",
                "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "shop"}}}])
    );
    assert_eq!(
        store["TaskTemplate"]["Placement"],
        json!({"Constraints": ["node.role == manager"]})
    );
    assert_eq!(
        store["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "on-failure"})
    );

    let front = service(&p, "shop_front");
    assert_eq!(front["EndpointSpec"]["Ports"][0]["PublishedPort"], 8081);
    let worker = service(&p, "shop_worker");
    assert_eq!(
        worker["TaskTemplate"]["ContainerSpec"]["Env"],
        json!(["API_URL=http://backend/", "STORE_URL=http://store/"])
    );
    assert_eq!(worker["Mode"], json!({"Replicated": {}}));
}

#[test]
fn global_agent_example() {
    let p = plan("valid/examples/global-agent/stack.yml", "agents");
    let agent = service(&p, "agents_agent");
    assert_eq!(agent["Mode"], json!({"Global": {}}));
    assert_eq!(
        agent["EndpointSpec"]["Ports"],
        json!([{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 9100, "PublishMode": "host"}])
    );
    assert_eq!(
        agent["TaskTemplate"]["Resources"]["Limits"]["NanoCPUs"],
        100_000_000
    );
    assert_eq!(agent["UpdateConfig"]["FailureAction"], "rollback");
}

fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("corpus dir readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(yml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_valid_file_converts() {
    let root = corpus("valid");
    for path in yml_files(&root) {
        let rel = format!(
            "valid/{}",
            path.strip_prefix(&root).expect("under root").display()
        );
        let rel = rel.as_str();
        let project = load_file(rel, &env());
        let p =
            convert(&project, "t", |p| std::fs::read(p)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(p.services.len(), project.services.len(), "{rel}");
        for s in &p.services {
            assert!(s.annotations.name.starts_with("t_"), "{rel}");
            assert_eq!(s.annotations.labels["com.docker.stack.namespace"], "t");
            // The types crate's own validation accepts what we built.
            if let Some(e) = &s.endpoint_spec {
                e.validate().unwrap_or_else(|err| panic!("{rel}: {err:?}"));
            }
        }
    }
}

#[test]
fn short_and_long_syntax_conversion_details() {
    let project = load_file("valid/long-syntax.yml", &env());
    let p = convert(&project, "t", |p| std::fs::read(p)).expect("converts");
    let api = service(&p, "t_api");
    let c = &api["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["Command"], json!(["/usr/bin/tini", "--"]));
    assert_eq!(c["Args"], json!(["api-server", "--port", "8080"]));
    assert_eq!(c["Env"], json!(["EMPTY", "FEATURE_FLAG=true", "PORT=8080"]));
    assert_eq!(
        c["Secrets"][0]["File"],
        json!({"Name": "db_pw", "UID": "1000", "GID": "1000", "Mode": 0o400})
    );
    assert_eq!(c["Mounts"][0]["VolumeOptions"]["NoCopy"], true);
    assert_eq!(c["Mounts"][1]["Type"], "bind");
    assert_eq!(c["Mounts"][1]["ReadOnly"], true);
    assert_eq!(c["Mounts"][1]["BindOptions"]["Propagation"], "rprivate");
    assert_eq!(c["Mounts"][2]["TmpfsOptions"]["SizeBytes"], 64i64 << 20);
    assert_eq!(
        c["Ulimits"],
        json!([{"Name": "nofile", "Hard": 40000, "Soft": 20000},
                                    {"Name": "nproc", "Hard": 65535, "Soft": 65535}])
    );
    assert_eq!(api["TaskTemplate"]["LogDriver"]["Name"], "json-file");
    assert_eq!(api["EndpointSpec"]["Ports"][0]["Protocol"], "udp");

    let short = load_file("valid/short-syntax.yml", &env());
    let p = convert(&short, "t", |p| std::fs::read(p)).expect("converts");
    let web = service(&p, "t_web");
    let c = &web["TaskTemplate"]["ContainerSpec"];
    // env_file first, environment wins; DEBUG has no value anywhere → passed as a bare key.
    assert_eq!(
        c["Env"],
        json!(["DEBUG", "FROM_ENV_FILE=yes", "LOG_LEVEL=debug", "MODE=prod"])
    );
    assert_eq!(c["Hosts"], json!(["10.0.0.5 db.local", "::1 v6.local"]));
    assert_eq!(
        c["DNSConfig"],
        json!({"Nameservers": ["1.1.1.1"], "Search": ["example.internal"]})
    );
    assert_eq!(c["Secrets"][0]["File"]["Name"], "db_password");
    assert_eq!(c["Configs"][0]["File"]["Name"], "/app_conf");
    assert_eq!(c["Mounts"][3], json!({"Type": "tmpfs", "Target": "/run"}));
    assert_eq!(
        web["TaskTemplate"]["Networks"],
        json!([{"Target": "t_front", "Aliases": ["web"]}])
    );
}

#[test]
fn deploy_options_convert() {
    let p = plan("valid/deploy-full.yml", "d");
    let app = service(&p, "d_app");
    assert_eq!(
        app["Labels"]["com.example.description"],
        "service label, not container label"
    );
    assert_eq!(
        app["TaskTemplate"]["Placement"],
        json!({"Constraints": ["node.role == worker", "node.labels.zone != dmz"],
               "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
               "MaxReplicas": 2})
    );
    assert_eq!(
        app["TaskTemplate"]["Resources"]["Reservations"]["GenericResources"],
        json!([{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}])
    );
    assert_eq!(
        app["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "on-failure", "Delay": 5_000_000_000i64, "MaxAttempts": 3,
               "Window": 120_000_000_000i64})
    );
    assert_eq!(app["UpdateConfig"]["FailureAction"], "rollback");
    assert_eq!(app["UpdateConfig"]["Monitor"], 30_000_000_000i64);
    assert_eq!(app["RollbackConfig"]["Parallelism"], 0);
    let dns = service(&p, "d_dns-rr");
    assert_eq!(dns["EndpointSpec"]["Mode"], "dnsrr");
    let job = service(&p, "d_migrate");
    assert_eq!(
        job["Mode"],
        json!({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}})
    );
    assert_eq!(service(&p, "d_monitor")["Mode"], json!({"Global": {}}));
}

#[test]
fn ignored_restart_key_becomes_policy() {
    let p = plan("valid/ignored-keys.yml", "ig");
    assert_eq!(
        service(&p, "ig_web")["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "any"})
    );
    assert_eq!(
        service(&p, "ig_db")["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "on-failure", "MaxAttempts": 5})
    );
}

#[test]
fn networks_and_externals() {
    let p = plan("valid/networks.yml", "n");
    let names: Vec<_> = p.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["my-custom-net", "n_secure"]);
    assert_eq!(p.external_networks, ["old-style-external", "shared-proxy"]);
    let secure = &p.networks[1];
    assert!(secure.attachable);
    assert_eq!(
        secure.options.get("encrypted").map(String::as_str),
        Some("")
    );
    let custom = &p.networks[0];
    assert!(custom.internal);
    let ipam = custom.ipam.as_ref().expect("ipam");
    assert_eq!(ipam.config[0].subnet, "10.10.0.0/24");
    assert_eq!(ipam.config[0].ip_range, "10.10.0.128/25");
    assert_eq!(custom.labels["com.example.net"], "custom");
    assert_eq!(custom.labels["com.docker.stack.namespace"], "n");
    let a = service(&p, "n_a");
    let targets: Vec<_> = a["TaskTemplate"]["Networks"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["Target"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        targets,
        [
            "my-custom-net",
            "n_secure",
            "old-style-external",
            "shared-proxy"
        ]
    );

    // A missing external network is named, and nothing else is asked about after it.
    let err = p
        .check_externals(|kind, name| !(kind == ExternalKind::Network && name == "shared-proxy"))
        .expect_err("missing");
    assert!(
        err.to_string().starts_with(
            "network \"shared-proxy\" is declared as external, but could not be found"
        ),
        "{err}"
    );
    assert!(p.check_externals(|_, _| true).is_ok());
}

#[test]
fn missing_external_secret_is_named() {
    let text = "services:\n  web:\n    image: nginx\n    secrets: [cert]\nsecrets:\n  cert:\n    external: true\n    name: site-cert\n";
    let project = load(&[("s.yml", text)], &Env::new()).expect("loads");
    let mut p = convert(&project, "s", |_| Ok(Vec::new())).expect("converts");
    assert_eq!(p.external_secrets, ["site-cert"]);
    let err = p.check_externals(|_, _| false).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "secret \"site-cert\" is declared as external, but could not be found"
    );
    let web = service(&p, "s_web");
    assert_eq!(
        web["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretName"],
        "site-cert"
    );

    let ids = BTreeMap::from([("site-cert".to_string(), "abc123".to_string())]);
    p.resolve_ids(&ids, &BTreeMap::new()).expect("resolves");
    let web = service(&p, "s_web");
    assert_eq!(
        web["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretID"],
        "abc123"
    );
    assert!(p.resolve_ids(&BTreeMap::new(), &BTreeMap::new()).is_err());
}

#[test]
fn unreadable_secret_file_is_named_and_nothing_is_planned() {
    let text = "services:\n  web:\n    image: nginx\n    secrets: [pw]\nsecrets:\n  pw:\n    file: /nonexistent/shoal-test/pw.txt\n";
    let project = load(&[("s.yml", text)], &Env::new()).expect("loads");
    let err = convert(&project, "s", |p| std::fs::read(p)).expect_err("fails");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/shoal-test/pw.txt"), "{msg}");
    assert!(msg.contains("secret \"pw\""), "{msg}");
    assert!(matches!(err, ComposeError::Io { .. }));
}

#[test]
fn bad_stack_name_is_refused() {
    let project = load_file("valid/voting-app.yml", &env());
    let err = convert(&project, "bad name", |p| std::fs::read(p)).expect_err("refused");
    assert!(
        err.to_string()
            .starts_with("invalid stack name \"bad name\""),
        "{err}"
    );
}

#[test]
fn secret_from_environment_and_inline_config() {
    let p = convert(&load_file("valid/compose-spec.yml", &env()), "cs", |p| {
        std::fs::read(p)
    })
    .expect("converts");
    assert_eq!(p.secrets[0].data.as_deref(), Some(&b"staging"[..]));
    assert_eq!(p.configs[0].data.as_deref(), Some(&b"key = value\n"[..]));
    let app = service(&p, "cs_app");
    assert_eq!(
        app["TaskTemplate"]["ContainerSpec"]["Env"],
        json!(["KEY=value=with=equals"])
    );
    assert_eq!(
        app["TaskTemplate"]["ContainerSpec"]["Hosts"],
        json!(["192.168.1.1 gateway"])
    );
}

#[test]
fn objects_the_cluster_would_refuse_are_refused_before_creation() {
    let text = "services:\n  web:\n    image: nginx\n    networks: [lan]\nnetworks:\n  lan:\n    driver: bridge\n";
    let project = load(&[("b.yml", text)], &Env::new()).expect("loads");
    let err = convert(&project, "b", |_| Ok(Vec::new())).expect_err("refused");
    assert!(
        err.to_string()
            .starts_with("network \"b_lan\": network driver \"bridge\" is not supported"),
        "{err}"
    );

    let text = "services:\n  web:\n    image: nginx\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./empty\n";
    let project = load(&[("e.yml", text)], &Env::new()).expect("loads");
    let err = convert(&project, "e", |_| Ok(Vec::new())).expect_err("refused");
    assert!(err.to_string().starts_with("secret \"e_pw\":"), "{err}");
}

#[test]
fn unused_external_secret_is_not_required() {
    let text = "services:\n  web:\n    image: nginx\nsecrets:\n  unused:\n    external: true\nconfigs:\n  unused_cfg:\n    external: true\n";
    let project = load(&[("u.yml", text)], &Env::new()).expect("loads");
    let p = convert(&project, "u", |_| Ok(Vec::new())).expect("converts");
    assert!(p.external_secrets.is_empty());
    assert!(p.external_configs.is_empty());
    assert!(p.check_externals(|_, _| false).is_ok());
}

#[test]
fn traefik_style_file() {
    let project = load_file("valid/traefik-proxy.yml", &env());
    let p = convert(&project, "edge", |p| std::fs::read(p)).expect("converts");
    assert_eq!(p.external_networks, ["proxy"]);
    assert!(p.networks.is_empty());
    let whoami = service(&p, "edge_whoami");
    assert_eq!(whoami["Labels"]["traefik.enable"], "true");
    assert_eq!(
        whoami["Labels"]["traefik.http.routers.whoami.rule"],
        "Host(`whoami.example.com`)"
    );
    assert_eq!(
        whoami["TaskTemplate"]["Networks"],
        json!([{"Target": "proxy", "Aliases": ["whoami"]}])
    );
    let traefik = service(&p, "edge_traefik");
    assert_eq!(traefik["EndpointSpec"]["Ports"][1]["PublishMode"], "host");
    assert_eq!(
        traefik["TaskTemplate"]["ContainerSpec"]["Args"][0],
        "--providers.docker.swarmMode=true"
    );
}
