//! shoal-api: the REST API in the Docker Engine API's shape, and a typed client for it.
//!
//! Server side: implement [`Backend`] and serve it with [`Server::bind_unix`] /
//! [`Server::bind_tcp`] + [`Server::run`] (or [`serve_unix`] / [`serve_tcp`]). Every path is
//! accepted with and without a `/v{X.Y}` prefix; errors are `{"message":…}` with
//! `Content-Type: application/json`, as the docker CLI requires.
//!
//! Client side: [`Client`] speaks the same API over `unix://` or `tcp://`; [`resolve_host`]
//! applies `-H` / `SHOAL_HOST` / the default socket.

pub mod backend;
pub mod body;
pub mod client;
pub mod error;
pub mod filters;
pub mod host;
pub mod query;
pub mod responses;
mod routes;
pub mod server;
pub mod stream;
pub mod types;
pub mod version;

pub use backend::{
    AttachOptions, Backend, BackendResult, ByteStream, ContainerListOptions, EventStream,
    EventsOptions, ImagePullOptions, Logs, LogsOptions, ProgressStream, ServiceUpdateOptions,
};
pub use client::Client;
pub use filters::Filters;
pub use host::{DEFAULT_HOST, HOST_ENV, Host, resolve_host};
/// Re-exported so client users need no direct `http` dependency.
pub use http::Method;
pub use responses::{
    IdResponse, NetworkCreateResponse, ServiceCreateResponse, ServiceUpdateResponse,
};
pub use routes::parse_timestamp;
pub use server::{App, SOCKET_MODE, Server, app, serve_tcp, serve_unix};
pub use stream::{LogLine, LogStream, StdStream};
pub use version::{API_VERSION, MIN_API_VERSION};
