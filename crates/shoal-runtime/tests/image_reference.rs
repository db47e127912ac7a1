//! Reference normalization must match Docker's distribution/reference exactly.

use shoal_runtime::image::Reference;

#[test]
fn normalization_table() {
    // (input, full normalized form, familiar form)
    let table = [
        (
            "busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "busybox:1.36",
            "docker.io/library/busybox:1.36",
            "busybox:1.36",
        ),
        (
            "library/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "docker.io/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "index.docker.io/library/busybox:x",
            "docker.io/library/busybox:x",
            "busybox:x",
        ),
        ("user/app", "docker.io/user/app:latest", "user/app:latest"),
        (
            "user/sub/app:v1",
            "docker.io/user/sub/app:v1",
            "user/sub/app:v1",
        ),
        (
            "localhost/app",
            "localhost/app:latest",
            "localhost/app:latest",
        ),
        (
            "localhost:5000/app:v2",
            "localhost:5000/app:v2",
            "localhost:5000/app:v2",
        ),
        (
            "127.0.0.1:5000/shoal-test/busybox",
            "127.0.0.1:5000/shoal-test/busybox:latest",
            "127.0.0.1:5000/shoal-test/busybox:latest",
        ),
        (
            "quay.io/coreos/etcd:v3",
            "quay.io/coreos/etcd:v3",
            "quay.io/coreos/etcd:v3",
        ),
        (
            "[::1]:5000/app",
            "[::1]:5000/app:latest",
            "[::1]:5000/app:latest",
        ),
        ("Registry/app", "Registry/app:latest", "Registry/app:latest"),
        (
            "a_b__c-d---e/x.y",
            "docker.io/a_b__c-d---e/x.y:latest",
            "a_b__c-d---e/x.y:latest",
        ),
        (
            "busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        ),
        (
            "busybox:1.36@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "docker.io/library/busybox:1.36@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "busybox:1.36@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        ),
    ];
    for (input, full, familiar) in table {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.to_string(), full, "full form of {input}");
        assert_eq!(r.familiar(), familiar, "familiar form of {input}");
        // Both forms parse back to the same reference.
        assert_eq!(
            Reference::parse(full).ok().as_ref(),
            Some(&r),
            "reparse {full}"
        );
        assert_eq!(
            Reference::parse(familiar).ok().as_ref(),
            Some(&r),
            "reparse {familiar}"
        );
    }
}

#[test]
fn parts() {
    let r = Reference::parse("busybox").expect("valid");
    assert_eq!(r.domain(), "docker.io");
    assert_eq!(r.registry_endpoint(), "registry-1.docker.io");
    assert_eq!(r.repository(), "library/busybox");
    assert_eq!(r.tag(), Some("latest"));
    assert_eq!(r.name(), "docker.io/library/busybox");
    assert_eq!(r.familiar_name(), "busybox");
    let r = Reference::parse("127.0.0.1:5000/a/b:t").expect("valid");
    assert_eq!(r.domain(), "127.0.0.1:5000");
    assert_eq!(r.registry_endpoint(), "127.0.0.1:5000");
    assert_eq!(r.repository(), "a/b");
    assert_eq!(r.manifest_selector(), "t");
    let n = Reference::parse_name_only("busybox").expect("valid");
    assert_eq!(n.tag(), None);
}

#[test]
fn invalid_references() {
    for bad in [
        "",
        "Busybox",
        "busybox:",
        "busybox:-tag",
        "busybox@sha256:abc",
        "busybox@md5:1111",
        "a//b",
        "-a/b",
        "a/b-",
        "a/.b",
        "a/b..c",
        "a_b.c/x",
        "host:port/x",
        "localhost:/x",
        "a b",
        "1111111111111111111111111111111111111111111111111111111111111111",
    ] {
        assert!(Reference::parse(bad).is_err(), "{bad:?} must be refused");
    }
    let e = Reference::parse("Busybox").expect_err("uppercase");
    assert!(e.to_string().contains("must be lowercase"), "{e}");
    let long = format!("{}/x", "a".repeat(260));
    assert!(Reference::parse(&long).is_err());
}
