//! [`Batcher`]: single transfers submitted by many tasks, sent in batches over one
//! `CreateTransfersStream`, each submitter getting its own transfer's result.
//!
//! Why: a transfer per call costs a round trip and a commit-queue entry each; a batch of
//! 8,190 costs one of each. A service whose requests each carry one transfer can still
//! have the ledger see batches: every task calls [`Batcher::submit`] and awaits, and one
//! background task (the driver) gathers whatever is waiting into the next batch.
//!
//! - **No linger.** The driver sends a batch as soon as the stream has room for one, with
//!   everything waiting at that moment (up to [`BatcherOptions::batch_transfers_max`]).
//!   An idle batcher sends a lone transfer at once; under load, transfers pile up while
//!   the stream's [`crate::STREAM_BATCHES_IN_FLIGHT_MAX`] batches are in flight and the
//!   next batch takes them all. Batch size follows load; latency never waits on a timer.
//! - **Bounded.** Submissions wait in a queue of [`BatcherOptions::queue_transfers_max`]
//!   transfers; when it is full, `submit` waits (backpressure) rather than memory
//!   growing. In flight: at most 4 batches of 8,190.
//! - **Resends on stream loss.** When the stream fails (connection lost, server
//!   restarting or overloaded), the unanswered batches are sent again, with the same
//!   ids and in the same order, on a new stream after a jittered backoff, each batch at
//!   most [`crate::RetryPolicy::attempts_max`] times. A transfer the lost stream had
//!   committed answers [`CreateTransferResult::Exists`], reported as it is. A batch the
//!   server refused for what it holds (`INVALID_ARGUMENT`; not possible for transfers
//!   that passed `submit`'s check) fails for its submitters only; the batches after it are
//!   resent.
//!
//! Dropping a `submit` future does not withdraw its transfer: it may be sent all the
//! same. Its outcome is then unknown; submit it again with the same id to learn it.

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use ledger::{AMOUNT_MAX, BATCH_EVENTS_MAX, CreateTransferResult, Transfer};
use tokio::sync::{mpsc, oneshot};

use crate::{client::Client, error::Error, stream::TransferStream};

/// The most transfers [`BatcherOptions::queue_transfers_max`] may allow: 128 full
/// batches, about 10 MB of waiting transfers.
pub const QUEUE_TRANSFERS_LIMIT: usize = 128 * BATCH_EVENTS_MAX;

/// What a [`Batcher`] gathers and how much may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatcherOptions {
    /// Transfers per batch at most: 1 to 8,190 (default 8,190, the ledger's batch).
    pub batch_transfers_max: usize,
    /// Submitted transfers waiting for a batch at most (default four full batches: the
    /// next batches while four are in flight); `submit` waits while the queue is full.
    /// 1 to [`QUEUE_TRANSFERS_LIMIT`].
    pub queue_transfers_max: usize,
}

impl Default for BatcherOptions {
    fn default() -> Self {
        Self { batch_transfers_max: BATCH_EVENTS_MAX, queue_transfers_max: 4 * BATCH_EVENTS_MAX }
    }
}

/// What a [`Batcher`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatcherStats {
    /// Transfers answered with a result.
    pub transfers: u64,
    /// Batches sent, resends included.
    pub batches: u64,
    /// Streams opened (more than one: a stream was lost and replaced).
    pub streams: u64,
    /// Batches sent again after a stream was lost.
    pub batches_resent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    transfers: AtomicU64,
    batches: AtomicU64,
    streams: AtomicU64,
    batches_resent: AtomicU64,
}

type Reply = oneshot::Sender<Result<CreateTransferResult, Error>>;

/// One transfer waiting for a batch, and where its result goes.
struct Submission {
    transfer: Transfer,
    reply: Reply,
}

/// Gathers transfers submitted from many tasks into streamed batches; see the module
/// documentation. Cheap to clone; the driver stops once every clone is dropped and
/// every batch in flight is answered.
#[derive(Clone)]
pub struct Batcher {
    submissions: mpsc::Sender<Submission>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Batcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the driver on the current tokio runtime, sending through `client` (whose
    /// retry policy bounds the resends). The stream is opened at the first submission.
    pub fn start(client: &Client, options: BatcherOptions) -> Result<Self, Error> {
        if !(1..=BATCH_EVENTS_MAX).contains(&options.batch_transfers_max) {
            return Err(Error::InvalidRequest(format!(
                "batch_transfers_max must be 1 to {BATCH_EVENTS_MAX}"
            )));
        }
        if !(1..=QUEUE_TRANSFERS_LIMIT).contains(&options.queue_transfers_max) {
            return Err(Error::InvalidRequest(format!(
                "queue_transfers_max must be 1 to {QUEUE_TRANSFERS_LIMIT}"
            )));
        }
        let (submissions, receiver) = mpsc::channel(options.queue_transfers_max);
        let counters = Arc::new(Counters::default());
        let driver = Driver {
            client: client.clone(),
            submissions: receiver,
            batch_transfers_max: options.batch_transfers_max,
            counters: counters.clone(),
            stream: None,
            in_flight: VecDeque::new(),
            outbox: VecDeque::new(),
            losses_in_a_row: 0,
        };
        tokio::spawn(driver.run());
        Ok(Self { submissions, counters })
    }

    /// Submits one transfer and waits for its result. Waits first while the queue is
    /// full. A transfer with an amount above 2^63 - 1 is refused here
    /// ([`Error::InvalidRequest`]): the server would refuse the whole batch it rode in.
    pub async fn submit(&self, transfer: Transfer) -> Result<CreateTransferResult, Error> {
        if transfer.amount > AMOUNT_MAX {
            return Err(Error::InvalidRequest(format!("the amount must be at most {AMOUNT_MAX}")));
        }
        let (reply, result) = oneshot::channel();
        self.submissions.send(Submission { transfer, reply }).await.map_err(|_| Error::Closed)?;
        // The driver answers every submission it takes; a dropped reply means it died.
        result.await.map_err(|_| Error::Closed)?
    }

    /// What the batcher has done so far.
    pub fn stats(&self) -> BatcherStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BatcherStats {
            transfers: load(&self.counters.transfers),
            batches: load(&self.counters.batches),
            streams: load(&self.counters.streams),
            batches_resent: load(&self.counters.batches_resent),
        }
    }
}

/// A batch: its transfers, where their results go, and how often it was sent.
struct Batch {
    transfers: Vec<Transfer>,
    replies: Vec<Reply>,
    /// Times sent so far.
    attempts: u32,
    /// The stream's id for it, when it was last sent.
    batch_id: u64,
}

impl Batch {
    fn answer(self, results: Vec<CreateTransferResult>) {
        assert_eq!(results.len(), self.replies.len(), "the stream checks one result per transfer");
        for (reply, result) in self.replies.into_iter().zip(results) {
            // The submitter may have stopped waiting; its result has nowhere to go.
            let _ = reply.send(Ok(result));
        }
    }

    fn fail(self, error: &Error) {
        for reply in self.replies {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

/// Whether the batches a stream failure left unanswered should be sent again: yes when
/// the stream was lost (a transport failure, the server unavailable or shutting down),
/// no when the server refused the caller itself or answered out of protocol.
fn worth_resending(error: &Error) -> bool {
    !matches!(
        error,
        Error::InvalidArgument(_)
            | Error::Unauthenticated(_)
            | Error::PermissionDenied(_)
            | Error::NotFound(_)
            | Error::InvalidRequest(_)
            | Error::Protocol(_)
    )
}

/// The background task of a [`Batcher`].
struct Driver {
    client: Client,
    submissions: mpsc::Receiver<Submission>,
    batch_transfers_max: usize,
    counters: Arc<Counters>,
    stream: Option<TransferStream>,
    /// Batches sent on the current stream and not answered, oldest first.
    in_flight: VecDeque<Batch>,
    /// Batches to send, in order: those a lost stream left unanswered first.
    outbox: VecDeque<Batch>,
    /// Streams lost since the last answer: the backoff before the next one grows with it.
    losses_in_a_row: u32,
}

impl Driver {
    async fn run(mut self) {
        let mut accepting = true;
        loop {
            self.send_outbox().await;
            if !accepting && self.in_flight.is_empty() && self.outbox.is_empty() {
                break;
            }
            // A new batch is gathered only when it can be sent at once: until then,
            // submissions keep piling up in the queue and the next batch takes them all.
            let room = self.outbox.is_empty() && self.stream.as_ref().is_none_or(TransferStream::has_room);
            tokio::select! {
                answer = next_answer(&mut self.stream), if !self.in_flight.is_empty() => {
                    self.on_answer(answer).await;
                }
                submission = self.submissions.recv(), if accepting && room => match submission {
                    Some(first) => self.gather(first),
                    None => accepting = false,
                },
                else => unreachable!("with batches to send, either the stream has room or batches are in flight"),
            }
        }
    }

    /// `first` and whatever else waits in the queue, up to a batch, into the outbox.
    fn gather(&mut self, first: Submission) {
        let size = (1 + self.submissions.len()).min(self.batch_transfers_max);
        let mut batch = Batch {
            transfers: Vec::with_capacity(size),
            replies: Vec::with_capacity(size),
            attempts: 0,
            batch_id: 0,
        };
        let mut next = Some(first);
        while let Some(submission) = next.take() {
            batch.transfers.push(submission.transfer);
            batch.replies.push(submission.reply);
            if batch.transfers.len() < self.batch_transfers_max {
                next = self.submissions.try_recv().ok();
            }
        }
        self.outbox.push_back(batch);
    }

    /// Sends outbox batches while the stream has room, opening a stream first if needed.
    async fn send_outbox(&mut self) {
        while !self.outbox.is_empty() {
            if self.stream.as_ref().is_some_and(TransferStream::is_ended) && self.in_flight.is_empty() {
                // Ended with nothing left to read: nothing more to learn from it.
                self.stream = None;
            }
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => match self.client.stream().await {
                    Ok(stream) => {
                        self.counters.streams.fetch_add(1, Ordering::Relaxed);
                        self.stream.insert(stream)
                    }
                    Err(error) => {
                        // Opening already retried as the client's policy allows.
                        tracing::warn!(%error, batches = self.outbox.len(), "cannot open a CreateTransfersStream; failing the waiting batches");
                        for batch in self.outbox.drain(..) {
                            batch.fail(&error);
                        }
                        return;
                    }
                },
            };
            if !stream.has_room() {
                // Full, or ended with answers (or the reason) still to read.
                return;
            }
            let mut batch = self.outbox.pop_front().expect("the outbox is not empty");
            batch.attempts += 1;
            match stream.send(&batch.transfers).await {
                Ok(batch_id) => {
                    batch.batch_id = batch_id;
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    if batch.attempts > 1 {
                        self.counters.batches_resent.fetch_add(1, Ordering::Relaxed);
                    }
                    self.in_flight.push_back(batch);
                }
                Err(error) => {
                    // The stream is over. The batch waits for the next one, unless it
                    // was tried as often as the policy allows.
                    if batch.attempts >= self.client.retry_policy().attempts_max {
                        batch.fail(&error);
                    } else {
                        self.outbox.push_front(batch);
                    }
                    if self.in_flight.is_empty() {
                        // Nothing left to read on it (otherwise its answers, then why it
                        // ended, come through `next` and `on_loss`).
                        self.on_loss(error).await;
                    }
                }
            }
        }
    }

    async fn on_answer(&mut self, answer: Result<Option<crate::BatchAnswer>, Error>) {
        match answer {
            Ok(Some(answer)) => {
                let batch = self.in_flight.pop_front().expect("an answer is for a batch in flight");
                assert_eq!(batch.batch_id, answer.batch_id, "the stream answers in order");
                self.counters.transfers.fetch_add(answer.results.len() as u64, Ordering::Relaxed);
                batch.answer(answer.results);
                self.losses_in_a_row = 0;
            }
            Ok(None) => unreachable!("batches in flight here are in flight on the stream"),
            Err(error) => self.on_loss(error).await,
        }
    }

    /// The stream failed: its unanswered batches go back to the front of the outbox, in
    /// order (but for a batch the server refused for what it holds, and batches sent as
    /// often as the policy allows, which fail), and the next stream waits for a backoff.
    async fn on_loss(&mut self, error: Error) {
        self.stream = None;
        let refused = error.rejection().and_then(crate::Rejection::batch_id);
        let resend = worth_resending(&error);
        let policy = self.client.retry_policy();
        tracing::debug!(%error, in_flight = self.in_flight.len(), resend, "a CreateTransfersStream was lost");
        let lost: Vec<Batch> = self.in_flight.drain(..).collect();
        for batch in lost.into_iter().rev() {
            let refused_itself =
                refused == Some(batch.batch_id) && !matches!(error, Error::Unavailable { .. });
            // Without a batch id, a refusal of the caller (a bad key) is every batch's.
            let refused_all = refused.is_none() && !resend;
            if refused_itself || refused_all || batch.attempts >= policy.attempts_max {
                batch.fail(&error);
            } else {
                self.outbox.push_front(batch);
            }
        }
        let wait = policy.backoff(self.losses_in_a_row);
        self.losses_in_a_row = self.losses_in_a_row.saturating_add(1);
        if !self.outbox.is_empty() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The next answer of the stream (there is one while batches are in flight).
async fn next_answer(stream: &mut Option<TransferStream>) -> Result<Option<crate::BatchAnswer>, Error> {
    stream.as_mut().expect("batches in flight have a stream").next().await
}
