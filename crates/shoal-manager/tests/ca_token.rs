//! Join token format, parsing errors and CA pinning.

use shoal_manager::ca::{JoinToken, RootCa};

#[test]
fn token_round_trip_and_format() {
    let ca = RootCa::generate().unwrap();
    let tok = JoinToken::generate(&ca);
    let s = tok.to_string();
    let parts: Vec<&str> = s.split('-').collect();
    assert_eq!(parts.len(), 4, "{s}");
    assert_eq!(parts[0], "SWMTKN");
    assert_eq!(parts[1], "1");
    assert_eq!(parts[2].len(), 50);
    assert_eq!(parts[3].len(), 25);
    assert!(
        s[7..]
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_lowercase())
    );
    let back = JoinToken::parse(&s).unwrap();
    assert!(back.matches(&tok));
    assert_eq!(back, tok);
    assert!(back.ca_digest_matches(&ca));
    assert_eq!(back.ca_digest(), ca.digest());
    // Surrounding whitespace (pasted tokens) is tolerated.
    assert!(JoinToken::parse(&format!("  {s}\n")).unwrap().matches(&tok));
}

#[test]
fn worker_and_manager_tokens_differ_and_rotation_changes_secret() {
    let ca = RootCa::generate().unwrap();
    let worker = JoinToken::generate(&ca);
    let manager = JoinToken::generate(&ca);
    assert!(!worker.matches(&manager));
    let rotated = worker.rotate();
    assert!(!rotated.matches(&worker));
    assert_eq!(rotated.ca_digest(), worker.ca_digest());
    assert!(rotated.ca_digest_matches(&ca));
    let other_ca = RootCa::generate().unwrap();
    assert!(!worker.ca_digest_matches(&other_ca));
}

#[test]
fn malformed_tokens_are_refused_with_a_reason() {
    let ca = RootCa::generate().unwrap();
    let good = JoinToken::generate(&ca).to_string();
    let digest = &good[9..59];
    let secret = &good[60..];
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "must start with SWMTKN-"),
        ("hello".into(), "must start with SWMTKN-"),
        (format!("SWMTKN-2-1-{digest}-{secret}"), "version 2"),
        (format!("SWMTKN-3-{digest}-{secret}"), "unknown version"),
        (format!("SWMTKN-1-{digest}"), "expected SWMTKN-1"),
        (format!("SWMTKN-1-{digest}-{secret}-x"), "expected SWMTKN-1"),
        (
            format!("SWMTKN-1-{}-{secret}", &digest[1..]),
            "50 characters",
        ),
        (format!("SWMTKN-1-{digest}-{}0", secret), "25 characters"),
        (format!("SWMTKN-1-{}!-{secret}", &digest[1..]), "not base36"),
        (
            format!("SWMTKN-1-{}-{secret}", "z".repeat(50)),
            "out of range",
        ),
        (
            format!("SWMTKN-1-{digest}-{}", "z".repeat(25)),
            "out of range",
        ),
    ];
    for (input, want) in cases {
        let err = JoinToken::parse(&input).expect_err(&input).to_string();
        assert!(err.contains("invalid join token"), "{input}: {err}");
        assert!(err.contains(want), "{input}: {err} (wanted {want})");
    }
}

#[test]
fn debug_output_hides_the_secret() {
    let ca = RootCa::generate().unwrap();
    let tok = JoinToken::generate(&ca);
    let s = tok.to_string();
    let dbg = format!("{tok:?}");
    assert!(!dbg.contains(&s[60..]), "{dbg}");
}

#[test]
fn docker_format_token_parses_and_formats_back_identically() {
    // The example token from Docker's swarm documentation.
    let docker =
        "SWMTKN-1-0j52ln6hxjpxk2wgk917abcnxywj3xed0y8vi1e5m9t3uttrtu-7bnxvvlz2mrcpfonjuztmtts9";
    let tok = JoinToken::parse(docker).unwrap();
    assert_eq!(tok.to_string(), docker);
    // Base36 digits are case-insensitive.
    let upper_body = format!("SWMTKN-1-{}", docker[9..].to_uppercase());
    assert!(JoinToken::parse(&upper_body).unwrap().matches(&tok));
}
