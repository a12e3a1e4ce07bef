//! The audit replays a history the state machine made and finds it clean; each check
//! then finds exactly the one thing broken by hand in a copy of that history.

use ledger::audit::{Audit, Check, Report, StoredTransfer};
use ledger::chain::{self, Link};
use ledger::{
    Account, AccountBalance, AccountFlags, CreateAccountResult, CreateTransferResult, PendingStatus, State,
    Transfer, TransferFlags, create_accounts, create_transfers, expire_pending_transfers,
};

const NOW: u64 = 1_000_000_000_000;

/// What a store would hold: accounts, transfers in order with their status, snapshots.
#[derive(Clone)]
struct Stored {
    accounts: Vec<Account>,
    transfers: Vec<StoredTransfer>,
    /// One per batch that created transfers.
    links: Vec<Link>,
}

fn account(id: u128, flags: AccountFlags) -> Account {
    Account { id, ledger: 1, code: 1, flags, ..Account::default() }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u64, flags: TransferFlags) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: 1,
        code: 1,
        flags,
        ..Transfer::default()
    }
}

/// A history with every kind of transfer: plain, pending then posted (partly), pending
/// then voided, pending then expired, pending still open; a wallet-like account with
/// `debits_must_not_exceed_credits` and `history`.
fn history() -> Stored {
    let mut state = State::new(0);
    let wallet = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::HISTORY);
    let accounts = [account(1, AccountFlags::empty()), account(2, wallet), account(3, wallet)];
    assert!(create_accounts(&mut state, NOW, &accounts).iter().all(|r| *r == CreateAccountResult::Ok));
    let pending = TransferFlags::PENDING;
    let batches = [
        vec![transfer(10, 1, 2, 1_000, TransferFlags::empty())],
        vec![transfer(11, 2, 3, 300, TransferFlags::empty()), transfer(12, 2, 3, 200, pending)],
        vec![
            Transfer {
                id: 13,
                pending_id: 12,
                amount: 150,
                flags: TransferFlags::POST_PENDING_TRANSFER,
                ..Transfer::default()
            },
            transfer(14, 3, 1, 100, pending),
            Transfer {
                id: 15,
                pending_id: 14,
                flags: TransferFlags::VOID_PENDING_TRANSFER,
                ..Transfer::default()
            },
            Transfer { timeout: 1, ..transfer(16, 2, 1, 50, pending) },
            transfer(17, 3, 2, 25, pending),
        ],
    ];
    let mut balances = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    let mut commit = |state: &mut State| {
        let changes = state.take_changes();
        balances.extend(changes.balances);
        if !changes.transfers_created.is_empty() {
            links.push(chain::link(links.last(), &changes.transfers_created));
        }
    };
    let mut now = NOW;
    for batch in batches {
        now += 1_000;
        let results = create_transfers(&mut state, now, &batch);
        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok), "{results:?}");
        commit(&mut state);
    }
    assert_eq!(expire_pending_transfers(&mut state, now + 2 * ledger::NANOS_PER_SECOND, &[16]), 1);
    commit(&mut state);
    // One more transfer after the expiry, so the replay has to release it in between.
    let results = create_transfers(
        &mut state,
        now + 3 * ledger::NANOS_PER_SECOND,
        &[transfer(18, 1, 2, 5, TransferFlags::empty())],
    );
    assert_eq!(results, [CreateTransferResult::Ok]);
    commit(&mut state);
    let snapshot = |account: u128, timestamp: u64| -> Option<(u64, u64)> {
        balances
            .iter()
            .find(|b: &&AccountBalance| b.account_id == account && b.timestamp == timestamp)
            .map(|b| (b.debits_posted, b.credits_posted))
    };
    let mut transfers: Vec<Transfer> = state.transfers().copied().collect();
    transfers.sort_by_key(|t| t.timestamp);
    Stored {
        accounts: state.accounts().copied().collect(),
        transfers: transfers
            .into_iter()
            .map(|t| StoredTransfer {
                transfer: t,
                status: state.pending_status(t.id),
                debit_posted_after: snapshot(t.debit_account_id, t.timestamp),
                credit_posted_after: snapshot(t.credit_account_id, t.timestamp),
            })
            .collect(),
        links,
    }
}

fn audit(stored: &Stored) -> Report {
    let mut audit = Audit::new();
    for account in &stored.accounts {
        audit.account(account);
    }
    for link in &stored.links {
        audit.link(link);
    }
    for transfer in &stored.transfers {
        audit.transfer(transfer);
    }
    audit.finish()
}

/// The checks that found something, once each.
fn checks(report: &Report) -> Vec<Check> {
    report.counts.keys().copied().collect()
}

fn edit_account(stored: &mut Stored, id: u128, change: impl FnOnce(&mut Account)) {
    change(stored.accounts.iter_mut().find(|a| a.id == id).unwrap());
}

fn edit_transfer(stored: &mut Stored, id: u128, change: impl FnOnce(&mut StoredTransfer)) {
    change(stored.transfers.iter_mut().find(|t| t.transfer.id == id).unwrap());
}

#[test]
fn a_history_the_ledger_made_is_clean() {
    let stored = history();
    let report = audit(&stored);
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.accounts, report.transfers, report.links, report.unchained), (3, 9, 4, 0));
    // The snapshots were there to compare (the wallets keep history).
    assert!(stored.transfers.iter().filter(|t| t.debit_posted_after.is_some()).count() >= 4);
}

#[test]
fn an_edited_balance_on_both_sides_still_breaks_the_sum_of_transfers() {
    let mut stored = history();
    // Both sides moved by the same amount: the ledger still balances, the accounts do not.
    edit_account(&mut stored, 1, |a| a.debits_posted += 7);
    edit_account(&mut stored, 2, |a| a.credits_posted += 7);
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::AccountBalances]);
    assert_eq!(report.counts[&Check::AccountBalances], 2);
}

#[test]
fn an_edited_balance_on_one_side_unbalances_the_ledger() {
    let mut stored = history();
    edit_account(&mut stored, 3, |a| a.credits_posted += 1);
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::LedgerBalanced, Check::AccountBalances]);
    assert_eq!(report.findings.iter().find(|f| f.check == Check::LedgerBalanced).unwrap().subject, 1);
}

#[test]
fn an_edited_amount_shows_in_the_balances_and_the_snapshots() {
    let mut stored = history();
    // A forger who also drops the chain: the other checks still find it.
    stored.links.clear();
    edit_transfer(&mut stored, 11, |t| t.transfer.amount += 1);
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::AccountBalances, Check::BalanceHistory]);
    assert!(report.findings.iter().any(|f| f.check == Check::BalanceHistory && f.subject == 2));
}

#[test]
fn an_overdraft_written_into_the_history_breaks_the_limit() {
    let mut stored = history();
    // A forger who also drops the chain: the other checks still find it.
    stored.links.clear();
    // Account 3 holds nothing yet when a 1,000 transfer out of it is written after the first,
    // with balances and snapshots made to agree, still overdraws it at that point.
    let first = stored.transfers[0].transfer;
    let overdraft =
        Transfer { timestamp: first.timestamp + 1, ..transfer(99, 3, 1, 1_000, TransferFlags::empty()) };
    stored.transfers.insert(
        1,
        StoredTransfer {
            transfer: overdraft,
            status: None,
            debit_posted_after: None,
            credit_posted_after: None,
        },
    );
    edit_account(&mut stored, 3, |a| a.debits_posted += 1_000);
    edit_account(&mut stored, 1, |a| a.credits_posted += 1_000);
    // Later snapshots of account 3 would disagree too; drop them to isolate the limit.
    for t in &mut stored.transfers {
        if t.transfer.debit_account_id == 3 {
            t.debit_posted_after = None;
        }
        if t.transfer.credit_account_id == 3 {
            t.credit_posted_after = None;
        }
    }
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::AccountLimits]);
    assert!(report.findings.iter().all(|f| f.subject == 3));
}

#[test]
fn a_pending_transfer_resolved_twice_is_found() {
    let mut stored = history();
    // A forger who also drops the chain: the other checks still find it.
    stored.links.clear();
    // A second post of 12 (its balances made to agree), after the first.
    let last = stored.transfers.last().unwrap().transfer;
    let again = Transfer {
        id: 98,
        pending_id: 12,
        amount: 10,
        timestamp: last.timestamp + 1,
        flags: TransferFlags::POST_PENDING_TRANSFER,
        ..transfer(98, 2, 3, 10, TransferFlags::empty())
    };
    stored.transfers.push(StoredTransfer {
        transfer: again,
        status: None,
        debit_posted_after: None,
        credit_posted_after: None,
    });
    edit_account(&mut stored, 2, |a| a.debits_posted += 10);
    edit_account(&mut stored, 3, |a| a.credits_posted += 10);
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::PendingResolution]);
    assert_eq!(report.findings[0].subject, 12);
}

#[test]
fn a_status_that_disagrees_with_the_history_is_found() {
    let mut stored = history();
    // 17 is still pending; a status saying it was posted has no transfer behind it.
    edit_transfer(&mut stored, 17, |t| t.status = Some(PendingStatus::Posted));
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::PendingResolution]);
    assert_eq!(report.findings[0].subject, 17);
}

#[test]
fn a_transfer_on_a_missing_account_is_found() {
    let mut stored = history();
    stored.accounts.retain(|a| a.id != 1);
    let report = audit(&stored);
    assert!(checks(&report).contains(&Check::TransferAccounts));
    assert!(report.findings.iter().any(|f| f.check == Check::TransferAccounts && f.subject == 10));
}

#[test]
fn an_edited_transfer_breaks_exactly_its_batch_link() {
    let mut stored = history();
    // Transfer 11 is in the second batch; making its amount agree everywhere else (the
    // balances too) leaves only the chain to notice.
    stored.links.iter().for_each(|link| assert!(link.transfers > 0));
    edit_transfer(&mut stored, 11, |t| t.transfer.amount += 1);
    edit_account(&mut stored, 2, |a| a.debits_posted += 1);
    edit_account(&mut stored, 3, |a| a.credits_posted += 1);
    for t in &mut stored.transfers {
        t.debit_posted_after = None;
        t.credit_posted_after = None;
    }
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::HashChain]);
    assert_eq!(report.counts[&Check::HashChain], 1);
    assert_eq!(report.findings[0].subject, 2, "{:?}", report.findings);
}

#[test]
fn a_rewritten_link_breaks_the_next_one_and_a_dropped_transfer_its_own() {
    let mut stored = history();
    stored.links[0].hash[0] ^= 1;
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::HashChain]);
    let subjects: Vec<u128> = report.findings.iter().map(|f| f.subject).collect();
    assert_eq!(subjects, [1, 2], "the forged link, and the one that names the real hash");

    let mut stored = history();
    let last = stored.transfers.pop().unwrap().transfer;
    edit_account(&mut stored, last.debit_account_id, |a| a.debits_posted -= last.amount);
    edit_account(&mut stored, last.credit_account_id, |a| a.credits_posted -= last.amount);
    let report = audit(&stored);
    assert_eq!(checks(&report), [Check::HashChain]);
    assert_eq!(report.findings[0].subject, 4);
}

#[test]
fn transfers_from_before_the_chain_are_counted_not_reported() {
    let mut stored = history();
    // As if the first two batches were stored before the chain existed: the chain then
    // starts (at link 1) with the third.
    let batches: Vec<Vec<Transfer>> = stored
        .links
        .drain(..)
        .skip(2)
        .map(|link| {
            stored
                .transfers
                .iter()
                .map(|t| t.transfer)
                .filter(|t| (link.first_timestamp..=link.last_timestamp).contains(&t.timestamp))
                .collect()
        })
        .collect();
    for batch in batches {
        let link = chain::link(stored.links.last(), &batch);
        stored.links.push(link);
    }
    let report = audit(&stored);
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.unchained, report.links), (3, 2));
}
