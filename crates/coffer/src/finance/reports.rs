//! Budgets and reports. Everything is per currency: amounts in different currencies are
//! never added together as they are. A customer who chose a home currency also gets each
//! report in it, with every other currency valued at the rate of its day (`home`), and
//! their budgets count spending in every currency, valued in the budget's. Income is what
//! falls in the `Income` category tree; spending is everything else. Months are calendar
//! months in UTC.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use store::{BudgetRow, CategoryRow, CategoryTotal};
use time::{Date, Month, OffsetDateTime, Time};
use utoipa::ToSchema;
use uuid::Uuid;

use super::home::{self, RateUsed, Unvalued, Valued};
use super::{Finance, FinanceError};
use crate::wallets::Currency;

/// The income tree's top-level category.
pub const INCOME: &str = "Income";
/// Budget warning threshold, in percent of the budget.
pub const WARNING_PERCENT: i64 = 80;

/// `[start, end)` of a calendar month, in nanoseconds since the epoch.
pub fn month_range(year: i32, month: u8) -> Option<(i64, i64)> {
    let month = Month::try_from(month).ok()?;
    let start = Date::from_calendar_date(year, month, 1).ok()?;
    let (next_year, next_month) =
        if month == Month::December { (year + 1, Month::January) } else { (year, month.next()) };
    let end = Date::from_calendar_date(next_year, next_month, 1).ok()?;
    let nanos =
        |date: Date| i64::try_from(date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp_nanos()).ok();
    Some((nanos(start)?, nanos(end)?))
}

/// The month before (year, month).
pub fn previous(year: i32, month: u8) -> (i32, u8) {
    if month == 1 { (year - 1, 12) } else { (year, month - 1) }
}

/// The (year, month) of `nanos`.
pub fn month_of(nanos: i64) -> (i32, u8) {
    let time =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    (time.year(), u8::from(time.month()))
}

/// The categories of `root` and its children.
pub fn tree(categories: &[CategoryRow], root: Uuid) -> Vec<Uuid> {
    categories.iter().filter(|c| c.id == root || c.parent_id == Some(root)).map(|c| c.id).collect()
}

/// The top-level category of `id`.
pub(crate) fn top(categories: &[CategoryRow], id: Uuid) -> Uuid {
    categories.iter().find(|c| c.id == id).and_then(|c| c.parent_id).unwrap_or(id)
}

pub(crate) fn income_ids(categories: &[CategoryRow]) -> Vec<Uuid> {
    categories
        .iter()
        .find(|c| c.name == INCOME && c.parent_id.is_none())
        .map(|income| tree(categories, income.id))
        .unwrap_or_default()
}

/// Where a budget stands in one month.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct BudgetStatus {
    pub year: i32,
    pub month: u8,
    /// This month's amount plus what rolled over from last month (minor units).
    pub available: i64,
    pub rolled_over: i64,
    pub spent: i64,
    /// May be negative: overspent.
    pub remaining: i64,
    /// Spending projected to the end of the month at the pace so far.
    pub forecast: i64,
    pub percent_used: i64,
    /// `ok`, `warning` (80 % or more) or `exceeded`.
    pub state: &'static str,
    /// With a home currency chosen, spending in other currencies counts, valued in the
    /// budget's at these rates (empty otherwise, or when there was none).
    pub rates: Vec<RateUsed>,
    /// Spending in other currencies no recorded rate could value (not counted).
    pub unvalued: Vec<Unvalued>,
}

pub(crate) fn state(spent: i64, available: i64) -> &'static str {
    if spent > available {
        "exceeded"
    } else if i128::from(spent) * 100 >= i128::from(available) * i128::from(WARNING_PERCENT) {
        "warning"
    } else {
        "ok"
    }
}

/// One currency's figures in a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Totals {
    pub currency: String,
    pub income: i64,
    pub spending: i64,
    /// income − spending.
    pub net: i64,
    pub count: i64,
}

/// A category's share of one currency's spending.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CategoryLine {
    pub category_id: Uuid,
    pub name: String,
    pub total: i64,
    pub count: i64,
    /// Percent of the currency's spending (income lines: of its income), rounded down.
    pub percent: i64,
}

/// A merchant's total.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MerchantLine {
    pub merchant: String,
    pub total: i64,
    pub count: i64,
}

/// One currency's monthly report.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MonthlyCurrency {
    #[serde(flatten)]
    pub totals: Totals,
    /// Spending by top-level category, largest first.
    pub by_category: Vec<CategoryLine>,
    /// The five largest merchants of the month's spending.
    pub top_merchants: Vec<MerchantLine>,
    pub previous_month: Totals,
    /// Spending change against the previous month in percent; null when it had none.
    pub spending_change_percent: Option<i64>,
}

/// A top-level category's spending this month against last month (minor units).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CategoryMove {
    pub category_id: Uuid,
    pub name: String,
    pub this_month: i64,
    pub last_month: i64,
    /// this_month − last_month.
    pub change: i64,
}

/// One currency's month against the month before.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CurrencySummary {
    pub currency: String,
    pub this_month: Totals,
    pub last_month: Totals,
    pub spending_change: i64,
    /// Null when last month had no spending.
    #[schema(required = true)]
    pub spending_change_percent: Option<i64>,
    pub income_change: i64,
    /// The three top-level categories whose spending moved most, by amount.
    pub moved_most: Vec<CategoryMove>,
}

/// A budget that is exceeded, at 80 % or more, or forecast past what it allows.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct BudgetAtRisk {
    pub budget_id: Uuid,
    pub category_id: Uuid,
    pub name: String,
    pub currency: String,
    pub status: BudgetStatus,
}

/// A month in a few figures.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MonthlySummary {
    pub year: i32,
    pub month: u8,
    pub currencies: Vec<CurrencySummary>,
    /// In the home currency, when the customer chose one.
    #[schema(required = true)]
    pub home: Option<HomeSummary>,
    pub budgets_at_risk: Vec<BudgetAtRisk>,
}

/// The month in the customer's home currency: every currency's spending and income
/// valued at the rate of its day.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct HomeMonthly {
    #[serde(flatten)]
    pub totals: Totals,
    /// Spending by top-level category, largest first.
    pub by_category: Vec<CategoryLine>,
    /// The five largest merchants of the month's spending, valued likewise.
    pub top_merchants: Vec<MerchantLine>,
    pub previous_month: Totals,
    /// Null when the previous month had no spending.
    #[schema(required = true)]
    pub spending_change_percent: Option<i64>,
    /// The rates used, for both months.
    pub rates: Vec<RateUsed>,
    /// What no recorded rate could value (left out of the figures), both months.
    pub unvalued: Vec<Unvalued>,
}

/// The monthly report.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MonthlyReport {
    pub year: i32,
    pub month: u8,
    pub currencies: Vec<MonthlyCurrency>,
    /// In the home currency, when the customer chose one (the `home_currency` preference).
    #[schema(required = true)]
    pub home: Option<HomeMonthly>,
}

/// The summary's figures in the home currency.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct HomeSummary {
    #[serde(flatten)]
    pub summary: CurrencySummary,
    /// The rates used, for both months.
    pub rates: Vec<RateUsed>,
    /// What no recorded rate could value (left out of the figures), both months.
    pub unvalued: Vec<Unvalued>,
}

/// A period's totals in the home currency.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct HomeTotals {
    #[serde(flatten)]
    pub totals: Totals,
    pub rates: Vec<RateUsed>,
    pub unvalued: Vec<Unvalued>,
}

/// Income, spending and counts per currency from grouped totals.
fn totals(rows: &[CategoryTotal], income: &[Uuid]) -> BTreeMap<String, Totals> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for row in rows {
        let entry = out
            .entry(row.currency.clone())
            .or_insert_with(|| Totals { currency: row.currency.clone(), ..Totals::default() });
        if income.contains(&row.category_id) {
            entry.income += row.total;
        } else {
            entry.spending += row.total;
        }
        entry.count += row.count;
    }
    for entry in out.values_mut() {
        entry.net = entry.income - entry.spending;
    }
    out
}

pub(crate) fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 { 0 } else { i64::try_from(i128::from(part) * 100 / i128::from(whole)).unwrap_or(0) }
}

/// Lines per category (rolled up to the top level when `roll_up`), largest first.
fn lines(
    rows: &[CategoryTotal],
    currency: &str,
    categories: &[CategoryRow],
    income: &[Uuid],
    roll_up: bool,
    whole: i64,
) -> Vec<CategoryLine> {
    let mut by: BTreeMap<Uuid, (i64, i64)> = BTreeMap::new();
    for row in rows.iter().filter(|row| row.currency == currency && !income.contains(&row.category_id)) {
        let key = if roll_up { top(categories, row.category_id) } else { row.category_id };
        let entry = by.entry(key).or_default();
        entry.0 += row.total;
        entry.1 += row.count;
    }
    let mut out: Vec<CategoryLine> = by
        .into_iter()
        .map(|(id, (total, count))| CategoryLine {
            category_id: id,
            name: categories.iter().find(|c| c.id == id).map_or_else(String::new, |c| c.name.clone()),
            total,
            count,
            percent: percent(total, whole),
        })
        .collect();
    out.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.name.cmp(&b.name)));
    out
}

/// One currency's month (`now`) against the month before (`then`): the change in spending
/// and income, and the three top-level categories whose spending moved most.
fn summary(
    now: Totals,
    then: Totals,
    rows: &[CategoryTotal],
    previous_rows: &[CategoryTotal],
    categories: &[CategoryRow],
    income: &[Uuid],
) -> CurrencySummary {
    let currency = &now.currency;
    let spent = |rows: &[CategoryTotal]| {
        let mut by: HashMap<Uuid, i64> = HashMap::new();
        for row in rows.iter().filter(|row| &row.currency == currency && !income.contains(&row.category_id)) {
            *by.entry(top(categories, row.category_id)).or_default() += row.total;
        }
        by
    };
    let (this_month, last_month) = (spent(rows), spent(previous_rows));
    let mut moved: Vec<CategoryMove> = this_month
        .keys()
        .chain(last_month.keys())
        .copied()
        .collect::<std::collections::BTreeSet<Uuid>>()
        .into_iter()
        .map(|id| {
            let (now, then) =
                (this_month.get(&id).copied().unwrap_or(0), last_month.get(&id).copied().unwrap_or(0));
            CategoryMove {
                category_id: id,
                name: categories.iter().find(|c| c.id == id).map_or_else(String::new, |c| c.name.clone()),
                this_month: now,
                last_month: then,
                change: now - then,
            }
        })
        .filter(|line| line.change != 0)
        .collect();
    moved.sort_by(|a, b| b.change.abs().cmp(&a.change.abs()).then(a.name.cmp(&b.name)));
    moved.truncate(3);
    CurrencySummary {
        currency: currency.clone(),
        spending_change: now.spending - then.spending,
        spending_change_percent: (then.spending > 0)
            .then(|| percent(now.spending - then.spending, then.spending)),
        income_change: now.income - then.income,
        this_month: now,
        last_month: then,
        moved_most: moved,
    }
}

/// One month of a trend.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendMonth {
    pub year: i32,
    pub month: u8,
    pub currencies: Vec<Totals>,
    /// The month in my home currency (when I chose one), each currency valued at the rate
    /// of its day.
    #[schema(required = true)]
    pub home: Option<HomeTotals>,
}

impl Finance {
    /// Where `budget` stands in (year, month). With a home currency chosen, spending in
    /// every currency counts, valued in the budget's at the rate of its day.
    pub async fn budget_status(
        &self,
        budget: &BudgetRow,
        year: i32,
        month: u8,
    ) -> Result<BudgetStatus, FinanceError> {
        let categories = self.categories(budget.customer_id).await?;
        let home = self.home_currency(budget.customer_id).await?;
        self.budget_status_with(budget, year, month, &categories, home).await
    }

    /// [`Finance::budget_status`] with the customer's categories and home currency read
    /// already (read once for all of a customer's budgets).
    pub(crate) async fn budget_status_with(
        &self,
        budget: &BudgetRow,
        year: i32,
        month: u8,
        categories: &[CategoryRow],
        home: Option<Currency>,
    ) -> Result<BudgetStatus, FinanceError> {
        let ids = tree(categories, budget.category_id);
        let currency = Currency::parse(&budget.currency).ok_or(FinanceError::Invalid("budget currency"))?;
        let spent_in = |year: i32, month: u8| {
            let ids = &ids;
            async move {
                let (from, to) = month_range(year, month).ok_or(FinanceError::Invalid("no such month"))?;
                let valued = match home {
                    Some(_) => self.valued_in(budget.customer_id, currency, from, to).await?,
                    None => Valued {
                        rows: self.store().category_totals(budget.customer_id, from, to).await?,
                        ..Valued::default()
                    },
                };
                let spent = valued
                    .rows
                    .iter()
                    .filter(|row| row.currency == budget.currency && ids.contains(&row.category_id))
                    .map(|row| row.total)
                    .sum();
                Ok::<(i64, Valued), FinanceError>((spent, valued))
            }
        };
        let (spent, this_month) = spent_in(year, month).await?;
        let (rolled_over, last_month) = if budget.rollover {
            let (py, pm) = previous(year, month);
            let (spent_before, last_month) = spent_in(py, pm).await?;
            ((budget.amount - spent_before).max(0), Some(last_month))
        } else {
            (0, None)
        };
        let (rates, unvalued) =
            home::notes(std::iter::once(&this_month).chain(&last_month), |id| ids.contains(&id));
        let available = budget.amount + rolled_over;
        let (from, to) = month_range(year, month).ok_or(FinanceError::Invalid("no such month"))?;
        let now = store::now_ns() as i64;
        let forecast = if now >= to {
            spent
        } else if now <= from {
            0
        } else {
            i64::try_from(i128::from(spent) * i128::from(to - from) / i128::from(now - from))
                .unwrap_or(i64::MAX)
        };
        Ok(BudgetStatus {
            year,
            month,
            available,
            rolled_over,
            spent,
            remaining: available - spent,
            forecast,
            percent_used: percent(spent, available),
            state: state(spent, available),
            rates,
            unvalued,
        })
    }

    /// Income and spending per month for the `months` months ending with `last` (year,
    /// month), oldest first; the caller bounds `months`.
    pub async fn trends(
        &self,
        customer_id: Uuid,
        last: (i32, u8),
        months: u32,
    ) -> Result<Vec<TrendMonth>, FinanceError> {
        let (mut year, mut month) = last;
        let home = self.home_currency(customer_id).await?;
        let mut out = Vec::new();
        for _ in 0..months {
            let (from, to) = month_range(year, month).ok_or(FinanceError::Invalid("too far back"))?;
            let home = match home {
                Some(home) => Some(self.home_totals(customer_id, home, from, to).await?),
                None => None,
            };
            out.push(TrendMonth { year, month, currencies: self.totals(customer_id, from, to).await?, home });
            (year, month) = previous(year, month);
        }
        out.reverse();
        Ok(out)
    }

    /// The monthly report of (year, month).
    pub async fn monthly_report(
        &self,
        customer_id: Uuid,
        year: i32,
        month: u8,
    ) -> Result<MonthlyReport, FinanceError> {
        let categories = self.categories(customer_id).await?;
        let income = income_ids(&categories);
        let (from, to) = month_range(year, month).ok_or(FinanceError::Invalid("no such month"))?;
        let (py, pm) = previous(year, month);
        let (pfrom, pto) = month_range(py, pm).ok_or(FinanceError::Invalid("no such month"))?;
        let rows = self.store().category_totals(customer_id, from, to).await?;
        let previous_rows = self.store().category_totals(customer_id, pfrom, pto).await?;
        let merchants = self.store().merchant_totals(customer_id, from, to, &income, 200).await?;
        let current = totals(&rows, &income);
        let before = totals(&previous_rows, &income);
        let mut currencies = Vec::new();
        for (currency, totals) in current {
            let previous_month = before
                .get(&currency)
                .cloned()
                .unwrap_or(Totals { currency: currency.clone(), ..Totals::default() });
            let spending_change_percent = (previous_month.spending > 0)
                .then(|| percent(totals.spending - previous_month.spending, previous_month.spending));
            currencies.push(MonthlyCurrency {
                by_category: lines(&rows, &currency, &categories, &income, true, totals.spending),
                top_merchants: merchants
                    .iter()
                    .filter(|m| m.currency == currency)
                    .take(5)
                    .map(|m| MerchantLine { merchant: m.merchant.clone(), total: m.total, count: m.count })
                    .collect(),
                previous_month,
                spending_change_percent,
                totals,
            });
        }
        let home = match self.home_currency(customer_id).await? {
            None => None,
            Some(home) => {
                let code = home.code();
                let now = self.valued_in(customer_id, home, from, to).await?;
                let then = self.valued_in(customer_id, home, pfrom, pto).await?;
                let empty = || Totals { currency: code.to_owned(), ..Totals::default() };
                let this_month = totals(&now.rows, &income).remove(code).unwrap_or_else(empty);
                let previous_month = totals(&then.rows, &income).remove(code).unwrap_or_else(empty);
                let (mut rates, unvalued) = home::notes([&now, &then], |_| true);
                let (merchants, merchant_rates) =
                    self.valued_merchants(customer_id, home, (from, to), &income, 5).await?;
                rates.extend(merchant_rates);
                rates.sort();
                rates.dedup();
                Some(HomeMonthly {
                    by_category: lines(&now.rows, code, &categories, &income, true, this_month.spending),
                    top_merchants: merchants
                        .into_iter()
                        .map(|(merchant, total, count)| MerchantLine { merchant, total, count })
                        .collect(),
                    spending_change_percent: (previous_month.spending > 0).then(|| {
                        percent(this_month.spending - previous_month.spending, previous_month.spending)
                    }),
                    totals: this_month,
                    previous_month,
                    rates,
                    unvalued,
                })
            }
        };
        Ok(MonthlyReport { year, month, currencies, home })
    }

    /// What changed in (year, month) against the month before, per currency — spending and
    /// income, the three top-level categories whose spending moved most (by amount, up or
    /// down) — and the budgets at risk: exceeded, at 80 % or more, or forecast past what
    /// they allow at the month's pace.
    pub async fn monthly_summary(
        &self,
        customer_id: Uuid,
        year: i32,
        month: u8,
    ) -> Result<MonthlySummary, FinanceError> {
        let categories = self.categories(customer_id).await?;
        let income = income_ids(&categories);
        let (py, pm) = previous(year, month);
        let range = |year, month| month_range(year, month).ok_or(FinanceError::Invalid("no such month"));
        let ((from, to), (pfrom, pto)) = (range(year, month)?, range(py, pm)?);
        let rows = self.store().category_totals(customer_id, from, to).await?;
        let previous_rows = self.store().category_totals(customer_id, pfrom, pto).await?;
        let (current, before) = (totals(&rows, &income), totals(&previous_rows, &income));
        let mut names: Vec<&String> = current.keys().chain(before.keys()).collect();
        names.sort();
        names.dedup();
        let mut currencies = Vec::new();
        for currency in names {
            let empty = || Totals { currency: currency.clone(), ..Totals::default() };
            let (now, then) = (
                current.get(currency).cloned().unwrap_or_else(empty),
                before.get(currency).cloned().unwrap_or_else(empty),
            );
            currencies.push(summary(now, then, &rows, &previous_rows, &categories, &income));
        }
        let home_currency = self.home_currency(customer_id).await?;
        let home = match home_currency {
            None => None,
            Some(home) => {
                let code = home.code();
                let (now, then) = (
                    self.valued_in(customer_id, home, from, to).await?,
                    self.valued_in(customer_id, home, pfrom, pto).await?,
                );
                let empty = || Totals { currency: code.to_owned(), ..Totals::default() };
                let this_month = totals(&now.rows, &income).remove(code).unwrap_or_else(empty);
                let last_month = totals(&then.rows, &income).remove(code).unwrap_or_else(empty);
                let (rates, unvalued) = home::notes([&now, &then], |_| true);
                Some(HomeSummary {
                    summary: summary(this_month, last_month, &now.rows, &then.rows, &categories, &income),
                    rates,
                    unvalued,
                })
            }
        };
        let mut budgets_at_risk = Vec::new();
        for budget in self.budgets(customer_id).await? {
            let status = self.budget_status_with(&budget, year, month, &categories, home_currency).await?;
            if status.state != "ok" || status.forecast > status.available {
                budgets_at_risk.push(BudgetAtRisk {
                    budget_id: budget.id,
                    category_id: budget.category_id,
                    name: categories
                        .iter()
                        .find(|c| c.id == budget.category_id)
                        .map_or_else(String::new, |c| c.name.clone()),
                    currency: budget.currency.clone(),
                    status,
                });
            }
        }
        Ok(MonthlySummary { year, month, currencies, home, budgets_at_risk })
    }

    /// Spending per category (children as they are) in (year, month), per currency.
    pub async fn category_report(
        &self,
        customer_id: Uuid,
        year: i32,
        month: u8,
    ) -> Result<Vec<(String, Vec<CategoryLine>)>, FinanceError> {
        let categories = self.categories(customer_id).await?;
        let income = income_ids(&categories);
        let (from, to) = month_range(year, month).ok_or(FinanceError::Invalid("no such month"))?;
        let rows = self.store().category_totals(customer_id, from, to).await?;
        Ok(totals(&rows, &income)
            .into_iter()
            .map(|(currency, totals)| {
                let lines = lines(&rows, &currency, &categories, &income, false, totals.spending);
                (currency, lines)
            })
            .collect())
    }

    /// Totals over `[from, to)` in `home`, every currency valued at the rate of its day.
    pub async fn home_totals(
        &self,
        customer_id: Uuid,
        home: Currency,
        from: i64,
        to: i64,
    ) -> Result<HomeTotals, FinanceError> {
        let income = income_ids(&self.categories(customer_id).await?);
        let valued = self.valued_in(customer_id, home, from, to).await?;
        let totals = totals(&valued.rows, &income)
            .remove(home.code())
            .unwrap_or_else(|| Totals { currency: home.code().to_owned(), ..Totals::default() });
        let (rates, unvalued) = home::notes([&valued], |_| true);
        Ok(HomeTotals { totals, rates, unvalued })
    }

    /// Totals per currency over `[from, to)`.
    pub async fn totals(&self, customer_id: Uuid, from: i64, to: i64) -> Result<Vec<Totals>, FinanceError> {
        let categories = self.categories(customer_id).await?;
        let income = income_ids(&categories);
        let rows = self.store().category_totals(customer_id, from, to).await?;
        Ok(totals(&rows, &income).into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months_in_utc() {
        let (from, to) = month_range(2026, 2).unwrap();
        assert_eq!(to - from, 28 * 24 * 3600 * 1_000_000_000);
        assert_eq!(month_range(2026, 12).unwrap().1, month_range(2027, 1).unwrap().0);
        assert_eq!(month_of(from), (2026, 2));
        assert_eq!(month_of(to - 1), (2026, 2));
        assert_eq!(previous(2026, 1), (2025, 12));
        assert!(month_range(2026, 13).is_none());
    }

    #[test]
    fn budget_states() {
        assert_eq!(state(79, 100), "ok");
        assert_eq!(state(80, 100), "warning");
        assert_eq!(state(100, 100), "warning");
        assert_eq!(state(101, 100), "exceeded");
    }
}
