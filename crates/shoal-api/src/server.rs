//! Serving the API on a unix socket or TCP, with graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::ServiceExt;
use axum::extract::Request;
use axum::response::Response;
use tokio::net::{TcpListener, UnixListener};
use tower::Layer;
use tower::util::BoxCloneSyncService;

use crate::backend::Backend;
use crate::routes;
use crate::version::version_middleware;

/// File mode of the API socket: owner and group (the `docker`-group convention).
pub const SOCKET_MODE: u32 = 0o660;

enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

/// A bound API server; call [`Server::run`] to serve until the shutdown future completes.
pub struct Server {
    listener: Listener,
    backend: Arc<dyn Backend>,
    grace: Duration,
}

/// How long in-flight requests get after shutdown starts. Followed streams (`events`,
/// `logs -f`) never finish on their own, so they are cut off after this.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The full HTTP service: the version middleware (prefix, headers, JSON errors) around the
/// router. Exposed for in-process use, e.g. `tower::ServiceExt::oneshot` in tests.
pub type App = BoxCloneSyncService<Request, Response, Infallible>;

/// Builds the service for a backend.
pub fn app(backend: Arc<dyn Backend>) -> App {
    let svc = axum::middleware::from_fn(version_middleware).layer(routes::router(backend));
    BoxCloneSyncService::new(svc)
}

impl Server {
    /// Binds a unix socket at `path`: creates the parent directory, replaces a stale socket
    /// file (refusing if a live server still answers on it), and sets mode 0660.
    pub async fn bind_unix(path: impl AsRef<Path>, backend: Arc<dyn Backend>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if tokio::net::UnixStream::connect(&path).await.is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use by a running server", path.display()),
                    ));
                }
                std::fs::remove_file(&path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
        Ok(Server {
            listener: Listener::Unix(listener, path),
            backend,
            grace: DEFAULT_GRACE,
        })
    }

    /// Binds a TCP address (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind_tcp(addr: SocketAddr, backend: Arc<dyn Backend>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener: Listener::Tcp(listener),
            backend,
            grace: DEFAULT_GRACE,
        })
    }

    /// Where clients connect: `unix:///path` or `tcp://ip:port`.
    pub fn local_addr(&self) -> io::Result<String> {
        match &self.listener {
            Listener::Unix(_, p) => Ok(format!("unix://{}", p.display())),
            Listener::Tcp(l) => Ok(format!("tcp://{}", l.local_addr()?)),
        }
    }

    /// Sets how long open requests may run after shutdown starts (default 5 s).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish for up to the grace period. A unix socket file is removed afterwards.
    pub async fn run<F>(self, shutdown: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let svc = app(self.backend).into_make_service();
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = tx.send(true);
        };
        let grace = self.grace;
        // Resolves `grace` after shutdown began; then open streams are dropped.
        let deadline = async move {
            if rx.wait_for(|stop| *stop).await.is_err() {
                // The sender lives inside the serve future; gone means serving ended.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        };
        match self.listener {
            Listener::Unix(l, path) => {
                let serve = axum::serve(l, svc).with_graceful_shutdown(signal);
                let r = tokio::select! {
                    r = serve => r,
                    () = deadline => Ok(()),
                };
                let _ = std::fs::remove_file(&path);
                r
            }
            Listener::Tcp(l) => {
                let serve = axum::serve(l, svc).with_graceful_shutdown(signal);
                tokio::select! {
                    r = serve => r,
                    () = deadline => Ok(()),
                }
            }
        }
    }
}

/// Binds `path` and serves until `shutdown` completes.
pub async fn serve_unix<F>(
    path: impl AsRef<Path>,
    backend: Arc<dyn Backend>,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    Server::bind_unix(path, backend).await?.run(shutdown).await
}

/// Binds `addr` and serves until `shutdown` completes.
pub async fn serve_tcp<F>(
    addr: SocketAddr,
    backend: Arc<dyn Backend>,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    Server::bind_tcp(addr, backend).await?.run(shutdown).await
}
