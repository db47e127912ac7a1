//! Exec sessions (`docker exec`): created first, started once, their output streamed to the
//! caller while it runs; the exit code stays for `exec inspect` (the CLI asks for it after the
//! output ends).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
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
    /// The caller sends input (`exec -i`); without it the process reads /dev/null.
    pub attach_stdin: bool,
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

/// Input for a started exec; the end of the stream closes the process's stdin.
pub type ExecInputStream = BoxStream<'static, Vec<u8>>;

/// Finished sessions are forgotten after this long (Docker forgets them with the container).
const KEEP_FINISHED: Duration = Duration::from_secs(600);
const MAX_SESSIONS: usize = 1024;

struct Entry {
    info: ExecInfo,
    finished_at: Option<Instant>,
    /// A TTY session's terminal (our side) and runc's pid, for resizing.
    tty: Option<(Arc<File>, u32)>,
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

/// Copies a TTY session's terminal into the channel (blocking reads on the pty master).
/// The read fails with EIO once runc, the last holder of the other side, has exited.
fn pump_tty(r: Arc<File>, tx: mpsc::Sender<(LogStream, Vec<u8>)>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut open = true;
    loop {
        match Read::read(&mut &*r, &mut buf) {
            Ok(0) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
            Ok(n) => {
                if open
                    && tx
                        .blocking_send((LogStream::Stdout, buf[..n].to_vec()))
                        .is_err()
                {
                    open = false;
                }
            }
        }
    }
}

/// Feeds the caller's input to the process; ends (closing the process's stdin on the pipe
/// path) when the caller's stream ends or the process stops reading.
async fn feed_stdin<W: tokio::io::AsyncWrite + Unpin>(mut w: W, mut input: ExecInputStream) {
    use tokio::io::AsyncWriteExt;
    while let Some(chunk) = input.next().await {
        if w.write_all(&chunk).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Writes input to a TTY session's terminal.
async fn feed_tty(w: Arc<File>, mut input: ExecInputStream) {
    while let Some(chunk) = input.next().await {
        let w = w.clone();
        let res = tokio::task::spawn_blocking(move || {
            let mut f: &File = &w;
            f.write_all(&chunk)
        })
        .await;
        if !matches!(res, Ok(Ok(()))) {
            return;
        }
    }
}

/// Opens a pseudo-terminal for runc's stdio: runc finds its host console there, puts it in raw
/// mode and relays it to the container's terminal. Returns our side and runc's side as its
/// stdin, stdout and stderr.
fn open_tty() -> Result<(File, [File; 3])> {
    let failed =
        |e: &dyn std::fmt::Display| Error::Runtime(format!("opening a terminal for exec: {e}"));
    let pty = nix::pty::openpty(None, None).map_err(|e| failed(&e))?;
    let input = File::from(pty.slave);
    let output = input.try_clone().map_err(|e| failed(&e))?;
    let errors = input.try_clone().map_err(|e| failed(&e))?;
    Ok((File::from(pty.master), [input, output, errors]))
}

fn set_winsize(f: &File, height: u16, width: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        return Err(Error::Runtime(format!(
            "resizing the exec terminal: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

impl Runtime {
    /// Resizes a running TTY session's terminal; runc passes the new size on when it gets
    /// SIGWINCH.
    pub fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let tty = self.inner.execs.with(|m| match m.get(id) {
            None => Err(Error::NotFound(format!("no such exec instance: {id}"))),
            Some(e) => Ok(e.tty.clone()),
        })??;
        let Some((master, runc_pid)) = tty else {
            return Err(Error::Conflict(format!(
                "exec instance {id} has no running terminal"
            )));
        };
        set_winsize(&master, height, width)?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(runc_pid).unwrap_or(0));
        if pid.as_raw() > 0 {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH);
        }
        Ok(())
    }

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
                    tty: None,
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
    /// the process running. `stdin` is used when the session was created with `attach_stdin`.
    pub async fn exec_start(
        &self,
        id: &str,
        stdin: Option<ExecInputStream>,
    ) -> Result<ExecOutputStream> {
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
        let stdin = stdin.filter(|_| spec.attach_stdin);
        let tty = if spec.opts.tty {
            let (master, [input, output, errors]) = match open_tty() {
                Ok(t) => t,
                Err(e) => {
                    fail(self, 126);
                    return Err(e);
                }
            };
            cmd.stdin(Stdio::from(input))
                .stdout(Stdio::from(output))
                .stderr(Stdio::from(errors));
            Some(Arc::new(master))
        } else {
            cmd.stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            None
        };
        let spawned = cmd.spawn();
        // Our copies of the terminal's runc side must go, or its reads never see the end.
        drop(cmd);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                fail(self, 126);
                return Err(Error::Runtime(format!("running exec: {e}")));
            }
        };
        let runc_pid = child.id().unwrap_or(0);
        self.inner.execs.with(|m| {
            if let Some(e) = m.get_mut(id) {
                e.info.running = true;
                e.tty = tty.clone().map(|t| (t, runc_pid));
            }
        })?;
        let (tx, rx) = mpsc::channel::<(LogStream, Vec<u8>)>(64);
        if let Some(input) = stdin {
            match (&tty, child.stdin.take()) {
                (Some(master), _) => {
                    tokio::spawn(feed_tty(master.clone(), input));
                }
                (None, Some(pipe)) => {
                    tokio::spawn(feed_stdin(pipe, input));
                }
                (None, None) => {}
            }
        }
        let tty_out = tty.map(|master| {
            let tx = if spec.attach_stdout || spec.attach_stderr {
                tx.clone()
            } else {
                mpsc::channel(1).0
            };
            tokio::task::spawn_blocking(move || pump_tty(master, tx))
        });
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
            if let Some(h) = tty_out {
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
                    e.tty = None;
                    e.info.exit_code = Some(code);
                    e.finished_at = Some(Instant::now());
                }
            });
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}
