//! Reading the whole database for `coffer verify`, consistently and in bounded memory:
//! one read-only transaction (a snapshot, so a server may keep writing), rows in pages of
//! at most [`AUDIT_PAGE_MAX`], each page handed to the caller before the next is read.
//!
//! The order is the one `ledger::audit` needs: the totals, every account by id, every
//! transfer by timestamp (with its pending status and the balance snapshots taken at its
//! instant; each page preceded by the hash chain's links it may need), then every wallet
//! with its ledger account, then transfer notes whose transfer does not exist.

use ledger::Account;
use ledger::audit::StoredTransfer;
use ledger::chain::Link;
use uuid::Uuid;

use crate::BeginWrite as _;
use crate::codec::{
    ACCOUNT_COLUMNS, AccountRow, LINK_COLUMNS, LinkRow, TRANSFER_COLUMNS_T, TransferRow, saturating, unsigned,
};
use crate::{Backend, Result, Store, StoreError, WalletType, with_pool};

/// Rows per page at most.
pub const AUDIT_PAGE_MAX: u32 = 4096;

/// A wallet and what its ledger account looks like (`None` fields: no such account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletAccount {
    pub wallet_id: Uuid,
    pub wallet_type: WalletType,
    pub currency: String,
    /// The account's (flags, code, ledger), when it exists.
    pub account: Option<(u16, u16, u32)>,
}

/// One step of a scan.
#[derive(Debug)]
pub enum Scanned<'a> {
    /// First, how many rows the two long parts hold (for progress).
    Totals {
        accounts: u64,
        transfers: u64,
    },
    Accounts(&'a [Account]),
    /// Links of the hash chain, in order, each before the first transfer it covers.
    Links(&'a [Link]),
    Transfers(&'a [StoredTransfer]),
    Wallets(&'a [WalletAccount]),
    /// Ids of transfer notes that name no transfer.
    OrphanNotes(&'a [Uuid]),
}

#[derive(sqlx::FromRow)]
struct AuditTransferRow {
    #[sqlx(flatten)]
    transfer: TransferRow,
    debit_debits_posted: Option<i64>,
    debit_credits_posted: Option<i64>,
    credit_debits_posted: Option<i64>,
    credit_credits_posted: Option<i64>,
}

impl AuditTransferRow {
    fn decode(self) -> Result<StoredTransfer> {
        let snapshot = |debits: Option<i64>, credits: Option<i64>| -> Result<Option<(u64, u64)>> {
            match (debits, credits) {
                (Some(debits), Some(credits)) => {
                    Ok(Some((unsigned(debits, "snapshot debits")?, unsigned(credits, "snapshot credits")?)))
                }
                _ => Ok(None),
            }
        };
        let debit_posted_after = snapshot(self.debit_debits_posted, self.debit_credits_posted)?;
        let credit_posted_after = snapshot(self.credit_debits_posted, self.credit_credits_posted)?;
        let (transfer, status) = self.transfer.decode()?;
        Ok(StoredTransfer { transfer, status, debit_posted_after, credit_posted_after })
    }
}

#[derive(sqlx::FromRow)]
struct WalletAccountRow {
    id: Uuid,
    #[sqlx(rename = "type")]
    kind: String,
    currency: String,
    flags: Option<i32>,
    code: Option<i32>,
    ledger: Option<i64>,
}

impl WalletAccountRow {
    fn decode(self) -> Result<WalletAccount> {
        let wallet_type = WalletType::from_name(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown wallet type {}", self.kind)))?;
        let account = match (self.flags, self.code, self.ledger) {
            (Some(flags), Some(code), Some(ledger)) => Some((
                u16::try_from(flags).map_err(|_| StoreError::Corrupt(format!("account flags {flags}")))?,
                u16::try_from(code).map_err(|_| StoreError::Corrupt(format!("account code {code}")))?,
                u32::try_from(ledger).map_err(|_| StoreError::Corrupt(format!("account ledger {ledger}")))?,
            )),
            _ => None,
        };
        Ok(WalletAccount { wallet_id: self.id, wallet_type, currency: self.currency, account })
    }
}

impl Store {
    /// Reads everything `coffer verify` checks, in one snapshot, page by page
    /// (`page` rows at most, up to [`AUDIT_PAGE_MAX`]), calling `visit` with each.
    pub async fn audit_scan(&self, page: u32, mut visit: impl FnMut(Scanned<'_>) + Send) -> Result<()> {
        let limit = i64::from(page.clamp(1, AUDIT_PAGE_MAX));
        let postgres = self.backend() == Backend::Postgres;
        let accounts_sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id > $1 ORDER BY id LIMIT $2");
        let transfers_sql = format!(
            "SELECT {TRANSFER_COLUMNS_T}, p.status, \
             bd.debits_posted AS debit_debits_posted, bd.credits_posted AS debit_credits_posted, \
             bc.debits_posted AS credit_debits_posted, bc.credits_posted AS credit_credits_posted \
             FROM transfers t \
             LEFT JOIN pending_transfers p ON p.id = t.id \
             LEFT JOIN account_balances bd ON bd.account_id = t.debit_account_id AND bd.timestamp = t.timestamp \
             LEFT JOIN account_balances bc ON bc.account_id = t.credit_account_id AND bc.timestamp = t.timestamp \
             WHERE t.timestamp > $1 ORDER BY t.timestamp LIMIT $2"
        );
        let links_sql = format!(
            "SELECT {LINK_COLUMNS} FROM ledger_chain WHERE seq > $1 AND first_timestamp <= $2 ORDER BY seq LIMIT $3"
        );
        let wallets_sql = "SELECT w.id, w.type, w.currency, a.flags, a.code, a.ledger \
             FROM wallets w LEFT JOIN accounts a ON a.id = w.id WHERE w.id > $1 ORDER BY w.id LIMIT $2";
        let orphans_sql = "SELECT n.transfer_id FROM transfer_notes n LEFT JOIN transfers t ON t.id = n.transfer_id \
             WHERE t.id IS NULL AND n.transfer_id > $1 ORDER BY n.transfer_id LIMIT $2";
        with_pool!(self, read, |pool, sql| {
            let mut tx = pool.begin().await?;
            if postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
            }
            let (accounts, transfers): (i64, i64) = sqlx::query_as(sql(
                "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM transfers)",
            ))
            .fetch_one(&mut *tx)
            .await?;
            visit(Scanned::Totals {
                accounts: unsigned(accounts, "account count")?,
                transfers: unsigned(transfers, "transfer count")?,
            });

            // Pages of `$row` ordered by a key, from `$start`, each decoded by `$decode`
            // and handed to `visit` as `$scanned`.
            macro_rules! pages {
                ($query:expr, $row:ty, $start:expr, |$last:ident| $key:expr, $decode:expr, $scanned:path) => {{
                    let mut after = $start;
                    loop {
                        let rows: Vec<$row> =
                            sqlx::query_as(sql($query)).bind(after).bind(limit).fetch_all(&mut *tx).await?;
                        let Some($last) = rows.last() else { break };
                        after = $key;
                        let full = rows.len() as i64 == limit;
                        let page = rows.into_iter().map($decode).collect::<Result<Vec<_>>>()?;
                        visit($scanned(&page));
                        if !full {
                            break;
                        }
                    }
                }};
            }
            pages!(
                &accounts_sql,
                AccountRow,
                Uuid::nil(),
                |last| last.id,
                Account::try_from,
                Scanned::Accounts
            );
            // The hash chain's links that begin at or before `$until`, after those given.
            let mut link_seq = 0i64;
            macro_rules! links_until {
                ($until:expr) => {
                    loop {
                        let rows: Vec<LinkRow> = sqlx::query_as(sql(&links_sql))
                            .bind(link_seq)
                            .bind($until)
                            .bind(limit)
                            .fetch_all(&mut *tx)
                            .await?;
                        let Some(last) = rows.last() else { break };
                        link_seq = last.seq;
                        let full = rows.len() as i64 == limit;
                        let page = rows.into_iter().map(Link::try_from).collect::<Result<Vec<_>>>()?;
                        visit(Scanned::Links(&page));
                        if !full {
                            break;
                        }
                    }
                };
            }
            // Transfers, each page after the links its transfers may belong to.
            let mut after = 0i64;
            loop {
                let rows: Vec<AuditTransferRow> =
                    sqlx::query_as(sql(&transfers_sql)).bind(after).bind(limit).fetch_all(&mut *tx).await?;
                let Some(last) = rows.last() else { break };
                after = last.transfer.timestamp;
                let full = rows.len() as i64 == limit;
                links_until!(after);
                let page = rows.into_iter().map(AuditTransferRow::decode).collect::<Result<Vec<_>>>()?;
                visit(Scanned::Transfers(&page));
                if !full {
                    break;
                }
            }
            // Links beyond the last transfer (whose transfers are missing).
            links_until!(i64::MAX);
            pages!(
                wallets_sql,
                WalletAccountRow,
                Uuid::nil(),
                |last| last.id,
                WalletAccountRow::decode,
                Scanned::Wallets
            );
            pages!(
                orphans_sql,
                (Uuid,),
                Uuid::nil(),
                |last| last.0,
                |(id,): (Uuid,)| Ok(id),
                Scanned::OrphanNotes
            );
            tx.rollback().await?;
            Ok(())
        })
    }
}

/// Runs kept in a listing at most.
pub const VERIFY_RUNS_PAGE_MAX: u32 = 100;

/// A run of the books' check.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct VerifyRunRow {
    pub id: Uuid,
    /// `api` or `schedule`.
    pub origin: String,
    /// `running`, `clean`, `findings` or `failed`.
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The JSON report, once there is one.
    pub report: Option<String>,
    pub error: Option<String>,
}

const VERIFY_RUN_COLUMNS: &str = "id, origin, status, started_at, finished_at, report, error";

impl Store {
    /// Records a run that has started.
    pub async fn insert_verify_run(&self, id: Uuid, origin: &str, started_at: u64) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            sqlx::query(sql(
                "INSERT INTO verify_runs (id, origin, status, started_at) VALUES ($1, $2, 'running', $3)",
            ))
            .bind(id)
            .bind(origin)
            .bind(saturating(started_at))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Records a run's result (`clean`, `findings` or `failed`), with its events (written
    /// with it, so a finding is announced exactly when it is recorded).
    pub async fn finish_verify_run(
        &self,
        id: Uuid,
        status: &str,
        finished_at: u64,
        report: Option<&str>,
        error: Option<&str>,
        events: &[crate::NewEvent],
    ) -> Result<()> {
        with_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sql(
                "UPDATE verify_runs SET status = $2, finished_at = $3, report = $4, error = $5 \
                 WHERE id = $1 AND status = 'running'",
            ))
            .bind(id)
            .bind(status)
            .bind(saturating(finished_at))
            .bind(report)
            .bind(error)
            .execute(&mut *tx)
            .await?;
            crate::outbox::insert_events!(tx, sql, events);
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn verify_run(&self, id: Uuid) -> Result<Option<VerifyRunRow>> {
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&format!("SELECT {VERIFY_RUN_COLUMNS} FROM verify_runs WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// The latest runs, newest first (`limit` at most [`VERIFY_RUNS_PAGE_MAX`]).
    pub async fn verify_runs(&self, limit: u32) -> Result<Vec<VerifyRunRow>> {
        with_pool!(self, read, |pool, sql| {
            Ok(sqlx::query_as(sql(&format!(
                "SELECT {VERIFY_RUN_COLUMNS} FROM verify_runs ORDER BY started_at DESC, id DESC LIMIT $1"
            )))
            .bind(i64::from(limit.clamp(1, VERIFY_RUNS_PAGE_MAX)))
            .fetch_all(pool)
            .await?)
        })
    }
}

impl Store {
    /// The latest link of the ledger's hash chain (`None` before the first batch with
    /// transfers).
    pub async fn chain_head(&self) -> Result<Option<Link>> {
        with_pool!(self, read, |pool, sql| {
            let row: Option<LinkRow> = sqlx::query_as(sql(&format!(
                "SELECT {LINK_COLUMNS} FROM ledger_chain ORDER BY seq DESC LIMIT 1"
            )))
            .fetch_optional(pool)
            .await?;
            row.map(Link::try_from).transpose()
        })
    }
}
