//! The `coffer` binary: parses the command line and runs the chosen command.

use clap::Parser;
use coffer::{
    config::{Cli, Command},
    server, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log, cli.log_format)?;
    match cli.command {
        Command::Serve(args) => {
            let server = server::Server::bind(*args).await?;
            server.run(server::shutdown_signal()).await
        }
        Command::Migrate(args) => {
            let store = server::open_store(&args).await?;
            store.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}
