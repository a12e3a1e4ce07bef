//! Group commit: one bounded queue per process, drained into batches, one database
//! transaction per batch, each caller's results sent back to it.
//!
//! Why: a per-request transaction pays an fsync and a lock round trip per transfer, and
//! a hot account serialises every request behind its row lock. Here a batch of up to
//! [`ledger::BATCH_EVENTS_MAX`] events costs one transaction, whatever accounts it
//! touches, so a hot account is as fast as a cold one.
//!
//! The queue is bounded in requests; when it is full, `submit` fails at once with
//! [`CommitError::QueueFull`] (the HTTP layer answers 503 with `Retry-After`) instead of
//! letting waiting requests pile up without bound. While idle, the pipeline also expires
//! due pending transfers, so holds are released without any request arriving.
//!
//! Batches overlap: on SQLite the store applies batch N+1 while it makes batch N durable
//! (see the store's embedded writer). The pipeline hands the store one batch at a time and
//! gathers the next while the store applies it — so a batch holds everything that arrived
//! meanwhile — but it does not wait for a batch's sync before handing over the next: up to
//! [`SQLITE_BATCHES_IN_FLIGHT_MAX`] batches may be waiting for their sync. A batch's
//! callers are answered when the store says it is durable.

use std::{sync::Arc, time::Duration};

use store::{Backend, Command, Outcome, Store, StoreError};
use tokio::{
    sync::{Semaphore, mpsc, oneshot},
    task::JoinHandle,
};
use tracing::{Instrument as _, debug, error, warn};

/// How often the idle pipeline looks for pending transfers whose timeout has passed.
/// Timeouts are whole seconds, so a second is the useful resolution.
const EXPIRY_INTERVAL_MS: u64 = 1_000;

/// Due pending transfers expired per transaction: bounded so expiry never holds the
/// writer for long while requests wait.
const EXPIRY_BATCH_MAX: usize = 1_024;

/// Batches committed but not yet durable, at most: bounds the replies held while the disk
/// syncs (one sync usually covers all of them).
pub const SQLITE_BATCHES_IN_FLIGHT_MAX: usize = 4;

/// On PostgreSQL a batch's commit is its sync (the server's): nothing to overlap.
pub const POSTGRES_BATCHES_IN_FLIGHT_MAX: usize = 1;

/// Settings of the pipeline.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// Requests that may wait in the queue at most.
    pub queue_requests_max: usize,
}

/// Why a command did not get results.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The queue is full: the caller should retry shortly.
    #[error("the commit queue is full")]
    QueueFull,
    /// The server is shutting down and takes no new writes.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The batch's transaction failed after its retries; nothing of it was written, or
    /// (if the commit itself was cut off) all of it was: retrying with the same ids is
    /// safe either way because ids are idempotency keys.
    #[error("the commit failed")]
    Store(#[source] std::sync::Arc<StoreError>),
}

struct Job {
    command: Command,
    events: usize,
    reply: oneshot::Sender<Result<Outcome, CommitError>>,
    /// The submitter's span, which the batch's span links to (tracing export).
    span: tracing::Span,
}

/// The sending side of the pipeline. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CommitPipeline {
    sender: mpsc::Sender<Job>,
}

/// The running pipeline task; `shutdown` drains the queue and waits for it.
#[derive(Debug)]
pub struct PipelineTask {
    close: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

impl PipelineTask {
    /// Stops taking new commands, commits everything already queued, and returns.
    pub async fn shutdown(self) {
        let _ = self.close.send(());
        if let Err(error) = self.handle.await {
            error!(%error, "commit pipeline task failed");
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("events", &self.events).finish_non_exhaustive()
    }
}

impl CommitPipeline {
    /// Starts the pipeline task over `store`.
    pub fn start(store: Store, config: PipelineConfig) -> (Self, PipelineTask) {
        assert!(config.queue_requests_max > 0);
        let (sender, receiver) = mpsc::channel(config.queue_requests_max);
        let (close, closed) = oneshot::channel();
        let in_flight_max = match store.backend() {
            Backend::Sqlite => SQLITE_BATCHES_IN_FLIGHT_MAX,
            Backend::Postgres => POSTGRES_BATCHES_IN_FLIGHT_MAX,
        };
        let handle = tokio::spawn(run(store, receiver, closed, in_flight_max));
        (Self { sender }, PipelineTask { close, handle })
    }

    /// Queues `command` and waits for its results.
    pub async fn submit(&self, command: Command) -> Result<Outcome, CommitError> {
        self.enqueue(command)?.await
    }

    /// Queues `command` now and returns the wait for its results. Commands commit in
    /// the order they were queued, so a caller that queues several before waiting (the
    /// gRPC stream) still has them applied in its order.
    pub fn enqueue(
        &self,
        command: Command,
    ) -> Result<impl Future<Output = Result<Outcome, CommitError>> + Send + 'static, CommitError> {
        let events = command.events();
        assert!(events <= ledger::BATCH_EVENTS_MAX, "the API layers cap batch sizes");
        let (reply, response) = oneshot::channel();
        let span = tracing::Span::current();
        self.sender.try_send(Job { command, events, reply, span }).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => CommitError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => CommitError::ShuttingDown,
        })?;
        // The task answers every job it takes, even while shutting down; a dropped
        // reply can only mean the task itself died.
        Ok(async move { response.await.unwrap_or(Err(CommitError::ShuttingDown)) })
    }

    /// Requests waiting in the queue now.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }
}

async fn run(
    store: Store,
    mut receiver: mpsc::Receiver<Job>,
    mut closed: oneshot::Receiver<()>,
    in_flight_max: usize,
) {
    let in_flight = Arc::new(Semaphore::new(in_flight_max));
    let mut expiry = tokio::time::interval(Duration::from_millis(EXPIRY_INTERVAL_MS));
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A job taken from the queue that did not fit in the previous batch.
    let mut carried: Option<Job> = None;
    let mut closing = false;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => tokio::select! {
                biased;
                job = receiver.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
                _ = &mut closed, if !closing => {
                    // Refuse new jobs, then keep draining what was queued until empty.
                    closing = true;
                    receiver.close();
                    continue;
                }
                _ = expiry.tick() => {
                    expire(&store).await;
                    continue;
                }
            },
        };
        // Wait for a place before gathering the batch: what arrives meanwhile joins it.
        let place = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        let mut events = first.events;
        let mut batch = vec![first];
        while events < ledger::BATCH_EVENTS_MAX {
            match receiver.try_recv() {
                Ok(job) if events + job.events <= ledger::BATCH_EVENTS_MAX => {
                    events += job.events;
                    batch.push(job);
                }
                Ok(job) => {
                    carried = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        metrics::gauge!("coffer_commit_queue_depth").set(receiver.len() as f64);
        // A root span of its own (it carries many requests), linked to each request's.
        let span = tracing::info_span!(parent: None, "commit.batch", requests = batch.len(), events);
        for job in &batch {
            crate::telemetry::link(&span, &job.span);
        }
        let (commands, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|job| (job.command, job.reply)).unzip();
        debug!(requests = commands.len(), events, "committing batch");
        metrics::histogram!("coffer_commit_batch_events").record(events as f64);
        metrics::histogram!("coffer_commit_batch_requests").record(commands.len() as f64);
        let started = std::time::Instant::now();
        // Returns once the batch's transaction is over; its sync goes on in the background.
        let durable = store
            .commit_staged(&commands)
            .instrument(tracing::info_span!(parent: &span, "store.commit"))
            .await;
        metrics::histogram!("coffer_commit_seconds").record(started.elapsed().as_secs_f64());
        tokio::spawn(async move {
            answer(replies, durable.outcomes().await);
            metrics::histogram!("coffer_commit_durable_seconds").record(started.elapsed().as_secs_f64());
            drop(place);
        });
    }
    // Every batch handed over is answered before the pipeline reports itself drained.
    let all = u32::try_from(in_flight_max).expect("a handful of places");
    let _ = in_flight.acquire_many(all).await;
    debug!("commit pipeline drained");
}

/// Answers a batch's callers, each with its own outcome, once the batch is durable.
fn answer(
    replies: Vec<oneshot::Sender<Result<Outcome, CommitError>>>,
    outcomes: Result<Vec<Outcome>, StoreError>,
) {
    match outcomes {
        Ok(outcomes) => {
            assert_eq!(outcomes.len(), replies.len(), "one outcome per command");
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // The caller may have gone (timeout, disconnect); its writes stand.
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            error!(error = %error, source = ?std::error::Error::source(&error), requests = replies.len(), "commit failed");
            let error = std::sync::Arc::new(error);
            for reply in replies {
                let _ = reply.send(Err(CommitError::Store(error.clone())));
            }
        }
    }
}

async fn expire(store: &Store) {
    match store.expire_pending(EXPIRY_BATCH_MAX).await {
        Ok(0) => {}
        Ok(count) => debug!(count, "expired pending transfers"),
        Err(error) => warn!(%error, "expiring pending transfers failed; will retry"),
    }
}

#[cfg(test)]
mod tests {
    use ledger::{Account, CreateAccountResult};
    use store::StoreOptions;

    use super::*;

    async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite:{}", dir.path().join("pipeline.db").display());
        let store = Store::open(&url, StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn account(id: u128) -> Command {
        Command::CreateAccounts(vec![Account { id, ledger: 1, code: 1, ..Default::default() }])
    }

    /// On a current-thread runtime the pipeline task cannot run between the two polls of
    /// `join!`, so the second submit must find the one-slot queue full — and say so at
    /// once rather than wait.
    #[tokio::test(flavor = "current_thread")]
    async fn full_queue_refuses_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (pipeline, task) =
            CommitPipeline::start(sqlite_store(&dir).await, PipelineConfig { queue_requests_max: 1 });
        let (first, second) = tokio::join!(pipeline.submit(account(1)), pipeline.submit(account(2)));
        assert_eq!(first.unwrap(), Outcome::Accounts(vec![CreateAccountResult::Ok]));
        assert!(matches!(second, Err(CommitError::QueueFull)), "{second:?}");
        task.shutdown().await;
    }

    /// Many callers at once are answered each with their own results, and everything
    /// queued before shutdown is committed; after it, writes are refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_gets_its_own_results_and_shutdown_drains() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let (pipeline, task) =
            CommitPipeline::start(store.clone(), PipelineConfig { queue_requests_max: 1024 });
        let callers: Vec<_> = (1..=200u128)
            .map(|id| {
                let pipeline = pipeline.clone();
                // Every tenth caller repeats an id an earlier caller used.
                let id = if id % 10 == 0 { id - 1 } else { id };
                tokio::spawn(async move { (id, pipeline.submit(account(id)).await) })
            })
            .collect();
        let mut oks = 0;
        for caller in callers {
            let (id, outcome) = caller.await.unwrap();
            let Outcome::Accounts(results) = outcome.unwrap() else { panic!("accounts outcome expected") };
            assert_eq!(results.len(), 1);
            match results[0] {
                CreateAccountResult::Ok => oks += 1,
                CreateAccountResult::Exists => assert_eq!(id % 10, 9, "only repeated ids exist already"),
                other => panic!("unexpected {other}"),
            }
            assert!(store.account(id).await.unwrap().is_some());
        }
        assert_eq!(oks, 180);
        task.shutdown().await;
        assert!(matches!(pipeline.submit(account(999)).await, Err(CommitError::ShuttingDown)));
    }
}
