//! [`TransferStream`]: one `CreateTransfersStream`, for writers that keep several batches
//! of transfers in flight on one call instead of paying a round trip per batch.
//!
//! The pattern is: [`TransferStream::send`] while [`TransferStream::has_room`], then
//! [`TransferStream::next`] for the oldest batch's results, and again. Answers come in the
//! order batches were sent, and batches commit in that order. At most
//! [`STREAM_BATCHES_IN_FLIGHT_MAX`] batches may be unanswered: the server works on that
//! many of a stream at once, so more would only wait in buffers, and a writer that sent
//! more without reading answers could stall the stream (the server stops reading while
//! its answers are not read).
//!
//! When the stream fails (an error from [`TransferStream::next`]: the server refused a
//! batch, is shutting down, or the connection broke), the batches answered before stay
//! answered and nothing more can be sent on it. The unanswered ones may or may not have
//! been committed: send them again, with the same ids, on a new stream (the
//! [`crate::Batcher`] does exactly this). Transfers that had been committed answer
//! `exists`.

use std::collections::VecDeque;

use ledger::{BATCH_EVENTS_MAX, CreateTransferResult, Transfer};
use tokio::sync::mpsc;
use tonic::Streaming;

use crate::{convert, error::Error, proto};

/// Batches of one stream unanswered at once: the server's own limit of batches of a
/// stream in its commit pipeline (4), which keeps the pipeline fed while answers travel
/// back; more would only sit in buffers, and more to resend after a failure.
pub const STREAM_BATCHES_IN_FLIGHT_MAX: usize = 4;

/// A batch sent and not yet answered.
#[derive(Debug)]
struct Sent {
    batch_id: u64,
    ids: Vec<u128>,
}

/// The results of one batch of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchAnswer {
    /// The id [`TransferStream::send`] returned for the batch.
    pub batch_id: u64,
    /// One result per transfer, in the order sent.
    pub results: Vec<CreateTransferResult>,
}

/// An open `CreateTransfersStream`; see the module documentation.
#[derive(Debug)]
pub struct TransferStream {
    /// Batches to send; tonic reads them into the request body. Its capacity is the
    /// in-flight limit, so a send never waits on it.
    requests: Option<mpsc::Sender<proto::CreateTransfersStreamRequest>>,
    responses: Streaming<proto::CreateTransfersStreamResponse>,
    sent: VecDeque<Sent>,
    next_batch_id: u64,
    /// Set once the stream has failed or was finished: nothing more is sent.
    ended: bool,
}

impl TransferStream {
    pub(crate) fn new(
        requests: mpsc::Sender<proto::CreateTransfersStreamRequest>,
        responses: Streaming<proto::CreateTransfersStreamResponse>,
    ) -> Self {
        Self { requests: Some(requests), responses, sent: VecDeque::new(), next_batch_id: 1, ended: false }
    }

    /// Batches sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.sent.len()
    }

    /// Whether another batch may be sent now.
    pub fn has_room(&self) -> bool {
        !self.ended && self.sent.len() < STREAM_BATCHES_IN_FLIGHT_MAX
    }

    /// Whether the stream has failed or was finished: nothing more can be sent on it
    /// (answers already received may still be read with [`TransferStream::next`]).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The ids of the batches sent and not answered, oldest first.
    pub fn unanswered(&self) -> impl Iterator<Item = u64> + '_ {
        self.sent.iter().map(|sent| sent.batch_id)
    }

    /// Sends a batch of 1 to 8,190 transfers and returns its batch id (1, 2, … on each
    /// stream). [`Error::InvalidRequest`] when the stream has no room
    /// ([`TransferStream::has_room`]); [`Error::Closed`] after it failed or finished.
    pub async fn send(&mut self, transfers: &[Transfer]) -> Result<u64, Error> {
        if self.ended {
            return Err(Error::Closed);
        }
        if transfers.is_empty() || transfers.len() > BATCH_EVENTS_MAX {
            return Err(Error::InvalidRequest(format!(
                "a batch holds 1 to {BATCH_EVENTS_MAX} transfers; this one has {}",
                transfers.len()
            )));
        }
        if self.sent.len() >= STREAM_BATCHES_IN_FLIGHT_MAX {
            return Err(Error::InvalidRequest(format!(
                "{STREAM_BATCHES_IN_FLIGHT_MAX} batches are unanswered already: read an answer first"
            )));
        }
        let batch_id = self.next_batch_id;
        let message = proto::CreateTransfersStreamRequest {
            batch_id,
            transfers: transfers.iter().map(convert::new_transfer).collect(),
        };
        let requests = self.requests.as_ref().ok_or(Error::Closed)?;
        if requests.send(message).await.is_err() {
            // The call is over (tonic dropped the request body): `next` says why.
            self.ended = true;
            return Err(Error::Closed);
        }
        self.next_batch_id += 1;
        self.sent.push_back(Sent { batch_id, ids: transfers.iter().map(|transfer| transfer.id).collect() });
        Ok(batch_id)
    }

    /// The answer to the oldest unanswered batch; `Ok(None)` when none is unanswered.
    /// An error ends the stream: the server refused a batch (its
    /// [`crate::Rejection::batch_id`] names it; those before it were answered), is
    /// shutting down, or the connection broke. Cancel-safe: dropping the future before
    /// it completes loses no answer.
    pub async fn next(&mut self) -> Result<Option<BatchAnswer>, Error> {
        let Some(expected) = self.sent.front() else {
            return Ok(None);
        };
        let expected = expected.batch_id;
        let response = match self.responses.message().await {
            Ok(Some(response)) => response,
            Ok(None) => {
                self.ended = true;
                return Err(Error::Protocol(format!(
                    "the stream ended with {} batches unanswered",
                    self.sent.len()
                )));
            }
            Err(status) => {
                self.ended = true;
                return Err(Error::from_status(&status, 1));
            }
        };
        if response.batch_id != expected {
            self.ended = true;
            return Err(Error::Protocol(format!(
                "the answer to batch {} came when batch {expected} was the oldest unanswered",
                response.batch_id
            )));
        }
        let sent = self.sent.pop_front().expect("a batch is unanswered");
        match convert::transfer_results(&sent.ids, response.results) {
            Ok(results) => Ok(Some(BatchAnswer { batch_id: sent.batch_id, results })),
            Err(error) => {
                self.ended = true;
                Err(error)
            }
        }
    }

    /// Stops sending, reads the answers of the batches still unanswered, and ends the
    /// stream.
    pub async fn finish(mut self) -> Result<Vec<BatchAnswer>, Error> {
        self.requests = None;
        let mut answers = Vec::with_capacity(self.sent.len());
        while let Some(answer) = self.next().await? {
            answers.push(answer);
        }
        Ok(answers)
    }
}
