//! Loader tests on the corpus: every valid file loads (and re-loads from its own
//! `stack config` output unchanged); every invalid file fails with the message its first line
//! announces (`# expect: …`).

use std::path::{Path, PathBuf};

use shoal_compose::{ComposeError, Env, Project, load};

fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir)
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

fn test_env() -> Env {
    [
        ("TAG", "1.2.3"),
        ("WEB_PORT", "8088"),
        ("APP_ENV", "staging"),
        ("HOME", "/home/test"),
        ("DEBUG", "from-env"),
    ]
    .into_iter()
    .collect()
}

fn load_path(path: &Path, env: &Env) -> Result<Project, ComposeError> {
    let text = std::fs::read_to_string(path).expect("corpus file readable");
    load(&[(path, text)], env)
}

#[test]
fn valid_corpus_loads_and_round_trips() {
    let files = yml_files(&corpus("valid"));
    assert!(files.len() >= 10, "corpus too small: {files:?}");
    for path in files {
        let project = load_path(&path, &test_env())
            .unwrap_or_else(|e| panic!("{} should load: {e}", path.display()));
        assert!(!project.services.is_empty(), "{}", path.display());
        // `stack config` output is itself a valid file meaning the same thing.
        let printed = project.to_yaml().expect("serializes");
        let again = load(&[(path.as_path(), printed.as_str())], &test_env()).unwrap_or_else(|e| {
            panic!(
                "{} config output should load: {e}\n{printed}",
                path.display()
            )
        });
        assert_eq!(again.services, project.services, "{}", path.display());
        assert_eq!(again.networks, project.networks, "{}", path.display());
        assert_eq!(again.secrets, project.secrets, "{}", path.display());
    }
}

#[test]
fn invalid_corpus_fails_with_expected_message() {
    let files = yml_files(&corpus("invalid"));
    assert!(files.len() >= 30, "corpus too small");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an '# expect:' line", path.display()))
            .to_string();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        match load(&[(name, text.as_str())], &test_env()) {
            Ok(_) => panic!("{name} should fail with {expect:?}"),
            Err(e) => assert!(
                e.to_string().contains(&expect),
                "{name}: error {:?} does not contain {expect:?}",
                e.to_string()
            ),
        }
    }
}

fn load_one(name: &str) -> Project {
    load_path(&corpus("valid").join(name), &test_env()).expect("loads")
}

#[test]
fn short_syntax_is_normalized() {
    let p = load_one("short-syntax.yml");
    let web = &p.services["web"];
    assert_eq!(
        web.command.as_deref(),
        Some(&["nginx".to_string(), "-g".into(), "daemon off;".into()][..])
    );
    // DEBUG has no value in the file and is taken from the environment.
    assert_eq!(web.environment["DEBUG"].as_deref(), Some("from-env"));
    assert_eq!(web.environment["MODE"].as_deref(), Some("prod"));
    let ports: Vec<_> = web
        .ports
        .0
        .iter()
        .map(|p| (p.published, p.target))
        .collect();
    assert_eq!(
        ports,
        vec![
            (Some(80), 80),
            (Some(443), 443),
            (Some(8001), 8001),
            (Some(9090), 8080),
            (Some(9091), 8081),
            (None, 3000)
        ]
    );
    assert_eq!(web.volumes[0].kind, "volume");
    assert_eq!(web.volumes[0].read_only, Some(true));
    assert_eq!(web.volumes[1].kind, "bind");
    let bind_src = web.volumes[1].source.as_deref().expect("source");
    assert!(bind_src.ends_with("tests/corpus/valid/files"), "{bind_src}");
    assert!(Path::new(bind_src).is_absolute(), "{bind_src}");
    assert_eq!(web.volumes[2].source, None);
    assert_eq!(web.secrets[0].source, "db_password");
    assert_eq!(web.dns, vec!["1.1.1.1"]);
    assert_eq!(web.extra_hosts, vec!["db.local:10.0.0.5", "v6.local:::1"]);
    assert_eq!(web.ulimits["nofile"].soft, 65535);
    assert_eq!(web.stop_grace_period.map(|d| d.0), Some(90_000_000_000));
    assert_eq!(
        web.healthcheck.as_ref().and_then(|h| h.test.clone()),
        Some(vec![
            "CMD-SHELL".to_string(),
            "curl -f http://localhost/ || exit 1".into()
        ])
    );
    assert!(
        p.secrets["db_password"]
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("files/db_password.txt"))
    );
}

#[test]
fn long_syntax_fields() {
    let p = load_one("long-syntax.yml");
    let api = &p.services["api"];
    assert_eq!(api.ports.0[1].mode.as_deref(), Some("host"));
    assert_eq!(api.ports.0[2].protocol.as_deref(), Some("udp"));
    assert_eq!(api.secrets[0].mode, Some(0o400));
    assert_eq!(api.configs[0].mode, Some(0o440));
    assert_eq!(
        api.volumes[2].tmpfs.as_ref().and_then(|t| t.size),
        Some(64 << 20)
    );
    assert_eq!(
        api.volumes[2].tmpfs.as_ref().and_then(|t| t.mode),
        Some(1777)
    );
    let nets = api.networks.as_ref().expect("networks");
    assert_eq!(nets["back"].aliases, vec!["api-backend", "api.internal"]);
    assert_eq!(api.environment["PORT"].as_deref(), Some("8080"));
    assert_eq!(api.environment["FEATURE_FLAG"].as_deref(), Some("true"));
    assert_eq!(api.environment["EMPTY"], None);
    assert_eq!(api.ulimits["nofile"].hard, 40000);
    assert_eq!(api.read_only, Some(true));
    assert_eq!(api.init, Some(true));
}

#[test]
fn anchors_merge_keys_and_extensions() {
    let p = load_one("anchors.yml");
    let a = &p.services["worker-a"];
    let b = &p.services["worker-b"];
    assert_eq!(
        a.image.as_deref(),
        Some("127.0.0.1:5000/shoal-test/busybox:latest")
    );
    assert_eq!(a.deploy.as_ref().and_then(|d| d.replicas), Some(3));
    assert_eq!(
        a.deploy
            .as_ref()
            .and_then(|d| d.restart_policy.as_ref())
            .and_then(|r| r.max_attempts),
        Some(3)
    );
    assert_eq!(b.deploy.as_ref().and_then(|d| d.replicas), Some(2));
    assert_eq!(b.environment["WORKER"].as_deref(), Some("b"));
    assert_eq!(b.environment["TZ"].as_deref(), Some("UTC"));
    assert_eq!(
        a.logging.as_ref().map(|l| l.options["max-size"].as_str()),
        Some("12m")
    );
}

#[test]
fn interpolation_in_a_file() {
    let p = load_one("interpolation.yml");
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("example/web:1.2.3"));
    assert_eq!(web.ports.0[0].published, Some(8088));
    assert_eq!(web.ports.0[1].published, Some(9100));
    let env = &web.environment;
    assert_eq!(env["APP_ENV"].as_deref(), Some("staging"));
    assert_eq!(env["GREETING"].as_deref(), Some("hello"));
    assert_eq!(env["PRICE"].as_deref(), Some("$5"));
    assert_eq!(env["UNSET_FALLBACK"].as_deref(), Some("fallback"));
    assert_eq!(env["ALT"].as_deref(), Some("has-env"));
    assert_eq!(
        web.command
            .as_deref()
            .and_then(|c| c.get(2))
            .map(String::as_str),
        Some("echo $HOME staging")
    );
    let deploy = web.deploy.as_ref().expect("deploy");
    assert_eq!(deploy.replicas, Some(2));
    assert_eq!(
        deploy
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.memory)
            .map(|m| m.0),
        Some(128 << 20)
    );
}

#[test]
fn unset_variable_warns() {
    let text = "services:\n  web:\n    image: nginx:${NOT_SET_X}latest\n";
    let p = load(&[("f.yml", text)], &Env::new()).expect("loads");
    assert_eq!(p.services["web"].image.as_deref(), Some("nginx:latest"));
    assert_eq!(
        p.warnings,
        vec!["The \"NOT_SET_X\" variable is not set. Defaulting to a blank string.".to_string()]
    );
}

#[test]
fn ignored_keys_warn_like_docker() {
    let p = load_one("ignored-keys.yml");
    assert!(
        p.warnings
            .contains(&"Ignoring unsupported options: build, depends_on, links, privileged, restart, security_opt".to_string()),
        "{:?}",
        p.warnings
    );
    let deprecated = p
        .warnings
        .iter()
        .find(|w| w.starts_with("Ignoring deprecated options:"))
        .expect("deprecated warning");
    assert!(deprecated.contains("container_name: Setting the container name is not supported."));
    assert!(deprecated.contains("expose: Exposing ports is unnecessary"));
    // `restart` is kept to derive a restart policy.
    assert_eq!(p.services["web"].restart.as_deref(), Some("unless-stopped"));
}

#[test]
fn networks_external_and_ipam() {
    let p = load_one("networks.yml");
    assert_eq!(p.networks["secure"].driver_opts["encrypted"], "");
    assert!(p.networks["secure"].attachable);
    assert!(p.networks["outside"].external);
    assert_eq!(p.networks["outside"].name.as_deref(), Some("shared-proxy"));
    assert!(p.networks["legacy-outside"].external);
    assert_eq!(
        p.networks["legacy-outside"].name.as_deref(),
        Some("old-style-external")
    );
    let ipam = p.networks["custom"].ipam.as_ref().expect("ipam");
    assert_eq!(ipam.config[0].subnet.as_deref(), Some("10.10.0.0/24"));
}

#[test]
fn files_merge_in_order() {
    let dir = corpus("merge");
    let base = std::fs::read_to_string(dir.join("base.yml")).expect("base");
    let over = std::fs::read_to_string(dir.join("override.yml")).expect("override");
    let p = load(
        &[
            (dir.join("base.yml"), base),
            (dir.join("override.yml"), over),
        ],
        &test_env(),
    )
    .expect("loads");
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("example/web:1.2.3"));
    assert_eq!(web.command.as_deref(), Some(&["serve".to_string()][..]));
    let env: Vec<_> = web
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(env, vec!["A=1", "B=3", "C=4"]);
    // Port 8080 now goes to 8081; 8443 is kept.
    let ports: Vec<_> = web
        .ports
        .0
        .iter()
        .map(|p| (p.published, p.target))
        .collect();
    assert_eq!(ports, vec![(Some(8080), 8081), (Some(8443), 443)]);
    // The mount at /data is replaced by the bind mount (resolved against the first file's dir).
    assert_eq!(web.volumes.len(), 1);
    assert_eq!(web.volumes[0].kind, "bind");
    assert!(
        web.volumes[0]
            .source
            .as_deref()
            .is_some_and(|s| s.ends_with("merge/local-data"))
    );
    assert_eq!(web.secrets.len(), 1);
    assert_eq!(
        web.secrets[0].target.as_deref(),
        Some("/run/secrets/renamed")
    );
    let deploy = web.deploy.as_ref().expect("deploy");
    assert_eq!(deploy.replicas, Some(3));
    assert_eq!(
        deploy.placement.as_ref().map(|p| p.constraints.clone()),
        Some(vec![
            "node.role == worker".to_string(),
            "node.labels.zone == a".into()
        ])
    );
    assert!(p.services.contains_key("db"));
    assert!(p.services.contains_key("cache"));
}

#[test]
fn error_in_second_file_names_that_file() {
    let err = load(
        &[
            ("a.yml", "services:\n  web:\n    image: x\n"),
            ("b.yml", "services:\n  web:\n    ports: [\"80800\"]\n"),
        ],
        &Env::new(),
    )
    .expect_err("fails");
    assert_eq!(
        err.to_string(),
        "b.yml: services.web.ports[0]: invalid port \"80800\""
    );
}

#[test]
fn dotenv_next_to_first_file_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stack.yml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: \"nginx:${SHOAL_TEST_DOTENV_TAG}\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join(".env"),
        "SHOAL_TEST_DOTENV_TAG=from-dotenv\n",
    )
    .expect("write");
    let env = Env::for_compose_file(&file).expect("env");
    let text = std::fs::read_to_string(&file).expect("read");
    let p = load(&[(file.as_path(), text.as_str())], &env).expect("loads");
    assert_eq!(
        p.services["web"].image.as_deref(),
        Some("nginx:from-dotenv")
    );
}

#[test]
fn config_output_is_interpolated_and_normalized() {
    let p = load_one("interpolation.yml");
    let yaml = p.to_yaml().expect("yaml");
    assert!(yaml.contains("image: example/web:1.2.3"), "{yaml}");
    assert!(yaml.contains("published: 8088"), "{yaml}");
    assert!(!yaml.contains("${"), "{yaml}");
}

#[test]
fn load_paths_reads_files_and_names_missing_ones() {
    let dir = corpus("merge");
    let p = shoal_compose::load_paths(&[dir.join("base.yml")]).expect("loads");
    assert!(p.services.contains_key("web"));
    let err = shoal_compose::load_paths(&[dir.join("no-such-file.yml")]).expect_err("missing");
    assert!(err.to_string().contains("no-such-file.yml"), "{err}");
    assert!(matches!(
        shoal_compose::load_paths(&[]),
        Err(ComposeError::NoFiles)
    ));
}

#[test]
fn config_output_of_the_web_example() {
    let p = load_one("examples/web/stack.yml");
    let yaml = p.to_yaml().expect("yaml");
    // Printed for review with --nocapture; the checks below pin the important parts.
    println!("{yaml}");
    assert!(yaml.contains("image: shoal-test/httpd:latest"), "{yaml}");
    assert!(yaml.contains("i=$$((i+1))"), "{yaml}");
    assert!(yaml.contains("mode: 256"), "{yaml}");
    assert!(!yaml.contains("x-restart"), "{yaml}");
}
