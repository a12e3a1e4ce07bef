//! The `coffer` binary: parses the command line and runs the chosen command.

use clap::Parser;
use coffer::{
    config::{Cli, Command, ProjectionsCommand},
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
        Command::Openapi => {
            use std::io::Write as _;
            use utoipa::OpenApi as _;
            let document = coffer::http::openapi::ApiDoc::openapi().to_pretty_json()?;
            writeln!(std::io::stdout().lock(), "{document}")?;
            Ok(())
        }
        Command::Projections(ProjectionsCommand::Rebuild(args)) => {
            let store = server::open_store(&args.database).await?;
            if let Some(seq) = store.outbox_purged_through().await?
                && !args.allow_partial
            {
                store.close().await;
                anyhow::bail!(
                    "events up to outbox position {seq} were purged (COFFER_EVENT_RETENTION_DAYS): a rebuild would \
                     lose what they said; pass --allow-partial to rebuild from what is left"
                );
            }
            let rebuilt = coffer::analytics::rebuild(&store).await;
            store.close().await;
            let rebuilt = rebuilt?;
            tracing::info!(
                events = rebuilt.events,
                projected = rebuilt.projected,
                "analytics projection rebuilt"
            );
            println!(
                "rebuilt the analytics projection from {} events ({} changed it)",
                rebuilt.events, rebuilt.projected
            );
            Ok(())
        }
    }
}
