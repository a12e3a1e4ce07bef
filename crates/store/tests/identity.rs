//! The identity part of the storage contract (customers, refresh tokens), written once
//! and run against SQLite always and PostgreSQL when `COFFER_TEST_DATABASE_URL` is set,
//! in the style of `contract.rs` (a fresh database per test).
//!
//! The harness (fresh databases, `contract!`) is shared with `contract.rs` in `common`.

use std::time::Duration;

use store::{
    CreateCustomerError, CustomerRole, CustomerUpdate, KycStatus, NewCustomer, NewRefreshToken, Rotation,
    Store,
};
use time::OffsetDateTime;
use uuid::Uuid;

mod common;

use common::TestDb;

contract!(
    customers_are_created_and_found,
    duplicate_email_is_email_taken,
    update_changes_only_what_it_names,
    customers_page_in_creation_order,
    rotation_replaces_the_token,
    reuse_revokes_the_whole_family,
    concurrent_rotations_of_one_token_let_one_win,
    expired_and_unknown_tokens_are_invalid,
    logout_revokes_the_family,
    sessions_are_found_listed_and_revoked,
    a_password_change_ends_the_other_sessions,
);

/// Whole seconds: the store keeps microseconds, so tests compare at a precision it keeps.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn new_customer(email: &str) -> NewCustomer {
    NewCustomer {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        name: "Ada Lovelace".to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        role: CustomerRole::Customer,
        created_at: now(),
    }
}

fn hash(byte: u8) -> [u8; 32] {
    [byte; 32]
}

/// A customer with one refresh token (hash `hash(1)`), expiring in `ttl`.
async fn logged_in(store: &Store, ttl: Duration) -> (Uuid, Uuid) {
    let customer =
        store.create_customer(&new_customer(&format!("{}@example.com", Uuid::now_v7())), &[]).await.unwrap();
    let family = Uuid::now_v7();
    store
        .insert_refresh_token(
            &NewRefreshToken {
                id: Uuid::now_v7(),
                customer_id: customer.id,
                family_id: family,
                token_hash: hash(1),
                expires_at: now() + ttl,
                created_at: now(),
            },
            &[],
        )
        .await
        .unwrap();
    (customer.id, family)
}

const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

async fn customers_are_created_and_found(db: &TestDb) {
    let store = &db.store;
    let new = new_customer("ada@example.com");
    let created = store.create_customer(&new, &[]).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.kyc_status, KycStatus::Unverified);
    assert_eq!(created.role, CustomerRole::Customer);
    assert_eq!(created.preferences, "{}");
    assert_eq!((created.phone.as_deref(), created.country.as_deref()), (None, None));
    assert_eq!(created.created_at, new.created_at);
    assert_eq!(created.password_hash, new.password_hash);
    assert_eq!(store.customer_by_email("ada@example.com").await.unwrap(), Some(created.clone()));
    assert_eq!(store.customer_by_id(new.id).await.unwrap(), Some(created));
    assert_eq!(store.customer_by_email("bob@example.com").await.unwrap(), None);
    assert_eq!(store.customer_by_id(Uuid::now_v7()).await.unwrap(), None);
}

async fn duplicate_email_is_email_taken(db: &TestDb) {
    let store = &db.store;
    store.create_customer(&new_customer("ada@example.com"), &[]).await.unwrap();
    let error = store.create_customer(&new_customer("ada@example.com"), &[]).await.unwrap_err();
    assert!(matches!(error, CreateCustomerError::EmailTaken), "{error:?}");
}

async fn update_changes_only_what_it_names(db: &TestDb) {
    let store = &db.store;
    let created = store.create_customer(&new_customer("ada@example.com"), &[]).await.unwrap();
    let later = created.created_at + Duration::from_secs(5);
    let update = CustomerUpdate {
        phone: Some(Some("+442071838750".to_owned())),
        country: Some(Some("GB".to_owned())),
        preferences: Some(r#"{"theme":"dark"}"#.to_owned()),
        ..CustomerUpdate::default()
    };
    let updated = store.update_customer(created.id, &update, later).await.unwrap().unwrap();
    assert_eq!(updated.name, created.name);
    assert_eq!(updated.phone.as_deref(), Some("+442071838750"));
    assert_eq!(updated.country.as_deref(), Some("GB"));
    assert_eq!(updated.preferences, r#"{"theme":"dark"}"#);
    assert_eq!(
        (updated.email.as_str(), updated.role, updated.kyc_status),
        ("ada@example.com", CustomerRole::Customer, KycStatus::Unverified)
    );
    assert_eq!(updated.updated_at, later);
    assert_eq!(updated.created_at, created.created_at);

    let cleared =
        CustomerUpdate { name: Some("Ada King".to_owned()), phone: Some(None), ..CustomerUpdate::default() };
    let updated = store.update_customer(created.id, &cleared, later).await.unwrap().unwrap();
    assert_eq!((updated.name.as_str(), updated.phone.as_deref()), ("Ada King", None));
    assert_eq!(updated.country.as_deref(), Some("GB"), "an unnamed field is left alone");
    assert_eq!(store.update_customer(Uuid::now_v7(), &cleared, later).await.unwrap(), None);

    let admin = store.set_customer_role(created.id, CustomerRole::Admin, later).await.unwrap().unwrap();
    assert_eq!(admin.role, CustomerRole::Admin);
}

async fn customers_page_in_creation_order(db: &TestDb) {
    let store = &db.store;
    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(
            store.create_customer(&new_customer(&format!("c{index}@example.com")), &[]).await.unwrap().id,
        );
    }
    let first = store.list_customers(None, 2).await.unwrap();
    assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), ids[..2]);
    let second = store.list_customers(Some(ids[1]), 2).await.unwrap();
    assert_eq!(second.iter().map(|c| c.id).collect::<Vec<_>>(), ids[2..4]);
    let last = store.list_customers(Some(ids[3]), 2).await.unwrap();
    assert_eq!(last.iter().map(|c| c.id).collect::<Vec<_>>(), ids[4..]);
    assert!(store.list_customers(Some(ids[4]), 2).await.unwrap().is_empty());
}

async fn rotation_replaces_the_token(db: &TestDb) {
    let store = &db.store;
    let (customer, family) = logged_in(store, MONTH).await;
    let first = store.rotate_refresh_token(&hash(1), Uuid::now_v7(), &hash(2), now()).await.unwrap();
    let Rotation::Rotated { customer_id, family_id, expires_at } = first else { panic!("{first:?}") };
    assert_eq!((customer_id, family_id), (customer, family));
    assert!(expires_at > now() + Duration::from_secs(29 * 24 * 3600));
    let second = store.rotate_refresh_token(&hash(2), Uuid::now_v7(), &hash(3), now()).await.unwrap();
    assert!(
        matches!(second, Rotation::Rotated { expires_at: again, .. } if again == expires_at),
        "the successor keeps the family's absolute expiry: {second:?}"
    );
}

async fn reuse_revokes_the_whole_family(db: &TestDb) {
    let store = &db.store;
    let (customer, family) = logged_in(store, MONTH).await;
    let rotated = store.rotate_refresh_token(&hash(1), Uuid::now_v7(), &hash(2), now()).await.unwrap();
    assert!(matches!(rotated, Rotation::Rotated { .. }));
    let replay = store.rotate_refresh_token(&hash(1), Uuid::now_v7(), &hash(3), now()).await.unwrap();
    assert_eq!(replay, Rotation::Reused { customer_id: customer, family_id: family });
    // The newest token of the family (held by the legitimate client) is dead too, and
    // the replay's would-be successor was never stored.
    let newest = store.rotate_refresh_token(&hash(2), Uuid::now_v7(), &hash(4), now()).await.unwrap();
    assert_eq!(newest, Rotation::Invalid);
    assert_eq!(
        store.rotate_refresh_token(&hash(3), Uuid::now_v7(), &hash(5), now()).await.unwrap(),
        Rotation::Invalid
    );
}

async fn concurrent_rotations_of_one_token_let_one_win(db: &TestDb) {
    let store = &db.store;
    logged_in(store, MONTH).await;
    let rotations = (0..8u8).map(|index| {
        let store = store.clone();
        tokio::spawn(async move {
            store.rotate_refresh_token(&hash(1), Uuid::now_v7(), &hash(10 + index), now()).await
        })
    });
    let outcomes: Vec<Rotation> =
        futures_join(rotations).await.into_iter().map(|outcome| outcome.unwrap()).collect();
    let rotated = outcomes.iter().filter(|outcome| matches!(outcome, Rotation::Rotated { .. })).count();
    assert_eq!(rotated, 1, "exactly one rotation wins: {outcomes:?}");
    assert!(
        outcomes.iter().all(|outcome| !matches!(outcome, Rotation::Invalid)),
        "the others are reuse: {outcomes:?}"
    );
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut outputs = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

async fn expired_and_unknown_tokens_are_invalid(db: &TestDb) {
    let store = &db.store;
    logged_in(store, Duration::from_secs(1)).await;
    let after_expiry = now() + Duration::from_secs(2);
    assert_eq!(
        store.rotate_refresh_token(&hash(1), Uuid::now_v7(), &hash(2), after_expiry).await.unwrap(),
        Rotation::Invalid
    );
    assert_eq!(
        store.rotate_refresh_token(&hash(9), Uuid::now_v7(), &hash(2), now()).await.unwrap(),
        Rotation::Invalid
    );
}

async fn logout_revokes_the_family(db: &TestDb) {
    let store = &db.store;
    let (_, family) = logged_in(store, MONTH).await;
    assert!(matches!(
        store.rotate_refresh_token(&hash(1), Uuid::now_v7(), &hash(2), now()).await.unwrap(),
        Rotation::Rotated { .. }
    ));
    assert_eq!(store.revoke_refresh_family(&hash(2), now()).await.unwrap(), Some(family));
    assert_eq!(
        store.rotate_refresh_token(&hash(2), Uuid::now_v7(), &hash(3), now()).await.unwrap(),
        Rotation::Invalid
    );
    assert_eq!(store.revoke_refresh_family(&hash(7), now()).await.unwrap(), None);
}

/// A second session (family) of `customer`, its token hashed as `hash(byte)`.
async fn another_session(store: &Store, customer: Uuid, byte: u8, ttl: Duration) -> Uuid {
    let family = Uuid::now_v7();
    store
        .insert_refresh_token(
            &NewRefreshToken {
                id: Uuid::now_v7(),
                customer_id: customer,
                family_id: family,
                token_hash: hash(byte),
                expires_at: now() + ttl,
                created_at: now(),
            },
            &[],
        )
        .await
        .unwrap();
    family
}

async fn sessions_are_found_listed_and_revoked(db: &TestDb) {
    let store = &db.store;
    let (customer, first) = logged_in(store, MONTH).await;
    let session = store.session(&hash(1), now()).await.unwrap().expect("a live session");
    assert_eq!((session.customer_id, session.family_id), (customer, first));
    let started = session.started_at;

    // Rotation keeps the family: the old token is no longer a session, the new one is,
    // and it still started at the sign-in.
    store.rotate_refresh_token(&hash(1), Uuid::now_v7(), &hash(2), now()).await.unwrap();
    assert_eq!(store.session(&hash(1), now()).await.unwrap(), None);
    let rotated = store.session(&hash(2), now()).await.unwrap().expect("the successor");
    assert_eq!((rotated.family_id, rotated.started_at), (first, started));

    let second = another_session(store, customer, 3, MONTH).await;
    let listed: Vec<Uuid> =
        store.sessions(customer, now()).await.unwrap().iter().map(|s| s.family_id).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&first) && listed.contains(&second), "{listed:?}");

    // Someone else cannot end it; its owner can, once.
    let stranger = store.create_customer(&new_customer("stranger@example.com"), &[]).await.unwrap().id;
    assert!(!store.revoke_session(stranger, second, now()).await.unwrap());
    assert!(store.session(&hash(3), now()).await.unwrap().is_some());
    assert!(store.revoke_session(customer, second, now()).await.unwrap());
    assert!(!store.revoke_session(customer, second, now()).await.unwrap());
    assert_eq!(store.session(&hash(3), now()).await.unwrap(), None);
    let listed: Vec<Uuid> =
        store.sessions(customer, now()).await.unwrap().iter().map(|s| s.family_id).collect();
    assert_eq!(listed, vec![first]);

    // Expired is not a session.
    let short = another_session(store, customer, 4, Duration::from_secs(1)).await;
    assert!(store.session(&hash(4), now() + Duration::from_secs(2)).await.unwrap().is_none());
    let later = store.sessions(customer, now() + Duration::from_secs(2)).await.unwrap();
    assert!(later.iter().all(|s| s.family_id != short));
}

async fn a_password_change_ends_the_other_sessions(db: &TestDb) {
    let store = &db.store;
    let (customer, kept) = logged_in(store, MONTH).await;
    let other = another_session(store, customer, 5, MONTH).await;
    assert!(store.set_password_hash(customer, "$argon2id$new", Some(kept), now()).await.unwrap());
    assert_eq!(store.customer_by_id(customer).await.unwrap().unwrap().password_hash, "$argon2id$new");
    assert!(store.session(&hash(1), now()).await.unwrap().is_some(), "the asking session stays");
    assert!(store.session(&hash(5), now()).await.unwrap().is_none(), "family {other} ended");
    assert!(!store.set_password_hash(Uuid::now_v7(), "$argon2id$x", None, now()).await.unwrap());
}
