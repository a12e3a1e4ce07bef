//! Startup and shutdown: open and migrate the store, start the commit pipeline, bind the
//! listeners (HTTP, and gRPC for the api role), start this process's roles (api, relay, workers), serve until told to stop,
//! then drain in order — stop accepting, finish in-flight requests, stop the relay and
//! workers, commit what is queued, close the database.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use store::{Store, StoreOptions};
use tokio::net::TcpListener;
use tracing::info;

use crate::{
    analytics::Analytics,
    commit::{CommitPipeline, PipelineConfig, pipeline::PipelineTask},
    config::{DatabaseArgs, ProcessRole, Secret, ServeArgs},
    events::{
        AnyConsumer, Bus, Relay, RelayOptions,
        kafka::{Kafka, KafkaSettings},
        nats::Nats,
        relay::{Both, InProcess},
    },
    finance::banks::{sandbox::Sandbox, simplefin::SimpleFin, sync::Banks},
    http::{self, AppState, routes::stream::StreamSettings},
    identity::{
        Identity, IdentityConfig,
        keys::{self, KeySources, Keys},
    },
    limits::{Limits, shared::Shared},
    notifications::{
        NotificationDefaults, Notifier,
        mail::Mailer,
        webhooks::{Deliverer, DeliveryOptions},
    },
    payments::{MockProvider, MockSettings, Payments, Reconciliations},
    wallets::{Wallets, service::Fees},
};
use tokio_util::sync::CancellationToken;

/// Opens the configured database and applies its migrations.
pub async fn open_store(database: &DatabaseArgs) -> anyhow::Result<Store> {
    if database.database_url.is_none() {
        std::fs::create_dir_all(&database.data_dir)?;
    }
    let options = StoreOptions { max_connections: database.database_max_connections };
    let store = Store::open(&database.url(), options).await?;
    store.migrate().await?;
    Ok(store)
}

/// A server that is listening but not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// The gRPC listener, for the `api` role when `COFFER_GRPC_LISTEN` is not `none`.
    grpc_listener: Option<TcpListener>,
    /// TLS for both listeners, when a certificate and key are configured.
    tls: Option<crate::tls::Tls>,
    store: Store,
    pipeline: CommitPipeline,
    pipeline_task: PipelineTask,
    keys: Arc<Keys>,
    identity: Arc<Identity>,
    limits: http::RequestLimits,
    mock_provider: MockSettings,
    reconciliation_overdue_days: u32,
    fx: (crate::fx::FxSettings, Arc<dyn crate::fx::rates::RateProvider>),
    credit: crate::credit::CreditSettings,
    fees: Fees,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Money requests and open streams per customer (in Redis when configured).
    customer_limits: Arc<Limits>,
    recovery_interval: Duration,
    recovery_grace: Duration,
    idempotency_retention: Duration,
    /// How long sent events stay in the outbox; None keeps them all.
    event_retention: Option<Duration>,
    events: EventSettings,
}

/// What the event roles need: the roles, the broker, the relay, notifications.
#[derive(Debug)]
struct EventSettings {
    roles: Vec<ProcessRole>,
    nats: Option<Nats>,
    /// The relay's second destination, when `COFFER_KAFKA_BROKERS` is set.
    kafka: Option<Arc<Kafka>>,
    relay: RelayOptions,
    interval: Duration,
    /// Built at bind, so that a bad SMTP URL or sender fails the start.
    mailer: Option<Mailer>,
    defaults: NotificationDefaults,
    delivery: DeliveryOptions,
    heartbeat: Duration,
    stream_buffer: usize,
    schedule_retry_base: Duration,
    bank_sync_interval: Duration,
    /// Between the monthly digest's rounds over the customers.
    digest_pause: Duration,
    /// Built at bind, with the hosts it may contact (`COFFER_SIMPLEFIN_HOSTS`).
    simplefin: Arc<SimpleFin>,
    /// Between scheduled verifications; zero: none.
    verify_interval: Duration,
}

impl Server {
    /// Opens the store, starts the pipeline and binds the listen address.
    pub async fn bind(args: ServeArgs) -> anyhow::Result<Self> {
        let mut store = open_store(&args.database).await?;
        if let Some(url) = &args.read_database_url {
            let wait = Duration::from_millis(args.read_replica_wait_ms);
            store = store.with_read_replica(url, args.database.database_max_connections, wait)?;
        }
        let keys = Arc::new(Keys::load(KeySources {
            data_dir: args.database.data_dir.clone(),
            admin_key: args.admin_api_key,
            admin_key_previous: args.admin_api_key_previous,
            jwt_secret: args.jwt_secret,
            jwt_secret_previous: args.jwt_secret_previous,
        })?);
        let redis = match &args.redis_url {
            Some(url) => Some(Arc::new(Shared::new(url, &args.redis_key_prefix)?)),
            None => None,
        };
        let identity = Identity::new(
            store.clone(),
            IdentityConfig {
                keys: keys.clone(),
                argon2_memory_kib: args.argon2_memory_kib,
                login_failures_per_account_max: args.login_failures_per_account_max,
                login_failures_per_address_max: args.login_failures_per_ip_max,
                redis: redis.clone(),
            },
        )
        .await?;
        let money_per_minute = std::num::NonZeroU32::new(args.money_requests_per_minute)
            .ok_or_else(|| anyhow::anyhow!("COFFER_MONEY_REQUESTS_PER_MINUTE must be at least 1"))?;
        let customer_limits =
            Arc::new(Limits::new(money_per_minute, args.stream_connections_per_customer_max, redis));
        let config = PipelineConfig { queue_requests_max: args.commit_queue_max as usize };
        let (pipeline, pipeline_task) = CommitPipeline::start(store.clone(), config);
        // Checked before anything listens: a bad certificate stops the start.
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::Tls::load(cert, key)?),
            _ => None,
        };
        let listener = TcpListener::bind(args.listen).await?;
        let grpc_listener = match args.grpc_listen.0 {
            Some(address) if args.roles.contains(&ProcessRole::Api) => {
                Some(TcpListener::bind(address).await?)
            }
            _ => None,
        };
        let nats = match &args.nats_url {
            Some(url) => {
                let nats = Nats::connect(url).await?.with_replicas(args.nats_replicas as usize);
                if let Err(error) = nats.ensure_stream().await {
                    tracing::warn!(%error, "NATS JetStream not ready; the relay keeps events until it is");
                }
                Some(nats)
            }
            None => None,
        };
        let kafka = (!args.kafka_brokers.is_empty()).then(|| {
            Arc::new(Kafka::new(KafkaSettings {
                brokers: args.kafka_brokers.clone(),
                topic: args.kafka_topic.clone(),
                partitions: args.kafka_partitions,
                replication: args.kafka_replication,
            }))
        });
        let events = EventSettings {
            roles: args.roles.clone(),
            nats,
            kafka,
            relay: RelayOptions {
                batch_max: args.relay_batch_max,
                idle_interval: Duration::from_millis(args.relay_interval_ms),
                lease: Duration::from_millis(args.relay_lease_ms),
                ..RelayOptions::default()
            },
            interval: Duration::from_millis(args.relay_interval_ms),
            mailer: Some(Mailer::new(
                store.clone(),
                args.smtp_url.as_deref(),
                args.database.data_dir.join("mail"),
                &args.mail_from,
            )?),
            defaults: NotificationDefaults {
                high_value_threshold: args.high_value_threshold,
                low_balance_threshold: args.low_balance_threshold,
            },
            delivery: DeliveryOptions {
                retry_base: Duration::from_millis(args.webhook_retry_base_ms),
                allow_private: args.webhook_allow_private,
                ..DeliveryOptions::default()
            },
            heartbeat: Duration::from_secs(args.stream_heartbeat_s),
            stream_buffer: args.stream_buffer as usize,
            schedule_retry_base: Duration::from_millis(args.schedule_retry_base_ms),
            bank_sync_interval: Duration::from_secs(args.bank_sync_interval_s),
            digest_pause: Duration::from_secs(args.digest_pause_s),
            simplefin: Arc::new(SimpleFin::new(args.simplefin_hosts.clone())?),
            verify_interval: Duration::from_secs(args.verify_interval_s),
        };
        Ok(Self {
            events,
            listener,
            grpc_listener,
            tls,
            store,
            pipeline,
            pipeline_task,
            keys,
            customer_limits,
            trusted_proxies: args.trusted_proxies.clone(),
            fees: Fees {
                transfer_bps: args.fee_transfer_bps,
                top_up_bps: args.fee_top_up_bps,
                withdrawal_bps: args.fee_withdrawal_bps,
            },
            mock_provider: MockSettings {
                latency: Duration::from_millis(args.mock_provider_latency_ms),
                failure_rate: args.mock_provider_failure_rate,
            },
            reconciliation_overdue_days: args.reconciliation_overdue_days,
            fx: (
                crate::fx::FxSettings {
                    spread_bps: args.fx_spread_bps,
                    fee_bps: args.fx_fee_bps,
                    quote_ttl: Duration::from_secs(args.fx_quote_ttl_s),
                    max_age_s: args.fx_max_age_s,
                },
                match &args.fx_rates_url {
                    Some(location) => Arc::new(crate::fx::rates::ReferenceFile::new(location.clone())?),
                    None => Arc::new(crate::fx::rates::Sandbox),
                },
            ),
            credit: crate::credit::CreditSettings {
                refresh: Duration::from_secs(args.credit_refresh_s),
                retention: Duration::from_secs(u64::from(args.credit_retention_days) * 24 * 3_600),
            },
            recovery_interval: Duration::from_millis(args.recovery_interval_ms),
            recovery_grace: Duration::from_millis(args.recovery_grace_ms),
            idempotency_retention: Duration::from_secs(args.idempotency_retention_hours * 3_600),
            event_retention: (args.event_retention_days > 0)
                .then(|| Duration::from_secs(u64::from(args.event_retention_days) * 24 * 3_600)),
            identity: Arc::new(identity),
            limits: http::RequestLimits {
                timeout: Duration::from_millis(args.request_timeout_ms),
                in_flight_max: args.requests_in_flight_max as usize,
            },
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where gRPC listens, when it does.
    pub fn grpc_local_addr(&self) -> Option<SocketAddr> {
        self.grpc_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// The current admin API key.
    pub fn admin_api_key(&self) -> Secret {
        self.keys.admin_key()
    }

    /// Serves until `shutdown` completes, then drains and closes everything.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let wallets = Arc::new(Wallets::with_fees(self.store.clone(), self.pipeline.clone(), self.fees));
        let provider = Arc::new(MockProvider::new(self.mock_provider));
        let payments = Arc::new(Payments::new(
            self.store.clone(),
            self.pipeline.clone(),
            wallets.clone(),
            provider.clone(),
            provider.clone(),
        ));
        let reconciliations = Arc::new(Reconciliations::new(
            self.store.clone(),
            wallets.clone(),
            self.reconciliation_overdue_days,
        ));
        let fx = Arc::new(crate::fx::Fx::new(
            self.store.clone(),
            self.pipeline.clone(),
            wallets.clone(),
            self.fx.1.clone(),
            self.fx.0,
        ));
        let credit = Arc::new(crate::credit::Credit::new(
            self.store.clone(),
            Arc::new(crate::credit::bureau::Sandbox),
            self.credit,
        ));
        let stop_workers = CancellationToken::new();
        let mailer = self.events.mailer.take();
        let events = &self.events;
        let has = |role: ProcessRole| events.roles.contains(&role);
        let bus = Bus::new(events.stream_buffer);
        let notifier = Arc::new(Notifier::new(self.store.clone(), events.defaults));
        let analytics = Arc::new(Analytics::new(self.store.clone()));
        let banks = Arc::new(
            Banks::new(self.store.clone(), Arc::new(Sandbox::default()), events.bank_sync_interval)
                .with(events.simplefin.clone()),
        );
        let verifier = crate::verify::Verifier::new(self.store.clone());
        let mut tasks = Vec::new();
        if self.keys.reloadable() {
            // Every role checks credentials (the ops routes too): pick up `coffer keys rotate`.
            let keys = self.keys.clone();
            tasks.push(tokio::spawn(crate::support::repeat(
                "keys",
                keys::RELOAD_INTERVAL,
                stop_workers.clone(),
                move || {
                    let keys = keys.clone();
                    async move {
                        if keys.reload()? {
                            info!("the admin key or token signing secret changed on disk; now in force");
                        }
                        Ok(false)
                    }
                },
            )));
        }
        if has(ProcessRole::Workers) {
            if !events.verify_interval.is_zero() {
                tasks.push(tokio::spawn(
                    verifier.clone().run_every(events.verify_interval, stop_workers.clone()),
                ));
            }
            tasks.push(tokio::spawn(maintenance_worker(
                self.store.clone(),
                payments.clone(),
                fx.clone(),
                credit.clone(),
                Maintenance {
                    interval: self.recovery_interval,
                    recovery_grace: self.recovery_grace,
                    idempotency_retention: self.idempotency_retention,
                    event_retention: self.event_retention,
                },
                stop_workers.clone(),
            )));
            if let Some(mailer) = mailer {
                tasks.push(tokio::spawn(mailer.run(events.interval, stop_workers.clone())));
            }
            let scheduler = crate::finance::schedules::Scheduler::new(
                self.store.clone(),
                wallets.clone(),
                events.schedule_retry_base,
            );
            tasks.push(tokio::spawn(scheduler.run_until(events.interval, stop_workers.clone())));
            tasks.push(tokio::spawn(Banks::clone(&banks).run_until(events.interval, stop_workers.clone())));
            let digest = crate::notifications::digest::Digest::new(
                self.store.clone(),
                events.defaults,
                events.digest_pause,
            );
            tasks.push(tokio::spawn(Arc::new(digest).run_until(events.interval, stop_workers.clone())));
            tasks.push(tokio::spawn(credit.clone().run_until(events.interval, stop_workers.clone())));
            let deliverer = Deliverer::new(self.store.clone(), events.delivery);
            tasks.push(tokio::spawn(deliverer.run(events.interval, stop_workers.clone())));
            if let Some(nats) = &events.nats {
                tasks.push(tokio::spawn({
                    let (nats, notifier, stop) = (nats.clone(), notifier.clone(), stop_workers.clone());
                    async move { nats.consume(notifier, stop).await }
                }));
                tasks.push(tokio::spawn({
                    let (nats, analytics, stop) = (nats.clone(), analytics.clone(), stop_workers.clone());
                    async move { nats.consume(analytics, stop).await }
                }));
            }
        }
        if has(ProcessRole::Relay) {
            let relay = events.relay;
            let kafka = events.kafka.clone();
            tasks.push(match &events.nats {
                Some(nats) => {
                    let publisher = Both { first: kafka, then: nats.clone() };
                    tokio::spawn(Relay::new(self.store.clone(), publisher, relay).run(stop_workers.clone()))
                }
                None => {
                    // Without a broker the consumers run in this process, with the relay.
                    let consumers: Vec<Arc<dyn AnyConsumer>> = if has(ProcessRole::Workers) {
                        vec![notifier.clone(), analytics.clone()]
                    } else {
                        Vec::new()
                    };
                    let publisher = Both { first: kafka, then: InProcess { bus: bus.clone(), consumers } };
                    tokio::spawn(Relay::new(self.store.clone(), publisher, relay).run(stop_workers.clone()))
                }
            });
        }
        if has(ProcessRole::Api) {
            // The per-customer buckets of this process: forget the full ones, so memory
            // follows the recently active customers.
            let limits = self.customer_limits.clone();
            tasks.push(tokio::spawn(crate::support::repeat(
                "limits",
                LIMITS_TIDY_INTERVAL,
                stop_workers.clone(),
                move || {
                    limits.money.forget_idle();
                    async { Ok(false) }
                },
            )));
        }
        if has(ProcessRole::Api)
            && let Some(nats) = &events.nats
        {
            tasks.push(tokio::spawn({
                let (nats, bus, stop) = (nats.clone(), bus.clone(), stop_workers.clone());
                async move { nats.fan_out(bus, stop).await }
            }));
        }
        info!(
            roles = ?events.roles,
            broker = if events.nats.is_some() { "nats" } else { "in-process" },
            kafka = events.kafka.is_some(),
            "roles started"
        );
        let state = AppState {
            store: self.store.clone(),
            pipeline: self.pipeline,
            keys: self.keys,
            wallets: wallets.clone(),
            payments,
            reconciliations,
            fx,
            credit,
            insights: crate::insights::Insights::new(self.store.clone()),
            mock_provider: provider,
            limits: self.customer_limits.clone(),
            identity: self.identity,
            stream: Arc::new(StreamSettings {
                feed: crate::events::feed::Feed::new(self.store.clone(), bus),
                heartbeat: events.heartbeat,
            }),
            nats: events.nats.clone(),
            endpoints: Arc::new(crate::notifications::endpoints::Endpoints::new(
                self.store.clone(),
                events.delivery.allow_private,
            )),
            finance: Arc::new(crate::finance::Finance::new(self.store.clone())),
            schedules: Arc::new(crate::finance::schedules::Schedules::new(
                self.store.clone(),
                wallets.clone(),
            )),
            analytics,
            banks,
            verifier,
            idempotency_lease: http::idempotency::lease_for(self.limits.timeout),
            leases: Arc::default(),
            secure_cookies: self.tls.is_some(),
            trusted_proxies: self.trusted_proxies.into(),
        };
        // One shutdown for both servers: each stops accepting, then finishes its calls.
        let stop_serving = CancellationToken::new();
        tokio::spawn({
            let stop_serving = stop_serving.clone();
            async move {
                shutdown.await;
                stop_serving.cancel();
            }
        });
        let grpc = match self.grpc_listener.take() {
            Some(listener) => {
                info!(address = %listener.local_addr()?, "gRPC listening");
                Some(tokio::spawn(crate::grpc::serve(
                    listener,
                    state.clone(),
                    self.limits.timeout,
                    self.tls.as_ref().map(crate::tls::Tls::grpc),
                    stop_serving.clone().cancelled_owned(),
                )))
            }
            None => None,
        };
        let app =
            if has(ProcessRole::Api) { http::router(state, self.limits) } else { http::ops_router(state) };
        let address = self.listener.local_addr()?;
        info!(%address, backend = ?self.store.backend(), tls = self.tls.is_some(), "listening");
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = match &self.tls {
            // `tap_io` only so that the connections' addresses reach the handlers.
            Some(tls) => {
                use axum::serve::ListenerExt as _;
                axum::serve(tls.listener(self.listener)?.tap_io(|_| ()), app)
                    .with_graceful_shutdown(stop_serving.clone().cancelled_owned())
                    .await
            }
            None => {
                axum::serve(self.listener, app)
                    .with_graceful_shutdown(stop_serving.clone().cancelled_owned())
                    .await
            }
        };
        // Should the HTTP server fail on its own, gRPC stops with it.
        stop_serving.cancel();
        let grpc_served = match grpc {
            Some(task) => task.await.map_err(anyhow::Error::new).and_then(|served| served),
            None => Ok(()),
        };
        info!("stopped accepting requests; stopping workers and draining the commit queue");
        stop_workers.cancel();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a background task failed");
            }
        }
        self.pipeline_task.shutdown().await;
        self.store.close().await;
        info!("shut down");
        served?;
        grpc_served
    }
}

/// What the maintenance worker does, and how often.
#[derive(Clone, Copy, Debug)]
struct Maintenance {
    interval: Duration,
    recovery_grace: Duration,
    idempotency_retention: Duration,
    event_retention: Option<Duration>,
}

/// Between the API role's tidying of its per-customer rate-limit buckets.
const LIMITS_TIDY_INTERVAL: Duration = Duration::from_secs(60);

/// Idempotency keys deleted per pass at most: bounded so a backlog never holds the
/// writer for long; the next pass continues.
const IDEMPOTENCY_PURGE_BATCH_MAX: u32 = 1_000;

/// Every `interval` until `stop`: finishes payments left pending (a provider timeout, a
/// crash), forgets idempotency keys past their retention, events past theirs (when one
/// is set), conversion quotes a day after they expired unexecuted (and records the
/// day's exchange rates), and credit reports
/// past their retention after consent was withdrawn. Errors are logged and retried on the next pass.
async fn maintenance_worker(
    store: Store,
    payments: Arc<Payments>,
    fx: Arc<crate::fx::Fx>,
    credit: Arc<crate::credit::Credit>,
    settings: Maintenance,
    stop: CancellationToken,
) {
    let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match payments.recover(nanos(settings.recovery_grace)).await {
            Ok(0) => {}
            Ok(count) => info!(count, "recovered pending payments"),
            Err(error) => tracing::warn!(%error, "payment recovery failed; retrying next pass"),
        }
        let now = store::now_ns();
        let cutoff = now.saturating_sub(nanos(settings.idempotency_retention));
        match store.idempotency_purge(cutoff, IDEMPOTENCY_PURGE_BATCH_MAX).await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "forgot expired idempotency keys"),
            Err(error) => tracing::warn!(%error, "purging idempotency keys failed; retrying next pass"),
        }
        // Sent events are the history the projections rebuild from: kept unless a
        // retention is set. Consumers remember applied ids a day longer than the broker
        // keeps events, so no redelivery can find them gone.
        let day = nanos(Duration::from_secs(24 * 3600));
        if let Some(retention) = settings.event_retention
            && let Err(error) = store.purge_events(now.saturating_sub(nanos(retention)), now).await
        {
            tracing::warn!(%error, "purging sent events failed; retrying next pass");
        }
        if let Err(error) = store.purge_consumed_events(now.saturating_sub(8 * day)).await {
            tracing::warn!(%error, "purging consumed event ids failed; retrying next pass");
        }
        // Asked each pass, the rates are fetched once a minute at most and each fetch is
        // recorded by day, so home-currency reports find the rate of every day.
        if let Err(error) = fx.rates().await {
            tracing::debug!(%error, "no current exchange rates");
        }
        if let Err(error) = fx.purge(IDEMPOTENCY_PURGE_BATCH_MAX).await {
            tracing::warn!(%error, "purging expired quotes failed; retrying next pass");
        }
        if let Err(error) = credit.purge(IDEMPOTENCY_PURGE_BATCH_MAX).await {
            tracing::warn!(%error, "purging withdrawn customers' credit reports failed; retrying next pass");
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    info!("shutdown requested");
}
