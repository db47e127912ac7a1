//! At-rest encryption: seal/open, unlock keys, the node key file (clear and autolocked) and
//! credentials on disk.

use std::os::unix::fs::PermissionsExt;

use shoal_manager::ca::{
    CERTIFICATES_DIR, CaError, DEFAULT_NODE_CERT_VALIDITY, Dek, Kek, NODE_KEY_FILE,
    NodeCredentials, NodeKey, NodeSecrets, Role, RootCa, credentials_exist, load_credentials, open,
    save_credentials, seal,
};

#[test]
fn seal_open_round_trip_and_wrong_key() {
    let dek = Dek::generate();
    let sealed = seal(&dek, b"raft entry 42");
    assert!(!sealed.windows(13).any(|w| w == b"raft entry 42"));
    assert_eq!(open(&dek, &sealed).unwrap(), b"raft entry 42");

    let err = open(&Dek::generate(), &sealed).unwrap_err();
    assert!(matches!(err, CaError::Decrypt(_)), "{err:?}");
    assert!(err.to_string().contains("wrong key"), "{err}");

    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(open(&dek, &tampered), Err(CaError::Decrypt(_))));
    assert!(open(&dek, &sealed[..10]).is_err());
    // Empty plaintext is fine.
    assert_eq!(open(&dek, &seal(&dek, b"")).unwrap(), b"");
}

#[test]
fn unlock_key_format_and_parse() {
    let k = Kek::generate();
    let s = k.to_string();
    assert!(s.starts_with("SWMKEY-1-"), "{s}");
    assert_eq!(Kek::parse(&s).unwrap(), k);
    assert_eq!(s.parse::<Kek>().unwrap(), k);
    // Padded base64 and surrounding whitespace are accepted too.
    assert_eq!(Kek::parse(&format!(" {s}=\n")).unwrap(), k);
    assert_ne!(Kek::generate(), k);
    assert!(!format!("{k:?}").contains(&s[9..]));

    for bad in [
        "",
        "SWMKEY-1-",
        "SWMKEY-2-AAAA",
        "swmkey-1-AAAA",
        "SWMKEY-1-not*base64",
        "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // 30 bytes
    ] {
        let err = Kek::parse(bad).expect_err(bad);
        assert!(
            err.to_string().contains("invalid unlock key"),
            "{bad}: {err}"
        );
    }
    // Docker's format (unpadded standard base64), as printed by `docker swarm update --autolock`.
    let docker = "SWMKEY-1-z9oAfp8Y3GQm/HPoOJ727eQiAFOx5d6oFhB6KT8oub8";
    assert_eq!(Kek::parse(docker).unwrap().to_string(), docker);

    // A sealed record opens only with the same unlock key.
    let sealed = seal(&k, b"secret");
    assert_eq!(open(&Kek::parse(&s).unwrap(), &sealed).unwrap(), b"secret");
}

fn node_creds() -> NodeCredentials {
    let ca = RootCa::generate().unwrap();
    let key = NodeKey::generate().unwrap();
    let cert = ca
        .issue(
            &key.csr_pem().unwrap(),
            "nodeabc",
            Role::Manager,
            "clu1",
            DEFAULT_NODE_CERT_VALIDITY,
        )
        .unwrap();
    NodeCredentials::from_parts(key.key_pem(), cert, ca.cert_pem().to_string()).unwrap()
}

#[test]
fn node_secrets_clear_and_locked() {
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::generate().unwrap();
    let secrets = NodeSecrets {
        key_pem: key.key_pem(),
        dek: Some(Dek::generate()),
    };

    // Clear: readable without a key, the file starts with the plain PKCS#8 key.
    secrets.save(dir.path(), None).unwrap();
    let path = dir.path().join(CERTIFICATES_DIR).join(NODE_KEY_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!NodeSecrets::is_sealed(dir.path()).unwrap());
    assert_eq!(NodeSecrets::load(dir.path(), None).unwrap(), secrets);

    // Autolock: sealed under the unlock key; without it the swarm is locked.
    let kek = Kek::generate();
    secrets.save(dir.path(), Some(&kek)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(NodeSecrets::is_sealed(dir.path()).unwrap());
    let err = NodeSecrets::load(dir.path(), None).unwrap_err();
    assert!(matches!(err, CaError::Locked), "{err:?}");
    assert_eq!(err.to_string(), "swarm is locked: use `shoal swarm unlock`");
    let err = NodeSecrets::load(dir.path(), Some(&Kek::generate())).unwrap_err();
    assert!(err.to_string().contains("unlock key"), "{err}");
    assert_eq!(NodeSecrets::load(dir.path(), Some(&kek)).unwrap(), secrets);

    // Turning autolock off again writes it in clear.
    secrets.save(dir.path(), None).unwrap();
    assert_eq!(NodeSecrets::load(dir.path(), None).unwrap(), secrets);
}

#[test]
fn garbage_key_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join(CERTIFICATES_DIR);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join(NODE_KEY_FILE), "hello").unwrap();
    let err = NodeSecrets::load(dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("no private key"), "{err}");
    std::fs::write(
        certs.join(NODE_KEY_FILE),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
    )
    .unwrap();
    let err = NodeSecrets::load(dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("unterminated"), "{err}");
}

#[test]
fn credentials_round_trip_keep_dek_and_lock() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!credentials_exist(dir.path()));
    let err = load_credentials(dir.path(), None).unwrap_err();
    assert!(matches!(err, CaError::NotFound(_)), "{err:?}");

    let creds = node_creds();
    save_credentials(dir.path(), &creds, None).unwrap();
    assert!(credentials_exist(dir.path()));
    let back = load_credentials(dir.path(), None).unwrap();
    assert_eq!(back, creds);
    assert_eq!(back.node_id, "nodeabc");
    assert_eq!(back.role, Role::Manager);
    let key_path = dir.path().join(CERTIFICATES_DIR).join(NODE_KEY_FILE);
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A DEK added later survives a certificate renewal written by save_credentials.
    let dek = Dek::generate();
    NodeSecrets {
        key_pem: creds.key_pem.clone(),
        dek: Some(dek.clone()),
    }
    .save(dir.path(), None)
    .unwrap();
    save_credentials(dir.path(), &creds, None).unwrap();
    assert_eq!(
        NodeSecrets::load(dir.path(), None).unwrap().dek,
        Some(dek.clone())
    );

    // Autolocked: loading needs the unlock key, and the DEK is still there.
    let kek = Kek::generate();
    NodeSecrets::load(dir.path(), None)
        .unwrap()
        .save(dir.path(), Some(&kek))
        .unwrap();
    assert!(matches!(
        load_credentials(dir.path(), None),
        Err(CaError::Locked)
    ));
    // Rewriting sealed credentials needs the key too.
    assert!(matches!(
        save_credentials(dir.path(), &creds, None),
        Err(CaError::Locked)
    ));
    save_credentials(dir.path(), &creds, Some(&kek)).unwrap();
    assert_eq!(load_credentials(dir.path(), Some(&kek)).unwrap(), creds);
    assert_eq!(
        NodeSecrets::load(dir.path(), Some(&kek)).unwrap().dek,
        Some(dek)
    );

    // A certificate the root did not sign is refused.
    let stranger = RootCa::generate().unwrap();
    let err = NodeCredentials::from_parts(
        creds.key_pem.clone(),
        creds.cert_pem.clone(),
        stranger.cert_pem().to_string(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not valid for this root CA"),
        "{err}"
    );
    assert!(!creds.is_expired().unwrap());

    // A key that does not belong to the certificate is refused.
    let other = node_creds();
    NodeSecrets {
        key_pem: other.key_pem,
        dek: None,
    }
    .save(dir.path(), None)
    .unwrap();
    let err = load_credentials(dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
}
