//! Data-plane figures on this machine (root): TCP throughput over a VXLAN overlay vs over the
//! underlay veth between two namespaces, and connection rate through an nftables VIP vs direct.
//! Every namespace, link and table it makes is removed at the end (also on error).
//!
//! Run: `cargo run --release -p shoal-net --example net_bench`

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shoal_net::netlink::Netlink;
use shoal_net::netns::{self, NetnsGuard};
use shoal_net::nft::{self, DesiredState, Proto, TableGuard, VipService};
use shoal_net::overlay::{Overlay, OverlaySpec};

const RUN: Duration = Duration::from_secs(3);

/// Bytes per second from `from` (namespace) to `to` (a receiver in namespace `rx_ns`).
fn throughput(from: &Path, rx_ns: &Path, to: SocketAddr) -> anyhow::Result<f64> {
    let l = netns::run_in(rx_ns, || TcpListener::bind(to))??;
    let rx = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = l.accept()?;
        s.set_read_timeout(Some(RUN * 3))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut s = netns::run_in(from, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(3))
    })??;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let chunk = vec![0x5au8; 128 * 1024];
    let start = Instant::now();
    while start.elapsed() < RUN {
        s.write_all(&chunk)?;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let total = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// A tiny request/response server (one thread per connection), stopped by the flag.
fn serve(
    ns: &Path,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let l = netns::run_in(ns, || TcpListener::bind(addr))??;
    l.set_nonblocking(true)?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let mut b = [0u8; 16];
                    if s.read(&mut b).is_ok() {
                        let _ = s.write_all(b"ok");
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }))
}

/// New connection per request, for `RUN`: requests per second.
fn conn_rate(ns: &Path, to: SocketAddr) -> anyhow::Result<f64> {
    netns::run_in(ns, || -> anyhow::Result<f64> {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < RUN {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"q")?;
            let mut b = [0u8; 2];
            s.read_exact(&mut b)?;
            n += 1;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    })?
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("net_bench needs root (namespaces, netlink, nftables)");
    }
    let tag = |t: &str| format!("snb{}-{t}", std::process::id());
    let h1 = NetnsGuard::create(&tag("h1"))?;
    let h2 = NetnsGuard::create(&tag("h2"))?;
    let c1 = NetnsGuard::create(&tag("c1"))?;
    let c2 = NetnsGuard::create(&tag("c2"))?;
    let n1 = Netlink::in_netns(h1.path())?;
    let n2 = Netlink::in_netns(h2.path())?;
    let (u1, u2) = (
        Ipv4Addr::new(169, 254, 93, 1),
        Ipv4Addr::new(169, 254, 93, 2),
    );
    n1.create_veth("bun0", "bun1", None).await?;
    n1.move_to_netns("bun1", h2.path()).await?;
    n1.add_address("bun0", IpAddr::V4(u1), 30).await?;
    n2.add_address("bun1", IpAddr::V4(u2), 30).await?;
    for (n, l) in [(&n1, "bun0"), (&n2, "bun1")] {
        n.set_up(l).await?;
        n.set_up("lo").await?;
    }
    let mtu = shoal_net::overlay_mtu(1500, false)?;
    let spec = |vtep, p: String| OverlaySpec {
        network_id: "bench".into(),
        vni: 777,
        subnet: "10.91.0.0/24".parse().expect("literal subnet"),
        gateway: Ipv4Addr::new(10, 91, 0, 1),
        local_vtep: vtep,
        mtu,
        netns_prefix: p,
    };
    let o1 = Overlay::ensure(&n1, spec(u1, tag("a-"))).await?;
    let o2 = Overlay::ensure(&n2, spec(u2, tag("b-"))).await?;
    let names = [o1.spec.netns_name(), o2.spec.netns_name()];
    let res = run(&h1, &h2, &c1, &c2, &o1, &o2, u2).await;
    o1.teardown().await?;
    o2.teardown().await?;
    for n in names {
        netns::delete(&n)?;
    }
    res
}

async fn run(
    h1: &NetnsGuard,
    h2: &NetnsGuard,
    c1: &NetnsGuard,
    c2: &NetnsGuard,
    o1: &Overlay,
    o2: &Overlay,
    u2: Ipv4Addr,
) -> anyhow::Result<()> {
    let (ip1, ip2) = (Ipv4Addr::new(10, 91, 0, 2), Ipv4Addr::new(10, 91, 0, 3));
    let a1 = o1
        .attach_endpoint(c1.path(), "eth0", ip1, None, true)
        .await?;
    let a2 = o2
        .attach_endpoint(c2.path(), "eth0", ip2, None, true)
        .await?;
    o1.add_remote_endpoint(ip2, a2.mac, u2).await?;
    o2.add_remote_endpoint(ip1, a1.mac, Ipv4Addr::new(169, 254, 93, 1))
        .await?;

    let (p1, p2): (PathBuf, PathBuf) = (h1.path().into(), h2.path().into());
    let under =
        tokio::task::spawn_blocking(move || throughput(&p1, &p2, SocketAddr::from((u2, 5201))))
            .await??;
    let (p1, p2): (PathBuf, PathBuf) = (c1.path().into(), c2.path().into());
    let over =
        tokio::task::spawn_blocking(move || throughput(&p1, &p2, SocketAddr::from((ip2, 5201))))
            .await??;
    println!("underlay veth : {:8.1} MB/s", under / 1e6);
    println!("overlay vxlan : {:8.1} MB/s (MTU {})", over / 1e6, a1.mtu);
    println!("overlay/underlay ratio: {:.2}", over / under);

    // VIP in the client's namespace (as Docker does per sandbox) -> the task across the overlay.
    let vip = Ipv4Addr::new(10, 91, 0, 100);
    let table = nft::table_name("shoalbench", &format!("{}", std::process::id()))?;
    let _tg = TableGuard {
        netns: Some(c1.path().into()),
        table: table.clone(),
    };
    let st = DesiredState {
        vips: vec![VipService {
            vip,
            proto: Proto::Tcp,
            port: 80,
            target_port: 8080,
            backends: vec![ip2],
        }],
        ..Default::default()
    };
    nft::apply(Some(c1.path()), &nft::build_ruleset(&table, &st)?)?;
    let stop = Arc::new(AtomicBool::new(false));
    let srv = serve(c2.path(), SocketAddr::from((ip2, 8080)), stop.clone())?;
    let p1: PathBuf = c1.path().into();
    let direct =
        tokio::task::spawn_blocking(move || conn_rate(&p1, SocketAddr::from((ip2, 8080)))).await?;
    let p1: PathBuf = c1.path().into();
    let via_vip =
        tokio::task::spawn_blocking(move || conn_rate(&p1, SocketAddr::from((vip, 80)))).await?;
    stop.store(true, Ordering::Relaxed);
    let _ = srv.join();
    let (direct, via_vip) = (direct?, via_vip?);
    println!("direct connect: {direct:8.0} conn/s");
    println!(
        "via nft VIP   : {via_vip:8.0} conn/s (ratio {:.2})",
        via_vip / direct
    );
    nft::delete_table(Some(c1.path()), &table)?;
    encrypted(h1, h2, u2).await
}

/// The same overlay test, but VXLAN between WireGuard (boringtun) addresses.
async fn encrypted(h1: &NetnsGuard, h2: &NetnsGuard, u2: Ipv4Addr) -> anyhow::Result<()> {
    use shoal_net::wireguard::{KeyPair, WG_PORT, WgDevice, WgPeer};
    let u1 = Ipv4Addr::new(169, 254, 93, 1);
    let tag = |t: &str| format!("snb{}-{t}", std::process::id());
    let c3 = NetnsGuard::create(&tag("c3"))?;
    let c4 = NetnsGuard::create(&tag("c4"))?;
    let (n1, n2) = (Netlink::in_netns(h1.path())?, Netlink::in_netns(h2.path())?);
    let pid = std::process::id() % 100_000;
    let d1 = WgDevice::create(&format!("sba{pid}"), Some(h1.path()))?;
    let d2 = WgDevice::create(&format!("sbb{pid}"), Some(h2.path()))?;
    let (k1, k2) = (KeyPair::generate(), KeyPair::generate());
    d1.configure(&k1, WG_PORT)?;
    d2.configure(&k2, WG_PORT)?;
    let (w1, w2) = (Ipv4Addr::new(10, 97, 0, 1), Ipv4Addr::new(10, 97, 0, 2));
    let peer = |k: &KeyPair, u: Ipv4Addr, w: Ipv4Addr| -> anyhow::Result<WgPeer> {
        Ok(WgPeer {
            public_key: k.public_base64(),
            endpoint: Some(SocketAddr::from((u, WG_PORT))),
            allowed_ips: vec![format!("{w}/32").parse()?],
            keepalive: Some(25),
        })
    };
    d1.set_peer(&peer(&k2, u2, w2)?)?;
    d2.set_peer(&peer(&k1, u1, w1)?)?;
    for (n, d, w) in [(&n1, &d1, w1), (&n2, &d2, w2)] {
        n.add_address(d.name(), IpAddr::V4(w), 24).await?;
        n.set_mtu(d.name(), 1500 - shoal_net::WIREGUARD_OVERHEAD)
            .await?;
        n.set_up(d.name()).await?;
    }
    let mtu = shoal_net::overlay_mtu(1500, true)?;
    let spec = |vtep, p: String| OverlaySpec {
        network_id: "bench-enc".into(),
        vni: 778,
        subnet: "10.94.0.0/24".parse().expect("literal subnet"),
        gateway: Ipv4Addr::new(10, 94, 0, 1),
        local_vtep: vtep,
        mtu,
        netns_prefix: p,
    };
    let o1 = Overlay::ensure(&n1, spec(w1, tag("ea-"))).await?;
    let o2 = Overlay::ensure(&n2, spec(w2, tag("eb-"))).await?;
    let names = [o1.spec.netns_name(), o2.spec.netns_name()];
    let res = async {
        let (ip1, ip2) = (Ipv4Addr::new(10, 94, 0, 2), Ipv4Addr::new(10, 94, 0, 3));
        let a1 = o1
            .attach_endpoint(c3.path(), "eth0", ip1, None, true)
            .await?;
        let a2 = o2
            .attach_endpoint(c4.path(), "eth0", ip2, None, true)
            .await?;
        o1.add_remote_endpoint(ip2, a2.mac, w2).await?;
        o2.add_remote_endpoint(ip1, a1.mac, w1).await?;
        let (p1, p2): (PathBuf, PathBuf) = (c3.path().into(), c4.path().into());
        let enc = tokio::task::spawn_blocking(move || {
            throughput(&p1, &p2, SocketAddr::from((ip2, 5202)))
        })
        .await??;
        println!(
            "encrypted overlay (vxlan in boringtun): {:8.1} MB/s (MTU {mtu})",
            enc / 1e6
        );
        anyhow::Ok(())
    }
    .await;
    o1.teardown().await?;
    o2.teardown().await?;
    for n in names {
        netns::delete(&n)?;
    }
    res
}
