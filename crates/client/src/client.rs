//! [`Client`]: the `coffer.v1.LedgerService` calls in the ledger's types.
//!
//! One `Client` is one HTTP/2 connection (a tonic `Channel`), opened at once by
//! [`ClientBuilder::connect`] or at the first call by [`ClientBuilder::connect_lazy`], and
//! opened again by itself after it breaks. Clones share the connection, and calls made at
//! the same time are multiplexed on it (the server takes up to 256 at once per
//! connection); for more connections, build more clients.
//!
//! Every call carries the admin key (`authorization: Bearer <key>` metadata) and a
//! deadline ([`ClientBuilder::call_timeout`]), sent as `grpc-timeout` and enforced here
//! too. A call refused with `UNAVAILABLE` is sent again — the same request, the same ids
//! — as the [`RetryPolicy`] allows, as long as the backoff ends before the deadline. Ids
//! are the ledger's idempotency keys: a transfer that an attempt committed but whose
//! answer was lost answers [`ledger::CreateTransferResult::Exists`] on the retry, and this
//! client reports that as it is (the transfer is in the ledger once). A transfer that an
//! attempt refused for a reason that depended on the moment (`exceeds_credits`, …)
//! answers `id_already_failed` on a retry: each id is one attempt.

use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ledger::{
    Account, AccountBalance, BATCH_EVENTS_MAX, CreateAccountResult, CreateTransferResult, Transfer,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Code, Request, Status,
    metadata::AsciiMetadataValue,
    transport::{Channel, Endpoint},
};

use crate::{
    convert,
    error::{Error, Rejection},
    proto::{self, ledger_service_client::LedgerServiceClient},
    retry::RetryPolicy,
    stream::{STREAM_BATCHES_IN_FLIGHT_MAX, TransferStream},
};

/// The largest message sent or accepted, in bytes: the server's own cap (8 MiB). A full
/// batch of 8,190 transfers is about 0.6 MB of protobuf and a lookup of 8,190 accounts
/// under 1 MB, so this is room, not a constraint; it bounds what one answer may take.
pub const MESSAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The default deadline of a call, retries and their backoff included: the server's own
/// default request timeout (30 s), so the server gives up first and says why.
pub const CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// The longest deadline a call may be given: a call that may take longer is a bug.
pub const CALL_TIMEOUT_MAX: Duration = Duration::from_secs(600);

/// How long opening the connection may take before the attempt counts as `UNAVAILABLE`.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// HTTP/2 pings on an idle connection, to find a dead server (the server pings as often).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a ping may go unanswered before the connection is dropped and reopened.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

type Stub = LedgerServiceClient<Channel>;

/// A client of one Coffer server's `LedgerService`. Cheap to clone; clones share the
/// connection and the retry counter.
#[derive(Clone)]
pub struct Client {
    stub: Stub,
    /// `Bearer <admin key>`, marked sensitive so it never shows in logs.
    authorization: AsciiMetadataValue,
    retry: RetryPolicy,
    call_timeout: Duration,
    endpoint: Arc<str>,
    /// Retries made by every clone so far (attempts after the first).
    retries: Arc<AtomicU64>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("retry", &self.retry)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

/// The settings of a [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    endpoint: String,
    admin_key: String,
    retry: RetryPolicy,
    call_timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("admin_key", &"<redacted>")
            .field("retry", &self.retry)
            .field("call_timeout", &self.call_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl ClientBuilder {
    /// Retries on `UNAVAILABLE` (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The deadline of each call, retries included (default 30 s, at most 10 minutes).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How long opening the connection may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn endpoint(&self) -> Result<Endpoint, Error> {
        self.retry.validate().map_err(Error::InvalidRequest)?;
        if self.call_timeout.is_zero() || self.call_timeout > CALL_TIMEOUT_MAX {
            return Err(Error::InvalidRequest(format!(
                "the call timeout must be more than zero and at most {CALL_TIMEOUT_MAX:?}"
            )));
        }
        let endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|error| Error::InvalidRequest(format!("endpoint {:?}: {error}", self.endpoint)))?;
        Ok(endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT))
    }

    fn build(self, channel: Channel) -> Result<Client, Error> {
        let mut authorization: AsciiMetadataValue = format!("Bearer {}", self.admin_key)
            .parse()
            .map_err(|_| Error::InvalidRequest("the admin key must be printable ASCII".into()))?;
        authorization.set_sensitive(true);
        let stub = LedgerServiceClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
        Ok(Client {
            stub,
            authorization,
            retry: self.retry,
            call_timeout: self.call_timeout,
            endpoint: self.endpoint.into(),
            retries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Connects now; `UNAVAILABLE` if the server does not answer (this first connection
    /// is not retried: a caller starting up wants to know).
    pub async fn connect(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect().await.map_err(|error| Error::Unavailable {
            attempts: 1,
            last: Box::new(Rejection::local(
                Code::Unavailable,
                format!("connecting to {}: {}", self.endpoint, chain(&error)),
            )),
        })?;
        self.build(channel)
    }

    /// Connects at the first call (which retries while the server is not there yet, as
    /// any call retries `UNAVAILABLE`). Needs a tokio runtime.
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect_lazy();
        self.build(channel)
    }
}

/// An error and its sources, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Which end of an account's history comes first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest first (the server's default).
    #[default]
    Descending,
    /// Oldest first.
    Ascending,
}

/// Which of an account's transfers [`Client::get_account_transfers`] lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Side {
    /// Those that debit or credit it.
    #[default]
    Both,
    /// Only those that debit it.
    Debits,
    /// Only those that credit it.
    Credits,
}

/// A page of an account's history: what to ask, and where to resume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Rows per page, 1 to 100; zero lets the server choose (20).
    pub page_size: u32,
    /// The previous page's `next_page_token`; `None` for the first page. A token is
    /// bound to the order it was made for.
    pub page_token: Option<String>,
    /// Newest or oldest first.
    pub order: Order,
    /// Only rows at or after this timestamp (ns); zero: no lower bound.
    pub timestamp_min: u64,
    /// Only rows at or before this timestamp (ns); zero: no upper bound.
    pub timestamp_max: u64,
}

impl HistoryQuery {
    /// The same query for the page after `page`, or `None` when `page` was the last.
    pub fn after<T>(&self, page: &Page<T>) -> Option<Self> {
        page.next_page_token.clone().map(|token| Self { page_token: Some(token), ..self.clone() })
    }

    fn order(&self) -> i32 {
        match self.order {
            Order::Descending => proto::HistoryOrder::Descending as i32,
            Order::Ascending => proto::HistoryOrder::Ascending as i32,
        }
    }
}

/// One page of rows, and the token of the next page (`None` on the last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// At most the page size of rows.
    pub items: Vec<T>,
    /// Pass as [`HistoryQuery::page_token`] for the next page (see [`HistoryQuery::after`]).
    pub next_page_token: Option<String>,
}

/// Refuses a batch the server would refuse: 1 to 8,190 events (or ids).
fn check_batch_len(len: usize, what: &str) -> Result<(), Error> {
    if len == 0 || len > BATCH_EVENTS_MAX {
        return Err(Error::InvalidRequest(format!(
            "a batch holds 1 to {BATCH_EVENTS_MAX} {what}; this one has {len}"
        )));
    }
    Ok(())
}

fn token(token: String) -> Option<String> {
    (!token.is_empty()).then_some(token)
}

impl Client {
    /// The settings of a client of the server at `endpoint` (`http://host:port`, the
    /// gRPC listener) with the admin API key.
    pub fn builder(endpoint: impl Into<String>, admin_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            admin_key: admin_key.into(),
            retry: RetryPolicy::default(),
            call_timeout: CALL_TIMEOUT_DEFAULT,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
        }
    }

    /// The server's address, as given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Retries made so far by this client and its clones (attempts after the first).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// This client with another deadline per call (on the same connection).
    pub fn with_call_timeout(&self, timeout: Duration) -> Result<Self, Error> {
        if timeout.is_zero() || timeout > CALL_TIMEOUT_MAX {
            return Err(Error::InvalidRequest(format!(
                "the call timeout must be more than zero and at most {CALL_TIMEOUT_MAX:?}"
            )));
        }
        Ok(Self { call_timeout: timeout, ..self.clone() })
    }

    /// `message` with the admin key, and `timeout` as its `grpc-timeout`.
    fn request<M>(&self, message: M, timeout: Option<Duration>) -> Request<M> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", self.authorization.clone());
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        request
    }

    /// Runs `attempt` (given the time left) until it succeeds, fails with another code
    /// than `UNAVAILABLE`, or the policy or the deadline says to stop.
    async fn with_retries<T, Fut>(&self, mut attempt: impl FnMut(Duration) -> Fut) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + self.call_timeout;
        let mut attempts = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            attempts += 1;
            let status = match tokio::time::timeout(remaining, attempt(remaining)).await {
                Err(_) => return Err(Error::DeadlineExceeded { attempts, last: None }),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(status)) => status,
            };
            if status.code() != Code::Unavailable || attempts >= self.retry.attempts_max {
                return Err(Error::from_status(&status, attempts));
            }
            let wait = self.retry.backoff(attempts - 1);
            if Instant::now() + wait >= deadline {
                return Err(Error::from_status(&status, attempts));
            }
            tracing::debug!(endpoint = %self.endpoint, attempts, ?wait, %status, "retrying a call refused with UNAVAILABLE");
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    /// Creates accounts (1 to 8,190): one result per account, in order. Their balances
    /// and timestamps are the ledger's and are not sent. An account that exists already
    /// as sent answers [`CreateAccountResult::Exists`].
    pub async fn create_accounts(&self, accounts: &[Account]) -> Result<Vec<CreateAccountResult>, Error> {
        check_batch_len(accounts.len(), "accounts")?;
        let response = self
            .with_retries(|remaining| {
                let message = proto::CreateAccountsRequest {
                    accounts: accounts.iter().map(convert::new_account).collect(),
                };
                let (request, mut stub) = (self.request(message, Some(remaining)), self.stub.clone());
                async move { stub.create_accounts(request).await }
            })
            .await?;
        let ids: Vec<u128> = accounts.iter().map(|account| account.id).collect();
        convert::account_results(&ids, response.into_inner().results)
    }

    /// Creates transfers (1 to 8,190): one result per transfer, in order; linked
    /// transfers succeed or fail together. Their timestamps are the ledger's and are not
    /// sent. After a retry, a transfer the lost attempt committed answers
    /// [`CreateTransferResult::Exists`].
    pub async fn create_transfers(&self, transfers: &[Transfer]) -> Result<Vec<CreateTransferResult>, Error> {
        check_batch_len(transfers.len(), "transfers")?;
        let response = self
            .with_retries(|remaining| {
                let message = proto::CreateTransfersRequest {
                    transfers: transfers.iter().map(convert::new_transfer).collect(),
                };
                let (request, mut stub) = (self.request(message, Some(remaining)), self.stub.clone());
                async move { stub.create_transfers(request).await }
            })
            .await?;
        let ids: Vec<u128> = transfers.iter().map(|transfer| transfer.id).collect();
        convert::transfer_results(&ids, response.into_inner().results)
    }

    /// The accounts with these ids (1 to 8,190) that exist, in the order asked; unknown
    /// ids are left out.
    pub async fn lookup_accounts(&self, ids: &[u128]) -> Result<Vec<Account>, Error> {
        check_batch_len(ids.len(), "ids")?;
        let response = self
            .with_retries(|remaining| {
                let message = proto::LookupAccountsRequest {
                    ids: ids.iter().map(|id| id.to_be_bytes().to_vec()).collect(),
                };
                let (request, mut stub) = (self.request(message, Some(remaining)), self.stub.clone());
                async move { stub.lookup_accounts(request).await }
            })
            .await?;
        response.into_inner().accounts.into_iter().map(convert::account).collect()
    }

    /// The transfers with these ids (1 to 8,190) that exist, in the order asked; unknown
    /// ids are left out.
    pub async fn lookup_transfers(&self, ids: &[u128]) -> Result<Vec<Transfer>, Error> {
        check_batch_len(ids.len(), "ids")?;
        let response = self
            .with_retries(|remaining| {
                let message = proto::LookupTransfersRequest {
                    ids: ids.iter().map(|id| id.to_be_bytes().to_vec()).collect(),
                };
                let (request, mut stub) = (self.request(message, Some(remaining)), self.stub.clone());
                async move { stub.lookup_transfers(request).await }
            })
            .await?;
        response.into_inner().transfers.into_iter().map(convert::transfer).collect()
    }

    /// A page of the transfers that debit or credit `account_id` ([`Error::NotFound`],
    /// reason `account_not_found`, for an unknown account). Follow
    /// [`HistoryQuery::after`] for the next page.
    pub async fn get_account_transfers(
        &self,
        account_id: u128,
        side: Side,
        query: &HistoryQuery,
    ) -> Result<Page<Transfer>, Error> {
        let side = match side {
            Side::Both => proto::TransferSide::Both,
            Side::Debits => proto::TransferSide::Debits,
            Side::Credits => proto::TransferSide::Credits,
        };
        let response = self
            .with_retries(|remaining| {
                let message = proto::GetAccountTransfersRequest {
                    account_id: account_id.to_be_bytes().to_vec(),
                    page_size: query.page_size,
                    page_token: query.page_token.clone().unwrap_or_default(),
                    order: query.order(),
                    timestamp_min: query.timestamp_min,
                    timestamp_max: query.timestamp_max,
                    side: side as i32,
                };
                let (request, mut stub) = (self.request(message, Some(remaining)), self.stub.clone());
                async move { stub.get_account_transfers(request).await }
            })
            .await?
            .into_inner();
        Ok(Page {
            items: response.transfers.into_iter().map(convert::transfer).collect::<Result<_, _>>()?,
            next_page_token: token(response.next_page_token),
        })
    }

    /// A page of the balance history of `account_id`, an account created with
    /// `AccountFlags::HISTORY` ([`Error::InvalidArgument`] on the field `id` otherwise).
    pub async fn get_account_balances(
        &self,
        account_id: u128,
        query: &HistoryQuery,
    ) -> Result<Page<AccountBalance>, Error> {
        let response = self
            .with_retries(|remaining| {
                let message = proto::GetAccountBalancesRequest {
                    account_id: account_id.to_be_bytes().to_vec(),
                    page_size: query.page_size,
                    page_token: query.page_token.clone().unwrap_or_default(),
                    order: query.order(),
                    timestamp_min: query.timestamp_min,
                    timestamp_max: query.timestamp_max,
                };
                let (request, mut stub) = (self.request(message, Some(remaining)), self.stub.clone());
                async move { stub.get_account_balances(request).await }
            })
            .await?
            .into_inner();
        Ok(Page {
            items: response
                .balances
                .into_iter()
                .map(|balance| convert::balance(account_id, balance))
                .collect(),
            next_page_token: token(response.next_page_token),
        })
    }

    /// Opens a `CreateTransfersStream` (retrying `UNAVAILABLE` while opening, within the
    /// call deadline; the open stream itself has no deadline). See [`TransferStream`].
    pub async fn stream(&self) -> Result<TransferStream, Error> {
        let (requests, responses) = self
            .with_retries(|_| {
                let (requests, receiver) = mpsc::channel(STREAM_BATCHES_IN_FLIGHT_MAX);
                let (request, mut stub) =
                    (self.request(ReceiverStream::new(receiver), None), self.stub.clone());
                async move {
                    let response = stub.create_transfers_stream(request).await?;
                    Ok((requests, response.into_inner()))
                }
            })
            .await?;
        Ok(TransferStream::new(requests, responses))
    }
}
