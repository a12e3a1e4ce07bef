//! The payment flows against a real store and commit pipeline, with the built-in mock
//! provider: top-ups and withdrawals in every outcome, recovery after a timeout or a
//! crash between charge and post, and one request racing itself — on SQLite, and on
//! PostgreSQL when COFFER_TEST_DATABASE_URL is set.

mod common;

use std::{sync::Arc, time::Duration};

use coffer::{
    commit::{CommitPipeline, PipelineConfig},
    payments::{
        MockProvider, MockSettings, PaymentError, PaymentGateway, PaymentRequest, Payments,
        gateway::{ChargeRequest, ProviderOutcome},
    },
    wallets::{
        Currency, Recipient, TransferRequest, WalletError, Wallets, money::account_code, service::Fees,
    },
};
use common::{Backend, backends};
use store::{PaymentKind, PaymentRow, PaymentStatus, Store, StoreOptions, WalletType};
use uuid::Uuid;

/// A top-up or withdrawal request.
fn ask(customer_id: Uuid, wallet_id: Uuid, id: Uuid, amount: u64, token: &str) -> PaymentRequest {
    PaymentRequest { customer_id, wallet_id, id, amount, token: token.into() }
}

struct Rig {
    store: Store,
    wallets: Arc<Wallets>,
    payments: Arc<Payments>,
    provider: Arc<MockProvider>,
    /// For writing the ledger directly, as a crashed process left it.
    commit: CommitPipeline,
    /// Dropped with the rig, which closes the pipeline.
    pipeline: coffer::commit::pipeline::PipelineTask,
    /// The PostgreSQL server and scratch database, dropped by `finish`.
    database: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

async fn rig(backend: &Backend) -> Rig {
    rig_with_fees(backend, Fees::default()).await
}

async fn rig_with_fees(backend: &Backend, fees: Fees) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let (url, database) = match backend {
        Backend::Sqlite => (format!("sqlite:{}", dir.path().join("payments.db").display()), None),
        Backend::Postgres(server) => {
            let (url, name) = common::create_database(server).await;
            (url, Some((server.clone(), name)))
        }
    };
    let store = Store::open(&url, StoreOptions { max_connections: 6 }).await.unwrap();
    store.migrate().await.unwrap();
    let (pipeline, task) = CommitPipeline::start(store.clone(), PipelineConfig { queue_requests_max: 1024 });
    let wallets = Arc::new(Wallets::with_fees(store.clone(), pipeline.clone(), fees));
    let provider = Arc::new(MockProvider::new(MockSettings { latency: Duration::ZERO, failure_rate: 0.0 }));
    let payments = Arc::new(Payments::new(
        store.clone(),
        pipeline.clone(),
        wallets.clone(),
        provider.clone(),
        provider.clone(),
    ));
    Rig { store, wallets, payments, provider, commit: pipeline, pipeline: task, database, _dir: dir }
}

impl Rig {
    /// Drains the pipeline, closes the store and drops a PostgreSQL scratch database.
    async fn finish(self) {
        self.pipeline.shutdown().await;
        self.store.close().await;
        if let Some((server, name)) = &self.database {
            common::drop_database(server, name).await;
        }
    }

    async fn wallet(&self, customer: Uuid) -> Uuid {
        let id = Uuid::now_v7().as_u128();
        let usd = Currency::parse("USD").unwrap();
        self.wallets.create(customer, id, usd, WalletType::Wallet, None, 0).await.unwrap().id
    }

    async fn posted(&self, wallet: Uuid) -> u64 {
        let row = self.store.wallet(wallet).await.unwrap().unwrap();
        row.credits_posted - row.debits_posted
    }

    /// Records a pending top-up of 5,000 the way a request does before it calls the gateway.
    async fn record(&self, id: Uuid, customer: Uuid, wallet: Uuid) {
        let row = PaymentRow {
            id,
            customer_id: customer,
            wallet_id: wallet,
            amount: 5_000,
            currency: "USD".into(),
            status: PaymentStatus::Pending,
            failure_code: None,
            provider_id: None,
            created_at: 1,
            updated_at: 1,
        };
        let record = store::PaymentChange::Record(PaymentKind::TopUp, row);
        let command = store::Command::CreateTransfersWithNotes {
            transfers: Vec::new(),
            notes: Vec::new(),
            events: Vec::new(),
            response: None,
            payments: Some(store::PaymentsDraft(Arc::new(move |_, _| vec![record.clone()]))),
        };
        assert!(matches!(self.commit.submit(command).await.unwrap(), store::Outcome::Noted(_)));
    }

    async fn top_up(&self, customer: Uuid, wallet: Uuid, id: Uuid, token: &str) -> PaymentRow {
        self.payments.top_up(ask(customer, wallet, id, 5_000, token)).await.unwrap()
    }
}

#[tokio::test]
async fn top_ups_succeed_decline_and_recover_from_a_timeout() {
    for backend in backends() {
        let rig = rig(&backend).await;
        let customer = Uuid::now_v7();
        let wallet = rig.wallet(customer).await;

        let paid = rig.top_up(customer, wallet, Uuid::now_v7(), "tok_visa").await;
        assert_eq!(paid.status, PaymentStatus::Succeeded);
        assert!(paid.provider_id.is_some());
        assert_eq!(rig.posted(wallet).await, 5_000);

        let declined = rig.top_up(customer, wallet, Uuid::now_v7(), "tok_chargeDeclined").await;
        assert_eq!(
            (declined.status, declined.failure_code.as_deref()),
            (PaymentStatus::Failed, Some("card_declined"))
        );
        let broke = rig.top_up(customer, wallet, Uuid::now_v7(), "tok_insufficientFunds").await;
        assert_eq!(broke.failure_code.as_deref(), Some("insufficient_funds"));
        assert_eq!(rig.posted(wallet).await, 5_000, "declines move nothing");

        // The charge went through but its answer was lost: pending until recovery.
        let timed_out = rig.top_up(customer, wallet, Uuid::now_v7(), "tok_timeout").await;
        assert_eq!(timed_out.status, PaymentStatus::Pending);
        assert_eq!(rig.posted(wallet).await, 5_000);
        assert_eq!(rig.payments.recover(0).await.unwrap(), 1);
        assert_eq!(rig.payments.recover(0).await.unwrap(), 0, "nothing left to recover");
        let recovered = rig.payments.get(PaymentKind::TopUp, customer, timed_out.id).await.unwrap();
        assert_eq!(recovered.status, PaymentStatus::Succeeded);
        assert_eq!(rig.posted(wallet).await, 10_000, "credited exactly once");

        // Someone else's top-up is not found.
        let stranger = rig.payments.get(PaymentKind::TopUp, Uuid::now_v7(), paid.id).await;
        assert!(matches!(stranger, Err(PaymentError::NotFound)));
        rig.finish().await;
    }
}

/// The process charged the card and died before posting: the top-up is pending with a
/// charge at the gateway. Recovery credits it once; a retry of the request afterwards
/// changes nothing.
#[tokio::test]
async fn crash_between_charge_and_post_is_credited_once() {
    for backend in backends() {
        let rig = rig(&backend).await;
        let customer = Uuid::now_v7();
        let wallet = rig.wallet(customer).await;
        let id = Uuid::now_v7();
        rig.record(id, customer, wallet).await;
        let charge = ChargeRequest {
            idempotency_key: id.to_string(),
            amount: 5_000,
            currency: "USD".into(),
            payment_method: "tok_visa".into(),
        };
        assert!(matches!(rig.provider.charge(charge).await, Ok(ProviderOutcome::Succeeded { .. })));
        assert_eq!(rig.posted(wallet).await, 0, "the crash came before the post");

        assert_eq!(rig.payments.recover(0).await.unwrap(), 1);
        assert_eq!(rig.posted(wallet).await, 5_000);
        // The client retries the original request: same id, nothing more.
        let retried = rig.top_up(customer, wallet, id, "tok_visa").await;
        assert_eq!(retried.status, PaymentStatus::Succeeded);
        assert_eq!(rig.payments.recover(0).await.unwrap(), 0);
        assert_eq!(rig.posted(wallet).await, 5_000, "credited exactly once");
        rig.finish().await;
    }
}

/// The process credited the wallet and died before marking the top-up succeeded, and the
/// provider has since lost the charge (the built-in mock forgets everything when the
/// process dies). Recovery must trust the ledger's credit, not fail a top-up whose money
/// was already credited. (Found by the crash test: before the fix, such a top-up ended
/// `failed` with its 5,000 in the wallet.)
#[tokio::test]
async fn crash_between_credit_and_status_trusts_the_ledger() {
    for backend in backends() {
        let rig = rig(&backend).await;
        let customer = Uuid::now_v7();
        let wallet = rig.wallet(customer).await;
        let id = Uuid::now_v7();
        rig.record(id, customer, wallet).await;
        let usd = Currency::parse("USD").unwrap();
        let settlement = rig.wallets.system_account(usd, account_code::CARD_SETTLEMENT).await.unwrap();
        let credit = ledger::Transfer {
            id: coffer::wallets::derive_id(id, "top-up", ""),
            debit_account_id: settlement,
            credit_account_id: wallet.as_u128(),
            amount: 5_000,
            ledger: usd.ledger(),
            code: coffer::wallets::money::transfer_code::TOP_UP,
            user_data_128: id.as_u128(),
            ..Default::default()
        };
        let note =
            store::TransferNote { transfer_id: credit.id, kind: store::NoteKind::TopUp, description: None };
        let outcome = rig
            .commit
            .submit(store::Command::CreateTransfersWithNotes {
                transfers: vec![credit],
                notes: vec![note],
                events: Vec::new(),
                response: None,
                payments: None,
            })
            .await
            .unwrap();
        assert!(
            matches!(outcome, store::Outcome::Noted(ref noted) if noted.results == [ledger::CreateTransferResult::Ok])
        );
        assert_eq!(rig.posted(wallet).await, 5_000);

        assert_eq!(rig.payments.recover(0).await.unwrap(), 1);
        let recovered = rig.payments.get(PaymentKind::TopUp, customer, id).await.unwrap();
        assert_eq!(recovered.status, PaymentStatus::Succeeded, "the ledger credited it");
        assert_eq!(rig.posted(wallet).await, 5_000, "credited exactly once");
        rig.finish().await;
    }
}

/// Fifty copies of one top-up at once: one charge, one credit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_identical_top_ups_credit_once() {
    for backend in backends() {
        let rig = Arc::new(rig(&backend).await);
        let customer = Uuid::now_v7();
        let wallet = rig.wallet(customer).await;
        let id = Uuid::now_v7();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let rig = rig.clone();
                tokio::spawn(async move { rig.top_up(customer, wallet, id, "tok_visa").await })
            })
            .collect();
        for task in tasks {
            let status = task.await.unwrap().status;
            assert_ne!(status, PaymentStatus::Failed);
        }
        rig.payments.recover(0).await.unwrap();
        assert_eq!(rig.posted(wallet).await, 5_000);
        let charged = rig.provider.charge_status(&id.to_string()).await.unwrap();
        assert!(matches!(charged, Some(ProviderOutcome::Succeeded { .. })));
        Arc::into_inner(rig).expect("every task finished").finish().await;
    }
}

#[tokio::test]
async fn withdrawals_hold_then_post_or_void() {
    for backend in backends() {
        let rig = rig(&backend).await;
        let customer = Uuid::now_v7();
        let wallet = rig.wallet(customer).await;
        rig.top_up(customer, wallet, Uuid::now_v7(), "tok_visa").await;

        let paid =
            rig.payments.withdraw(ask(customer, wallet, Uuid::now_v7(), 1_000, "ba_ok")).await.unwrap();
        assert_eq!(paid.status, PaymentStatus::Succeeded);
        assert_eq!(rig.posted(wallet).await, 4_000);

        let refused =
            rig.payments.withdraw(ask(customer, wallet, Uuid::now_v7(), 1_000, "ba_fail")).await.unwrap();
        assert_eq!(
            (refused.status, refused.failure_code.as_deref()),
            (PaymentStatus::Failed, Some("account_closed"))
        );
        let row = rig.store.wallet(wallet).await.unwrap().unwrap();
        assert_eq!((row.debits_pending, rig.posted(wallet).await), (0, 4_000), "the hold was released");

        let too_much = rig.payments.withdraw(ask(customer, wallet, Uuid::now_v7(), 4_001, "ba_ok")).await;
        assert!(matches!(too_much, Err(PaymentError::Wallet(WalletError::InsufficientFunds))));

        let slow =
            rig.payments.withdraw(ask(customer, wallet, Uuid::now_v7(), 500, "ba_timeout")).await.unwrap();
        assert_eq!(slow.status, PaymentStatus::Pending);
        assert_eq!(rig.store.wallet(wallet).await.unwrap().unwrap().debits_pending, 500, "held meanwhile");
        assert_eq!(rig.payments.recover(0).await.unwrap(), 1);
        assert_eq!(rig.posted(wallet).await, 3_500);
        assert_eq!(rig.store.wallet(wallet).await.unwrap().unwrap().debits_pending, 0);
        rig.finish().await;
    }
}

/// Fees ride with their operation: a top-up pays its fee from the credit, a transfer's
/// fee must fit in the balance with the amount or neither moves, and a retried transfer
/// charges its fee once.
#[tokio::test]
async fn fees_are_linked_to_their_operation() {
    for backend in backends() {
        let rig =
            rig_with_fees(&backend, Fees { transfer_bps: 100, top_up_bps: 250, withdrawal_bps: 200 }).await;
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (from, to) = (rig.wallet(alice).await, rig.wallet(bob).await);
        rig.top_up(alice, from, Uuid::now_v7(), "tok_visa").await;
        assert_eq!(rig.posted(from).await, 5_000 - 125, "2.5 % top-up fee");

        let send = |amount| TransferRequest {
            from_wallet_id: from,
            to: Recipient::Wallet(to),
            amount,
            description: None,
        };
        // 4,875 left: sending 4,875 would need 48 more for the fee.
        let refused = rig.wallets.transfer(alice, 77, send(4_875)).await;
        assert!(matches!(refused, Err(WalletError::InsufficientFunds)), "{refused:?}");
        assert_eq!(
            (rig.posted(from).await, rig.posted(to).await),
            (4_875, 0),
            "neither the amount nor the fee moved"
        );

        rig.wallets.transfer(alice, 78, send(1_000)).await.unwrap();
        rig.wallets.transfer(alice, 78, send(1_000)).await.unwrap();
        assert_eq!(
            (rig.posted(from).await, rig.posted(to).await),
            (4_875 - 1_010, 1_000),
            "once, with a 1 % fee"
        );

        let usd = Currency::parse("USD").unwrap();
        let fees = rig.wallets.system_account(usd, account_code::FEES).await.unwrap();
        let account = rig.store.account(fees).await.unwrap().unwrap();
        assert_eq!(account.credits_posted, 125 + 10);

        // Withdrawals hold their fee with them: posted on success, released on refusal.
        let before = rig.posted(from).await;
        let paid = rig.payments.withdraw(ask(alice, from, Uuid::now_v7(), 1_000, "ba_ok")).await.unwrap();
        assert_eq!(paid.status, PaymentStatus::Succeeded);
        assert_eq!(rig.posted(from).await, before - 1_020);
        let refused =
            rig.payments.withdraw(ask(alice, from, Uuid::now_v7(), 1_000, "ba_fail")).await.unwrap();
        assert_eq!(refused.status, PaymentStatus::Failed);
        let wallet = rig.store.wallet(from).await.unwrap().unwrap();
        assert_eq!(
            (rig.posted(from).await, wallet.debits_pending),
            (before - 1_020, 0),
            "hold and fee released"
        );
        let account = rig.store.account(fees).await.unwrap().unwrap();
        assert_eq!((account.credits_posted, account.credits_pending), (125 + 10 + 20, 0));
        rig.finish().await;
    }
}
