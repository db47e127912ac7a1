//! Figure: pull time and disk use of two images that share a base layer.
//!
//! Builds the test images (deploy/images/build.sh), pushes `shoal-test/busybox` and
//! `shoal-test/httpd` (busybox layer + /www) to a local docker-registry on loopback, pulls
//! both into an empty store and prints the pull times and the bytes stored, against what
//! the two images would take without sharing.
//!
//! Run (as root, with docker-registry and busybox-static installed):
//!   cargo run -p shoal-runtime --example image_bench [-- ROUNDS]

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_runtime::image::local_registry::LocalRegistry;
use shoal_runtime::image::registry::no_progress;
use shoal_runtime::image::{ImageStore, Reference, RegistryClient, RegistryConfig};

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5)
        .max(1);
    let work = tempfile::tempdir()?;
    let imgs = work.path().join("images");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/images/build.sh");
    let st = Command::new("sh").arg(&script).arg(&imgs).output()?;
    anyhow::ensure!(
        st.status.success(),
        "build.sh failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );

    let registry = LocalRegistry::start(&work.path().join("registry"), None)?;
    let host = registry.domain();
    let client = RegistryClient::new(RegistryConfig::default())?;

    let src = ImageStore::open(work.path().join("src"))?;
    src.load(&mut File::open(imgs.join("both.tar"))?)?;
    let bb = Reference::parse(&format!("{host}/shoal-test/busybox:latest"))?;
    let web = Reference::parse(&format!("{host}/shoal-test/httpd:latest"))?;
    src.tag("shoal-test/busybox", &bb.to_string())?;
    src.tag("shoal-test/httpd", &web.to_string())?;
    let t = Instant::now();
    client.push(&src, &bb, None, &no_progress).await?;
    let push_bb = t.elapsed();
    let t = Instant::now();
    client.push(&src, &web, None, &no_progress).await?;
    let push_web = t.elapsed();

    let mut first = Vec::new();
    let mut second = Vec::new();
    let mut usage = None;
    for round in 0..rounds {
        let dir = work.path().join(format!("dst{round}"));
        let dst = ImageStore::open(&dir)?;
        let t = Instant::now();
        client.pull(&dst, &web, None, &no_progress).await?;
        first.push(t.elapsed());
        let t = Instant::now();
        client.pull(&dst, &bb, None, &no_progress).await?;
        second.push(t.elapsed());
        usage = Some((dst.disk_usage()?, dst.list()));
        std::fs::remove_dir_all(&dir)?;
    }
    let (du, images) = usage.ok_or_else(|| anyhow::anyhow!("no rounds ran"))?;
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };

    println!(
        "image pull benchmark: docker-registry {host} on loopback, {rounds} rounds, empty store each round"
    );
    println!("push  shoal-test/busybox        {}", ms(push_bb));
    println!(
        "push  shoal-test/httpd          {}  (base layer mounted, not re-uploaded)",
        ms(push_web)
    );
    println!(
        "pull  shoal-test/httpd (first)  median {}",
        ms(median(&mut first))
    );
    println!(
        "pull  shoal-test/busybox (then) median {}  (base layer already there)",
        ms(median(&mut second))
    );
    println!();
    let mut unshared_blobs = 0u64;
    let mut unshared_layers = 0u64;
    for rec in &images {
        let layers: u64 = rec
            .diff_ids
            .iter()
            .filter_map(|d| src.layer_info(d).ok())
            .map(|l| l.size)
            .sum();
        let blobs: u64 = rec
            .layer_blobs
            .iter()
            .chain([&rec.id, &rec.manifest_digest])
            .filter_map(|d| std::fs::metadata(src.blob_path(d)).ok())
            .map(|m| m.len())
            .sum();
        unshared_blobs += blobs;
        unshared_layers += layers;
        println!(
            "image {:<28} {} layers, {} unpacked, {} blobs",
            rec.repo_tags
                .first()
                .map(String::as_str)
                .unwrap_or("<none>"),
            rec.diff_ids.len(),
            mib(layers),
            mib(blobs)
        );
    }
    println!();
    println!(
        "store after both pulls: {} blobs = {}, {} unpacked layers = {}, total {}",
        du.blob_count,
        mib(du.blob_bytes),
        du.layer_count,
        mib(du.layer_bytes),
        mib(du.total())
    );
    println!(
        "same two images without sharing: blobs {} + layers {} = {}",
        mib(unshared_blobs),
        mib(unshared_layers),
        mib(unshared_blobs + unshared_layers)
    );
    println!(
        "saved by sharing the base layer: {}",
        mib((unshared_blobs + unshared_layers).saturating_sub(du.total()))
    );
    drop(registry);
    Ok(())
}
