//! Certificates decide what a node may call on the cluster port: a worker cannot use
//! manager-only RPCs, and a removed node's certificate is refused.

use shoal_e2e::{Lab, LabOptions, in_netns, wait_for};
use shoal_manager::ca;
use shoal_proto::control::{ProposeRequest, control_client::ControlClient};
use shoal_proto::dispatcher::{HeartbeatRequest, dispatcher_client::DispatcherClient};
use std::time::Duration;
use tonic::Code;

/// Run `f` on a current-thread runtime inside lab namespace `ns`.
fn block_in<T: Send + 'static>(
    ns: &str,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    in_netns(ns, move || {
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .unwrap()
}

fn call_control(ns: &str, creds: ca::NodeCredentials, manager: String) -> Code {
    block_in(ns, async move {
        let ch = ca::tls::connect(&manager, &creds).await.unwrap();
        match ControlClient::new(ch)
            .propose(ProposeRequest {
                command_json: b"{}".to_vec(),
            })
            .await
        {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        }
    })
}

fn call_heartbeat(ns: &str, creds: ca::NodeCredentials, manager: String) -> (Code, String) {
    block_in(ns, async move {
        let ch = ca::tls::connect(&manager, &creds).await.unwrap();
        match DispatcherClient::new(ch)
            .heartbeat(HeartbeatRequest::default())
            .await
        {
            Ok(_) => (Code::Ok, String::new()),
            Err(s) => (s.code(), s.message().to_string()),
        }
    })
}

#[test]
fn worker_cert_refused_on_control_and_removed_cert_refused() {
    let lab = Lab::new(LabOptions {
        hosts: 2,
        daemon_args: Vec::new(),
    })
    .unwrap();
    lab.form_cluster(1).unwrap();
    let h1 = lab.host(1);
    wait_for("2 ready nodes", Duration::from_secs(30), || {
        let out = h1.shoal(&["node", "ls"])?;
        Ok((out.matches("Ready").count() == 2).then_some(()))
    })
    .unwrap();
    let manager = format!("{}:2377", h1.addr);
    let worker_creds = ca::load_credentials(&lab.host(2).data_root(), None).unwrap();
    let manager_creds = ca::load_credentials(&h1.data_root(), None).unwrap();
    assert_eq!(worker_creds.role, ca::Role::Worker);

    // A worker may heartbeat but not propose.
    let (code, _) = call_heartbeat(&lab.host(2).netns, worker_creds.clone(), manager.clone());
    assert_eq!(code, Code::Ok);
    assert_eq!(
        call_control(&lab.host(2).netns, worker_creds.clone(), manager.clone()),
        Code::PermissionDenied
    );
    // A manager certificate passes authorization (the empty command is then refused).
    assert_eq!(
        call_control(&h1.netns, manager_creds, manager.clone()),
        Code::InvalidArgument
    );

    // Remove the worker: its certificate is refused from then on.
    h1.shoal(&["node", "rm", "--force", "node2"]).unwrap();
    let (code, msg) = call_heartbeat(&lab.host(2).netns, worker_creds, manager);
    assert_eq!(code, Code::PermissionDenied, "{msg}");
    assert!(msg.contains("removed"), "{msg}");
}
