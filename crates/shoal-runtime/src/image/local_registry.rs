//! Runs Debian's `docker-registry` (distribution v2) on loopback for tests, the benchmark and
//! the lab: a throwaway plain-HTTP registry with its storage in a given directory, stopped
//! by PID when dropped.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::{ImageError, Result};

pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(15);
const START_ATTEMPTS: usize = 3;

/// A running registry process. Dropping it kills that process (by its PID) and waits for it.
pub struct LocalRegistry {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl LocalRegistry {
    /// Starts a registry storing into `dir/storage`, listening on `127.0.0.1:port` (a free
    /// port when `port` is None). Fails with a clear message when the binary is missing.
    pub fn start(dir: &Path, port: Option<u16>) -> Result<LocalRegistry> {
        if !Path::new(REGISTRY_BINARY).is_file() {
            return Err(ImageError::Unsupported(format!(
                "{REGISTRY_BINARY} not found: install the Debian package docker-registry"
            )));
        }
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let p = match port {
                Some(p) => p,
                None => free_port()?,
            };
            match Self::start_on(dir, p) {
                Ok(r) => return Ok(r),
                Err(e) => last = e.to_string(),
            }
            // Another free port may work; a fixed one will fail the same way again.
            if port.is_some() {
                break;
            }
        }
        Err(ImageError::Unsupported(format!(
            "docker-registry did not start: {last}"
        )))
    }

    /// Starts a registry listening on `addr` (e.g. a lab bridge address; clients must then
    /// list it in `insecure_registries`, as it speaks plain HTTP).
    pub fn start_at(dir: &Path, addr: SocketAddr) -> Result<LocalRegistry> {
        if !Path::new(REGISTRY_BINARY).is_file() {
            return Err(ImageError::Unsupported(format!(
                "{REGISTRY_BINARY} not found: install the Debian package docker-registry"
            )));
        }
        Self::spawn(dir, addr)
    }

    fn start_on(dir: &Path, port: u16) -> Result<LocalRegistry> {
        Self::spawn(dir, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    fn spawn(dir: &Path, addr: SocketAddr) -> Result<LocalRegistry> {
        let storage = dir.join("storage");
        fs::create_dir_all(&storage)
            .map_err(ImageError::io(format!("creating {}", storage.display())))?;
        let config = dir.join("config.yml");
        let yaml = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        fs::write(&config, yaml)
            .map_err(ImageError::io(format!("writing {}", config.display())))?;
        let log = dir.join("registry.log");
        let out =
            File::create(&log).map_err(ImageError::io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(ImageError::io("duplicating log file"))?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(ImageError::io(format!("starting {REGISTRY_BINARY}")))?;
        let mut reg = LocalRegistry { child, addr, log };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = reg.child.try_wait() {
                return Err(ImageError::Unsupported(format!(
                    "docker-registry exited with {status}: {}",
                    reg.log_tail()
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(reg);
            }
            if Instant::now() > deadline {
                return Err(ImageError::Unsupported(format!(
                    "docker-registry not listening on {addr} after {START_TIMEOUT:?}: {}",
                    reg.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<port>`, the registry part of references to push and pull.
    pub fn domain(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the registry's log (for error messages).
    pub fn log_tail(&self) -> String {
        let s = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Kills the process (by PID) and waits for it.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(ImageError::io("finding a free port"))?;
    let port = l
        .local_addr()
        .map_err(ImageError::io("finding a free port"))?
        .port();
    Ok(port)
}
