//! Events end to end: every change's events in the outbox (matching docs/asyncapi.yaml,
//! whose payload schemas also match the payload types of `coffer::events::payloads`),
//! the relay delivering each event once to idempotent consumers across a crash, a spare
//! relay taking over from a killed one by lease, NATS
//! JetStream (dedup by Nats-Msg-Id, catching up after the broker was down), the WebSocket
//! stream (own events only, resume, stalled clients), webhooks (signed, retried, SSRF
//! guard), emails (file outbox and a real SMTP conversation) and the inbox.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer::events::nats::Nats;
use coffer::events::relay::{InProcess, Publish};
use coffer::events::{Bus, EventType, Relay, RelayOptions};
use coffer::notifications::{NotificationDefaults, Notifier};
use common::customer::{card_top_up, open_wallet, transfer};
use common::nats::stream_ids;
use common::{Backend, Session, TestApp, backends, register_and_login, spawn_app, spawn_app_with};
use futures::StreamExt as _;
use serde_json::{Value, json};
use store::{Store, StoredEvent};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use uuid::Uuid;

async fn post(app: &TestApp, session: &Session, path: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(&session.access_token)
        .header("idempotency-key", Uuid::now_v7().to_string())
        .json(body)
        .send()
        .await
        .unwrap();
    common::read(response).await
}

async fn get(app: &TestApp, session: &Session, path: &str) -> (u16, Value) {
    let response = app.client.get(app.url(path)).bearer_auth(&session.access_token).send().await.unwrap();
    common::read(response).await
}

async fn all_events(store: &Store) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |event: &StoredEvent| event.seq);
        let page = store.events_after(after, 1000).await.unwrap();
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// The AsyncAPI document, parsed.
fn asyncapi() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/asyncapi.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// `schema` with a `$ref` to the document's components followed.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let path = reference.strip_prefix("#/").expect("local reference");
            path.split('/').fold(document, |node, key| &node[key])
        }
        None => schema,
    }
}

/// Checks `value` against the JSON-schema subset the document uses; the errors, if any.
fn check(document: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(document, schema);
    if let Some(constant) = schema.get("const") {
        if value != constant {
            errors.push(format!("{at}: {value} is not {constant}"));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let type_ok = types.is_empty()
        || types.iter().any(|kind| match *kind {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "object" => value.is_object(),
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            _ => false,
        });
    if !type_ok {
        errors.push(format!("{at}: {value} is not of type {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    for (index, item) in value.as_array().into_iter().flatten().enumerate() {
        check(document, &schema["items"], item, &format!("{at}/{index}"), errors);
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(required.as_str().unwrap()) {
                errors.push(format!("{at}: missing {required}"));
            }
        }
        for (key, item) in object {
            match properties.and_then(|properties| properties.get(key)) {
                Some(property) => check(document, property, item, &format!("{at}/{key}"), errors),
                None if schema["additionalProperties"] == false => {
                    errors.push(format!("{at}: undeclared {key}"))
                }
                None => {}
            }
        }
    }
}

/// What a property schema allows, for comparing two ways of writing it: its types (with
/// `null` apart), its enumerated values if it has any, and an object's properties.
#[derive(Debug, Default, PartialEq)]
struct Shape {
    types: std::collections::BTreeSet<String>,
    nullable: bool,
    values: Option<std::collections::BTreeSet<String>>,
}

fn shape(schema: &Value) -> Shape {
    let mut found = Shape::default();
    let types = match &schema["type"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many.iter().filter_map(|kind| kind.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    for kind in types {
        if kind == "null" {
            found.nullable = true;
        } else {
            found.types.insert(kind);
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        found.nullable |= values.contains(&Value::Null);
        found.values = Some(values.iter().filter_map(|value| value.as_str().map(str::to_owned)).collect());
    }
    for part in ["oneOf", "anyOf"].iter().filter_map(|key| schema[key].as_array()).flatten() {
        let part = shape(part);
        found.types.extend(part.types);
        found.nullable |= part.nullable;
        if part.values.is_some() {
            found.values = part.values;
        }
    }
    found
}

/// Compares the object schema `code` (from a payload type) with `doc` (from the AsyncAPI
/// document): the same property names, the same required ones, and per property the same
/// types and nullability, the same values where the type enumerates them, and the same
/// again inside nested objects. Differences go to `errors`.
fn same_object(document: &Value, doc: &Value, code: &Value, at: &str, errors: &mut Vec<String>) {
    let doc = resolve(document, doc);
    let names = |schema: &Value, key: &str| -> std::collections::BTreeSet<String> {
        match &schema[key] {
            Value::Object(map) => map.keys().cloned().collect(),
            Value::Array(items) => items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect(),
            _ => Default::default(),
        }
    };
    for key in ["properties", "required"] {
        let (documented, coded) = (names(doc, key), names(code, key));
        if documented != coded {
            errors.push(format!(
                "{at}: {key} differ: only in docs/asyncapi.yaml {:?}, only in the type {:?}",
                documented.difference(&coded).collect::<Vec<_>>(),
                coded.difference(&documented).collect::<Vec<_>>()
            ));
        }
    }
    for name in names(doc, "properties").intersection(&names(code, "properties")) {
        let (documented, coded) = (resolve(document, &doc["properties"][name]), &code["properties"][name]);
        let at = format!("{at}.{name}");
        let (documented_shape, coded_shape) = (shape(documented), shape(coded));
        if documented_shape.types != coded_shape.types || documented_shape.nullable != coded_shape.nullable {
            errors.push(format!("{at}: documented as {documented_shape:?}, typed as {coded_shape:?}"));
        }
        // A closed set in the type is the documented one (the document may enumerate text
        // the type keeps open).
        if coded_shape.values.is_some() && documented_shape.values != coded_shape.values {
            errors
                .push(format!("{at}: documented values {documented_shape:?}, typed values {coded_shape:?}"));
        }
        if documented.get("properties").is_some() || coded.get("properties").is_some() {
            same_object(document, documented, coded, &at, errors);
        }
    }
}

/// The payload types of `coffer::events::payloads` and the payload schemas of
/// docs/asyncapi.yaml describe the same data: per event type, the same schema name, the
/// same property names, the same required set, the same types, nullability and closed
/// value sets. (The events the code emits are checked against the document at runtime
/// by the walk-through below; this checks the types even for fields a walk-through leaves
/// null.)
#[test]
fn payload_types_match_the_asyncapi_document() {
    let document = asyncapi();
    let mut errors = Vec::new();
    for kind in EventType::ALL {
        let channel = &document["channels"][kind.name()];
        let message = resolve(&document, channel["messages"].as_object().unwrap().values().next().unwrap());
        let data = message["payload"]["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|part| part["properties"].get("data"))
            .unwrap_or_else(|| panic!("{}: the document names no data schema", kind.name()));
        let documented_name = data["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let (name, schema) = kind.data_schema();
        let schema = serde_json::to_value(&schema).unwrap();
        if name != documented_name {
            errors.push(format!(
                "{}: the document's schema is {documented_name}, the type {name}",
                kind.name()
            ));
        }
        same_object(&document, data, &schema, &format!("{} ({name})", kind.name()), &mut errors);
    }
    assert!(errors.is_empty(), "payload types and docs/asyncapi.yaml differ:\n{}", errors.join("\n"));
}

/// Every kind of change a customer can make, once; then every event is in the outbox,
/// every type appears in docs/asyncapi.yaml and every payload matches its schema. The
/// consumers made the inbox entries and emails they should.
#[tokio::test]
async fn every_change_emits_events_that_match_the_asyncapi_document() {
    let document = asyncapi();
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let store = app.store().await;
        let alice = register_and_login(&app, "alice@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let (alices, bobs) = (open_wallet(&app, &alice, "USD").await, open_wallet(&app, &bob, "USD").await);
        // Monitors the transfer below crosses: Alice's own (available below 9,000) and an
        // operator's (a debit above 2,000; its event names no customer).
        let monitor = json!({"condition": "available_below", "amount": 9_000});
        let (status, body) = post(&app, &alice, &format!("/v1/wallets/{alices}/monitors"), &monitor).await;
        assert_eq!(status, 201, "{body}");
        let monitor = json!({"condition": "debit_above", "amount": 2_000});
        let (status, body) = app.post(&format!("/v1/admin/wallets/{alices}/monitors"), &monitor).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(card_top_up(&app, &alice, &alices, 10_000, "tok_visa").await["status"], "succeeded");
        assert_eq!(card_top_up(&app, &alice, &alices, 500, "tok_chargeDeclined").await["status"], "failed");
        transfer(&app, &alice, &alices, &bobs, 2_500).await;
        for (destination, status) in [("ba_checking", "succeeded"), ("ba_fail", "failed")] {
            let path = format!("/v1/wallets/{alices}/withdrawals");
            let (code, body) =
                post(&app, &alice, &path, &json!({"amount": 1_000, "destination": destination})).await;
            assert_eq!((code, body["status"].as_str()), (201, Some(status)), "{body}");
        }
        // Budgets: coffee at 500 (the 550 expense exceeds it), rides at 1,000 (900: a warning).
        for (name, amount) in [("Coffee Shops", 500), ("Taxi & Rideshare", 1_000)] {
            let (_, categories) = get(&app, &alice, "/v1/categories").await;
            let id = categories.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].clone();
            let budget = json!({"category_id": id, "currency": "USD", "amount": amount});
            let (status, body) = post(&app, &alice, "/v1/budgets", &budget).await;
            assert_eq!(status, 201, "{body}");
        }
        let starbucks = json!({"amount": 550, "currency": "USD", "merchant": "STARBUCKS", "mcc": "5814"});
        let (status, body) = post(&app, &alice, "/v1/expenses", &starbucks).await;
        assert_eq!(status, 201, "{body}");
        // An expense edited and one deleted; a category deleted.
        let lunch = json!({"amount": 1_200, "currency": "USD", "description": "lunch"});
        let (status, lunch) = post(&app, &alice, "/v1/expenses", &lunch).await;
        assert_eq!(status, 201, "{lunch}");
        let lunch = format!("/v1/expenses/{}", lunch["id"].as_str().unwrap());
        let (status, body) = app
            .call(reqwest::Method::PATCH, &lunch, Some(&alice.access_token), Some(&json!({"amount": 1_100})))
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = app.call(reqwest::Method::DELETE, &lunch, Some(&alice.access_token), None).await;
        assert_eq!(status, 204, "{body}");
        let (status, hobby) = post(&app, &alice, "/v1/categories", &json!({"name": "Hobbies"})).await;
        assert_eq!(status, 201, "{hobby}");
        let hobby = format!("/v1/categories/{}", hobby["id"].as_str().unwrap());
        let (status, body) = app.call(reqwest::Method::DELETE, &hobby, Some(&alice.access_token), None).await;
        assert_eq!(status, 204, "{body}");
        // A scheduled payment Alice cannot afford: retried, then failed for good.
        let schedule = json!({"from_wallet_id": alices, "to_wallet_id": bobs, "amount": 1_000_000,
            "frequency": "once", "start_at": "2020-01-01T00:00:00Z"});
        let (status, schedule) = post(&app, &alice, "/v1/scheduled-payments", &schedule).await;
        assert_eq!(status, 201, "{schedule}");
        let path = format!("/v1/scheduled-payments/{}", schedule["id"].as_str().unwrap());
        for _ in 0..500 {
            if get(&app, &alice, &path).await.1["status"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, runs) = get(&app, &alice, &format!("{path}/runs")).await;
        assert_eq!(
            (runs[0]["status"].as_str(), runs[0]["attempts"].as_i64()),
            (Some("failed"), Some(3)),
            "{runs}"
        );
        let payment = json!({"merchant": "Uber", "amount": 900});
        let (status, body) = post(&app, &alice, &format!("/v1/wallets/{alices}/payments"), &payment).await;
        assert_eq!(status, 201, "{body}");
        // A conversion to a wallet in another currency.
        open_wallet(&app, &alice, "EUR").await;
        let quote = json!({"from_wallet_id": alices, "to_currency": "EUR", "sell_amount": 100});
        let (status, quote) = post(&app, &alice, "/v1/fx/quotes", &quote).await;
        assert_eq!(status, 201, "{quote}");
        let path = format!("/v1/fx/quotes/{}/execute", quote["id"].as_str().unwrap());
        let (status, body) = common::customer::keyed_post(&app, &alice, &path, &json!(null)).await;
        assert_eq!(status, 201, "{body}");
        // A credit score that drops between two reports (the sandbox's `+score-drop`).
        let carol = register_and_login(&app, "carol+score-drop@example.com").await;
        for method in [reqwest::Method::POST, reqwest::Method::DELETE, reqwest::Method::POST] {
            let (status, body) =
                app.call(method, "/v1/credit/consent", Some(&carol.access_token), None).await;
            assert!(status == 200 || status == 201, "{body}");
        }
        // The operators' event: books broken by hand, then checked.
        common::Raw::new(&app)
            .run(&format!(
                "UPDATE accounts SET debits_posted = debits_posted + 1, credits_posted = credits_posted + 1 \
                 WHERE id = {}",
                common::Raw::new(&app).id(alices.parse().unwrap())
            ))
            .await;
        let (status, run) = app.post("/v1/admin/verify", &json!(null)).await;
        assert_eq!(status, 202, "{run}");
        let path = format!("/v1/admin/verify/{}", run["id"].as_str().unwrap());
        for _ in 0..500 {
            if app.get(&path).await.1["status"] != "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(app.get(&path).await.1["status"], "findings");
        // And a settlement line ten days old that the ledger lacks.
        let day = (time::OffsetDateTime::now_utc().date() - time::Duration::days(10)).to_string();
        let file = json!({"account": "card_settlement", "currency": "USD",
            "csv": format!("date,reference,amount,currency\n{day},ch_lost,1.00,USD\n")});
        let (status, report) = app.post("/v1/reconciliations", &file).await;
        assert_eq!(status, 201, "{report}");
        common::relayed(&store).await;

        let events = all_events(&store).await;
        let mut seen = HashSet::new();
        for event in &events {
            let envelope: Value = serde_json::from_str(&event.payload).unwrap();
            let kind =
                EventType::parse(&event.event_type).unwrap_or_else(|| panic!("unknown {}", event.event_type));
            seen.insert(kind);
            assert_eq!(envelope["type"], event.event_type);
            assert_eq!(envelope["id"], event.id.to_string());
            assert_eq!(event.id.get_version_num(), 7, "event ids are UUIDv7");
            match event.customer_id {
                Some(customer) => assert_eq!(envelope["data"]["customer_id"], customer.to_string()),
                // Only the operators' events belong to no customer.
                None => assert!(
                    matches!(
                        kind,
                        EventType::VerifyFindings
                            | EventType::MonitorTriggered
                            | EventType::ReconciliationUnmatched
                    ),
                    "{kind:?}"
                ),
            }
            let channel = &document["channels"][kind.name()];
            assert_eq!(
                channel["address"],
                event.event_type,
                "docs/asyncapi.yaml has a channel for {}",
                kind.name()
            );
            let message = resolve(
                &document,
                &channel["messages"].as_object().unwrap().values().next().unwrap().clone(),
            )
            .clone();
            let mut errors = Vec::new();
            for part in message["payload"]["allOf"].as_array().unwrap() {
                check(&document, part, &envelope, kind.name(), &mut errors);
            }
            assert!(
                errors.is_empty(),
                "{} does not match docs/asyncapi.yaml: {errors:?}\n{envelope:#}",
                kind.name()
            );
        }
        let missing: Vec<_> = EventType::ALL.iter().filter(|kind| !seen.contains(kind)).collect();
        assert!(missing.is_empty(), "no event of {missing:?} was emitted by the walk-through");
        assert_eq!(
            document["channels"].as_object().unwrap().len(),
            EventType::ALL.len(),
            "docs/asyncapi.yaml describes exactly the event types the code emits"
        );
        // The recipient sees the transfer; the sender sees their own side only.
        let bobs_events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.customer_id.map(|id| id.to_string()) == Some(bob.customer_id.clone()))
            .collect();
        assert!(
            bobs_events
                .iter()
                .any(|e| e.event_type == "coffer.transfer.posted"
                    && e.payload.contains("\"direction\":\"in\""))
        );

        // Consumers: the inbox and the file outbox of emails.
        let (status, inbox) = get(&app, &alice, "/v1/notifications").await;
        assert_eq!(status, 200, "{inbox}");
        let kinds: Vec<&str> =
            inbox["data"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
        for kind in [
            "welcome",
            "top_up_succeeded",
            "top_up_failed",
            "withdrawal_succeeded",
            "withdrawal_failed",
            "budget_exceeded",
            "budget_warning",
            "balance_alert",
            "fx_converted",
        ] {
            assert!(kinds.contains(&kind), "alice's inbox has {kind}: {kinds:?}");
        }
        let (_, inbox) = get(&app, &bob, "/v1/notifications").await;
        let kinds: Vec<&str> =
            inbox["data"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["transfer_received", "welcome"], "newest first, bob's only");
        let mut mails = Vec::new();
        for _ in 0..200 {
            mails = mail_files(&app);
            let sent = |template: &str| mails.iter().filter(|(name, _)| name.starts_with(template)).count();
            if sent("welcome-") >= 3 && sent("budget_exceeded-") >= 1 && sent("top_up_failed-") >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let welcome = mails.iter().filter(|(name, _)| name.starts_with("welcome-")).count();
        assert_eq!(welcome, 3, "alice, bob and carol: {mails:?}");
        assert_eq!(
            mails.iter().filter(|(name, _)| name.starts_with("budget_exceeded-")).count(),
            1,
            "{mails:?}"
        );
        let failed: Vec<_> = mails.iter().filter(|(name, _)| name.starts_with("top_up_failed-")).collect();
        assert_eq!(failed.len(), 1, "{mails:?}");
        assert!(failed[0].1.contains("To: alice@example.com"), "{}", failed[0].1);
        store.close().await;
        app.stop().await;
    }
}

fn mail_files(app: &TestApp) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(app.data_dir.path().join("mail")) else { return Vec::new() };
    entries
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(entry.path()).unwrap())
        })
        .collect()
}

/// A destination that takes `crash_after` events and then fails, as a relay killed in
/// the middle of a batch would: what it took was applied, nothing was marked sent.
struct CrashingPublisher {
    inner: InProcess,
    crash_after: usize,
}

impl Publish for CrashingPublisher {
    async fn publish(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        let taken = events.len().min(self.crash_after);
        self.inner.publish(&events[..taken]).await?;
        anyhow::bail!("crashed after {taken} events")
    }
}

/// A store of its own (no server and so no other relay), on the backend.
async fn bare_store(backend: &Backend, dir: &tempfile::TempDir) -> (Store, Option<(String, String)>) {
    let (url, database) = match backend {
        Backend::Sqlite => (format!("sqlite:{}", dir.path().join("relay.db").display()), None),
        Backend::Postgres(server) => {
            let (url, name) = common::create_database(server).await;
            (url, Some((server.clone(), name)))
        }
    };
    let store = Store::open(&url, store::StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    (store, database)
}

/// Customers registered with their `customer.registered` events.
async fn registered(store: &Store, count: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for index in 0..count {
        let id = Uuid::now_v7();
        let customer = store::NewCustomer {
            id,
            email: format!("c{index}-{id}@example.com"),
            name: format!("Customer {index}"),
            password_hash: "not-a-hash".into(),
            role: store::CustomerRole::Customer,
            created_at: time::OffsetDateTime::now_utc(),
        };
        let event = coffer::events::event(
            EventType::CustomerRegistered,
            Some(id),
            &format!("customers/{id}"),
            &coffer::events::CustomerRegisteredData { customer_id: id, name: customer.name.as_str().into() },
        );
        store.create_customer(&customer, &[event]).await.unwrap();
        ids.push(id);
    }
    ids
}

/// The relay crashes in the middle of a batch after the consumer applied part of it;
/// a new relay publishes the whole batch again; every event takes effect exactly once.
#[tokio::test]
async fn relay_delivers_each_event_once_across_a_crash_mid_batch() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (store, database) = bare_store(&backend, &dir).await;
        let customers = registered(&store, 12).await;
        let bus = Bus::new(64);
        let mut live = bus.subscribe();
        let notifier = Arc::new(Notifier::new(store.clone(), NotificationDefaults::default()));
        let inner = InProcess { bus: bus.clone(), consumers: vec![notifier] };
        let options = RelayOptions { batch_max: 10, ..RelayOptions::default() };
        let crashing =
            Relay::new(store.clone(), CrashingPublisher { inner: inner.clone(), crash_after: 7 }, options);
        assert!(crashing.step().await.is_err());
        assert_eq!(store.outbox_backlog().await.unwrap().0, 12, "nothing was marked sent");

        let relay = Relay::new(store.clone(), inner, options);
        assert_eq!(relay.step().await.unwrap(), 10);
        assert_eq!(relay.step().await.unwrap(), 2);
        assert_eq!(relay.step().await.unwrap(), 0);
        assert_eq!(store.outbox_backlog().await.unwrap().0, 0);
        for customer in &customers {
            let inbox = store.notifications(*customer, None, false, 10).await.unwrap();
            assert_eq!(inbox.len(), 1, "one welcome per customer, not one per delivery");
        }
        assert_eq!(store.due_emails(u64::MAX, 100).await.unwrap().len(), 12, "one welcome email each");
        // Live subscribers saw the first 7 twice (at least once is the bus's promise);
        // the stream dedups by outbox position.
        let mut seen = Vec::new();
        while let Ok(event) = live.try_recv() {
            seen.push(event.seq);
        }
        assert_eq!(seen.len(), 19);
        store.close().await;
        if let Some((server, name)) = database {
            common::drop_database(&server, &name).await;
        }
    }
}

/// The NATS URL for tests: COFFER_TEST_NATS_URL; under CI=true it must be set.
fn nats_url() -> Option<String> {
    match std::env::var("COFFER_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but COFFER_TEST_NATS_URL is not set: the NATS suite must run in CI")
        }
        _ => None,
    }
}

async fn next_sequence(nats: &Nats) -> u64 {
    let mut stream = nats.jetstream().get_stream(coffer::events::nats::STREAM).await.unwrap();
    stream.info().await.unwrap().state.last_sequence + 1
}

/// With NATS: every event lands in stream COFFER with its Nats-Msg-Id, once; publishing
/// the same events again is deduplicated by the broker.
#[tokio::test]
async fn nats_stream_receives_every_event_once() {
    let Some(url) = nats_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = bare_store(&Backend::Sqlite, &dir).await;
    registered(&store, 25).await;
    let nats = Nats::connect(&url).await.unwrap();
    nats.ensure_stream().await.unwrap();
    let start = next_sequence(&nats).await;
    let relay =
        Relay::new(store.clone(), nats.clone(), RelayOptions { batch_max: 10, ..RelayOptions::default() });
    while relay.step().await.unwrap() > 0 {}
    let events = all_events(&store).await;
    let ids: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    let count = |published: &[String]| published.iter().filter(|id| ids.contains(*id)).count();
    let published = stream_ids(&nats, start).await;
    assert_eq!(count(&published), 25, "every event is in the stream");
    // A relay that stopped before marking would publish the same rows again.
    assert_eq!(nats.publish(&events).await.unwrap(), 25, "acknowledged (as duplicates)");
    let again = stream_ids(&nats, start).await;
    assert_eq!(count(&again), 25, "the broker dropped the re-publish");
    let unique: HashSet<&String> = again.iter().filter(|id| ids.contains(*id)).collect();
    assert_eq!(unique.len(), 25);
    store.close().await;
}

/// A NATS server of the test's own, so it can be stopped and started.
struct OwnNats {
    process: std::process::Child,
}

impl OwnNats {
    fn start(port: u16, dir: &std::path::Path) -> Option<Self> {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists());
        let Some(binary) = binary else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but nats-server is not installed"
            );
            return None;
        };
        let process = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Some(Self { process })
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The broker is down while events are written: the relay keeps them, backs off, and
/// publishes all of them once the broker is up.
#[tokio::test]
async fn relay_catches_up_after_the_broker_was_down() {
    if nats_url().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = bare_store(&Backend::Sqlite, &dir).await;
    let nats = Nats::connect(&format!("nats://127.0.0.1:{port}")).await.unwrap();
    registered(&store, 5).await;
    let relay = Relay::new(
        store.clone(),
        nats.clone(),
        RelayOptions {
            batch_max: 10,
            idle_interval: Duration::from_millis(20),
            backoff_max: Duration::from_millis(300),
            ..RelayOptions::default()
        },
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.outbox_backlog().await.unwrap().0, 5, "nothing is marked sent while the broker is down");
    registered(&store, 5).await;

    let Some(_server) = OwnNats::start(port, &dir.path().join("js")) else { return };
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.outbox_backlog().await.unwrap().0 > 0 {
        assert!(Instant::now() < deadline, "the relay did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    running.await.unwrap();
    let ids: HashSet<String> = all_events(&store).await.iter().map(|e| e.id.to_string()).collect();
    let published: Vec<String> = stream_ids(&nats, 1).await;
    let ours: Vec<&String> = published.iter().filter(|id| ids.contains(*id)).collect();
    assert_eq!(ours.len(), 10, "each event once: {published:?}");
    store.close().await;
}

/// Publishes to NATS and writes down which relay published which outbox rows.
#[derive(Clone)]
struct Watched {
    name: &'static str,
    nats: Nats,
    log: Arc<Mutex<Vec<(&'static str, u64)>>>,
}

impl Publish for Watched {
    async fn publish(&self, events: &[StoredEvent]) -> anyhow::Result<usize> {
        let published = self.nats.publish(events).await?;
        self.log.lock().unwrap().extend(events[..published].iter().map(|event| (self.name, event.seq)));
        Ok(published)
    }
}

/// Waits (10 s at most) until the relay has marked every event sent.
async fn drained(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.outbox_backlog().await.unwrap().0 > 0 {
        assert!(Instant::now() < deadline, "the outbox was not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two relays on one outbox: only the lease holder publishes; when it is killed
/// mid-stream (its task dropped: no shutdown, no release), the spare takes over within a
/// lease, skips nothing, and the stream holds every event once.
#[tokio::test]
async fn a_spare_relay_takes_over_from_a_dead_one_without_gaps() {
    let Some(url) = nats_url() else { return };
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (store, database) = bare_store(&backend, &dir).await;
        let nats = Nats::connect(&url).await.unwrap();
        nats.ensure_stream().await.unwrap();
        let start = next_sequence(&nats).await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let options = RelayOptions {
            batch_max: 5,
            idle_interval: Duration::from_millis(10),
            lease: Duration::from_millis(600),
            ..RelayOptions::default()
        };
        let relay =
            |name| Relay::new(store.clone(), Watched { name, nats: nats.clone(), log: log.clone() }, options);
        let stop = tokio_util::sync::CancellationToken::new();
        let first = tokio::spawn(relay("first").run(stop.clone()));
        registered(&store, 10).await;
        drained(&store).await;
        let second = tokio::spawn(relay("second").run(stop.clone()));
        for _ in 0..5 {
            registered(&store, 4).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drained(&store).await;
        let before = log.lock().unwrap().clone();
        assert!(before.iter().all(|(name, _)| *name == "first"), "only the holder publishes: {before:?}");

        // Killed while events keep coming.
        let writing = tokio::spawn({
            let store = store.clone();
            async move {
                for _ in 0..10 {
                    registered(&store, 2).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(120)).await;
        first.abort();
        let _ = first.await;
        let killed_at = log.lock().unwrap().len();
        writing.await.unwrap();
        drained(&store).await;
        let after = log.lock().unwrap()[killed_at..].to_vec();
        assert!(!after.is_empty() && after.iter().all(|(name, _)| *name == "second"), "{after:?}");

        // Every event reached the broker, once.
        let events = all_events(&store).await;
        assert_eq!(events.len(), 50);
        let seqs: HashSet<u64> = log.lock().unwrap().iter().map(|(_, seq)| *seq).collect();
        assert!(events.iter().all(|event| seqs.contains(&event.seq)), "no event skipped");
        let ids: HashSet<String> = events.iter().map(|event| event.id.to_string()).collect();
        let published = stream_ids(&nats, start).await;
        let ours: Vec<&String> = published.iter().filter(|id| ids.contains(*id)).collect();
        assert_eq!(ours.len(), 50, "each event once in the stream");
        assert_eq!(ours.iter().collect::<HashSet<_>>().len(), 50);

        // A relay that stops gives the lease up at once.
        stop.cancel();
        second.await.unwrap();
        let now = store::now_ns();
        assert!(store.claim_relay_lease("next", now, now + 1_000_000_000).await.unwrap(), "released on stop");
        store.close().await;
        if let Some((server, name)) = database {
            common::drop_database(&server, &name).await;
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, token: &str, query: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{}/v1/stream{query}", app.address).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.expect("the stream opens").0
}

/// The next event frame (pings are answered by the client library while reading).
async fn next_event(socket: &mut Socket, within: Duration) -> Option<Value> {
    use tokio_tungstenite::tungstenite::Message;
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Close(frame)))) => panic!("closed: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => panic!("{error}"),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// A customer's stream shows their balance change within a second of the transfer, and
/// nothing of anyone else's; a reconnect resumes after the last event seen.
#[tokio::test]
async fn websocket_streams_own_events_only_and_resumes() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let alice = register_and_login(&app, "alice@example.com").await;
        let bob = register_and_login(&app, "bob@example.com").await;
        let carol = register_and_login(&app, "carol@example.com").await;
        let (alices, bobs, carols) = (
            open_wallet(&app, &alice, "USD").await,
            open_wallet(&app, &bob, "USD").await,
            open_wallet(&app, &carol, "USD").await,
        );
        card_top_up(&app, &alice, &alices, 5_000, "tok_visa").await;
        card_top_up(&app, &carol, &carols, 5_000, "tok_visa").await;
        common::relayed(&app.store().await).await;
        let mut alice_stream = connect(&app, &alice.access_token, "").await;
        let mut carol_stream = connect(&app, &carol.access_token, "").await;

        // Someone else's money moves: alice sees nothing of it.
        transfer(&app, &carol, &carols, &bobs, 700).await;
        let started = Instant::now();
        transfer(&app, &alice, &alices, &bobs, 1_200).await;
        let mut balance = None;
        let mut seen = Vec::new();
        while let Some(event) = next_event(&mut alice_stream, Duration::from_secs(1)).await {
            assert_eq!(event["data"]["customer_id"], alice.customer_id, "only alice's events: {event}");
            seen.push(event["id"].as_str().unwrap().to_owned());
            if event["type"] == "coffer.balance.updated" {
                balance = Some((event, started.elapsed()));
                break;
            }
        }
        let (event, after) = balance.expect("alice's balance update arrives");
        assert!(after < Duration::from_secs(1), "within a second: {after:?}");
        assert_eq!(event["data"]["balance"]["available"], 3_800, "{event}");
        assert_eq!(event["data"]["wallet_id"], alices);
        let carols_event =
            next_event(&mut carol_stream, Duration::from_secs(1)).await.expect("carol's own event");
        assert_eq!(carols_event["data"]["customer_id"], carol.customer_id);

        // Disconnect, miss two transfers, resume after the last event seen.
        alice_stream.close(None).await.unwrap();
        transfer(&app, &alice, &alices, &bobs, 100).await;
        transfer(&app, &alice, &alices, &bobs, 100).await;
        common::relayed(&app.store().await).await;
        let mut resumed =
            connect(&app, &alice.access_token, &format!("?after={}", seen.last().unwrap())).await;
        let mut replayed = Vec::new();
        while let Some(event) = next_event(&mut resumed, Duration::from_millis(500)).await {
            assert_eq!(event["data"]["customer_id"], alice.customer_id);
            replayed.push(event);
        }
        let balances: Vec<&Value> = replayed
            .iter()
            .filter(|e| e["type"] == "coffer.balance.updated")
            .map(|e| &e["data"]["balance"]["available"])
            .collect();
        assert_eq!(
            balances,
            [&json!(3_700), &json!(3_600)],
            "the missed events, in order, once: {replayed:#?}"
        );
        let ids: HashSet<&str> = replayed.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert!(seen.iter().all(|id| !ids.contains(id.as_str())), "nothing seen before is replayed");

        // Without credentials, or with another key's token: refused before the upgrade.
        let response = app.client.get(app.url("/v1/stream")).send().await.unwrap();
        assert_eq!(response.status(), 401);
        let (status, body) = common::read(
            app.client
                .get(app.url(&format!("/v1/stream?after={}", Uuid::now_v7())))
                .bearer_auth(&alice.access_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        common::assert_problem(status, &body, 404, "event_not_found");
        // A ticket opens the stream once.
        let (status, ticket) = post(&app, &alice, "/v1/stream/tickets", &json!({})).await;
        assert_eq!(status, 201, "{ticket}");
        let url = format!("ws://{}/v1/stream?ticket={}", app.address, ticket["ticket"].as_str().unwrap());
        assert!(tokio_tungstenite::connect_async(url.as_str()).await.is_ok());
        assert!(tokio_tungstenite::connect_async(url.as_str()).await.is_err(), "a ticket is single use");
        app.stop().await;
    }
}

/// A client that stops reading is disconnected after two unanswered heartbeats, however
/// many events are waiting for it: the server keeps nothing per connection beyond the
/// shared live buffer.
#[tokio::test]
async fn stalled_websocket_client_is_disconnected() {
    let options = common::Options {
        configure: |args| {
            args.stream_heartbeat_s = 1;
            args.stream_buffer = 64;
        },
        ..Default::default()
    };
    let app = spawn_app_with(&Backend::Sqlite, options).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let bob = register_and_login(&app, "bob@example.com").await;
    let (alices, bobs) = (open_wallet(&app, &alice, "USD").await, open_wallet(&app, &bob, "USD").await);
    card_top_up(&app, &alice, &alices, 100_000, "tok_visa").await;
    let mut stalled = connect(&app, &alice.access_token, "").await;
    // Events pile up for the stalled client: more than the live buffer holds.
    for _ in 0..40 {
        transfer(&app, &alice, &alices, &bobs, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    // Now read: whatever was sent, then the server's close frame — or, when the client
    // library answers a queued ping on the closed connection first, a broken pipe.
    use tokio_tungstenite::tungstenite::Message;
    let mut ended = None;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), stalled.next()).await {
        match message {
            Ok(Message::Close(frame)) => {
                ended = Some(format!("{frame:?}"));
                break;
            }
            Ok(_) => {}
            Err(error) => {
                ended = Some(error.to_string());
                break;
            }
        }
    }
    assert!(ended.is_some(), "the server ended the stalled stream");
    // The server says why: no answer to heartbeats (4001) or fell behind (4002).
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let metrics = response.text().await.unwrap();
    let closed: u64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with("coffer_websocket_closed_total{code=\"4001\"}")
                || line.starts_with("coffer_websocket_closed_total{code=\"4002\"}")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64;
    assert!(closed >= 1, "a heartbeat or lag close is counted: {ended:?}\n{metrics}");
    app.stop().await;
}

/// What the test receiver saw.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    signature: String,
    delivery: String,
    body: String,
}

/// An HTTP receiver on loopback that answers 500 to the first `failures` requests.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    use axum::{extract::State, http::HeaderMap, routing::post};
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let handler = |State((seen, failures)): State<(Arc<Mutex<Vec<Received>>>, usize)>,
                   headers: HeaderMap,
                   body: String| async move {
        let mut seen = seen.lock().unwrap();
        let header =
            |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        seen.push(Received {
            at: Instant::now(),
            signature: header("coffer-signature"),
            delivery: header("coffer-delivery-id"),
            body,
        });
        if seen.len() <= failures {
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        } else {
            axum::http::StatusCode::OK
        }
    };
    let app = axum::Router::new().route("/hook", post(handler)).with_state((seen.clone(), failures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// Deliveries are signed with the endpoint's secret, retried with growing delays after
/// 500s until they succeed, and logged; loopback targets are refused unless allowed.
#[tokio::test]
async fn webhooks_are_signed_retried_and_guarded() {
    let (url, seen) = receiver(2).await;
    // By default a loopback target is refused, and so is any non-http scheme.
    let app = spawn_app(&Backend::Sqlite).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let (status, body) = post(&app, &alice, "/v1/webhooks", &json!({"url": url, "event_types": ["*"]})).await;
    common::assert_problem(status, &body, 422, "webhook_target_not_allowed");
    let (status, body) =
        post(&app, &alice, "/v1/webhooks", &json!({"url": "file:///etc/passwd", "event_types": ["*"]})).await;
    common::assert_problem(status, &body, 422, "webhook_url_invalid");
    let (status, body) =
        post(&app, &alice, "/v1/webhooks", &json!({"url": "https://example.com/x", "event_types": ["nope"]}))
            .await;
    assert_eq!(status, 422, "{body}");
    app.stop().await;

    for backend in backends() {
        let options = common::Options {
            configure: |args| {
                args.webhook_allow_private = true;
                args.webhook_retry_base_ms = 100;
            },
            ..Default::default()
        };
        let app = spawn_app_with(&backend, options).await;
        seen.lock().unwrap().clear();
        let alice = register_and_login(&app, "alice@example.com").await;
        let mallory = register_and_login(&app, "mallory@example.com").await;
        let (status, endpoint) =
            post(&app, &alice, "/v1/webhooks", &json!({"url": url, "event_types": ["top_up.succeeded"]}))
                .await;
        assert_eq!(status, 201, "{endpoint}");
        let secret = endpoint["secret"].as_str().unwrap().to_owned();
        let id = endpoint["id"].as_str().unwrap();
        let (status, listed) = get(&app, &alice, &format!("/v1/webhooks/{id}")).await;
        assert_eq!((status, listed.get("secret")), (200, None), "the secret is shown once");
        let (status, _) = get(&app, &mallory, &format!("/v1/webhooks/{id}")).await;
        assert_eq!(status, 404, "someone else's endpoint");

        let wallet = open_wallet(&app, &alice, "USD").await;
        card_top_up(&app, &alice, &wallet, 1_000, "tok_visa").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().len() < 3 {
            assert!(Instant::now() < deadline, "3 attempts expected: {:?}", seen.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let attempts = seen.lock().unwrap().clone();
        assert!(attempts.iter().all(|a| a.delivery == attempts[0].delivery), "one delivery, retried");
        let gaps: Vec<Duration> = attempts.windows(2).map(|pair| pair[1].at - pair[0].at).collect();
        assert!(
            gaps[0] >= Duration::from_millis(100) && gaps[1] >= Duration::from_millis(200),
            "backoff grows: {gaps:?}"
        );
        for attempt in &attempts {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            assert!(
                coffer::notifications::webhooks::verify(&secret, &attempt.signature, &attempt.body, now, 300),
                "{attempt:?}"
            );
            assert!(!coffer::notifications::webhooks::verify(
                "whsec_wrong",
                &attempt.signature,
                &attempt.body,
                now,
                300
            ));
            let event: Value = serde_json::from_str(&attempt.body).unwrap();
            assert_eq!(event["type"], "coffer.top_up.succeeded");
        }
        let mut log = Value::Null;
        for _ in 0..100 {
            log = get(&app, &alice, &format!("/v1/webhooks/{id}/deliveries")).await.1;
            if log["data"][0]["status"] == "succeeded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
        assert_eq!(
            (log["data"][0]["status"].as_str(), log["data"][0]["attempts"].as_i64()),
            (Some("succeeded"), Some(3)),
            "{log}"
        );
        // Redelivery sends it once more.
        let delivery = log["data"][0]["id"].as_str().unwrap();
        let (status, _) =
            post(&app, &alice, &format!("/v1/webhooks/{id}/deliveries/{delivery}/redeliver"), &json!({}))
                .await;
        assert_eq!(status, 202);
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().len() < 4 {
            assert!(Instant::now() < deadline, "redelivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, _) = app
            .call(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"), Some(&alice.access_token), None)
            .await;
        assert_eq!(status, 204);
        app.stop().await;
    }
}

/// A minimal SMTP server that accepts every message and hands over its text.
async fn smtp_sink() -> (u16, tokio::sync::mpsc::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let sender = sender.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut message = String::new();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            sender.send(std::mem::take(&mut message)).await.unwrap();
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            message.push_str(&line);
                            message.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, receiver)
}

/// With COFFER_SMTP_URL set, emails go over SMTP: the welcome email reaches the sink.
#[tokio::test]
async fn emails_reach_an_smtp_server() {
    let (port, mut inbox) = smtp_sink().await;
    static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    PORT.store(port, std::sync::atomic::Ordering::SeqCst);
    let options = common::Options {
        configure: |args| {
            let port = PORT.load(std::sync::atomic::Ordering::SeqCst);
            args.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        },
        ..Default::default()
    };
    let app = spawn_app_with(&Backend::Sqlite, options).await;
    register_and_login(&app, "dora@example.com").await;
    let message =
        tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await.expect("an email").unwrap();
    assert!(message.contains("To: dora@example.com"), "{message}");
    assert!(message.contains("Subject: Welcome to Coffer"), "{message}");
    assert!(mail_files(&app).is_empty(), "not in the file outbox");
    app.stop().await;
}

/// The inbox pages newest first, marks read, and hides other customers' notifications.
#[tokio::test]
async fn inbox_lists_and_marks_read() {
    let app = spawn_app(&Backend::Sqlite).await;
    let alice = register_and_login(&app, "alice@example.com").await;
    let bob = register_and_login(&app, "bob@example.com").await;
    let wallet = open_wallet(&app, &alice, "USD").await;
    card_top_up(&app, &alice, &wallet, 100, "tok_visa").await;
    card_top_up(&app, &alice, &wallet, 100, "tok_chargeDeclined").await;
    common::relayed(&app.store().await).await;
    let (status, page) = get(&app, &alice, "/v1/notifications?limit=2").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = get(&app, &alice, &format!("/v1/notifications?limit=2&cursor={cursor}")).await;
    let mut ids: Vec<&str> =
        page["data"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    ids.extend(rest["data"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()));
    assert_eq!(ids.len(), 3, "welcome, top-up succeeded, top-up failed");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3);
    let first = ids[0];
    let (status, _) = post(&app, &bob, &format!("/v1/notifications/{first}/read"), &json!({})).await;
    assert_eq!(status, 404, "not bob's");
    let (status, _) = post(&app, &alice, &format!("/v1/notifications/{first}/read"), &json!({})).await;
    assert_eq!(status, 204);
    let (_, unread) = get(&app, &alice, "/v1/notifications?unread=true").await;
    assert_eq!(unread["data"].as_array().unwrap().len(), 2);
    let (status, body) = get(&app, &alice, "/v1/notifications?limit=0").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = get(&app, &alice, "/v1/notifications?cursor=zzz").await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

/// With a broker, the analytics consumer reads the stream through its own durable
/// consumer (`coffer-analytics`), next to the notification workers' one: both see every
/// event, and the projection equals what a rebuild from the outbox gives. The test runs
/// its own nats-server so that no other test's events share the stream.
#[tokio::test]
async fn analytics_and_notifications_consume_through_the_broker() {
    if nats_url().is_none() {
        return;
    }
    static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    PORT.store(port, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let Some(_server) = OwnNats::start(port, &dir.path().join("js")) else { return };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let options = common::Options {
        configure: |args| {
            let port = PORT.load(std::sync::atomic::Ordering::SeqCst);
            args.nats_url = Some(format!("nats://127.0.0.1:{port}"));
        },
        ..Default::default()
    };
    let app = spawn_app_with(&Backend::Sqlite, options).await;
    let store = app.store().await;
    let ada = register_and_login(&app, "ada@example.com").await;
    let wallet = open_wallet(&app, &ada, "USD").await;
    assert_eq!(card_top_up(&app, &ada, &wallet, 1_000, "tok_visa").await["status"], "succeeded");
    let snapshot_path = format!("/v1/analytics/customers/{}", ada.customer_id);
    let deadline = Instant::now() + Duration::from_secs(30);
    let snapshot = loop {
        let (status, snapshot) = app.get(&snapshot_path).await;
        assert_eq!(status, 200, "{snapshot}");
        if snapshot["balances"][0]["available"] == 1_000 {
            break snapshot;
        }
        assert!(Instant::now() < deadline, "the analytics consumer did not catch up: {snapshot}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    loop {
        let (_, inbox) = get(&app, &ada, "/v1/notifications").await;
        if inbox["data"].as_array().is_some_and(|notes| !notes.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the notification consumer did not catch up: {inbox}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let today = time::OffsetDateTime::now_utc().date();
    let daily_path = format!("/v1/analytics/daily?from={today}&to={today}");
    let (_, daily) = app.get(&daily_path).await;
    assert_eq!(
        daily["days"][0]["volume"],
        json!([{"currency": "USD", "operation": "top_up", "amount": 1_000, "count": 1}]),
        "{daily}"
    );
    let mut reported = Vec::new();
    coffer::analytics::rebuild(&store, |done, head| reported.push((done, head))).await.unwrap();
    let (done, head) = *reported.last().expect("progress after every batch");
    assert!(done == head && head > 0, "the last report reaches the head: {reported:?}");
    assert_eq!(app.get(&snapshot_path).await.1, snapshot);
    assert_eq!(app.get(&daily_path).await.1, daily);
    app.stop().await;
}
