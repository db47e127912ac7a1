//! The agent's assignments on local disk (`<dir>/<node id>.json`), so that after an agent
//! restart its tasks are supervised again (re-attached, their ends reported once a manager
//! answers) even while no manager is reachable. The managers' next complete set replaces them.
//! Secrets and configs are never written here: they live only in memory.

use crate::worker::Worker;
use shoal_types::{Task, TaskState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const SAVE_EVERY: Duration = Duration::from_millis(500);

fn file(dir: &Path, node_id: &str) -> PathBuf {
    dir.join(format!("{node_id}.json"))
}

/// The tasks remembered for `node_id`; nothing when there is no (readable) file.
pub fn load(dir: &Path, node_id: &str) -> Vec<Task> {
    match std::fs::read(file(dir, node_id)) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!("ignoring unreadable saved assignments: {e}");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
}

fn save(dir: &Path, node_id: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{node_id}.json.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file(dir, node_id))
}

/// Restores the remembered tasks into `worker`, then keeps the file in step with it until
/// `stop`. Files of other node IDs (an earlier membership) are removed.
pub fn start(worker: &Arc<Worker>, dir: PathBuf, node_id: String, mut stop: watch::Receiver<bool>) {
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let keep = format!("{node_id}.json");
        for e in entries.flatten() {
            if e.file_name().to_string_lossy() != keep {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let saved: Vec<Task> = load(&dir, &node_id)
        .into_iter()
        .filter(|t| t.desired_state <= TaskState::Running && t.node_id == node_id)
        .collect();
    if !saved.is_empty() {
        tracing::info!(tasks = saved.len(), "restoring saved assignments");
        worker.restore(saved);
    }
    let worker = worker.clone();
    tokio::spawn(async move {
        let mut last: Vec<u8> = Vec::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SAVE_EVERY) => {}
                _ = stop.changed() => return,
            }
            let mut tasks = worker.tasks();
            tasks.sort_by(|a, b| a.id.cmp(&b.id));
            let Ok(bytes) = serde_json::to_vec(&tasks) else {
                continue;
            };
            if bytes != last {
                match save(&dir, &node_id, &bytes) {
                    Ok(()) => last = bytes,
                    Err(e) => tracing::warn!("saving assignments: {e}"),
                }
            }
        }
    });
}
