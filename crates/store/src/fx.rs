//! Currency-conversion quotes (`coffer::fx`). A quote is written once, when it is offered;
//! its execution is the ledger chain whose transfer ids the quote holds, so "executed"
//! is read from the ledger (the sell transfer exists) and never disagrees with it.

use uuid::Uuid;

use crate::codec::{saturating, unsigned};
use crate::{ROWS_PER_STATEMENT, Result, Store, numbered, with_pool};

/// A quote, and when its conversion was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FxQuoteRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub sell_wallet_id: Uuid,
    pub buy_wallet_id: Uuid,
    pub sell_currency: String,
    pub buy_currency: String,
    /// `sell` or `buy`: which amount the customer fixed.
    pub fixed: String,
    pub sell_amount: u64,
    pub buy_amount: u64,
    /// In the sell currency.
    pub fee: u64,
    /// What the spread earned, in the buy currency.
    pub spread: u64,
    pub spread_bps: u32,
    /// Decimal texts, for people: the mid rate and the customer's rate.
    pub mid_rate: String,
    pub rate: String,
    pub rate_source: String,
    pub rate_as_of: u64,
    pub sell_transfer_id: Uuid,
    pub buy_transfer_id: Uuid,
    pub created_at: u64,
    pub expires_at: u64,
    /// The ledger timestamp of the conversion, once executed (ignored on insert).
    pub executed_at: Option<u64>,
}

#[derive(sqlx::FromRow)]
struct FxQuoteRecord {
    id: Uuid,
    customer_id: Uuid,
    sell_wallet_id: Uuid,
    buy_wallet_id: Uuid,
    sell_currency: String,
    buy_currency: String,
    fixed: String,
    sell_amount: i64,
    buy_amount: i64,
    fee: i64,
    spread: i64,
    spread_bps: i64,
    mid_rate: String,
    rate: String,
    rate_source: String,
    rate_as_of: i64,
    sell_transfer_id: Uuid,
    buy_transfer_id: Uuid,
    created_at: i64,
    expires_at: i64,
    executed_at: Option<i64>,
}

impl TryFrom<FxQuoteRecord> for FxQuoteRow {
    type Error = crate::StoreError;

    fn try_from(row: FxQuoteRecord) -> Result<Self> {
        Ok(Self {
            id: row.id,
            customer_id: row.customer_id,
            sell_wallet_id: row.sell_wallet_id,
            buy_wallet_id: row.buy_wallet_id,
            sell_currency: row.sell_currency,
            buy_currency: row.buy_currency,
            fixed: row.fixed,
            sell_amount: unsigned(row.sell_amount, "sell_amount")?,
            buy_amount: unsigned(row.buy_amount, "buy_amount")?,
            fee: unsigned(row.fee, "fee")?,
            spread: unsigned(row.spread, "spread")?,
            spread_bps: u32::try_from(row.spread_bps)
                .map_err(|_| crate::StoreError::Corrupt(format!("spread_bps {}", row.spread_bps)))?,
            mid_rate: row.mid_rate,
            rate: row.rate,
            rate_source: row.rate_source,
            rate_as_of: unsigned(row.rate_as_of, "rate_as_of")?,
            sell_transfer_id: row.sell_transfer_id,
            buy_transfer_id: row.buy_transfer_id,
            created_at: unsigned(row.created_at, "created_at")?,
            expires_at: unsigned(row.expires_at, "expires_at")?,
            executed_at: row.executed_at.map(|at| unsigned(at, "executed_at")).transpose()?,
        })
    }
}

/// A quote's columns with `q.`, and its execution time from the ledger.
const QUOTE_SELECT: &str = "SELECT q.id, q.customer_id, q.sell_wallet_id, q.buy_wallet_id, q.sell_currency, \
     q.buy_currency, q.fixed, q.sell_amount, q.buy_amount, q.fee, q.spread, q.spread_bps, q.mid_rate, q.rate, \
     q.rate_source, q.rate_as_of, q.sell_transfer_id, q.buy_transfer_id, q.created_at, q.expires_at, \
     t.timestamp AS executed_at \
     FROM fx_quotes q LEFT JOIN transfers t ON t.id = q.sell_transfer_id";

/// One currency's part in the executed conversions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FxCurrencyTotals {
    pub currency: String,
    /// Conversions that sold this currency, and what they sold (the house received it).
    pub sold_count: u64,
    pub sold: u64,
    /// Conversions that bought it, and what they bought (the house paid it).
    pub bought_count: u64,
    pub bought: u64,
    /// Fees taken in it.
    pub fees: u64,
    /// What the spread earned in it.
    pub spread: u64,
}

/// One currency's reference rate on one day (`fx_rates`).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct FxRateRow {
    /// Days since 1970-01-01, UTC.
    pub day: i64,
    pub currency: String,
    pub base: String,
    /// Units of `currency` per unit of `base`, times 10^6.
    pub rate: i64,
    pub source: String,
    /// When the rates were valid, nanoseconds since the epoch.
    pub as_of: i64,
}

/// Days of rates [`Store::fx_rates_between`] answers at most (with every currency of a day,
/// a few thousand rows).
pub const FX_RATE_DAYS_MAX: i64 = 1_200;

impl Store {
    /// Records an offered quote.
    pub async fn insert_fx_quote(&self, quote: &FxQuoteRow) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "INSERT INTO fx_quotes (id, customer_id, sell_wallet_id, buy_wallet_id, sell_currency, \
                 buy_currency, fixed, sell_amount, buy_amount, fee, spread, spread_bps, mid_rate, rate, \
                 rate_source, rate_as_of, sell_transfer_id, buy_transfer_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
            ))
            .bind(quote.id)
            .bind(quote.customer_id)
            .bind(quote.sell_wallet_id)
            .bind(quote.buy_wallet_id)
            .bind(&quote.sell_currency)
            .bind(&quote.buy_currency)
            .bind(&quote.fixed)
            .bind(saturating(quote.sell_amount))
            .bind(saturating(quote.buy_amount))
            .bind(saturating(quote.fee))
            .bind(saturating(quote.spread))
            .bind(i64::from(quote.spread_bps))
            .bind(&quote.mid_rate)
            .bind(&quote.rate)
            .bind(&quote.rate_source)
            .bind(saturating(quote.rate_as_of))
            .bind(quote.sell_transfer_id)
            .bind(quote.buy_transfer_id)
            .bind(saturating(quote.created_at))
            .bind(saturating(quote.expires_at))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Quote `id`, with its execution time if it was executed.
    pub async fn fx_quote(&self, id: Uuid) -> Result<Option<FxQuoteRow>> {
        let text = format!("{QUOTE_SELECT} WHERE q.id = $1");
        let row: Option<FxQuoteRecord> = with_pool!(self, read, |pool, sql| {
            sqlx::query_as(sql(&text)).bind(id).fetch_optional(pool).await?
        });
        row.map(FxQuoteRow::try_from).transpose()
    }

    /// The executed quotes whose sell or buy transfer is among `transfer_ids` (a history
    /// page's conversions).
    pub async fn fx_conversions_of(&self, transfer_ids: &[Uuid]) -> Result<Vec<FxQuoteRow>> {
        let mut found = Vec::new();
        for chunk in transfer_ids.chunks(ROWS_PER_STATEMENT) {
            // The same placeholders twice: each id is bound once.
            let ids = numbered("$", chunk.len());
            let text = format!(
                "{QUOTE_SELECT} WHERE t.id IS NOT NULL AND (q.sell_transfer_id IN ({ids}) OR q.buy_transfer_id IN ({ids}))"
            );
            let rows: Vec<FxQuoteRecord> = with_pool!(self, read, |pool, sql| {
                let mut query = sqlx::query_as(sql(&text));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            for row in rows {
                let row = FxQuoteRow::try_from(row)?;
                if !found.iter().any(|known: &FxQuoteRow| known.id == row.id) {
                    found.push(row);
                }
            }
        }
        Ok(found)
    }

    /// Per currency, what the executed conversions sold, bought, and earned in it.
    pub async fn fx_totals(&self) -> Result<Vec<FxCurrencyTotals>> {
        /// Per currency: conversions, amount, and what they earned (fees or spread).
        type Sums = Vec<(String, i64, i64, i64)>;
        let sold = "SELECT q.sell_currency, COUNT(*), CAST(SUM(q.sell_amount) AS BIGINT), \
                    CAST(SUM(q.fee) AS BIGINT) FROM fx_quotes q \
                    JOIN transfers t ON t.id = q.sell_transfer_id GROUP BY q.sell_currency";
        let bought = "SELECT q.buy_currency, COUNT(*), CAST(SUM(q.buy_amount) AS BIGINT), \
                      CAST(SUM(q.spread) AS BIGINT) FROM fx_quotes q \
                      JOIN transfers t ON t.id = q.sell_transfer_id GROUP BY q.buy_currency";
        let (sold, bought): (Sums, Sums) = with_pool!(self, read, |pool, sql| {
            (
                sqlx::query_as(sql(sold)).fetch_all(pool).await?,
                sqlx::query_as(sql(bought)).fetch_all(pool).await?,
            )
        });
        let mut totals: Vec<FxCurrencyTotals> = Vec::new();
        for (side, sums) in [(true, sold), (false, bought)] {
            for (currency, count, amount, earned) in sums {
                let index = match totals.iter().position(|total| total.currency == currency) {
                    Some(index) => index,
                    None => {
                        totals.push(FxCurrencyTotals { currency, ..Default::default() });
                        totals.len() - 1
                    }
                };
                let total = &mut totals[index];
                let figures =
                    (unsigned(count, "count")?, unsigned(amount, "amount")?, unsigned(earned, "earned")?);
                if side {
                    (total.sold_count, total.sold, total.fees) = figures;
                } else {
                    (total.bought_count, total.bought, total.spread) = figures;
                }
            }
        }
        totals.sort_by(|a, b| a.currency.cmp(&b.currency));
        Ok(totals)
    }

    /// Records reference rates, one row per (day, currency); a day recorded again takes
    /// the newer figures.
    pub async fn record_fx_rates(&self, rows: &[FxRateRow]) -> Result<()> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT / 6) {
            let values = (0..chunk.len())
                .map(|i| {
                    let at = i * 6;
                    format!("(${}, ${}, ${}, ${}, ${}, ${})", at + 1, at + 2, at + 3, at + 4, at + 5, at + 6)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let text = format!(
                "INSERT INTO fx_rates (day, currency, base, rate, source, as_of) VALUES {values} \
                 ON CONFLICT (day, currency) DO UPDATE SET base = excluded.base, rate = excluded.rate, \
                 source = excluded.source, as_of = excluded.as_of"
            );
            with_pool!(self, write, |pool, sql| {
                let mut query = sqlx::query(sql(&text));
                for row in chunk {
                    query = query
                        .bind(row.day)
                        .bind(&row.currency)
                        .bind(&row.base)
                        .bind(row.rate)
                        .bind(&row.source)
                        .bind(row.as_of);
                }
                query.execute(pool).await?;
            });
        }
        Ok(())
    }

    /// The rates that value days `first..=last`: every recorded day in that span, the last
    /// recorded day before it (the rates in force on its first day), and — when nothing was
    /// recorded up to `last` — the first recorded day after it. At most
    /// [`FX_RATE_DAYS_MAX`] days from `first`; oldest first.
    pub async fn fx_rates_between(&self, first: i64, last: i64) -> Result<Vec<FxRateRow>> {
        let last = last.min(first.saturating_add(FX_RATE_DAYS_MAX));
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql("SELECT day, currency, base, rate, source, as_of FROM fx_rates \
                 WHERE (day <= $2 AND day >= COALESCE((SELECT MAX(day) FROM fx_rates WHERE day <= $1), $1)) \
                 OR (day = (SELECT MIN(day) FROM fx_rates WHERE day > $2) \
                     AND NOT EXISTS (SELECT 1 FROM fx_rates WHERE day <= $2)) \
                 ORDER BY day, currency"))
            .bind(first)
            .bind(last)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Forgets at most `limit` quotes that expired before `expired_before` and were never
    /// executed; returns how many.
    pub async fn purge_fx_quotes(&self, expired_before: u64, limit: u32) -> Result<u64> {
        with_pool!(self, write, |pool, sql| {
            Ok(sqlx::query(sql(
                "DELETE FROM fx_quotes WHERE id IN (SELECT q.id FROM fx_quotes q WHERE q.expires_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = q.sell_transfer_id) \
                 ORDER BY q.expires_at LIMIT $2)",
            ))
            .bind(saturating(expired_before))
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected())
        })
    }
}
