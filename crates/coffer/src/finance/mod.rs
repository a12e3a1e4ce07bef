//! Personal finance: categories, expenses, automatic categorisation and rules.
//!
//! `categories` holds the default tree, `merchants` the merchant dictionary, `categorize`
//! the explainable categoriser (rules, merchants, MCC), and [`Finance`] the service the
//! HTTP layer calls. Every expense records how it was categorised and how sure that was;
//! adding or recategorising one writes `expense.added` / `expense.categorized` with it
//! (their payloads, like those of the other expense, category and budget events, are the
//! types of `events::payloads`).
//! When a customer moves an expense with a merchant to another category by hand, a rule
//! `merchant is <merchant> → that category` is learned (or the learned one updated), so the
//! next one lands right.

pub mod banks;
pub mod budgets;
pub mod categories;
pub mod categorize;
pub mod home;
pub mod import;
pub mod merchants;
pub mod reports;
pub mod schedules;

use std::borrow::Cow;

use store::{CategoryRow, ExpenseFilter, ExpenseRow, RuleRow, Store, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::events::{self, EventType};
use crate::wallets::Currency;
use categories::UNCATEGORISED;
use categorize::{Actions, Decision, Facts, Rule, Target, Trigger};

/// The largest expense, in minor units (10 billion in a two-decimal currency): far above
/// any person's expense, and small enough that sums over millions of them cannot overflow.
pub const EXPENSE_AMOUNT_MAX: i64 = 1_000_000_000_000;

/// What went wrong, for the HTTP layer to answer.
#[derive(Debug, thiserror::Error)]
pub enum FinanceError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("a category with this name exists")]
    NameTaken,
    #[error("a budget for this category and currency exists")]
    BudgetExists,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("too many {0}")]
    TooMany(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn saved(saved: store::Saved) -> Result<(), FinanceError> {
    match saved {
        store::Saved::Done => Ok(()),
        store::Saved::Missing => Err(FinanceError::NotFound("category")),
        store::Saved::NameTaken => Err(FinanceError::NameTaken),
    }
}

/// An expense as a client gives it (validated by the HTTP layer).
#[derive(Clone, Debug, Default)]
pub struct NewExpense {
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub merchant: Option<String>,
    pub mcc: Option<String>,
    pub occurred_at: i64,
    /// Chosen by the client: no automatic categorisation.
    pub category_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    pub wallet_id: Option<Uuid>,
}

/// A line of a statement — a CSV file's, or a bank's synced transaction — which
/// [`Finance::record_lines`] makes an expense (money out) or income (money in) of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    pub occurred_at: i64,
    /// Minor units; negative = money out.
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub merchant: Option<String>,
    /// ISO 18245, when the source says.
    pub mcc: Option<String>,
    /// Identifies the line among everything the customer ever recorded: a second line
    /// with the same hash is a duplicate.
    pub hash: String,
}

/// Changes to an expense; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ExpensePatch {
    pub amount: Option<i64>,
    pub description: Option<Option<String>>,
    pub merchant: Option<Option<String>>,
    pub mcc: Option<Option<String>>,
    pub occurred_at: Option<i64>,
    pub category_id: Option<Uuid>,
    pub tags: Option<Vec<String>>,
    pub notes: Option<Option<String>>,
}

/// A rule as clients see it.
#[derive(Clone, Debug)]
pub struct RuleSpec {
    pub name: String,
    pub position: i64,
    pub strict: bool,
    pub triggers: Vec<Trigger>,
    pub actions: Actions,
}

/// The personal-finance service.
#[derive(Debug, Clone)]
pub struct Finance {
    store: Store,
}

fn rule_of(row: &RuleRow) -> Option<Rule> {
    Some(Rule {
        id: row.id,
        strict: row.strict,
        triggers: serde_json::from_str(&row.triggers).ok()?,
        actions: serde_json::from_str(&row.actions).ok()?,
    })
}

impl Finance {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The customer's categories, creating the default tree on first use.
    pub async fn categories(&self, customer_id: Uuid) -> Result<Vec<CategoryRow>, FinanceError> {
        let existing = self.store.categories(customer_id).await?;
        if !existing.is_empty() {
            return Ok(existing);
        }
        let now = store::now_ns() as i64;
        let mut rows = vec![CategoryRow {
            id: Uuid::now_v7(),
            customer_id,
            parent_id: None,
            name: UNCATEGORISED.to_owned(),
            system: true,
            created_at: now,
        }];
        for (index, (name, parent)) in categories::default_names().enumerate() {
            let parent_id =
                parent.and_then(|parent| rows.iter().find(|row| row.name == parent).map(|row| row.id));
            rows.push(CategoryRow {
                id: Uuid::now_v7(),
                customer_id,
                parent_id,
                name: name.to_owned(),
                system: false,
                created_at: now + 1 + index as i64,
            });
        }
        self.store.create_categories(&rows).await?;
        Ok(self.store.categories(customer_id).await?)
    }

    /// The customer's category `id`.
    pub async fn category(&self, customer_id: Uuid, id: Uuid) -> Result<CategoryRow, FinanceError> {
        self.categories(customer_id)
            .await?
            .into_iter()
            .find(|category| category.id == id)
            .ok_or(FinanceError::NotFound("category"))
    }

    /// Checks that `parent_id` can hold children of the customer: a top-level category.
    async fn check_parent(
        &self,
        customer_id: Uuid,
        parent_id: Option<Uuid>,
        child: Option<Uuid>,
    ) -> Result<(), FinanceError> {
        let Some(parent_id) = parent_id else { return Ok(()) };
        let all = self.categories(customer_id).await?;
        let parent =
            all.iter().find(|c| c.id == parent_id).ok_or(FinanceError::NotFound("parent category"))?;
        if parent.parent_id.is_some() || parent.system || Some(parent_id) == child {
            return Err(FinanceError::Invalid(
                "a parent must be a top-level category other than itself and Uncategorised",
            ));
        }
        if let Some(child) = child
            && all.iter().any(|c| c.parent_id == Some(child))
        {
            return Err(FinanceError::Invalid(
                "a category with children stays at the top level (two levels at most)",
            ));
        }
        Ok(())
    }

    pub async fn create_category(
        &self,
        customer_id: Uuid,
        name: String,
        parent_id: Option<Uuid>,
    ) -> Result<CategoryRow, FinanceError> {
        let all = self.categories(customer_id).await?;
        if all.len() >= store::CATEGORIES_PER_CUSTOMER_MAX as usize {
            return Err(FinanceError::TooMany("categories"));
        }
        self.check_parent(customer_id, parent_id, None).await?;
        let row = CategoryRow {
            id: Uuid::now_v7(),
            customer_id,
            parent_id,
            name,
            system: false,
            created_at: store::now_ns() as i64,
        };
        saved(self.store.insert_category(&row).await?)?;
        Ok(row)
    }

    pub async fn update_category(
        &self,
        customer_id: Uuid,
        id: Uuid,
        name: Option<String>,
        parent_id: Option<Option<Uuid>>,
    ) -> Result<CategoryRow, FinanceError> {
        let current = self.category(customer_id, id).await?;
        if current.system {
            return Err(FinanceError::Invalid("Uncategorised cannot be changed"));
        }
        let parent_id = parent_id.unwrap_or(current.parent_id);
        self.check_parent(customer_id, parent_id, Some(id)).await?;
        let name = name.unwrap_or(current.name);
        saved(self.store.update_category(customer_id, id, &name, parent_id).await?)?;
        self.category(customer_id, id).await
    }

    /// Deletes a category (and its children); their expenses move to Uncategorised.
    pub async fn delete_category(&self, customer_id: Uuid, id: Uuid) -> Result<(), FinanceError> {
        let all = self.categories(customer_id).await?;
        let target = all.iter().find(|c| c.id == id).ok_or(FinanceError::NotFound("category"))?;
        if target.system {
            return Err(FinanceError::Invalid("Uncategorised cannot be deleted"));
        }
        let fallback = all.iter().find(|c| c.system).ok_or(FinanceError::NotFound("Uncategorised"))?.id;
        let deleted: Vec<Uuid> =
            all.iter().filter(|c| c.id == id || c.parent_id == Some(id)).map(|c| c.id).collect();
        let event = events::event(
            EventType::CategoryDeleted,
            Some(customer_id),
            &format!("categories/{id}"),
            &events::CategoryDeletedData {
                customer_id,
                wallet_id: (),
                category_id: id,
                deleted_category_ids: deleted,
                moved_to: fallback,
            },
        );
        if !self.store.delete_category(customer_id, id, fallback, store::now_ns(), &[event]).await? {
            return Err(FinanceError::NotFound("category"));
        }
        Ok(())
    }

    async fn rules_of(&self, customer_id: Uuid) -> Result<Vec<Rule>, FinanceError> {
        Ok(self.store.rules(customer_id).await?.iter().filter_map(rule_of).collect())
    }

    /// The category a decision names, among the customer's categories (a default name
    /// the customer deleted or renamed falls back to Uncategorised).
    fn resolve(categories: &[CategoryRow], decision: &Decision) -> Uuid {
        let found = match &decision.target {
            Target::Id(id) => categories.iter().find(|c| c.id == *id),
            Target::Name(name) => categories.iter().find(|c| c.name == *name),
        };
        found
            .or_else(|| categories.iter().find(|c| c.system))
            .map(|c| c.id)
            .expect("Uncategorised always exists")
    }

    /// Adds an expense, categorised automatically unless the client chose; with an
    /// `import_hash`, a second expense with the same hash is a duplicate (returns false).
    pub async fn add_expense(
        &self,
        customer_id: Uuid,
        id: Uuid,
        expense: NewExpense,
        source: &str,
        import_hash: Option<String>,
    ) -> Result<(ExpenseRow, bool), FinanceError> {
        let categories = self.categories(customer_id).await?;
        let (category_id, by, confidence, mut tags) = match expense.category_id {
            Some(chosen) => {
                if !categories.iter().any(|c| c.id == chosen) {
                    return Err(FinanceError::NotFound("category"));
                }
                (chosen, "manual".to_owned(), 1.0, Vec::new())
            }
            None => {
                let facts = Facts {
                    description: expense.description.as_deref(),
                    merchant: expense.merchant.as_deref(),
                    mcc: expense.mcc.as_deref(),
                    amount: expense.amount,
                };
                let decision = categorize::categorize(&facts, &self.rules_of(customer_id).await?);
                (Self::resolve(&categories, &decision), decision.by, decision.confidence, decision.tags)
            }
        };
        for tag in expense.tags {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let now = store::now_ns() as i64;
        let row = ExpenseRow {
            id,
            customer_id,
            amount: expense.amount,
            currency: expense.currency,
            description: expense.description,
            merchant: expense.merchant,
            mcc: expense.mcc,
            occurred_at: expense.occurred_at,
            category_id,
            categorized_by: by,
            confidence,
            tags: tags.join(","),
            notes: expense.notes,
            wallet_id: expense.wallet_id,
            source: source.to_owned(),
            import_hash,
            created_at: now,
            updated_at: now,
        };
        let mut events = vec![
            self.expense_event(EventType::ExpenseAdded, &row, &categories),
            self.expense_event(EventType::ExpenseCategorized, &row, &categories),
        ];
        events.extend(self.budget_crossings(&row, None, &categories).await?);
        let created = self.store.insert_expense(&row, &events).await?;
        if !created && row.import_hash.is_none() {
            // The same id again (a retried request): the stored expense stands.
            let stored =
                self.store.expense(customer_id, id).await?.ok_or(FinanceError::NotFound("expense"))?;
            return Ok((stored, false));
        }
        Ok((row, created))
    }

    /// Records statement lines — a CSV import's (`source` `import`) or a bank sync's
    /// (`bank_sync`): money out becomes categorised expenses; money in (with
    /// `credits_as_income`) becomes income in the `Income` tree; zero amounts are skipped.
    /// Written in transactions of 500 lines, with their `expense.added` /
    /// `expense.categorized` events (budget alerts are not raised: a statement is history).
    /// Returns (imported, duplicates, skipped).
    pub async fn record_lines(
        &self,
        customer_id: Uuid,
        source: &str,
        lines: &[StatementLine],
        credits_as_income: bool,
    ) -> Result<(usize, usize, usize), FinanceError> {
        let categories = self.categories(customer_id).await?;
        let rules = self.rules_of(customer_id).await?;
        let income =
            categories.iter().find(|c| c.name == reports::INCOME && c.parent_id.is_none()).map(|c| c.id);
        let income_tree = income.map(|id| reports::tree(&categories, id)).unwrap_or_default();
        let (mut imported, mut duplicates, mut skipped) = (0, 0, 0);
        let now = store::now_ns() as i64;
        let mut batch = Vec::new();
        for line in lines {
            let credit = line.amount > 0;
            let amount = line.amount.checked_abs().unwrap_or(i64::MAX);
            if line.amount == 0 || amount > EXPENSE_AMOUNT_MAX || (credit && !credits_as_income) {
                skipped += 1;
                continue;
            }
            let facts = Facts {
                description: line.description.as_deref(),
                merchant: line.merchant.as_deref(),
                mcc: line.mcc.as_deref(),
                amount,
            };
            let decision = categorize::categorize(&facts, &rules);
            let mut category_id = Self::resolve(&categories, &decision);
            let (mut by, mut confidence) = (decision.by, decision.confidence);
            if credit && !income_tree.contains(&category_id) {
                // Money in that nothing recognised: income, with no more confidence than that.
                category_id = income.unwrap_or(category_id);
                (by, confidence) = ("none".to_owned(), 0.5);
            }
            let row = ExpenseRow {
                id: Uuid::now_v7(),
                customer_id,
                amount,
                currency: line.currency.clone(),
                description: line.description.clone(),
                merchant: line.merchant.clone(),
                mcc: line.mcc.clone(),
                occurred_at: line.occurred_at,
                category_id,
                categorized_by: by,
                confidence,
                tags: decision.tags.join(","),
                notes: None,
                wallet_id: None,
                source: source.to_owned(),
                import_hash: Some(line.hash.clone()),
                created_at: now,
                updated_at: now,
            };
            let events = vec![
                self.expense_event(EventType::ExpenseAdded, &row, &categories),
                self.expense_event(EventType::ExpenseCategorized, &row, &categories),
            ];
            batch.push((row, events));
            if batch.len() == 500 {
                for recorded in self.store.insert_expenses(&std::mem::take(&mut batch)).await? {
                    if recorded { imported += 1 } else { duplicates += 1 }
                }
            }
        }
        for recorded in self.store.insert_expenses(&batch).await? {
            if recorded { imported += 1 } else { duplicates += 1 }
        }
        Ok((imported, duplicates, skipped))
    }

    /// `budget.warning` / `budget.exceeded` for the budgets `row` pushes over 80 % / 100 %
    /// of their month — a new expense, or an edited one (`previous`: as it was, and counted
    /// in the month's spending until the edit is written). Read before the expense is
    /// written: two expenses racing across the same line may both announce it, or neither;
    /// the status endpoint is exact.
    async fn budget_crossings(
        &self,
        row: &ExpenseRow,
        previous: Option<&ExpenseRow>,
        categories: &[CategoryRow],
    ) -> Result<Vec<store::NewEvent>, FinanceError> {
        let mut events = Vec::new();
        let (year, month) = reports::month_of(row.occurred_at);
        let budgets = self.store.budgets(row.customer_id).await?;
        let home = if budgets.is_empty() { None } else { self.home_currency(row.customer_id).await? };
        for budget in budgets {
            let tree = reports::tree(categories, budget.category_id);
            let Some(amount) = self.counted(&budget, &tree, (year, month), home.is_some(), row).await? else {
                continue;
            };
            let before = self.budget_status_with(&budget, year, month, categories, home).await?;
            let counted_before = match previous {
                Some(expense) => self.counted(&budget, &tree, (year, month), home.is_some(), expense).await?,
                None => None,
            };
            let spent = before.spent.saturating_sub(counted_before.unwrap_or(0)).saturating_add(amount);
            let after = if spent > before.available {
                EventType::BudgetExceeded
            } else if reports::state(spent, before.available) == "warning" {
                EventType::BudgetWarning
            } else {
                continue;
            };
            let already = match after {
                EventType::BudgetExceeded => before.state == "exceeded",
                _ => before.state != "ok",
            };
            if already {
                continue;
            }
            let category = categories.iter().find(|c| c.id == budget.category_id).map(|c| c.name.as_str());
            let data = events::BudgetData {
                customer_id: row.customer_id,
                wallet_id: row.wallet_id,
                budget_id: budget.id,
                category_id: budget.category_id,
                category: category.map(Into::into),
                currency: budget.currency.as_str().into(),
                year,
                month,
                available: before.available,
                spent,
                percent_used: reports::percent(spent, before.available),
                expense_id: row.id,
            };
            events.push(events::event(
                after,
                Some(row.customer_id),
                &format!("budgets/{}", budget.id),
                &data,
            ));
        }
        Ok(events)
    }

    /// What `expense` counts in `budget` (over category `tree`) for `month`: its amount in
    /// the budget's currency, valued at the rate of its day when it is in another and the
    /// customer chose a `home` currency; `None` when it does not count.
    async fn counted(
        &self,
        budget: &store::BudgetRow,
        tree: &[Uuid],
        month: (i32, u8),
        home: bool,
        expense: &ExpenseRow,
    ) -> Result<Option<i64>, FinanceError> {
        if !tree.contains(&expense.category_id) || reports::month_of(expense.occurred_at) != month {
            return Ok(None);
        }
        if expense.currency == budget.currency {
            return Ok(Some(expense.amount));
        }
        let Some(currency) = Currency::parse(&budget.currency).filter(|_| home) else { return Ok(None) };
        self.value_on(expense.amount, &expense.currency, currency, expense.occurred_at).await
    }

    fn expense_event(
        &self,
        kind: EventType,
        row: &ExpenseRow,
        categories: &[CategoryRow],
    ) -> store::NewEvent {
        let category =
            categories.iter().find(|c| c.id == row.category_id).map(|c| Cow::from(c.name.as_str()));
        let subject = format!("expenses/{}", row.id);
        let customer = Some(row.customer_id);
        // Expenses happen after 1970; an earlier time reads as the epoch.
        let occurred_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(row.occurred_at.max(0)))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        match kind {
            EventType::ExpenseAdded => {
                let data = events::ExpenseAddedData {
                    customer_id: row.customer_id,
                    wallet_id: row.wallet_id,
                    expense_id: row.id,
                    amount: row.amount,
                    currency: row.currency.as_str().into(),
                    merchant: row.merchant.as_deref().map(Into::into),
                    source: events::ExpenseSource::of(&row.source),
                    occurred_at,
                };
                events::event(kind, customer, &subject, &data)
            }
            EventType::ExpenseUpdated => {
                let data = events::ExpenseUpdatedData {
                    customer_id: row.customer_id,
                    wallet_id: row.wallet_id,
                    expense_id: row.id,
                    amount: row.amount,
                    currency: row.currency.as_str().into(),
                    merchant: row.merchant.as_deref().map(Into::into),
                    source: events::ExpenseSource::of(&row.source),
                    occurred_at,
                    category_id: row.category_id,
                    category,
                };
                events::event(kind, customer, &subject, &data)
            }
            EventType::ExpenseDeleted => {
                let data = events::ExpenseDeletedData {
                    customer_id: row.customer_id,
                    wallet_id: row.wallet_id,
                    expense_id: row.id,
                };
                events::event(kind, customer, &subject, &data)
            }
            _ => {
                let data = events::ExpenseCategorizedData {
                    customer_id: row.customer_id,
                    wallet_id: row.wallet_id,
                    expense_id: row.id,
                    category_id: row.category_id,
                    category,
                    categorized_by: row.categorized_by.as_str().into(),
                    confidence: row.confidence,
                };
                events::event(kind, customer, &subject, &data)
            }
        }
    }

    pub async fn expense(&self, customer_id: Uuid, id: Uuid) -> Result<ExpenseRow, FinanceError> {
        self.store.expense(customer_id, id).await?.ok_or(FinanceError::NotFound("expense"))
    }

    /// Applies `patch`. A category chosen by hand for an expense with a merchant teaches
    /// a rule (unless one for that merchant exists); returns its id.
    pub async fn update_expense(
        &self,
        customer_id: Uuid,
        id: Uuid,
        patch: ExpensePatch,
    ) -> Result<(ExpenseRow, Option<Uuid>), FinanceError> {
        let mut row = self.expense(customer_id, id).await?;
        let original = row.clone();
        let categories = self.categories(customer_id).await?;
        let recategorised = patch.category_id.is_some_and(|chosen| chosen != row.category_id);
        if let Some(chosen) = patch.category_id
            && !categories.iter().any(|c| c.id == chosen)
        {
            return Err(FinanceError::NotFound("category"));
        }
        if let Some(amount) = patch.amount {
            row.amount = amount;
        }
        if let Some(description) = patch.description {
            row.description = description;
        }
        if let Some(merchant) = patch.merchant {
            row.merchant = merchant;
        }
        if let Some(mcc) = patch.mcc {
            row.mcc = mcc;
        }
        if let Some(occurred_at) = patch.occurred_at {
            row.occurred_at = occurred_at;
        }
        if let Some(tags) = patch.tags {
            row.tags = tags.join(",");
        }
        if let Some(notes) = patch.notes {
            row.notes = notes;
        }
        if let Some(chosen) = patch.category_id {
            row.category_id = chosen;
            row.categorized_by = "manual".into();
            row.confidence = 1.0;
        }
        row.updated_at = store::now_ns() as i64;
        let mut events = vec![self.expense_event(EventType::ExpenseUpdated, &row, &categories)];
        if recategorised {
            events.push(self.expense_event(EventType::ExpenseCategorized, &row, &categories));
        }
        events.extend(self.budget_crossings(&row, Some(&original), &categories).await?);
        if !self.store.update_expense(&row, &events).await? {
            return Err(FinanceError::NotFound("expense"));
        }
        let learned = match (&row.merchant, recategorised) {
            (Some(merchant), true) => self.learn(customer_id, merchant, row.category_id).await?,
            _ => None,
        };
        Ok((row, learned))
    }

    /// Learns from a correction: the rule `merchant is <merchant> → category`, created,
    /// or — when a one-trigger rule for that merchant exists — pointed at the new category.
    async fn learn(
        &self,
        customer_id: Uuid,
        merchant: &str,
        category_id: Uuid,
    ) -> Result<Option<Uuid>, FinanceError> {
        let rules = self.store.rules(customer_id).await?;
        let for_merchant = rules.iter().find(|row| {
            rule_of(row).is_some_and(|rule| {
                matches!(&rule.triggers[..], [Trigger::MerchantIs { value }] if value.eq_ignore_ascii_case(merchant))
            })
        });
        if let Some(existing) = for_merchant {
            let mut rule = rule_of(existing).expect("readable: just checked");
            rule.actions.category_id = category_id;
            let spec = RuleSpec {
                name: existing.name.clone(),
                position: existing.position,
                strict: existing.strict,
                triggers: rule.triggers,
                actions: rule.actions,
            };
            return Ok(Some(self.save_rule(customer_id, existing.id, spec).await?.id));
        }
        if rules.len() >= store::RULES_PER_CUSTOMER_MAX as usize {
            return Ok(None);
        }
        let spec = RuleSpec {
            name: format!("Learned: {merchant}"),
            position: rules.iter().map(|rule| rule.position).max().unwrap_or(0) + 1,
            strict: true,
            triggers: vec![Trigger::MerchantIs { value: merchant.to_owned() }],
            actions: Actions { category_id, tags: Vec::new() },
        };
        Ok(Some(self.save_rule(customer_id, Uuid::now_v7(), spec).await?.id))
    }

    pub async fn delete_expense(&self, customer_id: Uuid, id: Uuid) -> Result<(), FinanceError> {
        let row = self.expense(customer_id, id).await?;
        let event = self.expense_event(EventType::ExpenseDeleted, &row, &[]);
        if self.store.delete_expense(customer_id, id, &[event]).await? {
            Ok(())
        } else {
            Err(FinanceError::NotFound("expense"))
        }
    }

    pub async fn expenses(&self, filter: &ExpenseFilter) -> Result<Vec<ExpenseRow>, FinanceError> {
        Ok(self.store.expenses(filter).await?)
    }

    pub async fn rules(&self, customer_id: Uuid) -> Result<Vec<RuleRow>, FinanceError> {
        Ok(self.store.rules(customer_id).await?)
    }

    /// Records rule `id` (new or replacing the customer's rule with that id).
    pub async fn save_rule(
        &self,
        customer_id: Uuid,
        id: Uuid,
        spec: RuleSpec,
    ) -> Result<RuleRow, FinanceError> {
        self.category(customer_id, spec.actions.category_id).await?;
        let existing = self.store.rules(customer_id).await?;
        let created_at = match existing.iter().find(|rule| rule.id == id) {
            Some(rule) => rule.created_at,
            None if existing.len() >= store::RULES_PER_CUSTOMER_MAX as usize => {
                return Err(FinanceError::TooMany("rules"));
            }
            None => store::now_ns() as i64,
        };
        let row = RuleRow {
            id,
            customer_id,
            position: spec.position,
            name: spec.name,
            strict: spec.strict,
            triggers: serde_json::to_string(&spec.triggers).expect("serialisable"),
            actions: serde_json::to_string(&spec.actions).expect("serialisable"),
            created_at,
        };
        self.store.upsert_rule(&row).await?;
        Ok(row)
    }

    pub async fn rule(&self, customer_id: Uuid, id: Uuid) -> Result<RuleRow, FinanceError> {
        self.store
            .rules(customer_id)
            .await?
            .into_iter()
            .find(|rule| rule.id == id)
            .ok_or(FinanceError::NotFound("rule"))
    }

    pub async fn delete_rule(&self, customer_id: Uuid, id: Uuid) -> Result<(), FinanceError> {
        if self.store.delete_rule(customer_id, id).await? {
            Ok(())
        } else {
            Err(FinanceError::NotFound("rule"))
        }
    }

    /// Applies rule `id` to the customer's existing expenses (those it matches and whose
    /// category was not chosen by hand); returns how many changed. Bounded: the newest
    /// `limit` expenses are looked at.
    pub async fn apply_rule(&self, customer_id: Uuid, id: Uuid, limit: usize) -> Result<usize, FinanceError> {
        let rule = rule_of(&self.rule(customer_id, id).await?)
            .ok_or(FinanceError::Invalid("the rule is unreadable"))?;
        let categories = self.categories(customer_id).await?;
        let mut changed = 0;
        let mut before = None;
        let mut seen = 0;
        while seen < limit {
            let filter =
                ExpenseFilter { customer_id, before, limit: store::EXPENSES_PAGE_MAX, ..Default::default() };
            let page = self.store.expenses(&filter).await?;
            if page.is_empty() {
                break;
            }
            seen += page.len();
            before = page.last().map(|row| (row.occurred_at, row.id));
            for mut row in page {
                let facts = Facts {
                    description: row.description.as_deref(),
                    merchant: row.merchant.as_deref(),
                    mcc: row.mcc.as_deref(),
                    amount: row.amount,
                };
                if row.categorized_by == "manual"
                    || !rule.matches(&facts)
                    || row.category_id == rule.actions.category_id
                {
                    continue;
                }
                row.category_id = rule.actions.category_id;
                row.categorized_by = format!("rule:{}", rule.id);
                row.confidence = 1.0;
                let mut tags: Vec<String> =
                    row.tags.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect();
                for tag in &rule.actions.tags {
                    if !tags.contains(tag) {
                        tags.push(tag.clone());
                    }
                }
                row.tags = tags.join(",");
                row.updated_at = store::now_ns() as i64;
                let event = self.expense_event(EventType::ExpenseCategorized, &row, &categories);
                if self.store.update_expense(&row, &[event]).await? {
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }
}
