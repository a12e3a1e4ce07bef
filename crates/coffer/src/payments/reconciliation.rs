//! Reconciliation: a settlement file from the card processor or the payout bank, matched
//! against the system account it concerns, so that an operator sees what the outside
//! world says happened and the ledger lacks, and the other way round.
//!
//! - **Card settlement** (`card_settlement`): the processor's file of what it collected
//!   for us, one line per charge (or netted). The ledger side is every posting transfer
//!   debiting the currency's card-settlement account — the top-ups.
//! - **Payouts** (`payouts`): the bank's file of what it paid out. The ledger side is every
//!   posting transfer crediting the currency's payouts account — the withdrawals, posted
//!   once the payout succeeded (a hold still pending is not money sent).
//!
//! A transfer's reference is its payment's provider id (`ch_…`, `po_…`); the rules and
//! their order are [`super::matching`]'s. The ledger side read is the file's period
//! widened by the date window; transfers of the period that no line took are reported as
//! unmatched (those in the widened margin only take part). Matched transfers are marked,
//! once ever: a second file that names them says they were reconciled already. Mismatched
//! ones are not marked — they need a person. Unmatched lines or transfers older than
//! [`Reconciliations::overdue_days`] emit `reconciliation.unmatched` (operators' webhooks
//! and the broker).
//!
//! The file: CSV with a header line and a column mapping (date, amount, optional reference
//! and currency), the date formats and decimal marks of statement imports; amounts in
//! major units, positive. A line that cannot be read is reported (`rejected`) and left
//! out; a file without a usable header is refused.

use std::collections::HashMap;

use ledger::TransferFlags;
use serde::{Deserialize, Serialize};
use store::{AccountFilter, PaymentKind, ReconciliationRow, Store, StoreError};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::gateway::Settled;
use super::matching::{self, DAY_NS, Item, Line, MatchRule, Outcome};
use crate::events::{EventType, ReconciliationUnmatchedData};
use crate::finance::import::{DateFormat, LINES_MAX, parse_amount, parse_date};
use crate::wallets::money::account_code;
use crate::wallets::{Currency, Wallets, derive_id};

/// The widest date window, in days, either side.
pub const WINDOW_DAYS_MAX: u32 = 31;
/// The date window when none is given.
pub const WINDOW_DAYS_DEFAULT: u32 = 2;
/// Ledger transfers one reconciliation reads at most: a file whose period holds more is
/// refused (split it).
pub const TRANSFERS_MAX: usize = 100_000;
/// Transfers per read of the account's history.
const PAGE: u32 = 1_000;

/// The system account a settlement file concerns.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SettlementAccount {
    CardSettlement,
    Payouts,
}

impl SettlementAccount {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CardSettlement => "card_settlement",
            Self::Payouts => "payouts",
        }
    }

    fn code(self) -> u16 {
        match self {
            Self::CardSettlement => account_code::CARD_SETTLEMENT,
            Self::Payouts => account_code::PAYOUTS,
        }
    }

    fn payments(self) -> PaymentKind {
        match self {
            Self::CardSettlement => PaymentKind::TopUp,
            Self::Payouts => PaymentKind::Withdrawal,
        }
    }

    /// The ledger transfer that moved a payment's money on this account (the ids the
    /// payment service derives).
    fn transfer_of(self, payment: Uuid) -> u128 {
        match self {
            Self::CardSettlement => derive_id(payment, "top-up", ""),
            Self::Payouts => derive_id(payment, "withdrawal-resolve", ""),
        }
    }
}

/// Which columns hold what (header names, any case).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementColumns {
    pub date: String,
    pub amount: String,
    /// The provider's id for the charge or payout (or for a netted batch).
    pub reference: Option<String>,
    /// A currency column; lines in another currency than the reconciliation's are rejected.
    pub currency: Option<String>,
}

impl Default for SettlementColumns {
    /// The mock provider's export: `date,reference,amount,currency`.
    fn default() -> Self {
        Self {
            date: "date".into(),
            amount: "amount".into(),
            reference: Some("reference".into()),
            currency: Some("currency".into()),
        }
    }
}

/// A settlement file and how to read and match it.
#[derive(Clone, Debug)]
pub struct Upload {
    pub account: SettlementAccount,
    pub currency: Currency,
    pub csv: String,
    pub columns: SettlementColumns,
    pub date_format: DateFormat,
    /// `.` or `,`.
    pub decimal: char,
    /// `,` or `;`.
    pub delimiter: u8,
    /// In order; each at most once.
    pub rules: Vec<MatchRule>,
    pub window_days: u32,
}

/// Why a reconciliation was not made.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The file cannot be read at all (no header, a mapped column missing, no lines).
    #[error("{0}")]
    File(String),
    #[error("the file's period holds more than {TRANSFERS_MAX} transfers on the account: split it")]
    TooManyTransfers,
    /// Other reconciliations kept marking the same transfers.
    #[error("another reconciliation matched the same transfers at the same time: try again")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Ledger(String),
}

/// What became of a line.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SettlementLineStatus {
    Matched,
    /// Its reference names a transfer of another amount.
    Mismatched,
    /// Its reference names a transfer an earlier reconciliation matched.
    AlreadyReconciled,
    Unmatched,
}

/// One line of the file and its outcome.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
pub struct SettlementLineReport {
    /// Its line number in the file (the header is line 1).
    pub line: u64,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub reference: Option<String>,
    /// Minor units.
    pub amount: u64,
    pub status: SettlementLineStatus,
    /// The rule that matched it.
    pub rule: Option<MatchRule>,
    /// The transfers it matched (several for a netted line), or the one its reference names.
    pub transfer_ids: Vec<Uuid>,
    /// Mismatched: the line's amount minus the transfer's (minor units).
    pub difference: Option<i64>,
    /// Already reconciled: by which reconciliation.
    pub reconciled_by: Option<Uuid>,
}

/// A transfer of the period that no line took.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
pub struct UnmatchedTransfer {
    pub transfer_id: Uuid,
    /// RFC 3339.
    pub timestamp: String,
    pub amount: u64,
    pub reference: Option<String>,
}

/// A line that could not be read.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
pub struct RejectedSettlementLine {
    pub line: u64,
    pub reason: String,
}

/// Counts and sums (minor units).
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
pub struct ReconciliationTotals {
    pub lines: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub already_reconciled: u64,
    pub unmatched_lines: u64,
    pub unmatched_transfers: u64,
    pub rejected_lines: u64,
    /// The lines read, summed.
    pub settled_amount: u64,
    pub matched_amount: u64,
    /// The mismatched lines' differences, summed (line minus ledger).
    pub difference: i64,
    pub unmatched_lines_amount: u64,
    pub unmatched_transfers_amount: u64,
    /// Unmatched lines and transfers older than the overdue limit when it was made.
    pub overdue: u64,
}

/// A reconciliation's report.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
pub struct ReconciliationReport {
    pub id: Uuid,
    pub account: SettlementAccount,
    pub currency: String,
    /// RFC 3339.
    pub created_at: String,
    /// The file's first and last day (`YYYY-MM-DD`).
    pub period_from: String,
    pub period_to: String,
    pub rules: Vec<MatchRule>,
    pub window_days: u32,
    pub summary: ReconciliationTotals,
    /// Every line read, in file order.
    pub lines: Vec<SettlementLineReport>,
    pub unmatched_transfers: Vec<UnmatchedTransfer>,
    pub rejected: Vec<RejectedSettlementLine>,
}

/// A reconciliation in a list: its counts.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReconciliationSummary {
    pub id: Uuid,
    pub account: String,
    pub currency: String,
    pub created_at: String,
    pub lines: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub unmatched_lines: u64,
    pub unmatched_transfers: u64,
}

/// The reconciliation service.
#[derive(Debug)]
pub struct Reconciliations {
    store: Store,
    wallets: std::sync::Arc<Wallets>,
    /// Days after which an unmatched line or transfer is reported by event.
    pub overdue_days: u32,
}

impl Reconciliations {
    pub fn new(store: Store, wallets: std::sync::Arc<Wallets>, overdue_days: u32) -> Self {
        Self { store, wallets, overdue_days }
    }

    /// Reads, matches and records `upload`; the report.
    pub async fn reconcile(&self, upload: &Upload) -> Result<ReconciliationReport, ReconcileError> {
        let (lines, rejected) = read(upload)?;
        // Another reconciliation may mark the same transfers between our read and our
        // write: read again once, then give up.
        for _ in 0..2 {
            let now = store::now_ns();
            let (report, marks, events) = self.matched(upload, &lines, &rejected, now).await?;
            let row = ReconciliationRow {
                id: report.id,
                account: upload.account.as_str().to_owned(),
                currency: upload.currency.code().to_owned(),
                lines: report.summary.lines,
                matched: report.summary.matched,
                mismatched: report.summary.mismatched,
                unmatched_lines: report.summary.unmatched_lines,
                unmatched_transfers: report.summary.unmatched_transfers,
                report: Some(serde_json::to_string(&report).expect("a report serialises")),
                created_at: now,
            };
            if self.store.insert_reconciliation(&row, &marks, &events).await? {
                metrics::counter!("coffer_reconciliations_total", "account" => upload.account.as_str())
                    .increment(1);
                return Ok(report);
            }
        }
        Err(ReconcileError::Conflict)
    }

    /// Matches `lines` against the ledger as it is `now`: the report, the transfers to
    /// mark and the events to emit.
    async fn matched(
        &self,
        upload: &Upload,
        lines: &[Line],
        rejected: &[RejectedSettlementLine],
        now: u64,
    ) -> Result<(ReconciliationReport, Vec<(Uuid, u64)>, Vec<store::NewEvent>), ReconcileError> {
        let first_day = lines.iter().map(|line| line.date).min().expect("at least one line");
        let last_day = lines.iter().map(|line| line.date).max().expect("at least one line");
        let window = i64::from(upload.window_days) * DAY_NS;
        let read_from = u64::try_from(first_day - window).unwrap_or(0);
        let read_to = u64::try_from(last_day + DAY_NS + window).unwrap_or(0);
        let items = self.items(upload, read_from, read_to).await?;
        let matching = matching::reconcile(lines, &items, &upload.rules, upload.window_days);

        let id = Uuid::now_v7();
        let overdue_before = i64::try_from(now).unwrap_or(i64::MAX) - i64::from(self.overdue_days) * DAY_NS;
        let mut summary =
            ReconciliationTotals { rejected_lines: rejected.len() as u64, ..ReconciliationTotals::default() };
        let mut marks = Vec::new();
        // Unmatched lines and transfers older than the limit: how many of each, and the
        // oldest time among them.
        let (mut overdue_lines, mut overdue_transfers) = (0u64, 0u64);
        let mut oldest_overdue: Option<i64> = None;
        let mut overdue = |at: i64| {
            let late = at < overdue_before;
            if late {
                oldest_overdue = Some(oldest_overdue.map_or(at, |oldest| oldest.min(at)));
            }
            late
        };
        let transfer_uuid = |item: usize| Uuid::from_u128(items[item].transfer_id);
        let mut line_reports = Vec::with_capacity(lines.len());
        for (line, outcome) in lines.iter().zip(&matching.outcomes) {
            summary.lines += 1;
            summary.settled_amount += line.amount;
            let mut report = SettlementLineReport {
                line: line.number as u64,
                date: day_text(line.date),
                reference: line.reference.clone(),
                amount: line.amount,
                status: SettlementLineStatus::Unmatched,
                rule: None,
                transfer_ids: Vec::new(),
                difference: None,
                reconciled_by: None,
            };
            match outcome {
                Outcome::Matched { rule, items: matched } => {
                    summary.matched += 1;
                    summary.matched_amount += line.amount;
                    report.status = SettlementLineStatus::Matched;
                    report.rule = Some(*rule);
                    report.transfer_ids = matched.iter().map(|item| transfer_uuid(*item)).collect();
                    marks.extend(report.transfer_ids.iter().map(|id| (*id, line.number as u64)));
                }
                Outcome::Mismatched { item, difference } => {
                    summary.mismatched += 1;
                    summary.difference = summary.difference.saturating_add(*difference);
                    report.status = SettlementLineStatus::Mismatched;
                    report.rule = Some(MatchRule::Reference);
                    report.transfer_ids = vec![transfer_uuid(*item)];
                    report.difference = Some(*difference);
                }
                Outcome::AlreadyReconciled { item, by } => {
                    summary.already_reconciled += 1;
                    report.status = SettlementLineStatus::AlreadyReconciled;
                    report.transfer_ids = vec![transfer_uuid(*item)];
                    report.reconciled_by = Some(*by);
                }
                Outcome::Unmatched => {
                    summary.unmatched_lines += 1;
                    summary.unmatched_lines_amount += line.amount;
                    overdue_lines += u64::from(overdue(line.date));
                }
            }
            line_reports.push(report);
        }
        // Only the period's own transfers are reported unmatched: those in the window's
        // margin may belong to the files before and after.
        let period = first_day..last_day + DAY_NS;
        let mut unmatched_transfers = Vec::new();
        for item in matching.unmatched_items {
            let item = &items[item];
            let at = i64::try_from(item.timestamp).unwrap_or(i64::MAX);
            if period.contains(&at) {
                summary.unmatched_transfers += 1;
                summary.unmatched_transfers_amount += item.amount;
                overdue_transfers += u64::from(overdue(at));
                unmatched_transfers.push(UnmatchedTransfer {
                    transfer_id: Uuid::from_u128(item.transfer_id),
                    timestamp: crate::rfc3339(item.timestamp),
                    amount: item.amount,
                    reference: item.reference.clone(),
                });
            }
        }
        summary.overdue = overdue_lines + overdue_transfers;
        let mut events = Vec::new();
        if let Some(oldest) = oldest_overdue {
            let data = ReconciliationUnmatchedData {
                reconciliation_id: id,
                account: upload.account.as_str().to_owned(),
                currency: upload.currency.code().to_owned(),
                overdue_lines,
                overdue_transfers,
                oldest: day_text(oldest),
            };
            tracing::warn!(reconciliation = %id, overdue = summary.overdue, "reconciliation left old items unmatched");
            events.push(crate::events::event(
                EventType::ReconciliationUnmatched,
                None,
                &format!("reconciliation/{id}"),
                &data,
            ));
        }
        let report = ReconciliationReport {
            id,
            account: upload.account,
            currency: upload.currency.code().to_owned(),
            created_at: crate::rfc3339(now),
            period_from: day_text(first_day),
            period_to: day_text(last_day),
            rules: upload.rules.clone(),
            window_days: upload.window_days,
            summary,
            lines: line_reports,
            unmatched_transfers,
            rejected: rejected.to_vec(),
        };
        Ok((report, marks, events))
    }

    /// The posting transfers on the account in `from..to`, with their references and
    /// whether they were reconciled before.
    async fn items(&self, upload: &Upload, from: u64, to: u64) -> Result<Vec<Item>, ReconcileError> {
        let account = self
            .wallets
            .system_account(upload.currency, upload.account.code())
            .await
            .map_err(|error| ReconcileError::Ledger(error.to_string()))?;
        let mut transfers = Vec::new();
        let mut next = from.max(1);
        loop {
            let filter = AccountFilter {
                account_id: account,
                timestamp_min: next,
                timestamp_max: to.saturating_sub(1),
                limit: PAGE,
                debits: upload.account == SettlementAccount::CardSettlement,
                credits: upload.account == SettlementAccount::Payouts,
                reversed: false,
            };
            let page = self.store.account_transfers(&filter).await?;
            let full = page.len() == PAGE as usize;
            if let Some(last) = page.last() {
                next = last.timestamp + 1;
            }
            let not_posting = TransferFlags::PENDING.union(TransferFlags::VOID_PENDING_TRANSFER);
            transfers.extend(page.into_iter().filter(|transfer| !transfer.flags.intersects(not_posting)));
            if transfers.len() > TRANSFERS_MAX {
                return Err(ReconcileError::TooManyTransfers);
            }
            if !full {
                break;
            }
        }
        // A payment finishes (updated_at) just before its transfer posts: a day's margin
        // either side finds every reference of the transfers read.
        let payments = self
            .store
            .succeeded_payments_between(
                upload.account.payments(),
                upload.currency.code(),
                from.saturating_sub(DAY_NS as u64),
                to.saturating_add(DAY_NS as u64),
                u32::try_from(TRANSFERS_MAX + 1).unwrap_or(u32::MAX),
            )
            .await?;
        let references: HashMap<u128, String> = payments
            .into_iter()
            .filter_map(|payment| Some((upload.account.transfer_of(payment.id), payment.provider_id?)))
            .collect();
        let ids: Vec<Uuid> = transfers.iter().map(|transfer| Uuid::from_u128(transfer.id)).collect();
        let reconciled = self.store.reconciled_by(&ids).await?;
        Ok(transfers
            .into_iter()
            .map(|transfer| Item {
                transfer_id: transfer.id,
                timestamp: transfer.timestamp,
                amount: transfer.amount,
                reference: references.get(&transfer.id).cloned(),
                reconciled_by: reconciled.get(&Uuid::from_u128(transfer.id)).copied(),
            })
            .collect())
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<ReconciliationReport>, StoreError> {
        let Some(row) = self.store.reconciliation(id).await? else { return Ok(None) };
        let text = row.report.unwrap_or_default();
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| StoreError::Corrupt(format!("reconciliation {id}'s report: {error}")))
    }

    pub async fn latest(&self, limit: u32) -> Result<Vec<ReconciliationSummary>, StoreError> {
        Ok(self
            .store
            .reconciliations(limit)
            .await?
            .into_iter()
            .map(|row| ReconciliationSummary {
                id: row.id,
                account: row.account,
                currency: row.currency,
                created_at: crate::rfc3339(row.created_at),
                lines: row.lines,
                matched: row.matched,
                mismatched: row.mismatched,
                unmatched_lines: row.unmatched_lines,
                unmatched_transfers: row.unmatched_transfers,
            })
            .collect())
    }
}

/// The file's lines, and those rejected with why.
fn read(upload: &Upload) -> Result<(Vec<Line>, Vec<RejectedSettlementLine>), ReconcileError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(upload.delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(upload.csv.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| ReconcileError::File(format!("the header line cannot be read: {error}")))?
        .clone();
    let column = |name: &str, what: &str| {
        headers
            .iter()
            .position(|header| header.eq_ignore_ascii_case(name))
            .ok_or_else(|| ReconcileError::File(format!("no `{name}` column for the {what}")))
    };
    let columns = &upload.columns;
    let date = column(&columns.date, "date")?;
    let amount = column(&columns.amount, "amount")?;
    let reference = columns.reference.as_deref().map(|name| column(name, "reference")).transpose()?;
    let currency = columns.currency.as_deref().map(|name| column(name, "currency")).transpose()?;
    let mut lines = Vec::new();
    let mut rejected = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let number = index + 2;
        if lines.len() + rejected.len() >= LINES_MAX {
            return Err(ReconcileError::File(format!("at most {LINES_MAX} lines per file")));
        }
        let parsed = record.map_err(|error| format!("unreadable: {error}")).and_then(|record| {
            let cell = |at: Option<usize>| at.and_then(|at| record.get(at)).filter(|text| !text.is_empty());
            if let Some(code) = cell(currency)
                && !code.eq_ignore_ascii_case(upload.currency.code())
            {
                return Err(format!("in {code}, not {}", upload.currency));
            }
            let date = parse_date(cell(Some(date)).ok_or("no date")?, upload.date_format)?;
            let amount = parse_amount(
                cell(Some(amount)).ok_or("no amount")?,
                upload.decimal,
                upload.currency.exponent(),
            )?;
            let amount = u64::try_from(amount)
                .ok()
                .filter(|amount| *amount > 0)
                .ok_or("not a positive amount (refunds and chargebacks are not reconciled here)")?;
            let reference = cell(reference).map(str::to_owned);
            if reference.as_ref().is_some_and(|reference| reference.chars().count() > 200) {
                return Err("a reference longer than 200 characters".to_owned());
            }
            Ok(Line { number, date, amount, reference })
        });
        match parsed {
            Ok(line) => lines.push(line),
            Err(reason) => rejected.push(RejectedSettlementLine { line: number as u64, reason }),
        }
    }
    if lines.is_empty() {
        return Err(ReconcileError::File("no line of the file could be read".to_owned()));
    }
    Ok((lines, rejected))
}

fn day_text(nanos: i64) -> String {
    let date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_or_else(|_| time::Date::MIN, |time| time.date());
    format!("{date}")
}

/// A settlement file in the mock provider's format (`date,reference,amount,currency`):
/// one line per charge or payout, or with `netted` one line per day (reference
/// `batch_YYYYMMDD`, the day's amounts summed), as a bank that pays a day out at once.
pub fn settlement_csv(settled: &[Settled], currency: Currency, netted: bool) -> String {
    let mut out = String::from("date,reference,amount,currency\n");
    let day_of = |settled: &Settled| day_text(i64::try_from(settled.at).unwrap_or(i64::MAX));
    if netted {
        let mut days: Vec<(String, u64)> = Vec::new();
        for settled in settled {
            let day = day_of(settled);
            match days.last_mut() {
                Some((last, sum)) if *last == day => *sum += settled.amount,
                _ => days.push((day, settled.amount)),
            }
        }
        for (day, sum) in days {
            let reference = format!("batch_{}", day.replace('-', ""));
            out.push_str(&format!(
                "{day},{reference},{},{}\n",
                currency.major(i128::from(sum)),
                currency.code()
            ));
        }
    } else {
        for settled in settled {
            let amount = currency.major(i128::from(settled.amount));
            out.push_str(&format!(
                "{},{},{amount},{}\n",
                day_of(settled),
                settled.reference,
                currency.code()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(csv: &str) -> Upload {
        Upload {
            account: SettlementAccount::CardSettlement,
            currency: Currency::parse("USD").unwrap(),
            csv: csv.to_owned(),
            columns: SettlementColumns::default(),
            date_format: DateFormat::Iso,
            decimal: '.',
            delimiter: b',',
            rules: MatchRule::ALL.to_vec(),
            window_days: 2,
        }
    }

    #[test]
    fn lines_are_read_and_bad_ones_rejected_with_why() {
        let csv = "Date,Reference,Amount,Currency\n\
                   2026-03-01,ch_1,12.34,USD\n\
                   2026-03-01,ch_2,5,usd\n\
                   2026-03-02,ch_3,1.00,EUR\n\
                   2026-03-02,ch_4,-3.00,USD\n\
                   nonsense,ch_5,1.00,USD\n";
        let (lines, rejected) = read(&upload(csv)).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].number, lines[0].amount, lines[0].reference.as_deref()),
            (2, 1234, Some("ch_1"))
        );
        assert_eq!(lines[1].amount, 500);
        assert_eq!(rejected.iter().map(|line| line.line).collect::<Vec<_>>(), [4, 5, 6]);
        assert!(rejected[0].reason.contains("EUR"), "{rejected:?}");
        assert!(rejected[1].reason.contains("positive"), "{rejected:?}");
    }

    #[test]
    fn a_file_without_its_columns_or_lines_is_refused() {
        assert!(
            matches!(read(&upload("when,amount\n2026-03-01,1\n")), Err(ReconcileError::File(text)) if text.contains("`date`"))
        );
        assert!(matches!(read(&upload("date,reference,amount,currency\n")), Err(ReconcileError::File(_))));
    }

    #[test]
    fn settlement_files_round_trip_through_the_reader() {
        let usd = Currency::parse("USD").unwrap();
        let day = |d: u64| d * DAY_NS as u64;
        let settled = |reference: &str, amount: u64, at: u64| Settled {
            account: SettlementAccount::Payouts,
            reference: reference.into(),
            amount,
            currency: "USD".into(),
            at,
        };
        let all = [
            settled("po_a", 150, day(20_000) + 5),
            settled("po_b", 2, day(20_000) + 9),
            settled("po_c", 1_000, day(20_001)),
        ];
        let plain = settlement_csv(&all, usd, false);
        assert_eq!(
            plain,
            "date,reference,amount,currency\n2024-10-04,po_a,1.50,USD\n2024-10-04,po_b,0.02,USD\n2024-10-05,po_c,10.00,USD\n"
        );
        let netted = settlement_csv(&all, usd, true);
        assert_eq!(
            netted,
            "date,reference,amount,currency\n2024-10-04,batch_20241004,1.52,USD\n2024-10-05,batch_20241005,10.00,USD\n"
        );
        let (lines, rejected) = read(&upload(&netted)).unwrap();
        assert!(rejected.is_empty());
        assert_eq!(lines.iter().map(|line| line.amount).collect::<Vec<_>>(), [152, 1_000]);
    }
}
