//! Tamper evidence: every committed batch that creates transfers gets a link, a SHA-256
//! hash over the previous link's hash and the batch's transfers (every field, in commit
//! order), so that changing, adding or removing any stored transfer breaks every link
//! from its batch on. An operator who keeps the latest hash somewhere else (see the
//! ledger API's chain head) can later prove the history has not been rewritten.
//!
//! The bytes hashed are fixed here and versioned by [`DOMAIN`]: a link's hash is
//! SHA-256(`DOMAIN` ‖ previous hash ‖ each transfer's [`canonical`] bytes).

use sha2::{Digest, Sha256};

use crate::Transfer;

/// Written first into every link's hash: names the format, so another never collides.
pub const DOMAIN: &[u8] = b"coffer.ledger.chain.v1";

/// The "previous hash" of the first link.
pub const GENESIS: [u8; 32] = [0; 32];

/// Bytes of one transfer in a link's hash.
pub const CANONICAL_LEN: usize = 120;

/// One batch's link, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// 1 for the first link, then one more per link.
    pub seq: u64,
    /// The timestamps of the batch's first and last transfer: its transfers are exactly
    /// those stamped between them (the ledger stamps a batch's transfers consecutively).
    pub first_timestamp: u64,
    pub last_timestamp: u64,
    pub transfers: u32,
    pub hash: [u8; 32],
}

/// A transfer's fields, big-endian, in declaration order.
pub fn canonical(t: &Transfer) -> [u8; CANONICAL_LEN] {
    let mut out = [0u8; CANONICAL_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&t.id.to_be_bytes());
    put(&t.debit_account_id.to_be_bytes());
    put(&t.credit_account_id.to_be_bytes());
    put(&t.amount.to_be_bytes());
    put(&t.pending_id.to_be_bytes());
    put(&t.user_data_128.to_be_bytes());
    put(&t.user_data_64.to_be_bytes());
    put(&t.user_data_32.to_be_bytes());
    put(&t.timeout.to_be_bytes());
    put(&t.ledger.to_be_bytes());
    put(&t.code.to_be_bytes());
    put(&t.flags.bits().to_be_bytes());
    put(&t.timestamp.to_be_bytes());
    assert_eq!(at, CANONICAL_LEN);
    out
}

/// A link being computed, one transfer at a time.
#[derive(Clone, Debug)]
pub struct Chainer {
    hasher: Sha256,
    transfers: u32,
}

impl Chainer {
    /// Starts the link that follows the one whose hash is `previous`.
    pub fn after(previous: &[u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(previous);
        Self { hasher, transfers: 0 }
    }

    pub fn push(&mut self, transfer: &Transfer) {
        self.hasher.update(canonical(transfer));
        self.transfers += 1;
    }

    /// Transfers pushed so far.
    pub fn transfers(&self) -> u32 {
        self.transfers
    }

    pub fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

/// The link of a batch that created `transfers` (in commit order), after the link
/// `previous` (`None`: this is the first).
pub fn link(previous: Option<&Link>, transfers: &[Transfer]) -> Link {
    let (first, last) = match (transfers.first(), transfers.last()) {
        (Some(first), Some(last)) => (first.timestamp, last.timestamp),
        _ => panic!("a link covers at least one transfer"),
    };
    let mut chainer = Chainer::after(previous.map_or(&GENESIS, |link| &link.hash));
    for transfer in transfers {
        chainer.push(transfer);
    }
    Link {
        seq: previous.map_or(1, |link| link.seq + 1),
        first_timestamp: first,
        last_timestamp: last,
        transfers: u32::try_from(transfers.len()).expect("a batch holds fewer than 2^32 transfers"),
        hash: chainer.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransferFlags;

    fn transfer(id: u128, timestamp: u64) -> Transfer {
        Transfer {
            id,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: 10,
            ledger: 1,
            code: 1,
            flags: TransferFlags::empty(),
            timestamp,
            ..Transfer::default()
        }
    }

    #[test]
    fn every_field_and_the_previous_link_change_the_hash() {
        let batch = [transfer(1, 10), transfer(2, 11)];
        let first = link(None, &batch);
        assert_eq!((first.seq, first.first_timestamp, first.last_timestamp, first.transfers), (1, 10, 11, 2));
        assert_eq!(link(None, &batch), first, "deterministic");
        let edits: [fn(&mut Transfer); 13] = [
            |t| t.id += 1,
            |t| t.debit_account_id += 1,
            |t| t.credit_account_id += 1,
            |t| t.amount += 1,
            |t| t.pending_id += 1,
            |t| t.user_data_128 += 1,
            |t| t.user_data_64 += 1,
            |t| t.user_data_32 += 1,
            |t| t.timeout += 1,
            |t| t.ledger += 1,
            |t| t.code += 1,
            |t| t.flags = TransferFlags::PENDING,
            |t| t.timestamp += 1,
        ];
        for edit in edits {
            let mut changed = batch;
            edit(&mut changed[1]);
            assert_ne!(link(None, &changed).hash, first.hash);
        }
        let second = link(Some(&first), &[transfer(3, 12)]);
        assert_eq!(second.seq, 2);
        let forged = Link { hash: [1; 32], ..first };
        assert_ne!(link(Some(&forged), &[transfer(3, 12)]).hash, second.hash);
        // Order matters too.
        assert_ne!(link(None, &[batch[1], batch[0]]).hash, first.hash);
    }
}
