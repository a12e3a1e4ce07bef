//! Account and transfer flags: small bit sets with stable snake_case names.
//!
//! The bit positions follow TigerBeetle's so that a reader of its reference documentation
//! finds the same meaning here. Names are what the HTTP API, the store and the docs use.

use std::fmt;

macro_rules! flag_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $flag:ident = $bit:expr, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name(u16);

        impl $name {
            $($(#[$fdoc])* pub const $flag: Self = Self(1 << $bit);)*

            /// Every flag with its stable name, in bit order.
            pub const NAMED: &'static [(&'static str, Self)] = &[$(($text, Self::$flag)),*];

            /// No flag set.
            pub const fn empty() -> Self {
                Self(0)
            }

            /// The raw bits, for storage.
            pub const fn bits(self) -> u16 {
                self.0
            }

            /// Rebuilds a set from stored bits; `None` when a bit has no meaning here.
            pub const fn from_bits(bits: u16) -> Option<Self> {
                let known = 0 $(| (1 << $bit))*;
                if bits & !known == 0 { Some(Self(bits)) } else { None }
            }

            /// Whether every flag in `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether any flag in `other` is set in `self`.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }

            /// `self` with the flags of `other` added.
            #[must_use]
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// `self` with the flags of `other` removed.
            #[must_use]
            pub const fn difference(self, other: Self) -> Self {
                Self(self.0 & !other.0)
            }

            /// Looks a flag up by its stable name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::NAMED.iter().find(|(text, _)| *text == name).map(|(_, flag)| *flag)
            }

            /// The names of the flags that are set, in bit order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMED.iter().filter(move |(_, flag)| self.contains(*flag)).map(|(text, _)| *text)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.names()).finish()
            }
        }
    };
}

flag_set! {
    /// Flags of an account. Set at creation; only `closed` changes afterwards (through
    /// closing transfers).
    AccountFlags {
        /// This account and the next event in the batch succeed or fail together.
        LINKED = 0, "linked";
        /// Debits (pending + posted) may never exceed posted credits: a wallet.
        DEBITS_MUST_NOT_EXCEED_CREDITS = 1, "debits_must_not_exceed_credits";
        /// Credits (pending + posted) may never exceed posted debits.
        CREDITS_MUST_NOT_EXCEED_DEBITS = 2, "credits_must_not_exceed_debits";
        /// Keep a balance snapshot after every transfer that touches this account.
        HISTORY = 3, "history";
        /// The account accepts no new transfers (voiding the closing transfer reopens it).
        CLOSED = 5, "closed";
    }
}

flag_set! {
    /// Flags of a transfer.
    TransferFlags {
        /// This transfer and the next event in the batch succeed or fail together.
        LINKED = 0, "linked";
        /// Reserve the amount (two-phase): it is posted or voided later, or expires.
        PENDING = 1, "pending";
        /// Post (all or part of) the pending transfer named by `pending_id`.
        POST_PENDING_TRANSFER = 2, "post_pending_transfer";
        /// Void the pending transfer named by `pending_id`.
        VOID_PENDING_TRANSFER = 3, "void_pending_transfer";
        /// Transfer at most `amount`, as much as the debit account's balance allows.
        BALANCING_DEBIT = 4, "balancing_debit";
        /// Transfer at most `amount`, as much as the credit account's balance allows.
        BALANCING_CREDIT = 5, "balancing_credit";
        /// Close the debit account (the transfer must be pending; voiding it reopens).
        CLOSING_DEBIT = 6, "closing_debit";
        /// Close the credit account (the transfer must be pending; voiding it reopens).
        CLOSING_CREDIT = 7, "closing_credit";
    }
}
