//! The SQL of the read queries that both backends share, written with `$n` placeholders
//! (PostgreSQL's; the SQLite adapter turns them into SQLite's equivalent `?n`).
//!
//! Reads never go through the writer: they run on the read pool, outside any ledger
//! transaction, and see the last committed batch.

use crate::AccountFilter;
use crate::codec::{BALANCE_COLUMNS, TRANSFER_COLUMNS_T};

/// The bound values of an [`AccountFilter`] query: `$1` account id, `$2` lowest and `$3`
/// highest timestamp (inclusive), `$4` row limit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FilterBounds {
    pub timestamp_min: i64,
    pub timestamp_max: i64,
    pub limit: i64,
}

/// The filter's bounds, or `None` when it cannot match anything (TigerBeetle answers an
/// invalid filter with an empty result rather than an error).
pub(crate) fn bounds(filter: &AccountFilter) -> Option<FilterBounds> {
    let clamp = |timestamp: u64| i64::try_from(timestamp).unwrap_or(i64::MAX);
    let timestamp_max = if filter.timestamp_max == 0 { i64::MAX } else { clamp(filter.timestamp_max) };
    let timestamp_min = clamp(filter.timestamp_min);
    let empty = filter.limit == 0 || !(filter.debits || filter.credits) || timestamp_min > timestamp_max;
    (!empty).then_some(FilterBounds { timestamp_min, timestamp_max, limit: i64::from(filter.limit) })
}

fn direction(filter: &AccountFilter) -> &'static str {
    if filter.reversed { "DESC" } else { "ASC" }
}

/// An account's transfers on the requested sides, in timestamp order. Each side is its
/// own index range scan, already limited; a transfer never has the same account on both
/// sides, so `UNION ALL` cannot duplicate one.
pub(crate) fn account_transfers(filter: &AccountFilter) -> String {
    let order = direction(filter);
    let side = |column: &str, alias: &str| {
        format!(
            "SELECT * FROM (SELECT {TRANSFER_COLUMNS_T} FROM transfers t \
             WHERE t.{column} = $1 AND t.timestamp >= $2 AND t.timestamp <= $3 \
             ORDER BY t.timestamp {order} LIMIT $4) AS {alias}"
        )
    };
    match (filter.debits, filter.credits) {
        (true, true) => format!(
            "{} UNION ALL {} ORDER BY timestamp {order} LIMIT $4",
            side("debit_account_id", "debits"),
            side("credit_account_id", "credits")
        ),
        (true, false) => side("debit_account_id", "debits"),
        _ => side("credit_account_id", "credits"),
    }
}

/// An account's balance history, in timestamp order. With only one side requested, a
/// snapshot is kept when the transfer stamped at its timestamp has the account on that
/// side; snapshots taken by expiries (which carry no transfer of their own) are listed
/// only when both sides are requested.
pub(crate) fn account_balances(filter: &AccountFilter) -> String {
    let order = direction(filter);
    let side = match (filter.debits, filter.credits) {
        (true, true) => String::new(),
        (true, false) => "AND EXISTS (SELECT 1 FROM transfers t WHERE t.debit_account_id = b.account_id \
                          AND t.timestamp = b.timestamp)"
            .to_owned(),
        _ => "AND EXISTS (SELECT 1 FROM transfers t WHERE t.credit_account_id = b.account_id \
              AND t.timestamp = b.timestamp)"
            .to_owned(),
    };
    format!(
        "SELECT {BALANCE_COLUMNS} FROM account_balances b \
         WHERE b.account_id = $1 AND b.timestamp >= $2 AND b.timestamp <= $3 {side} \
         ORDER BY b.timestamp {order} LIMIT $4"
    )
}

#[cfg(test)]
mod tests {
    use super::bounds;
    use crate::AccountFilter;

    fn filter() -> AccountFilter {
        AccountFilter {
            account_id: 1,
            timestamp_min: 0,
            timestamp_max: 0,
            limit: 10,
            debits: true,
            credits: true,
            reversed: false,
        }
    }

    #[test]
    fn zero_bounds_mean_unbounded() {
        let all = bounds(&filter()).expect("a valid filter");
        assert_eq!((all.timestamp_min, all.timestamp_max, all.limit), (0, i64::MAX, 10));
        let huge = bounds(&AccountFilter { timestamp_min: u64::MAX, timestamp_max: u64::MAX, ..filter() });
        assert_eq!(huge.map(|b| (b.timestamp_min, b.timestamp_max)), Some((i64::MAX, i64::MAX)));
    }

    #[test]
    fn impossible_filters_match_nothing() {
        assert!(bounds(&AccountFilter { limit: 0, ..filter() }).is_none());
        assert!(bounds(&AccountFilter { debits: false, credits: false, ..filter() }).is_none());
        assert!(bounds(&AccountFilter { timestamp_min: 5, timestamp_max: 4, ..filter() }).is_none());
    }
}
