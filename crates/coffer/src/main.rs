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
        Command::Verify(args) => {
            let store = server::open_store(&args.database).await?;
            let verification = coffer::verify::verify(&store, progress_display()).await;
            store.close().await;
            let verification = verification?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&verification)?);
            } else {
                print!("{}", summary(&verification));
            }
            if !verification.is_clean() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// A progress bar on a terminal (standard error); otherwise a line per tenth.
fn progress_display() -> impl FnMut(coffer::verify::Progress) + Send {
    use coffer::verify::Progress;
    use std::io::IsTerminal as _;
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let (mut total, mut shown) = (0u64, 0u64);
    move |progress| match progress {
        Progress::Total(rows) => {
            total = rows;
            if terminal {
                let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({eta} left)")
                    .expect("a valid template");
                bar = Some(indicatif::ProgressBar::new(rows).with_style(style));
            }
        }
        Progress::Read(rows) => match &bar {
            Some(bar) => {
                bar.set_position(rows);
                if rows >= total {
                    bar.finish_and_clear();
                }
            }
            None if total > 0 && rows * 10 / total > shown => {
                shown = rows * 10 / total;
                eprintln!("verify: {rows} of {total} rows read");
            }
            None => {}
        },
    }
}

/// The human-readable result: counts, each check, then the findings.
fn summary(verification: &coffer::verify::Verification) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "verified {} accounts, {} transfers ({} links of the hash chain, {} transfers from before it), {} wallets: {}\n",
        verification.accounts,
        verification.transfers,
        verification.links,
        verification.unchained,
        verification.wallets,
        if verification.is_clean() { "the books are right" } else { "FINDINGS" }
    );
    for (check, count) in &verification.checks {
        let _ = writeln!(
            out,
            "  {check:<20} {}",
            if *count == 0 { "ok".to_owned() } else { format!("{count} found") }
        );
    }
    for finding in &verification.findings {
        let _ = writeln!(out, "{} {}: {}", finding.check, finding.id, finding.detail);
    }
    out
}
