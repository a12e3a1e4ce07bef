//! Command-line and environment configuration.
//!
//! Every setting has a flag and a `COFFER_*` environment variable (plus `DATABASE_URL`),
//! documented in `coffer --help`. Values are validated here, once, at startup; the rest
//! of the program receives a typed [`ServeConfig`] and never reads the environment.

use std::{fmt, net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Coffer: a wallet, ledger and personal-finance backend in one binary.
///
/// With no configuration it keeps its data in an embedded SQLite database under
/// `./coffer-data`; set DATABASE_URL=postgres://… to use PostgreSQL instead.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter, in tracing's EnvFilter syntax (for example `info` or `coffer=debug,info`).
    #[arg(long, env = "COFFER_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Log line format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "COFFER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g.
    /// `http://127.0.0.1:4318` (spans are POSTed to `<endpoint>/v1/traces`). Unset: no
    /// tracing export. Log lines inside a traced request then carry its `trace_id`.
    #[arg(long, env = "COFFER_OTLP_ENDPOINT", global = true, value_parser = crate::telemetry::parse_endpoint)]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: runs pending migrations first, then serves the HTTP API until
    /// SIGTERM or Ctrl-C, then drains the commit queue and closes the database.
    Serve(Box<ServeArgs>),
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage the read-side projections (platform analytics).
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Print the OpenAPI document (the one served at /openapi.json) and exit: for client
    /// generators and API checks that run without a server.
    Openapi,
    /// Check the books: replay every ledger transfer and compare with the stored balances,
    /// snapshots, limits, pending statuses and per-ledger totals; check every wallet's
    /// ledger account and every transfer note. Reads one consistent snapshot, so it can
    /// run beside a server. Exits 1 when it finds anything, naming the offending ids.
    Verify(VerifyArgs),
    /// Back up the embedded database to a file, consistently, while a server may be
    /// running: SQLite's online backup, gzip-compressed, with a manifest (schema version,
    /// counts, the hash chain's head). PostgreSQL: use its own tools (see the README).
    Backup(BackupArgs),
    /// Restore a backup into an empty data directory (never over a database); refuses a
    /// backup with a newer schema than this build's, and checks the restored file against
    /// its manifest. Run `coffer verify` after it.
    Restore(RestoreArgs),
    /// Operator tasks that need no running server.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The admin API key and the access-token signing secret kept in the data directory.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Replace a secret kept in the data directory with a new random one. The old one
    /// stays accepted for a grace: the signing secret until every token it signed has
    /// expired (15 minutes), the admin key for --grace-s (0: refused at once, for a leaked
    /// key). Running servers that share the directory pick the change up within seconds;
    /// the new admin key is printed on standard output.
    Rotate(RotateArgs),
}

/// `coffer keys rotate`.
#[derive(Clone, Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Which secret.
    #[arg(value_enum)]
    pub secret: crate::identity::keys::Kind,
    /// How long the replaced admin key stays accepted, in seconds (the replaced signing
    /// secret is accepted until its last token expires, 15 minutes, whatever this says).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(0..=2_592_000))]
    pub grace_s: u64,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a customer with the admin role: the first admin, without SQL. The password
    /// comes from COFFER_ADMIN_PASSWORD or, unset, from the first line of standard input;
    /// it must pass the same rules as a registration's.
    Create(AdminCreateArgs),
}

/// `coffer admin create`.
#[derive(Clone, Debug, Args)]
pub struct AdminCreateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The admin's email (their login).
    #[arg(long)]
    pub email: String,
    /// The admin's name.
    #[arg(long)]
    pub name: String,
    /// The password (better given through the environment than on a command line).
    #[arg(long, env = "COFFER_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// `coffer backup`.
#[derive(Clone, Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The file to write (it must not exist).
    #[arg(long)]
    pub to: PathBuf,
}

/// `coffer restore`.
#[derive(Clone, Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The backup file to read.
    #[arg(long)]
    pub from: PathBuf,
}

/// `coffer verify`.
#[derive(Clone, Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Print the result as JSON (checks with their counts, findings with ids) instead of a
    /// summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Empty the analytics projection and replay every event of the outbox into it, in
    /// order, with the same code the live consumer runs: the result is what the live
    /// projection holds. Safe while servers run (events are applied once per consumer).
    Rebuild(RebuildArgs),
}

/// `coffer projections rebuild`.
#[derive(Clone, Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Rebuild even though events were purged from the outbox
    /// (COFFER_EVENT_RETENTION_DAYS): the result then lacks what the purged events said.
    #[arg(long)]
    pub allow_partial: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the data lives.
#[derive(Clone, Debug, Args)]
pub struct DatabaseArgs {
    /// Directory for the embedded database and the generated admin API key.
    #[arg(long, env = "COFFER_DATA_DIR", default_value = "./coffer-data")]
    pub data_dir: PathBuf,

    /// Database to use instead of the embedded one: `postgres://user@host:port/db`
    /// (or `sqlite:PATH`). Unset: SQLite at DATA_DIR/coffer.db.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Database connections to hold at most (a bounded pool; readers and the writer).
    #[arg(long, env = "COFFER_DATABASE_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(2..=1024))]
    pub database_max_connections: u32,
}

impl DatabaseArgs {
    /// The URL to open: DATABASE_URL, or the embedded database in the data directory.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite:{}", self.data_dir.join("coffer.db").display()),
        }
    }
}

/// Where gRPC listens: an address, or `none` to serve no gRPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcListen(pub Option<SocketAddr>);

impl std::str::FromStr for GrpcListen {
    type Err = std::net::AddrParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("none") {
            Ok(Self(None))
        } else {
            text.parse().map(|address| Self(Some(address)))
        }
    }
}

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address and port to listen on.
    #[arg(long, env = "COFFER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// A streaming replica of DATABASE_URL (PostgreSQL) for history, reports, analytics and
    /// ledger lookups; each such read waits for the replica to replay every commit
    /// acknowledged before it, or goes to the primary (docs/scaling.md).
    #[arg(long, env = "COFFER_READ_DATABASE_URL", hide_env_values = true, requires = "database_url")]
    pub read_database_url: Option<String>,

    /// How long a read waits for the replica to catch up before the primary serves it, in ms.
    #[arg(long, env = "COFFER_READ_REPLICA_WAIT_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub read_replica_wait_ms: u64,

    /// Address and port of the gRPC listener (`coffer.v1.LedgerService`,
    /// `coffer.v1.WalletService`, health and reflection; see docs/grpc.md), or `none` for
    /// no gRPC. Only the `api` role serves it.
    #[arg(long, env = "COFFER_GRPC_LISTEN", default_value = "127.0.0.1:9090")]
    pub grpc_listen: GrpcListen,

    /// A PEM certificate chain (leaf first): serve REST and gRPC over TLS with it and
    /// TLS_KEY. Unset: plain HTTP and gRPC (for a proxy that terminates TLS in front).
    #[arg(long, env = "COFFER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of TLS_CERT.
    #[arg(long, env = "COFFER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// The admin API key (`Authorization: Bearer <key>`). Unset: one is generated on the
    /// first start, stored in DATA_DIR/admin-api-key and printed once.
    #[arg(long, env = "COFFER_ADMIN_API_KEY", hide_env_values = true)]
    pub admin_api_key: Option<Secret>,

    /// The admin API key that COFFER_ADMIN_API_KEY replaced, still accepted while it is
    /// set: for rotating a configured key (remove it when clients have the new one). A key
    /// kept in the data directory is rotated with `coffer keys rotate admin-key`.
    #[arg(long, env = "COFFER_ADMIN_API_KEY_PREVIOUS", hide_env_values = true, requires = "admin_api_key")]
    pub admin_api_key_previous: Option<Secret>,

    /// Requests waiting for the commit pipeline at most; past it, writes get 503 with
    /// Retry-After instead of queueing without bound.
    #[arg(long, env = "COFFER_COMMIT_QUEUE_MAX", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub commit_queue_max: u32,

    /// Requests handled at once at most; past it, requests get 503 with Retry-After.
    #[arg(long, env = "COFFER_REQUESTS_IN_FLIGHT_MAX", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub requests_in_flight_max: u32,

    /// Money-moving or creating requests (transfers, top-ups, withdrawals, new wallets)
    /// one customer may make per minute; past it, 429 with Retry-After.
    #[arg(long, env = "COFFER_MONEY_REQUESTS_PER_MINUTE", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub money_requests_per_minute: u32,

    /// How long idempotency keys (and the responses they replay) are kept, in hours.
    #[arg(long, env = "COFFER_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(24..=8_760))]
    pub idempotency_retention_hours: u64,

    /// Fee on P2P transfers, in basis points of the amount (100 = 1 %), paid by the sender.
    #[arg(long, env = "COFFER_FEE_TRANSFER_BPS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub fee_transfer_bps: u32,

    /// Fee on card top-ups, in basis points of the amount, taken from the credited wallet.
    #[arg(long, env = "COFFER_FEE_TOP_UP_BPS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub fee_top_up_bps: u32,

    /// Fee on withdrawals, in basis points of the amount, held with the withdrawal and
    /// posted or voided with it.
    #[arg(long, env = "COFFER_FEE_WITHDRAWAL_BPS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub fee_withdrawal_bps: u32,

    /// Latency of the built-in mock payment provider, in milliseconds.
    #[arg(long, env = "COFFER_MOCK_PROVIDER_LATENCY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub mock_provider_latency_ms: u64,

    /// Share of mock provider calls (0 to 1) that fail as "unavailable", to exercise retries.
    #[arg(long, env = "COFFER_MOCK_PROVIDER_FAILURE_RATE", default_value_t = 0.0,
          value_parser = parse_rate)]
    pub mock_provider_failure_rate: f64,

    /// Reconciliation: days after which a settlement line without a transfer, or a
    /// transfer without a line, is reported by a `reconciliation.unmatched` event.
    #[arg(long, env = "COFFER_RECONCILIATION_OVERDUE_DAYS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=365))]
    pub reconciliation_overdue_days: u32,

    /// Currency conversion: where reference rates come from. Unset: the sandbox's fixed
    /// rates (every supported currency). Otherwise a path or http(s) URL of a European
    /// Central Bank reference file (eurofxref-daily.xml, a history file such as
    /// eurofxref-hist-90d.xml whose every day is recorded, or the CSV forms), re-read every
    /// minute; the ECB publishes no KES, RWF or NGN rate.
    #[arg(long, env = "COFFER_FX_RATES_URL")]
    pub fx_rates_url: Option<String>,

    /// Currency conversion: rates older than this many seconds are refused (503
    /// `fx_rates_stale`). The default, 4 days, spans a weekend of a daily file.
    #[arg(long, env = "COFFER_FX_MAX_AGE_S", default_value_t = 345_600,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub fx_max_age_s: u64,

    /// Currency conversion: the spread taken off the mid rate, in basis points.
    #[arg(long, env = "COFFER_FX_SPREAD_BPS", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=5_000))]
    pub fx_spread_bps: u32,

    /// Currency conversion: the fee on the amount sold, in basis points (rounded down),
    /// paid to the fees account with the conversion.
    #[arg(long, env = "COFFER_FX_FEE_BPS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub fx_fee_bps: u32,

    /// Currency conversion: seconds a quote may be executed after it is made.
    #[arg(long, env = "COFFER_FX_QUOTE_TTL_S", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub fx_quote_ttl_s: u64,

    /// Credit reports: seconds between pulls of a consent in force (default 30 days).
    #[arg(long, env = "COFFER_CREDIT_REFRESH_S", default_value_t = 2_592_000,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub credit_refresh_s: u64,

    /// Credit reports: days a customer's reports are kept after they withdraw consent
    /// (0: deleted at the next maintenance pass).
    #[arg(long, env = "COFFER_CREDIT_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=3_650))]
    pub credit_retention_days: u32,

    /// How often the recovery worker looks for payments left pending, in milliseconds.
    #[arg(long, env = "COFFER_RECOVERY_INTERVAL_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub recovery_interval_ms: u64,

    /// How long a payment must have been pending before recovery asks the provider about
    /// it, in milliseconds: longer than a request may run, so it never races a live one.
    #[arg(long, env = "COFFER_RECOVERY_GRACE_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub recovery_grace_ms: u64,

    /// Longest time a request may take, in milliseconds, before it gets 503. An
    /// Idempotency-Key whose request died (a crash) is free again a second after this.
    #[arg(long, env = "COFFER_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_timeout_ms: u64,

    /// The HS256 secret that signs access tokens (at least 32 bytes). Unset: one is
    /// generated on the first start and stored in DATA_DIR/jwt-secret. Every API node of
    /// a deployment must use the same secret.
    #[arg(long, env = "COFFER_JWT_SECRET", hide_env_values = true,
          value_parser = crate::identity::token::parse_secret)]
    pub jwt_secret: Option<Secret>,

    /// The signing secret that COFFER_JWT_SECRET replaced: tokens it signed are still
    /// accepted while it is set (remove it 15 minutes after every node has the new
    /// secret). A secret kept in the data directory is rotated with `coffer keys rotate
    /// jwt-secret`.
    #[arg(long, env = "COFFER_JWT_SECRET_PREVIOUS", hide_env_values = true, requires = "jwt_secret",
          value_parser = crate::identity::token::parse_secret)]
    pub jwt_secret_previous: Option<Secret>,

    /// Argon2id memory cost per password hash, in KiB. The default is OWASP's minimum
    /// (19 MiB with 2 passes); lower values are for test suites only and are logged as a
    /// warning.
    #[arg(long, env = "COFFER_ARGON2_MEMORY_KIB", default_value_t = crate::identity::password::ARGON2_MEMORY_KIB_DEFAULT,
          value_parser = clap::value_parser!(u32).range(64..=4_194_304))]
    pub argon2_memory_kib: u32,

    /// Failed logins per account within 15 minutes before further attempts get 429.
    #[arg(long, env = "COFFER_LOGIN_FAILURES_PER_ACCOUNT_MAX", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub login_failures_per_account_max: u32,

    /// Failed logins per client IP address within 15 minutes before further attempts get
    /// 429 (higher than per account: many people may share one address).
    #[arg(long, env = "COFFER_LOGIN_FAILURES_PER_IP_MAX", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub login_failures_per_ip_max: u32,

    /// What this process does, comma-separated: `api` (HTTP and WebSocket), `relay`
    /// (publishes the outbox), `workers` (notifications, emails, webhooks, payment
    /// recovery, expiry, scheduled payments, bank syncs). Several API nodes can share one
    /// relay/workers node.
    #[arg(
        long,
        env = "COFFER_ROLES",
        value_enum,
        value_delimiter = ',',
        default_value = "api,relay,workers"
    )]
    pub roles: Vec<ProcessRole>,

    /// NATS server with JetStream (`nats://host:4222`; a cluster as a comma-separated
    /// list, `nats://a:4222,nats://b:4222`). Unset: events go over an in-process bus and
    /// the embedded default needs no broker.
    #[arg(long, env = "COFFER_NATS_URL")]
    pub nats_url: Option<String>,

    /// Copies of the event stream a NATS JetStream cluster keeps (3 on a three-server
    /// cluster survives the loss of one); set when the stream is first made.
    #[arg(long, env = "COFFER_NATS_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=5))]
    pub nats_replicas: u32,

    /// Kafka bootstrap brokers (`host:9092`, comma-separated). Set: the relay also
    /// publishes every event to Kafka (before NATS or the in-process bus; see
    /// docs/scaling.md).
    #[arg(long, env = "COFFER_KAFKA_BROKERS", value_delimiter = ',')]
    pub kafka_brokers: Vec<String>,

    /// The Kafka topic of all events, keyed by customer.
    #[arg(long, env = "COFFER_KAFKA_TOPIC", default_value = "coffer.events")]
    pub kafka_topic: String,

    /// Partitions of the Kafka topic when the relay makes it (an existing topic keeps
    /// its own).
    #[arg(long, env = "COFFER_KAFKA_PARTITIONS", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub kafka_partitions: i32,

    /// Copies of each partition when the relay makes the Kafka topic.
    #[arg(long, env = "COFFER_KAFKA_REPLICATION", default_value_t = 1,
          value_parser = clap::value_parser!(i16).range(1..=5))]
    pub kafka_replication: i16,

    /// Events the relay publishes per batch at most.
    #[arg(long, env = "COFFER_RELAY_BATCH_MAX", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub relay_batch_max: u32,

    /// How often an idle relay (and the sending workers) look for work, in milliseconds.
    #[arg(long, env = "COFFER_RELAY_INTERVAL_MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub relay_interval_ms: u64,

    /// SMTP server for emails (`smtp://host:port`). Unset: emails are written to
    /// DATA_DIR/mail as .eml files.
    #[arg(long, env = "COFFER_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of Coffer's emails.
    #[arg(long, env = "COFFER_MAIL_FROM", default_value = "Coffer <no-reply@coffer.localhost>")]
    pub mail_from: String,

    /// Default "high-value transaction" alert threshold, in minor units (0: off); each
    /// customer may choose their own in their preferences.
    #[arg(long, env = "COFFER_HIGH_VALUE_THRESHOLD", default_value_t = 100_000)]
    pub high_value_threshold: u64,

    /// Default low-balance alert threshold, in minor units (0: off).
    #[arg(long, env = "COFFER_LOW_BALANCE_THRESHOLD", default_value_t = 0)]
    pub low_balance_threshold: u64,

    /// Allow webhook endpoints on loopback and private addresses (for development only:
    /// it lets webhook owners reach internal services).
    #[arg(long, env = "COFFER_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,

    /// Delay before a failed webhook delivery's first retry, in milliseconds; it doubles
    /// per attempt up to an hour, for 34 attempts (over 24 hours in all by default).
    #[arg(long, env = "COFFER_WEBHOOK_RETRY_BASE_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub webhook_retry_base_ms: u64,

    /// Scheduled payments: delay before retrying an occurrence that lacked funds, in
    /// milliseconds; it doubles per attempt (3 attempts).
    #[arg(long, env = "COFFER_SCHEDULE_RETRY_BASE_MS", default_value_t = 3_600_000,
          value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    pub schedule_retry_base_ms: u64,

    /// Days sent events stay in the outbox; 0 keeps them all. The analytics projections
    /// are rebuilt (`coffer projections rebuild`) from the outbox, so once events are
    /// purged a rebuild no longer sees the whole history. WebSocket clients can resume from
    /// any event still kept.
    #[arg(long, env = "COFFER_EVENT_RETENTION_DAYS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub event_retention_days: u32,

    /// Monthly digest: seconds between the workers' rounds over the customers, each round
    /// emailing last month's summary to those who opted in and were not sent it.
    #[arg(long, env = "COFFER_DIGEST_PAUSE_S", default_value_t = 3_600,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub digest_pause_s: u64,

    /// Bank connections: seconds between the workers' syncs of each linked connection. A
    /// failed sync is retried sooner, from a sixteenth of this, doubling, up to it.
    #[arg(long, env = "COFFER_BANK_SYNC_INTERVAL_S", default_value_t = 3_600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub bank_sync_interval_s: u64,

    /// Bank connections through SimpleFIN: the only hosts Coffer may contact for a
    /// customer's setup token (its claim URL) and the access URL a claim returns,
    /// comma-separated. `host` or `host:port` is https; `http://host:port` allows plain
    /// http, for local test servers only. Scheme, host and port must all match. The
    /// default is the SimpleFIN Bridge.
    #[arg(long, env = "COFFER_SIMPLEFIN_HOSTS", value_delimiter = ',',
          default_value = crate::finance::banks::simplefin::DEFAULT_HOSTS)]
    pub simplefin_hosts: Vec<crate::finance::banks::simplefin::AllowedHost>,

    /// How long the relay lease lasts without renewal, in ms: with a spare relay running,
    /// how soon it takes over from one that died (the holder renews every third of it).
    #[arg(long, env = "COFFER_RELAY_LEASE_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub relay_lease_ms: u64,

    /// Books' check: seconds between the workers' runs of `coffer verify` (the first one
    /// interval after start); 0 runs it only when asked (POST /v1/admin/verify).
    #[arg(long, env = "COFFER_VERIFY_INTERVAL_S", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub verify_interval_s: u64,

    /// WebSocket: seconds between heartbeats; a client that answers none of two in a row
    /// is disconnected.
    #[arg(long, env = "COFFER_STREAM_HEARTBEAT_S", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub stream_heartbeat_s: u64,

    /// WebSocket: events buffered for live streams; a stream that falls further behind is
    /// closed (it resumes from its last event id when it reconnects).
    #[arg(long, env = "COFFER_STREAM_BUFFER", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub stream_buffer: u32,

    /// WebSocket: streams one customer may hold open at once; one more gets 429
    /// `too_many_streams`.
    #[arg(long, env = "COFFER_STREAM_CONNECTIONS_PER_CUSTOMER_MAX", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub stream_connections_per_customer_max: u32,

    /// Proxies (addresses or networks, comma-separated: `10.0.0.0/24,fd00::1/128`) whose
    /// `X-Forwarded-For` names the client, for the per-address login limit. Unset: the
    /// TCP peer is the client; behind a load balancer, list the balancer here.
    #[arg(long, env = "COFFER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Redis (`redis://[:password@]host:6379[/db]`) in which the API nodes share their
    /// limits: failed logins, money requests per minute, open streams and stream tickets.
    /// Unset: each process counts its own. Unreachable: logins are refused, the other
    /// limits count on each node alone.
    #[arg(long, env = "COFFER_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// The prefix of every key Coffer writes in Redis (deployments sharing one Redis need
    /// different ones).
    #[arg(long, env = "COFFER_REDIS_KEY_PREFIX", default_value = "coffer")]
    pub redis_key_prefix: String,
}

/// A part of the work a `coffer serve` process takes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProcessRole {
    Api,
    Relay,
    Workers,
}

/// A network (`10.0.0.0/24`) or one address (`10.0.0.2`).
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is neither an IP address nor a network such as 10.0.0.0/24"))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| "must be a number from 0 to 1".to_owned())?;
    if (0.0..=1.0).contains(&rate) { Ok(rate) } else { Err("must be from 0 to 1".into()) }
}

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.len() < MIN_ADMIN_KEY_LEN {
            return Err(format!("must be at least {MIN_ADMIN_KEY_LEN} characters"));
        }
        Ok(Self(value.to_owned()))
    }
}

/// An admin key shorter than this is guessable; refuse it at startup.
pub const MIN_ADMIN_KEY_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn embedded_database_lives_in_the_data_dir() {
        let cli = Cli::try_parse_from(["coffer", "migrate", "--data-dir", "/tmp/x"]).unwrap();
        let Command::Migrate(args) = cli.command else { panic!("expected migrate") };
        // DATABASE_URL may be set in the environment of whoever runs the tests.
        if args.database_url.is_none() {
            assert_eq!(args.url(), "sqlite:/tmp/x/coffer.db");
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        assert_eq!(parse_network("10.0.0.2").unwrap(), "10.0.0.2/32".parse::<ipnet::IpNet>().unwrap());
        assert_eq!(parse_network(" 10.0.0.0/24").unwrap(), "10.0.0.0/24".parse::<ipnet::IpNet>().unwrap());
        assert_eq!(parse_network("fd00::1").unwrap(), "fd00::1/128".parse::<ipnet::IpNet>().unwrap());
        assert!(parse_network("balancer.local").is_err());
        assert!(parse_network("10.0.0.0/33").is_err());
    }

    #[test]
    fn short_admin_keys_are_refused_and_never_printed() {
        assert!("short".parse::<Secret>().is_err());
        let secret: Secret = "a-long-enough-admin-key".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }
}
