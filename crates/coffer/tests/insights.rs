//! The insights' precision check: a generated year (13 months) of one customer's spending
//! with a fixed seed — groceries, coffee, rides, restaurants and shopping at random, one-off
//! market stalls — with planted subscriptions (two of them raising their price), weekly and
//! yearly payments, bills that vary, a subscription cancelled months ago, duplicate
//! charges, unusual amounts and big first-time merchants. The detectors run over it and
//! the test prints and checks precision and recall per kind against what was planted
//! (`docs/insights.md` keeps the figures). Then the same end to end on both backends:
//! expenses in over HTTP, the insights out, and each told once in the inbox.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use coffer::insights::detect::{
    AlertKind, AnomalySettings, Cadence, Spend, anomalies, merchant_key, recurring,
};
use common::{backends, customer, register_and_login, spawn_app};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use uuid::Uuid;

const DAY: i64 = 86_400;
const DAYS: i64 = 395;

/// The generator's dice: a seeded `StdRng` (the same sequence for a seed while the rand
/// crate's major version stays).
struct Random(StdRng);

impl Random {
    /// Uniform in `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        self.0.random_range(low..=high)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.0.random_range(0..100) < percent
    }
}

/// What was planted, to score the detectors against.
#[derive(Default)]
struct Truth {
    recurring: HashMap<String, Cadence>,
    price_rises: HashSet<String>,
    alerts: HashMap<Uuid, AlertKind>,
}

struct Year {
    spends: Vec<Spend>,
    categories: HashMap<Uuid, &'static str>,
    truth: Truth,
}

fn generate(seed: u64) -> Year {
    let mut random = Random(StdRng::seed_from_u64(seed));
    let names =
        ["Groceries", "Coffee", "Rides", "Restaurants", "Shopping", "Subscriptions", "Utilities", "Fitness"];
    let ids: Vec<Uuid> = (0..names.len()).map(|i| Uuid::from_u128(i as u128 + 1)).collect();
    let category = |name: &str| ids[names.iter().position(|n| *n == name).unwrap()];
    let mut spends = Vec::new();
    let mut truth = Truth::default();
    let add = |spends: &mut Vec<Spend>, merchant: &str, category: Uuid, amount: i64, at: i64| {
        let id = Uuid::from_u128(0x1000 + spends.len() as u128);
        spends.push(Spend {
            id,
            merchant: merchant.into(),
            category_id: category,
            amount,
            currency: "USD".into(),
            at,
            wallet_id: None,
        });
        id
    };
    let restaurants: Vec<String> = (0..25).map(|i| format!("Restaurant {i}")).collect();
    let shops: Vec<String> = (0..30).map(|i| format!("Shop {i}")).collect();
    let mut stalls = 0;
    // The background: a day at a time, at random hours.
    for day in 0..DAYS {
        let at = |random: &mut Random| day * DAY + random.between(7 * 3_600, 22 * 3_600);
        if random.chance(22) {
            let store = ["Aldi", "Tesco", "Lidl"][random.between(0, 2) as usize];
            let (amount, when) = (random.between(2_500, 12_000), at(&mut random));
            add(&mut spends, store, category("Groceries"), amount, when);
        }
        if random.chance(57) {
            let cafe = ["Cafe Nero", "Blue Bottle"][random.between(0, 1) as usize];
            let (amount, when) = (random.between(350, 650), at(&mut random));
            add(&mut spends, cafe, category("Coffee"), amount, when);
        }
        if random.chance(43) {
            let (amount, when) = (random.between(800, 3_500), at(&mut random));
            add(&mut spends, "Uber", category("Rides"), amount, when);
        }
        if random.chance(29) {
            let place = restaurants[random.between(0, 24) as usize].clone();
            let (amount, when) = (random.between(1_500, 6_000), at(&mut random));
            add(&mut spends, &place, category("Restaurants"), amount, when);
        }
        if random.chance(14) {
            let shop = shops[random.between(0, 29) as usize].clone();
            let (amount, when) = (random.between(1_000, 15_000), at(&mut random));
            add(&mut spends, &shop, category("Shopping"), amount, when);
        }
        if random.chance(7) {
            stalls += 1;
            let (amount, when) = (random.between(500, 3_000), at(&mut random));
            add(&mut spends, &format!("Market Stall {stalls}"), category("Groceries"), amount, when);
        }
    }
    // Monthly subscriptions on their day of the month (a day either way), two raising
    // their price; one cancelled after five months (no longer recurring).
    let monthly = [
        ("Netflix", 5, 1_549, Some((8, 1_799))),
        ("Spotify", 12, 1_099, Some((10, 1_199))),
        ("iCloud", 20, 299, None),
        ("New York Times", 1, 1_700, None),
        ("Adobe", 15, 5_999, None),
        ("Comcast", 23, 8_999, None),
        ("Hulu", 9, 799, None),
    ];
    for (merchant, day_of_month, price, rise) in monthly {
        let months = if merchant == "Hulu" { 5 } else { 13 };
        for month in 0..months {
            let amount = match rise {
                Some((from, new)) if month >= from => new,
                _ => price,
            };
            let day = month * 30 + day_of_month + random.between(-1, 1);
            if day < DAYS {
                add(&mut spends, merchant, category("Subscriptions"), amount, day * DAY + 6 * 3_600);
            }
        }
        if merchant != "Hulu" {
            truth.recurring.insert(merchant_key(merchant), Cadence::Monthly);
        }
        if rise.is_some() {
            truth.price_rises.insert(merchant_key(merchant));
        }
    }
    // Bills that vary (monthly), weekly payments, yearly ones.
    for (merchant, low, high) in [("City Power", 7_000, 9_500), ("Water Co", 3_000, 3_600)] {
        for month in 0..13 {
            let day = month * 30 + 18 + random.between(-2, 2);
            let amount = random.between(low, high);
            add(&mut spends, merchant, category("Utilities"), amount, day * DAY + 9 * 3_600);
        }
        truth.recurring.insert(merchant_key(merchant), Cadence::Monthly);
    }
    for (merchant, amount, first) in [("Yoga Studio", 1_500, 2), ("Meal Kit", 6_999, 4)] {
        let mut day = first;
        while day < DAYS {
            add(
                &mut spends,
                merchant,
                category("Fitness"),
                amount,
                (day + random.between(0, 1)) * DAY + 8 * 3_600,
            );
            day += 7;
        }
        truth.recurring.insert(merchant_key(merchant), Cadence::Weekly);
    }
    for (merchant, amount, first) in [("Amazon Prime", 13_900, 10), ("Domain Renewal", 1_899, 28)] {
        for day in [first, first + 365] {
            add(&mut spends, merchant, category("Subscriptions"), amount, day * DAY + 10 * 3_600);
        }
        truth.recurring.insert(merchant_key(merchant), Cadence::Yearly);
    }
    // Anomalies, after the first two months: duplicates of real charges minutes later,
    // unusual amounts at known places, big first-time merchants.
    let everyday = spends.clone();
    let background: Vec<Spend> = spends
        .iter()
        .filter(|spend| {
            spend.at > 60 * DAY
                && ["Restaurants", "Shopping"].iter().any(|n| category(n) == spend.category_id)
        })
        .cloned()
        .collect();
    for _ in 0..6 {
        let original = &background[random.between(0, background.len() as i64 - 1) as usize];
        let at = original.at + random.between(60, 480);
        let id = add(&mut spends, &original.merchant, original.category_id, original.amount, at);
        truth.alerts.insert(id, AlertKind::DuplicateCharge);
    }
    // Unusual amounts at places the customer has been to before, each at its own place (a
    // second big bill at the same place is what that place costs, not a surprise).
    let mut used = HashSet::new();
    for i in 0..8 {
        let day = random.between(70, DAYS - 1);
        let name = if i % 2 == 0 { "Restaurants" } else { "Shopping" };
        let visited: Vec<&Spend> = everyday
            .iter()
            .filter(|spend| {
                spend.category_id == category(name) && spend.at < day * DAY && !used.contains(&spend.merchant)
            })
            .collect();
        let place = visited[random.between(0, visited.len() as i64 - 1) as usize].merchant.clone();
        used.insert(place.clone());
        let amount =
            if i % 2 == 0 { random.between(30_000, 50_000) } else { random.between(60_000, 120_000) };
        let id = add(&mut spends, &place, category(name), amount, day * DAY + 15 * 3_600);
        truth.alerts.insert(id, AlertKind::UnusualAmount);
    }
    for i in 0..4 {
        let day = random.between(70, DAYS - 1);
        let amount = random.between(80_000, 200_000);
        let id =
            add(&mut spends, &format!("Jeweller {i}"), category("Shopping"), amount, day * DAY + 16 * 3_600);
        truth.alerts.insert(id, AlertKind::NewMerchant);
    }
    let categories = names.iter().zip(&ids).map(|(name, id)| (*id, *name)).collect();
    Year { spends, categories, truth }
}

/// Precision and recall of `found` against `planted`.
fn score<T: Eq + std::hash::Hash>(found: &HashSet<T>, planted: &HashSet<T>) -> (f64, f64) {
    let hits = found.intersection(planted).count() as f64;
    let precision = if found.is_empty() { 1.0 } else { hits / found.len() as f64 };
    let recall = if planted.is_empty() { 1.0 } else { hits / planted.len() as f64 };
    (precision, recall)
}

#[test]
fn detectors_find_what_was_planted_and_little_else() {
    for seed in [20_261_203, 7, 99, 1, 2, 3, 42, 1_000, 31_337, 65_535] {
        let year = generate(seed);
        let now = DAYS * DAY;

        let found = recurring(&year.spends, now);
        let detected: HashSet<String> = found.iter().map(|r| r.key.clone()).collect();
        let planted: HashSet<String> = year.truth.recurring.keys().cloned().collect();
        let (precision, recall) = score(&detected, &planted);
        println!(
            "seed {seed}: recurring precision {precision:.3} recall {recall:.3} ({} found, {} planted; {} charges in all)",
            detected.len(),
            planted.len(),
            year.spends.len()
        );
        let wrong: Vec<_> = detected.difference(&planted).collect();
        let missed: Vec<_> = planted.difference(&detected).collect();
        if !missed.is_empty() {
            println!("seed {seed}: recurring missed {missed:?}");
        }
        for item in found.iter().filter(|item| !planted.contains(&item.key)) {
            println!("seed {seed}: recurring not planted {item:?}");
        }
        assert!(precision >= 0.95 && recall >= 0.9, "seed {seed}: not planted {wrong:?}, missed {missed:?}");
        for item in &found {
            if let Some(cadence) = year.truth.recurring.get(&item.key) {
                assert_eq!(item.cadence, *cadence, "{}", item.key);
            }
        }
        let rises: HashSet<String> = found
            .iter()
            .filter(|r| r.price_change.is_some_and(|c| c.to > c.from))
            .map(|r| r.key.clone())
            .collect();
        let (precision, recall) = score(&rises, &year.truth.price_rises);
        println!("seed {seed}: price rises precision {precision:.3} recall {recall:.3}");
        assert_eq!(rises, year.truth.price_rises);

        let names = &year.categories;
        let alerts = anomalies(&year.spends, &|id| names[&id].to_owned(), &AnomalySettings::default());
        for kind in [AlertKind::DuplicateCharge, AlertKind::UnusualAmount, AlertKind::NewMerchant] {
            let found: HashSet<Uuid> =
                alerts.iter().filter(|a| a.kind == kind).map(|a| a.expense_id).collect();
            let planted: HashSet<Uuid> =
                year.truth.alerts.iter().filter(|(_, k)| **k == kind).map(|(id, _)| *id).collect();
            let (precision, recall) = score(&found, &planted);
            println!(
                "seed {seed}: {kind:?} precision {precision:.3} recall {recall:.3} ({} found, {} planted)",
                found.len(),
                planted.len()
            );
            let wrong: Vec<String> = alerts
                .iter()
                .filter(|a| a.kind == kind && !planted.contains(&a.expense_id))
                .map(|a| a.reason.clone())
                .collect();
            assert!(precision >= 0.8, "seed {seed}: {kind:?} flagged what was not planted: {wrong:#?}");
            let missed: Vec<(String, i64, i64, Option<AlertKind>)> = year
                .spends
                .iter()
                .filter(|spend| planted.contains(&spend.id) && !found.contains(&spend.id))
                .map(|spend| {
                    let flagged =
                        alerts.iter().find(|alert| alert.expense_id == spend.id).map(|alert| alert.kind);
                    (spend.merchant.clone(), spend.amount, spend.at / DAY, flagged)
                })
                .collect();
            if !missed.is_empty() {
                println!("seed {seed}: {kind:?} missed (merchant, amount, day, flagged as) {missed:?}");
            }
            assert!(
                recall >= 0.8,
                "seed {seed}: {kind:?} missed planted ones (merchant, amount, day, flagged as): {missed:?}"
            );
        }
    }
}

/// `days` ago, RFC 3339.
fn days_ago(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() - time::Duration::days(days);
    at.format(&time::format_description::well_known::Rfc3339).unwrap()
}

async fn expense(
    app: &common::TestApp,
    session: &common::Session,
    merchant: &str,
    amount: i64,
    at: &str,
) -> Value {
    let body = json!({"amount": amount, "currency": "USD", "merchant": merchant, "occurred_at": at});
    let (status, expense) = customer::post(app, session, "/v1/expenses", &body).await;
    assert_eq!(status, 201, "{expense}");
    expense
}

/// The kinds in the customer's inbox, once the consumer has caught up with `expected`.
async fn inbox(app: &common::TestApp, session: &common::Session, expected: &[&str]) -> Vec<String> {
    let mut kinds = Vec::new();
    for _ in 0..500 {
        let (_, page) = customer::get(app, session, "/v1/notifications?limit=100").await;
        kinds =
            page["data"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap().to_owned()).collect();
        if expected.iter().all(|kind| kinds.iter().any(|k| k == kind)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kinds
}

#[tokio::test]
async fn insights_come_from_expenses_and_are_told_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let session = register_and_login(&app, "insights@example.com").await;
        // Four months of a streaming service, its price up on the last charge; coffee in
        // between; a charge repeated two minutes later.
        for (days, amount) in [(95, 1_549), (65, 1_549), (35, 1_549), (5, 1_799)] {
            expense(&app, &session, "Netflix", amount, &days_ago(days)).await;
        }
        for day in 1..20 {
            expense(&app, &session, "Cafe Nero", 420 + day % 3 * 10, &days_ago(day * 4)).await;
        }
        let first = expense(&app, &session, "Shell", 1_500, &days_ago(2)).await;
        let at = time::OffsetDateTime::now_utc() - time::Duration::days(2) + time::Duration::minutes(2);
        let repeat = expense(
            &app,
            &session,
            "SHELL",
            1_500,
            &at.format(&time::format_description::well_known::Rfc3339).unwrap(),
        )
        .await;

        let (status, recurring) = customer::get(&app, &session, "/v1/insights/recurring").await;
        assert_eq!(status, 200, "{recurring}");
        let data = recurring["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{recurring}");
        assert_eq!(data[0]["merchant"], "Netflix");
        assert_eq!(data[0]["cadence"], "monthly");
        assert_eq!(data[0]["kind"], "subscription");
        assert_eq!(data[0]["occurrences"], 4);
        assert_eq!(data[0]["next_amount"], 1_799);
        assert_eq!(data[0]["price_change"]["from"], 1_549);
        assert_eq!(data[0]["price_change"]["to"], 1_799);

        let (status, alerts) = customer::get(&app, &session, "/v1/insights/alerts").await;
        assert_eq!(status, 200, "{alerts}");
        let data = alerts["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{alerts}");
        assert_eq!(data[0]["kind"], "duplicate_charge");
        assert_eq!(data[0]["expense_id"], repeat["id"]);
        assert_eq!(data[0]["related_expense_id"], first["id"]);
        assert_eq!(
            data[0]["reason"],
            "15.00 USD at SHELL was charged twice, 2 min apart: this may be a duplicate."
        );

        // Told in the inbox, each once: another expense tells nothing new.
        let told = ["subscription_detected", "price_increase", "spending_alert"];
        let kinds = inbox(&app, &session, &told).await;
        for kind in told {
            assert_eq!(kinds.iter().filter(|k| *k == kind).count(), 1, "{kind}: {kinds:?}");
        }
        expense(&app, &session, "Cafe Nero", 430, &days_ago(0)).await;
        common::relayed(&app.store().await).await;
        let again = inbox(&app, &session, &told).await;
        for kind in told {
            assert_eq!(again.iter().filter(|k| *k == kind).count(), 1, "{kind} told again: {again:?}");
        }
        // Someone else sees none of it.
        let other = register_and_login(&app, "other.insights@example.com").await;
        let (_, recurring) = customer::get(&app, &other, "/v1/insights/recurring").await;
        assert_eq!(recurring["data"], json!([]));
        app.stop().await;
    }
}

#[tokio::test]
async fn a_forecast_counts_schedules_subscriptions_and_income_and_warns_ahead() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let alice = register_and_login(&app, "forecast@example.com").await;
        let bob = register_and_login(&app, "payee@example.com").await;
        let wallet = customer::open_wallet(&app, &alice, "USD").await;
        let bobs = customer::open_wallet(&app, &bob, "USD").await;
        customer::top_up(&app, &alice, &wallet, 9_000).await;
        // Rent in three days, monthly; a subscription found in the expenses, due in about
        // five days.
        let start = time::OffsetDateTime::now_utc() + time::Duration::days(3);
        let start = start.format(&time::format_description::well_known::Rfc3339).unwrap();
        let rent = json!({"from_wallet_id": wallet, "to_wallet_id": bobs, "amount": 8_200,
            "frequency": "monthly", "start_at": start, "description": "rent"});
        let (status, body) = customer::post(&app, &alice, "/v1/scheduled-payments", &rent).await;
        assert_eq!(status, 201, "{body}");
        for days in [86, 56, 25] {
            expense(&app, &alice, "Netflix", 1_549, &days_ago(days)).await;
        }

        let (status, forecast) = customer::get(&app, &alice, "/v1/insights/forecast?days=60").await;
        assert_eq!(status, 200, "{forecast}");
        assert_eq!(forecast["days"], 60);
        let mine = &forecast["wallets"][0];
        assert_eq!(mine["wallet_id"], wallet.as_str());
        assert_eq!(mine["balance"], 9_000);
        assert_eq!(mine["daily_income"], 100, "9,000 topped up over 90 days");
        assert_eq!(mine["daily"].as_array().unwrap().len(), 60);
        let expected = mine["expected"].as_array().unwrap();
        let rent: Vec<&Value> = expected.iter().filter(|flow| flow["source"] == "scheduled").collect();
        let netflix: Vec<&Value> = expected.iter().filter(|flow| flow["source"] == "recurring").collect();
        assert_eq!(rent.len(), 2, "rent twice in 60 days: {expected:?}");
        assert_eq!((&rent[0]["amount"], &rent[0]["description"]), (&json!(-8_200), &json!("rent")));
        assert_eq!(netflix.len(), 2, "{expected:?}");
        assert_eq!((&netflix[0]["amount"], &netflix[0]["description"]), (&json!(-1_549), &json!("Netflix")));
        // 9,000 + 100 a day − 8,200 − 1,549 goes below zero on the subscription's day.
        assert_eq!(mine["below_zero_on"], netflix[0]["date"], "{mine}");
        let daily = mine["daily"].as_array().unwrap();
        let on = daily.iter().find(|day| day["date"] == netflix[0]["date"]).unwrap();
        assert!(on["balance"].as_i64().unwrap() < 0);
        assert_eq!(
            mine["lowest_balance"],
            daily.iter().map(|d| d["balance"].as_i64().unwrap()).min().unwrap()
        );

        let kinds = inbox(&app, &alice, &["low_balance_forecast"]).await;
        assert_eq!(kinds.iter().filter(|kind| *kind == "low_balance_forecast").count(), 1, "{kinds:?}");
        let (status, problem) = customer::get(&app, &alice, "/v1/insights/forecast?days=91").await;
        common::assert_problem(status, &problem, 422, "validation_failed");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_monthly_summary_says_what_moved_and_which_budgets_are_at_risk() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = register_and_login(&app, "summary@example.com").await;
        let (_, categories) = customer::get(&app, &ada, "/v1/categories").await;
        let id = |name: &str| {
            categories.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let now = time::OffsetDateTime::now_utc();
        let this_month = now.date().replace_day(1).unwrap().midnight().assume_utc();
        let last_month =
            (this_month - time::Duration::days(1)).date().replace_day(10).unwrap().midnight().assume_utc();
        let rfc =
            |at: time::OffsetDateTime| at.format(&time::format_description::well_known::Rfc3339).unwrap();
        let spend = [
            (last_month, "Coffee Shops", 1_000),
            (last_month, "Taxi & Rideshare", 5_000),
            (last_month, "Movies", 2_000),
            (last_month, "Flights", 100),
            (this_month, "Coffee Shops", 4_000),
            (this_month, "Taxi & Rideshare", 1_000),
            (this_month, "Movies", 2_500),
            (this_month, "Flights", 100),
            (this_month, "Salary", 300_000),
        ];
        for (at, category, amount) in spend {
            let body = json!({"amount": amount, "currency": "USD", "category_id": id(category), "occurred_at": rfc(at)});
            let (status, body) = customer::post(&app, &ada, "/v1/expenses", &body).await;
            assert_eq!(status, 201, "{body}");
        }
        let food = json!({"category_id": id("Food & Dining"), "currency": "USD", "amount": 3_000});
        let (status, budget) = customer::post(&app, &ada, "/v1/budgets", &food).await;
        assert_eq!(status, 201, "{budget}");

        let path =
            format!("/v1/reports/monthly/{}/{}/summary", this_month.year(), u8::from(this_month.month()));
        let (status, summary) = customer::get(&app, &ada, &path).await;
        assert_eq!(status, 200, "{summary}");
        let usd = &summary["currencies"][0];
        assert_eq!(usd["currency"], "USD");
        assert_eq!(
            (&usd["this_month"]["spending"], &usd["last_month"]["spending"]),
            (&json!(7_600), &json!(8_100))
        );
        assert_eq!((&usd["spending_change"], &usd["spending_change_percent"]), (&json!(-500), &json!(-6)));
        assert_eq!(usd["income_change"], 300_000);
        let moved: Vec<(&str, i64)> = usd["moved_most"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| (line["name"].as_str().unwrap(), line["change"].as_i64().unwrap()))
            .collect();
        assert_eq!(moved, [("Transportation", -4_000), ("Food & Dining", 3_000), ("Entertainment", 500)]);
        let at_risk = summary["budgets_at_risk"].as_array().unwrap();
        assert_eq!(at_risk.len(), 1, "{summary}");
        assert_eq!(
            (&at_risk[0]["budget_id"], &at_risk[0]["status"]["state"]),
            (&budget["id"], &json!("exceeded"))
        );
        app.stop().await;
    }
}

/// A batch whose first expense event was applied before (a redelivery) still tells what
/// the batch's new expenses call for: the news travels with the first event not applied
/// yet, since the redelivered one is skipped when the batch is written.
#[tokio::test]
async fn news_survive_a_redelivered_first_event_in_the_batch() {
    for backend in backends() {
        // The API alone: nothing relays the outbox, so the test delivers it by hand.
        let options = common::Options {
            configure: |args| args.roles = vec![coffer::config::ProcessRole::Api],
            ..common::Options::default()
        };
        let app = common::spawn_app_with(&backend, options).await;
        let session = register_and_login(&app, "redelivered@example.com").await;
        let first = expense(&app, &session, "Shell", 1_500, &days_ago(0)).await;
        let repeat = expense(&app, &session, "SHELL", 1_500, &days_ago(0)).await;
        let store = app.store().await;
        let events = store.events_after(0, 100).await.unwrap();
        let added = |expense: &Value| {
            let id = expense["id"].as_str().unwrap();
            let event = events
                .iter()
                .find(|event| event.event_type == "coffer.expense.added" && event.payload.contains(id))
                .unwrap_or_else(|| panic!("no expense.added for {id}"));
            coffer::events::bus::Delivered::from(event)
        };
        let notifier = coffer::notifications::Notifier::new(store.clone(), Default::default());
        notifier.apply_all(&[added(&first)]).await.unwrap();
        // Redelivered with the next one, first in the batch.
        notifier.apply_all(&[added(&first), added(&repeat)]).await.unwrap();
        let (_, page) = customer::get(&app, &session, "/v1/notifications?limit=100").await;
        let alerts: Vec<&Value> =
            page["data"].as_array().unwrap().iter().filter(|n| n["kind"] == "spending_alert").collect();
        assert_eq!(alerts.len(), 1, "the duplicate charge is told: {page}");
        assert!(alerts[0]["title"].as_str().unwrap().contains("duplicate"), "{page}");
        app.stop().await;
    }
}
