//! The monthly digest: an email at the start of each month, to the customers who opted in
//! (`{"notifications": {"monthly_digest": true}}`, and emails not turned off), with last
//! month's summary — spending and income against the month before, the categories that
//! moved most, the budgets at risk, and the month in their home currency when they chose
//! one (`Finance::monthly_summary`).
//!
//! The worker walks the customers in rounds, [`BATCH`] per step; a round ends at the last
//! customer and the next starts after a pause (`COFFER_DIGEST_PAUSE_S`), so a customer who
//! opts in during a month still gets that month's digest. Each digest is sent once: it is
//! applied like an event whose id is derived from (customer, month) — the consumer record
//! makes two workers racing on one customer write one email — and remembered as the notice
//! `digest:YYYY-MM` (kept for good, where consumer records are not), which later rounds
//! check first. A month without any figure sends nothing but is remembered all the same.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use store::{AppliedEvent, Customer, Effects, NewEmail, Store};
use uuid::Uuid;

use super::{NotificationDefaults, Preferences};
use crate::finance::Finance;
use crate::finance::reports::{self, MonthlySummary};
use crate::wallets::money::shown as money;

/// Customers read per step.
pub const BATCH: u32 = 200;
/// The consumer name under which sent digests are remembered.
const CONSUMER: &str = "digest";
/// The email template (and inbox-free kind) of a digest.
const TEMPLATE: &str = "monthly_digest";

/// Where a round is.
#[derive(Debug, Default)]
struct Round {
    /// The last customer looked at; `None` at the start of a round.
    after: Option<Uuid>,
    /// When the last round ended (the next waits for the pause).
    ended: Option<Instant>,
}

/// The digest worker.
#[derive(Debug)]
pub struct Digest {
    store: Store,
    finance: Finance,
    defaults: NotificationDefaults,
    pause: Duration,
    round: Mutex<Round>,
}

/// The notice key of a month's digest.
fn key((year, month): (i32, u8)) -> String {
    format!("digest:{year:04}-{month:02}")
}

/// The id a month's digest of a customer is applied under.
fn digest_id(customer_id: Uuid, month: (i32, u8)) -> Uuid {
    Uuid::from_u128(crate::wallets::derive_id(customer_id, "digest", &key(month)))
}

impl Digest {
    pub fn new(store: Store, defaults: NotificationDefaults, pause: Duration) -> Self {
        Self {
            finance: Finance::new(store.clone()),
            store,
            defaults,
            pause,
            round: Mutex::new(Round::default()),
        }
    }

    /// Looks at the next [`BATCH`] customers of the round and sends last month's digest to
    /// those who want it and were not sent it; returns how many were sent.
    pub async fn step(&self) -> anyhow::Result<usize> {
        let after = {
            let round = self.round.lock().expect("not poisoned");
            if round.after.is_none() && round.ended.is_some_and(|ended| ended.elapsed() < self.pause) {
                return Ok(0);
            }
            round.after
        };
        let customers = self.store.list_customers(after, BATCH).await?;
        let (year, month) = reports::month_of(i64::try_from(store::now_ns()).unwrap_or(i64::MAX));
        let month = reports::previous(year, month);
        let mut sent = 0;
        for customer in &customers {
            if self.send(customer, month).await? {
                sent += 1;
            }
        }
        let mut round = self.round.lock().expect("not poisoned");
        match customers.last() {
            Some(last) if customers.len() == BATCH as usize => round.after = Some(last.id),
            _ => *round = Round { after: None, ended: Some(Instant::now()) },
        }
        Ok(sent)
    }

    /// Sends `customer` the digest of `month` if they want it and were not sent it.
    async fn send(&self, customer: &Customer, month: (i32, u8)) -> anyhow::Result<bool> {
        let preferences = Preferences::of(&customer.preferences, self.defaults);
        if !(preferences.monthly_digest && preferences.email) {
            return Ok(false);
        }
        if self.store.insight_notices(customer.id).await?.contains(&key(month)) {
            return Ok(false);
        }
        let summary = self.finance.monthly_summary(customer.id, month.0, month.1).await?;
        let email = text(&summary).map(|(subject, body)| NewEmail {
            id: Uuid::now_v7(),
            customer_id: Some(customer.id),
            recipient: customer.email.clone(),
            template: TEMPLATE.to_owned(),
            subject,
            body: format!(
                "Hello {},\n\n{body}\n— Coffer\n\nYou receive this digest because you asked for it; stop it with \
                 {{\"notifications\": {{\"monthly_digest\": false}}}} in your preferences.\n",
                customer.name
            ),
        });
        let effects = Effects {
            emails: email.into_iter().collect(),
            notices: vec![(customer.id, key(month))],
            ..Effects::default()
        };
        let event = AppliedEvent { id: digest_id(customer.id, month), event_type: TEMPLATE, payload: "" };
        let applied = self.store.apply_events(CONSUMER, &[(event, &effects)], store::now_ns()).await?;
        Ok(applied == 1 && !effects.emails.is_empty())
    }

    /// Steps every `interval` until `stop`.
    pub async fn run_until(
        self: std::sync::Arc<Self>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        crate::support::repeat("digest", interval, stop, move || {
            let digest = self.clone();
            async move { Ok(digest.step().await? > 0) }
        })
        .await;
    }
}

/// The digest's subject and body; `None` for a month without any figure.
fn text(summary: &MonthlySummary) -> Option<(String, String)> {
    if summary.currencies.is_empty() && summary.budgets_at_risk.is_empty() {
        return None;
    }
    let month =
        time::Month::try_from(summary.month).map_or_else(|_| summary.month.to_string(), |m| m.to_string());
    let subject = format!("Your {month} {} in figures", summary.year);
    let mut body = String::new();
    let currency = |line: &reports::CurrencySummary, heading: &str, body: &mut String| {
        let code = &line.currency;
        let change =
            line.spending_change_percent.map_or_else(String::new, |percent| format!(" ({percent:+} %)"));
        let _ = writeln!(body, "{heading}");
        let _ = writeln!(
            body,
            "  Spent {} against {} the month before{change}; income {}.",
            money(line.this_month.spending, code),
            money(line.last_month.spending, code),
            money(line.this_month.income, code)
        );
        for moved in &line.moved_most {
            let _ = writeln!(
                body,
                "  {}: {} ({})",
                moved.name,
                money(moved.this_month, code),
                signed(moved.change, code)
            );
        }
        body.push('\n');
    };
    // The home block, unless the month was all in the home currency already.
    if let Some(home) = summary.home.as_ref().filter(|home| {
        summary.currencies.iter().any(|line| line.currency != home.summary.currency)
            || !home.unvalued.is_empty()
    }) {
        let heading = format!("All currencies in {} (at the rate of each day):", home.summary.currency);
        currency(&home.summary, &heading, &mut body);
        for unvalued in &home.unvalued {
            let _ = writeln!(
                body,
                "  Not counted, for want of a rate: {}.",
                money(unvalued.total, &unvalued.currency)
            );
        }
        if !home.unvalued.is_empty() {
            body.push('\n');
        }
    }
    for line in &summary.currencies {
        currency(line, &format!("In {}:", line.currency), &mut body);
    }
    if !summary.budgets_at_risk.is_empty() {
        let _ = writeln!(body, "Budgets to watch:");
        for budget in &summary.budgets_at_risk {
            let _ = writeln!(
                body,
                "  {}: {} of {} spent ({} %, {}).",
                budget.name,
                money(budget.status.spent, &budget.currency),
                money(budget.status.available, &budget.currency),
                budget.status.percent_used,
                budget.status.state
            );
        }
        body.push('\n');
    }
    let _ = writeln!(
        body,
        "GET /v1/reports/monthly/{}/{}/summary has it all as data.",
        summary.year, summary.month
    );
    Some((subject, body))
}

/// A change with its sign: `+12.00 USD`, `-3.50 USD`.
fn signed(change: i64, code: &str) -> String {
    if change > 0 { format!("+{}", money(change, code)) } else { money(change, code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finance::reports::{CategoryMove, CurrencySummary, Totals};

    #[test]
    fn a_digest_reads_as_a_few_lines_and_an_empty_month_sends_nothing() {
        let totals = |spending, income| Totals {
            currency: "USD".into(),
            spending,
            income,
            net: income - spending,
            count: 1,
        };
        let summary = MonthlySummary {
            year: 2026,
            month: 11,
            currencies: vec![CurrencySummary {
                currency: "USD".into(),
                this_month: totals(12_000, 300_000),
                last_month: totals(10_000, 300_000),
                spending_change: 2_000,
                spending_change_percent: Some(20),
                income_change: 0,
                moved_most: vec![CategoryMove {
                    category_id: Uuid::nil(),
                    name: "Food & Dining".into(),
                    this_month: 7_000,
                    last_month: 5_000,
                    change: 2_000,
                }],
            }],
            home: None,
            budgets_at_risk: Vec::new(),
        };
        let (subject, body) = text(&summary).unwrap();
        assert_eq!(subject, "Your November 2026 in figures");
        assert!(
            body.contains(
                "Spent 120.00 USD against 100.00 USD the month before (+20 %); income 3000.00 USD."
            ),
            "{body}"
        );
        assert!(body.contains("Food & Dining: 70.00 USD (+20.00 USD)"), "{body}");
        let empty = MonthlySummary { currencies: Vec::new(), ..summary };
        assert!(text(&empty).is_none());
    }

    #[test]
    fn each_month_has_its_own_key_and_id() {
        let customer = Uuid::now_v7();
        assert_eq!(key((2026, 1)), "digest:2026-01");
        assert_eq!(digest_id(customer, (2026, 1)), digest_id(customer, (2026, 1)));
        assert_ne!(digest_id(customer, (2026, 1)), digest_id(customer, (2026, 2)));
        assert_ne!(digest_id(customer, (2026, 1)), digest_id(Uuid::now_v7(), (2026, 1)));
    }
}
