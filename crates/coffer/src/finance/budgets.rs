//! Budgets: one monthly amount per (category, currency) of a customer, at most
//! `store::BUDGETS_PER_CUSTOMER_MAX`. Where a budget stands in a month is
//! `Finance::budget_status` (in `reports`); the alerts are raised with the expenses.

use store::BudgetRow;
use uuid::Uuid;

use super::{Finance, FinanceError};
use crate::wallets::Currency;

/// A new budget, its fields checked by the caller.
#[derive(Clone, Copy, Debug)]
pub struct NewBudget {
    pub category_id: Uuid,
    pub currency: Currency,
    /// Per month, minor units.
    pub amount: i64,
    /// Add what was left last month to this month.
    pub rollover: bool,
}

/// A change to a budget; `None` leaves a field as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct BudgetChange {
    pub amount: Option<i64>,
    pub rollover: Option<bool>,
}

impl Finance {
    /// `customer_id`'s budgets.
    pub async fn budgets(&self, customer_id: Uuid) -> Result<Vec<BudgetRow>, FinanceError> {
        Ok(self.store.budgets(customer_id).await?)
    }

    /// One of `customer_id`'s budgets.
    pub async fn budget(&self, customer_id: Uuid, id: Uuid) -> Result<BudgetRow, FinanceError> {
        self.budgets(customer_id)
            .await?
            .into_iter()
            .find(|budget| budget.id == id)
            .ok_or(FinanceError::NotFound("budget"))
    }

    /// Records a budget for one of `customer_id`'s categories; one per category and currency.
    pub async fn create_budget(&self, customer_id: Uuid, new: NewBudget) -> Result<BudgetRow, FinanceError> {
        self.category(customer_id, new.category_id).await?;
        if self.store.budgets(customer_id).await?.len() >= store::BUDGETS_PER_CUSTOMER_MAX as usize {
            return Err(FinanceError::TooMany("budgets"));
        }
        let row = BudgetRow {
            id: Uuid::now_v7(),
            customer_id,
            category_id: new.category_id,
            currency: new.currency.code().to_owned(),
            amount: new.amount,
            rollover: new.rollover,
            created_at: store::now_ns() as i64,
        };
        if !self.store.save_budget(&row).await? {
            return Err(FinanceError::BudgetExists);
        }
        Ok(row)
    }

    /// Changes one of `customer_id`'s budgets.
    pub async fn change_budget(
        &self,
        customer_id: Uuid,
        id: Uuid,
        change: BudgetChange,
    ) -> Result<BudgetRow, FinanceError> {
        let mut row = self.budget(customer_id, id).await?;
        if let Some(amount) = change.amount {
            row.amount = amount;
        }
        if let Some(rollover) = change.rollover {
            row.rollover = rollover;
        }
        self.store.save_budget(&row).await?;
        Ok(row)
    }

    /// Deletes one of `customer_id`'s budgets.
    pub async fn delete_budget(&self, customer_id: Uuid, id: Uuid) -> Result<(), FinanceError> {
        if self.store.delete_budget(customer_id, id).await? {
            Ok(())
        } else {
            Err(FinanceError::NotFound("budget"))
        }
    }
}
