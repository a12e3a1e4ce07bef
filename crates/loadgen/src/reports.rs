//! The `reports` scenario: does `GET /v1/reports/monthly/{year}/{month}` stay fast on a
//! realistic history? It loads one — by default 1,000,000 expenses across 10,000
//! customers over 24 months — straight into the server's database, then asks for the
//! monthly report of a few real customers over HTTP, one request at a time, and checks
//! every answer against totals computed here from the rows it generated (so the report
//! cannot be fast by being wrong).
//!
//! - **The history** is generated deterministically from a fixed seed, so every run loads
//!   the same rows: per customer a monthly salary and a few refunds (the `Income` tree),
//!   and spending at well-known merchants with their MCCs, categorised by Coffer's own
//!   categoriser (`coffer::finance::categorize`) into the customer's default tree. Most
//!   customers use one currency; every 25th also spends in a second. Rows are loaded in
//!   time order, as they would have arrived, so that one customer's rows are spread over
//!   the table as in production rather than packed on a few pages.
//! - **The measured customers are real**: registered and logged in over the API, their
//!   default categories created by the server (`GET /v1/categories`), and their rows part
//!   of the history. The other customers need no customer row (expenses do not refer to
//!   one) but get their default categories (expenses do refer to those).
//! - **Loading goes around HTTP**: on SQLite through the store's own `create_categories`
//!   and `insert_expenses` (a transaction per chunk, no events); on PostgreSQL as one
//!   multi-row `INSERT … SELECT FROM UNNEST(…)` per chunk, because a round trip per row
//!   would turn a minute of loading into many. Afterwards the rows are counted, and
//!   PostgreSQL gets the `VACUUM (ANALYZE)` its autovacuum would give a table after a
//!   bulk load (SQLite gets nothing: Coffer never runs `ANALYZE` on it).
//! - **Measured**: the first request after the load; then sequential requests after a
//!   warm-up, round-robin over the measured customers; the same calls in process
//!   (`Finance::monthly_report`) to separate HTTP from the database; and the query plans
//!   of the report's three queries (`EXPLAIN QUERY PLAN` / `EXPLAIN (ANALYZE, BUFFERS)`).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use coffer::finance::{
    Finance,
    categories::{UNCATEGORISED, default_names},
    categorize::{Facts, Target, categorize},
    reports::{INCOME, month_range, previous},
};
use coffer::progress::Meter;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection, Row as _, SqliteConnection};
use store::{CategoryRow, ExpenseRow, NewEvent, Store, StoreOptions};
use uuid::Uuid;

use crate::{latency::Latencies, workload::Random};

/// Months of history per customer.
pub const MONTHS: usize = 24;
/// The first month of the history. Fixed, not "two years before today", so that every
/// run loads the same rows and one run's figures compare with another's.
const FIRST_MONTH: (i32, u8) = (2024, 1);
/// Customers registered through the API whose reports are measured: enough that the
/// requests do not all read the same few pages, few enough that registering them (an
/// Argon2 hash each) takes no time.
pub const MEASURED_CUSTOMERS: usize = 8;
/// Every this many customers also spends in a second currency (a quarter of their
/// spending)...
const SECOND_CURRENCY_EVERY: usize = 25;
/// ...starting with this one, so that one of the measured customers (the first
/// [`MEASURED_CUSTOMERS`]) is such a customer and the check covers two currencies.
const SECOND_CURRENCY_OFFSET: usize = 3;
/// Requests sent before the measured ones (connections opened, statements prepared,
/// pages cached); their answers are checked too.
pub const WARMUP_REQUESTS: usize = 50;
/// Rows per load transaction (SQLite) or statement (PostgreSQL): large enough that
/// commits and round trips do not dominate, small enough that a chunk's arrays stay at a
/// few megabytes.
const LOAD_ROWS_PER_CHUNK: usize = 10_000;
/// The requirement: a monthly report in under 50 ms.
pub const REPORT_TARGET_MS: u64 = 50;
/// Fewest expenses for which a report query that does not use its index is a failure:
/// on a small table PostgreSQL rightly prefers a sequential scan, so a smoke run's plans
/// are printed but not judged.
const PLAN_CHECK_EXPENSES_MIN: u64 = 100_000;
/// Customers the scenario may load at most.
pub const CUSTOMERS_MAX: usize = 1_000_000;
/// Expenses per customer at most.
pub const EXPENSES_PER_CUSTOMER_MAX: usize = 10_000;
/// Expenses in a history at most: the plan of every row is held in memory (32 bytes
/// each) while loading.
pub const EXPENSES_MAX: usize = 20_000_000;
/// The rows a monthly report asks `merchant_totals` for (as `Finance::monthly_report` does).
const MERCHANT_ROWS: i64 = 200;
/// The seed of the history.
const SEED: u64 = 0x636f_6666_6572_2024;
/// Nanoseconds per second.
const SECOND_NS: i64 = 1_000_000_000;
/// Payday: the 25th of the month at 09:00 UTC, as an offset from the month's start.
const PAYDAY_NS: i64 = (24 * 86_400 + 9 * 3_600) * SECOND_NS;
/// How long after a purchase its row is recorded (a statement import an hour later).
const RECORDED_AFTER_NS: i64 = 3_600 * SECOND_NS;

/// The currencies and their amount scale against US cents (a KES amount is ~130 times
/// the USD one).
const CURRENCIES: [(&str, i64); 4] = [("USD", 1), ("EUR", 1), ("GBP", 1), ("KES", 130)];

/// Where customers spend: merchant, MCC, smallest and largest amount (in US cents), and
/// how often relative to the others. Mostly names the categoriser's dictionary knows,
/// some that only their MCC places, and one it cannot place (it lands in
/// `Uncategorised`), as on a real statement.
const SPENDING: &[(&str, Option<&str>, i64, i64, u64)] = &[
    ("STARBUCKS", Some("5814"), 350, 900, 12),
    ("WHOLE FOODS", Some("5411"), 2_500, 18_000, 10),
    ("KROGER", Some("5411"), 1_500, 15_000, 10),
    ("TESCO", Some("5411"), 1_000, 9_000, 6),
    ("LIDL", Some("5411"), 800, 7_000, 6),
    ("MCDONALDS", Some("5814"), 500, 1_800, 8),
    ("CHIPOTLE", Some("5814"), 900, 2_200, 5),
    ("OLIVE GARDEN", Some("5812"), 2_500, 9_000, 3),
    ("UBER EATS", Some("5814"), 1_500, 4_500, 5),
    ("UBER", Some("4121"), 800, 4_500, 7),
    ("LYFT", Some("4121"), 800, 4_000, 3),
    ("SHELL", Some("5541"), 3_000, 9_000, 6),
    ("CHEVRON", Some("5541"), 3_000, 9_000, 4),
    ("TFL", Some("4111"), 250, 1_200, 4),
    ("AMAZON", Some("5999"), 1_000, 25_000, 8),
    ("TARGET", Some("5310"), 1_500, 12_000, 4),
    ("ZARA", Some("5651"), 2_000, 15_000, 2),
    ("IKEA", Some("5712"), 3_000, 40_000, 1),
    ("APPLE STORE", Some("5732"), 2_000, 150_000, 1),
    ("NETFLIX", Some("4899"), 1_549, 1_549, 3),
    ("SPOTIFY", Some("4899"), 1_099, 1_099, 3),
    ("VERIZON", Some("4814"), 5_000, 9_000, 2),
    ("COMCAST", Some("4816"), 6_000, 9_000, 2),
    ("CVS", Some("5912"), 500, 6_000, 3),
    ("PLANET FITNESS", Some("7997"), 2_500, 2_500, 2),
    ("AMC THEATRES", Some("7832"), 1_200, 4_000, 2),
    ("STEAM", Some("5816"), 500, 6_000, 2),
    ("AIRBNB", Some("7011"), 8_000, 60_000, 1),
    ("DELTA AIR", Some("3058"), 15_000, 90_000, 1),
    ("CORNER DELI", Some("5499"), 400, 2_500, 4),
    ("CITY PARKING", Some("7523"), 300, 2_500, 3),
    ("SQ JOES", None, 1_000, 20_000, 2),
];
/// The employer whose monthly salary customers receive (the dictionary files it under
/// `Salary`).
const PAYROLL: &str = "ACME CORP PAYROLL";
/// The merchant refunds come from, filed by hand under `Refunds` (in the `Income` tree):
/// the same merchant as some spending, so the check sees income kept out of the
/// merchant totals.
const REFUNDS_FROM: &str = "AMAZON";
/// The category refunds are filed under.
const REFUNDS: &str = "Refunds";

/// The default category tree in the order `Finance::categories` creates it:
/// `Uncategorised`, then each parent followed by its children.
#[derive(Clone, Debug)]
struct Tree {
    names: Vec<&'static str>,
    parents: Vec<Option<usize>>,
}

impl Tree {
    fn new() -> Self {
        let (mut names, mut parents) = (vec![UNCATEGORISED], vec![None]);
        for (name, parent) in default_names() {
            parents.push(parent.map(|parent| {
                names.iter().position(|known| *known == parent).expect("parents come before children")
            }));
            names.push(name);
        }
        Self { names, parents }
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|known| *known == name)
    }

    /// The top-level category of `index` (itself at the top).
    fn top(&self, index: usize) -> usize {
        self.parents[index].unwrap_or(index)
    }
}

/// One place expenses come from: a merchant, and how the categoriser filed it.
#[derive(Clone, Debug)]
struct Source {
    merchant: &'static str,
    mcc: Option<&'static str>,
    /// The category's index in the [`Tree`].
    category: usize,
    categorized_by: String,
    confidence: f64,
}

/// One expense of the history, compactly (the load turns it into an [`ExpenseRow`]).
#[derive(Clone, Copy, Debug)]
struct Planned {
    occurred_at: i64,
    /// Minor units of `currency`.
    amount: i64,
    customer: u32,
    /// Index into [`History::sources`].
    source: u16,
    /// Index into [`CURRENCIES`].
    currency: u8,
    /// The store number in the description; also picks how the row was recorded.
    store: u16,
}

/// A generated history: what to load, and the answers to expect.
#[derive(Debug)]
pub struct History {
    pub customers: usize,
    pub expenses_per_customer: usize,
    tree: Tree,
    sources: Vec<Source>,
    /// Every expense, in time order (as they would have arrived).
    planned: Vec<Planned>,
}

/// A measured customer: registered over the API, with a fresh access token.
#[derive(Clone, Debug)]
pub struct MeasuredCustomer {
    pub id: Uuid,
    email: String,
    password: String,
    pub token: String,
    /// The customer's categories as the server created them, in [`Tree`] order.
    categories: Vec<Uuid>,
}

/// The ids of one load: every customer's (the measured ones first, from the server) and
/// their categories, [`Tree::len`] per customer in tree order.
#[derive(Debug)]
pub struct Ids {
    customers: Vec<Uuid>,
    categories: Vec<Uuid>,
    tree_len: usize,
}

impl Ids {
    fn category(&self, customer: usize, index: usize) -> Uuid {
        self.categories[customer * self.tree_len + index]
    }
}

/// What the load did.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// Rows in `expenses` afterwards, counted.
    pub expenses: u64,
    /// Rows in `categories` afterwards, counted.
    pub categories: u64,
    /// From the first insert to the last commit (counting and `VACUUM` not included).
    pub took: Duration,
    /// The `VACUUM (ANALYZE)` on PostgreSQL.
    pub vacuum: Option<Duration>,
}

/// What a series of timed reports saw.
#[derive(Debug, Default)]
pub struct Timed {
    /// The first call (the first after the load).
    pub first: Duration,
    /// The measured calls (after the first and the warm-up).
    pub latencies: Latencies,
    /// Wall time of the measured calls, one after the other.
    pub elapsed: Duration,
    /// Calls (any, warm-up included) whose answer was not the expected report.
    pub wrong: u64,
    /// Calls that failed.
    pub errors: u64,
    /// The first wrong answer or error, for the report.
    pub first_problem: Option<String>,
}

/// A query's plan as the database explains it.
#[derive(Clone, Debug)]
pub struct Plan {
    pub query: &'static str,
    pub lines: Vec<String>,
    /// The index this query must use.
    pub index: &'static str,
}

impl Plan {
    /// Whether the plan names the index it must use.
    pub fn uses_index(&self) -> bool {
        self.lines.iter().any(|line| line.contains(self.index))
    }

    /// Whether an unused index counts as a failure with this many expenses loaded.
    pub fn judged(expenses: u64) -> bool {
        expenses >= PLAN_CHECK_EXPENSES_MIN
    }
}

/// `months` calendar months from `first`, with their `[start, end)` in nanoseconds.
fn months_from(first: (i32, u8), months: usize) -> Vec<(i32, u8, i64, i64)> {
    let (mut year, mut month) = first;
    let mut out = Vec::with_capacity(months);
    for _ in 0..months {
        let (from, to) = month_range(year, month).expect("the history's months are valid");
        out.push((year, month, from, to));
        (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    }
    out
}

/// The month the reports are asked for: the last of the history (its previous month has
/// data too).
pub fn report_month() -> (i32, u8) {
    let (year, month, _, _) = months_from(FIRST_MONTH, MONTHS)[MONTHS - 1];
    (year, month)
}

/// The base currency of a customer (an index into [`CURRENCIES`]): most in USD, some in
/// EUR, GBP and KES.
fn base_currency(customer: usize) -> u8 {
    match customer % 10 {
        0..=5 => 0,
        6 | 7 => 1,
        8 => 2,
        _ => 3,
    }
}

/// splitmix64's finaliser: a well-mixed 64-bit value from a counter.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// Percent, rounded toward zero (as the reports compute it).
fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 { 0 } else { i64::try_from(i128::from(part) * 100 / i128::from(whole)).unwrap_or(0) }
}

/// Income, spending and the number of rows of one currency in one month.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    income: i64,
    spending: i64,
    count: i64,
}

impl History {
    /// Generates `expenses_per_customer` expenses (income included) for each of
    /// `customers` customers over [`MONTHS`] months.
    pub fn generate(customers: usize, expenses_per_customer: usize) -> anyhow::Result<Self> {
        ensure!(
            (MEASURED_CUSTOMERS..=CUSTOMERS_MAX).contains(&customers),
            "customers must be {MEASURED_CUSTOMERS} to {CUSTOMERS_MAX}"
        );
        ensure!(
            (1..=EXPENSES_PER_CUSTOMER_MAX).contains(&expenses_per_customer),
            "expenses per customer must be 1 to {EXPENSES_PER_CUSTOMER_MAX}"
        );
        ensure!(customers * expenses_per_customer <= EXPENSES_MAX, "at most {EXPENSES_MAX} expenses");
        let tree = Tree::new();
        let categorised = |merchant: &'static str, mcc: Option<&'static str>| -> anyhow::Result<Source> {
            let facts = Facts { description: Some(merchant), merchant: Some(merchant), mcc, amount: 1_000 };
            let decision = categorize(&facts, &[]);
            let Target::Name(name) = decision.target else { bail!("no rules, so no category by id") };
            let category = tree.index(name).with_context(|| format!("{name} is not in the default tree"))?;
            Ok(Source {
                merchant,
                mcc,
                category,
                categorized_by: decision.by,
                confidence: decision.confidence,
            })
        };
        let mut sources = SPENDING
            .iter()
            .map(|(merchant, mcc, _, _, _)| categorised(merchant, *mcc))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let payroll = sources.len();
        sources.push(categorised(PAYROLL, None)?);
        let income_root = tree.index(INCOME).context("the default tree has Income")?;
        ensure!(tree.top(sources[payroll].category) == income_root, "the payroll is filed as income");
        let refund = sources.len();
        sources.push(Source {
            merchant: REFUNDS_FROM,
            mcc: Some("5999"),
            category: tree.index(REFUNDS).context("the default tree has Refunds")?,
            categorized_by: "manual".into(),
            confidence: 1.0,
        });
        let weights: u64 = SPENDING.iter().map(|(_, _, _, _, weight)| weight).sum();
        let months = months_from(FIRST_MONTH, MONTHS);
        let scale = |currency: u8| CURRENCIES[usize::from(currency)].1;
        let at_random_time = |random: &mut Random| {
            let (_, _, from, to) = months[random.below(MONTHS as u64) as usize];
            from + random.below((to - from) as u64) as i64
        };
        let mut planned = Vec::with_capacity(customers * expenses_per_customer);
        for customer in 0..customers {
            let mut random = Random::new(mix(SEED ^ customer as u64));
            let currency = base_currency(customer);
            let second = (customer % SECOND_CURRENCY_EVERY == SECOND_CURRENCY_OFFSET)
                .then_some(if currency == 0 { 1 } else { 0 });
            // A quarter of the rows are salaries (one a month, the latest months first),
            // one in fifty refunds, the rest spending.
            let salaries = (expenses_per_customer / 4).min(MONTHS);
            let refunds = expenses_per_customer / 50;
            let salary = 250_000 + random.below(350_000) as i64;
            let customer_index = u32::try_from(customer).expect("customers fit in u32");
            for month in 0..salaries {
                let (_, _, from, _) = months[MONTHS - 1 - month];
                planned.push(Planned {
                    occurred_at: from + PAYDAY_NS,
                    amount: salary * scale(currency),
                    customer: customer_index,
                    source: payroll as u16,
                    currency,
                    store: 0,
                });
            }
            for _ in 0..refunds {
                planned.push(Planned {
                    occurred_at: at_random_time(&mut random),
                    amount: (500 + random.below(4_501) as i64) * scale(currency),
                    customer: customer_index,
                    source: refund as u16,
                    currency,
                    store: random.below(10_000) as u16,
                });
            }
            for _ in salaries + refunds..expenses_per_customer {
                let mut pick = random.below(weights);
                let source = SPENDING
                    .iter()
                    .position(|(_, _, _, _, weight)| {
                        let here = pick < *weight;
                        pick = pick.saturating_sub(*weight);
                        here
                    })
                    .expect("the pick is below the total weight");
                let (_, _, low, high, _) = SPENDING[source];
                let currency = match second {
                    Some(second) if random.below(4) == 0 => second,
                    _ => currency,
                };
                planned.push(Planned {
                    occurred_at: at_random_time(&mut random),
                    amount: (low + random.below((high - low + 1) as u64) as i64) * scale(currency),
                    customer: customer_index,
                    source: source as u16,
                    currency,
                    store: random.below(10_000) as u16,
                });
            }
        }
        planned.sort_unstable_by_key(|row| (row.occurred_at, row.customer, row.store));
        assert_eq!(planned.len(), customers * expenses_per_customer);
        Ok(Self { customers, expenses_per_customer, tree, sources, planned })
    }

    /// Expenses in the history.
    pub fn expenses(&self) -> usize {
        self.planned.len()
    }

    /// Categories a load creates: every customer's default tree.
    pub fn categories(&self) -> usize {
        self.customers * self.tree.len()
    }

    /// Ids for one load: the measured customers' from the server, fresh ones for the others.
    pub fn ids(&self, measured: &[MeasuredCustomer]) -> Ids {
        let tree_len = self.tree.len();
        let mut customers = Vec::with_capacity(self.customers);
        let mut categories = Vec::with_capacity(self.customers * tree_len);
        for customer in measured {
            customers.push(customer.id);
            categories.extend_from_slice(&customer.categories);
        }
        for _ in measured.len()..self.customers {
            customers.push(Uuid::now_v7());
            categories.extend((0..tree_len).map(|_| Uuid::now_v7()));
        }
        Ids { customers, categories, tree_len }
    }

    /// The default trees of customers `first..last`, as `Finance::categories` would create them.
    fn category_rows(&self, ids: &Ids, customers: std::ops::Range<usize>, now: i64) -> Vec<CategoryRow> {
        let mut rows = Vec::with_capacity(customers.len() * self.tree.len());
        for customer in customers {
            for (index, name) in self.tree.names.iter().enumerate() {
                rows.push(CategoryRow {
                    id: ids.category(customer, index),
                    customer_id: ids.customers[customer],
                    parent_id: self.tree.parents[index].map(|parent| ids.category(customer, parent)),
                    name: (*name).to_owned(),
                    system: index == 0,
                    created_at: now + index as i64,
                });
            }
        }
        rows
    }

    fn expense_row(&self, row: &Planned, ids: &Ids) -> ExpenseRow {
        let source = &self.sources[usize::from(row.source)];
        let customer = row.customer as usize;
        let recorded_at = row.occurred_at + RECORDED_AFTER_NS;
        // Imported statement lines carry the hash that makes a re-import a duplicate.
        let (origin, import_hash) = match row.store % 3 {
            0 => {
                ("import", Some(format!("{:016x}", mix(row.occurred_at as u64 ^ ((customer as u64) << 40)))))
            }
            1 => ("bank_sync", None),
            _ => ("manual", None),
        };
        ExpenseRow {
            // Version 7: ids grow in the order rows are loaded, as they would have arrived.
            id: Uuid::now_v7(),
            customer_id: ids.customers[customer],
            amount: row.amount,
            currency: CURRENCIES[usize::from(row.currency)].0.to_owned(),
            description: Some(format!("{} #{:04}", source.merchant, row.store)),
            merchant: Some(source.merchant.to_owned()),
            mcc: source.mcc.map(str::to_owned),
            occurred_at: row.occurred_at,
            category_id: ids.category(customer, source.category),
            categorized_by: source.categorized_by.clone(),
            confidence: source.confidence,
            tags: String::new(),
            notes: None,
            wallet_id: None,
            source: origin.to_owned(),
            import_hash,
            created_at: recorded_at,
            updated_at: recorded_at,
        }
    }

    /// The monthly report the server must answer for `measured`, the history's customer
    /// `customer`, computed from the generated rows, in the JSON shape of `MonthlyReport`.
    pub fn expected_report(
        &self,
        customer: usize,
        measured: &MeasuredCustomer,
        (year, month): (i32, u8),
    ) -> anyhow::Result<Value> {
        let categories = &measured.categories;
        ensure!(categories.len() == self.tree.len(), "one id per category");
        let (from, to) = month_range(year, month).context("no such month")?;
        let (previous_year, previous_month) = previous(year, month);
        let (previous_from, previous_to) =
            month_range(previous_year, previous_month).context("no such month")?;
        let income_root = self.tree.index(INCOME).context("the default tree has Income")?;
        let mut current: BTreeMap<&str, Sums> = BTreeMap::new();
        let mut before: BTreeMap<&str, Sums> = BTreeMap::new();
        let mut by_category: BTreeMap<(&str, usize), (i64, i64)> = BTreeMap::new();
        let mut by_merchant: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        for row in self.planned.iter().filter(|row| row.customer as usize == customer) {
            let source = &self.sources[usize::from(row.source)];
            let currency = CURRENCIES[usize::from(row.currency)].0;
            let income = self.tree.top(source.category) == income_root;
            let this_month = (from..to).contains(&row.occurred_at);
            let sums = if this_month {
                current.entry(currency).or_default()
            } else if (previous_from..previous_to).contains(&row.occurred_at) {
                before.entry(currency).or_default()
            } else {
                continue;
            };
            sums.count += 1;
            if income {
                sums.income += row.amount;
            } else {
                sums.spending += row.amount;
            }
            if this_month && !income {
                let line = by_category.entry((currency, self.tree.top(source.category))).or_default();
                line.0 += row.amount;
                line.1 += 1;
                let line = by_merchant.entry((currency, source.merchant)).or_default();
                line.0 += row.amount;
                line.1 += 1;
            }
        }
        let totals = |currency: &str, sums: Sums| {
            json!({
                "currency": currency,
                "income": sums.income,
                "spending": sums.spending,
                "net": sums.income - sums.spending,
                "count": sums.count,
            })
        };
        let mut currencies = Vec::new();
        for (currency, sums) in &current {
            let mut lines: Vec<(i64, i64, &str, Uuid)> = by_category
                .iter()
                .filter(|((of, _), _)| of == currency)
                .map(|((_, top), (total, count))| (*total, *count, self.tree.names[*top], categories[*top]))
                .collect();
            lines.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(b.2)));
            let mut merchants: Vec<(i64, i64, &str)> = by_merchant
                .iter()
                .filter(|((of, _), _)| of == currency)
                .map(|((_, merchant), (total, count))| (*total, *count, *merchant))
                .collect();
            merchants.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(b.2)));
            let previous_sums = before.get(currency).copied().unwrap_or_default();
            let change = (previous_sums.spending > 0)
                .then(|| percent(sums.spending - previous_sums.spending, previous_sums.spending));
            let mut line = totals(currency, *sums);
            line["by_category"] = lines
                .iter()
                .map(|(total, count, name, id)| {
                    json!({"category_id": id, "name": name, "total": total, "count": count,
                           "percent": percent(*total, sums.spending)})
                })
                .collect();
            line["top_merchants"] = merchants
                .iter()
                .take(5)
                .map(|(total, count, merchant)| json!({"merchant": merchant, "total": total, "count": count}))
                .collect();
            line["previous_month"] = totals(currency, previous_sums);
            line["spending_change_percent"] = json!(change);
            currencies.push(line);
        }
        // Its customers choose no home currency: no figures valued in one.
        Ok(json!({"year": year, "month": month, "currencies": currencies, "home": null}))
    }

    /// The income categories of a measured customer (what the report keeps out of the
    /// merchant totals), for the plans.
    pub fn income_ids(&self, customer: &MeasuredCustomer) -> Vec<Uuid> {
        let income_root = self.tree.index(INCOME).expect("the default tree has Income");
        (0..self.tree.len())
            .filter(|index| self.tree.top(*index) == income_root)
            .map(|index| customer.categories[index])
            .collect()
    }
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Registers the measured customers and has the server create their default categories
/// (`GET /v1/categories`); checks the server's tree is the one the history files rows in.
pub async fn register(
    client: &reqwest::Client,
    base_url: &str,
    history: &History,
) -> anyhow::Result<Vec<MeasuredCustomer>> {
    let run = Uuid::now_v7().simple().to_string();
    let mut customers = Vec::with_capacity(MEASURED_CUSTOMERS);
    for index in 0..MEASURED_CUSTOMERS {
        let email = format!("report{index}-{run}@loadgen.example");
        let password = format!("loadgen passphrase {run}");
        let register = json!({"email": email, "password": password, "name": format!("Report {index}")});
        let (status, body) =
            send(client.post(format!("{base_url}/v1/auth/register")).json(&register)).await?;
        ensure!(status == 201, "register: {status} {body}");
        let id: Uuid = body["id"].as_str().context("a customer id")?.parse()?;
        let mut customer =
            MeasuredCustomer { id, email, password, token: String::new(), categories: Vec::new() };
        login(client, base_url, &mut customer).await?;
        let (status, body) =
            send(client.get(format!("{base_url}/v1/categories")).bearer_auth(&customer.token)).await?;
        ensure!(status == 200, "categories: {status} {body}");
        let listed = body.as_array().context("a list of categories")?;
        ensure!(
            listed.len() == history.tree.len(),
            "{} default categories, expected {}",
            listed.len(),
            history.tree.len()
        );
        let id_of = |name: &str| -> anyhow::Result<Uuid> {
            let found = listed
                .iter()
                .find(|category| category["name"] == name)
                .with_context(|| format!("no category {name}"))?;
            Ok(found["id"].as_str().context("a category id")?.parse()?)
        };
        customer.categories =
            history.tree.names.iter().map(|name| id_of(name)).collect::<anyhow::Result<Vec<_>>>()?;
        for (index, parent) in history.tree.parents.iter().enumerate() {
            let found = listed
                .iter()
                .find(|category| category["name"] == history.tree.names[index])
                .expect("found above");
            let expected = parent.map(|parent| customer.categories[parent].to_string());
            ensure!(
                found["parent_id"].as_str().map(str::to_owned) == expected,
                "category {} has another parent on the server",
                history.tree.names[index]
            );
        }
        customers.push(customer);
    }
    Ok(customers)
}

/// Logs the customer in again: a fresh access token (they last 15 minutes, and a load
/// may take longer).
pub async fn login(
    client: &reqwest::Client,
    base_url: &str,
    customer: &mut MeasuredCustomer,
) -> anyhow::Result<()> {
    let login = json!({"email": customer.email, "password": customer.password});
    let (status, body) = send(client.post(format!("{base_url}/v1/auth/login")).json(&login)).await?;
    ensure!(status == 200, "login: {status} {body}");
    customer.token = body["access_token"].as_str().context("an access token")?.to_owned();
    Ok(())
}

/// Loads the history into the database at `url` (the server's), the measured customers'
/// categories excepted (the server made those), and counts what is there afterwards.
pub async fn load(history: &History, url: &str, ids: &Ids, measured: usize) -> anyhow::Result<Loaded> {
    let now = store::now_ns() as i64;
    let customers_per_chunk = (LOAD_ROWS_PER_CHUNK / history.tree.len()).max(1);
    let started = Instant::now();
    let mut vacuum = None;
    let mut customers_meter = Meter::new("categories", "customers");
    let mut expenses_meter = Meter::new("expenses", "rows");
    let mut loaded = 0;
    if url.starts_with("sqlite:") {
        let store = Store::open(url, StoreOptions::default()).await?;
        let mut first = measured;
        while first < history.customers {
            let last = (first + customers_per_chunk).min(history.customers);
            // Several customers' trees per transaction: `create_categories` inserts row by
            // row (ignoring rows that exist), and none of these customers has any yet.
            store.create_categories(&history.category_rows(ids, first..last, now)).await?;
            first = last;
            customers_meter.at(last as u64, history.customers as u64);
        }
        for chunk in history.planned.chunks(LOAD_ROWS_PER_CHUNK) {
            let rows: Vec<(ExpenseRow, Vec<NewEvent>)> =
                chunk.iter().map(|row| (history.expense_row(row, ids), Vec::new())).collect();
            let recorded = store.insert_expenses(&rows).await?;
            ensure!(
                recorded.iter().all(|recorded| *recorded),
                "an expense was not recorded (duplicate id or import hash)"
            );
            loaded += chunk.len() as u64;
            expenses_meter.at(loaded, history.planned.len() as u64);
        }
        store.close().await;
    } else {
        let mut connection = PgConnection::connect(url).await?;
        let mut first = measured;
        while first < history.customers {
            let last = (first + customers_per_chunk).min(history.customers);
            let rows = history.category_rows(ids, first..last, now);
            let inserted = sqlx::query(
                "INSERT INTO categories (id, customer_id, parent_id, name, system, created_at) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bool[], $6::int8[])",
            )
            .bind(rows.iter().map(|row| row.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.customer_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.parent_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.name.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.system).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.created_at).collect::<Vec<_>>())
            .execute(&mut connection)
            .await?
            .rows_affected();
            ensure!(inserted == rows.len() as u64, "{inserted} of {} categories inserted", rows.len());
            first = last;
            customers_meter.at(last as u64, history.customers as u64);
        }
        for chunk in history.planned.chunks(LOAD_ROWS_PER_CHUNK) {
            let rows: Vec<ExpenseRow> = chunk.iter().map(|row| history.expense_row(row, ids)).collect();
            let column = |get: fn(&ExpenseRow) -> Option<String>| rows.iter().map(get).collect::<Vec<_>>();
            let inserted = sqlx::query(
                "INSERT INTO expenses (id, customer_id, amount, currency, description, merchant, mcc, occurred_at, \
                 category_id, categorized_by, confidence, tags, notes, wallet_id, source, import_hash, created_at, \
                 updated_at) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::int8[], $9::uuid[], $10::text[], $11::float8[], $12::text[], $13::text[], \
                 $14::uuid[], $15::text[], $16::text[], $17::int8[], $18::int8[])",
            )
            .bind(rows.iter().map(|row| row.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.customer_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.amount).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.currency.clone()).collect::<Vec<_>>())
            .bind(column(|row| row.description.clone()))
            .bind(column(|row| row.merchant.clone()))
            .bind(column(|row| row.mcc.clone()))
            .bind(rows.iter().map(|row| row.occurred_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.category_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.categorized_by.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.confidence).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.tags.clone()).collect::<Vec<_>>())
            .bind(column(|row| row.notes.clone()))
            .bind(rows.iter().map(|row| row.wallet_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.source.clone()).collect::<Vec<_>>())
            .bind(column(|row| row.import_hash.clone()))
            .bind(rows.iter().map(|row| row.created_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|row| row.updated_at).collect::<Vec<_>>())
            .execute(&mut connection)
            .await?
            .rows_affected();
            ensure!(inserted == rows.len() as u64, "{inserted} of {} expenses inserted", rows.len());
            loaded += chunk.len() as u64;
            expenses_meter.at(loaded, history.planned.len() as u64);
        }
        let vacuumed = Instant::now();
        connection.execute("VACUUM (ANALYZE) expenses, categories").await?;
        vacuum = Some(vacuumed.elapsed());
        connection.close().await?;
    }
    let took = started.elapsed() - vacuum.unwrap_or_default();
    let (expenses, categories) = count(url).await?;
    Ok(Loaded { expenses, categories, took, vacuum })
}

/// Rows in `expenses` and in `categories`.
async fn count(url: &str) -> anyhow::Result<(u64, u64)> {
    let (expenses, categories): (i64, i64) = if url.starts_with("sqlite:") {
        let mut connection = SqliteConnection::connect(url).await?;
        let counts =
            sqlx::query_as("SELECT (SELECT COUNT(*) FROM expenses), (SELECT COUNT(*) FROM categories)")
                .fetch_one(&mut connection)
                .await?;
        connection.close().await?;
        counts
    } else {
        let mut connection = PgConnection::connect(url).await?;
        let counts =
            sqlx::query_as("SELECT (SELECT COUNT(*) FROM expenses), (SELECT COUNT(*) FROM categories)")
                .fetch_one(&mut connection)
                .await?;
        connection.close().await?;
        counts
    };
    Ok((u64::try_from(expenses)?, u64::try_from(categories)?))
}

/// Calls `report(i)` for the customer `i % expected.len()`, `1 + WARMUP_REQUESTS +
/// requests` times one after the other, and checks every answer against `expected`.
pub async fn time_reports(
    expected: &[Value],
    requests: usize,
    mut report: impl AsyncFnMut(usize) -> anyhow::Result<Value>,
) -> Timed {
    let mut timed = Timed::default();
    let mut measured_from = Instant::now();
    for index in 0..1 + WARMUP_REQUESTS + requests {
        let customer = index % expected.len();
        if index == 1 + WARMUP_REQUESTS {
            measured_from = Instant::now();
        }
        let sent = Instant::now();
        let answer = report(customer).await;
        let latency = sent.elapsed();
        if index == 0 {
            timed.first = latency;
        } else if index > WARMUP_REQUESTS {
            timed.latencies.record(latency);
        }
        match answer {
            Ok(value) if value == expected[customer] => {}
            Ok(value) => {
                timed.wrong += 1;
                timed.first_problem.get_or_insert_with(|| {
                    format!("customer {customer}: got {value}, expected {}", expected[customer])
                });
            }
            Err(error) => {
                timed.errors += 1;
                timed.first_problem.get_or_insert_with(|| format!("customer {customer}: {error:#}"));
            }
        }
    }
    timed.elapsed = measured_from.elapsed();
    timed
}

/// One monthly report over HTTP.
pub async fn http_report(
    client: &reqwest::Client,
    base_url: &str,
    customer: &MeasuredCustomer,
    (year, month): (i32, u8),
) -> anyhow::Result<Value> {
    let (status, body) = send(
        client.get(format!("{base_url}/v1/reports/monthly/{year}/{month}")).bearer_auth(&customer.token),
    )
    .await?;
    ensure!(status == 200, "HTTP {status}: {body}");
    Ok(body)
}

/// One monthly report in process, as the handler gets it, in its JSON shape.
pub async fn finance_report(
    finance: &Finance,
    customer: &MeasuredCustomer,
    (year, month): (i32, u8),
) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(finance.monthly_report(customer.id, year, month).await?)?)
}

/// A bound parameter of an explained query.
#[derive(Clone, Copy, Debug)]
enum Parameter {
    Id(Uuid),
    Integer(i64),
}

/// The plans of the report's queries for `customer` in `(year, month)`: `EXPLAIN QUERY
/// PLAN` on SQLite, `EXPLAIN (ANALYZE, BUFFERS)` on PostgreSQL (which runs the query).
pub async fn plans(
    url: &str,
    history: &History,
    customer: &MeasuredCustomer,
    (year, month): (i32, u8),
) -> anyhow::Result<Vec<Plan>> {
    let (from, to) = month_range(year, month).context("no such month")?;
    let income = history.income_ids(customer);
    let mut merchant_parameters = vec![
        Parameter::Id(customer.id),
        Parameter::Integer(from),
        Parameter::Integer(to),
        Parameter::Integer(MERCHANT_ROWS),
    ];
    merchant_parameters.extend(income.iter().map(|id| Parameter::Id(*id)));
    let sqlite = url.starts_with("sqlite:");
    let queries = [
        (
            "categories",
            store::CATEGORIES_SQL.to_owned(),
            vec![
                Parameter::Id(customer.id),
                Parameter::Integer(i64::from(store::CATEGORIES_PER_CUSTOMER_MAX)),
            ],
            // The index of UNIQUE (customer_id, name): its name is the backend's.
            if sqlite { "sqlite_autoindex_categories_2" } else { "categories_customer_id_name_key" },
        ),
        (
            "category_totals",
            store::CATEGORY_TOTALS_SQL.to_owned(),
            vec![Parameter::Id(customer.id), Parameter::Integer(from), Parameter::Integer(to)],
            "expenses_customer_time",
        ),
        (
            "merchant_totals",
            store::merchant_totals_sql(income.len()),
            merchant_parameters,
            "expenses_customer_time",
        ),
    ];
    let mut plans = Vec::with_capacity(queries.len());
    if sqlite {
        let mut connection = SqliteConnection::connect(url).await?;
        for (query, text, parameters, index) in queries {
            let mut explain =
                sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", sqlite_placeholders(&text))));
            for parameter in parameters {
                explain = match parameter {
                    Parameter::Id(id) => explain.bind(id),
                    Parameter::Integer(value) => explain.bind(value),
                };
            }
            let rows = explain.fetch_all(&mut connection).await?;
            let lines =
                rows.iter().map(|row| row.try_get::<String, _>("detail")).collect::<Result<Vec<_>, _>>()?;
            plans.push(Plan { query, lines, index });
        }
        connection.close().await?;
    } else {
        let mut connection = PgConnection::connect(url).await?;
        for (query, text, parameters, index) in queries {
            let mut explain =
                sqlx::query_scalar::<_, String>(AssertSqlSafe(format!("EXPLAIN (ANALYZE, BUFFERS) {text}")));
            for parameter in parameters {
                explain = match parameter {
                    Parameter::Id(id) => explain.bind(id),
                    Parameter::Integer(value) => explain.bind(value),
                };
            }
            let lines = explain.fetch_all(&mut connection).await?;
            plans.push(Plan { query, lines, index });
        }
        connection.close().await?;
    }
    Ok(plans)
}

/// `text` with PostgreSQL's `$n` placeholders as SQLite's `?n` (as the store does).
fn sqlite_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '$' && characters.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_is_deterministic_complete_and_in_time_order() {
        let (first, second) = (History::generate(30, 40).unwrap(), History::generate(30, 40).unwrap());
        assert_eq!(first.expenses(), 30 * 40);
        assert!(first.planned.windows(2).all(|pair| pair[0].occurred_at <= pair[1].occurred_at));
        assert!(
            first.planned.iter().zip(&second.planned).all(|(a, b)| (
                a.occurred_at,
                a.amount,
                a.customer,
                a.source
            ) == (
                b.occurred_at,
                b.amount,
                b.customer,
                b.source
            )),
            "the same seed gives the same rows"
        );
        for customer in 0..30u32 {
            assert_eq!(first.planned.iter().filter(|row| row.customer == customer).count(), 40);
        }
        // Salaries land in the Income tree; at least one merchant is uncategorised.
        let income = first.tree.index(INCOME).unwrap();
        assert!(first.sources.iter().any(|source| first.tree.top(source.category) == income));
        assert!(first.sources.iter().any(|source| source.category == 0));
        let currencies: std::collections::BTreeSet<u8> =
            first.planned.iter().filter(|row| row.customer == 3).map(|row| row.currency).collect();
        assert_eq!(currencies.len(), 2, "customer 3 spends in two currencies");
        let (start, end) =
            (months_from(FIRST_MONTH, MONTHS)[0].2, months_from(FIRST_MONTH, MONTHS)[MONTHS - 1].3);
        assert!(first.planned.iter().all(|row| (start..end).contains(&row.occurred_at)));
    }

    #[test]
    fn the_expected_report_adds_up() {
        let history = History::generate(10, 100).unwrap();
        let customer = MeasuredCustomer {
            id: Uuid::now_v7(),
            email: String::new(),
            password: String::new(),
            token: String::new(),
            categories: (0..history.tree.len()).map(|_| Uuid::now_v7()).collect(),
        };
        let report = history.expected_report(0, &customer, report_month()).unwrap();
        let currency = &report["currencies"][0];
        assert_eq!(currency["currency"], "USD");
        let lines = currency["by_category"].as_array().unwrap();
        let spent: i64 = lines.iter().map(|line| line["total"].as_i64().unwrap()).sum();
        assert_eq!(spent, currency["spending"].as_i64().unwrap());
        assert!(currency["income"].as_i64().unwrap() > 0, "a salary every month: {report}");
        assert!(lines.windows(2).all(|pair| pair[0]["total"].as_i64() >= pair[1]["total"].as_i64()));
        assert!(currency["top_merchants"].as_array().unwrap().len() <= 5);
        assert!(!lines.iter().any(|line| line["name"] == INCOME), "income is not spending: {report}");
    }

    #[test]
    fn placeholders_follow_the_store() {
        assert_eq!(
            sqlite_placeholders("a = $1 AND b IN ($12, $3) LIMIT $4"),
            "a = ?1 AND b IN (?12, ?3) LIMIT ?4"
        );
    }
}
