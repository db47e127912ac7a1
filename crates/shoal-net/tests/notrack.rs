//! VXLAN kept out of connection tracking: nft accepts the raw-priority `notrack` rules the
//! node table carries, and UDP to the VXLAN port then leaves no conntrack entry while other
//! UDP still does. Needs root and `nft`.

mod common;

use std::net::UdpSocket;
use std::path::Path;

use shoal_net::netns::{self, NetnsGuard};
use shoal_net::nft::{self, DesiredState, IngressPort, Proto, TableGuard};

/// Conntrack entries of `ns` after sending one datagram to 127.0.0.1:`port` from inside it.
fn entries_after_send(ns: &Path, port: u16) -> usize {
    netns::run_in(ns, move || {
        let s = UdpSocket::bind("127.0.0.1:0").map_err(shoal_net::NetError::Io)?;
        s.send_to(b"x", ("127.0.0.1", port))
            .map_err(shoal_net::NetError::Io)?;
        let n = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
            .map_err(shoal_net::NetError::Io)?;
        Ok::<_, shoal_net::NetError>(n.trim().parse::<usize>().unwrap_or(usize::MAX))
    })
    .unwrap()
    .unwrap()
}

#[test]
fn vxlan_port_is_untracked() {
    common::require_root();
    common::require_nft();
    let ns = NetnsGuard::create(&common::unique("notrack")).unwrap();
    // `ip` forked from a thread inside the namespace runs there.
    let up = netns::run_in(ns.path(), || {
        std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
    })
    .unwrap()
    .unwrap();
    assert!(up.success(), "ip link set lo up failed");
    let table = nft::table_name("shoal", &format!("nt{}", std::process::id())).unwrap();
    let _guard = TableGuard {
        netns: Some(ns.path().into()),
        table: table.clone(),
    };
    // A NAT table (as the node's mesh table) turns conntrack on in the namespace.
    let st = DesiredState {
        ingress: vec![IngressPort {
            proto: Proto::Tcp,
            published_port: 8080,
            target_port: 80,
            backends: vec!["10.78.0.2".parse().unwrap()],
        }],
        notrack_udp: vec![shoal_net::VXLAN_PORT],
        ..Default::default()
    };
    nft::apply(Some(ns.path()), &nft::build_ruleset(&table, &st).unwrap()).unwrap();
    let listed = nft::list_table(Some(ns.path()), &table).unwrap().unwrap();
    assert!(listed.contains("udp dport 4789 notrack"), "{listed}");
    assert!(listed.contains("priority raw"), "{listed}");

    let before = entries_after_send(ns.path(), 9); // discard port: tracked
    assert!(before >= 1, "conntrack is not active in the namespace");
    let after = entries_after_send(ns.path(), shoal_net::VXLAN_PORT);
    assert_eq!(after, before, "a datagram to the VXLAN port was tracked");
    let tracked = entries_after_send(ns.path(), 10);
    assert_eq!(tracked, before + 1, "other UDP is still tracked");
}
