//! The transfer: an immutable movement of an amount from a debit to a credit account.

use crate::flags::TransferFlags;

/// A transfer in TigerBeetle's model. Once written it never changes; the outcome of a
/// pending transfer is kept separately as its [`PendingStatus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Client-chosen, unique, never zero or `u128::MAX`; doubles as the idempotency key.
    pub id: u128,
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    /// Minor units. At most [`crate::AMOUNT_MAX`].
    pub amount: u64,
    /// For `post_pending_transfer` / `void_pending_transfer`: the pending transfer's id.
    pub pending_id: u128,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
    /// Seconds until a pending transfer expires; zero means never.
    pub timeout: u32,
    pub ledger: u32,
    pub code: u16,
    pub flags: TransferFlags,
    /// Nanoseconds; assigned by the ledger, unique and strictly increasing.
    pub timestamp: u64,
}

/// Where a pending transfer stands. It leaves `Pending` at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PendingStatus {
    Pending,
    Posted,
    Voided,
    Expired,
}

impl PendingStatus {
    /// Stable name, for storage and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Posted => "posted",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }

    /// Inverse of [`Self::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Pending, Self::Posted, Self::Voided, Self::Expired].into_iter().find(|s| s.as_str() == name)
    }
}
