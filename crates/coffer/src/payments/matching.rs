//! Matching a settlement file against the ledger (pure: no I/O). The lines are what a card
//! processor or bank says happened on one of our system accounts; the items are the ledger
//! transfers on that account. The rules run in the order given, each over what the earlier
//! ones left unmatched:
//!
//! - [`MatchRule::Reference`]: a line and a transfer with the same provider reference (the
//!   charge's or payout's id) belong together. Equal amounts match; different amounts are
//!   a *mismatch*, reported with the difference. A reference that names a transfer an
//!   earlier reconciliation already matched is reported as such, not matched twice.
//! - [`MatchRule::AmountDate`]: one line, one transfer of the same amount dated within the
//!   window (± days); the closest date wins, then the earliest transfer.
//! - [`MatchRule::Netted`]: one line for several transfers (a processor that pays out a day's
//!   payouts as one amount): every still-unmatched transfer of one day within the window,
//!   at least two, summing exactly to the line.
//!
//! A day is a UTC calendar day. Transfers already matched by an earlier reconciliation
//! take part only in the reference rule (to say so); the other rules never use them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Nanoseconds in a day.
pub const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// A matching rule.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MatchRule {
    Reference,
    AmountDate,
    Netted,
}

impl MatchRule {
    /// The default order: the surest first.
    pub const ALL: [Self; 3] = [Self::Reference, Self::AmountDate, Self::Netted];
}

/// One line of a settlement file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Its line number in the file (the header is line 1).
    pub number: usize,
    /// Nanoseconds since the epoch at the start of its day.
    pub date: i64,
    /// Minor units, positive.
    pub amount: u64,
    pub reference: Option<String>,
}

/// One ledger transfer on the reconciled account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub transfer_id: u128,
    /// Nanoseconds since the epoch.
    pub timestamp: u64,
    pub amount: u64,
    /// The provider's reference, when the transfer is a top-up's or withdrawal's.
    pub reference: Option<String>,
    /// The reconciliation that already matched it, if one did.
    pub reconciled_by: Option<Uuid>,
}

/// What became of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Matched {
        rule: MatchRule,
        items: Vec<usize>,
    },
    /// Same reference, different amount: `difference` is the line's amount minus the
    /// transfer's.
    Mismatched {
        item: usize,
        difference: i64,
    },
    /// Its reference names a transfer an earlier reconciliation matched.
    AlreadyReconciled {
        item: usize,
        by: Uuid,
    },
    Unmatched,
}

/// Every line's outcome (in file order), and the items no line took.
#[derive(Debug, PartialEq, Eq)]
pub struct Matching {
    pub outcomes: Vec<Outcome>,
    pub unmatched_items: Vec<usize>,
}

fn day(nanos: i64) -> i64 {
    nanos.div_euclid(DAY_NS)
}

fn item_day(item: &Item) -> i64 {
    day(i64::try_from(item.timestamp).unwrap_or(i64::MAX))
}

/// Runs `rules` in order; `window_days` bounds the date rules.
pub fn reconcile(lines: &[Line], items: &[Item], rules: &[MatchRule], window_days: u32) -> Matching {
    let window = i64::from(window_days);
    let mut outcomes = vec![Outcome::Unmatched; lines.len()];
    // Items still free: not matched here, not reconciled before.
    let mut free: Vec<bool> = items.iter().map(|item| item.reconciled_by.is_none()).collect();
    let open = |outcomes: &[Outcome], index: usize| outcomes[index] == Outcome::Unmatched;
    for rule in rules {
        match rule {
            MatchRule::Reference => {
                let by_reference: HashMap<&str, usize> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| item.reference.as_deref().map(|reference| (reference, index)))
                    .collect();
                for (index, line) in lines.iter().enumerate() {
                    let Some(&item) =
                        line.reference.as_deref().and_then(|reference| by_reference.get(reference))
                    else {
                        continue;
                    };
                    if !open(&outcomes, index) {
                        continue;
                    }
                    if let Some(by) = items[item].reconciled_by {
                        outcomes[index] = Outcome::AlreadyReconciled { item, by };
                    } else if free[item] {
                        free[item] = false;
                        let difference = i128::from(line.amount) - i128::from(items[item].amount);
                        outcomes[index] = if difference == 0 {
                            Outcome::Matched { rule: MatchRule::Reference, items: vec![item] }
                        } else {
                            let difference = i64::try_from(difference).unwrap_or(i64::MAX);
                            Outcome::Mismatched { item, difference }
                        };
                    }
                }
            }
            MatchRule::AmountDate => {
                let mut by_amount: HashMap<u64, Vec<usize>> = HashMap::new();
                for (index, item) in items.iter().enumerate() {
                    by_amount.entry(item.amount).or_default().push(index);
                }
                for (index, line) in lines.iter().enumerate() {
                    if !open(&outcomes, index) {
                        continue;
                    }
                    let line_day = day(line.date);
                    let best = by_amount
                        .get(&line.amount)
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|item| free[*item] && (item_day(&items[*item]) - line_day).abs() <= window)
                        .min_by_key(|item| {
                            ((item_day(&items[*item]) - line_day).abs(), items[*item].timestamp)
                        });
                    if let Some(item) = best {
                        free[item] = false;
                        outcomes[index] = Outcome::Matched { rule: MatchRule::AmountDate, items: vec![item] };
                    }
                }
            }
            MatchRule::Netted => {
                let mut by_day: HashMap<i64, Vec<usize>> = HashMap::new();
                for (index, item) in items.iter().enumerate() {
                    by_day.entry(item_day(item)).or_default().push(index);
                }
                for (index, line) in lines.iter().enumerate() {
                    if !open(&outcomes, index) {
                        continue;
                    }
                    let line_day = day(line.date);
                    // Days within the window, the closest first (the earlier on a tie).
                    let mut days: Vec<i64> = (line_day - window..=line_day + window).collect();
                    days.sort_by_key(|candidate| ((candidate - line_day).abs(), *candidate));
                    for candidate in days {
                        let group: Vec<usize> = by_day
                            .get(&candidate)
                            .into_iter()
                            .flatten()
                            .copied()
                            .filter(|item| free[*item])
                            .collect();
                        let sum: u128 = group.iter().map(|item| u128::from(items[*item].amount)).sum();
                        if group.len() >= 2 && sum == u128::from(line.amount) {
                            for item in &group {
                                free[*item] = false;
                            }
                            outcomes[index] = Outcome::Matched { rule: MatchRule::Netted, items: group };
                            break;
                        }
                    }
                }
            }
        }
    }
    let unmatched_items = (0..items.len()).filter(|item| free[*item]).collect();
    Matching { outcomes, unmatched_items }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = DAY_NS as u64;

    fn line(number: usize, day: i64, amount: u64, reference: Option<&str>) -> Line {
        Line { number, date: day * DAY_NS, amount, reference: reference.map(str::to_owned) }
    }

    fn item(id: u128, day: u64, amount: u64, reference: Option<&str>) -> Item {
        Item {
            transfer_id: id,
            timestamp: day * DAY + 3_600_000_000_000,
            amount,
            reference: reference.map(str::to_owned),
            reconciled_by: None,
        }
    }

    #[test]
    fn references_match_and_an_amount_difference_is_a_mismatch() {
        let lines =
            [line(2, 10, 500, Some("ch_a")), line(3, 10, 700, Some("ch_b")), line(4, 10, 900, Some("ch_x"))];
        let items = [item(1, 10, 500, Some("ch_a")), item(2, 10, 650, Some("ch_b"))];
        let matching = reconcile(&lines, &items, &[MatchRule::Reference], 2);
        assert_eq!(
            matching.outcomes,
            [
                Outcome::Matched { rule: MatchRule::Reference, items: vec![0] },
                Outcome::Mismatched { item: 1, difference: 50 },
                Outcome::Unmatched,
            ]
        );
        assert!(matching.unmatched_items.is_empty());
    }

    #[test]
    fn amount_and_date_take_the_closest_day_within_the_window() {
        let lines = [line(2, 10, 500, None), line(3, 20, 500, None)];
        let items =
            [item(1, 7, 500, None), item(2, 11, 500, None), item(3, 9, 500, None), item(4, 23, 500, None)];
        let matching = reconcile(&lines, &items, &MatchRule::ALL, 2);
        // Day 11 and day 9 are both one day off: the earlier transfer (day 9) wins. Day 23
        // is three days from day 20, outside the window.
        assert_eq!(
            matching.outcomes,
            [Outcome::Matched { rule: MatchRule::AmountDate, items: vec![2] }, Outcome::Unmatched]
        );
        assert_eq!(matching.unmatched_items, [0, 1, 3]);
    }

    #[test]
    fn a_netted_line_takes_a_whole_day_that_sums_to_it() {
        let lines = [line(2, 10, 600, Some("batch_10")), line(3, 12, 999, Some("batch_12"))];
        let items = [
            item(1, 10, 100, Some("po_1")),
            item(2, 10, 200, Some("po_2")),
            item(3, 10, 300, Some("po_3")),
            item(4, 12, 500, Some("po_4")),
            item(5, 12, 400, Some("po_5")),
        ];
        let matching = reconcile(&lines, &items, &MatchRule::ALL, 1);
        assert_eq!(
            matching.outcomes,
            [Outcome::Matched { rule: MatchRule::Netted, items: vec![0, 1, 2] }, Outcome::Unmatched]
        );
        assert_eq!(matching.unmatched_items, [3, 4], "900 is not 999");
    }

    #[test]
    fn rules_run_in_the_order_given() {
        // By amount alone the line would take the first transfer; by reference the second.
        let lines = [line(2, 10, 500, Some("ch_b"))];
        let items = [item(1, 10, 500, Some("ch_a")), item(2, 10, 500, Some("ch_b"))];
        let by_reference = reconcile(&lines, &items, &[MatchRule::Reference, MatchRule::AmountDate], 2);
        assert_eq!(by_reference.outcomes, [Outcome::Matched { rule: MatchRule::Reference, items: vec![1] }]);
        let by_amount = reconcile(&lines, &items, &[MatchRule::AmountDate, MatchRule::Reference], 2);
        assert_eq!(by_amount.outcomes, [Outcome::Matched { rule: MatchRule::AmountDate, items: vec![0] }]);
        assert_eq!(reconcile(&lines, &items, &[], 2).outcomes, [Outcome::Unmatched]);
    }

    #[test]
    fn a_transfer_reconciled_before_is_never_matched_again() {
        let earlier = Uuid::from_u128(9);
        let lines = [line(2, 10, 500, Some("ch_a")), line(3, 10, 500, None)];
        let mut done = item(1, 10, 500, Some("ch_a"));
        done.reconciled_by = Some(earlier);
        let matching = reconcile(&lines, &[done], &MatchRule::ALL, 2);
        assert_eq!(
            matching.outcomes,
            [Outcome::AlreadyReconciled { item: 0, by: earlier }, Outcome::Unmatched]
        );
        assert!(matching.unmatched_items.is_empty(), "not reported as unmatched either");
    }
}
