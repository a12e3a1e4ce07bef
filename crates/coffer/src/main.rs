//! The `coffer` binary: parses the command line and runs the chosen command.

use clap::Parser;
use coffer::{
    config::{AdminCommand, Cli, Command, KeysCommand, ProjectionsCommand, Secret},
    identity::{
        Identity, IdentityConfig, keys,
        password::{ARGON2_MEMORY_KIB_DEFAULT, NewPassword},
        profile::{CustomerName, Email},
    },
    progress::Meter,
    server, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init(&cli.log, cli.log_format, cli.otlp_endpoint.as_deref())?;
    let result = run(cli.command).await;
    telemetry.shutdown();
    result
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
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
            let mut meter = Meter::new("rebuild", "events");
            let rebuilt = coffer::analytics::rebuild(&store, |done, head| meter.at(done, head)).await;
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
        Command::Backup(args) => {
            let database = embedded_only(&args.database, "back up")?;
            let mut meter = Meter::new("backup", "bytes");
            let manifest = coffer::backup::backup(&database, &args.to, |done, total| meter.at(done, total))?;
            println!(
                "backed up {} accounts, {} transfers, {} wallets (schema {}, chain head {} {}) to {}",
                manifest.accounts,
                manifest.transfers,
                manifest.wallets,
                manifest.schema_version,
                manifest.chain_seq,
                manifest.chain_hash,
                args.to.display()
            );
            Ok(())
        }
        Command::Restore(args) => {
            let database = embedded_only(&args.database, "restore")?;
            let mut meter = Meter::new("restore", "bytes");
            let manifest =
                coffer::backup::restore(&args.from, &database, |done, total| meter.at(done, total))?;
            println!(
                "restored {} accounts, {} transfers, {} wallets (backup of {}, chain head {} {}) into {}; \
                 run `coffer verify` to check the books",
                manifest.accounts,
                manifest.transfers,
                manifest.wallets,
                manifest.created_at,
                manifest.chain_seq,
                manifest.chain_hash,
                database.display()
            );
            Ok(())
        }
        Command::Admin(AdminCommand::Create(args)) => {
            let email = Email::parse(&args.email).map_err(|error| anyhow::anyhow!("email: {error}"))?;
            let name = CustomerName::parse(&args.name).map_err(|error| anyhow::anyhow!("name: {error}"))?;
            let password = match args.password {
                Some(password) => password,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let password =
                NewPassword::parse(password).map_err(|error| anyhow::anyhow!("password: {error}"))?;
            let store = server::open_store(&args.database).await?;
            // No token is issued and no key checked here: throwaway secrets will do.
            let throwaway = || Secret::new(uuid::Uuid::new_v4().simple().to_string().repeat(2));
            let config = IdentityConfig {
                keys: std::sync::Arc::new(keys::Keys::fixed(throwaway(), throwaway())),
                argon2_memory_kib: ARGON2_MEMORY_KIB_DEFAULT,
                login_failures_per_account_max: 1,
                login_failures_per_address_max: 1,
                redis: None,
            };
            let created = match Identity::new(store.clone(), config).await {
                Ok(identity) => {
                    identity.register_admin(email, password, name).await.map_err(anyhow::Error::from)
                }
                Err(error) => Err(error),
            };
            store.close().await;
            let admin = created?;
            println!("created admin {} ({})", admin.id, admin.email);
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate(args)) => {
            let variable = args.secret.variable();
            anyhow::ensure!(
                std::env::var_os(variable).is_none(),
                "{variable} is set, so the servers do not use the kept secret: rotate it by setting the new \
                 value there and the old one in {variable}_PREVIOUS"
            );
            let grace = std::time::Duration::from_secs(args.grace_s);
            let rotated =
                keys::rotate(&args.database.data_dir, args.secret, grace, std::time::SystemTime::now())?;
            let until = coffer::rfc3339(rotated.previous_until.saturating_mul(1_000_000_000));
            eprintln!(
                "rotated {}; the replaced one is accepted until {until}; servers sharing {} pick the new one up \
                 within {} s",
                args.secret.file(),
                args.database.data_dir.display(),
                keys::RELOAD_INTERVAL.as_secs()
            );
            if args.secret == keys::Kind::AdminKey {
                println!("{}", rotated.new.expose());
            }
            Ok(())
        }
        Command::Verify(args) => {
            // Checking nothing would pass: a missing embedded database is an error.
            if let Ok(file) = embedded_only(&args.database, "verify") {
                anyhow::ensure!(file.is_file(), "no embedded database at {}", file.display());
            }
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

/// The display of `coffer verify`'s progress.
fn progress_display() -> impl FnMut(coffer::verify::Progress) + Send {
    use coffer::verify::Progress;
    let mut meter = Meter::new("verify", "rows read");
    let mut total = 0;
    move |progress| match progress {
        Progress::Total(rows) => total = rows,
        Progress::Read(rows) => meter.at(rows, total),
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

/// The embedded database's file; PostgreSQL has its own tools for what asks for it.
fn embedded_only(database: &coffer::config::DatabaseArgs, what: &str) -> anyhow::Result<std::path::PathBuf> {
    match &database.database_url {
        Some(url) if !url.starts_with("sqlite:") => anyhow::bail!(
            "coffer can {what} only the embedded database; for PostgreSQL use pg_dump / pg_restore \
             or base backups with WAL archiving (see the README), then `coffer verify`"
        ),
        Some(url) => Ok(url.trim_start_matches("sqlite:").split('?').next().unwrap_or_default().into()),
        None => Ok(database.data_dir.join("coffer.db")),
    }
}
