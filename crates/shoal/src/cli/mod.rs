//! The shoal binary's client commands. They talk to the daemon only through the REST API
//! (`shoal_api::Client`), exactly as the docker CLI would.
//!
//! Wiring (in main.rs): a top-level `-H/--host` option (global) and
//! `#[command(flatten)] Client(cli::ClientCommand)` among the subcommands, then
//! `std::process::exit(cli::run_client(host, cmd).await)`. The host falls back to
//! `$SHOAL_HOST`, then `unix:///run/shoal/shoal.sock`.

mod container;
mod events;
mod format;
mod image;
mod network;
mod node;
mod prune;
mod secret;
mod service;
mod service_spec;
mod stack;
mod swarm;
mod system;
mod tasks;
pub(crate) mod template;
mod volume;

use clap::Subcommand;
use shoal_api::client::is_connect_error;
use shoal_api::types::ApiError;
use shoal_api::{Client, resolve_host};

pub use events::EventsArgs;
pub use network::NetworkCommand;
pub use node::NodeCommand;
pub use secret::SecretCommand;
pub use service::ServiceCommand;
pub use stack::StackCommand;
pub use swarm::SwarmCommand;
pub use system::{InfoArgs, VersionArgs};

/// The client subcommands (`shoal version`, `shoal swarm init`, `shoal node ls`, …).
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Show the shoal version information
    Version(VersionArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Get real time events from the daemon
    Events(EventsArgs),
    /// Manage the swarm
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Manage swarm nodes
    #[command(subcommand)]
    Node(NodeCommand),
    /// Manage swarm services
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage swarm secrets
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Manage swarm configs
    #[command(subcommand)]
    Config(SecretCommand),
    /// Manage swarm stacks
    #[command(subcommand)]
    Stack(StackCommand),
    /// Standalone containers (`run`, `ps`, `logs`, `exec`, …)
    #[command(flatten)]
    Containers(container::ContainerCommand),
    /// Manage containers
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// Manage images
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
}

/// Why a command failed; decides how the error is printed.
#[derive(Debug)]
pub enum CliError {
    /// The daemon answered with an error: "Error response from daemon: …".
    Daemon(ApiError),
    /// Anything else (no daemon, bad flags, template errors): printed as is.
    Other(String),
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        if is_connect_error(&e) {
            CliError::Other(e.message)
        } else {
            CliError::Daemon(e)
        }
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::Other(s)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Daemon(e) => write!(f, "Error response from daemon: {}", e.message),
            CliError::Other(m) => f.write_str(m),
        }
    }
}

pub type CliResult = Result<(), CliError>;

/// Runs one client command against the daemon at `host` (or `$SHOAL_HOST`, or the default
/// socket). Output goes to stdout, errors to stderr; returns the process exit code.
pub async fn run_client(host: Option<String>, cmd: ClientCommand) -> i32 {
    let host = resolve_host(host.as_deref());
    let client = match Client::new(&host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.message);
            return 1;
        }
    };
    let r = match cmd {
        ClientCommand::Version(a) => system::version(&client, a).await,
        ClientCommand::Info(a) => system::info(&client, a).await,
        ClientCommand::Events(a) => events::events(&client, a).await,
        ClientCommand::Swarm(c) => swarm::run(&client, c).await,
        ClientCommand::Node(c) => node::run(&client, c).await,
        ClientCommand::Service(c) => service::run(&client, c).await,
        ClientCommand::Network(c) => network::run(&client, c).await,
        ClientCommand::Secret(c) => secret::run(&client, secret::Kind::Secret, c).await,
        ClientCommand::Config(c) => secret::run(&client, secret::Kind::Config, c).await,
        ClientCommand::Stack(c) => stack::run(&client, c).await,
        ClientCommand::Containers(c) | ClientCommand::Container(c) => {
            container::run(&client, c).await
        }
        ClientCommand::Image(c) => image::run(&client, c).await,
        ClientCommand::Volume(c) => volume::run(&client, c).await,
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// A JSON value of anything serializable (objects are shown from their wire form).
pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, CliError> {
    serde_json::to_value(v).map_err(|e| CliError::Other(format!("encoding: {e}")))
}

/// Reads a wire type back from a JSON value the command edited.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> Result<T, CliError> {
    serde_json::from_value(v).map_err(|e| CliError::Other(format!("invalid request: {e}")))
}

/// Prints without a trailing newline of its own (the text carries it).
pub(crate) fn out(text: &str) {
    use std::io::Write;
    let mut so = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = so.write_all(text.as_bytes());
    let _ = so.flush();
}
