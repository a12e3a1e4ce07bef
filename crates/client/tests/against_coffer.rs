//! The client against a real Coffer server started in this process (SQLite): every call
//! with its typed values and errors; retries — before the server listens, and after a
//! lost answer (the retry hears `exists`); the stream handle; the Batcher from 50
//! concurrent tasks (each result the right one, money conserved, every transfer stored
//! once), across a lost stream, and across a server restart.

mod common;

use std::{collections::HashSet, time::Duration};

use coffer_client::{
    AccountFlags, Batcher, BatcherOptions, Client, CreateAccountResult, CreateTransferResult, Error,
    HistoryQuery, Order, Side, TransferFlags,
};
use common::{ADMIN_KEY, LosingProxy, TestServer, account, new_id, patient, transfer};
use tokio::task::JoinSet;

/// Lookups of many ids, in batches of at most 8,190.
async fn lookup_accounts(client: &Client, ids: &[u128]) -> Vec<coffer_client::Account> {
    let mut found = Vec::new();
    for chunk in ids.chunks(coffer_client::BATCH_EVENTS_MAX) {
        found.extend(client.lookup_accounts(chunk).await.unwrap());
    }
    found
}

async fn lookup_transfers(client: &Client, ids: &[u128]) -> Vec<coffer_client::Transfer> {
    let mut found = Vec::new();
    for chunk in ids.chunks(coffer_client::BATCH_EVENTS_MAX) {
        found.extend(client.lookup_transfers(chunk).await.unwrap());
    }
    found
}

/// Debits == credits over `accounts` (which must be all the accounts any transfer
/// touched), posted and pending alike, and no wallet spent more than it was credited.
fn assert_conserved(accounts: &[coffer_client::Account]) {
    let sum = |field: fn(&coffer_client::Account) -> u64| -> u128 {
        accounts.iter().map(|account| u128::from(field(account))).sum()
    };
    assert_eq!(sum(|a| a.debits_posted), sum(|a| a.credits_posted), "money conserved: {accounts:?}");
    assert_eq!(sum(|a| a.debits_pending), sum(|a| a.credits_pending), "reservations balance: {accounts:?}");
    for account in accounts {
        if account.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
            assert!(
                account.debits_posted + account.debits_pending <= account.credits_posted,
                "a wallet went negative: {account:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_transfers_lookups_and_history() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let (funding, wallet, history) = (new_id(), new_id(), new_id());
    let history_account = coffer_client::Account { flags: AccountFlags::HISTORY, ..account(history, false) };
    let created = client
        .create_accounts(&[account(funding, false), account(wallet, true), history_account])
        .await
        .unwrap();
    assert_eq!(created, [CreateAccountResult::Ok; 3]);
    let again = client.create_accounts(&[account(wallet, true)]).await.unwrap();
    assert_eq!(again, [CreateAccountResult::Exists], "the same account again is `exists`");
    let different = client.create_accounts(&[account(wallet, false)]).await.unwrap();
    assert_eq!(different, [CreateAccountResult::ExistsWithDifferentFlags]);

    // Five transfers into the wallet (two linked), one it cannot afford, one pending.
    let ids: Vec<u128> = (0..7).map(|_| new_id()).collect();
    let mut linked = transfer(ids[1], funding, wallet, 10);
    linked.flags = TransferFlags::LINKED;
    let mut pending = transfer(ids[6], wallet, history, 5);
    pending.flags = TransferFlags::PENDING;
    let batch = [
        transfer(ids[0], funding, wallet, 100),
        linked,
        transfer(ids[2], funding, wallet, 10),
        transfer(ids[3], funding, history, 7),
        transfer(ids[4], wallet, history, 1_000),
        transfer(ids[5], wallet, history, 20),
        pending,
    ];
    let results = client.create_transfers(&batch).await.unwrap();
    use CreateTransferResult as R;
    assert_eq!(results, [R::Ok, R::Ok, R::Ok, R::Ok, R::ExceedsCredits, R::Ok, R::Ok]);
    let again = client.create_transfers(&batch[..1]).await.unwrap();
    assert_eq!(again, [R::Exists], "ids are idempotency keys");
    let again = client.create_transfers(&batch[4..5]).await.unwrap();
    assert_eq!(again, [R::IdAlreadyFailed], "a failure that depended on the moment stays failed");

    let accounts = client.lookup_accounts(&[wallet, 7, funding]).await.unwrap();
    assert_eq!(accounts.len(), 2, "the unknown id is left out");
    assert_eq!((accounts[0].id, accounts[1].id), (wallet, funding), "in the order asked");
    let wallet_account = accounts[0];
    assert_eq!(wallet_account.flags, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    assert_eq!((wallet_account.credits_posted, wallet_account.debits_posted), (120, 20));
    assert_eq!(wallet_account.debits_pending, 5);
    assert!(wallet_account.timestamp > 0);
    let stored = client.lookup_transfers(&[ids[4], ids[6], ids[0]]).await.unwrap();
    assert_eq!(stored.len(), 2, "the failed transfer was not stored");
    assert_eq!(
        coffer_client::Transfer { timestamp: 0, ..stored[0] },
        pending,
        "stored as sent, flags included"
    );
    assert_eq!(coffer_client::Transfer { timestamp: 0, ..stored[1] }, batch[0]);

    // The wallet's transfers, two per page, oldest first: 0, 1, 2, 5, 6.
    let mut query = HistoryQuery { page_size: 2, order: Order::Ascending, ..HistoryQuery::default() };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = client.get_account_transfers(wallet, Side::Both, &query).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|transfer| transfer.id));
        match query.after(&page) {
            Some(next) => query = next,
            None => break,
        }
    }
    assert_eq!(seen, [ids[0], ids[1], ids[2], ids[5], ids[6]]);
    assert_eq!(pages, 3);
    let debits = client.get_account_transfers(wallet, Side::Debits, &HistoryQuery::default()).await.unwrap();
    let debits: Vec<u128> = debits.items.iter().map(|transfer| transfer.id).collect();
    assert_eq!(debits, [ids[6], ids[5]], "newest first by default");

    let balances = client.get_account_balances(history, &HistoryQuery::default()).await.unwrap();
    assert_eq!(balances.next_page_token, None);
    let credits: Vec<u64> = balances.items.iter().map(|balance| balance.credits_posted).collect();
    // Newest first: after the pending transfer (5 pending), after 20 posted, after 7 posted.
    assert_eq!(credits, [27, 27, 7], "the history account's balance after each transfer");
    assert!(balances.items.iter().all(|balance| balance.account_id == history));
    let pending: Vec<u64> = balances.items.iter().map(|balance| balance.credits_pending).collect();
    assert_eq!(pending, [5, 0, 0]);

    let everything = client.lookup_accounts(&[funding, wallet, history]).await.unwrap();
    assert_conserved(&everything);
    assert_eq!(client.retries(), 0, "nothing needed a retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_keep_the_reason_and_the_fields() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let (funding, wallet, plain) = (new_id(), new_id(), new_id());
    client
        .create_accounts(&[account(funding, false), account(wallet, true), account(plain, false)])
        .await
        .unwrap();

    let too_much = transfer(new_id(), funding, wallet, ledger::AMOUNT_MAX + 1);
    let refused =
        client.create_transfers(&[transfer(new_id(), funding, wallet, 1), too_much]).await.unwrap_err();
    let Error::InvalidArgument(rejection) = &refused else { panic!("{refused:?}") };
    assert_eq!(rejection.reason.as_deref(), Some("validation_failed"));
    let fields: Vec<&str> = refused.violations().iter().map(|violation| violation.field.as_str()).collect();
    assert_eq!(fields, ["/1/amount"], "{refused}");

    let unknown =
        client.get_account_transfers(new_id(), Side::Both, &HistoryQuery::default()).await.unwrap_err();
    assert!(matches!(unknown, Error::NotFound(_)), "{unknown:?}");
    assert_eq!(unknown.reason(), Some("account_not_found"));

    let no_history = client.get_account_balances(plain, &HistoryQuery::default()).await.unwrap_err();
    assert!(matches!(no_history, Error::InvalidArgument(_)), "{no_history:?}");
    assert_eq!(no_history.violations()[0].field, "id");

    let stranger = Client::builder(&server.endpoint, "not-the-admin-key").connect().await.unwrap();
    let denied = stranger.lookup_accounts(&[wallet]).await.unwrap_err();
    assert!(matches!(denied, Error::Unauthenticated(_)), "{denied:?}");
    assert_eq!(denied.reason(), Some("unauthorized"));
    assert_eq!(stranger.retries(), 0, "only UNAVAILABLE is retried");

    // Refused before sending: batches the server would refuse.
    assert!(matches!(client.create_transfers(&[]).await, Err(Error::InvalidRequest(_))));
    let oversized: Vec<u128> = (1..=coffer_client::BATCH_EVENTS_MAX as u128 + 1).collect();
    assert!(matches!(client.lookup_transfers(&oversized).await, Err(Error::InvalidRequest(_))));
    assert!(matches!(Client::builder("not a url", ADMIN_KEY).connect_lazy(), Err(Error::InvalidRequest(_))));
}

/// The client is made before the server listens: the first attempts are refused
/// (`UNAVAILABLE`), and the call succeeds once the server is up, within its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_made_before_the_server_listens_is_retried_until_it_does() {
    let address = common::free_port();
    let endpoint = format!("http://{address}");
    let client = Client::builder(&endpoint, ADMIN_KEY).retry(patient()).connect_lazy().unwrap();
    let (funding, wallet) = (new_id(), new_id());
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client.create_accounts(&[account(funding, false), account(wallet, true)]).await
        })
    };
    // Start the server only once the client has been refused at least once.
    for _ in 0..1_000 {
        if client.retries() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(client.retries() > 0, "the client was refused while nothing listened");
    assert!(!call.is_finished(), "and is still trying");
    let server = TestServer::start_in(tempfile::tempdir().unwrap(), address).await;
    let created = call.await.unwrap().expect("the call succeeds once the server listens");
    assert_eq!(created, [CreateAccountResult::Ok, CreateAccountResult::Ok]);
    let found = server.client().await.lookup_accounts(&[funding, wallet]).await.unwrap();
    assert_eq!(found.len(), 2);

    // A call that cannot succeed in time ends at its deadline, not after every attempt.
    let nowhere = format!("http://{}", common::free_port());
    let hasty = Client::builder(nowhere, ADMIN_KEY)
        .retry(patient())
        .call_timeout(Duration::from_millis(300))
        .connect_lazy()
        .unwrap();
    let started = std::time::Instant::now();
    let error = hasty.lookup_accounts(&[funding]).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline bounds the retries: {:?}",
        started.elapsed()
    );
    // A refused connection answers at once: the client stops when the next backoff
    // would end past the deadline, with the last refusal.
    let Error::Unavailable { attempts, last } = error else { panic!("{error:?}") };
    assert!(attempts > 1 && attempts < patient().attempts_max, "{attempts} attempts within 300 ms");
    assert_eq!(last.reason, None, "a transport refusal has no ErrorInfo: {last:?}");
}

/// The server commits a batch but its answer is lost: the retry, with the same ids,
/// hears `exists`, and the transfer is in the ledger once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_a_lost_answer_reports_exists_and_applies_nothing_twice() {
    let server = TestServer::start().await;
    let (proxy, endpoint) = LosingProxy::start(&server.endpoint).await;
    let client = Client::builder(endpoint, ADMIN_KEY).connect().await.unwrap();
    let (funding, wallet) = (new_id(), new_id());
    client.create_accounts(&[account(funding, false), account(wallet, true)]).await.unwrap();
    proxy.lose_next_answer.store(true, std::sync::atomic::Ordering::SeqCst);
    let (first, second) = (new_id(), new_id());
    let results = client
        .create_transfers(&[transfer(first, funding, wallet, 30), transfer(second, funding, wallet, 12)])
        .await
        .unwrap();
    assert_eq!(results, [CreateTransferResult::Exists; 2], "committed by the attempt whose answer was lost");
    assert_eq!(client.retries(), 1);
    let found = client.lookup_accounts(&[wallet]).await.unwrap();
    assert_eq!(found[0].credits_posted, 42, "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_answers_batches_in_order_with_several_in_flight() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let (funding, wallet, shop) = (new_id(), new_id(), new_id());
    client
        .create_accounts(&[account(funding, false), account(wallet, true), account(shop, false)])
        .await
        .unwrap();
    let mut stream = client.stream().await.unwrap();
    let mut answers = Vec::new();
    // Batch n brings 10 into the wallet and spends 10; the first spend fails (nothing
    // yet), every later one succeeds only if the batch before committed first.
    for round in 0..50u64 {
        while !stream.has_room() {
            answers.push(stream.next().await.unwrap().expect("a batch in flight"));
        }
        let batch = [transfer(new_id(), wallet, shop, 10), transfer(new_id(), funding, wallet, 10)];
        let batch_id = stream.send(&batch).await.unwrap();
        assert_eq!(batch_id, round + 1);
    }
    let full = stream.send(&[transfer(new_id(), funding, wallet, 1)]).await;
    assert!(matches!(full, Err(Error::InvalidRequest(_))), "no room: {full:?}");
    answers.extend(stream.finish().await.unwrap());
    assert_eq!(answers.len(), 50);
    for (position, answer) in answers.iter().enumerate() {
        assert_eq!(answer.batch_id, position as u64 + 1, "in order");
        let spend =
            if position == 0 { CreateTransferResult::ExceedsCredits } else { CreateTransferResult::Ok };
        assert_eq!(answer.results, [spend, CreateTransferResult::Ok], "batch {}", answer.batch_id);
    }
    let found = client.lookup_accounts(&[funding, wallet, shop]).await.unwrap();
    assert_eq!((found[1].credits_posted, found[1].debits_posted), (500, 490));
    assert_conserved(&found);
}

/// 50 tasks, each paying out of its own wallet (funded with `FUNDS`) one unit at a time,
/// `FUNDS + OVERDRAWN` times: each task's first `FUNDS` transfers must answer `ok` and the
/// rest `exceeds_credits` — whatever batch each rode in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_batcher_answers_fifty_tasks_each_with_its_own_results() {
    const TASKS: usize = 50;
    const FUNDS: u64 = 100;
    const OVERDRAWN: u64 = 20;
    let server = TestServer::start().await;
    let client = server.client().await;
    let (funding, sink) = (new_id(), new_id());
    let wallets: Vec<u128> = (0..TASKS).map(|_| new_id()).collect();
    let mut accounts = vec![account(funding, false), account(sink, false)];
    accounts.extend(wallets.iter().map(|wallet| account(*wallet, true)));
    assert!(
        client
            .create_accounts(&accounts)
            .await
            .unwrap()
            .iter()
            .all(|result| *result == CreateAccountResult::Ok)
    );
    let funding_transfers: Vec<_> =
        wallets.iter().map(|wallet| transfer(new_id(), funding, *wallet, FUNDS)).collect();
    assert!(
        client
            .create_transfers(&funding_transfers)
            .await
            .unwrap()
            .iter()
            .all(|result| *result == CreateTransferResult::Ok)
    );

    let batcher = Batcher::start(&client, BatcherOptions::default()).unwrap();
    let mut tasks = JoinSet::new();
    for wallet in wallets.clone() {
        let batcher = batcher.clone();
        tasks.spawn(async move {
            let mut applied = Vec::new();
            for sequence in 0..FUNDS + OVERDRAWN {
                let id = new_id();
                let result = batcher.submit(transfer(id, wallet, sink, 1)).await.expect("a result");
                let expected = if sequence < FUNDS {
                    CreateTransferResult::Ok
                } else {
                    CreateTransferResult::ExceedsCredits
                };
                assert_eq!(result, expected, "transfer {sequence} of wallet {wallet:#x}");
                if result == CreateTransferResult::Ok {
                    applied.push(id);
                }
            }
            applied
        });
    }
    let mut applied = Vec::new();
    while let Some(task) = tasks.join_next().await {
        applied.extend(task.expect("every task got its own results"));
    }
    let stats = batcher.stats();
    let submitted = (TASKS as u64) * (FUNDS + OVERDRAWN);
    assert_eq!(stats.transfers, submitted);
    assert!(stats.batches < submitted, "concurrent submissions shared batches: {stats:?}");
    assert_eq!((stats.streams, stats.batches_resent), (1, 0), "{stats:?}");

    let mut ids = vec![funding, sink];
    ids.extend(&wallets);
    let found = lookup_accounts(&client, &ids).await;
    assert_eq!(found.len(), ids.len());
    assert_conserved(&found);
    assert_eq!(found[1].credits_posted, TASKS as u64 * FUNDS, "the sink got every applied transfer");
    assert!(found[2..].iter().all(|wallet| wallet.debits_posted == FUNDS), "each wallet spent what it had");
    let stored = lookup_transfers(&client, &applied).await;
    assert_eq!(stored.len(), applied.len(), "every ok transfer is stored");
    let unique: HashSet<u128> = stored.iter().map(|transfer| transfer.id).collect();
    assert_eq!(unique.len(), applied.len());
}

/// The stream's first batch is committed but its answer lost (the stream ends with
/// UNAVAILABLE): the Batcher resends it, with the same id, on a new stream and the
/// submitter hears `exists`; later submissions go through the new stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_batcher_resends_a_lost_batch_with_the_same_ids() {
    let server = TestServer::start().await;
    let (proxy, endpoint) = LosingProxy::start(&server.endpoint).await;
    let client = Client::builder(endpoint, ADMIN_KEY).connect().await.unwrap();
    let (funding, wallet) = (new_id(), new_id());
    client.create_accounts(&[account(funding, false), account(wallet, true)]).await.unwrap();
    proxy.lose_next_stream.store(true, std::sync::atomic::Ordering::SeqCst);
    let batcher = Batcher::start(&client, BatcherOptions::default()).unwrap();
    let lost = batcher.submit(transfer(new_id(), funding, wallet, 100)).await.unwrap();
    assert_eq!(lost, CreateTransferResult::Exists, "the lost stream had committed it");
    let mut later = JoinSet::new();
    for _ in 0..10 {
        let batcher = batcher.clone();
        later.spawn(async move { batcher.submit(transfer(new_id(), funding, wallet, 1)).await });
    }
    while let Some(result) = later.join_next().await {
        assert_eq!(result.unwrap().unwrap(), CreateTransferResult::Ok);
    }
    let stats = batcher.stats();
    assert_eq!((stats.streams, stats.batches_resent), (2, 1), "{stats:?}");
    assert_eq!(proxy.streams.load(std::sync::atomic::Ordering::SeqCst), 2);
    let found = client.lookup_accounts(&[wallet]).await.unwrap();
    assert_eq!(found[0].credits_posted, 110, "the lost batch was applied once");
}

/// The server restarts (graceful shutdown, then a new process on the same database and
/// port) while 20 tasks keep submitting: every submission still gets `ok` or `exists`,
/// and the ledger holds each transfer once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_batcher_carries_on_across_a_server_restart() {
    const TASKS: usize = 20;
    const PER_TASK: u64 = 150;
    let server = TestServer::start_in(tempfile::tempdir().unwrap(), common::free_port()).await;
    let client = Client::builder(&server.endpoint, ADMIN_KEY).retry(patient()).connect().await.unwrap();
    let (funding, sink) = (new_id(), new_id());
    let wallets: Vec<u128> = (0..TASKS).map(|_| new_id()).collect();
    let mut accounts = vec![account(funding, false), account(sink, false)];
    accounts.extend(wallets.iter().map(|wallet| account(*wallet, true)));
    client.create_accounts(&accounts).await.unwrap();
    let funding_transfers: Vec<_> =
        wallets.iter().map(|wallet| transfer(new_id(), funding, *wallet, PER_TASK)).collect();
    client.create_transfers(&funding_transfers).await.unwrap();

    let batcher = Batcher::start(&client, BatcherOptions::default()).unwrap();
    let mut tasks = JoinSet::new();
    for wallet in wallets.clone() {
        let batcher = batcher.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..PER_TASK {
                let id = new_id();
                let result = batcher.submit(transfer(id, wallet, sink, 1)).await;
                assert!(
                    matches!(result, Ok(CreateTransferResult::Ok | CreateTransferResult::Exists)),
                    "{result:?}"
                );
                ids.push(id);
                // Spread the load over the restart.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            ids
        });
    }
    // Restart once a third of the transfers are answered.
    let third = (TASKS as u64) * PER_TASK / 3;
    while batcher.stats().transfers < third {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = server.restart().await;
    let mut ids = Vec::new();
    while let Some(task) = tasks.join_next().await {
        ids.extend(task.expect("every submission got ok or exists"));
    }
    let stats = batcher.stats();
    assert!(stats.streams >= 2, "the stream was replaced after the restart: {stats:?}");
    assert_eq!(stats.transfers, TASKS as u64 * PER_TASK);

    let checker = server.client().await;
    let stored = lookup_transfers(&checker, &ids).await;
    assert_eq!(stored.len(), ids.len(), "every transfer is stored");
    let mut all = vec![funding, sink];
    all.extend(&wallets);
    let found = lookup_accounts(&checker, &all).await;
    assert_conserved(&found);
    assert_eq!(found[1].credits_posted, TASKS as u64 * PER_TASK, "each transfer applied once");
    assert!(found[2..].iter().all(|wallet| wallet.debits_posted == PER_TASK));
}
