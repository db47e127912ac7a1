//! The OCI runtime command line (runc, or crun which takes the same flags).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct RuncCli {
    pub bin: String,
    /// Per-daemon state dir (`--root`), so daemons on one machine never see each other.
    pub root: PathBuf,
}

impl RuncCli {
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c.stdin(Stdio::null());
        c.kill_on_drop(true);
        c
    }

    /// argv the monitor executes to start the container detached.
    pub fn run_argv(&self, id: &str, bundle: &Path, pidfile: &Path) -> Vec<String> {
        vec![
            self.bin.clone(),
            "--root".into(),
            self.root.display().to_string(),
            "run".into(),
            "--detach".into(),
            "--pid-file".into(),
            pidfile.display().to_string(),
            "--bundle".into(),
            bundle.display().to_string(),
            id.into(),
        ]
    }

    async fn output(&self, what: &str, mut c: Command) -> Result<std::process::Output> {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = c
            .output()
            .await
            .map_err(|e| Error::Runtime(format!("cannot run {} ({what}): {e}", self.bin)))?;
        Ok(out)
    }

    fn fail(&self, what: &str, out: &std::process::Output) -> Error {
        let msg = String::from_utf8_lossy(&out.stderr);
        Error::Runtime(format!("{} {what}: {}", self.bin, msg.trim()))
    }

    pub async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let mut c = self.command();
        c.arg("kill").arg(id).arg(signal.to_string());
        let out = self.output("kill", c).await?;
        if !out.status.success() {
            return Err(self.fail("kill", &out));
        }
        Ok(())
    }

    /// Deletes the runtime's state and cgroup of a container; a missing one is fine.
    pub async fn delete_force(&self, id: &str) -> Result<()> {
        let mut c = self.command();
        c.arg("delete").arg("--force").arg(id);
        let out = self.output("delete", c).await?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).to_lowercase();
            if msg.contains("not exist") || msg.contains("not found") || msg.contains("no such") {
                return Ok(());
            }
            return Err(self.fail("delete", &out));
        }
        Ok(())
    }

    /// Host pids of the container's processes.
    pub async fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let mut c = self.command();
        c.arg("ps").arg("--format").arg("json").arg(id);
        let out = self.output("ps", c).await?;
        if !out.status.success() {
            return Err(self.fail("ps", &out));
        }
        let pids: Option<Vec<i32>> = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Runtime(format!("{} ps printed bad JSON: {e}", self.bin)))?;
        Ok(pids.unwrap_or_default())
    }
}
