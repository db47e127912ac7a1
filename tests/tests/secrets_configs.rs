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
