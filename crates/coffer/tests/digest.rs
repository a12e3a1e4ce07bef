//! The monthly digest end to end, on both backends: last month's summary emailed once to a
//! customer who opted in — with their figures, the category that moved and, with a home
//! currency, the month valued in it — and to nobody who did not ask, turned emails off, or
//! had nothing to report; later rounds and a second worker send nothing more.

mod common;

use std::time::Duration;

use common::{Options, Raw, Session, TestApp, backends, customer, register_and_login, spawn_app_with};
use serde_json::{Value, json};

fn options() -> Options {
    Options { configure: |args| args.digest_pause_s = 0, ..Options::default() }
}

/// `YYYY-MM` of the month `back` months before this one.
fn month_before(back: u8) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let (mut year, mut month) = (today.year(), u8::from(today.month()));
    for _ in 0..back {
        (year, month) = if month == 1 { (year - 1, 12) } else { (year, month - 1) };
    }
    format!("{year:04}-{month:02}")
}

async fn prefer(app: &TestApp, session: &Session, preferences: Value) {
    let (status, body) =
        customer::patch(app, session, "/v1/customers/me", &json!({"preferences": preferences})).await;
    assert_eq!(status, 200, "{body}");
}

async fn spend(app: &TestApp, session: &Session, amount: i64, month: &str) {
    let body = json!({"amount": amount, "currency": "USD", "merchant": "Tesco", "mcc": "5411",
        "occurred_at": format!("{month}-15T12:00:00Z")});
    let (status, created) = customer::post(app, session, "/v1/expenses", &body).await;
    assert_eq!(status, 201, "{created}");
}

fn digests(app: &TestApp) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(app.data_dir.path().join("mail")) else { return Vec::new() };
    entries
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("monthly_digest-"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .collect()
}

#[tokio::test]
async fn last_month_is_emailed_once_to_whoever_asked_and_has_figures() {
    for backend in backends() {
        let app = spawn_app_with(&backend, options()).await;
        let (last, before) = (month_before(1), month_before(2));
        let ada = register_and_login(&app, "ada@example.com").await;
        spend(&app, &ada, 12_000, &last).await;
        spend(&app, &ada, 10_000, &before).await;
        // Today's sandbox rates are recorded when fetched (1.08 dollars per euro); the
        // months before the first recorded day are valued at them.
        let (status, rates) = customer::get(&app, &ada, "/v1/fx/rates").await;
        assert_eq!(status, 200, "{rates}");
        prefer(&app, &ada, json!({"home_currency": "EUR", "notifications": {"monthly_digest": true}})).await;
        let bob = register_and_login(&app, "bob@example.com").await; // did not ask
        spend(&app, &bob, 5_000, &last).await;
        let carol = register_and_login(&app, "carol@example.com").await; // asked, but no emails
        spend(&app, &carol, 5_000, &last).await;
        prefer(&app, &carol, json!({"notifications": {"monthly_digest": true, "email": false}})).await;
        let dan = register_and_login(&app, "dan@example.com").await; // asked, nothing to report
        prefer(&app, &dan, json!({"notifications": {"monthly_digest": true}})).await;

        let mut sent = Vec::new();
        for _ in 0..250 {
            sent = digests(&app);
            if !sent.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        assert_eq!(sent.len(), 1, "{sent:?}");
        // Quoted-printable: soft line breaks joined again.
        let mail = sent[0].replace("\r\n", "\n").replace("=\n", "");
        assert!(mail.contains("To: ada@example.com"), "{mail}");
        assert!(
            mail.contains("In USD:\n  Spent 120.00 USD against 100.00 USD the month before (+20 %)"),
            "{mail}"
        );
        assert!(mail.contains("Food & Dining: 120.00 USD (+20.00 USD)"), "{mail}");
        // 120.00 / 1.08 = 111.11; 100.00 / 1.08 = 92.59 (half to even at the cent).
        assert!(
            mail.contains(
                "All currencies in EUR (at the rate of each day):\n  Spent 111.11 EUR against 92.59 EUR"
            ),
            "{mail}"
        );

        // More rounds (no pause here), and a second worker on the same database: no more.
        let second = coffer::notifications::digest::Digest::new(
            app.store().await,
            coffer::notifications::NotificationDefaults::default(),
            Duration::ZERO,
        );
        for _ in 0..3 {
            second.step().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(digests(&app).len(), 1);
        let raw = Raw::new(&app);
        assert_eq!(raw.number("SELECT COUNT(*) FROM emails WHERE template = 'monthly_digest'").await, 1);
        // Dan's empty month is remembered as told, so no round reads it again.
        assert_eq!(raw.number("SELECT COUNT(*) FROM insight_notices WHERE key LIKE 'digest:%'").await, 2);
        app.stop().await;
    }
}
