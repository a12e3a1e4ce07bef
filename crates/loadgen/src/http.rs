//! The scenarios that drive Coffer over HTTP — `batch`, `single` and `reads` — and the
//! checks that read the ledger back after a write scenario.
//!
//! Every worker is one tokio task holding one keep-alive connection's worth of requests
//! in flight (one at a time). `single` and `reads` workers drive the light client
//! (`wire`: one raw connection each, a pre-built request whose UUID slots are patched
//! per request) unless [`Client::Reqwest`] is asked for; `batch`, the setup and the
//! checks use reqwest (`api`). Both paths count and check the answers with the same code. The clock has two marks: until `measure_from` the load
//! runs unrecorded (warm-up: connection setup, SQLite's page cache, PostgreSQL's plan
//! cache), and requests sent between `measure_from` and `end` are the ones measured.
//! Every acknowledged transfer counts for the checks, warm-up or not.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, ensure};
use ledger::BATCH_EVENTS_MAX;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{
    api::{AccountBalances, AccountView, Api, BatchOutcome, REQUEST_TIMEOUT_MS},
    latency::Latencies,
    run::Client,
    wire::{self, Connection, Endpoint, Part, Request},
    workload::{CODE, FUNDING_AMOUNT, FUNDING_WORKER, LEDGER, Layout, Random, Shape, TRANSFER_AMOUNT},
};

/// Acknowledged transfers each worker keeps (a uniform sample over its run) to look up
/// one by one after the run: enough to catch a lost write, few enough to take no time.
pub const SAMPLED_TRANSFERS_PER_WORKER_MAX: usize = 16;
/// Concurrent requests the checks use to read every account back.
pub const CHECK_CONNECTIONS: usize = 32;
/// Pause after a failed request before the worker sends the next one, so that a server
/// answering 503 at once is not hammered in a tight loop that only measures the client.
pub const ERROR_BACKOFF_MS: u64 = 10;

/// When a run measures, and when it stops.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Requests sent from here on are measured.
    pub measure_from: Instant,
    /// No request is sent from here on.
    pub end: Instant,
}

impl Clock {
    /// Warm up for `warmup`, then measure for `duration`, starting now.
    pub fn start(warmup: Duration, duration: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        Self { measure_from, end: measure_from + duration }
    }

    /// The measured window as it really ended: the last request may finish after `end`.
    pub fn measured(&self) -> Duration {
        Instant::now().saturating_duration_since(self.measure_from)
    }
}

/// How a write scenario sends its transfers.
#[derive(Clone, Copy, Debug)]
pub enum WriteMode {
    /// `size` transfers per request, `connections` requests in flight.
    Batch { size: usize, connections: usize },
    /// One transfer per request, `connections` requests in flight.
    Single { connections: usize },
}

impl WriteMode {
    fn per_request(self) -> usize {
        match self {
            WriteMode::Batch { size, .. } => size,
            WriteMode::Single { .. } => 1,
        }
    }

    /// Whether requests carry many transfers (the `batch` scenario).
    pub fn is_batch(self) -> bool {
        matches!(self, WriteMode::Batch { .. })
    }

    /// Requests in flight at once.
    pub fn connections(self) -> usize {
        match self {
            WriteMode::Batch { connections, .. } | WriteMode::Single { connections } => connections,
        }
    }
}

/// A transfer the server acknowledged, to look up afterwards: id, debit and credit.
pub(crate) type Sample = (u128, u128, u128);

/// What a write scenario measured and what it must find in the ledger afterwards.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Transfers acknowledged `ok` in requests sent while measuring.
    pub measured_ok: u64,
    /// The measured window, from `measure_from` until the last worker finished.
    pub measured: Duration,
    /// Latency of each request sent while measuring.
    pub latencies: Latencies,
    /// Requests that failed (transport error, timeout, non-2xx) while measuring, plus
    /// events answered with a result other than `ok`.
    pub errors: u64,
    /// Transfers acknowledged `ok` over the whole run, warm-up included.
    pub acknowledged_ok: u64,
    /// Transfers in requests that failed: the server may or may not have applied them.
    pub unknown: u64,
    /// The first error or non-`ok` result, for the report.
    pub first_error: Option<String>,
    /// Connections the light client opened again after the first (the server closed
    /// one, or a failed request's was dropped); always 0 with reqwest, which says nothing.
    pub reconnects: u64,
    samples: Vec<Sample>,
    /// Requests whose first transfer was acknowledged `ok` (the reservoir's population).
    first_ok_requests: u64,
}

impl WriteOutcome {
    /// An empty outcome with room for a worker's samples.
    pub(crate) fn for_worker() -> Self {
        Self { samples: Vec::with_capacity(SAMPLED_TRANSFERS_PER_WORKER_MAX), ..Default::default() }
    }

    /// The acknowledged transfers kept to look up after the run.
    pub(crate) fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Counts one request's result: `first` is its first transfer, `measured` whether
    /// it was sent while measuring. Returns whether the request failed as a whole (the
    /// worker then backs off).
    pub(crate) fn count(
        &mut self,
        result: anyhow::Result<BatchOutcome>,
        per_request: usize,
        first: Sample,
        measured: bool,
        random: &mut Random,
    ) -> bool {
        match result {
            Ok(batch) => {
                let ok = batch.ok_count();
                self.acknowledged_ok += ok;
                if measured {
                    self.measured_ok += ok;
                    self.errors += per_request as u64 - ok;
                }
                if self.first_error.is_none() {
                    self.first_error = batch.first_failure;
                }
                if batch.ok[0] {
                    // Reservoir sampling: every acknowledged first transfer is equally
                    // likely to be kept, however long the run.
                    self.first_ok_requests += 1;
                    if self.samples.len() < SAMPLED_TRANSFERS_PER_WORKER_MAX {
                        self.samples.push(first);
                    } else {
                        let slot = random.below(self.first_ok_requests) as usize;
                        if slot < SAMPLED_TRANSFERS_PER_WORKER_MAX {
                            self.samples[slot] = first;
                        }
                    }
                }
                false
            }
            Err(error) => {
                self.unknown += per_request as u64;
                if measured {
                    self.errors += 1;
                }
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{error:#}"));
                }
                true
            }
        }
    }

    pub(crate) fn add(&mut self, other: WriteOutcome) {
        self.measured_ok += other.measured_ok;
        self.latencies.merge(&other.latencies);
        self.errors += other.errors;
        self.acknowledged_ok += other.acknowledged_ok;
        self.unknown += other.unknown;
        self.first_error = self.first_error.take().or(other.first_error);
        self.reconnects += other.reconnects;
        self.samples.extend(other.samples);
    }
}

/// Creates the layout's accounts and funds every wallet; fails unless all is `ok`.
pub async fn setup(api: &Api, layout: &Layout) -> anyhow::Result<()> {
    let mut accounts: Vec<(u128, bool)> =
        (0..layout.wallets).map(|index| (layout.wallet_id(index), true)).collect();
    accounts.push((layout.funding_id(), false));
    for chunk in accounts.chunks(BATCH_EVENTS_MAX) {
        api.create_accounts(chunk).await?;
    }
    let indexes: Vec<usize> = (0..layout.wallets).collect();
    for chunk in indexes.chunks(BATCH_EVENTS_MAX) {
        let mut body = Api::transfers_body(chunk.len());
        body.push('[');
        for index in chunk {
            let id = layout.transfer_id(FUNDING_WORKER, *index as u64);
            Api::push_transfer(&mut body, id, layout.funding_id(), layout.wallet_id(*index), FUNDING_AMOUNT);
        }
        body.push(']');
        let outcome = api.create_transfers(body, chunk.len()).await?;
        ensure!(outcome.first_failure.is_none(), "funding the wallets: {:?}", outcome.first_failure);
    }
    Ok(())
}

/// Runs a write scenario: `mode.connections()` workers sending transfers of `shape`
/// until the clock's end; `single` on the light client unless `client` is reqwest.
pub async fn run_writes(
    api: &Api,
    layout: Arc<Layout>,
    shape: Shape,
    mode: WriteMode,
    clock: Clock,
    client: Client,
) -> anyhow::Result<WriteOutcome> {
    let mut total = match (client, mode) {
        (Client::Light, WriteMode::Single { connections }) => {
            let endpoint = Arc::new(Endpoint::resolve(api.base_url()).await?);
            let template = Arc::new(single_transfer_request(&endpoint, api.authorization()));
            let workers: Vec<_> = (0..connections)
                .map(|worker| {
                    let (endpoint, template, layout) = (endpoint.clone(), template.clone(), layout.clone());
                    light_single_worker(endpoint, template, layout, shape, worker, clock)
                })
                .collect();
            wire::on_own_thread(move || collect_writes(workers)).await?
        }
        _ => {
            let workers = (0..mode.connections()).map(|worker| {
                write_worker(api.clone(), layout.clone(), shape, worker, mode.per_request(), clock)
            });
            collect_writes(workers).await?
        }
    };
    total.measured = clock.measured();
    Ok(total)
}

/// Runs the workers as tasks of the current runtime and adds up their outcomes.
pub(crate) async fn collect_writes<W>(workers: impl IntoIterator<Item = W>) -> anyhow::Result<WriteOutcome>
where
    W: Future<Output = WriteOutcome> + Send + 'static,
{
    let mut running = JoinSet::new();
    for worker in workers {
        running.spawn(worker);
    }
    let mut total = WriteOutcome::default();
    while let Some(outcome) = running.join_next().await {
        total.add(outcome?);
    }
    Ok(total)
}

async fn write_worker(
    api: Api,
    layout: Arc<Layout>,
    shape: Shape,
    worker: usize,
    per_request: usize,
    clock: Clock,
) -> WriteOutcome {
    let mut outcome = WriteOutcome::for_worker();
    let mut random = Random::new(rand::random());
    let mut sequence = 0u64;
    let mut first = (0u128, 0u128, 0u128);
    while Instant::now() < clock.end {
        let mut body = Api::transfers_body(per_request);
        body.push('[');
        for position in 0..per_request {
            let (debit, credit) = shape.pick(&mut random, layout.wallets);
            let transfer =
                (layout.transfer_id(worker, sequence), layout.wallet_id(debit), layout.wallet_id(credit));
            if position == 0 {
                first = transfer;
            }
            Api::push_transfer(&mut body, transfer.0, transfer.1, transfer.2, TRANSFER_AMOUNT);
            sequence += 1;
        }
        body.push(']');
        let sent = Instant::now();
        let result = api.create_transfers(body, per_request).await;
        let measured = sent >= clock.measure_from;
        if measured {
            outcome.latencies.record(sent.elapsed());
        }
        if outcome.count(result, per_request, first, measured, &mut random) {
            tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
        }
    }
    outcome
}

/// `POST /v1/ledger/transfers` with one transfer, its id, debit and credit account ids
/// in slots 0, 1 and 2: the same body `Api::push_transfer` writes.
fn single_transfer_request(endpoint: &Endpoint, authorization: &str) -> Request {
    let tail = format!(r#"","amount":{TRANSFER_AMOUNT},"ledger":{LEDGER},"code":{CODE}}}]"#);
    let body = [
        Part::Text(r#"[{"id":""#),
        Part::Uuid,
        Part::Text(r#"","debit_account_id":""#),
        Part::Uuid,
        Part::Text(r#"","credit_account_id":""#),
        Part::Uuid,
        Part::Text(&tail),
    ];
    Request::new(
        endpoint,
        "POST",
        &[Part::Text("/v1/ledger/transfers")],
        &[("Authorization", &[Part::Text(authorization)])],
        Some(&body),
    )
}

/// A `single` worker on the light client: one connection, one pre-built request whose
/// three UUID slots are rewritten per transfer.
async fn light_single_worker(
    endpoint: Arc<Endpoint>,
    template: Arc<Request>,
    layout: Arc<Layout>,
    shape: Shape,
    worker: usize,
    clock: Clock,
) -> WriteOutcome {
    let mut outcome = WriteOutcome::for_worker();
    let mut random = Random::new(rand::random());
    let mut connection = Connection::new(&endpoint, Duration::from_millis(REQUEST_TIMEOUT_MS));
    let mut request = Request::clone(&template);
    let mut sequence = 0u64;
    while Instant::now() < clock.end {
        let (debit, credit) = shape.pick(&mut random, layout.wallets);
        let transfer =
            (layout.transfer_id(worker, sequence), layout.wallet_id(debit), layout.wallet_id(credit));
        sequence += 1;
        request.set_uuid(0, transfer.0);
        request.set_uuid(1, transfer.1);
        request.set_uuid(2, transfer.2);
        let sent = Instant::now();
        let result = match connection.send(request.as_bytes()).await {
            Ok(response) if (200..300).contains(&response.status) => Api::parse_batch(response.body, 1),
            Ok(response) => Err(anyhow!("/v1/ledger/transfers: {}", response.describe())),
            Err(error) => Err(error),
        };
        let measured = sent >= clock.measure_from;
        if measured {
            outcome.latencies.record(sent.elapsed());
        }
        if outcome.count(result, 1, transfer, measured, &mut random) {
            tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
        }
    }
    outcome.reconnects = connection.reconnects;
    outcome
}

/// Reads every account of `layout` back and checks the ledger against what the run was
/// told: money conserved, no wallet negative, transfers stored == transfers acknowledged
/// (within the ones whose request failed), and every sampled transfer stored as sent.
/// Returns the failures; empty means the ledger is right.
pub async fn check_ledger(api: &Api, layout: &Layout, outcome: &WriteOutcome) -> anyhow::Result<Vec<String>> {
    let accounts = read_accounts(api, layout).await?;
    let mut failures = audit(layout, &accounts, outcome.acknowledged_ok, outcome.unknown);
    for (id, debit, credit) in &outcome.samples {
        match api.transfer(*id).await? {
            Some(transfer)
                if transfer.debit_account_id == Uuid::from_u128(*debit)
                    && transfer.credit_account_id == Uuid::from_u128(*credit)
                    && transfer.amount == TRANSFER_AMOUNT => {}
            found => failures
                .push(format!("acknowledged transfer {} reads back as {found:?}", Uuid::from_u128(*id))),
        }
    }
    Ok(failures)
}

/// The checks on the accounts read back (every wallet in index order, then the funding
/// account), given how many transfers were acknowledged `ok` and how many were in
/// requests that failed. Returns the failures.
pub fn audit(layout: &Layout, accounts: &[AccountView], acknowledged_ok: u64, unknown: u64) -> Vec<String> {
    assert_eq!(accounts.len(), layout.wallets + 1, "every wallet and the funding account");
    let mut failures = Vec::new();
    let (mut debits, mut credits, mut pending) = (0u128, 0u128, 0u128);
    for account in accounts {
        debits += u128::from(account.debits_posted);
        credits += u128::from(account.credits_posted);
        pending += u128::from(account.debits_pending) + u128::from(account.credits_pending);
    }
    if debits != credits {
        failures.push(format!("money not conserved: debits posted {debits} != credits posted {credits}"));
    }
    if pending != 0 {
        failures.push(format!("{pending} units pending, but no pending transfer was sent"));
    }
    let (wallets, funding) = accounts.split_at(layout.wallets);
    for wallet in wallets {
        if !wallet.flags.iter().any(|flag| flag == "debits_must_not_exceed_credits") {
            failures.push(format!("wallet {} lost its debits_must_not_exceed_credits flag", wallet.id));
            break;
        }
        if wallet.debits_posted + wallet.debits_pending > wallet.credits_posted {
            failures.push(format!("wallet {} is negative: {wallet:?}", wallet.id));
            break;
        }
    }
    if funding[0].debits_posted != layout.funding_total() || funding[0].credits_posted != 0 {
        failures.push(format!("funding account changed: {:?}", funding[0]));
    }
    // Every wallet was credited its funding once; every other credit is one transfer.
    let wallet_credits: u128 = wallets.iter().map(|wallet| u128::from(wallet.credits_posted)).sum();
    let stored =
        wallet_credits.saturating_sub(u128::from(layout.funding_total())) / u128::from(TRANSFER_AMOUNT);
    let acknowledged = u128::from(acknowledged_ok);
    if stored < acknowledged || stored > acknowledged + u128::from(unknown) {
        failures.push(format!(
            "{stored} transfers stored, but {acknowledged} were acknowledged ok (and {unknown} were in failed requests)"
        ));
    }
    failures
}

/// Every wallet (in index order), then the funding account.
async fn read_accounts(api: &Api, layout: &Layout) -> anyhow::Result<Vec<AccountView>> {
    let ids: Arc<Vec<u128>> = Arc::new(
        (0..layout.wallets).map(|index| layout.wallet_id(index)).chain([layout.funding_id()]).collect(),
    );
    let mut readers = JoinSet::new();
    for reader in 0..CHECK_CONNECTIONS {
        let (api, ids) = (api.clone(), ids.clone());
        readers.spawn(async move {
            let mut found = Vec::new();
            for position in (reader..ids.len()).step_by(CHECK_CONNECTIONS) {
                let account = api.account(ids[position]).await?;
                ensure!(account.id == Uuid::from_u128(ids[position]), "asked for one account, got another");
                found.push((position, account));
            }
            anyhow::Ok(found)
        });
    }
    let mut accounts = vec![None; ids.len()];
    while let Some(found) = readers.join_next().await {
        for (position, account) in found?.context("reading the accounts back")? {
            accounts[position] = Some(account);
        }
    }
    Ok(accounts.into_iter().map(|account| account.expect("every position read")).collect())
}

/// What the `reads` scenario measured.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// Correct answers to requests sent while measuring.
    pub measured_ok: u64,
    /// The measured window.
    pub measured: Duration,
    /// Latency of each request sent while measuring.
    pub latencies: Latencies,
    /// Failed requests while measuring.
    pub errors: u64,
    /// Answers with the wrong account or balances, over the whole run: a check failure.
    pub wrong: u64,
    /// The first error or wrong answer, for the report.
    pub first_error: Option<String>,
    /// Connections the light client opened again after the first.
    pub reconnects: u64,
}

impl ReadOutcome {
    /// Counts the answer to a lookup of wallet `id`: right when it is that wallet, holding
    /// its funding and nothing spent (nothing moves in `reads`). Returns whether the
    /// request failed (the worker then backs off).
    fn count(&mut self, id: u128, result: anyhow::Result<AccountBalances>, measured: bool) -> bool {
        match result {
            Ok(account)
                if account.id == Uuid::from_u128(id)
                    && account.credits_posted == FUNDING_AMOUNT
                    && account.debits_posted == 0 =>
            {
                self.measured_ok += u64::from(measured);
                false
            }
            Ok(account) => {
                self.wrong += 1;
                self.first_error
                    .get_or_insert_with(|| format!("asked for {}, got {account:?}", Uuid::from_u128(id)));
                false
            }
            Err(error) => {
                self.errors += u64::from(measured);
                self.first_error.get_or_insert_with(|| format!("{error:#}"));
                true
            }
        }
    }
}

/// Runs `reads`: `connections` workers looking up random funded wallets until the end of
/// the clock, checking each answer; on the light client unless `client` is reqwest.
pub async fn run_reads(
    api: &Api,
    layout: Arc<Layout>,
    connections: usize,
    clock: Clock,
    client: Client,
) -> anyhow::Result<ReadOutcome> {
    let mut total = match client {
        Client::Light => {
            let endpoint = Arc::new(Endpoint::resolve(api.base_url()).await?);
            let template = Arc::new(Request::new(
                &endpoint,
                "GET",
                &[Part::Text("/v1/ledger/accounts/"), Part::Uuid],
                &[("Authorization", &[Part::Text(api.authorization())])],
                None,
            ));
            let workers: Vec<_> = (0..connections)
                .map(|_| light_read_worker(endpoint.clone(), template.clone(), layout.clone(), clock))
                .collect();
            wire::on_own_thread(move || collect_reads(workers)).await?
        }
        Client::Reqwest => {
            collect_reads((0..connections).map(|_| read_worker(api.clone(), layout.clone(), clock))).await?
        }
    };
    total.measured = clock.measured();
    Ok(total)
}

/// Runs the workers as tasks of the current runtime and adds up their outcomes.
async fn collect_reads<W>(workers: impl IntoIterator<Item = W>) -> anyhow::Result<ReadOutcome>
where
    W: Future<Output = ReadOutcome> + Send + 'static,
{
    let mut running = JoinSet::new();
    for worker in workers {
        running.spawn(worker);
    }
    let mut total = ReadOutcome::default();
    while let Some(outcome) = running.join_next().await {
        let outcome = outcome?;
        total.measured_ok += outcome.measured_ok;
        total.latencies.merge(&outcome.latencies);
        total.errors += outcome.errors;
        total.wrong += outcome.wrong;
        total.first_error = total.first_error.or(outcome.first_error);
        total.reconnects += outcome.reconnects;
    }
    Ok(total)
}

async fn read_worker(api: Api, layout: Arc<Layout>, clock: Clock) -> ReadOutcome {
    let mut outcome = ReadOutcome::default();
    let mut random = Random::new(rand::random());
    while Instant::now() < clock.end {
        let id = layout.wallet_id(random.below(layout.wallets as u64) as usize);
        let sent = Instant::now();
        let result = api.account(id).await.map(|account| AccountBalances::from(&account));
        let measured = sent >= clock.measure_from;
        if measured {
            outcome.latencies.record(sent.elapsed());
        }
        if outcome.count(id, result, measured) {
            tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
        }
    }
    outcome
}

/// A `reads` worker on the light client: one connection, one pre-built `GET` whose UUID
/// slot is rewritten per lookup; only the id and the two posted balances are parsed.
async fn light_read_worker(
    endpoint: Arc<Endpoint>,
    template: Arc<Request>,
    layout: Arc<Layout>,
    clock: Clock,
) -> ReadOutcome {
    let mut outcome = ReadOutcome::default();
    let mut random = Random::new(rand::random());
    let mut connection = Connection::new(&endpoint, Duration::from_millis(REQUEST_TIMEOUT_MS));
    let mut request = Request::clone(&template);
    while Instant::now() < clock.end {
        let id = layout.wallet_id(random.below(layout.wallets as u64) as usize);
        request.set_uuid(0, id);
        let sent = Instant::now();
        let result = match connection.send(request.as_bytes()).await {
            Ok(response) if (200..300).contains(&response.status) => {
                serde_json::from_slice::<AccountBalances>(response.body).context("account")
            }
            Ok(response) => Err(anyhow!("account {}: {}", Uuid::from_u128(id), response.describe())),
            Err(error) => Err(error),
        };
        let measured = sent >= clock.measure_from;
        if measured {
            outcome.latencies.record(sent.elapsed());
        }
        if outcome.count(id, result, measured) {
            tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
        }
    }
    outcome.reconnects = connection.reconnects;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(layout: &Layout, index: Option<usize>, debits: u64, credits: u64) -> AccountView {
        let (id, flags) = match index {
            Some(index) => (layout.wallet_id(index), vec!["debits_must_not_exceed_credits".to_owned()]),
            None => (layout.funding_id(), Vec::new()),
        };
        AccountView {
            id: Uuid::from_u128(id),
            ledger: crate::workload::LEDGER,
            flags,
            debits_pending: 0,
            debits_posted: debits,
            credits_pending: 0,
            credits_posted: credits,
        }
    }

    /// Two wallets after three transfers of one unit: 0 → 1 twice, 1 → 0 once.
    fn ledger_after_three_transfers(layout: &Layout) -> Vec<AccountView> {
        vec![
            account(layout, Some(0), 2, FUNDING_AMOUNT + 1),
            account(layout, Some(1), 1, FUNDING_AMOUNT + 2),
            account(layout, None, layout.funding_total(), 0),
        ]
    }

    #[tokio::test]
    async fn the_light_single_request_carries_the_body_reqwest_sends() {
        let endpoint = Endpoint::resolve("http://127.0.0.1:9").await.unwrap();
        let mut request = single_transfer_request(&endpoint, "Bearer key");
        request.set_uuid(0, 1);
        request.set_uuid(1, 2);
        request.set_uuid(2, 3);
        let mut body = Api::transfers_body(1);
        body.push('[');
        Api::push_transfer(&mut body, 1, 2, 3, TRANSFER_AMOUNT);
        body.push(']');
        let text = String::from_utf8(request.as_bytes().to_vec()).unwrap();
        let (head, sent) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(sent, body);
        assert!(head.starts_with("POST /v1/ledger/transfers HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nAuthorization: Bearer key\r\n"), "{head}");
        assert!(head.ends_with(&format!("\r\nContent-Length: {}", body.len())), "{head}");
    }

    #[test]
    fn a_consistent_ledger_passes() {
        let layout = Layout::new(2);
        assert_eq!(audit(&layout, &ledger_after_three_transfers(&layout), 3, 0), Vec::<String>::new());
        // Two acknowledged and one in a failed request that the server did apply.
        assert_eq!(audit(&layout, &ledger_after_three_transfers(&layout), 2, 1), Vec::<String>::new());
    }

    #[test]
    fn lost_or_invented_transfers_fail() {
        let layout = Layout::new(2);
        assert_eq!(
            audit(&layout, &ledger_after_three_transfers(&layout), 4, 0).len(),
            1,
            "one acknowledged transfer lost"
        );
        assert_eq!(
            audit(&layout, &ledger_after_three_transfers(&layout), 2, 0).len(),
            1,
            "one transfer nobody acknowledged"
        );
    }

    #[test]
    fn created_money_and_negative_wallets_fail() {
        let layout = Layout::new(2);
        let mut accounts = ledger_after_three_transfers(&layout);
        accounts[1].credits_posted += 1;
        assert!(audit(&layout, &accounts, 4, 0).iter().any(|failure| failure.contains("not conserved")));
        let mut accounts = ledger_after_three_transfers(&layout);
        accounts[0].debits_posted = FUNDING_AMOUNT + 2;
        accounts[1].credits_posted = FUNDING_AMOUNT + FUNDING_AMOUNT + 1;
        let failures = audit(&layout, &accounts, FUNDING_AMOUNT + 2, 0);
        assert!(failures.iter().any(|failure| failure.contains("negative")), "{failures:?}");
    }
}
