//! `shoal`: one binary for the node daemon (`shoal daemon`) and every client command.

mod cli;
mod daemon;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "shoal",
    version,
    about = "Cluster orchestrator compatible with Docker swarm mode"
)]
struct Cli {
    /// Daemon socket to connect to (unix:///path or tcp://host:port); default $SHOAL_HOST or
    /// unix:///run/shoal/shoal.sock.
    #[arg(short = 'H', long = "host", global = true)]
    host: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node daemon (as root).
    Daemon(daemon::config::DaemonArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() {
    // One process-wide TLS provider (ring); a second enabled provider would make rustls refuse
    // to pick a default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        match args.command {
            Command::Daemon(mut d) => {
                // `-H` is global; for the daemon it names the socket to serve.
                if d.host.is_none() {
                    d.host = args.host;
                }
                match daemon::run(d).await {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("shoal daemon: {e:#}");
                        1
                    }
                }
            }
            Command::Client(cmd) => cli::run_client(args.host, cmd).await,
        }
    });
    std::process::exit(code);
}
