//! Protobuf ⇄ ledger types, the mirror of the server's mapping in
//! `crates/coffer/src/grpc/ledger.rs`: ids are the ledger's 128-bit ids as 16 big-endian
//! bytes (an empty field is zero), flags are repeated enums numbered by the ledger's bit
//! position plus one, and a result enum's value is the ledger code's position in its
//! order of precedence plus one. What the server sends is checked as it is decoded: an id
//! of another length, an unknown flag or result, or results that do not match the
//! request are [`Error::Protocol`], never silently mapped to something else.

use ledger::{
    Account, AccountBalance, AccountFlags, CreateAccountResult, CreateTransferResult, Transfer, TransferFlags,
};

use crate::{error::Error, proto};

/// The 16 big-endian bytes of `id`; zero is sent as an empty field (which the server
/// reads as zero), which saves 17 bytes of each unused id of a transfer.
pub(crate) fn encode_id(id: u128) -> Vec<u8> {
    if id == 0 { Vec::new() } else { id.to_be_bytes().to_vec() }
}

/// A 16-byte id, or zero for an empty field.
pub(crate) fn decode_id(bytes: &[u8], what: &str) -> Result<u128, Error> {
    match bytes.len() {
        0 => Ok(0),
        16 => Ok(u128::from_be_bytes(bytes.try_into().expect("16 bytes"))),
        len => Err(Error::Protocol(format!("{what} is {len} bytes, not 16"))),
    }
}

/// The flag enum values of a set of ledger bits, in bit order.
pub(crate) fn encode_flags(bits: u16) -> Vec<i32> {
    (0..16).filter(|bit| bits & (1 << bit) != 0).map(|bit| bit + 1).collect()
}

/// The ledger bits of flag enum values; an unknown value is a protocol error.
fn decode_flags(values: &[i32], known: fn(u16) -> bool, what: &str) -> Result<u16, Error> {
    let mut bits = 0u16;
    for value in values {
        let bit = (1..=16).contains(value).then(|| 1u16 << (value - 1)).filter(|bit| known(*bit));
        bits |= bit.ok_or_else(|| Error::Protocol(format!("{what}: {value} is not a flag")))?;
    }
    Ok(bits)
}

/// The proto value of a ledger code: its position in the order of precedence plus one.
#[cfg(test)]
fn account_result_value(code: CreateAccountResult) -> i32 {
    code as i32 + 1
}

#[cfg(test)]
fn transfer_result_value(code: CreateTransferResult) -> i32 {
    code as i32 + 1
}

/// The ledger code of a proto result value (zero, UNSPECIFIED, is never sent).
pub(crate) fn account_result(value: i32) -> Result<CreateAccountResult, Error> {
    value
        .checked_sub(1)
        .and_then(|position| usize::try_from(position).ok())
        .and_then(|position| CreateAccountResult::ALL.get(position).copied())
        .ok_or_else(|| Error::Protocol(format!("{value} is not a CreateAccountResult")))
}

pub(crate) fn transfer_result(value: i32) -> Result<CreateTransferResult, Error> {
    value
        .checked_sub(1)
        .and_then(|position| usize::try_from(position).ok())
        .and_then(|position| CreateTransferResult::ALL.get(position).copied())
        .ok_or_else(|| Error::Protocol(format!("{value} is not a CreateTransferResult")))
}

/// An account to create. Its balances and timestamp are the ledger's and are not sent.
pub(crate) fn new_account(account: &Account) -> proto::NewAccount {
    proto::NewAccount {
        id: encode_id(account.id),
        ledger: account.ledger,
        code: u32::from(account.code),
        flags: encode_flags(account.flags.bits()),
        user_data_128: encode_id(account.user_data_128),
        user_data_64: account.user_data_64,
        user_data_32: account.user_data_32,
    }
}

/// A transfer to create. Its timestamp is the ledger's and is not sent.
pub(crate) fn new_transfer(transfer: &Transfer) -> proto::NewTransfer {
    proto::NewTransfer {
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
    }
}

fn decode_code(code: u32, what: &str) -> Result<u16, Error> {
    u16::try_from(code).map_err(|_| Error::Protocol(format!("{what}: code {code} is above {}", u16::MAX)))
}

pub(crate) fn account(message: proto::Account) -> Result<Account, Error> {
    let flags = decode_flags(&message.flags, |bit| AccountFlags::from_bits(bit).is_some(), "account flags")?;
    Ok(Account {
        id: decode_id(&message.id, "an account id")?,
        debits_pending: message.debits_pending,
        debits_posted: message.debits_posted,
        credits_pending: message.credits_pending,
        credits_posted: message.credits_posted,
        user_data_128: decode_id(&message.user_data_128, "an account's user_data_128")?,
        user_data_64: message.user_data_64,
        user_data_32: message.user_data_32,
        ledger: message.ledger,
        code: decode_code(message.code, "an account")?,
        flags: AccountFlags::from_bits(flags).expect("checked flag by flag"),
        timestamp: message.timestamp,
    })
}

pub(crate) fn transfer(message: proto::Transfer) -> Result<Transfer, Error> {
    let flags =
        decode_flags(&message.flags, |bit| TransferFlags::from_bits(bit).is_some(), "transfer flags")?;
    Ok(Transfer {
        id: decode_id(&message.id, "a transfer id")?,
        debit_account_id: decode_id(&message.debit_account_id, "a debit account id")?,
        credit_account_id: decode_id(&message.credit_account_id, "a credit account id")?,
        amount: message.amount,
        pending_id: decode_id(&message.pending_id, "a pending id")?,
        user_data_128: decode_id(&message.user_data_128, "a transfer's user_data_128")?,
        user_data_64: message.user_data_64,
        user_data_32: message.user_data_32,
        timeout: message.timeout,
        ledger: message.ledger,
        code: decode_code(message.code, "a transfer")?,
        flags: TransferFlags::from_bits(flags).expect("checked flag by flag"),
        timestamp: message.timestamp,
    })
}

pub(crate) fn balance(account_id: u128, message: proto::AccountBalance) -> AccountBalance {
    AccountBalance {
        account_id,
        timestamp: message.timestamp,
        debits_pending: message.debits_pending,
        debits_posted: message.debits_posted,
        credits_pending: message.credits_pending,
        credits_posted: message.credits_posted,
    }
}

/// Checks that the `index`-th of `len` results is for the `index`-th event (its position
/// and its id, as sent).
fn check_result(position: usize, index: u32, id: &[u8], sent: u128) -> Result<(), Error> {
    if usize::try_from(index).ok() != Some(position) {
        return Err(Error::Protocol(format!("result {position} says it is for event {index}")));
    }
    let id = decode_id(id, "a result's id")?;
    if id != sent {
        return Err(Error::Protocol(format!("result {position} is for id {id:#x}, but {sent:#x} was sent")));
    }
    Ok(())
}

/// The results of a batch of accounts, one per account sent (`ids`), in order.
pub(crate) fn account_results(
    ids: &[u128],
    results: Vec<proto::CreateAccountEventResult>,
) -> Result<Vec<CreateAccountResult>, Error> {
    if results.len() != ids.len() {
        return Err(Error::Protocol(format!("{} results for {} accounts", results.len(), ids.len())));
    }
    results
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(position, (result, sent))| {
            check_result(position, result.index, &result.id, *sent)?;
            account_result(result.result)
        })
        .collect()
}

/// The results of a batch of transfers, one per transfer sent (`ids`), in order.
pub(crate) fn transfer_results(
    ids: &[u128],
    results: Vec<proto::CreateTransferEventResult>,
) -> Result<Vec<CreateTransferResult>, Error> {
    if results.len() != ids.len() {
        return Err(Error::Protocol(format!("{} results for {} transfers", results.len(), ids.len())));
    }
    results
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(position, (result, sent))| {
            check_result(position, result.index, &result.id, *sent)?;
            transfer_result(result.result)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proto value's name without its prefix, in lower case: the REST name.
    fn rest_name(proto_name: &str, prefix: &str) -> String {
        proto_name.strip_prefix(prefix).expect("prefixed").to_ascii_lowercase()
    }

    /// Every transfer code, one by one: its value names the same code in the proto file,
    /// and decodes back to it.
    #[test]
    fn every_transfer_result_maps_to_its_proto_value_and_back() {
        for (position, code) in CreateTransferResult::ALL.iter().enumerate() {
            let value = transfer_result_value(*code);
            assert_eq!(value, position as i32 + 1, "{code}: numbered in order of precedence plus one");
            let named = proto::CreateTransferResult::try_from(value).expect("a proto value");
            assert_eq!(rest_name(named.as_str_name(), "CREATE_TRANSFER_RESULT_"), code.as_str(), "{code}");
            assert_eq!(transfer_result(value).unwrap(), *code, "{code} decodes back");
        }
        // UNSPECIFIED and anything past the last code are refused, not mapped.
        let past = CreateTransferResult::ALL.len() as i32 + 1;
        assert!(proto::CreateTransferResult::try_from(past).is_err(), "no proto value without a ledger code");
        for value in [0, -1, past, i32::MAX, i32::MIN] {
            assert!(matches!(transfer_result(value), Err(Error::Protocol(_))), "{value}");
        }
    }

    #[test]
    fn every_account_result_maps_to_its_proto_value_and_back() {
        for (position, code) in CreateAccountResult::ALL.iter().enumerate() {
            let value = account_result_value(*code);
            assert_eq!(value, position as i32 + 1, "{code}");
            let named = proto::CreateAccountResult::try_from(value).expect("a proto value");
            assert_eq!(rest_name(named.as_str_name(), "CREATE_ACCOUNT_RESULT_"), code.as_str(), "{code}");
            assert_eq!(account_result(value).unwrap(), *code, "{code} decodes back");
        }
        let past = CreateAccountResult::ALL.len() as i32 + 1;
        assert!(proto::CreateAccountResult::try_from(past).is_err());
        for value in [0, past, i32::MIN] {
            assert!(matches!(account_result(value), Err(Error::Protocol(_))), "{value}");
        }
    }

    #[test]
    fn every_flag_maps_to_its_proto_value_and_back() {
        for (name, flag) in TransferFlags::NAMED {
            let values = encode_flags(flag.bits());
            assert_eq!(values.len(), 1, "{name}");
            let named = proto::TransferFlag::try_from(values[0]).expect("a proto value");
            assert_eq!(rest_name(named.as_str_name(), "TRANSFER_FLAG_"), *name);
            let known = |bit| TransferFlags::from_bits(bit).is_some();
            assert_eq!(decode_flags(&values, known, "").unwrap(), flag.bits(), "{name}");
        }
        for (name, flag) in AccountFlags::NAMED {
            let values = encode_flags(flag.bits());
            assert_eq!(values.len(), 1, "{name}");
            let named = proto::AccountFlag::try_from(values[0]).expect("a proto value");
            assert_eq!(rest_name(named.as_str_name(), "ACCOUNT_FLAG_"), *name);
            let known = |bit| AccountFlags::from_bits(bit).is_some();
            assert_eq!(decode_flags(&values, known, "").unwrap(), flag.bits(), "{name}");
        }
        // UNSPECIFIED, the reserved `imported` bit (value 5) and values past 16 are refused.
        let known = |bit| AccountFlags::from_bits(bit).is_some();
        for value in [0, 5, 17, -3] {
            assert!(decode_flags(&[value], known, "").is_err(), "{value}");
        }
        let both = AccountFlags::LINKED.union(AccountFlags::HISTORY);
        assert_eq!(encode_flags(both.bits()), vec![1, 4], "in bit order");
    }

    #[test]
    fn ids_are_sixteen_big_endian_bytes_and_zero_is_empty() {
        let id = 0x0190_b7a2_0000_7000_8000_0000_0000_0001_u128;
        let bytes = encode_id(id);
        assert_eq!(bytes[..4], [0x01, 0x90, 0xb7, 0xa2], "big-endian: the UUID's bytes");
        assert_eq!(decode_id(&bytes, "").unwrap(), id);
        assert_eq!(encode_id(0), Vec::<u8>::new());
        assert_eq!(decode_id(&[], "").unwrap(), 0);
        assert_eq!(decode_id(&encode_id(u128::MAX), "").unwrap(), u128::MAX);
        assert!(matches!(decode_id(&[1; 15], "x"), Err(Error::Protocol(_))));
    }

    #[test]
    fn a_transfer_survives_the_round_trip() {
        let sent = Transfer {
            id: 7,
            debit_account_id: 1 << 100,
            credit_account_id: 3,
            amount: ledger::AMOUNT_MAX,
            pending_id: 5,
            user_data_128: u128::MAX - 1,
            user_data_64: 64,
            user_data_32: 32,
            timeout: 60,
            ledger: 840,
            code: u16::MAX,
            flags: TransferFlags::PENDING.union(TransferFlags::LINKED),
            timestamp: 0,
        };
        let message = new_transfer(&sent);
        let stored = proto::Transfer {
            id: message.id,
            debit_account_id: message.debit_account_id,
            credit_account_id: message.credit_account_id,
            amount: message.amount,
            pending_id: message.pending_id,
            timeout: message.timeout,
            ledger: message.ledger,
            code: message.code,
            flags: message.flags,
            user_data_128: message.user_data_128,
            user_data_64: message.user_data_64,
            user_data_32: message.user_data_32,
            timestamp: 42,
        };
        assert_eq!(transfer(stored).unwrap(), Transfer { timestamp: 42, ..sent });
    }

    #[test]
    fn results_must_match_the_events_sent() {
        let result = |index, id: u128, value| proto::CreateTransferEventResult {
            index,
            id: id.to_be_bytes().to_vec(),
            result: value,
        };
        let ok = transfer_result_value(CreateTransferResult::Ok);
        let exists = transfer_result_value(CreateTransferResult::Exists);
        assert_eq!(
            transfer_results(&[10, 11], vec![result(0, 10, ok), result(1, 11, exists)]).unwrap(),
            vec![CreateTransferResult::Ok, CreateTransferResult::Exists]
        );
        for wrong in [
            vec![result(0, 10, ok)],
            vec![result(1, 10, ok), result(0, 11, ok)],
            vec![result(0, 10, ok), result(1, 12, ok)],
            vec![result(0, 10, ok), result(1, 11, 0)],
        ] {
            assert!(matches!(transfer_results(&[10, 11], wrong), Err(Error::Protocol(_))));
        }
    }
}
