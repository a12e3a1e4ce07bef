//! Personal finance: each customer's categories (a two-level tree), expenses and
//! categorisation rules. What the rules mean and how expenses are categorised is the
//! service's business (`coffer::finance`); the store keeps rows and answers filtered,
//! paged queries.

use crate::BeginWrite as _;
use uuid::Uuid;

use crate::{Result, Store, codec::saturating as signed, with_pool};

/// Categories one customer may have at most.
pub const CATEGORIES_PER_CUSTOMER_MAX: u32 = 500;
/// Rules one customer may have at most.
pub const RULES_PER_CUSTOMER_MAX: u32 = 200;
/// Expenses per page at most.
pub const EXPENSES_PAGE_MAX: u32 = 100;
/// Expenses one insights read covers at most.
pub const SPENDS_MAX: u32 = 10_000;

/// A category.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CategoryRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    /// The built-in `Uncategorised`, which cannot be renamed or deleted.
    pub system: bool,
    pub created_at: i64,
}

/// An expense.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ExpenseRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub merchant: Option<String>,
    pub mcc: Option<String>,
    pub occurred_at: i64,
    pub category_id: Uuid,
    /// `rule:<id>`, `merchant`, `mcc` or `manual`.
    pub categorized_by: String,
    pub confidence: f64,
    /// Comma-separated.
    pub tags: String,
    pub notes: Option<String>,
    pub wallet_id: Option<Uuid>,
    /// `manual`, `import`, `wallet` or `bank_sync`.
    pub source: String,
    pub import_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const EXPENSE_COLUMNS: &str = "id, customer_id, amount, currency, description, merchant, mcc, occurred_at, \
     category_id, categorized_by, confidence, tags, notes, wallet_id, source, import_hash, created_at, updated_at";

/// Which expenses to list: one customer's, newest first, with optional filters.
#[derive(Clone, Debug, Default)]
pub struct ExpenseFilter {
    pub customer_id: Uuid,
    /// Resume after this (occurred_at, id), exclusive, going back in time.
    pub before: Option<(i64, Uuid)>,
    pub from: Option<i64>,
    /// Exclusive.
    pub to: Option<i64>,
    /// Any of these categories.
    pub category_ids: Vec<Uuid>,
    pub merchant: Option<String>,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    pub tag: Option<String>,
    /// Case-insensitive substring of the description or the merchant.
    pub text: Option<String>,
    pub limit: u32,
}

/// A categorisation rule as stored; triggers and actions are the service's JSON.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RuleRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub position: i64,
    pub name: String,
    pub strict: bool,
    pub triggers: String,
    pub actions: String,
    pub created_at: i64,
}

/// How a category write went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    Done,
    /// No such (non-system) category of this customer.
    Missing,
    /// The customer has a category with that name.
    NameTaken,
}

fn saved(result: std::result::Result<u64, sqlx::Error>) -> Result<Saved> {
    match result {
        Ok(1) => Ok(Saved::Done),
        Ok(_) => Ok(Saved::Missing),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(Saved::NameTaken),
        Err(error) => Err(error.into()),
    }
}

/// `%text%` for LIKE, with LIKE's wildcards in `text` escaped (with `\`).
fn like_pattern(text: &str) -> String {
    let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl Store {
    /// Records `categories` for a customer who has none yet, in one transaction; a
    /// concurrent call that got there first wins and this one records nothing.
    pub async fn create_categories(&self, categories: &[CategoryRow]) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            for category in categories {
                sqlx::query(sql(
                    "INSERT INTO categories (id, customer_id, parent_id, name, system, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                ))
                .bind(category.id)
                .bind(category.customer_id)
                .bind(category.parent_id)
                .bind(&category.name)
                .bind(category.system)
                .bind(category.created_at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The customer's categories, in creation order.
    pub async fn categories(&self, customer_id: Uuid) -> Result<Vec<CategoryRow>> {
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(CATEGORIES_SQL))
                .bind(customer_id)
                .bind(i64::from(CATEGORIES_PER_CUSTOMER_MAX))
                .fetch_all(pool)
                .await?)
        })
    }

    /// Renames (and re-parents) a category.
    pub async fn update_category(
        &self,
        customer_id: Uuid,
        id: Uuid,
        name: &str,
        parent_id: Option<Uuid>,
    ) -> Result<Saved> {
        let updated = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "UPDATE categories SET name = $3, parent_id = $4 WHERE id = $1 AND customer_id = $2 AND NOT system",
            ))
            .bind(id)
            .bind(customer_id)
            .bind(name)
            .bind(parent_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        });
        saved(updated)
    }

    /// Deletes category `id` and its children, moving their expenses to `fallback`, with
    /// `events`, in one transaction. False: no such (non-system) category of this customer.
    pub async fn delete_category(
        &self,
        customer_id: Uuid,
        id: Uuid,
        fallback: Uuid,
        now: u64,
        events: &[crate::NewEvent],
    ) -> Result<bool> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let found: Option<bool> =
                sqlx::query_scalar(sql("SELECT system FROM categories WHERE id = $1 AND customer_id = $2"))
                    .bind(id)
                    .bind(customer_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if found != Some(false) {
                return Ok(false);
            }
            sqlx::query(sql(
                "UPDATE expenses SET category_id = $3, categorized_by = 'manual', confidence = 1.0, updated_at = $4 \
                 WHERE customer_id = $2 AND category_id IN \
                 (SELECT id FROM categories WHERE id = $1 OR parent_id = $1)",
            ))
            .bind(id)
            .bind(customer_id)
            .bind(fallback)
            .bind(signed(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query(sql("DELETE FROM categories WHERE parent_id = $1 AND customer_id = $2"))
                .bind(id)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql("DELETE FROM categories WHERE id = $1 AND customer_id = $2"))
                .bind(id)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?;
            crate::outbox::insert_events!(tx, sql, events);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Records a category.
    pub async fn insert_category(&self, category: &CategoryRow) -> Result<Saved> {
        let inserted = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("INSERT INTO categories (id, customer_id, parent_id, name, system, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)"))
            .bind(category.id)
            .bind(category.customer_id)
            .bind(category.parent_id)
            .bind(&category.name)
            .bind(category.system)
            .bind(category.created_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        });
        saved(inserted)
    }

    /// Records an expense with its events. False: an expense with the same import hash
    /// exists for this customer (a re-imported line), and nothing was written.
    pub async fn insert_expense(&self, expense: &ExpenseRow, events: &[crate::NewEvent]) -> Result<bool> {
        Ok(self.insert_expenses(&[(expense.clone(), events.to_vec())]).await?[0])
    }

    /// Records expenses with their events in one transaction; per expense, whether it was
    /// recorded (false: its import hash or id exists, and its events were not written).
    pub async fn insert_expenses(
        &self,
        expenses: &[(ExpenseRow, Vec<crate::NewEvent>)],
    ) -> Result<Vec<bool>> {
        let text = format!(
            "INSERT INTO expenses ({EXPENSE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18) ON CONFLICT DO NOTHING"
        );
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let mut recorded = Vec::with_capacity(expenses.len());
            for (expense, events) in expenses {
                let inserted = sqlx::query(sql(&text))
                    .bind(expense.id)
                    .bind(expense.customer_id)
                    .bind(expense.amount)
                    .bind(&expense.currency)
                    .bind(&expense.description)
                    .bind(&expense.merchant)
                    .bind(&expense.mcc)
                    .bind(expense.occurred_at)
                    .bind(expense.category_id)
                    .bind(&expense.categorized_by)
                    .bind(expense.confidence)
                    .bind(&expense.tags)
                    .bind(&expense.notes)
                    .bind(expense.wallet_id)
                    .bind(&expense.source)
                    .bind(&expense.import_hash)
                    .bind(expense.created_at)
                    .bind(expense.updated_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if inserted {
                    crate::outbox::insert_events!(tx, sql, events);
                }
                recorded.push(inserted);
            }
            tx.commit().await?;
            Ok(recorded)
        })
    }

    /// The customer's expense `id`.
    pub async fn expense(&self, customer_id: Uuid, id: Uuid) -> Result<Option<ExpenseRow>> {
        let text = format!("SELECT {EXPENSE_COLUMNS} FROM expenses WHERE id = $1 AND customer_id = $2");
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text)).bind(id).bind(customer_id).fetch_optional(pool).await?)
        })
    }

    /// Replaces the editable fields of an expense (the caller read it first), with its
    /// events. False: it is gone.
    pub async fn update_expense(&self, expense: &ExpenseRow, events: &[crate::NewEvent]) -> Result<bool> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(sql(
                "UPDATE expenses SET amount = $3, currency = $4, description = $5, merchant = $6, mcc = $7, \
                 occurred_at = $8, category_id = $9, categorized_by = $10, confidence = $11, tags = $12, \
                 notes = $13, wallet_id = $14, updated_at = $15 WHERE id = $1 AND customer_id = $2",
            ))
            .bind(expense.id)
            .bind(expense.customer_id)
            .bind(expense.amount)
            .bind(&expense.currency)
            .bind(&expense.description)
            .bind(&expense.merchant)
            .bind(&expense.mcc)
            .bind(expense.occurred_at)
            .bind(expense.category_id)
            .bind(&expense.categorized_by)
            .bind(expense.confidence)
            .bind(&expense.tags)
            .bind(&expense.notes)
            .bind(expense.wallet_id)
            .bind(expense.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if updated {
                crate::outbox::insert_events!(tx, sql, events);
            }
            tx.commit().await?;
            Ok(updated)
        })
    }

    /// Deletes the customer's expense `id`, with its events. False: there was none (and
    /// no event was written).
    pub async fn delete_expense(
        &self,
        customer_id: Uuid,
        id: Uuid,
        events: &[crate::NewEvent],
    ) -> Result<bool> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            let deleted = sqlx::query(sql("DELETE FROM expenses WHERE id = $1 AND customer_id = $2"))
                .bind(id)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if deleted {
                crate::outbox::insert_events!(tx, sql, events);
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }

    /// A page of the customer's expenses, newest first.
    pub async fn expenses(&self, filter: &ExpenseFilter) -> Result<Vec<ExpenseRow>> {
        // $1 customer, $2–$3 cursor, $4–$5 time range, $6 merchant, $7–$8 amounts, $9 tag,
        // $10 text, $11 limit, then the category ids.
        let categories = if filter.category_ids.is_empty() {
            String::new()
        } else {
            let ids = (0..filter.category_ids.len()).map(|i| format!("${}", i + 12)).collect::<Vec<_>>();
            format!(" AND category_id IN ({})", ids.join(", "))
        };
        let text = format!(
            "SELECT {EXPENSE_COLUMNS} FROM expenses WHERE customer_id = $1 \
             AND ($2 IS NULL OR occurred_at < $2 OR (occurred_at = $2 AND id < $3)) \
             AND ($4 IS NULL OR occurred_at >= $4) AND ($5 IS NULL OR occurred_at < $5) \
             AND ($6 IS NULL OR LOWER(merchant) = LOWER($6)) \
             AND ($7 IS NULL OR amount >= $7) AND ($8 IS NULL OR amount <= $8) \
             AND ($9 IS NULL OR (',' || tags || ',') LIKE $9) \
             AND ($10 IS NULL OR LOWER(COALESCE(description, '')) LIKE $10 ESCAPE '\\' \
                  OR LOWER(COALESCE(merchant, '')) LIKE $10 ESCAPE '\\'){categories} \
             ORDER BY occurred_at DESC, id DESC LIMIT $11"
        );
        let limit = i64::from(filter.limit.min(EXPENSES_PAGE_MAX + 1));
        with_pool!(self, replica, |pool, sql| {
            let mut query = sqlx::query_as(sql(&text))
                .bind(filter.customer_id)
                .bind(filter.before.map(|(at, _)| at))
                .bind(filter.before.map(|(_, id)| id))
                .bind(filter.from)
                .bind(filter.to)
                .bind(&filter.merchant)
                .bind(filter.amount_min)
                .bind(filter.amount_max)
                .bind(filter.tag.as_ref().map(|tag| format!("%,{tag},%")))
                .bind(filter.text.as_deref().map(like_pattern))
                .bind(limit);
            for id in &filter.category_ids {
                query = query.bind(*id);
            }
            Ok(query.fetch_all(pool).await?)
        })
    }

    /// The customer's expenses that occurred from `from` on, newest first, at most
    /// `limit` (and at most [`SPENDS_MAX`]): what the insights read.
    pub async fn expenses_since(&self, customer_id: Uuid, from: i64, limit: u32) -> Result<Vec<ExpenseRow>> {
        let text = format!(
            "SELECT {EXPENSE_COLUMNS} FROM expenses WHERE customer_id = $1 AND occurred_at >= $2 \
             ORDER BY occurred_at DESC, id DESC LIMIT $3"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text))
                .bind(customer_id)
                .bind(from)
                .bind(i64::from(limit.min(SPENDS_MAX)))
                .fetch_all(pool)
                .await?)
        })
    }

    /// What the customer has been told about their spending before (`insight_notices`).
    pub async fn insight_notices(&self, customer_id: Uuid) -> Result<std::collections::HashSet<String>> {
        let rows: Vec<(String,)> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql("SELECT key FROM insight_notices WHERE customer_id = $1"))
                .bind(customer_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(key,)| key).collect())
    }

    /// The customer's rules, in position order.
    pub async fn rules(&self, customer_id: Uuid) -> Result<Vec<RuleRow>> {
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(
                "SELECT id, customer_id, position, name, strict, triggers, actions, created_at FROM rules \
                 WHERE customer_id = $1 ORDER BY position, created_at LIMIT $2",
            ))
            .bind(customer_id)
            .bind(i64::from(RULES_PER_CUSTOMER_MAX))
            .fetch_all(pool)
            .await?)
        })
    }

    /// Records a rule, or replaces the customer's rule with the same id.
    pub async fn upsert_rule(&self, rule: &RuleRow) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "INSERT INTO rules (id, customer_id, position, name, strict, triggers, actions, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET position = $3, name = $4, \
                 strict = $5, triggers = $6, actions = $7 WHERE rules.customer_id = $2",
            ))
            .bind(rule.id)
            .bind(rule.customer_id)
            .bind(rule.position)
            .bind(&rule.name)
            .bind(rule.strict)
            .bind(&rule.triggers)
            .bind(&rule.actions)
            .bind(rule.created_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Deletes the customer's rule `id`. False: there was none.
    pub async fn delete_rule(&self, customer_id: Uuid, id: Uuid) -> Result<bool> {
        let deleted = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("DELETE FROM rules WHERE id = $1 AND customer_id = $2"))
                .bind(id)
                .bind(customer_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }
}

/// A monthly budget.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct BudgetRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub category_id: Uuid,
    pub currency: String,
    pub amount: i64,
    pub rollover: bool,
    pub created_at: i64,
}

/// Expenses of one category in one currency over a period.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CategoryTotal {
    pub currency: String,
    pub category_id: Uuid,
    pub total: i64,
    pub count: i64,
}

/// Expenses in one currency and category on one day (days since 1970-01-01, UTC).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CategoryDayTotal {
    pub day: i64,
    pub currency: String,
    pub category_id: Uuid,
    pub total: i64,
    pub count: i64,
}

/// Expenses at one merchant in one currency over a period.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MerchantTotal {
    pub currency: String,
    pub merchant: String,
    pub total: i64,
    pub count: i64,
}

/// Expenses at one merchant in one currency on one day (days since 1970-01-01, UTC).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MerchantDayTotal {
    pub day: i64,
    pub currency: String,
    pub merchant: String,
    pub total: i64,
    pub count: i64,
}

/// Budgets one customer may have at most.
pub const BUDGETS_PER_CUSTOMER_MAX: u32 = 200;

/// The SQL of [`Store::categories`] (`$n` placeholders, as for PostgreSQL). Public, like
/// the other report queries below, so that the benchmark can `EXPLAIN` exactly what runs.
pub const CATEGORIES_SQL: &str = "SELECT id, customer_id, parent_id, name, system, created_at FROM categories \
     WHERE customer_id = $1 ORDER BY created_at, id LIMIT $2";

/// The SQL of [`Store::category_totals`]: $1 customer, $2–$3 the period.
pub const CATEGORY_TOTALS_SQL: &str = "SELECT currency, category_id, CAST(SUM(amount) AS BIGINT) AS total, \
     COUNT(*) AS count FROM expenses WHERE customer_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
     GROUP BY currency, category_id ORDER BY currency, total DESC";

/// The SQL of [`Store::merchant_totals`] with `excluded` excluded categories: $1 customer,
/// $2–$3 the period, $4 the limit, then the excluded category ids.
pub fn merchant_totals_sql(excluded: usize) -> String {
    merchant_sums_sql(excluded, false)
}

/// [`merchant_totals_sql`], grouped by day too when `by_day` (the day first, in days since
/// 1970-01-01).
fn merchant_sums_sql(excluded: usize, by_day: bool) -> String {
    let excluded_sql = if excluded == 0 {
        String::new()
    } else {
        let ids = (0..excluded).map(|i| format!("${}", i + 5)).collect::<Vec<_>>();
        format!(" AND category_id NOT IN ({})", ids.join(", "))
    };
    let (day, group) = if by_day {
        ("occurred_at / 86400000000000 AS day, ", "occurred_at / 86400000000000, ")
    } else {
        ("", "")
    };
    format!(
        "SELECT {day}currency, merchant, CAST(SUM(amount) AS BIGINT) AS total, COUNT(*) AS count FROM expenses \
         WHERE customer_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND merchant IS NOT NULL{excluded_sql} \
         GROUP BY {group}currency, merchant ORDER BY total DESC, merchant LIMIT $4"
    )
}

const BUDGET_COLUMNS: &str = "id, customer_id, category_id, currency, amount, rollover, created_at";

impl Store {
    /// The customer's budgets, oldest first.
    pub async fn budgets(&self, customer_id: Uuid) -> Result<Vec<BudgetRow>> {
        let text = format!(
            "SELECT {BUDGET_COLUMNS} FROM budgets WHERE customer_id = $1 ORDER BY created_at, id LIMIT $2"
        );
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&text))
                .bind(customer_id)
                .bind(i64::from(BUDGETS_PER_CUSTOMER_MAX))
                .fetch_all(pool)
                .await?)
        })
    }

    /// Records a budget, or replaces the amount and rollover of the customer's budget with
    /// the same id. False: another budget holds this category and currency.
    pub async fn save_budget(&self, budget: &BudgetRow) -> Result<bool> {
        let text = format!(
            "INSERT INTO budgets ({BUDGET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET amount = $5, rollover = $6 WHERE budgets.customer_id = $2"
        );
        let saved = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(&text))
                .bind(budget.id)
                .bind(budget.customer_id)
                .bind(budget.category_id)
                .bind(&budget.currency)
                .bind(budget.amount)
                .bind(budget.rollover)
                .bind(budget.created_at)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match saved {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes the customer's budget `id`. False: there was none.
    pub async fn delete_budget(&self, customer_id: Uuid, id: Uuid) -> Result<bool> {
        let deleted = with_pool!(self, write, |pool, sql| {
            sqlx::query(sql("DELETE FROM budgets WHERE id = $1 AND customer_id = $2"))
                .bind(id)
                .bind(customer_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }

    /// The customer's expense totals per currency and category for `[from, to)`.
    pub async fn category_totals(&self, customer_id: Uuid, from: i64, to: i64) -> Result<Vec<CategoryTotal>> {
        with_pool!(self, replica, |pool, sql| {
            Ok(sqlx::query_as(sql(CATEGORY_TOTALS_SQL))
                .bind(customer_id)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?)
        })
    }

    /// [`Store::category_totals`] per day, for the expenses not in `currency`: what must be
    /// valued at the rate of its day to be shown in `currency`.
    pub async fn category_day_totals(
        &self,
        customer_id: Uuid,
        from: i64,
        to: i64,
        currency: &str,
    ) -> Result<Vec<CategoryDayTotal>> {
        with_pool!(self, replica, |pool, sql| {
            Ok(sqlx::query_as(sql("SELECT occurred_at / 86400000000000 AS day, currency, category_id, \
                 CAST(SUM(amount) AS BIGINT) AS total, COUNT(*) AS count FROM expenses \
                 WHERE customer_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND currency <> $4 \
                 GROUP BY occurred_at / 86400000000000, currency, category_id ORDER BY day"))
            .bind(customer_id)
            .bind(from)
            .bind(to)
            .bind(currency)
            .fetch_all(pool)
            .await?)
        })
    }

    /// [`Store::merchant_totals`] per day: the largest `limit` (merchant, currency, day)
    /// sums, to be valued at the rate of their day.
    pub async fn merchant_day_totals(
        &self,
        customer_id: Uuid,
        from: i64,
        to: i64,
        excluded: &[Uuid],
        limit: u32,
    ) -> Result<Vec<MerchantDayTotal>> {
        let text = merchant_sums_sql(excluded.len(), true);
        with_pool!(self, replica, |pool, sql| {
            let mut query =
                sqlx::query_as(sql(&text)).bind(customer_id).bind(from).bind(to).bind(i64::from(limit));
            for id in excluded {
                query = query.bind(*id);
            }
            Ok(query.fetch_all(pool).await?)
        })
    }

    /// The customer's largest merchants by total for `[from, to)`, `limit` at most, among
    /// the expenses not in `excluded` categories.
    pub async fn merchant_totals(
        &self,
        customer_id: Uuid,
        from: i64,
        to: i64,
        excluded: &[Uuid],
        limit: u32,
    ) -> Result<Vec<MerchantTotal>> {
        let text = merchant_totals_sql(excluded.len());
        with_pool!(self, replica, |pool, sql| {
            let mut query =
                sqlx::query_as(sql(&text)).bind(customer_id).bind(from).bind(to).bind(i64::from(limit));
            for id in excluded {
                query = query.bind(*id);
            }
            Ok(query.fetch_all(pool).await?)
        })
    }
}
