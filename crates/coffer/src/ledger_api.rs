//! The ledger API's rules, shared by both transports: REST (`http::routes::ledger`) and
//! gRPC (`grpc::ledger`). Each transport decodes its own wire format into the ledger's
//! types and renders the answers back; everything in between happens here, once — the
//! batch-size and amount checks, the submission to the commit pipeline (the one write
//! path), the account lookups and the cursor paging of an account's history. Errors are
//! the HTTP layer's [`ApiError`], which gRPC maps to status codes, so both transports
//! refuse the same requests with the same stable `code`.

use std::future::Future;

use ledger::{AMOUNT_MAX, AccountFlags, BATCH_EVENTS_MAX, CreateAccountResult, CreateTransferResult};
use serde::{Deserialize, Serialize};
use store::{AccountFilter, Command, Outcome, Store};
use utoipa::{IntoParams, ToSchema};

use crate::{
    commit::CommitPipeline,
    http::{
        error::{ApiError, FieldError},
        paging::{self, CursorKey, Page},
    },
};

/// Checks a batch's length: 1 to [`BATCH_EVENTS_MAX`] events (422 `validation_failed`
/// on the field `""`, the whole batch, otherwise). Ids lists of lookups use it too.
pub fn check_batch_len(len: usize) -> Result<(), ApiError> {
    if len == 0 || len > BATCH_EVENTS_MAX {
        return Err(ApiError::field(
            "",
            format!("a batch holds 1 to {BATCH_EVENTS_MAX} events; this one has {len}"),
        ));
    }
    Ok(())
}

/// The checks on a transfer that the ledger's result codes do not cover: an amount
/// above [`AMOUNT_MAX`] (63 bits, what both databases store natively) is refused
/// before the batch is submitted. `index` is the transfer's position in its batch.
pub fn check_transfer(index: usize, transfer: &ledger::Transfer, errors: &mut Vec<FieldError>) {
    if transfer.amount > AMOUNT_MAX {
        errors.push(FieldError {
            field: format!("/{index}/amount"),
            message: format!("must be at most {AMOUNT_MAX}"),
        });
    }
}

/// A 422 listing `errors`, or nothing when there are none.
pub fn reject(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::Validation {
        detail: format!(
            "{} invalid field(s), first: {}: {}",
            errors.len(),
            errors[0].field,
            errors[0].message
        ),
        errors,
    })
}

/// Creates checked accounts through the commit pipeline: one result per account, in order.
pub async fn create_accounts(
    pipeline: &CommitPipeline,
    accounts: Vec<ledger::Account>,
) -> Result<Vec<CreateAccountResult>, ApiError> {
    let events = accounts.len();
    match pipeline.submit(Command::CreateAccounts(accounts)).await? {
        Outcome::Accounts(results) => {
            assert_eq!(results.len(), events, "one result per event");
            Ok(results)
        }
        other => Err(ApiError::Internal(anyhow::anyhow!("unexpected outcome for accounts: {other:?}"))),
    }
}

/// Queues checked transfers on the commit pipeline now, and returns the wait for their
/// results (one per transfer, in order). Queueing before waiting is what lets a stream
/// keep several batches in flight and still have them commit in the order it sent them.
/// A full queue is refused at once (503 `overloaded`).
pub fn enqueue_transfers(
    pipeline: &CommitPipeline,
    transfers: Vec<ledger::Transfer>,
) -> Result<impl Future<Output = Result<Vec<CreateTransferResult>, ApiError>> + Send + 'static, ApiError> {
    let events = transfers.len();
    let outcome = pipeline.enqueue(Command::CreateTransfers(transfers))?;
    Ok(async move {
        match outcome.await? {
            Outcome::Transfers(results) => {
                assert_eq!(results.len(), events, "one result per event");
                Ok(results)
            }
            other => Err(ApiError::Internal(anyhow::anyhow!("unexpected outcome for transfers: {other:?}"))),
        }
    })
}

/// Creates checked transfers through the commit pipeline: one result per transfer, in order.
pub async fn create_transfers(
    pipeline: &CommitPipeline,
    transfers: Vec<ledger::Transfer>,
) -> Result<Vec<CreateTransferResult>, ApiError> {
    enqueue_transfers(pipeline, transfers)?.await
}

/// The account with this id (404 `account_not_found` otherwise).
pub async fn find_account(store: &Store, account_id: u128) -> Result<ledger::Account, ApiError> {
    store.account(account_id).await?.ok_or_else(|| ApiError::NotFound {
        code: "account_not_found",
        detail: format!("no account {}", uuid::Uuid::from_u128(account_id)),
    })
}

/// The transfer with this id (404 `transfer_not_found` otherwise).
pub async fn find_transfer(store: &Store, transfer_id: u128) -> Result<ledger::Transfer, ApiError> {
    store.transfer(transfer_id).await?.ok_or_else(|| ApiError::NotFound {
        code: "transfer_not_found",
        detail: format!("no transfer {}", uuid::Uuid::from_u128(transfer_id)),
    })
}

/// Transfers a linked chain holds at most (a chain is one batch's run of linked
/// transfers; batches are bounded by [`BATCH_EVENTS_MAX`]).
const CHAIN_MAX: u32 = BATCH_EVENTS_MAX as u32;

/// The linked chain `transfer` belongs to, in commit order: the transfers before it that
/// carry the `linked` flag back to the chain's start, itself, and those after it up to
/// the first without the flag (the chain's last). A transfer in no chain is alone.
pub async fn linked_chain(
    store: &Store,
    transfer: &ledger::Transfer,
) -> Result<Vec<ledger::Transfer>, ApiError> {
    let linked = |t: &ledger::Transfer| t.flags.contains(ledger::TransferFlags::LINKED);
    let mut chain: Vec<ledger::Transfer> = store
        .transfers_next_to(transfer.timestamp, true, CHAIN_MAX)
        .await?
        .into_iter()
        .take_while(linked)
        .collect();
    chain.reverse();
    chain.push(*transfer);
    if linked(transfer) {
        for next in store.transfers_next_to(transfer.timestamp, false, CHAIN_MAX).await? {
            let last = !linked(&next);
            chain.push(next);
            if last {
                break;
            }
        }
    }
    Ok(chain)
}

/// Where a pending transfer stands now; `None` for a transfer that was never pending.
pub async fn pending_status(
    store: &Store,
    transfer: &ledger::Transfer,
) -> Result<Option<ledger::PendingStatus>, ApiError> {
    if !transfer.flags.contains(ledger::TransferFlags::PENDING) {
        return Ok(None);
    }
    Ok(store.pending_status(transfer.id).await?)
}

/// The accounts with these ids that exist, in the order asked (1 to
/// [`BATCH_EVENTS_MAX`] ids; unknown ids are left out, as in TigerBeetle's lookups).
pub async fn lookup_accounts(store: &Store, ids: &[u128]) -> Result<Vec<ledger::Account>, ApiError> {
    check_batch_len(ids.len())?;
    let found = store.accounts(ids).await?;
    Ok(in_order_asked(ids, found, |account| account.id))
}

/// The transfers with these ids that exist, in the order asked (1 to
/// [`BATCH_EVENTS_MAX`] ids; unknown ids are left out).
pub async fn lookup_transfers(store: &Store, ids: &[u128]) -> Result<Vec<ledger::Transfer>, ApiError> {
    check_batch_len(ids.len())?;
    let found = store.transfers(ids).await?;
    Ok(in_order_asked(ids, found, |transfer| transfer.id))
}

/// `found` (sorted by id) rearranged in the order of `ids`, repeats included.
fn in_order_asked<T: Copy>(ids: &[u128], found: Vec<T>, id: impl Fn(&T) -> u128) -> Vec<T> {
    ids.iter().filter_map(|wanted| found.binary_search_by_key(wanted, &id).ok().map(|at| found[at])).collect()
}

/// Which end of history comes first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// Which transfers of the account to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[default]
    Both,
    Debits,
    Credits,
}

/// Paging and filters for an account's history.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Rows per page: 1 to 100, default 20.
    pub limit: Option<u32>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub order: Option<Order>,
    /// Only rows at or after this timestamp (ns).
    pub timestamp_min: Option<u64>,
    /// Only rows at or before this timestamp (ns).
    pub timestamp_max: Option<u64>,
    /// For transfers: `both` (default), `debits` or `credits`.
    pub side: Option<Side>,
}

/// A validated history query: the store filter (with one extra row to learn whether
/// another page follows) and the page size.
struct HistoryPage {
    filter: AccountFilter,
    limit: u32,
    order: Order,
    /// The range holds nothing (say, a cursor past the end): no query needed.
    empty: bool,
}

impl HistoryQuery {
    fn into_page(self, account_id: u128) -> Result<HistoryPage, ApiError> {
        let limit = paging::limit(self.limit)?;
        let order = self.order.unwrap_or_default();
        let mut timestamp_min = self.timestamp_min.unwrap_or(0);
        let mut timestamp_max = self.timestamp_max.unwrap_or(u64::MAX);
        if let Some(after) = decode_cursor(self.cursor.as_deref(), order)? {
            // The cursor only ever narrows the range the client asked for.
            match order {
                Order::Desc => timestamp_max = timestamp_max.min(after.saturating_sub(1)),
                Order::Asc => timestamp_min = timestamp_min.max(after.saturating_add(1)),
            }
        }
        let side = self.side.unwrap_or_default();
        // Ledger timestamps are never zero, so a maximum of zero selects nothing.
        let empty = timestamp_max < timestamp_min || timestamp_max == 0;
        let filter = AccountFilter {
            account_id,
            timestamp_min,
            // The store reads 0 as "no upper bound"; u64::MAX is the same bound.
            timestamp_max: if timestamp_max == u64::MAX { 0 } else { timestamp_max },
            limit: limit + 1,
            debits: side != Side::Credits,
            credits: side != Side::Debits,
            reversed: order == Order::Desc,
        };
        Ok(HistoryPage { filter, limit, order, empty })
    }
}

/// An account history's cursor: the order it was made for and the last row's timestamp.
const CURSOR_TAG: &str = "v1";

impl CursorKey for Order {
    fn write(&self) -> String {
        if *self == Order::Desc { "desc" } else { "asc" }.to_owned()
    }
    fn read(text: &str) -> Option<Self> {
        match text {
            "desc" => Some(Order::Desc),
            "asc" => Some(Order::Asc),
            _ => None,
        }
    }
}

fn encode_cursor(timestamp: u64, order: Order) -> String {
    paging::cursor(CURSOR_TAG, &(order, timestamp))
}

fn decode_cursor(cursor: Option<&str>, order: Order) -> Result<Option<u64>, ApiError> {
    let invalid = || ApiError::InvalidParameter {
        detail: "`cursor` is not a cursor from this list (or was made for the other `order`)".into(),
    };
    match paging::after::<(Order, u64)>(CURSOR_TAG, cursor).map_err(|_| invalid())? {
        Some((made_for, timestamp)) if made_for == order => Ok(Some(timestamp)),
        Some(_) => Err(invalid()),
        None => Ok(None),
    }
}

fn paginate<T>(rows: Vec<T>, page: &HistoryPage, timestamp: impl Fn(&T) -> u64) -> Page<T> {
    Page::of(rows, page.limit, |row| encode_cursor(timestamp(row), page.order), |row| row)
}

/// A page of the transfers that debit or credit an account (404 for an unknown account).
pub async fn account_transfers(
    store: &Store,
    account_id: u128,
    query: HistoryQuery,
) -> Result<Page<ledger::Transfer>, ApiError> {
    let page = query.into_page(account_id)?;
    find_account(store, account_id).await?;
    let rows = if page.empty { Vec::new() } else { store.account_transfers(&page.filter).await? };
    Ok(paginate(rows, &page, |transfer| transfer.timestamp))
}

/// A page of the balance history of an account created with the `history` flag (404
/// for an unknown account, 422 on the field `id` for one without history).
pub async fn account_balances(
    store: &Store,
    account_id: u128,
    query: HistoryQuery,
) -> Result<Page<ledger::AccountBalance>, ApiError> {
    if query.side.is_some() {
        return Err(ApiError::field("side", "applies to transfers, not balances"));
    }
    let page = query.into_page(account_id)?;
    let account = find_account(store, account_id).await?;
    if !account.flags.contains(AccountFlags::HISTORY) {
        return Err(ApiError::field(
            "id",
            "this account was created without the `history` flag and keeps no balance history",
        ));
    }
    let rows = if page.empty { Vec::new() } else { store.account_balances(&page.filter).await? };
    Ok(paginate(rows, &page, |balance| balance.timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_order() {
        let cursor = encode_cursor(1_234, Order::Desc);
        assert_eq!(decode_cursor(Some(&cursor), Order::Desc).unwrap(), Some(1_234));
        assert!(decode_cursor(Some(&cursor), Order::Asc).is_err());
        assert!(decode_cursor(Some("garbage!"), Order::Desc).is_err());
    }

    #[test]
    fn history_query_bounds() {
        let query = |limit, cursor: Option<String>| HistoryQuery { limit, cursor, ..HistoryQuery::default() };
        assert!(query(Some(0), None).into_page(1).is_err());
        assert!(query(Some(101), None).into_page(1).is_err());
        let page = query(None, Some(encode_cursor(50, Order::Desc))).into_page(1).unwrap();
        assert_eq!((page.filter.timestamp_max, page.filter.limit), (49, paging::PAGE_LIMIT_DEFAULT + 1));
    }

    #[test]
    fn batch_length_and_amount_limits() {
        assert!(check_batch_len(0).is_err());
        assert!(check_batch_len(1).is_ok());
        assert!(check_batch_len(BATCH_EVENTS_MAX).is_ok());
        assert!(check_batch_len(BATCH_EVENTS_MAX + 1).is_err());
        let mut errors = Vec::new();
        check_transfer(3, &ledger::Transfer { amount: AMOUNT_MAX, ..Default::default() }, &mut errors);
        assert!(errors.is_empty());
        check_transfer(3, &ledger::Transfer { amount: AMOUNT_MAX + 1, ..Default::default() }, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "/3/amount");
    }
}
