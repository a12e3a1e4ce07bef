//! The wallet product: customers' wallets (ledger accounts with an owner, a currency and
//! a type), money movement between them, and their operation history.
//!
//! Every movement goes through the commit pipeline, with a note saying what it is, so
//! history and ledger can never disagree. Ledger ids are derived from the owner and the
//! request's idempotency key ([`derive_id`]): a retry, even one whose idempotency record
//! was lost, names the same ledger transfer and cannot move money twice.

pub mod history;
pub mod money;
pub mod monitors;
pub mod service;

pub use money::Currency;
pub use service::{
    Answer, Balance, Recipient, RenderAnswer, TransferRequest, TransferView, WalletError, WalletFacts,
    Wallets,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a wallet is for, as the API and the events name it (`store::WalletType` is the
/// same set as stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalletKind {
    Wallet,
    Savings,
    Business,
    Tax,
    Escrow,
    /// May go below zero down to its credit limit.
    CreditCard,
}

impl From<store::WalletType> for WalletKind {
    fn from(kind: store::WalletType) -> Self {
        use store::WalletType as T;
        match kind {
            T::Wallet => Self::Wallet,
            T::Savings => Self::Savings,
            T::Business => Self::Business,
            T::Tax => Self::Tax,
            T::Escrow => Self::Escrow,
            T::CreditCard => Self::CreditCard,
        }
    }
}

impl From<WalletKind> for store::WalletType {
    fn from(kind: WalletKind) -> Self {
        match kind {
            WalletKind::Wallet => Self::Wallet,
            WalletKind::Savings => Self::Savings,
            WalletKind::Business => Self::Business,
            WalletKind::Tax => Self::Tax,
            WalletKind::Escrow => Self::Escrow,
            WalletKind::CreditCard => Self::CreditCard,
        }
    }
}

/// A 128-bit id derived from an owner, a purpose and a client key: the same inputs give
/// the same id on every node and after every restart. Never zero.
pub fn derive_id(owner: Uuid, purpose: &str, key: &str) -> u128 {
    let mut hash = Sha256::new();
    hash.update(b"coffer:");
    hash.update(purpose.as_bytes());
    hash.update(b":");
    hash.update(owner.as_bytes());
    hash.update(b":");
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Zero and u128::MAX are reserved by the ledger; a digest hitting them is
    // astronomically unlikely, but the fix costs nothing.
    match u128::from_be_bytes(bytes) {
        0 | u128::MAX => 1,
        id => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_separate_owners_and_purposes() {
        let owner = Uuid::from_u128(7);
        assert_eq!(derive_id(owner, "transfer", "k"), derive_id(owner, "transfer", "k"));
        assert_ne!(derive_id(owner, "transfer", "k"), derive_id(Uuid::from_u128(8), "transfer", "k"));
        assert_ne!(derive_id(owner, "transfer", "k"), derive_id(owner, "wallet", "k"));
        assert_ne!(derive_id(owner, "transfer", "k"), derive_id(owner, "transfer", "k2"));
    }
}
