//! A wallet's expected balance over the coming days (pure): today's available balance,
//! plus the wallet's average daily income, plus or minus every expected flow on its day.
//! The service (`service.rs`) supplies the flows — scheduled payments, recurring payments
//! found in the expenses — and the income; this module only adds them up and finds the
//! lowest point and the first day below zero.

use time::Date;
use uuid::Uuid;

/// Days a forecast covers at most.
pub const HORIZON_DAYS_MAX: u32 = 90;

/// A wallet as the forecast starts from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub wallet_id: Uuid,
    pub currency: String,
    /// Available now, minor units.
    pub balance: i64,
    /// Average income per day (minor units), added every day of the forecast.
    pub daily_income: i64,
}

/// Where an expected flow comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowSource {
    /// A scheduled payment (`/v1/scheduled-payments`).
    Scheduled,
    /// A recurring payment found in the expenses (`/v1/insights/recurring`).
    Recurring,
}

/// Money expected to leave (negative) or reach (positive) a wallet on a day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub wallet_id: Uuid,
    pub on: Date,
    pub amount: i64,
    pub source: FlowSource,
    /// What it is, for people: the merchant, or the scheduled payment's description.
    pub label: String,
}

/// One wallet's forecast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletForecast {
    pub start: Start,
    /// The expected balance at the end of each day, from today.
    pub days: Vec<(Date, i64)>,
    /// The lowest of them, and its day.
    pub lowest: (Date, i64),
    /// The first day expected to end below zero.
    pub below_zero_on: Option<Date>,
    /// The flows expected in the period, in date order.
    pub flows: Vec<Flow>,
}

/// Each wallet's balance for `days` days from `today` (today included).
pub fn project(today: Date, days: u32, starts: &[Start], flows: &[Flow]) -> Vec<WalletForecast> {
    let days = days.clamp(1, HORIZON_DAYS_MAX);
    let last = today + time::Duration::days(i64::from(days) - 1);
    starts
        .iter()
        .map(|start| {
            let mut mine: Vec<Flow> = flows
                .iter()
                .filter(|flow| flow.wallet_id == start.wallet_id && flow.on >= today && flow.on <= last)
                .cloned()
                .collect();
            mine.sort_by(|a, b| (a.on, &a.label).cmp(&(b.on, &b.label)));
            let mut balance = start.balance;
            let mut series = Vec::with_capacity(days as usize);
            for offset in 0..i64::from(days) {
                let on = today + time::Duration::days(offset);
                if offset > 0 {
                    balance = balance.saturating_add(start.daily_income);
                }
                balance = mine
                    .iter()
                    .filter(|flow| flow.on == on)
                    .fold(balance, |sum, flow| sum.saturating_add(flow.amount));
                series.push((on, balance));
            }
            let lowest =
                series.iter().copied().min_by_key(|(on, balance)| (*balance, *on)).expect("one day at least");
            let below_zero_on = series.iter().find(|(_, balance)| *balance < 0).map(|(on, _)| *on);
            WalletForecast { start: start.clone(), days: series, lowest, below_zero_on, flows: mine }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_and_income_add_up_day_by_day() {
        let today = Date::from_calendar_date(2026, time::Month::December, 3).unwrap();
        let wallet = Uuid::from_u128(1);
        let start = Start { wallet_id: wallet, currency: "USD".into(), balance: 10_000, daily_income: 100 };
        let day = |n| today + time::Duration::days(n);
        let flow = |n, amount| Flow {
            wallet_id: wallet,
            on: day(n),
            amount,
            source: FlowSource::Recurring,
            label: "x".into(),
        };
        let other = Flow { wallet_id: Uuid::from_u128(2), ..flow(1, -1_000_000) };
        let forecast =
            &project(today, 5, &[start], &[flow(0, -500), flow(2, -12_000), flow(9, -1), other])[0];
        let balances: Vec<i64> = forecast.days.iter().map(|(_, balance)| *balance).collect();
        assert_eq!(balances, [9_500, 9_600, -2_300, -2_200, -2_100]);
        assert_eq!(forecast.lowest, (day(2), -2_300));
        assert_eq!(forecast.below_zero_on, Some(day(2)));
        assert_eq!(forecast.flows.len(), 2, "only this wallet's, within the period");
    }
}
