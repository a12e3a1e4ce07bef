//! `coffer.v1.LedgerService`: the REST ledger API's operations over gRPC. Each method
//! checks the admin key, decodes protobuf into the ledger's types (ids are 16 bytes,
//! flags the ledger's bit positions plus one), hands them to [`crate::ledger_api`] — the
//! same checks, commit pipeline and store as REST — and encodes the answers. The
//! streaming method keeps a few batches of one stream in the pipeline at once and
//! answers them in the order they came.

use std::pin::Pin;

use futures::{Stream, StreamExt, stream::FuturesOrdered};
use ledger::{AccountFlags, CreateAccountResult, CreateTransferResult, TransferFlags};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::{proto, require_admin_key, status};
use crate::{
    http::{
        AppState,
        error::{ApiError, FieldError},
    },
    ledger_api::{self, HistoryQuery, Order, Side},
};

/// Batches of one stream in the commit pipeline at once: enough to keep the pipeline
/// fed while the previous batch's results travel back, few enough that one stream
/// cannot fill the shared commit queue (4 × 8,190 transfers at most).
pub const STREAM_BATCHES_IN_FLIGHT_MAX: usize = 4;

/// Answered batches waiting for the client to read them. When the client stops
/// reading, the stream stops taking batches (backpressure) instead of buffering them.
pub const STREAM_RESPONSES_BUFFERED_MAX: usize = 4;

/// The gRPC ledger service, over the same state as the HTTP server.
#[derive(Debug, Clone)]
pub struct Ledger {
    state: AppState,
    /// Cancelled when the server begins to shut down: streams stop taking batches.
    stopping: CancellationToken,
}

impl Ledger {
    pub fn new(state: AppState, stopping: CancellationToken) -> Self {
        Self { state, stopping }
    }
}

/// A 16-byte id, or zero when left out; anything else is a field error at `field`.
pub(super) fn decode_id(bytes: &[u8], field: impl FnOnce() -> String, errors: &mut Vec<FieldError>) -> u128 {
    match bytes.len() {
        0 => 0,
        16 => u128::from_be_bytes(bytes.try_into().expect("16 bytes")),
        len => {
            errors.push(FieldError { field: field(), message: format!("must be 16 bytes, not {len}") });
            0
        }
    }
}

pub(super) fn encode_id(id: u128) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// A `code` of a u16 field carried in a uint32.
fn decode_code(code: u32, field: impl FnOnce() -> String, errors: &mut Vec<FieldError>) -> u16 {
    u16::try_from(code).unwrap_or_else(|_| {
        errors.push(FieldError { field: field(), message: format!("must be at most {}", u16::MAX) });
        0
    })
}

/// The bit of a flag enum value (the ledger's bit position plus one), if it names one.
fn flag_bit(value: i32) -> Option<u16> {
    (1..=16).contains(&value).then(|| 1 << (value - 1))
}

fn decode_flags<F>(
    values: &[i32],
    from_bits: fn(u16) -> Option<F>,
    field: impl Fn() -> String,
    errors: &mut Vec<FieldError>,
) -> u16 {
    let mut bits = 0;
    for value in values {
        match flag_bit(*value).filter(|bit| from_bits(*bit).is_some()) {
            Some(bit) => bits |= bit,
            None => errors.push(FieldError { field: field(), message: format!("{value} is not a flag") }),
        }
    }
    bits
}

/// The flag enum values of a set of ledger bits, in bit order.
fn encode_flags(bits: u16) -> Vec<i32> {
    (0..16).filter(|bit| bits & (1 << bit) != 0).map(|bit| bit + 1).collect()
}

/// The proto value of a ledger result code: its position in the ledger's order of
/// precedence plus one (the unit tests check every name).
fn account_result(code: CreateAccountResult) -> i32 {
    code as i32 + 1
}

fn transfer_result(code: CreateTransferResult) -> i32 {
    code as i32 + 1
}

fn decode_account(index: usize, account: proto::NewAccount, errors: &mut Vec<FieldError>) -> ledger::Account {
    let at = |field: &str| format!("/{index}/{field}");
    let flags = decode_flags(&account.flags, AccountFlags::from_bits, || at("flags"), errors);
    ledger::Account {
        id: decode_id(&account.id, || at("id"), errors),
        ledger: account.ledger,
        code: decode_code(account.code, || at("code"), errors),
        flags: AccountFlags::from_bits(flags).expect("checked flag by flag"),
        user_data_128: decode_id(&account.user_data_128, || at("user_data_128"), errors),
        user_data_64: account.user_data_64,
        user_data_32: account.user_data_32,
        ..Default::default()
    }
}

fn decode_transfer(
    index: usize,
    transfer: proto::NewTransfer,
    errors: &mut Vec<FieldError>,
) -> ledger::Transfer {
    let at = |field: &str| format!("/{index}/{field}");
    let flags = decode_flags(&transfer.flags, TransferFlags::from_bits, || at("flags"), errors);
    let decoded = ledger::Transfer {
        id: decode_id(&transfer.id, || at("id"), errors),
        debit_account_id: decode_id(&transfer.debit_account_id, || at("debit_account_id"), errors),
        credit_account_id: decode_id(&transfer.credit_account_id, || at("credit_account_id"), errors),
        amount: transfer.amount,
        pending_id: decode_id(&transfer.pending_id, || at("pending_id"), errors),
        user_data_128: decode_id(&transfer.user_data_128, || at("user_data_128"), errors),
        user_data_64: transfer.user_data_64,
        user_data_32: transfer.user_data_32,
        timeout: transfer.timeout,
        ledger: transfer.ledger,
        code: decode_code(transfer.code, || at("code"), errors),
        flags: TransferFlags::from_bits(flags).expect("checked flag by flag"),
        timestamp: 0,
    };
    ledger_api::check_transfer(index, &decoded, errors);
    decoded
}

/// A batch of transfers, checked exactly as REST checks one: its length, then every
/// field (all errors at once, REST's field paths).
fn decode_transfers(transfers: Vec<proto::NewTransfer>) -> Result<Vec<ledger::Transfer>, ApiError> {
    ledger_api::check_batch_len(transfers.len())?;
    let mut errors = Vec::new();
    let decoded = transfers
        .into_iter()
        .enumerate()
        .map(|(index, event)| decode_transfer(index, event, &mut errors))
        .collect();
    ledger_api::reject(errors)?;
    Ok(decoded)
}

fn transfer_results(
    ids: &[u128],
    results: Vec<CreateTransferResult>,
) -> Vec<proto::CreateTransferEventResult> {
    assert_eq!(ids.len(), results.len(), "one result per event");
    ids.iter()
        .zip(results)
        .enumerate()
        .map(|(index, (id, result))| proto::CreateTransferEventResult {
            index: u32::try_from(index).expect("a batch holds at most 8,190 events"),
            id: encode_id(*id),
            result: transfer_result(result),
        })
        .collect()
}

fn decode_ids(ids: &[Vec<u8>]) -> Result<Vec<u128>, ApiError> {
    let mut errors = Vec::new();
    let decoded = ids
        .iter()
        .enumerate()
        .map(|(index, id)| decode_id(id, || format!("/{index}"), &mut errors))
        .collect();
    ledger_api::reject(errors)?;
    Ok(decoded)
}

fn account_message(account: ledger::Account) -> proto::Account {
    proto::Account {
        id: encode_id(account.id),
        ledger: account.ledger,
        code: u32::from(account.code),
        flags: encode_flags(account.flags.bits()),
        user_data_128: encode_id(account.user_data_128),
        user_data_64: account.user_data_64,
        user_data_32: account.user_data_32,
        debits_pending: account.debits_pending,
        debits_posted: account.debits_posted,
        credits_pending: account.credits_pending,
        credits_posted: account.credits_posted,
        timestamp: account.timestamp,
    }
}

fn transfer_message(transfer: ledger::Transfer) -> proto::Transfer {
    proto::Transfer {
        id: encode_id(transfer.id),
        debit_account_id: encode_id(transfer.debit_account_id),
        credit_account_id: encode_id(transfer.credit_account_id),
        amount: transfer.amount,
        pending_id: encode_id(transfer.pending_id),
        timeout: transfer.timeout,
        ledger: transfer.ledger,
        code: u32::from(transfer.code),
        flags: encode_flags(transfer.flags.bits()),
        user_data_128: encode_id(transfer.user_data_128),
        user_data_64: transfer.user_data_64,
        user_data_32: transfer.user_data_32,
        timestamp: transfer.timestamp,
    }
}

/// A history request as the shared REST query: zero means "left out".
fn history_query(page_size: u32, page_token: String, order: i32, min: u64, max: u64) -> HistoryQuery {
    HistoryQuery {
        limit: (page_size != 0).then_some(page_size),
        cursor: (!page_token.is_empty()).then_some(page_token),
        order: Some(match proto::HistoryOrder::try_from(order) {
            Ok(proto::HistoryOrder::Ascending) => Order::Asc,
            _ => Order::Desc,
        }),
        timestamp_min: (min != 0).then_some(min),
        timestamp_max: (max != 0).then_some(max),
        side: None,
    }
}

fn decode_account_id(bytes: &[u8]) -> Result<u128, ApiError> {
    let mut errors = Vec::new();
    let id = decode_id(bytes, || "id".to_owned(), &mut errors);
    ledger_api::reject(errors)?;
    Ok(id)
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<proto::CreateTransfersStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl proto::ledger_service_server::LedgerService for Ledger {
    async fn create_accounts(
        &self,
        request: Request<proto::CreateAccountsRequest>,
    ) -> Result<Response<proto::CreateAccountsResponse>, Status> {
        require_admin_key(&self.state, request.metadata())?;
        let events = request.into_inner().accounts;
        ledger_api::check_batch_len(events.len()).map_err(status)?;
        let mut errors = Vec::new();
        let accounts: Vec<ledger::Account> = events
            .into_iter()
            .enumerate()
            .map(|(index, event)| decode_account(index, event, &mut errors))
            .collect();
        ledger_api::reject(errors).map_err(status)?;
        let ids: Vec<u128> = accounts.iter().map(|account| account.id).collect();
        let results = ledger_api::create_accounts(&self.state.pipeline, accounts).await.map_err(status)?;
        let results = ids
            .iter()
            .zip(results)
            .enumerate()
            .map(|(index, (id, result))| proto::CreateAccountEventResult {
                index: u32::try_from(index).expect("a batch holds at most 8,190 events"),
                id: encode_id(*id),
                result: account_result(result),
            })
            .collect();
        Ok(Response::new(proto::CreateAccountsResponse { results }))
    }

    async fn create_transfers(
        &self,
        request: Request<proto::CreateTransfersRequest>,
    ) -> Result<Response<proto::CreateTransfersResponse>, Status> {
        require_admin_key(&self.state, request.metadata())?;
        let transfers = decode_transfers(request.into_inner().transfers).map_err(status)?;
        let ids: Vec<u128> = transfers.iter().map(|transfer| transfer.id).collect();
        let results = ledger_api::create_transfers(&self.state.pipeline, transfers).await.map_err(status)?;
        Ok(Response::new(proto::CreateTransfersResponse { results: transfer_results(&ids, results) }))
    }

    async fn lookup_accounts(
        &self,
        request: Request<proto::LookupAccountsRequest>,
    ) -> Result<Response<proto::LookupAccountsResponse>, Status> {
        require_admin_key(&self.state, request.metadata())?;
        let ids = decode_ids(&request.into_inner().ids).map_err(status)?;
        let accounts = ledger_api::lookup_accounts(&self.state.store, &ids).await.map_err(status)?;
        Ok(Response::new(proto::LookupAccountsResponse {
            accounts: accounts.into_iter().map(account_message).collect(),
        }))
    }

    async fn lookup_transfers(
        &self,
        request: Request<proto::LookupTransfersRequest>,
    ) -> Result<Response<proto::LookupTransfersResponse>, Status> {
        require_admin_key(&self.state, request.metadata())?;
        let ids = decode_ids(&request.into_inner().ids).map_err(status)?;
        let transfers = ledger_api::lookup_transfers(&self.state.store, &ids).await.map_err(status)?;
        Ok(Response::new(proto::LookupTransfersResponse {
            transfers: transfers.into_iter().map(transfer_message).collect(),
        }))
    }

    async fn get_account_transfers(
        &self,
        request: Request<proto::GetAccountTransfersRequest>,
    ) -> Result<Response<proto::GetAccountTransfersResponse>, Status> {
        require_admin_key(&self.state, request.metadata())?;
        let request = request.into_inner();
        let account_id = decode_account_id(&request.account_id).map_err(status)?;
        let side = match proto::TransferSide::try_from(request.side) {
            Ok(proto::TransferSide::Debits) => Side::Debits,
            Ok(proto::TransferSide::Credits) => Side::Credits,
            _ => Side::Both,
        };
        let query = HistoryQuery {
            side: Some(side),
            ..history_query(
                request.page_size,
                request.page_token,
                request.order,
                request.timestamp_min,
                request.timestamp_max,
            )
        };
        let page =
            ledger_api::account_transfers(&self.state.store, account_id, query).await.map_err(status)?;
        Ok(Response::new(proto::GetAccountTransfersResponse {
            transfers: page.data.into_iter().map(transfer_message).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn get_account_balances(
        &self,
        request: Request<proto::GetAccountBalancesRequest>,
    ) -> Result<Response<proto::GetAccountBalancesResponse>, Status> {
        require_admin_key(&self.state, request.metadata())?;
        let request = request.into_inner();
        let account_id = decode_account_id(&request.account_id).map_err(status)?;
        let query = history_query(
            request.page_size,
            request.page_token,
            request.order,
            request.timestamp_min,
            request.timestamp_max,
        );
        let page =
            ledger_api::account_balances(&self.state.store, account_id, query).await.map_err(status)?;
        Ok(Response::new(proto::GetAccountBalancesResponse {
            balances: page
                .data
                .into_iter()
                .map(|balance| proto::AccountBalance {
                    timestamp: balance.timestamp,
                    debits_pending: balance.debits_pending,
                    debits_posted: balance.debits_posted,
                    credits_pending: balance.credits_pending,
                    credits_posted: balance.credits_posted,
                })
                .collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    type CreateTransfersStreamStream = ResultStream;

    async fn create_transfers_stream(
        &self,
        request: Request<Streaming<proto::CreateTransfersStreamRequest>>,
    ) -> Result<Response<ResultStream>, Status> {
        require_admin_key(&self.state, request.metadata())?;
        let (sender, receiver) = mpsc::channel(STREAM_RESPONSES_BUFFERED_MAX);
        // In the call's span: the stream's log lines name its request id.
        let stream =
            run_stream(self.state.pipeline.clone(), request.into_inner(), sender, self.stopping.clone());
        tokio::spawn(tracing::Instrument::in_current_span(stream));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// tonic refuses a stream's message over the size cap with OUT_OF_RANGE; like a unary
/// call's (see `size_limit_status`), it is RESOURCE_EXHAUSTED (REST's 413), with the
/// `payload_too_large` reason.
fn oversize_as_exhausted(error: Status) -> Status {
    let oversize = error.code() == tonic::Code::OutOfRange && error.message().contains("too large");
    if oversize { status(ApiError::PayloadTooLarge { limit_bytes: super::MESSAGE_BYTES_MAX }) } else { error }
}

/// A batch's error, naming the batch in the `ErrorInfo` metadata (`batch_id`).
fn batch_status(error: ApiError, batch_id: u64) -> Status {
    super::status_with(error, [("batch_id".to_owned(), batch_id.to_string())].into())
}

/// Runs one CreateTransfersStream: reads batches while fewer than
/// [`STREAM_BATCHES_IN_FLIGHT_MAX`] wait for the pipeline, queues each on the pipeline as
/// it is read (so they commit in the stream's order), and sends the results in that order.
/// The first refused batch ends the stream after the results of those before it; so
/// does shutdown (`UNAVAILABLE`, reason `shutting_down`), once the queued batches are answered.
async fn run_stream(
    pipeline: crate::commit::CommitPipeline,
    mut incoming: Streaming<proto::CreateTransfersStreamRequest>,
    sender: mpsc::Sender<Result<proto::CreateTransfersStreamResponse, Status>>,
    stopping: CancellationToken,
) {
    let mut in_flight = FuturesOrdered::new();
    let mut failure: Option<Status> = None;
    let mut reading = true;
    loop {
        tokio::select! {
            Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                let answer: Result<proto::CreateTransfersStreamResponse, Status> = answer;
                let failed = answer.is_err();
                if sender.send(answer).await.is_err() {
                    // The client went away: batches already queued still commit, and a
                    // retry with the same ids answers `exists` for them.
                    return;
                }
                if failed {
                    return;
                }
            }
            message = incoming.message(), if reading && in_flight.len() < STREAM_BATCHES_IN_FLIGHT_MAX => {
                match message {
                    Ok(Some(batch)) => {
                        let batch_id = batch.batch_id;
                        let queued = decode_transfers(batch.transfers).and_then(|transfers| {
                            let ids: Vec<u128> = transfers.iter().map(|transfer| transfer.id).collect();
                            Ok((ids, ledger_api::enqueue_transfers(&pipeline, transfers)?))
                        });
                        match queued {
                            Ok((ids, results)) => in_flight.push_back(async move {
                                let results = results.await.map_err(|error| batch_status(error, batch_id))?;
                                Ok(proto::CreateTransfersStreamResponse {
                                    batch_id,
                                    results: transfer_results(&ids, results),
                                })
                            }),
                            Err(error) => {
                                failure = Some(batch_status(error, batch_id));
                                reading = false;
                            }
                        }
                    }
                    Ok(None) => reading = false,
                    // The client broke the stream (or sent something undecodable); what
                    // is queued still commits, and there is no one left to answer.
                    Err(error) => {
                        tracing::debug!(%error, "a CreateTransfersStream ended with an error from the client");
                        failure = Some(oversize_as_exhausted(error));
                        reading = false;
                    }
                }
            }
            () = stopping.cancelled(), if reading => {
                failure = Some(status(ApiError::ShuttingDown));
                reading = false;
            }
            else => break,
        }
    }
    if let Some(failure) = failure {
        // The client may be gone already; then there is no one to tell.
        let _ = sender.send(Err(failure)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proto value's name without its prefix, in lower case.
    fn rest_name(proto_name: &str, prefix: &str) -> String {
        proto_name.strip_prefix(prefix).expect("prefixed").to_ascii_lowercase()
    }

    #[test]
    fn result_codes_map_one_to_one_by_name() {
        for code in CreateTransferResult::ALL {
            let value = proto::CreateTransferResult::try_from(transfer_result(*code)).expect("a proto value");
            assert_eq!(rest_name(value.as_str_name(), "CREATE_TRANSFER_RESULT_"), code.as_str());
        }
        for code in CreateAccountResult::ALL {
            let value = proto::CreateAccountResult::try_from(account_result(*code)).expect("a proto value");
            assert_eq!(rest_name(value.as_str_name(), "CREATE_ACCOUNT_RESULT_"), code.as_str());
        }
        // No proto value is left without a ledger code (besides UNSPECIFIED).
        assert!(proto::CreateTransferResult::try_from(CreateTransferResult::ALL.len() as i32 + 1).is_err());
        assert!(proto::CreateAccountResult::try_from(CreateAccountResult::ALL.len() as i32 + 1).is_err());
    }

    #[test]
    fn flags_map_one_to_one_by_name() {
        for (name, flag) in TransferFlags::NAMED {
            let values = encode_flags(flag.bits());
            assert_eq!(values.len(), 1);
            let value = proto::TransferFlag::try_from(values[0]).expect("a proto value");
            assert_eq!(rest_name(value.as_str_name(), "TRANSFER_FLAG_"), *name);
            let mut errors = Vec::new();
            assert_eq!(
                decode_flags(&values, TransferFlags::from_bits, String::new, &mut errors),
                flag.bits()
            );
            assert!(errors.is_empty());
        }
        for (name, flag) in AccountFlags::NAMED {
            let values = encode_flags(flag.bits());
            let value = proto::AccountFlag::try_from(values[0]).expect("a proto value");
            assert_eq!(rest_name(value.as_str_name(), "ACCOUNT_FLAG_"), *name);
        }
        let mut errors = Vec::new();
        decode_flags(&[0, 5, 17], AccountFlags::from_bits, || "/0/flags".to_owned(), &mut errors);
        assert_eq!(errors.len(), 3, "UNSPECIFIED, the reserved bit and an unknown value are refused");
    }

    #[test]
    fn ids_are_sixteen_bytes_or_empty() {
        let mut errors = Vec::new();
        let id = 0x0190_b7a2_0000_0000_0000_0000_0000_0001_u128;
        assert_eq!(decode_id(&encode_id(id), String::new, &mut errors), id);
        assert_eq!(uuid::Uuid::from_u128(id).as_bytes().to_vec(), encode_id(id), "the UUID's bytes");
        assert_eq!(decode_id(&[], String::new, &mut errors), 0);
        assert!(errors.is_empty());
        decode_id(&[1; 15], || "/0/id".to_owned(), &mut errors);
        assert_eq!(errors[0].field, "/0/id");
    }
}
