//! Secrets and configs through the stock docker CLI and the shoal CLI: data never shown for
//! secrets, labels-only updates, clear errors, names unique.

use shoal_e2e::{Lab, LabOptions};

#[test]
fn secrets_and_configs_round_trip() {
    let lab = Lab::new(LabOptions {
        hosts: 1,
        daemon_args: Vec::new(),
    })
    .unwrap();
    lab.init_swarm().unwrap();
    let h = lab.host(1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw.txt");
    std::fs::write(&file, "s3cret-marker\n").unwrap();
    let f = file.to_string_lossy().to_string();

    let id = h
        .docker(&["secret", "create", "-l", "team=a", "db_pw", &f])
        .unwrap();
    assert_eq!(id.trim().len(), 25, "{id}");
    let ls = h.docker(&["secret", "ls"]).unwrap();
    assert!(ls.contains("db_pw"), "{ls}");
    let inspect = h.docker(&["secret", "inspect", "db_pw"]).unwrap();
    assert!(inspect.contains("\"team\": \"a\""), "{inspect}");
    assert!(!inspect.contains("Data"), "secret data returned: {inspect}");
    let raw = h.api_get("/v1.47/secrets").unwrap().to_string();
    assert!(!raw.contains("czNjcmV0"), "secret data in list: {raw}");
    // Same name again: a conflict, nothing created.
    let dup = h
        .docker(&["secret", "create", "db_pw", &f])
        .unwrap_err()
        .to_string();
    assert!(dup.contains("already exists"), "{dup}");
    // Invalid name refused.
    let bad = h
        .docker(&["secret", "create", "bad/name", &f])
        .unwrap_err()
        .to_string();
    assert!(bad.to_lowercase().contains("invalid"), "{bad}");

    // The Raft data on disk is sealed: neither the secret's bytes nor their base64 appear.
    let raft = std::fs::read(h.data_root().join("raft/raft.redb")).unwrap();
    for needle in [&b"s3cret-marker"[..], &b"czNjcmV0LW1hcmtlcgo"[..]] {
        assert!(
            !raft.windows(needle.len()).any(|w| w == needle),
            "secret found in clear in raft.redb"
        );
    }

    h.docker(&["config", "create", "app_cfg", &f]).unwrap();
    let cfg = h.docker(&["config", "inspect", "app_cfg"]).unwrap();
    // Configs do return their data (base64 of "s3cret-marker\n").
    assert!(cfg.contains("czNjcmV0LW1hcmtlcgo="), "{cfg}");
    let ls = h.shoal(&["config", "ls"]).unwrap();
    assert!(ls.contains("app_cfg"), "{ls}");

    h.docker(&["secret", "rm", "db_pw"]).unwrap();
    h.docker(&["config", "rm", "app_cfg"]).unwrap();
    assert!(h.docker(&["secret", "inspect", "db_pw"]).is_err());
    assert_eq!(h.api_get("/v1.47/configs").unwrap(), serde_json::json!([]));
}

/// `--template-driver golang`: the config is rendered on the node for each task (service,
/// task slot, node hostname, the container's env, another secret of the task); the stored
/// config keeps the template, and an unknown driver is refused.
#[test]
fn templated_config_rendered_per_task() {
    let lab = Lab::swarm_with_images(1, "busybox.tar").unwrap();
    let h = lab.host(1);
    let tpl = "svc={{.Service.Name}} slot={{.Task.Slot}} node={{.Node.Hostname}} \
               mode={{env \"MODE\"}} pw={{secret \"pw\"}}\n";
    let out = h
        .shoal_stdin(
            &[
                "config",
                "create",
                "--template-driver",
                "golang",
                "app_tpl",
                "-",
            ],
            tpl,
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bad = h
        .shoal_stdin(
            &[
                "config",
                "create",
                "--template-driver",
                "jinja",
                "bad_tpl",
                "-",
            ],
            tpl,
        )
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not supported"),
        "{bad:?}"
    );
    let pw = h
        .shoal_stdin(&["secret", "create", "pw", "-"], "hunter2")
        .unwrap();
    assert!(pw.status.success(), "{pw:?}");
    h.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "tpl",
        "-e",
        "MODE=prod",
        "--secret",
        "pw",
        "--config",
        "source=app_tpl,target=/app.conf",
        "shoal-test/busybox:latest",
        "sleep",
        "600",
    ])
    .unwrap();
    let cid = shoal_e2e::wait_for(
        "the task's container",
        std::time::Duration::from_secs(60),
        || {
            let ps = h.docker(&["ps", "-q", "--filter", "name=tpl."])?;
            Ok(ps.lines().next().map(str::to_string))
        },
    )
    .unwrap();
    let rendered = h.docker(&["exec", &cid, "cat", "/app.conf"]).unwrap();
    let hostname = h
        .docker(&["info", "--format", "{{.Name}}"])
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        rendered,
        format!("svc=tpl slot=1 node={hostname} mode=prod pw=hunter2\n")
    );
    // The cluster keeps the template itself.
    let stored = h.docker(&["config", "inspect", "app_tpl"]).unwrap();
    assert!(stored.contains("\"golang\""), "{stored}");
    h.docker(&["service", "rm", "tpl"]).unwrap();
}
