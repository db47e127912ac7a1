//! Exec sessions (`docker exec`): created first, started once, their output streamed to the
//! caller while it runs; the exit code stays for `exec inspect` (the CLI asks for it after the
//! output ends).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use rand::RngCore;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::error::{Error, Result};
use super::logs::LogStream;
use super::runtime::{ExecOptions, Runtime};

/// What `exec create` asked for.
#[derive(Clone, Debug, Default)]
pub struct ExecSpec {
    pub opts: ExecOptions,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
}

/// The state of one exec session, as `exec inspect` shows it.
#[derive(Clone, Debug)]
pub struct ExecInfo {
    pub id: String,
    pub container_id: String,
    pub spec: ExecSpec,
    /// `start` was called (a session runs once).
    pub started: bool,
    pub running: bool,
    /// Set once the process has exited.
    pub exit_code: Option<i32>,
    pub pid: i32,
}

/// Output chunks of a started exec, in the order the process wrote them per stream.
pub type ExecOutputStream = BoxStream<'static, (LogStream, Vec<u8>)>;

/// Finished sessions are forgotten after this long (Docker forgets them with the container).
const KEEP_FINISHED: Duration = Duration::from_secs(600);
const MAX_SESSIONS: usize = 1024;

struct Entry {
    info: ExecInfo,
    finished_at: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct ExecTable {
    map: Mutex<HashMap<String, Entry>>,
}

impl ExecTable {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> Result<T> {
        let mut m = self
            .map
            .lock()
            .map_err(|_| Error::Runtime("exec table poisoned".into()))?;
        Ok(f(&mut m))
    }

    fn prune(map: &mut HashMap<String, Entry>) {
        map.retain(|_, e| e.finished_at.is_none_or(|t| t.elapsed() < KEEP_FINISHED));
    }

    /// Forgets the sessions of a removed container.
    pub(crate) fn forget_container(&self, container_id: &str) {
        let _ = self.with(|m| m.retain(|_, e| e.info.container_id != container_id));
    }
}

fn new_exec_id() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Copies one pipe into the channel; keeps draining after the receiver is gone so a detached
/// process never blocks on a full pipe.
async fn pump<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    stream: LogStream,
    tx: mpsc::Sender<(LogStream, Vec<u8>)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut open = true;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if open && tx.send((stream, buf[..n].to_vec())).await.is_err() {
                    open = false;
                }
            }
        }
    }
}

impl Runtime {
    /// Registers an exec session in a running container; returns its id.
    pub fn exec_create(&self, container: &str, spec: ExecSpec) -> Result<String> {
        let c = self.lookup(container)?;
        if spec.opts.cmd.is_empty() {
            return Err(Error::invalid("no exec command specified"));
        }
        if !c.state().is_running() {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let id = new_exec_id();
        let info = ExecInfo {
            id: id.clone(),
            container_id: c.id.clone(),
            spec,
            started: false,
            running: false,
            exit_code: None,
            pid: 0,
        };
        self.inner.execs.with(|m| {
            ExecTable::prune(m);
            if m.len() >= MAX_SESSIONS {
                return Err(Error::Conflict(
                    "too many exec sessions; start or wait for the existing ones".into(),
                ));
            }
            m.insert(
                id.clone(),
                Entry {
                    info,
                    finished_at: None,
                },
            );
            Ok(())
        })??;
        Ok(id)
    }

    pub fn exec_inspect(&self, id: &str) -> Result<ExecInfo> {
        self.inner
            .execs
            .with(|m| m.get(id).map(|e| e.info.clone()))?
            .ok_or_else(|| Error::NotFound(format!("no such exec instance: {id}")))
    }

    /// Starts the session's process. The returned stream carries its output and ends after
    /// the process exited and its exit code was recorded. Dropping the stream (detach) leaves
    /// the process running.
    pub async fn exec_start(&self, id: &str) -> Result<ExecOutputStream> {
        let (container_id, spec) = self.inner.execs.with(|m| match m.get_mut(id) {
            None => Err(Error::NotFound(format!("no such exec instance: {id}"))),
            Some(e) if e.info.started => Err(Error::Conflict(format!(
                "exec instance {id} has already been started"
            ))),
            Some(e) => {
                e.info.started = true;
                Ok((e.info.container_id.clone(), e.info.spec.clone()))
            }
        })??;
        let fail = |rt: &Runtime, code: i32| {
            let _ = rt.inner.execs.with(|m| {
                if let Some(e) = m.get_mut(id) {
                    e.info.exit_code = Some(code);
                    e.finished_at = Some(Instant::now());
                }
            });
        };
        let c = match self.lookup(&container_id) {
            Ok(c) => c,
            Err(e) => {
                fail(self, 126);
                return Err(e);
            }
        };
        // runc writes the process's pid (the child we spawn is runc itself).
        let pid_file = c.run_dir.join(format!("exec-{id}.pid"));
        let mut cmd =
            match super::runtime::exec_command(&self.inner, &c, &spec.opts, Some(&pid_file)) {
                Ok(c) => c,
                Err(e) => {
                    fail(self, 126);
                    return Err(e);
                }
            };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                fail(self, 126);
                return Err(Error::Runtime(format!("running exec: {e}")));
            }
        };
        self.inner.execs.with(|m| {
            if let Some(e) = m.get_mut(id) {
                e.info.running = true;
            }
        })?;
        let (tx, rx) = mpsc::channel::<(LogStream, Vec<u8>)>(64);
        let out = child.stdout.take().map(|o| {
            let tx = spec.attach_stdout.then(|| tx.clone());
            tokio::spawn(async move {
                match tx {
                    Some(tx) => pump(o, LogStream::Stdout, tx).await,
                    None => pump(o, LogStream::Stdout, mpsc::channel(1).0).await,
                }
            })
        });
        let err = child.stderr.take().map(|o| {
            let tx = spec.attach_stderr.then(|| tx.clone());
            tokio::spawn(async move {
                match tx {
                    Some(tx) => pump(o, LogStream::Stderr, tx).await,
                    None => pump(o, LogStream::Stderr, mpsc::channel(1).0).await,
                }
            })
        });
        let rt = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            // Holding `tx` keeps the stream open until the exit code is recorded.
            let _tx = tx;
            let pid_watch = {
                let (rt, id, pid_file) = (rt.clone(), id.clone(), pid_file.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let pid = std::fs::read_to_string(&pid_file)
                            .ok()
                            .and_then(|s| s.trim().parse::<i32>().ok());
                        if let Some(pid) = pid {
                            let _ = rt.inner.execs.with(|m| {
                                if let Some(e) = m.get_mut(&id) {
                                    e.info.pid = pid;
                                }
                            });
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            };
            for h in [out, err].into_iter().flatten() {
                let _ = h.await;
            }
            let code = match child.wait().await {
                Ok(st) => super::runtime::exit_code_of(&st),
                Err(_) => 255,
            };
            pid_watch.abort();
            let _ = std::fs::remove_file(&pid_file);
            let _ = rt.inner.execs.with(|m| {
                if let Some(e) = m.get_mut(&id) {
                    e.info.running = false;
                    e.info.exit_code = Some(code);
                    e.finished_at = Some(Instant::now());
                }
            });
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}
