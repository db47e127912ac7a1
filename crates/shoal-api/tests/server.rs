//! The API server on a temp unix socket with a fake backend: headers, versions, errors,
//! filters, create, streams, and the typed client.

mod common;

use common::{SELF_ID, TestServer, raw};
use serde_json::json;
use shoal_api::types::ErrorKind;
use shoal_api::{Client, Filters};

#[tokio::test]
async fn ping_headers_head_and_get() {
    let srv = TestServer::start().await;
    for method in ["HEAD", "GET"] {
        let r = raw(&srv.sock, method, "/_ping", &[], None).await;
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(r.header("Api-Version"), Some("1.47"));
        assert_eq!(r.header("Ostype"), Some("linux"));
        assert_eq!(r.header("Docker-Experimental"), Some("false"));
        assert_eq!(r.header("Swarm"), Some("active/manager"));
        assert_eq!(
            r.header("Cache-Control"),
            Some("no-cache, no-store, must-revalidate")
        );
        assert_eq!(r.header("Pragma"), Some("no-cache"));
        assert!(r.header("Server").unwrap().starts_with("Shoal/"));
        assert_eq!(r.text(), if method == "GET" { "OK" } else { "" });
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn version_prefix_and_range() {
    let srv = TestServer::start().await;
    for path in ["/info", "/v1.47/info", "/v1.41/info", "/v1.24/info"] {
        let r = raw(&srv.sock, "GET", path, &[], None).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["Swarm"]["NodeID"], SELF_ID);
        assert_eq!(
            r.header("Api-Version"),
            Some("1.47"),
            "headers on every response"
        );
    }
    let r = raw(&srv.sock, "GET", "/v1.99/info", &[], None).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"message": "client version 1.99 is too new. Maximum supported API version is 1.47"})
    );
    let r = raw(&srv.sock, "GET", "/v1.12/version", &[], None).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("client version 1.12 is too old")
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn errors_have_docker_shape() {
    let srv = TestServer::start().await;
    // Unknown route and wrong method: 404 page not found.
    for (m, p) in [("GET", "/v1.47/nope"), ("DELETE", "/info"), ("GET", "/")] {
        let r = raw(&srv.sock, m, p, &[], None).await;
        assert_eq!(r.status, 404, "{m} {p}");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json(), json!({"message": "page not found"}));
    }
    // Backend errors keep their status and message.
    let r = raw(&srv.sock, "GET", "/v1.47/nodes/nosuch", &[], None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json(), json!({"message": "node nosuch not found"}));
    // Malformed JSON: 400 with a message (never axum's 422 text).
    let r = raw(
        &srv.sock,
        "POST",
        "/v1.47/services/create",
        &[("Content-Type", "application/json")],
        Some(b"{bad"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON"),
        "{}",
        r.text()
    );
    // Wrong field type is a 400 too.
    let r = raw(
        &srv.sock,
        "POST",
        "/v1.47/nodes/mgr1/update?version=206",
        &[],
        Some(br#"{"Role":7}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Required body missing.
    let r = raw(&srv.sock, "POST", "/v1.47/swarm/init", &[], None).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("empty"));
    // No body where Docker sends none.
    let r = raw(&srv.sock, "POST", "/v1.47/swarm/leave?force=1", &[], None).await;
    assert_eq!(r.status, 200);
    let r = raw(&srv.sock, "POST", "/v1.47/swarm/leave", &[], None).await;
    assert_eq!(r.status, 503);
    // Missing or bad ?version= on an update.
    let r = raw(
        &srv.sock,
        "POST",
        "/v1.47/nodes/mgr1/update",
        &[],
        Some(b"{}"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid node version ''")
    );
    // A stale version comes back as moby's 500.
    let r = raw(
        &srv.sock,
        "POST",
        "/v1.47/nodes/mgr1/update?version=1",
        &[],
        Some(b"{}"),
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"message": "update out of sequence"}));
    // Oversized body: refused with a JSON 400, nothing decoded.
    let big = vec![b' '; 17 * 1024 * 1024];
    let r = raw(&srv.sock, "POST", "/v1.47/secrets/create", &[], Some(&big)).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("too large"));
    srv.shutdown().await;
}

#[tokio::test]
async fn swarm_init_returns_json_string() {
    let srv = TestServer::start().await;
    let body = br#"{"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"","DataPathAddr":"","DataPathPort":0,"ForceNewCluster":false,"Spec":{"Labels":null,"Orchestration":{},"Raft":{"ElectionTick":0,"HeartbeatTick":0},"Dispatcher":{},"CAConfig":{},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}},"AutoLockManagers":false,"Availability":"","DefaultAddrPool":[],"SubnetSize":24}
"#;
    let r = raw(
        &srv.sock,
        "POST",
        "/v1.47/swarm/init",
        &[("Content-Type", "application/json")],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!(SELF_ID));
    srv.shutdown().await;
}

#[tokio::test]
async fn filters_both_forms() {
    let srv = TestServer::start().await;
    let q = "filters=%7B%22role%22%3A%7B%22manager%22%3Atrue%7D%7D"; // {"role":{"manager":true}}
    let r = raw(&srv.sock, "GET", &format!("/v1.47/nodes?{q}"), &[], None).await;
    assert_eq!(r.status, 200);
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["ID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![SELF_ID.to_string()]);
    let q = "filters=%7B%22role%22%3A%5B%22worker%22%5D%7D"; // {"role":["worker"]}
    let r = raw(&srv.sock, "GET", &format!("/nodes?{q}"), &[], None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(r.json()[0]["Spec"]["Role"], "worker");
    let r = raw(&srv.sock, "GET", "/nodes?filters=%7Bnope", &[], None).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid filter")
    );
    let r = raw(
        &srv.sock,
        "GET",
        "/nodes?filters=%7B%22color%22%3A%7B%22red%22%3Atrue%7D%7D",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"message": "invalid filter 'color'"}));
    srv.shutdown().await;
}

#[tokio::test]
async fn service_create_is_201_and_passes_registry_auth() {
    let srv = TestServer::start().await;
    let body = br#"{"Name":"web","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest","Init":false},"ForceUpdate":0,"Runtime":"container"},"Mode":{"Replicated":{}},"SomeFutureField":{"x":1}}"#;
    let r = raw(
        &srv.sock,
        "POST",
        "/v1.47/services/create",
        &[
            ("Content-Type", "application/json"),
            ("X-Registry-Auth", "eyJ1c2VybmFtZSI6ImEifQ=="),
        ],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({"ID": "svc1", "Warnings": null}));
    {
        let s = srv.fake.services.lock().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0.annotations.name, "web");
        assert_eq!(s[0].1.as_deref(), Some("eyJ1c2VybmFtZSI6ImEifQ=="));
    }
    let r = raw(&srv.sock, "POST", "/v1.47/services/create", &[], Some(body)).await;
    assert_eq!(r.status, 409);
    srv.shutdown().await;
}

#[tokio::test]
async fn other_success_codes() {
    let srv = TestServer::start().await;
    let r = raw(
        &srv.sock,
        "POST",
        "/v1.47/secrets/create",
        &[],
        Some(br#"{"Name":"s","Data":"Y2ZnPTEK"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({"ID": "sec1"}));
    let r = raw(&srv.sock, "DELETE", "/v1.47/secrets/s", &[], None).await;
    assert_eq!(r.status, 204);
    let r = raw(
        &srv.sock,
        "POST",
        "/v1.47/networks/create",
        &[],
        Some(br#"{"Name":"n","Driver":"overlay"}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json(), json!({"Id": "net1", "Warning": ""}));
    let r = raw(&srv.sock, "DELETE", "/v1.47/networks/n", &[], None).await;
    assert_eq!(r.status, 204);
    // Image references with '/' and ':' reach the distribution handler whole.
    let r = raw(
        &srv.sock,
        "GET",
        "/v1.47/distribution/reg:5000/library/nginx:latest/json",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Name"], "reg:5000/library/nginx:latest");
    // Endpoints the fake does not back say so clearly.
    let r = raw(&srv.sock, "GET", "/v1.47/containers/json", &[], None).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["message"],
        "listing containers is not supported by this daemon"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn logs_are_multiplexed_frames() {
    let srv = TestServer::start().await;
    let r = raw(
        &srv.sock,
        "GET",
        "/v1.47/services/web/logs?details=1&stderr=1&stdout=1&tail=all&timestamps=1&follow=1",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.docker.multiplexed-stream")
    );
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert!(r.header("Content-Length").is_none());
    let details = format!(
        "com.docker.swarm.node.id={SELF_ID},com.docker.swarm.service.id=svc1,com.docker.swarm.task.id=task1"
    );
    let p1 = format!("2026-11-23T08:49:25.575405293Z {details} line 0\n");
    let p2 = format!("2026-11-23T08:49:25.575405293Z {details} oops\n");
    let mut want = Vec::new();
    for (k, p) in [
        (1u8, p1.as_bytes()),
        (2, p2.as_bytes()),
        (3, b"task vanished".as_slice()),
    ] {
        want.push(k);
        want.extend_from_slice(&[0, 0, 0]);
        want.extend_from_slice(&(p.len() as u32).to_be_bytes());
        want.extend_from_slice(p);
    }
    assert_eq!(r.body, want);
    // Without timestamps/details the payload is the bare line.
    let r = raw(&srv.sock, "GET", "/services/web/logs?stdout=1", &[], None).await;
    assert_eq!(&r.body[..15], b"\x01\x00\x00\x00\x00\x00\x00\x07line 0\n");
    // Errors before the stream starts are JSON.
    let r = raw(
        &srv.sock,
        "GET",
        "/services/nosuch/logs?stdout=1",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    srv.shutdown().await;
}

#[tokio::test]
async fn events_are_ndjson() {
    let srv = TestServer::start().await;
    let r = raw(&srv.sock, "GET", "/v1.47/events?since=1795423000&until=1795423700&filters=%7B%22type%22%3A%7B%22service%22%3Atrue%7D%7D", &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["Action"], "create");
    assert_eq!(first["timeNano"], json!(1795423672466838412u64));
    let f = srv.fake.last_filters.lock().unwrap().clone().unwrap();
    assert_eq!(f.get("type"), vec!["service"]);
    let r = raw(&srv.sock, "GET", "/events?since=yesterday", &[], None).await;
    assert_eq!(r.status, 400);
    srv.shutdown().await;
}

#[tokio::test]
async fn typed_client_round_trips() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv.host()).unwrap();
    let p = c.ping().await.unwrap();
    assert_eq!(
        (p.api_version.as_str(), p.os_type.as_str(), p.swarm.as_str()),
        ("1.47", "linux", "active/manager")
    );
    // Several calls share one connection.
    let v = c.version().await.unwrap();
    assert_eq!(v.api_version, "1.47");
    let info = c.info().await.unwrap();
    assert_eq!(info.swarm.node_id, SELF_ID);
    let mut f = Filters::default();
    f.add("role", "worker");
    let nodes = c.node_list(&f).await.unwrap();
    assert_eq!(nodes.len(), 1);
    let e = c.node_inspect("nosuch").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(e.message, "node nosuch not found");
    let e = c.node_update("mgr1", 1, &nodes[0].spec).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutOfSequence);
    let sw = c.swarm_inspect().await.unwrap();
    assert_eq!(sw.join_tokens.worker, "SWMTKN-1-aaa-worker");
    let spec: shoal_api::types::ServiceSpec = serde_json::from_value(
        json!({"Name": "api", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}}),
    )
    .unwrap();
    let created = c.service_create(&spec, None).await.unwrap();
    assert_eq!(created.id, "svc1");
    let e = c.swarm_leave(false).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    c.swarm_leave(true).await.unwrap();
    // Streams: logs demultiplexed, error frame surfaces as Err.
    use futures::StreamExt;
    let opts = shoal_api::LogsOptions {
        stdout: true,
        stderr: true,
        follow: true,
        ..Default::default()
    };
    let items: Vec<_> = c.service_logs("web", &opts).await.unwrap().collect().await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().1.as_ref(), b"line 0\n");
    assert_eq!(items[1].as_ref().unwrap().0, shoal_api::StdStream::Stderr);
    assert!(
        items[2]
            .as_ref()
            .unwrap_err()
            .message
            .contains("task vanished")
    );
    // A past `until` means replay only, so the stream ends.
    let opts = shoal_api::EventsOptions {
        until: Some(shoal_api::parse_timestamp("1795423700").unwrap()),
        ..Default::default()
    };
    let evs: Vec<_> = c.events(&opts).await.unwrap().collect().await;
    assert_eq!(evs.len(), 2);
    srv.shutdown().await;
    // After shutdown the socket file is gone and the client reports the daemon as unreachable.
    let e = Client::new(&format!(
        "unix://{}/shoal.sock",
        std::env::temp_dir().display()
    ))
    .unwrap()
    .info()
    .await;
    assert!(e.is_err());
}

#[tokio::test]
async fn stale_socket_is_replaced_and_mode_is_0660() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    // A socket file nobody listens on (left by a crashed daemon).
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let fake = std::sync::Arc::new(common::Fake::default());
    let server = shoal_api::Server::bind_unix(&sock, fake.clone())
        .await
        .unwrap();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // A live one is refused.
    let err = shoal_api::Server::bind_unix(&sock, fake)
        .await
        .err()
        .expect("second bind fails");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    drop(server);
}

#[tokio::test]
async fn shutdown_cuts_open_streams_after_grace() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await;
    // A followed events stream never ends by itself.
    let mut s = tokio::net::UnixStream::connect(&srv.sock).await.unwrap();
    s.write_all(b"GET /v1.47/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let sock = srv.sock.clone();
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(5), srv.shutdown())
        .await
        .expect("server stops within the grace period despite the open stream");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert!(!sock.exists(), "socket file removed on shutdown");
}

#[tokio::test]
async fn wait_checks_the_container_then_streams_the_result() {
    let srv = TestServer::start().await;
    let r = raw(&srv.sock, "POST", "/containers/nosuch/wait", &[], None).await;
    assert_eq!(r.status, 404);
    let r = raw(
        &srv.sock,
        "POST",
        "/containers/c1/wait?condition=next-exit",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json(), json!({"StatusCode": 3}));
    // A wait that fails after the headers went out reports it in the body.
    let r = raw(
        &srv.sock,
        "POST",
        "/containers/c1/wait?condition=removed",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"StatusCode": -1, "Error": {"Message": "container c1 is still there"}})
    );
    let r = raw(
        &srv.sock,
        "POST",
        "/containers/c1/wait?condition=bogus",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    srv.shutdown().await;
}
