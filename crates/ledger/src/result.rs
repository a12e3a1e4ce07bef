//! Per-event result codes, with their stable snake_case names.
//!
//! The variants are declared in their order of precedence: when an event is wrong in
//! several ways, the first applicable code in this order is the one returned. The order
//! follows TigerBeetle's reference documentation for `create_accounts` and
//! `create_transfers`; the handful of places where Coffer differs are documented on the
//! variant.

macro_rules! result_codes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every code, in order of precedence.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The stable name used by the API and the store.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// Inverse of [`Self::as_str`].
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|code| code.as_str() == name)
            }

            /// Whether the event was applied (`ok`) or already had been (`exists`).
            pub const fn is_success(self) -> bool {
                matches!(self, Self::Ok | Self::Exists)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

result_codes! {
    /// The outcome of one event of `create_accounts`.
    CreateAccountResult {
        Ok = "ok",
        LinkedEventFailed = "linked_event_failed",
        LinkedEventChainOpen = "linked_event_chain_open",
        TimestampMustBeZero = "timestamp_must_be_zero",
        /// Kept for TigerBeetle's numbering and the stable names, but never returned:
        /// Coffer's flag types can only hold known bits (`from_bits` rejects the rest),
        /// so an event with a reserved flag cannot be built.
        ReservedFlag = "reserved_flag",
        IdMustNotBeZero = "id_must_not_be_zero",
        IdMustNotBeIntMax = "id_must_not_be_int_max",
        ExistsWithDifferentFlags = "exists_with_different_flags",
        ExistsWithDifferentUserData128 = "exists_with_different_user_data_128",
        ExistsWithDifferentUserData64 = "exists_with_different_user_data_64",
        ExistsWithDifferentUserData32 = "exists_with_different_user_data_32",
        ExistsWithDifferentLedger = "exists_with_different_ledger",
        ExistsWithDifferentCode = "exists_with_different_code",
        Exists = "exists",
        FlagsAreMutuallyExclusive = "flags_are_mutually_exclusive",
        DebitsPendingMustBeZero = "debits_pending_must_be_zero",
        DebitsPostedMustBeZero = "debits_posted_must_be_zero",
        CreditsPendingMustBeZero = "credits_pending_must_be_zero",
        CreditsPostedMustBeZero = "credits_posted_must_be_zero",
        LedgerMustNotBeZero = "ledger_must_not_be_zero",
        CodeMustNotBeZero = "code_must_not_be_zero",
    }
}

result_codes! {
    /// The outcome of one event of `create_transfers`.
    CreateTransferResult {
        Ok = "ok",
        LinkedEventFailed = "linked_event_failed",
        LinkedEventChainOpen = "linked_event_chain_open",
        TimestampMustBeZero = "timestamp_must_be_zero",
        /// Kept for TigerBeetle's numbering and the stable names, but never returned:
        /// Coffer's flag types can only hold known bits (`from_bits` rejects the rest),
        /// so an event with a reserved flag cannot be built.
        ReservedFlag = "reserved_flag",
        IdMustNotBeZero = "id_must_not_be_zero",
        IdMustNotBeIntMax = "id_must_not_be_int_max",
        ExistsWithDifferentFlags = "exists_with_different_flags",
        ExistsWithDifferentPendingId = "exists_with_different_pending_id",
        ExistsWithDifferentTimeout = "exists_with_different_timeout",
        ExistsWithDifferentDebitAccountId = "exists_with_different_debit_account_id",
        ExistsWithDifferentCreditAccountId = "exists_with_different_credit_account_id",
        ExistsWithDifferentAmount = "exists_with_different_amount",
        ExistsWithDifferentUserData128 = "exists_with_different_user_data_128",
        ExistsWithDifferentUserData64 = "exists_with_different_user_data_64",
        ExistsWithDifferentUserData32 = "exists_with_different_user_data_32",
        ExistsWithDifferentLedger = "exists_with_different_ledger",
        ExistsWithDifferentCode = "exists_with_different_code",
        Exists = "exists",
        IdAlreadyFailed = "id_already_failed",
        FlagsAreMutuallyExclusive = "flags_are_mutually_exclusive",
        DebitAccountIdMustNotBeZero = "debit_account_id_must_not_be_zero",
        DebitAccountIdMustNotBeIntMax = "debit_account_id_must_not_be_int_max",
        CreditAccountIdMustNotBeZero = "credit_account_id_must_not_be_zero",
        CreditAccountIdMustNotBeIntMax = "credit_account_id_must_not_be_int_max",
        AccountsMustBeDifferent = "accounts_must_be_different",
        PendingIdMustBeZero = "pending_id_must_be_zero",
        PendingIdMustNotBeZero = "pending_id_must_not_be_zero",
        PendingIdMustNotBeIntMax = "pending_id_must_not_be_int_max",
        PendingIdMustBeDifferent = "pending_id_must_be_different",
        TimeoutReservedForPendingTransfer = "timeout_reserved_for_pending_transfer",
        ClosingTransferMustBePending = "closing_transfer_must_be_pending",
        /// Coffer differs from TigerBeetle 0.16 here: a plain transfer of zero is refused,
        /// because in a wallet it is always a client mistake. Pending resolutions, balancing
        /// and closing transfers keep TigerBeetle's rules for zero.
        AmountMustNotBeZero = "amount_must_not_be_zero",
        LedgerMustNotBeZero = "ledger_must_not_be_zero",
        CodeMustNotBeZero = "code_must_not_be_zero",
        DebitAccountNotFound = "debit_account_not_found",
        CreditAccountNotFound = "credit_account_not_found",
        AccountsMustHaveTheSameLedger = "accounts_must_have_the_same_ledger",
        TransferMustHaveTheSameLedgerAsAccounts = "transfer_must_have_the_same_ledger_as_accounts",
        PendingTransferNotFound = "pending_transfer_not_found",
        PendingTransferNotPending = "pending_transfer_not_pending",
        PendingTransferHasDifferentDebitAccountId = "pending_transfer_has_different_debit_account_id",
        PendingTransferHasDifferentCreditAccountId = "pending_transfer_has_different_credit_account_id",
        PendingTransferHasDifferentLedger = "pending_transfer_has_different_ledger",
        PendingTransferHasDifferentCode = "pending_transfer_has_different_code",
        ExceedsPendingTransferAmount = "exceeds_pending_transfer_amount",
        PendingTransferHasDifferentAmount = "pending_transfer_has_different_amount",
        PendingTransferAlreadyPosted = "pending_transfer_already_posted",
        PendingTransferAlreadyVoided = "pending_transfer_already_voided",
        PendingTransferExpired = "pending_transfer_expired",
        DebitAccountAlreadyClosed = "debit_account_already_closed",
        CreditAccountAlreadyClosed = "credit_account_already_closed",
        OverflowsDebitsPending = "overflows_debits_pending",
        OverflowsCreditsPending = "overflows_credits_pending",
        OverflowsDebitsPosted = "overflows_debits_posted",
        OverflowsCreditsPosted = "overflows_credits_posted",
        OverflowsDebits = "overflows_debits",
        OverflowsCredits = "overflows_credits",
        OverflowsTimeout = "overflows_timeout",
        ExceedsCredits = "exceeds_credits",
        ExceedsDebits = "exceeds_debits",
    }
}

impl CreateTransferResult {
    /// Whether this failure depends on the ledger's state or clock at the moment the event
    /// was applied, so that the same event could succeed later. Such failures are
    /// remembered under the transfer's id and a retry gets `id_already_failed`: each id
    /// is one attempt, and a retry can never produce a different outcome from the first.
    ///
    /// This is TigerBeetle's set (accounts or pending transfer not found, accounts
    /// closed, the `exceeds_*` limits) plus the `overflows_*` results, which in Coffer
    /// are reachable balances (63 bits, not 128) and depend on the accounts' state just
    /// as `exceeds_*` do. Every other failure is a property of the event itself (or of
    /// immutable objects it names) and would fail the same way again anyway.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Self::DebitAccountNotFound
                | Self::CreditAccountNotFound
                | Self::PendingTransferNotFound
                | Self::DebitAccountAlreadyClosed
                | Self::CreditAccountAlreadyClosed
                | Self::OverflowsDebitsPending
                | Self::OverflowsCreditsPending
                | Self::OverflowsDebitsPosted
                | Self::OverflowsCreditsPosted
                | Self::OverflowsDebits
                | Self::OverflowsCredits
                | Self::OverflowsTimeout
                | Self::ExceedsCredits
                | Self::ExceedsDebits
        )
    }
}
