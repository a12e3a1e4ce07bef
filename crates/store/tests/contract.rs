//! The storage contract: every test is written once, generic over the backend, and runs
//! against SQLite always (a fresh file in a temporary directory) and against PostgreSQL
//! when `COFFER_TEST_DATABASE_URL` is set (a fresh database per test, dropped afterwards).
//! If the variable is set but the server cannot be reached, the PostgreSQL tests fail.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ledger::{
    Account, AccountFlags, CreateAccountResult as AR, CreateTransferResult as TR, PendingStatus, State,
    Transfer, TransferFlags,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store::{
    AccountFilter, AppliedEvent, Backend, Begin, Command, Effects, EventDraft, IdempotencyKey, KeyedResponse,
    NewEvent, NewNotification, NewWallet, NoteKind, Noted, OperationFilter, OperationRow, Outcome, Payload,
    ResponseDraft, Store, StoreError, StoreOptions, StoredResponse, TransferNote, WalletType,
};
use uuid::Uuid;

mod common;

use common::TestDb;

contract!(
    opens_and_pings,
    accounts_round_trip,
    transfers_round_trip,
    exists_across_commits,
    id_already_failed_across_commits,
    two_phase_post_void_and_partial_post,
    expiry_by_worker_and_by_commit,
    failed_linked_chain_writes_nothing,
    several_commands_in_one_commit,
    account_transfers_filters_limits_and_order,
    balance_history,
    reopened_store_sees_everything,
    a_second_store_changes_what_the_first_remembers,
    concurrent_commits_conserve_money,
    matches_the_pure_ledger,
    notes_are_written_only_with_created_transfers,
    wallets_and_default_wallet,
    idempotency_keys_claim_replay_mismatch_and_lease,
    answers_are_remembered_in_the_batch_that_moves_the_money,
    payments_are_written_by_the_batch_that_decides_them,
    operations_page_and_filter,
    events_commit_with_their_change_or_not_at_all,
    outbox_relay_reads_and_consumers_apply_once,
    one_relay_holds_the_lease_until_it_expires_or_is_released,
    a_projection_batch_equals_its_events_one_by_one,
    a_transfer_is_reconciled_at_most_once,
);

const LEDGER: u32 = 1;
const CODE: u16 = 10;

fn account(id: u128, flags: AccountFlags) -> Account {
    Account { id, ledger: LEDGER, code: CODE, flags, ..Account::default() }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u64) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: LEDGER,
        code: CODE,
        ..Transfer::default()
    }
}

async fn create_accounts(store: &Store, accounts: Vec<Account>) -> Vec<AR> {
    match store.commit(&[Command::CreateAccounts(accounts)]).await.expect("commit").pop() {
        Some(Outcome::Accounts(results)) => results,
        other => panic!("expected account results, got {other:?}"),
    }
}

async fn create_transfers(store: &Store, transfers: Vec<Transfer>) -> Vec<TR> {
    match store.commit(&[Command::CreateTransfers(transfers)]).await.expect("commit").pop() {
        Some(Outcome::Transfers(results)) => results,
        other => panic!("expected transfer results, got {other:?}"),
    }
}

async fn must_account(store: &Store, id: u128) -> Account {
    store.account(id).await.expect("read").unwrap_or_else(|| panic!("account {id} is missing"))
}

/// (debits_pending, debits_posted, credits_pending, credits_posted)
async fn balances(store: &Store, id: u128) -> (u64, u64, u64, u64) {
    let a = must_account(store, id).await;
    (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
}

/// A wallet (id 1), funded with `funds` from a source account (id 2) that may go negative.
async fn funded_wallet(store: &Store, funds: u64) {
    let results = create_accounts(
        store,
        vec![account(1, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS), account(2, AccountFlags::empty())],
    )
    .await;
    assert_eq!(results, [AR::Ok, AR::Ok]);
    assert_eq!(create_transfers(store, vec![transfer(9_000, 2, 1, funds)]).await, [TR::Ok]);
}

fn filter(account_id: u128) -> AccountFilter {
    AccountFilter {
        account_id,
        timestamp_min: 0,
        timestamp_max: 0,
        limit: 1_000,
        debits: true,
        credits: true,
        reversed: false,
    }
}

async fn opens_and_pings(db: &TestDb) {
    db.store.ping().await.expect("ping");
    let expected = if db.postgres.is_some() { Backend::Postgres } else { Backend::Sqlite };
    assert_eq!(db.store.backend(), expected);
    // Migrating again is a no-op.
    db.store.migrate().await.expect("migrate twice");
    assert!(matches!(
        Store::open("mysql://x", StoreOptions::default()).await,
        Err(StoreError::UnsupportedUrl)
    ));
    assert!(matches!(
        Store::open("sqlite::memory:", StoreOptions::default()).await,
        Err(StoreError::UnsupportedUrl)
    ));
    assert_eq!(db.store.commit(&[]).await.expect("empty commit"), []);
    assert_eq!(db.store.expire_pending(0).await.expect("expire nothing"), 0);
}

async fn accounts_round_trip(db: &TestDb) {
    let store = &db.store;
    let mut rich =
        account(u128::MAX - 1, AccountFlags::HISTORY.union(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS));
    rich.user_data_128 = u128::MAX - 7;
    rich.user_data_64 = u64::MAX;
    rich.user_data_32 = u32::MAX;
    rich.ledger = u32::MAX;
    rich.code = u16::MAX;
    let plain = account(1, AccountFlags::empty());
    let mut bad = account(3, AccountFlags::empty());
    bad.code = 0;
    let results = create_accounts(store, vec![rich, plain, bad]).await;
    assert_eq!(results, [AR::Ok, AR::Ok, AR::CodeMustNotBeZero]);

    let stored = must_account(store, rich.id).await;
    assert!(stored.timestamp > 0);
    assert_eq!(stored, Account { timestamp: stored.timestamp, ..rich });
    let stored_plain = must_account(store, plain.id).await;
    assert!(stored_plain.timestamp > stored.timestamp, "timestamps strictly increase");
    assert_eq!(store.account(bad.id).await.expect("read"), None);
    assert_eq!(store.account(12345).await.expect("read"), None);
    let both = store.accounts(&[rich.id, 999, plain.id, plain.id]).await.expect("read");
    assert_eq!(both.iter().map(|a| a.id).collect::<Vec<_>>(), [plain.id, rich.id]);
}

async fn transfers_round_trip(db: &TestDb) {
    let store = &db.store;
    funded_wallet(store, 1_000).await;
    create_accounts(store, vec![account(3, AccountFlags::empty())]).await;
    let mut sent = transfer(u128::MAX - 2, 1, 3, 250);
    sent.user_data_128 = 77;
    sent.user_data_64 = u64::MAX - 1;
    sent.user_data_32 = 5;
    let overdraft = transfer(11, 1, 3, 10_000);
    let no_account = transfer(12, 1, 404, 1);
    let results = create_transfers(store, vec![sent, overdraft, no_account]).await;
    assert_eq!(results, [TR::Ok, TR::ExceedsCredits, TR::CreditAccountNotFound]);

    let stored = store.transfer(sent.id).await.expect("read").expect("stored");
    assert!(stored.timestamp > 0);
    assert_eq!(stored, Transfer { timestamp: stored.timestamp, ..sent });
    assert_eq!(store.transfer(overdraft.id).await.expect("read"), None);
    assert_eq!(store.pending_status(sent.id).await.expect("read"), None, "not a pending transfer");
    assert_eq!(balances(store, 1).await, (0, 250, 0, 1_000));
    assert_eq!(balances(store, 3).await, (0, 0, 0, 250));
    assert_eq!(store.transfers_count().await.expect("count"), 2);
}

async fn exists_across_commits(db: &TestDb) {
    let store = &db.store;
    funded_wallet(store, 500).await;
    let wallet = account(1, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    assert_eq!(create_accounts(store, vec![wallet]).await, [AR::Exists]);
    assert_eq!(
        create_accounts(store, vec![Account { code: CODE + 1, ..wallet }]).await,
        [AR::ExistsWithDifferentCode]
    );
    assert_eq!(
        create_accounts(store, vec![account(1, AccountFlags::empty())]).await,
        [AR::ExistsWithDifferentFlags]
    );

    let payment = transfer(20, 1, 2, 100);
    assert_eq!(create_transfers(store, vec![payment]).await, [TR::Ok]);
    assert_eq!(create_transfers(store, vec![payment]).await, [TR::Exists]);
    assert_eq!(
        create_transfers(store, vec![Transfer { amount: 101, ..payment }]).await,
        [TR::ExistsWithDifferentAmount]
    );
    assert_eq!(
        create_transfers(store, vec![Transfer { user_data_64: 1, ..payment }]).await,
        [TR::ExistsWithDifferentUserData64]
    );
    // The retries moved no money.
    assert_eq!(balances(store, 1).await, (0, 100, 0, 500));
}

async fn id_already_failed_across_commits(db: &TestDb) {
    let store = &db.store;
    funded_wallet(store, 100).await;
    let too_much = transfer(30, 1, 2, 150);
    assert_eq!(create_transfers(store, vec![too_much]).await, [TR::ExceedsCredits]);
    assert_eq!(create_transfers(store, vec![transfer(31, 2, 1, 100)]).await, [TR::Ok]);
    // Now it would succeed, but the id failed for good.
    assert_eq!(create_transfers(store, vec![too_much]).await, [TR::IdAlreadyFailed]);
    let reopened = db.reopen().await;
    assert_eq!(create_transfers(&reopened, vec![too_much]).await, [TR::IdAlreadyFailed]);
    reopened.close().await;
    assert_eq!(balances(store, 1).await, (0, 0, 0, 200));
}

async fn two_phase_post_void_and_partial_post(db: &TestDb) {
    let store = &db.store;
    funded_wallet(store, 1_000).await;
    let hold = Transfer { flags: TransferFlags::PENDING, ..transfer(40, 1, 2, 300) };
    let other_hold = Transfer { flags: TransferFlags::PENDING, ..transfer(41, 1, 2, 200) };
    assert_eq!(create_transfers(store, vec![hold, other_hold]).await, [TR::Ok, TR::Ok]);
    assert_eq!(balances(store, 1).await, (500, 0, 0, 1_000));
    assert_eq!(store.pending_status(40).await.expect("read"), Some(PendingStatus::Pending));
    // The holds leave 500 available: 600 more does not fit.
    assert_eq!(create_transfers(store, vec![transfer(42, 1, 2, 600)]).await, [TR::ExceedsCredits]);

    // Partial post: 120 of 300, with the account ids taken from the pending transfer.
    let post = Transfer {
        id: 43,
        pending_id: 40,
        amount: 120,
        flags: TransferFlags::POST_PENDING_TRANSFER,
        ..transfer(43, 0, 0, 0)
    };
    let void = Transfer { id: 44, pending_id: 41, flags: TransferFlags::VOID_PENDING_TRANSFER, ..post };
    let void = Transfer { amount: 0, ..void };
    assert_eq!(create_transfers(store, vec![post, void]).await, [TR::Ok, TR::Ok]);
    assert_eq!(balances(store, 1).await, (0, 120, 0, 1_000));
    assert_eq!(balances(store, 2).await, (0, 1_000, 0, 120));
    assert_eq!(store.pending_status(40).await.expect("read"), Some(PendingStatus::Posted));
    assert_eq!(store.pending_status(41).await.expect("read"), Some(PendingStatus::Voided));
    let stored_post = store.transfer(43).await.expect("read").expect("stored");
    assert_eq!(stored_post.amount, 120);

    let again = Transfer { id: 45, ..post };
    assert_eq!(create_transfers(store, vec![again]).await, [TR::PendingTransferAlreadyPosted]);
    let again = Transfer { id: 46, ..void };
    assert_eq!(create_transfers(store, vec![again]).await, [TR::PendingTransferAlreadyVoided]);
}

async fn expiry_by_worker_and_by_commit(db: &TestDb) {
    let store = &db.store;
    funded_wallet(store, 1_000).await;
    let by_worker = Transfer { flags: TransferFlags::PENDING, timeout: 1, ..transfer(50, 1, 2, 100) };
    let by_commit = Transfer { flags: TransferFlags::PENDING, timeout: 1, ..transfer(51, 1, 2, 200) };
    let forever = Transfer { flags: TransferFlags::PENDING, ..transfer(52, 1, 2, 300) };
    assert_eq!(create_transfers(store, vec![by_worker, by_commit, forever]).await, [TR::Ok; 3]);
    assert_eq!(store.expire_pending(10).await.expect("expire"), 0, "nothing is due yet");
    assert_eq!(balances(store, 1).await, (600, 0, 0, 1_000));

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The worker expires one (its limit); the next commit expires the other on the side.
    assert_eq!(store.expire_pending(1).await.expect("expire"), 1);
    assert_eq!(store.pending_status(50).await.expect("read"), Some(PendingStatus::Expired));
    assert_eq!(store.pending_status(51).await.expect("read"), Some(PendingStatus::Pending));
    assert_eq!(balances(store, 1).await, (500, 0, 0, 1_000));

    let post =
        Transfer { pending_id: 51, flags: TransferFlags::POST_PENDING_TRANSFER, ..transfer(53, 0, 0, 0) };
    assert_eq!(create_transfers(store, vec![post]).await, [TR::PendingTransferExpired]);
    assert_eq!(store.pending_status(51).await.expect("read"), Some(PendingStatus::Expired));
    assert_eq!(store.pending_status(52).await.expect("read"), Some(PendingStatus::Pending));
    assert_eq!(balances(store, 1).await, (300, 0, 0, 1_000));
    assert_eq!(store.expire_pending(10).await.expect("expire"), 0);
}

async fn failed_linked_chain_writes_nothing(db: &TestDb) {
    let store = &db.store;
    funded_wallet(store, 100).await;
    let linked = |t: Transfer| Transfer { flags: TransferFlags::LINKED, ..t };
    let chain = vec![
        linked(transfer(60, 1, 2, 40)),
        linked(Transfer {
            flags: TransferFlags::PENDING.union(TransferFlags::LINKED),
            ..transfer(61, 1, 2, 40)
        }),
        transfer(62, 1, 2, 40),
    ];
    let before_count = store.transfers_count().await.expect("count");
    let results = create_transfers(store, chain).await;
    assert_eq!(results, [TR::LinkedEventFailed, TR::LinkedEventFailed, TR::ExceedsCredits]);
    assert_eq!(store.transfers_count().await.expect("count"), before_count);
    for id in [60, 61, 62] {
        assert_eq!(store.transfer(id).await.expect("read"), None);
    }
    assert_eq!(store.pending_status(61).await.expect("read"), None);
    assert_eq!(balances(store, 1).await, (0, 0, 0, 100));
    // A chain that fits goes through whole.
    let chain = vec![linked(transfer(63, 1, 2, 40)), transfer(64, 1, 2, 60)];
    assert_eq!(create_transfers(store, chain).await, [TR::Ok, TR::Ok]);
    assert_eq!(balances(store, 1).await, (0, 100, 0, 100));
}

async fn several_commands_in_one_commit(db: &TestDb) {
    let store = &db.store;
    let wallet = account(1, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    let source = account(2, AccountFlags::empty());
    let open_chain = Transfer { flags: TransferFlags::LINKED, ..transfer(72, 2, 1, 5) };
    let commands = [
        Command::CreateAccounts(vec![wallet, source]),
        // Sees the accounts created by the command before it.
        Command::CreateTransfers(vec![transfer(70, 2, 1, 100)]),
        // A linked flag on the last event does not reach into the next command.
        Command::CreateTransfers(vec![transfer(71, 1, 2, 30), open_chain]),
        // Sees the funds moved by the earlier commands: 70 left, so 80 fails.
        Command::CreateTransfers(vec![transfer(73, 1, 2, 80), transfer(74, 1, 2, 70)]),
        Command::CreateTransfers(vec![transfer(70, 2, 1, 100)]),
    ];
    let outcomes = store.commit(&commands).await.expect("commit");
    assert_eq!(
        outcomes,
        [
            Outcome::Accounts(vec![AR::Ok, AR::Ok]),
            Outcome::Transfers(vec![TR::Ok]),
            Outcome::Transfers(vec![TR::Ok, TR::LinkedEventChainOpen]),
            Outcome::Transfers(vec![TR::ExceedsCredits, TR::Ok]),
            Outcome::Transfers(vec![TR::Exists]),
        ]
    );
    assert_eq!(balances(store, 1).await, (0, 100, 0, 100));
    assert_eq!(store.transfers_count().await.expect("count"), 3);
    // The failure inside the batch is remembered across commits.
    assert_eq!(create_transfers(store, vec![transfer(73, 1, 2, 80)]).await, [TR::IdAlreadyFailed]);
}

async fn account_transfers_filters_limits_and_order(db: &TestDb) {
    let store = &db.store;
    let results = create_accounts(
        store,
        vec![
            account(1, AccountFlags::empty()),
            account(2, AccountFlags::empty()),
            account(3, AccountFlags::empty()),
        ],
    )
    .await;
    assert_eq!(results, [AR::Ok; 3]);
    // 1 → 2, 2 → 1 alternating (ids 100..110), and 2 → 3 which 1 must never see.
    let mut transfers = Vec::new();
    for n in 0..10u128 {
        let (debit, credit) = if n % 2 == 0 { (1, 2) } else { (2, 1) };
        transfers.push(transfer(100 + n, debit, credit, 1 + n as u64));
    }
    transfers.push(transfer(200, 2, 3, 5));
    assert_eq!(create_transfers(store, transfers).await, [TR::Ok; 11]);

    let ids = |transfers: Vec<Transfer>| transfers.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let all = store.account_transfers(&filter(1)).await.expect("list");
    assert_eq!(ids(all.clone()), (100..110).collect::<Vec<_>>());
    assert!(all.windows(2).all(|w| w[0].timestamp < w[1].timestamp));

    let debits = store.account_transfers(&AccountFilter { credits: false, ..filter(1) }).await.expect("list");
    assert_eq!(ids(debits), [100, 102, 104, 106, 108]);
    let credits = store.account_transfers(&AccountFilter { debits: false, ..filter(1) }).await.expect("list");
    assert_eq!(ids(credits), [101, 103, 105, 107, 109]);
    let newest = store.account_transfers(&AccountFilter { reversed: true, limit: 3, ..filter(1) }).await;
    assert_eq!(ids(newest.expect("list")), [109, 108, 107]);
    let oldest = store.account_transfers(&AccountFilter { limit: 3, ..filter(1) }).await.expect("list");
    assert_eq!(ids(oldest), [100, 101, 102]);

    // Inclusive bounds on timestamps.
    let window =
        AccountFilter { timestamp_min: all[2].timestamp, timestamp_max: all[5].timestamp, ..filter(1) };
    assert_eq!(ids(store.account_transfers(&window).await.expect("list")), [102, 103, 104, 105]);
    let window = AccountFilter { timestamp_min: all[8].timestamp, ..filter(1) };
    assert_eq!(ids(store.account_transfers(&window).await.expect("list")), [108, 109]);
    let window = AccountFilter { timestamp_max: all[0].timestamp, ..filter(1) };
    assert_eq!(ids(store.account_transfers(&window).await.expect("list")), [100]);

    // Filters that match nothing.
    let none = AccountFilter { debits: false, credits: false, ..filter(1) };
    assert!(store.account_transfers(&none).await.expect("list").is_empty());
    assert!(
        store.account_transfers(&AccountFilter { limit: 0, ..filter(1) }).await.expect("list").is_empty()
    );
    assert!(store.account_transfers(&filter(404)).await.expect("list").is_empty());
    assert_eq!(ids(store.account_transfers(&filter(3)).await.expect("list")), [200]);
}

async fn balance_history(db: &TestDb) {
    let store = &db.store;
    let results =
        create_accounts(store, vec![account(1, AccountFlags::HISTORY), account(2, AccountFlags::empty())])
            .await;
    assert_eq!(results, [AR::Ok, AR::Ok]);
    let hold = Transfer { flags: TransferFlags::PENDING, ..transfer(82, 1, 2, 7) };
    let results = create_transfers(store, vec![transfer(80, 2, 1, 50), transfer(81, 1, 2, 20), hold]).await;
    assert_eq!(results, [TR::Ok; 3]);

    let history = store.account_balances(&filter(1)).await.expect("history");
    let rows: Vec<_> = history
        .iter()
        .map(|b| (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted))
        .collect();
    assert_eq!(rows, [(0, 0, 0, 50), (0, 20, 0, 50), (7, 20, 0, 50)]);
    assert!(history.iter().all(|b| b.account_id == 1));
    let stamps: Vec<u64> = {
        let mut stamps = Vec::new();
        for id in [80, 81, 82] {
            stamps.push(store.transfer(id).await.expect("read").expect("stored").timestamp);
        }
        stamps
    };
    assert_eq!(history.iter().map(|b| b.timestamp).collect::<Vec<_>>(), stamps);

    let newest = store.account_balances(&AccountFilter { reversed: true, limit: 1, ..filter(1) }).await;
    assert_eq!(newest.expect("history")[0].debits_pending, 7);
    let credits =
        store.account_balances(&AccountFilter { debits: false, ..filter(1) }).await.expect("history");
    assert_eq!(credits.iter().map(|b| b.timestamp).collect::<Vec<_>>(), [stamps[0]]);
    let debits =
        store.account_balances(&AccountFilter { credits: false, ..filter(1) }).await.expect("history");
    assert_eq!(debits.iter().map(|b| b.timestamp).collect::<Vec<_>>(), [stamps[1], stamps[2]]);
    // Account 2 has no history flag.
    assert!(store.account_balances(&filter(2)).await.expect("history").is_empty());
}

async fn reopened_store_sees_everything(db: &TestDb) {
    funded_wallet(&db.store, 1_000).await;
    let hold = Transfer { flags: TransferFlags::PENDING, ..transfer(90, 1, 2, 10) };
    assert_eq!(create_transfers(&db.store, vec![transfer(91, 1, 2, 15), hold]).await, [TR::Ok, TR::Ok]);
    let before = db.store.accounts(&[1, 2]).await.expect("read");
    db.store.close().await;

    let reopened = db.reopen().await;
    assert_eq!(reopened.accounts(&[1, 2]).await.expect("read"), before);
    assert_eq!(reopened.transfers_count().await.expect("count"), 3);
    assert_eq!(reopened.pending_status(90).await.expect("read"), Some(PendingStatus::Pending));
    // The clock survived: new timestamps come after the old ones.
    assert_eq!(create_transfers(&reopened, vec![transfer(92, 1, 2, 1)]).await, [TR::Ok]);
    let newest = reopened.transfer(92).await.expect("read").expect("stored");
    assert!(before.iter().all(|a| a.timestamp < newest.timestamp));
    reopened.close().await;
}

/// A store remembers the accounts and pending transfers its batches held; another store
/// on the same database (another process) moves the same money between two of its
/// batches. The first must see that change, not its memory: no balance is spent twice,
/// and a pending transfer voided elsewhere cannot be posted.
async fn a_second_store_changes_what_the_first_remembers(db: &TestDb) {
    let first = &db.store;
    assert_eq!(
        create_accounts(
            first,
            vec![
                account(1, AccountFlags::default()),
                account(2, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            ]
        )
        .await,
        [AR::Ok, AR::Ok]
    );
    let hold = Transfer { flags: TransferFlags::PENDING, ..transfer(12, 2, 1, 30) };
    assert_eq!(
        create_transfers(first, vec![transfer(10, 1, 2, 100), transfer(11, 2, 1, 50), hold]).await,
        [TR::Ok, TR::Ok, TR::Ok]
    );
    let second = db.reopen().await;
    let void = Transfer {
        id: 14,
        pending_id: 12,
        flags: TransferFlags::VOID_PENDING_TRANSFER,
        ..Transfer::default()
    };
    assert_eq!(create_transfers(&second, vec![void, transfer(13, 2, 1, 50)]).await, [TR::Ok, TR::Ok]);

    let post = Transfer {
        id: 16,
        pending_id: 12,
        amount: ledger::AMOUNT_MAX,
        flags: TransferFlags::POST_PENDING_TRANSFER,
        ..Transfer::default()
    };
    assert_eq!(
        // Its memory says 20 is left and the hold is pending; neither is true any more.
        create_transfers(first, vec![transfer(15, 2, 1, 20), post]).await,
        [TR::ExceedsCredits, TR::PendingTransferAlreadyVoided]
    );
    assert_eq!(balances(first, 2).await, balances(&second, 2).await);
    assert_eq!(balances(first, 2).await, (0, 100, 0, 100));
    second.close().await;
}

/// Many tasks move money into one hot account and back out to their wallets, through
/// clones of one store (and, on PostgreSQL, through two stores as two processes would).
async fn concurrent_commits_conserve_money(db: &TestDb) {
    const TASKS: u128 = 32;
    const ROUNDS: u128 = 15;
    const FUNDS: u64 = 1_000;
    const HOT: u128 = 1;
    const SOURCE: u128 = 2;
    let wallet = |task: u128| 100 + task;

    let store = &db.store;
    let mut accounts = vec![
        account(HOT, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        account(SOURCE, AccountFlags::empty()),
    ];
    accounts
        .extend((0..TASKS).map(|task| account(wallet(task), AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)));
    assert!(create_accounts(store, accounts).await.iter().all(|r| *r == AR::Ok));
    let funding: Vec<Transfer> =
        (0..TASKS).map(|task| transfer(1_000 + task, SOURCE, wallet(task), FUNDS)).collect();
    assert!(create_transfers(store, funding).await.iter().all(|r| *r == TR::Ok));

    let second = if db.postgres.is_some() { Some(db.reopen().await) } else { None };
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = match (&second, task % 2) {
            (Some(second), 1) => second.clone(),
            _ => store.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(task as u64);
            let mut acknowledged = Vec::new();
            for round in 0..ROUNDS {
                let id = ((task + 1) << 64) | (round << 1);
                // Into the hot account (may exceed the wallet's funds) …
                let into = transfer(id, wallet(task), HOT, rng.random_range(1..400));
                // … and back out of it (may exceed what the hot account holds).
                let back = transfer(id | 1, HOT, wallet(task), rng.random_range(1..400));
                let outcomes = store
                    .commit(&[Command::CreateTransfers(vec![into]), Command::CreateTransfers(vec![back])])
                    .await
                    .expect("commit");
                for (sent, outcome) in [into, back].into_iter().zip(outcomes) {
                    let Outcome::Transfers(results) = outcome else { panic!("transfer outcome expected") };
                    match results[..] {
                        [TR::Ok] => acknowledged.push(sent),
                        [TR::ExceedsCredits] => {}
                        ref other => panic!("unexpected results {other:?}"),
                    }
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.expect("task"));
    }
    assert!(!acknowledged.is_empty());

    let mut ids: Vec<u128> = vec![HOT, SOURCE];
    ids.extend((0..TASKS).map(wallet));
    let accounts = store.accounts(&ids).await.expect("read");
    assert_eq!(accounts.len(), ids.len());
    let debits: u64 = accounts.iter().map(|a| a.debits_posted).sum();
    let credits: u64 = accounts.iter().map(|a| a.credits_posted).sum();
    assert_eq!(debits, credits, "money is conserved");
    for a in &accounts {
        assert_eq!((a.debits_pending, a.credits_pending), (0, 0));
        if a.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
            assert!(a.debits_posted <= a.credits_posted, "account {} is overdrawn", a.id);
        }
    }
    // Every acknowledged transfer, and nothing else, moved money.
    let mut expected: HashMap<u128, (u64, u64)> = HashMap::new();
    for t in &acknowledged {
        expected.entry(t.debit_account_id).or_default().0 += t.amount;
        expected.entry(t.credit_account_id).or_default().1 += t.amount;
    }
    for task in 0..TASKS {
        let a = accounts.iter().find(|a| a.id == wallet(task)).expect("wallet");
        let (out, into) = expected.get(&wallet(task)).copied().unwrap_or_default();
        assert_eq!((a.debits_posted, a.credits_posted), (out, FUNDS + into));
    }
    let funding = TASKS as u64;
    assert_eq!(store.transfers_count().await.expect("count"), funding + acknowledged.len() as u64);
    let listed =
        store.account_transfers(&AccountFilter { limit: 10_000, ..filter(HOT) }).await.expect("list");
    let unique: HashSet<u128> = listed.iter().map(|t| t.id).collect();
    assert_eq!(unique.len(), listed.len(), "no duplicates");
    assert_eq!(unique, acknowledged.iter().map(|t| t.id).collect::<HashSet<_>>());
    assert!(listed.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
    if let Some(second) = second {
        second.close().await;
    }
}

/// Applies the same random batches to an in-memory ledger and to the store, then compares
/// every result and every account.
async fn matches_the_pure_ledger(db: &TestDb) {
    const ACCOUNTS: u128 = 12;
    const BATCHES: usize = 25;
    let store = &db.store;
    let mut rng = StdRng::seed_from_u64(7);
    let mut reference = State::new(0);
    let mut next_id: u128 = 1_000;
    let mut pending_ids: Vec<u128> = Vec::new();
    let mut used_ids: Vec<u128> = Vec::new();

    let flags_of = |n: u128| match n % 3 {
        0 => AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        1 => AccountFlags::HISTORY,
        _ => AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
    };
    let setup = Command::CreateAccounts((1..=ACCOUNTS).map(|n| account(n, flags_of(n))).collect());
    let mut batches = vec![vec![setup]];
    for _ in 0..BATCHES {
        let mut commands = Vec::new();
        for _ in 0..rng.random_range(1..4) {
            let mut events = Vec::new();
            for _ in 0..rng.random_range(1..20) {
                let debit = rng.random_range(1..=ACCOUNTS + 1); // ACCOUNTS + 1 does not exist
                let credit = rng.random_range(1..=ACCOUNTS);
                let mut event = transfer(next_id, debit, credit, rng.random_range(1..500));
                match rng.random_range(0..10) {
                    0 | 1 => {
                        event.flags = TransferFlags::PENDING;
                        pending_ids.push(event.id);
                    }
                    2 if !pending_ids.is_empty() => {
                        event = transfer(next_id, 0, 0, rng.random_range(0..300));
                        event.pending_id = pending_ids[rng.random_range(0..pending_ids.len())];
                        event.flags = if rng.random_bool(0.5) {
                            TransferFlags::POST_PENDING_TRANSFER
                        } else {
                            TransferFlags::VOID_PENDING_TRANSFER
                        };
                    }
                    3 if !used_ids.is_empty() => {
                        // Retry an earlier id, sometimes with a different amount.
                        event.id = used_ids[rng.random_range(0..used_ids.len())];
                    }
                    4 => event.flags = TransferFlags::LINKED,
                    5 => event.flags = TransferFlags::BALANCING_DEBIT,
                    _ => {}
                }
                used_ids.push(event.id);
                next_id += 1;
                events.push(event);
            }
            commands.push(Command::CreateTransfers(events));
        }
        batches.push(commands);
    }

    for commands in &batches {
        let stored = store.commit(commands).await.expect("commit");
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        let now = u64::try_from(now).expect("nanoseconds fit");
        let expected: Vec<Outcome> = commands
            .iter()
            .map(|command| match command {
                Command::CreateAccounts(events) => {
                    Outcome::Accounts(ledger::create_accounts(&mut reference, now, events))
                }
                Command::CreateTransfers(events)
                | Command::CreateTransfersWithNotes { transfers: events, .. } => {
                    Outcome::Transfers(ledger::create_transfers(&mut reference, now, events))
                }
                Command::RecordResponse(_) => unreachable!("the generator makes ledger commands only"),
            })
            .collect();
        reference.take_changes();
        // A noted command's results compare like a plain one's.
        let stored: Vec<Outcome> = stored
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Noted(noted) => Outcome::Transfers(noted.results),
                other => other,
            })
            .collect();
        assert_eq!(stored, expected);
    }
    reference.check_invariants().expect("reference invariants");

    let ids: Vec<u128> = (1..=ACCOUNTS).collect();
    let stored = store.accounts(&ids).await.expect("read");
    let mut expected: Vec<Account> = reference.accounts().copied().collect();
    expected.sort_unstable_by_key(|a| a.id);
    assert_eq!(stored.len(), expected.len());
    for (stored, expected) in stored.iter().zip(&expected) {
        assert_eq!(*stored, Account { timestamp: stored.timestamp, ..*expected });
    }
    let reference_transfers = reference.transfers().count() as u64;
    assert_eq!(store.transfers_count().await.expect("count"), reference_transfers);
    for id in pending_ids {
        assert_eq!(store.pending_status(id).await.expect("read"), reference.pending_status(id));
    }
}

fn note(transfer_id: u128, kind: NoteKind) -> TransferNote {
    TransferNote { transfer_id, kind, description: Some(format!("note {transfer_id}")) }
}

async fn create_noted(store: &Store, transfers: Vec<Transfer>, notes: Vec<TransferNote>) -> Vec<TR> {
    match store
        .commit(&[Command::CreateTransfersWithNotes {
            transfers,
            notes,
            events: Vec::new(),
            response: None,
            payments: None,
        }])
        .await
        .expect("commit")
        .pop()
    {
        Some(Outcome::Noted(noted)) => noted.results,
        other => panic!("expected transfer results, got {other:?}"),
    }
}

fn everything(wallet_ids: Vec<Uuid>) -> OperationFilter {
    OperationFilter {
        wallet_ids,
        debits: true,
        credits: true,
        kind: None,
        status: None,
        timestamp_min: 0,
        timestamp_max: u64::MAX >> 1,
        amount_min: 0,
        amount_max: u64::MAX >> 1,
        reversed: false,
        after: None,
        limit: 100,
    }
}

async fn notes_are_written_only_with_created_transfers(db: &TestDb) {
    let store = &db.store;
    funded_wallet(store, 100).await;
    let wallet = Uuid::from_u128(1);
    let results = create_noted(
        store,
        vec![transfer(10, 1, 2, 30), transfer(11, 1, 2, 500), transfer(10, 1, 2, 30)],
        vec![note(10, NoteKind::Transfer), note(11, NoteKind::Transfer), note(10, NoteKind::Transfer)],
    )
    .await;
    assert_eq!(results, [TR::Ok, TR::ExceedsCredits, TR::Exists]);
    let rows = store.operations(&everything(vec![wallet])).await.unwrap();
    let noted: Vec<_> = rows.iter().filter(|row| row.kind.is_some()).map(|row| row.transfer_id).collect();
    assert_eq!(noted, [Uuid::from_u128(10)], "only the created transfer keeps its note: {rows:?}");
    // A retry of the same transfer with its note changes nothing.
    assert_eq!(
        create_noted(store, vec![transfer(10, 1, 2, 30)], vec![note(10, NoteKind::Transfer)]).await,
        [TR::Exists]
    );
    assert_eq!(store.operations(&everything(vec![wallet])).await.unwrap().len(), rows.len());
}

async fn wallets_and_default_wallet(db: &TestDb) {
    let store = &db.store;
    let customer = Uuid::now_v7();
    create_accounts(store, vec![account(21, AccountFlags::HISTORY), account(22, AccountFlags::empty())])
        .await;
    let new = |id: u128, kind: WalletType, created_at: u64| NewWallet {
        id: Uuid::from_u128(id),
        customer_id: customer,
        currency: "USD".into(),
        wallet_type: kind,
        name: Some(format!("w{id}")),
        credit_limit: 0,
        created_at,
    };
    assert!(store.insert_wallet(&new(21, WalletType::Savings, 5), &[]).await.unwrap());
    assert!(store.insert_wallet(&new(22, WalletType::Wallet, 6), &[]).await.unwrap());
    assert!(
        !store.insert_wallet(&new(22, WalletType::Wallet, 6), &[]).await.unwrap(),
        "a retry records nothing"
    );
    let wallet = store.wallet(Uuid::from_u128(22)).await.unwrap().expect("stored");
    assert_eq!(
        (wallet.wallet_type, wallet.currency.as_str(), wallet.customer_id),
        (WalletType::Wallet, "USD", customer)
    );
    let default = store.default_wallet(customer, "USD").await.unwrap().expect("a plain wallet exists");
    assert_eq!(default.id, Uuid::from_u128(22), "savings wallets are never the default");
    assert!(store.default_wallet(customer, "EUR").await.unwrap().is_none());
    let first = store.customer_wallets(customer, None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    let rest = store.customer_wallets(customer, Some((first[0].created_at, first[0].id)), 10).await.unwrap();
    assert_eq!(rest.iter().map(|w| w.id).collect::<Vec<_>>(), [Uuid::from_u128(22)]);
    assert_eq!(store.wallet_count(customer).await.unwrap(), 2);
}

async fn idempotency_keys_claim_replay_mismatch_and_lease(db: &TestDb) {
    let store = &db.store;
    let key = IdempotencyKey { owner_id: Uuid::now_v7(), key: "k-1".into(), request_hash: vec![1; 32] };
    let other = IdempotencyKey { request_hash: vec![2; 32], ..key.clone() };
    let lease = 1_000;
    assert_eq!(store.idempotency_begin(&key, 10_000, lease).await.unwrap(), Begin::Started);
    assert_eq!(store.idempotency_begin(&key, 10_001, lease).await.unwrap(), Begin::InFlight);
    assert_eq!(store.idempotency_begin(&other, 10_001, lease).await.unwrap(), Begin::Mismatch);
    // The holder died: once its lease is over a retry takes the key over, once.
    assert_eq!(store.idempotency_begin(&key, 11_001, lease).await.unwrap(), Begin::Started);
    assert_eq!(store.idempotency_begin(&key, 11_002, lease).await.unwrap(), Begin::InFlight);
    store.idempotency_finish(key.owner_id, &key.key, 201, "{\"ok\":true}").await.unwrap();
    assert_eq!(
        store.idempotency_begin(&key, 50_000, lease).await.unwrap(),
        Begin::Replay { status: 201, body: "{\"ok\":true}".into() }
    );
    // Keys are per owner.
    let stranger = IdempotencyKey { owner_id: Uuid::now_v7(), ..key.clone() };
    assert_eq!(store.idempotency_begin(&stranger, 50_000, lease).await.unwrap(), Begin::Started);
    store.idempotency_release(stranger.owner_id, &stranger.key).await.unwrap();
    assert_eq!(store.idempotency_begin(&stranger, 50_001, lease).await.unwrap(), Begin::Started);
    assert_eq!(store.idempotency_purge(20_000, 100).await.unwrap(), 1, "only the old key goes");
    assert_eq!(store.idempotency_begin(&key, 60_000, lease).await.unwrap(), Begin::Started);
}

fn noted_results(mut outcomes: Vec<Outcome>) -> Vec<TR> {
    match outcomes.pop() {
        Some(Outcome::Noted(noted)) => noted.results,
        other => panic!("expected a noted outcome, got {other:?}"),
    }
}

/// A keyed request's answer is written by the batch that moves its money, rendered from
/// the results; a retry that finds the transfer (`exists`) renders the same answer but the
/// first stays; a refusal is remembered too; a failed batch remembers nothing.
async fn answers_are_remembered_in_the_batch_that_moves_the_money(db: &TestDb) {
    let store = &db.store;
    funded_wallet(store, 1_000).await;
    let owner = Uuid::now_v7();
    let key = |name: &str| IdempotencyKey { owner_id: owner, key: name.into(), request_hash: vec![7; 32] };
    // The answer names the result and the timestamp the ledger gave the transfer.
    let keyed = |name: &str| KeyedResponse {
        key: key(name),
        created_at: 5_000,
        draft: ResponseDraft::AfterBatch(std::sync::Arc::new(|results: &[TR], timestamps: &[u64]| {
            let status = if results[0] == TR::Ok || results[0] == TR::Exists { 201 } else { 422 };
            Some(StoredResponse { status, body: format!("{}@{}", results[0], timestamps[0]) })
        })),
    };
    // Paid by the wallet (account 1), which cannot go below zero.
    let command = |id: u128, amount: u64, name: &str| Command::CreateTransfersWithNotes {
        transfers: vec![transfer(id, 1, 2, amount)],
        notes: vec![note(id, NoteKind::Transfer)],
        events: Vec::new(),
        response: Some(keyed(name)),
        payments: None,
    };
    assert_eq!(store.idempotency_lookup(&key("a"), 6_000).await.unwrap(), None, "a fresh key is free");
    let outcome = store.commit(&[command(50, 10, "a")]).await.unwrap();
    let timestamp = store.transfer(50).await.unwrap().expect("posted").timestamp;
    let answer = StoredResponse { status: 201, body: format!("ok@{timestamp}") };
    assert_eq!(
        outcome,
        [Outcome::Noted(Noted {
            results: vec![TR::Ok],
            timestamps: vec![timestamp],
            response: Some(answer.clone())
        })]
    );
    let replay = Begin::Replay { status: answer.status, body: answer.body.clone() };
    assert_eq!(store.idempotency_lookup(&key("a"), 6_000).await.unwrap(), Some(replay.clone()));
    // The same key again (another node ran it at once): the transfer exists, and the
    // first answer is kept, not replaced.
    let again = store.commit(&[command(50, 10, "a")]).await.unwrap();
    assert_eq!(noted_results(again), [TR::Exists]);
    assert_eq!(store.idempotency_lookup(&key("a"), 6_000).await.unwrap(), Some(replay));
    // Another request under the key is a mismatch.
    let other = IdempotencyKey { request_hash: vec![8; 32], ..key("a") };
    assert_eq!(store.idempotency_lookup(&other, 6_000).await.unwrap(), Some(Begin::Mismatch));
    // A refusal by the ledger is remembered with the batch.
    store.commit(&[command(51, 1_000_000, "b")]).await.unwrap();
    assert_eq!(
        store.idempotency_lookup(&key("b"), 6_000).await.unwrap(),
        Some(Begin::Replay { status: 422, body: "exceeds_credits@0".into() })
    );
    // A refusal decided before the ledger: recorded through the pipeline; a later record
    // under the same key does not replace it.
    let refused = |body: &str| KeyedResponse {
        key: key("c"),
        created_at: 5_000,
        draft: ResponseDraft::Known(StoredResponse { status: 404, body: body.into() }),
    };
    assert_eq!(
        store.commit(&[Command::RecordResponse(refused("first"))]).await.unwrap(),
        [Outcome::Recorded]
    );
    store.commit(&[Command::RecordResponse(refused("second"))]).await.unwrap();
    assert_eq!(
        store.idempotency_lookup(&key("c"), 6_000).await.unwrap(),
        Some(Begin::Replay { status: 404, body: "first".into() })
    );
    // A key claimed by a request that died (its lease ran out) is free, and a batch fills it.
    assert_eq!(store.idempotency_begin(&key("d"), 1_000, 100).await.unwrap(), Begin::Started);
    assert_eq!(store.idempotency_lookup(&key("d"), 1_050).await.unwrap(), Some(Begin::InFlight));
    assert_eq!(store.idempotency_lookup(&key("d"), 2_000).await.unwrap(), None);
    store.commit(&[command(52, 10, "d")]).await.unwrap();
    assert!(matches!(
        store.idempotency_lookup(&key("d"), 2_000).await.unwrap(),
        Some(Begin::Replay { status: 201, .. })
    ));
    // A batch that fails remembers nothing: its answer goes with its transfer. (An event
    // id written before makes the outbox insert fail after the transfer was applied.)
    let event = new_event(owner, "transfer.posted");
    store.record_events(std::slice::from_ref(&event)).await.unwrap();
    let clash = Command::CreateTransfersWithNotes {
        transfers: vec![transfer(53, 1, 2, 10)],
        notes: vec![note(53, NoteKind::Transfer)],
        events: vec![draft(53, &event)],
        response: Some(keyed("e")),
        payments: None,
    };
    assert!(store.commit(&[clash]).await.is_err());
    assert!(store.transfer(53).await.unwrap().is_none());
    assert_eq!(store.idempotency_lookup(&key("e"), 6_000).await.unwrap(), None);
}

/// A top-up or withdrawal is recorded and finished by the batch that moves its money, as
/// the ledger's results decide: a finish moves a payment out of `pending` once and writes its
/// event only then, a second record of an id changes nothing, and a failed batch writes no
/// payment.
async fn payments_are_written_by_the_batch_that_decides_them(db: &TestDb) {
    use store::{Finish, PaymentChange, PaymentKind, PaymentRow, PaymentStatus, PaymentsDraft};
    let store = &db.store;
    funded_wallet(store, 1_000).await;
    let customer = Uuid::now_v7();
    let wallet = NewWallet {
        id: Uuid::from_u128(1),
        customer_id: customer,
        currency: "USD".into(),
        wallet_type: WalletType::Wallet,
        name: None,
        credit_limit: 0,
        created_at: 5,
    };
    assert!(store.insert_wallet(&wallet, &[]).await.unwrap());
    let kind = PaymentKind::Withdrawal;
    let pending = move |id: Uuid| PaymentRow {
        id,
        customer_id: customer,
        wallet_id: Uuid::from_u128(1),
        amount: 10,
        currency: "USD".into(),
        status: PaymentStatus::Pending,
        failure_code: None,
        provider_id: None,
        created_at: 7,
        updated_at: 7,
    };
    let finish = move |id: Uuid, status: PaymentStatus, code: Option<&str>, at: u64| PaymentChange::Finish {
        kind,
        id,
        finish: Finish { status, failure_code: code.map(str::to_owned), provider_id: Some(format!("p{at}")) },
        at,
        event: new_event(customer, &format!("withdrawal.{}", status.as_str())),
    };
    // Recorded with a transfer from the wallet; finished `failed` when the ledger refuses it,
    // at the transfer's timestamp when it accepts it.
    let command = |transfer_id: u128, amount: u64, payment: Uuid| {
        let draft = PaymentsDraft(std::sync::Arc::new(move |results: &[TR], timestamps: &[u64]| {
            let outcome = if results[0] == TR::Ok {
                finish(payment, PaymentStatus::Succeeded, None, timestamps[0])
            } else {
                finish(payment, PaymentStatus::Failed, Some(results[0].as_str()), 1)
            };
            vec![PaymentChange::Record(kind, pending(payment)), outcome]
        }));
        Command::CreateTransfersWithNotes {
            transfers: vec![transfer(transfer_id, 1, 2, amount)],
            notes: Vec::new(),
            events: Vec::new(),
            response: None,
            payments: Some(draft),
        }
    };
    let (paid, refused) = (Uuid::now_v7(), Uuid::now_v7());
    let outcomes = store.commit(&[command(60, 10, paid), command(61, 5_000, refused)]).await.unwrap();
    assert_eq!(
        outcomes.into_iter().flat_map(|outcome| noted_results(vec![outcome])).collect::<Vec<_>>(),
        [TR::Ok, TR::ExceedsCredits]
    );
    let timestamp = store.transfer(60).await.unwrap().expect("posted").timestamp;
    let row = store.payment(kind, paid).await.unwrap().expect("recorded");
    assert_eq!(
        (row.status, row.updated_at, row.provider_id.clone(), row.created_at),
        (PaymentStatus::Succeeded, timestamp, Some(format!("p{timestamp}")), 7)
    );
    let row = store.payment(kind, refused).await.unwrap().expect("recorded");
    assert_eq!((row.status, row.failure_code.as_deref()), (PaymentStatus::Failed, Some("exceeds_credits")));
    assert_eq!(store.payment(PaymentKind::TopUp, paid).await.unwrap(), None, "in its kind's table only");
    // A batch of payment changes alone: a second record and a second finish change nothing.
    let again = PaymentsDraft(std::sync::Arc::new(move |results: &[TR], _: &[u64]| {
        assert!(results.is_empty());
        vec![
            PaymentChange::Record(kind, pending(paid)),
            finish(paid, PaymentStatus::Failed, Some("late"), 99),
        ]
    }));
    let alone = Command::CreateTransfersWithNotes {
        transfers: Vec::new(),
        notes: Vec::new(),
        events: Vec::new(),
        response: None,
        payments: Some(again),
    };
    assert_eq!(noted_results(store.commit(&[alone]).await.unwrap()), []);
    assert_eq!(store.payment(kind, paid).await.unwrap().expect("kept").status, PaymentStatus::Succeeded);
    let finished: Vec<String> = store
        .unsent_events(100)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.event_type)
        .filter(|kind| kind.starts_with("coffer.withdrawal."))
        .collect();
    assert_eq!(finished, ["coffer.withdrawal.succeeded", "coffer.withdrawal.failed"], "one event per finish");
    // A batch that fails writes no payment (an event id written before makes its outbox
    // insert fail after the payment was written).
    let event = new_event(customer, "withdrawal.failed");
    store.record_events(std::slice::from_ref(&event)).await.unwrap();
    let lost = Uuid::now_v7();
    let clash = PaymentsDraft(std::sync::Arc::new(move |_: &[TR], _: &[u64]| {
        vec![
            PaymentChange::Record(kind, pending(lost)),
            PaymentChange::Finish {
                kind,
                id: lost,
                finish: Finish { status: PaymentStatus::Failed, failure_code: None, provider_id: None },
                at: 1,
                event: event.clone(),
            },
        ]
    }));
    let failing = Command::CreateTransfersWithNotes {
        transfers: Vec::new(),
        notes: Vec::new(),
        events: Vec::new(),
        response: None,
        payments: Some(clash),
    };
    assert!(store.commit(&[failing]).await.is_err());
    assert_eq!(store.payment(kind, lost).await.unwrap(), None);
}

async fn operations_page_and_filter(db: &TestDb) {
    let store = &db.store;
    let history = AccountFlags::HISTORY.union(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    create_accounts(
        store,
        vec![account(31, history), account(32, history), account(33, AccountFlags::empty())],
    )
    .await;
    let (mine, theirs, source) = (Uuid::from_u128(31), Uuid::from_u128(32), 33);
    // Top up mine with 1..=5, then send 10 to theirs, then hold 3 and void it.
    for amount in 1..=5u64 {
        let id = 100 + u128::from(amount);
        assert_eq!(
            create_noted(store, vec![transfer(id, source, 31, amount)], vec![note(id, NoteKind::TopUp)])
                .await,
            [TR::Ok]
        );
    }
    assert_eq!(
        create_noted(store, vec![transfer(200, 31, 32, 10)], vec![note(200, NoteKind::Transfer)]).await,
        [TR::Ok]
    );
    let hold = Transfer { flags: TransferFlags::PENDING, ..transfer(300, 31, 33, 3) };
    assert_eq!(create_noted(store, vec![hold], vec![note(300, NoteKind::Withdrawal)]).await, [TR::Ok]);
    let void = Transfer {
        id: 301,
        pending_id: 300,
        flags: TransferFlags::VOID_PENDING_TRANSFER,
        ..Transfer::default()
    };
    assert_eq!(create_transfers(store, vec![void]).await, [TR::Ok]);

    let all = store.operations(&everything(vec![mine, theirs])).await.unwrap();
    // 5 top-ups, the transfer out of mine and into theirs, the hold (the void is no row).
    assert_eq!(all.len(), 8, "{all:#?}");
    let out = all.iter().find(|row| row.transfer_id == Uuid::from_u128(200) && !row.credit).unwrap();
    assert_eq!((out.wallet_id, out.counterparty_account_id, out.amount), (mine, theirs, 10));
    assert_eq!(out.balance_after.unwrap()[1], 10, "debits_posted after the transfer");
    assert_eq!(out.balance_after.unwrap()[3], 15);
    let held = all.iter().find(|row| row.transfer_id == Uuid::from_u128(300)).unwrap();
    assert_eq!((held.status.as_str(), held.kind), ("voided", Some(NoteKind::Withdrawal)));

    // Paging in both orders visits every row once, in order.
    for reversed in [false, true] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .operations(&OperationFilter { limit: 3, after, reversed, ..everything(vec![mine, theirs]) })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap().position());
            seen.extend(page.iter().map(OperationRow::position));
        }
        let mut expected: Vec<_> = all.iter().map(OperationRow::position).collect();
        if reversed {
            expected.reverse();
        }
        assert_eq!(seen, expected, "reversed: {reversed}");
    }

    let only = |filter: OperationFilter| async move { store.operations(&filter).await.unwrap() };
    let top_ups = only(OperationFilter { kind: Some(NoteKind::TopUp), ..everything(vec![mine]) }).await;
    assert_eq!(top_ups.len(), 5);
    let big = only(OperationFilter { amount_min: 4, ..everything(vec![mine]) }).await;
    assert_eq!(big.iter().map(|row| row.amount).collect::<Vec<_>>(), [4, 5, 10]);
    let voided =
        only(OperationFilter { status: Some(ledger::PendingStatus::Voided), ..everything(vec![mine]) }).await;
    assert_eq!(voided.len(), 1);
    let incoming = only(OperationFilter { debits: false, ..everything(vec![theirs]) }).await;
    assert_eq!(incoming.len(), 1);
    assert!(incoming[0].credit);
}

fn new_event(customer: Uuid, kind: &str) -> NewEvent {
    let id = Uuid::now_v7();
    NewEvent {
        id,
        event_type: format!("coffer.{kind}"),
        customer_id: Some(customer),
        payload: format!(r#"{{"id":"{id}","type":"coffer.{kind}"}}"#),
        created_at: store::now_ns(),
    }
}

fn draft(transfer_id: u128, event: &NewEvent) -> EventDraft {
    EventDraft {
        transfer_id,
        id: event.id,
        event_type: event.event_type.clone(),
        customer_id: event.customer_id,
        created_at: event.created_at,
        payload: Payload::Json(event.payload.clone()),
    }
}

async fn outbox(store: &Store) -> Vec<store::StoredEvent> {
    store.events_after(0, 1000).await.unwrap()
}

/// An event exists if and only if its change committed: a failure injected after the
/// change was written (a clashing event id, the last statement of the transaction) takes
/// the change with it; a replayed or failed transfer writes no event.
async fn events_commit_with_their_change_or_not_at_all(db: &TestDb) {
    let store = &db.store;
    let customer = Uuid::now_v7();
    create_accounts(store, vec![account(31, AccountFlags::HISTORY), account(32, AccountFlags::empty())])
        .await;
    let wallet = |id: u128| NewWallet {
        id: Uuid::from_u128(id),
        customer_id: customer,
        currency: "USD".into(),
        wallet_type: WalletType::Wallet,
        name: None,
        credit_limit: 0,
        created_at: store::now_ns(),
    };
    let first = new_event(customer, "wallet.created");
    assert!(store.insert_wallet(&wallet(31), std::slice::from_ref(&first)).await.unwrap());
    // The same event id again: the insert of the event fails after the wallet's row was
    // written, and the wallet must go with it.
    assert!(store.insert_wallet(&wallet(32), std::slice::from_ref(&first)).await.is_err());
    assert!(
        store.wallet(Uuid::from_u128(32)).await.unwrap().is_none(),
        "the wallet rolled back with its event"
    );
    assert_eq!(outbox(store).await.iter().map(|e| e.id).collect::<Vec<_>>(), [first.id]);
    // A retried wallet creation records nothing, events included.
    assert!(!store.insert_wallet(&wallet(31), &[new_event(customer, "wallet.created")]).await.unwrap());
    assert_eq!(outbox(store).await.len(), 1);

    // Ledger batches: a transfer's events are written with it, or not at all.
    funded_wallet(store, 1_000).await;
    let posted = new_event(customer, "transfer.posted");
    let balance = new_event(customer, "balance.updated");
    let rendered = EventDraft {
        payload: Payload::AfterBatch {
            account_id: 1,
            render: std::sync::Arc::new(|before: Option<&ledger::Account>, account: &ledger::Account| {
                let before = before.expect("the account existed before").credits_posted;
                format!("{{\"before\":{before},\"credits\":{}}}", account.credits_posted)
            }),
        },
        ..draft(40, &balance)
    };
    let command = |id: u128, amount: u64, drafts: Vec<EventDraft>| Command::CreateTransfersWithNotes {
        transfers: vec![transfer(id, 2, 1, amount)],
        notes: vec![note(id, NoteKind::Transfer)],
        events: drafts,
        response: None,
        payments: None,
    };
    let before = must_account(store, 1).await.credits_posted;
    let outcome = store.commit(&[command(40, 30, vec![draft(40, &posted), rendered.clone()])]).await.unwrap();
    let [Outcome::Noted(Noted { results, timestamps, response: None })] = &outcome[..] else {
        panic!("{outcome:?}")
    };
    assert_eq!(results, &[TR::Ok]);
    assert_eq!(timestamps, &[store.transfer(40).await.unwrap().expect("posted").timestamp]);
    let stored = outbox(store).await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1].id, posted.id);
    let credits = must_account(store, 1).await.credits_posted;
    assert_eq!(
        stored[2].payload,
        format!("{{\"before\":{before},\"credits\":{credits}}}"),
        "rendered after the transfer applied, with the account as it was before"
    );
    // A replay (exists) and a failure write no events.
    let replay =
        store.commit(&[command(40, 30, vec![draft(40, &new_event(customer, "transfer.posted"))])]).await;
    assert_eq!(noted_results(replay.unwrap()), [TR::Exists]);
    let overdraw = Command::CreateTransfersWithNotes {
        transfers: vec![transfer(41, 1, 2, 1_000_000)],
        notes: vec![note(41, NoteKind::Transfer)],
        events: vec![draft(41, &new_event(customer, "transfer.posted"))],
        response: None,
        payments: None,
    };
    let failed = store.commit(&[overdraw]).await.unwrap();
    assert_eq!(noted_results(failed), [TR::ExceedsCredits]);
    assert_eq!(outbox(store).await.len(), 3);
    // A clashing event id fails the whole batch after the transfer was written: the
    // transfer is not there afterwards.
    let clash = store.commit(&[command(42, 5, vec![draft(42, &posted)])]).await;
    assert!(clash.is_err(), "{clash:?}");
    assert!(store.transfer(42).await.unwrap().is_none(), "the transfer rolled back with its events");
    assert_eq!(outbox(store).await.len(), 3);
}

/// The relay lease: one holder at a time; renewed by its holder; taken by another only
/// once expired or released.
async fn one_relay_holds_the_lease_until_it_expires_or_is_released(db: &TestDb) {
    let store = &db.store;
    let second = 1_000_000_000;
    assert!(store.claim_relay_lease("a", 0, 10 * second).await.unwrap(), "free: taken");
    assert!(!store.claim_relay_lease("b", second, 11 * second).await.unwrap(), "a's runs");
    assert!(store.claim_relay_lease("a", 9 * second, 20 * second).await.unwrap(), "a renews");
    assert!(!store.claim_relay_lease("b", 19 * second, 29 * second).await.unwrap(), "renewed: still a's");
    assert!(store.claim_relay_lease("b", 20 * second, 30 * second).await.unwrap(), "expired: b takes it");
    assert!(!store.claim_relay_lease("a", 21 * second, 31 * second).await.unwrap(), "a lost it");
    store.release_relay_lease("a").await.unwrap();
    assert!(!store.claim_relay_lease("a", 22 * second, 32 * second).await.unwrap(), "a cannot release b's");
    store.release_relay_lease("b").await.unwrap();
    assert!(
        store.claim_relay_lease("a", 23 * second, 33 * second).await.unwrap(),
        "released: a takes it at once"
    );
}

/// The relay's reads and marks, and the consumers' once-only application.
async fn outbox_relay_reads_and_consumers_apply_once(db: &TestDb) {
    let store = &db.store;
    let customer = Uuid::now_v7();
    let events: Vec<NewEvent> = (0..5).map(|_| new_event(customer, "customer.logged_in")).collect();
    store.record_events(&events).await.unwrap();
    let unsent = store.unsent_events(3).await.unwrap();
    assert_eq!(
        unsent.iter().map(|e| e.id).collect::<Vec<_>>(),
        events[..3].iter().map(|e| e.id).collect::<Vec<_>>()
    );
    assert!(unsent.windows(2).all(|pair| pair[0].seq < pair[1].seq), "in outbox order");
    assert_eq!(store.outbox_backlog().await.unwrap().0, 5);
    store.mark_events_sent(&unsent.iter().map(|e| e.seq).collect::<Vec<_>>(), store::now_ns()).await.unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap().0, 2);
    assert_eq!(store.unsent_events(10).await.unwrap()[0].id, events[3].id);
    // Resuming a customer's stream reads only sent events after a position.
    let resumed = store.customer_events(customer, unsent[0].seq, 10).await.unwrap();
    assert_eq!(resumed.iter().map(|e| e.id).collect::<Vec<_>>(), [events[1].id, events[2].id]);
    assert_eq!(store.event_seq(events[1].id).await.unwrap(), Some(unsent[1].seq));
    assert!(store.customer_events(Uuid::now_v7(), 0, 10).await.unwrap().is_empty(), "another customer's");

    let effects = Effects {
        notifications: vec![NewNotification {
            id: Uuid::now_v7(),
            customer_id: customer,
            kind: "welcome".into(),
            title: "t".into(),
            body: "b".into(),
        }],
        ..Effects::default()
    };
    let applied =
        AppliedEvent { id: events[0].id, event_type: &events[0].event_type, payload: &events[0].payload };
    assert!(store.apply_event("test", applied, &effects, store::now_ns()).await.unwrap());
    let again = Effects {
        notifications: vec![NewNotification { id: Uuid::now_v7(), ..effects.notifications[0].clone() }],
        ..Effects::default()
    };
    assert!(!store.apply_event("test", applied, &again, store::now_ns()).await.unwrap(), "applied once");
    assert!(
        store.apply_event("other", applied, &Effects::default(), store::now_ns()).await.unwrap(),
        "per consumer"
    );
    let inbox = store.notifications(customer, None, false, 10).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert!(store.mark_notification_read(customer, inbox[0].id, store::now_ns()).await.unwrap());
    assert!(
        !store.mark_notification_read(Uuid::now_v7(), inbox[0].id, store::now_ns()).await.unwrap(),
        "not theirs"
    );
    assert!(store.notifications(customer, None, true, 10).await.unwrap().is_empty());
}

/// A consumer applies a batch of events with one statement per table: the projection must
/// be what applying them one at a time gives, with repeated keys summed (volume), merged
/// (activity) and the latest kept (balances), and an event named twice applied once.
async fn a_projection_batch_equals_its_events_one_by_one(db: &TestDb) {
    use store::{ProjectedEvent, Projection};
    let customer = Uuid::from_u128(7);
    let wallet = Uuid::from_u128(8);
    let volume = |amount| Projection::Volume {
        day: "2026-12-01".into(),
        currency: "USD".into(),
        operation: "transfer".into(),
        amount,
    };
    let active =
        |registered| Projection::Active { day: "2026-12-01".into(), customer_id: customer, registered };
    let balance = |posted| Projection::Balance {
        wallet_id: wallet,
        customer_id: customer,
        currency: "USD".into(),
        posted,
        pending: 0,
        available: posted,
    };
    let event = |n: u128, changes| ProjectedEvent { id: Uuid::from_u128(100 + n), seq: n as u64, changes };
    let events = vec![
        event(1, vec![volume(100), active(true), balance(100)]),
        event(2, vec![volume(50), active(false), balance(50)]),
        event(1, vec![volume(100), active(true), balance(100)]),
        event(3, vec![volume(i64::MAX), balance(70)]),
    ];
    let one_by_one = db.like().await;
    for event in &events {
        one_by_one.store.apply_projection("test", std::slice::from_ref(event), 1).await.unwrap();
    }
    assert_eq!(db.store.apply_projection("test", &events, 1).await.unwrap(), 3);
    let read = |store: &Store| {
        let store = store.clone();
        async move {
            (
                store.daily_volume("2026-12-01", "2026-12-01").await.unwrap(),
                store.daily_customers("2026-12-01", "2026-12-01").await.unwrap(),
                store.projected_balances(customer).await.unwrap(),
            )
        }
    };
    let batched = read(&db.store).await;
    assert_eq!(batched, read(&one_by_one.store).await);
    assert_eq!((batched.0[0].volume, batched.0[0].count), (i64::MAX, 3));
    assert_eq!(batched.2[0].posted, 70);
    one_by_one.store.close().await;
}

/// A reconciliation is written with its marks and events or not at all, and a transfer is
/// matched by one reconciliation ever: a second that names it too writes nothing, also
/// when the two race.
async fn a_transfer_is_reconciled_at_most_once(db: &TestDb) {
    use store::ReconciliationRow;
    let store = &db.store;
    let row = |lines: u64| ReconciliationRow {
        id: Uuid::now_v7(),
        account: "card_settlement".into(),
        currency: "USD".into(),
        lines,
        matched: lines,
        mismatched: 0,
        unmatched_lines: 0,
        unmatched_transfers: 0,
        report: Some(format!("{{\"lines\":{lines}}}")),
        created_at: 7,
    };
    let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let event = || NewEvent {
        id: Uuid::now_v7(),
        event_type: "coffer.reconciliation.unmatched".into(),
        customer_id: None,
        payload: "{}".into(),
        created_at: 7,
    };
    let first = row(2);
    assert!(store.insert_reconciliation(&first, &[(a, 2), (b, 3)], &[event()]).await.unwrap());
    // Names `b` again: refused whole — no row, no mark of `c`, no event.
    let second = row(2);
    assert!(!store.insert_reconciliation(&second, &[(c, 2), (b, 3)], &[event()]).await.unwrap());
    assert_eq!(store.reconciliation(second.id).await.unwrap(), None);
    let marked = store.reconciled_by(&[a, b, c]).await.unwrap();
    assert_eq!(marked, HashMap::from([(a, first.id), (b, first.id)]));
    let stored = store.reconciliation(first.id).await.unwrap().unwrap();
    assert_eq!(stored, first);
    let listed = store.reconciliations(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].report, None, "lists carry no report");
    assert_eq!(store.events_after(0, 10).await.unwrap().len(), 1, "only the first one's event");

    // Racing: eight reconciliations of the same two fresh transfers; exactly one wins.
    let (d, e) = (Uuid::from_u128(4), Uuid::from_u128(5));
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let reconciliation = row(2);
            tokio::spawn(
                async move { store.insert_reconciliation(&reconciliation, &[(d, 2), (e, 3)], &[]).await },
            )
        })
        .collect();
    let mut won = 0;
    for attempt in attempts {
        won += usize::from(attempt.await.unwrap().unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(store.reconciliations(100).await.unwrap().len(), 2);
}
