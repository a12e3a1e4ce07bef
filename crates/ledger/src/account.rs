//! The account: a balance in one ledger, changed only by transfers.

use crate::flags::AccountFlags;

/// An account in TigerBeetle's model. Balances and `timestamp` belong to the ledger: on
/// create they must be zero, and the ledger sets them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Client-chosen, unique, never zero or `u128::MAX`.
    pub id: u128,
    pub debits_pending: u64,
    pub debits_posted: u64,
    pub credits_pending: u64,
    pub credits_posted: u64,
    /// Opaque to the ledger: for the client's own references.
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
    /// One ledger per currency or asset; only accounts of the same ledger transact.
    pub ledger: u32,
    /// The account's type, chosen by the client (never zero).
    pub code: u16,
    pub flags: AccountFlags,
    /// Nanoseconds; assigned by the ledger, unique and strictly increasing.
    pub timestamp: u64,
}

/// An account's balances just after a transfer touched it (for accounts with `history`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountBalance {
    pub account_id: u128,
    /// The timestamp of the transfer (or expiry) that produced these balances.
    pub timestamp: u64,
    pub debits_pending: u64,
    pub debits_posted: u64,
    pub credits_pending: u64,
    pub credits_posted: u64,
}
