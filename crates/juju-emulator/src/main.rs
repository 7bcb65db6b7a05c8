//! Juju controller emulator binary: serves the emulated controller until SIGTERM or
//! ctrl-c. See [`juju_emulator`] for what it serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use juju_emulator::{Emulator, EmulatorConfig, Seed};
use tracing_subscriber::EnvFilter;

/// Run a Juju 3.6 controller emulator for tests and local development.
#[derive(Debug, Parser)]
#[command(name = "juju-emulator", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:17070")]
    listen: SocketAddr,
    /// Directory for certificates, state and connection.json.
    #[arg(long)]
    state_dir: PathBuf,
    /// JSON seed (users, models, applications) for a new state directory.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Append one JSON line per API call to this file.
    #[arg(long)]
    frame_log: Option<PathBuf>,
    /// Behave like a controller before Juju 3.6: no content checksum in listings, and a
    /// new revision even for identical content.
    #[arg(long)]
    no_checksums: bool,
    /// Milliseconds after a model's `secret-backend` changes before its revisions move
    /// (Juju drains asynchronously); 0 moves them at once.
    #[arg(long, default_value_t = 0)]
    drain_delay_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "juju-emulator failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let seed = match &args.seed {
        Some(path) => Some(Seed::from_file(path)?),
        None => None,
    };
    let config = EmulatorConfig {
        listen: args.listen,
        state_dir: args.state_dir,
        seed,
        frame_log: args.frame_log,
        checksums: !args.no_checksums,
    };
    let emulator = Emulator::start(config).await?;
    emulator
        .faults()
        .set_drain_delay(std::time::Duration::from_millis(args.drain_delay_ms));
    println!("juju-emulator listening on {}", emulator.endpoint());
    wait_for_signal().await?;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
