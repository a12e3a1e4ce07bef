//! Conversions between the ledger's types and database columns, shared by both backends.
//!
//! Ids are `u128` in the ledger and UUIDs in the database (`Uuid::from_u128`, big-endian,
//! so the database orders them as numbers). Amounts, balances and timestamps fit in `i64`
//! by the ledger's [`ledger::AMOUNT_MAX`]; `user_data_64` is bit-cast. Reading checks every
//! value back into its Rust range: a value that does not fit is [`StoreError::Corrupt`].

use ledger::{
    Account, AccountBalance, AccountFlags, CreateTransferResult, PendingStatus, Transfer, TransferFlags,
};
use uuid::Uuid;

use crate::{Result, StoreError};

/// The columns of `accounts`, in the order [`AccountRow`] and the inserts use.
pub(crate) const ACCOUNT_COLUMNS: &str = "id, debits_pending, debits_posted, credits_pending, credits_posted, \
     user_data_128, user_data_64, user_data_32, ledger, code, flags, timestamp";

/// The columns of `transfers`, in the order [`TransferRow`] and the inserts use.
pub(crate) const TRANSFER_COLUMNS: &str = "id, debit_account_id, credit_account_id, amount, pending_id, \
     user_data_128, user_data_64, user_data_32, timeout, ledger, code, flags, timestamp";

/// [`TRANSFER_COLUMNS`] qualified with the table alias `t`, for joins.
pub(crate) const TRANSFER_COLUMNS_T: &str = "t.id, t.debit_account_id, t.credit_account_id, t.amount, \
     t.pending_id, t.user_data_128, t.user_data_64, t.user_data_32, t.timeout, t.ledger, t.code, t.flags, \
     t.timestamp";

/// The columns of `account_balances`, in the order [`BalanceRow`] uses.
pub(crate) const BALANCE_COLUMNS: &str =
    "account_id, timestamp, debits_pending, debits_posted, credits_pending, credits_posted";

pub(crate) fn uuid(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

/// An amount, balance or timestamp as stored. The ledger never produces one above
/// `AMOUNT_MAX`, so a larger value here is a programmer error, not an operating one.
pub(crate) fn int(value: u64) -> i64 {
    assert!(value <= ledger::AMOUNT_MAX, "value {value} exceeds the ledger's AMOUNT_MAX");
    value as i64
}

/// `user_data_64` keeps all 64 bits: stored as the same bits in a signed column.
/// A `u64` that is not a ledger amount (a time, a limit) as stored: saturating at
/// `i64::MAX`, which no real value reaches.
pub(crate) fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn bits64(value: u64) -> i64 {
    value as i64
}

/// A stored non-negative integer back into `u64`; a negative one is corruption.
pub(crate) fn unsigned(value: i64, column: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} is negative: {value}")))
}

fn unsigned32(value: i64, column: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} out of range: {value}")))
}

fn unsigned16(value: i32, column: &str) -> Result<u16> {
    u16::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} out of range: {value}")))
}

/// A row of `accounts` as the database returns it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub(crate) id: Uuid,
    pub(crate) debits_pending: i64,
    pub(crate) debits_posted: i64,
    pub(crate) credits_pending: i64,
    pub(crate) credits_posted: i64,
    pub(crate) user_data_128: Uuid,
    pub(crate) user_data_64: i64,
    pub(crate) user_data_32: i64,
    pub(crate) ledger: i64,
    pub(crate) code: i32,
    pub(crate) flags: i32,
    pub(crate) timestamp: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(row: AccountRow) -> Result<Self> {
        let flags = AccountFlags::from_bits(unsigned16(row.flags, "accounts.flags")?)
            .ok_or_else(|| StoreError::Corrupt(format!("accounts.flags has unknown bits: {}", row.flags)))?;
        Ok(Account {
            id: row.id.as_u128(),
            debits_pending: unsigned(row.debits_pending, "accounts.debits_pending")?,
            debits_posted: unsigned(row.debits_posted, "accounts.debits_posted")?,
            credits_pending: unsigned(row.credits_pending, "accounts.credits_pending")?,
            credits_posted: unsigned(row.credits_posted, "accounts.credits_posted")?,
            user_data_128: row.user_data_128.as_u128(),
            user_data_64: row.user_data_64 as u64,
            user_data_32: unsigned32(row.user_data_32, "accounts.user_data_32")?,
            ledger: unsigned32(row.ledger, "accounts.ledger")?,
            code: unsigned16(row.code, "accounts.code")?,
            flags,
            timestamp: unsigned(row.timestamp, "accounts.timestamp")?,
        })
    }
}

/// A row of `transfers`, with its pending status when the query joins it in.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TransferRow {
    pub(crate) id: Uuid,
    pub(crate) debit_account_id: Uuid,
    pub(crate) credit_account_id: Uuid,
    pub(crate) amount: i64,
    pub(crate) pending_id: Uuid,
    pub(crate) user_data_128: Uuid,
    pub(crate) user_data_64: i64,
    pub(crate) user_data_32: i64,
    pub(crate) timeout: i64,
    pub(crate) ledger: i64,
    pub(crate) code: i32,
    pub(crate) flags: i32,
    pub(crate) timestamp: i64,
    /// Present only in queries that join `pending_transfers`.
    #[sqlx(default)]
    pub(crate) status: Option<String>,
}

impl TransferRow {
    /// The transfer and, for a pending transfer, where it stands.
    pub(crate) fn decode(self) -> Result<(Transfer, Option<PendingStatus>)> {
        let status = match &self.status {
            None => None,
            Some(name) => Some(
                PendingStatus::from_name(name)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown pending status {name:?}")))?,
            ),
        };
        let flags =
            TransferFlags::from_bits(unsigned16(self.flags, "transfers.flags")?).ok_or_else(|| {
                StoreError::Corrupt(format!("transfers.flags has unknown bits: {}", self.flags))
            })?;
        let transfer = Transfer {
            id: self.id.as_u128(),
            debit_account_id: self.debit_account_id.as_u128(),
            credit_account_id: self.credit_account_id.as_u128(),
            amount: unsigned(self.amount, "transfers.amount")?,
            pending_id: self.pending_id.as_u128(),
            user_data_128: self.user_data_128.as_u128(),
            user_data_64: self.user_data_64 as u64,
            user_data_32: unsigned32(self.user_data_32, "transfers.user_data_32")?,
            timeout: unsigned32(self.timeout, "transfers.timeout")?,
            ledger: unsigned32(self.ledger, "transfers.ledger")?,
            code: unsigned16(self.code, "transfers.code")?,
            flags,
            timestamp: unsigned(self.timestamp, "transfers.timestamp")?,
        };
        Ok((transfer, status))
    }

    pub(crate) fn transfer(self) -> Result<Transfer> {
        Ok(self.decode()?.0)
    }
}

/// A row of `account_balances`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct BalanceRow {
    account_id: Uuid,
    timestamp: i64,
    debits_pending: i64,
    debits_posted: i64,
    credits_pending: i64,
    credits_posted: i64,
}

impl TryFrom<BalanceRow> for AccountBalance {
    type Error = StoreError;

    fn try_from(row: BalanceRow) -> Result<Self> {
        Ok(AccountBalance {
            account_id: row.account_id.as_u128(),
            timestamp: unsigned(row.timestamp, "account_balances.timestamp")?,
            debits_pending: unsigned(row.debits_pending, "account_balances.debits_pending")?,
            debits_posted: unsigned(row.debits_posted, "account_balances.debits_posted")?,
            credits_pending: unsigned(row.credits_pending, "account_balances.credits_pending")?,
            credits_posted: unsigned(row.credits_posted, "account_balances.credits_posted")?,
        })
    }
}

/// A row of `transfer_failures`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FailureRow {
    pub(crate) id: Uuid,
    pub(crate) result: String,
}

impl FailureRow {
    pub(crate) fn decode(self) -> Result<(u128, CreateTransferResult)> {
        let result = CreateTransferResult::from_name(&self.result)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown transfer result {:?}", self.result)))?;
        Ok((self.id.as_u128(), result))
    }
}

/// One row to upsert into `pending_transfers`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingRow {
    pub id: u128,
    pub status: PendingStatus,
    /// Nanoseconds; `None` when the pending transfer never expires.
    pub expires_at: Option<i64>,
}

/// When a pending transfer expires (nanoseconds), by the ledger's rule: `None` when it
/// has no timeout, or when its expiry would pass `i64::MAX` (the ledger treats that as
/// never, and the column could not hold it).
pub(crate) fn expires_at(transfer: &Transfer) -> Option<i64> {
    if transfer.timeout == 0 {
        return None;
    }
    let timeout_ns = u64::from(transfer.timeout) * ledger::NANOS_PER_SECOND;
    transfer.timestamp.checked_add(timeout_ns).and_then(|at| i64::try_from(at).ok())
}

/// The columns of `ledger_chain`, in the order [`LinkRow`] uses.
pub(crate) const LINK_COLUMNS: &str = "seq, first_timestamp, last_timestamp, transfers, hash";

/// A row of `ledger_chain`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LinkRow {
    pub(crate) seq: i64,
    pub(crate) first_timestamp: i64,
    pub(crate) last_timestamp: i64,
    pub(crate) transfers: i32,
    pub(crate) hash: Vec<u8>,
}

impl LinkRow {
    /// A row of [`LINK_COLUMNS`] read through rusqlite (the embedded writer, backups).
    pub(crate) fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get(0)?,
            first_timestamp: row.get(1)?,
            last_timestamp: row.get(2)?,
            transfers: row.get(3)?,
            hash: row.get(4)?,
        })
    }
}

impl TryFrom<LinkRow> for ledger::chain::Link {
    type Error = StoreError;

    fn try_from(row: LinkRow) -> Result<Self> {
        Ok(ledger::chain::Link {
            seq: unsigned(row.seq, "ledger_chain.seq")?,
            first_timestamp: unsigned(row.first_timestamp, "ledger_chain.first_timestamp")?,
            last_timestamp: unsigned(row.last_timestamp, "ledger_chain.last_timestamp")?,
            transfers: u32::try_from(row.transfers)
                .map_err(|_| StoreError::Corrupt(format!("ledger_chain.transfers is {}", row.transfers)))?,
            hash: row
                .hash
                .try_into()
                .map_err(|_| StoreError::Corrupt("ledger_chain.hash is not 32 bytes".into()))?,
        })
    }
}
