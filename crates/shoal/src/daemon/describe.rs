//! What this node reports about itself: hostname, platform, CPU and memory, engine version.

use shoal_types::node::{
    EngineDescription, NodeDescription, Platform, PluginDescription, Resources,
};

pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn memory_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

pub fn ncpu() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

pub fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn describe(hostname: &str) -> NodeDescription {
    NodeDescription {
        hostname: hostname.to_string(),
        platform: Platform {
            architecture: std::env::consts::ARCH.to_string(),
            os: std::env::consts::OS.to_string(),
        },
        resources: Resources {
            nano_cpus: ncpu() * 1_000_000_000,
            memory_bytes: memory_bytes(),
            generic_resources: Vec::new(),
        },
        engine: EngineDescription {
            engine_version: ENGINE_VERSION.to_string(),
            labels: Default::default(),
            plugins: vec![
                PluginDescription {
                    r#type: "Network".into(),
                    name: "overlay".into(),
                },
                PluginDescription {
                    r#type: "Volume".into(),
                    name: "local".into(),
                },
            ],
        },
        tls_info: Default::default(),
        wireguard: None,
    }
}
