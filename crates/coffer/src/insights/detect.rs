//! What a customer's spending says, worked out from their expenses alone: pure functions,
//! no I/O, so the precision test (`tests/insights.rs`) and the service run the same code.
//!
//! - [`recurring`] finds subscriptions and bills: charges at one merchant in one currency
//!   at a regular interval (weekly, monthly, yearly; a missed period allowed), with stable
//!   amounts — a **subscription** when every charge is the same to within 2 % (a price
//!   change shows as one step between two such plateaus), a **bill** when charges vary
//!   but stay within 30 % of their median (with one charge more than a subscription needs:
//!   4 monthly, 5 weekly, 3 yearly). A series whose next charge is overdue by more
//!   than a period has ended and is not reported.
//! - [`anomalies`] flags, each with a reason a person understands: a **duplicate charge**
//!   (the same merchant and amount again within minutes), a **new merchant** charging far
//!   above the customer's usual spend (five times the median and twice the 95th percentile
//!   of their spends in the currency over the trailing 90 days), and an **unusual amount**
//!   for that customer and category: against their spends in it over the trailing 90 days,
//!   a robust z-score (Iglewicz and Hoaglin's modified z-score, `0.6745 × (x − median) /
//!   MAD`) above 3.5, at least five times the median and more than any of them (spends
//!   flagged before do not count towards what is usual) — unless they have paid that merchant about as much before (a known charge is
//!   not a surprise). Each spend is judged against the ones before it.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

const DAY_S: i64 = 86_400;

/// One expense as the detectors read it. `at` is seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spend {
    pub id: Uuid,
    pub merchant: String,
    pub category_id: Uuid,
    /// Minor units, positive.
    pub amount: i64,
    pub currency: String,
    pub at: i64,
    /// The wallet it was paid from, when known.
    pub wallet_id: Option<Uuid>,
}

/// How a merchant is recognised across charges: case, punctuation and spacing ignored.
pub fn merchant_key(merchant: &str) -> String {
    let mut key = String::with_capacity(merchant.len());
    for word in merchant.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()) {
        if !key.is_empty() {
            key.push(' ');
        }
        key.extend(word.chars().flat_map(char::to_lowercase));
    }
    key
}

/// How often a recurring payment comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Weekly,
    Monthly,
    Yearly,
}

impl Cadence {
    const ALL: [Self; 3] = [Self::Weekly, Self::Monthly, Self::Yearly];

    /// The period, and how far a charge may land from it, in seconds.
    pub fn period_s(self) -> (i64, i64) {
        match self {
            Self::Weekly => (7 * DAY_S, 3 * DAY_S / 2),
            Self::Monthly => (30 * DAY_S + DAY_S / 2, 5 * DAY_S),
            Self::Yearly => (365 * DAY_S, 10 * DAY_S),
        }
    }

    /// Charges a series needs before it counts.
    fn occurrences_min(self) -> usize {
        match self {
            Self::Weekly => 4,
            Self::Monthly => 3,
            Self::Yearly => 2,
        }
    }
}

/// A subscription (a fixed price) or a bill (an amount that varies a little).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecurringKind {
    Subscription,
    Bill,
}

/// A subscription's price change: the plateau before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceChange {
    pub from: i64,
    pub to: i64,
    /// When the new price was first charged (seconds since the epoch).
    pub at: i64,
}

/// A recurring payment found in the charges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recurring {
    /// The merchant as last charged, and its key.
    pub merchant: String,
    pub key: String,
    pub currency: String,
    pub cadence: Cadence,
    pub kind: RecurringKind,
    pub occurrences: usize,
    /// The latest charge, and the typical one (the median).
    pub amount: i64,
    pub typical: i64,
    pub first_at: i64,
    pub last_at: i64,
    /// When and how much the next charge is expected.
    pub next_at: i64,
    pub next_amount: i64,
    pub price_change: Option<PriceChange>,
    pub category_id: Uuid,
    /// The wallet the latest charge was paid from, when known.
    pub wallet_id: Option<Uuid>,
}

/// The recurring payments among `spends`, as of `now` (seconds since the epoch).
pub fn recurring(spends: &[Spend], now: i64) -> Vec<Recurring> {
    let mut groups: BTreeMap<(String, String), Vec<&Spend>> = BTreeMap::new();
    for spend in spends.iter().filter(|spend| spend.amount > 0) {
        let key = merchant_key(&spend.merchant);
        if !key.is_empty() {
            groups.entry((key, spend.currency.clone())).or_default().push(spend);
        }
    }
    let mut found = Vec::new();
    for ((key, currency), mut charges) in groups {
        charges.sort_by_key(|spend| (spend.at, spend.id));
        // A charge days after the previous one is a repeat or a correction, not a period.
        let mut series: Vec<&Spend> = Vec::with_capacity(charges.len());
        for charge in charges {
            if series.last().is_none_or(|last| charge.at - last.at >= 3 * DAY_S) {
                series.push(charge);
            }
        }
        if let Some(found_one) = Cadence::ALL.into_iter().find_map(|cadence| fits(&series, cadence, now)) {
            found.push(Recurring { key, currency, ..found_one });
        }
    }
    found.sort_by(|a, b| (a.next_at, &a.key).cmp(&(b.next_at, &b.key)));
    found
}

/// `series` as a recurring payment of `cadence`, if it is one.
fn fits(series: &[&Spend], cadence: Cadence, now: i64) -> Option<Recurring> {
    let (period, tolerance) = cadence.period_s();
    if series.len() < cadence.occurrences_min() {
        return None;
    }
    let mut missed = 0;
    for pair in series.windows(2) {
        let gap = pair[1].at - pair[0].at;
        if (gap - period).abs() <= tolerance {
            continue;
        }
        // One missed period (a skipped month) is allowed, not for yearly payments.
        if cadence != Cadence::Yearly && (gap - 2 * period).abs() <= tolerance && missed == 0 {
            missed += 1;
            continue;
        }
        return None;
    }
    let last = series.last().expect("not empty");
    // Ended: the next charge is overdue by more than a period.
    if now - last.at > 2 * period + tolerance {
        return None;
    }
    let amounts: Vec<i64> = series.iter().map(|spend| spend.amount).collect();
    let typical = median(&amounts);
    let (kind, price_change, next_amount) = if let Some(change) = plateaus(series) {
        (RecurringKind::Subscription, change, last.amount)
    } else if amounts.iter().all(|amount| within(*amount, typical, 30))
        && mad(&amounts) * 100 <= typical * 15
        // An amount that varies needs one charge more to be believed.
        && series.len() > cadence.occurrences_min()
    {
        let recent = &amounts[amounts.len().saturating_sub(3)..];
        (RecurringKind::Bill, None, median(recent))
    } else {
        return None;
    };
    Some(Recurring {
        merchant: last.merchant.clone(),
        key: String::new(),
        currency: String::new(),
        cadence,
        kind,
        occurrences: series.len(),
        amount: last.amount,
        typical,
        first_at: series[0].at,
        last_at: last.at,
        next_at: last.at + period,
        next_amount,
        price_change,
        category_id: last.category_id,
        wallet_id: last.wallet_id,
    })
}

/// `Some(change)` when the amounts form one plateau (`change` is `None`) or two, each
/// level to within 2 % (`change` is the step between them).
fn plateaus(series: &[&Spend]) -> Option<Option<PriceChange>> {
    let level = |part: &[&Spend]| {
        let first = part[0].amount;
        part.iter().all(|spend| within(spend.amount, first, 2))
    };
    if level(series) {
        return Some(None);
    }
    let step = (1..series.len()).find(|at| !within(series[*at].amount, series[at - 1].amount, 2))?;
    (level(&series[..step]) && level(&series[step..])).then(|| {
        Some(PriceChange { from: series[step - 1].amount, to: series[step].amount, at: series[step].at })
    })
}

/// Whether `amount` is within `percent` % of `of`.
fn within(amount: i64, of: i64, percent: i64) -> bool {
    (i128::from(amount) - i128::from(of)).abs() * 100 <= i128::from(of).abs() * i128::from(percent)
}

fn median(values: &[i64]) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => 0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// How far `amount` is above `amounts`: Iglewicz and Hoaglin's modified z-score,
/// `0.6745 × (x − median) / MAD`. Where the amounts do not spread at all, anything above
/// them is infinitely far.
fn robust_z(amounts: &[i64], amount: i64) -> f64 {
    let (center, spread) = (median(amounts), mad(amounts));
    let distance = (amount - center) as f64;
    if spread > 0 {
        0.6745 * distance / spread as f64
    } else if distance > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// The `rank`th percentile (nearest rank) of `values`; 0 for none.
fn percentile(values: &[i64], rank: usize) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return 0;
    }
    let at = (rank * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[at - 1]
}

/// The median absolute deviation from the median.
fn mad(values: &[i64]) -> i64 {
    let center = median(values);
    median(&values.iter().map(|value| (value - center).abs()).collect::<Vec<_>>())
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The same merchant and amount again within minutes.
    DuplicateCharge,
    /// A merchant never charged before, far above the usual spend.
    NewMerchant,
    /// Far above what the customer usually spends in the category.
    UnusualAmount,
}

/// A spend worth a second look, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub expense_id: Uuid,
    /// The earlier charge a duplicate repeats.
    pub related_expense_id: Option<Uuid>,
    pub merchant: String,
    pub amount: i64,
    pub currency: String,
    pub at: i64,
    pub reason: String,
}

/// The thresholds of [`anomalies`].
#[derive(Clone, Copy, Debug)]
pub struct AnomalySettings {
    /// A repeat of the same merchant and amount within this is a duplicate.
    pub duplicate_window_s: i64,
    /// The trailing window the usual spend is read from.
    pub trailing_s: i64,
    /// Spends in the category (and currency) the window needs before judging one.
    pub history_min: usize,
    /// Robust z-score above which a spend is unusual.
    pub z_min: f64,
    /// A new merchant is flagged from this many times the usual spend (the median in the
    /// currency over the window) and twice its 95th percentile, once the customer has this
    /// much history.
    pub new_merchant_factor: i64,
    pub new_merchant_history_s: i64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            duplicate_window_s: 10 * 60,
            trailing_s: 90 * DAY_S,
            history_min: 8,
            z_min: 3.5,
            new_merchant_factor: 5,
            new_merchant_history_s: 30 * DAY_S,
        }
    }
}

/// The spends among `spends` worth a second look, oldest first; `category` names a
/// category for the reasons. Each spend is judged against the ones before it only, so an
/// alert never changes when later spends arrive.
pub fn anomalies(
    spends: &[Spend],
    category: &dyn Fn(Uuid) -> String,
    settings: &AnomalySettings,
) -> Vec<Alert> {
    let mut sorted: Vec<&Spend> = spends.iter().filter(|spend| spend.amount > 0).collect();
    sorted.sort_by_key(|spend| (spend.at, spend.id));
    let mut seen_merchants: HashMap<String, HashSet<String>> = HashMap::new();
    let mut first_at: HashMap<&str, i64> = HashMap::new();
    let mut alerts = Vec::new();
    // Spends already flagged do not count towards what is usual.
    let mut flagged_ids: HashSet<Uuid> = HashSet::new();
    for (index, spend) in sorted.iter().enumerate() {
        let key = merchant_key(&spend.merchant);
        let earlier = &sorted[..index];
        let money = |amount: i64| crate::wallets::money::shown(amount, &spend.currency);
        let alert = |kind, related, reason| Alert {
            kind,
            expense_id: spend.id,
            related_expense_id: related,
            merchant: spend.merchant.clone(),
            amount: spend.amount,
            currency: spend.currency.clone(),
            at: spend.at,
            reason,
        };
        let duplicate =
            earlier.iter().rev().take_while(|other| spend.at - other.at <= settings.duplicate_window_s).find(
                |other| {
                    !key.is_empty()
                        && merchant_key(&other.merchant) == key
                        && other.amount == spend.amount
                        && other.currency == spend.currency
                },
            );
        let window: Vec<&&Spend> = earlier
            .iter()
            .filter(|other| other.currency == spend.currency && spend.at - other.at <= settings.trailing_s)
            .collect();
        let known = seen_merchants.entry(spend.currency.clone()).or_default();
        let new_merchant = !key.is_empty() && !known.contains(&key);
        let since = *first_at.entry(spend.currency.as_str()).or_insert(spend.at);
        let usual_in = |amounts: Vec<i64>| (amounts.len() >= settings.history_min).then(|| median(&amounts));
        let flagged = if let Some(original) = duplicate {
            let minutes = (spend.at - original.at) / 60;
            Some(alert(
                AlertKind::DuplicateCharge,
                Some(original.id),
                format!(
                    "{} at {} was charged twice, {}: this may be a duplicate.",
                    money(spend.amount),
                    spend.merchant,
                    if minutes == 0 { "within a minute".to_owned() } else { format!("{minutes} min apart") }
                ),
            ))
        } else {
            None
        };
        let flagged = flagged.or_else(|| {
            if !new_merchant || spend.at - since < settings.new_merchant_history_s {
                return None;
            }
            let amounts: Vec<i64> = window.iter().map(|other| other.amount).collect();
            let high = 2 * percentile(&amounts, 95);
            let usual = usual_in(amounts)?;
            (usual > 0 && spend.amount >= settings.new_merchant_factor * usual && spend.amount >= high).then(
                || {
                    alert(
                        AlertKind::NewMerchant,
                        None,
                        format!(
                            "First charge ever from {}: {}, {:.1} times your usual spend of {}.",
                            spend.merchant,
                            money(spend.amount),
                            spend.amount as f64 / usual as f64,
                            money(usual)
                        ),
                    )
                },
            )
        });
        let flagged = flagged.or_else(|| {
            // What the customer has paid this merchant before is what they expect to pay.
            let paid_before = earlier
                .iter()
                .any(|other| merchant_key(&other.merchant) == key && within(spend.amount, other.amount, 10));
            if paid_before {
                return None;
            }
            let same: Vec<i64> =
                window
                .iter()
                .filter(|other| other.category_id == spend.category_id && !flagged_ids.contains(&other.id))
                .map(|other| other.amount)
                .collect();
            let usual = usual_in(same.clone())?;
            let highest = same.iter().copied().max().unwrap_or(0);
            let unusual = usual > 0
                && spend.amount >= 5 * usual
                && spend.amount > highest
                && robust_z(&same, spend.amount) > settings.z_min;
            unusual.then(|| {
                alert(
                    AlertKind::UnusualAmount,
                    None,
                    format!(
                        "{} at {} is {:.1} times what you usually spend on {} (typically {} over the last {} days).",
                        money(spend.amount),
                        spend.merchant,
                        spend.amount as f64 / usual as f64,
                        category(spend.category_id),
                        money(usual),
                        settings.trailing_s / DAY_S
                    ),
                )
            })
        });
        if let Some(alert) = flagged {
            flagged_ids.insert(alert.expense_id);
            alerts.push(alert);
        }
        if !key.is_empty() {
            known.insert(key);
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(merchant: &str, amount: i64, day: i64) -> Spend {
        Spend {
            id: Uuid::now_v7(),
            merchant: merchant.into(),
            category_id: Uuid::nil(),
            amount,
            currency: "USD".into(),
            at: day * DAY_S,
            wallet_id: None,
        }
    }

    #[test]
    fn merchants_match_whatever_their_spelling() {
        assert_eq!(merchant_key("  NETFLIX.COM "), "netflix com");
        assert_eq!(merchant_key("Netflix.com"), merchant_key("NETFLIX COM"));
        assert_eq!(merchant_key("***"), "");
    }

    #[test]
    fn a_monthly_subscription_with_a_price_rise_and_a_skipped_month() {
        let spends: Vec<Spend> = [(0, 1549), (30, 1549), (61, 1549), (122, 1549), (152, 1799), (183, 1799)]
            .into_iter()
            .map(|(day, amount)| spend("Netflix", amount, day))
            .collect();
        let found = recurring(&spends, 190 * DAY_S);
        assert_eq!(found.len(), 1, "{found:?}");
        let netflix = &found[0];
        assert_eq!(
            (netflix.cadence, netflix.kind, netflix.occurrences),
            (Cadence::Monthly, RecurringKind::Subscription, 6)
        );
        assert_eq!(netflix.price_change, Some(PriceChange { from: 1549, to: 1799, at: 152 * DAY_S }));
        assert_eq!((netflix.next_amount, netflix.next_at), (1799, 183 * DAY_S + 30 * DAY_S + DAY_S / 2));
        // Long after the last charge, the subscription has ended.
        assert!(recurring(&spends, 300 * DAY_S).is_empty());
    }

    #[test]
    fn bills_vary_groceries_do_not_recur() {
        let bill: Vec<Spend> = [(3, 8_210), (33, 9_005), (64, 7_770), (94, 8_480)]
            .into_iter()
            .map(|(d, a)| spend("City Power", a, d))
            .collect();
        let found = recurring(&bill, 100 * DAY_S);
        assert_eq!((found[0].kind, found[0].cadence), (RecurringKind::Bill, Cadence::Monthly));
        let groceries: Vec<Spend> = [(0, 3_000), (7, 14_500), (14, 6_200), (21, 9_900), (28, 4_100)]
            .into_iter()
            .map(|(d, a)| spend("Aldi", a, d))
            .collect();
        assert!(recurring(&groceries, 30 * DAY_S).is_empty(), "weekly, but the amounts are anything");
        let irregular: Vec<Spend> = [(0, 999), (11, 999), (40, 999), (47, 999)]
            .into_iter()
            .map(|(d, a)| spend("Kiosk", a, d))
            .collect();
        assert!(recurring(&irregular, 50 * DAY_S).is_empty(), "the same amount at no regular interval");
    }

    #[test]
    fn duplicates_new_merchants_and_unusual_amounts_are_flagged_with_reasons() {
        let mut spends: Vec<Spend> =
            (0..40).map(|day| spend("Cafe Nero", 400 + (day % 5) * 20, day)).collect();
        let duplicate = Spend { at: spends[39].at + 120, id: Uuid::now_v7(), ..spends[39].clone() };
        let unusual = spend("Cafe Nero", 4_800, 41);
        let new_merchant = spend("Bose Store", 39_900, 42);
        let small_new = spend("Corner Shop", 350, 43);
        spends.extend([duplicate.clone(), unusual.clone(), new_merchant.clone(), small_new]);
        let alerts = anomalies(&spends, &|_| "Coffee Shops".to_owned(), &AnomalySettings::default());
        let kinds: Vec<(AlertKind, Uuid)> =
            alerts.iter().map(|alert| (alert.kind, alert.expense_id)).collect();
        assert_eq!(
            kinds,
            [
                (AlertKind::DuplicateCharge, duplicate.id),
                (AlertKind::UnusualAmount, unusual.id),
                (AlertKind::NewMerchant, new_merchant.id)
            ]
        );
        assert_eq!(
            alerts[0].reason,
            "4.80 USD at Cafe Nero was charged twice, 2 min apart: this may be a duplicate."
        );
        assert!(
            alerts[1]
                .reason
                .starts_with("48.00 USD at Cafe Nero is 10.9 times what you usually spend on Coffee Shops"),
            "{}",
            alerts[1].reason
        );
        assert!(
            alerts[2].reason.starts_with("First charge ever from Bose Store: 399.00 USD"),
            "{}",
            alerts[2].reason
        );
    }
}
