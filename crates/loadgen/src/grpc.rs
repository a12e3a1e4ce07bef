//! The scenarios that drive Coffer over gRPC, through `coffer-client`:
//!
//! - `grpc-single`: `--connections` workers, each with one `CreateTransfers` of one
//!   transfer in flight, multiplexed over `--grpc-connections` HTTP/2 connections — the
//!   per-request figure beside REST `single` (no batching on the client's side);
//! - `grpc-batch`: `--batch-connections` workers, each with one `CreateTransfers` of
//!   `--batch-size` transfers in flight — beside REST `batch`;
//! - `grpc-stream`: `--streams` `CreateTransfersStream`s, each keeping
//!   [`STREAM_BATCHES_IN_FLIGHT_MAX`] batches of `--batch-size` in flight.
//!
//! The setup (accounts, funding) and the checks afterwards are REST's (`http`), so the
//! rows are checked exactly as the REST ones. Like the light HTTP client, every gRPC
//! worker runs on one thread of the harness with a single-threaded runtime, so the
//! client's CPU stays bounded and comparable. A transfer answered `exists` counts as
//! acknowledged: ids are unique per run, so `exists` only comes from a retry (of the
//! client, on `UNAVAILABLE`) whose earlier attempt committed it — it is in the ledger once.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use coffer_client::{Client, CreateTransferResult, STREAM_BATCHES_IN_FLIGHT_MAX, Transfer, TransferStream};

use crate::{
    api::{BatchOutcome, REQUEST_TIMEOUT_MS},
    http::{Clock, ERROR_BACKOFF_MS, Sample, WriteOutcome, collect_writes},
    wire,
    workload::{CODE, LEDGER, Layout, Random, Shape, TRANSFER_AMOUNT},
};

/// Most HTTP/2 connections a gRPC scenario may open: each carries up to 256 calls (the
/// server's limit), so a few are plenty; past this the harness measures connections.
pub const GRPC_CONNECTIONS_MAX: usize = 64;

/// Most streams `grpc-stream` may open: each holds 4 batches of up to 8,190 transfers in
/// flight, and the server's commit queue is shared by all.
pub const STREAMS_MAX: usize = 64;

/// How a gRPC write scenario sends its transfers.
#[derive(Clone, Copy, Debug)]
pub enum GrpcMode {
    /// `calls` one-transfer calls in flight over `connections` connections.
    Single { calls: usize, connections: usize },
    /// `calls` calls of `size` transfers in flight over `connections` connections.
    Batch { size: usize, calls: usize, connections: usize },
    /// `streams` streams of batches of `size`, over `connections` connections.
    Stream { size: usize, streams: usize, connections: usize },
}

impl GrpcMode {
    /// Requests (calls, or stream batches) in flight at once: the table's `conns`.
    pub fn in_flight(self) -> usize {
        match self {
            GrpcMode::Single { calls, .. } | GrpcMode::Batch { calls, .. } => calls,
            GrpcMode::Stream { streams, .. } => streams * STREAM_BATCHES_IN_FLIGHT_MAX,
        }
    }

    /// HTTP/2 connections opened (never more than there are workers).
    pub fn connections(self) -> usize {
        match self {
            GrpcMode::Single { calls, connections } | GrpcMode::Batch { calls, connections, .. } => {
                connections.min(calls)
            }
            GrpcMode::Stream { streams, connections, .. } => connections.min(streams),
        }
    }

    /// What the table's notes say about how the load was sent.
    pub fn describe(self) -> String {
        match self {
            GrpcMode::Single { calls, .. } => format!(
                "{calls} one-transfer CreateTransfers calls in flight over {} HTTP/2 connections",
                self.connections()
            ),
            GrpcMode::Batch { size, calls, .. } => format!(
                "{calls} CreateTransfers calls of {size} transfers in flight over {} HTTP/2 connections",
                self.connections()
            ),
            GrpcMode::Stream { size, streams, .. } => format!(
                "{streams} CreateTransfersStreams, each with {STREAM_BATCHES_IN_FLIGHT_MAX} batches of {size} in flight, over {} HTTP/2 connections",
                self.connections()
            ),
        }
    }
}

/// What the client did besides the calls that the figures count.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientNotes {
    /// Attempts after the first (calls refused with UNAVAILABLE and sent again).
    pub retries: u64,
    /// Streams opened again after one was lost.
    pub streams_reopened: u64,
}

/// Runs a gRPC write scenario until the clock's end, on a thread of its own.
pub async fn run_writes(
    endpoint: &str,
    admin_key: &str,
    layout: Arc<Layout>,
    shape: Shape,
    mode: GrpcMode,
    clock: Clock,
) -> anyhow::Result<(WriteOutcome, ClientNotes)> {
    let (endpoint, admin_key) = (endpoint.to_owned(), admin_key.to_owned());
    let (mut total, notes) = wire::on_own_thread(move || async move {
        let mut clients = Vec::with_capacity(mode.connections());
        for _ in 0..mode.connections() {
            // Calls time out as REST requests do; the default retry policy rides out a
            // full commit queue.
            let client = Client::builder(endpoint.as_str(), admin_key.as_str())
                .call_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
                .connect()
                .await?;
            clients.push(client);
        }
        let reopened = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let outcome = match mode {
            GrpcMode::Single { calls, .. } | GrpcMode::Batch { calls, .. } => {
                let size = if let GrpcMode::Batch { size, .. } = mode { size } else { 1 };
                let workers: Vec<_> = (0..calls)
                    .map(|worker| {
                        call_worker(
                            clients[worker % clients.len()].clone(),
                            layout.clone(),
                            shape,
                            worker,
                            size,
                            clock,
                        )
                    })
                    .collect();
                collect_writes(workers).await?
            }
            GrpcMode::Stream { size, streams, .. } => {
                let workers: Vec<_> = (0..streams)
                    .map(|worker| {
                        let client = clients[worker % clients.len()].clone();
                        stream_worker(client, layout.clone(), shape, worker, size, clock, reopened.clone())
                    })
                    .collect();
                collect_writes(workers).await?
            }
        };
        // Clones share the retry counter, so each connection's client counts its own.
        let retries = clients.iter().map(Client::retries).sum();
        let streams_reopened = reopened.load(std::sync::atomic::Ordering::Relaxed);
        anyhow::Ok((outcome, ClientNotes { retries, streams_reopened }))
    })
    .await?;
    total.measured = clock.measured();
    Ok((total, notes))
}

/// `size` transfers of `shape`, numbered from `sequence` for `worker`, into `batch`.
fn fill(
    batch: &mut Vec<Transfer>,
    layout: &Layout,
    shape: Shape,
    worker: usize,
    sequence: &mut u64,
    random: &mut Random,
    size: usize,
) {
    batch.clear();
    for _ in 0..size {
        let (debit, credit) = shape.pick(random, layout.wallets);
        batch.push(Transfer {
            id: layout.transfer_id(worker, *sequence),
            debit_account_id: layout.wallet_id(debit),
            credit_account_id: layout.wallet_id(credit),
            amount: TRANSFER_AMOUNT,
            ledger: LEDGER,
            code: CODE,
            ..Transfer::default()
        });
        *sequence += 1;
    }
}

fn first(batch: &[Transfer]) -> Sample {
    (batch[0].id, batch[0].debit_account_id, batch[0].credit_account_id)
}

/// A batch's results as the checks count them: `ok` and `exists` were applied (see the
/// module documentation), anything else was not.
fn batch_outcome(results: &[CreateTransferResult]) -> BatchOutcome {
    BatchOutcome {
        ok: results.iter().map(|result| result.is_success()).collect(),
        first_failure: results
            .iter()
            .find(|result| !result.is_success())
            .map(|result| result.as_str().to_owned()),
    }
}

/// A `grpc-single` or `grpc-batch` worker: one `CreateTransfers` of `size` in flight.
async fn call_worker(
    client: Client,
    layout: Arc<Layout>,
    shape: Shape,
    worker: usize,
    size: usize,
    clock: Clock,
) -> WriteOutcome {
    let mut outcome = WriteOutcome::for_worker();
    let mut random = Random::new(rand::random());
    let mut sequence = 0u64;
    let mut batch = Vec::with_capacity(size);
    while Instant::now() < clock.end {
        fill(&mut batch, &layout, shape, worker, &mut sequence, &mut random, size);
        let sent = Instant::now();
        let result = client.create_transfers(&batch).await;
        let measured = sent >= clock.measure_from;
        if measured {
            outcome.latencies.record(sent.elapsed());
        }
        let result = result.map(|results| batch_outcome(&results)).map_err(anyhow::Error::from);
        if outcome.count(result, size, first(&batch), measured, &mut random) {
            tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
        }
    }
    outcome
}

/// A `grpc-stream` worker: one stream with [`STREAM_BATCHES_IN_FLIGHT_MAX`] batches of
/// `size` in flight, a new batch sent as each answer comes. A lost stream makes its
/// unanswered batches unknown (they may or may not have committed) and a new one is
/// opened. Latency is per batch, from its send to its answer.
async fn stream_worker(
    client: Client,
    layout: Arc<Layout>,
    shape: Shape,
    worker: usize,
    size: usize,
    clock: Clock,
    reopened: Arc<std::sync::atomic::AtomicU64>,
) -> WriteOutcome {
    let mut outcome = WriteOutcome::for_worker();
    let mut random = Random::new(rand::random());
    let mut sequence = 0u64;
    let mut batch = Vec::with_capacity(size);
    let mut stream: Option<TransferStream> = None;
    // When each unanswered batch was sent, and its first transfer.
    let mut unanswered: VecDeque<(Instant, Sample)> = VecDeque::with_capacity(STREAM_BATCHES_IN_FLIGHT_MAX);
    let mut opened = 0u64;
    loop {
        let sending = Instant::now() < clock.end;
        if stream.as_ref().is_some_and(|stream| stream.is_ended() && stream.in_flight() == 0) {
            stream = None;
        }
        if !sending && unanswered.is_empty() {
            break;
        }
        let open = match &mut stream {
            Some(open) => open,
            None => match client.stream().await {
                Ok(open) => {
                    opened += 1;
                    stream.insert(open)
                }
                Err(error) => {
                    outcome.count(
                        Err(error.into()),
                        0,
                        (0, 0, 0),
                        Instant::now() >= clock.measure_from,
                        &mut random,
                    );
                    tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                    continue;
                }
            },
        };
        if sending && open.has_room() {
            fill(&mut batch, &layout, shape, worker, &mut sequence, &mut random, size);
            let sent = Instant::now();
            // A refused send means the stream is over; its answers and the reason come
            // through `next` below. The batch was never sent: nothing to count.
            if open.send(&batch).await.is_ok() {
                unanswered.push_back((sent, first(&batch)));
            }
            continue;
        }
        match open.next().await {
            Ok(Some(answer)) => {
                let (sent, sample) = unanswered.pop_front().expect("an answer is for a batch sent");
                let measured = sent >= clock.measure_from;
                if measured {
                    outcome.latencies.record(sent.elapsed());
                }
                outcome.count(Ok(batch_outcome(&answer.results)), size, sample, measured, &mut random);
            }
            Ok(None) => {}
            Err(error) => {
                let error = anyhow::Error::from(error);
                for (sent, sample) in unanswered.drain(..) {
                    let measured = sent >= clock.measure_from;
                    outcome.count(Err(anyhow::anyhow!("{error:#}")), size, sample, measured, &mut random);
                }
                stream = None;
                tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
            }
        }
    }
    reopened.fetch_add(opened.saturating_sub(1), std::sync::atomic::Ordering::Relaxed);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exists_counts_as_applied_and_the_first_failure_is_named() {
        use CreateTransferResult as R;
        let outcome = batch_outcome(&[R::Ok, R::Exists, R::ExceedsCredits, R::IdAlreadyFailed]);
        assert_eq!(outcome.ok, [true, true, false, false]);
        assert_eq!(outcome.ok_count(), 2);
        assert_eq!(outcome.first_failure.as_deref(), Some("exceeds_credits"));
    }

    #[test]
    fn streams_count_their_batches_in_flight() {
        let mode = GrpcMode::Stream { size: 8_190, streams: 2, connections: 4 };
        assert_eq!((mode.in_flight(), mode.connections()), (2 * STREAM_BATCHES_IN_FLIGHT_MAX, 2));
        let single = GrpcMode::Single { calls: 256, connections: 4 };
        assert_eq!((single.in_flight(), single.connections()), (256, 4));
    }
}
