//! The reqwest client for Coffer's ledger API (`/v1/ledger/*`), as cheap as reqwest allows:
//! request bodies are written straight into a `String` (no intermediate `Value`), and
//! batch results are parsed borrowing the body, reading only `index` and `result`.
//! The client shares the machine's two cores with the server, so every microsecond it
//! spends is one the server does not get: `batch`, the setup and the checks use this
//! one; `single`, `reads` and `wallet` use the lighter `wire` client unless told not to.
//! [`Api::parse_batch`] and [`AccountBalances`] serve both.

use std::{fmt::Write as _, time::Duration};

use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use uuid::Uuid;

use crate::workload::{CODE, LEDGER};

/// Longest a benchmark request may take before it counts as an error: a little longer
/// than the server's own default request timeout (30 s), so the server answers first.
pub const REQUEST_TIMEOUT_MS: u64 = 35_000;
/// Bytes of JSON per transfer in a request body, rounded up: three UUIDs, the field
/// names, and numbers up to the funding amount (205 bytes with its comma). Used to size
/// body buffers once, so a batch body never reallocates while it is written.
const TRANSFER_JSON_BYTES: usize = 208;

/// A client for one Coffer server.
#[derive(Clone, Debug)]
pub struct Api {
    client: reqwest::Client,
    base_url: String,
    authorization: String,
}

/// The fields of an account the checks read.
#[derive(Clone, Debug, Deserialize)]
pub struct AccountView {
    pub id: Uuid,
    pub ledger: u32,
    pub flags: Vec<String>,
    pub debits_pending: u64,
    pub debits_posted: u64,
    pub credits_pending: u64,
    pub credits_posted: u64,
}

/// The fields of an account the `reads` scenario checks in every answer: parsed
/// borrowing the body, every other field skipped.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub struct AccountBalances {
    pub id: Uuid,
    pub debits_posted: u64,
    pub credits_posted: u64,
}

impl From<&AccountView> for AccountBalances {
    fn from(account: &AccountView) -> Self {
        Self { id: account.id, debits_posted: account.debits_posted, credits_posted: account.credits_posted }
    }
}

/// The fields of a transfer the checks read.
#[derive(Clone, Debug, Deserialize)]
pub struct TransferView {
    pub id: Uuid,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub amount: u64,
}

#[derive(Deserialize)]
struct BatchResults<'a> {
    #[serde(borrow)]
    results: Vec<EventResult<'a>>,
}

#[derive(Deserialize)]
struct EventResult<'a> {
    index: usize,
    #[serde(borrow)]
    result: &'a str,
}

/// How a batch fared: which events were applied (`ok`), and the first other result seen.
#[derive(Clone, Debug, Default)]
pub struct BatchOutcome {
    /// One entry per event, in order: was it `ok`?
    pub ok: Vec<bool>,
    /// The first result that was not `ok`, for the report.
    pub first_failure: Option<String>,
}

impl BatchOutcome {
    /// Events applied.
    pub fn ok_count(&self) -> u64 {
        self.ok.iter().filter(|ok| **ok).count() as u64
    }
}

impl Api {
    /// A client for the server at `base_url` (`http://host:port`) with `connections`
    /// keep-alive connections at most kept idle.
    pub fn new(base_url: &str, admin_key: &str, connections: usize) -> anyhow::Result<Self> {
        let client = coffer::notifications::http_client()
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            authorization: format!("Bearer {admin_key}"),
        })
    }

    /// The server's URL (`http://host:port`, no trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The `Authorization` header value the ledger API wants (`Bearer` and the admin key).
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// A body buffer big enough for `transfers` transfers.
    pub fn transfers_body(transfers: usize) -> String {
        String::with_capacity(2 + transfers * TRANSFER_JSON_BYTES)
    }

    /// Appends one transfer to a body started with `[` (the caller closes it with `]`).
    pub fn push_transfer(body: &mut String, id: u128, debit: u128, credit: u128, amount: u64) {
        if body.len() > 1 {
            body.push(',');
        }
        write!(
            body,
            r#"{{"id":"{}","debit_account_id":"{}","credit_account_id":"{}","amount":{amount},"ledger":{LEDGER},"code":{CODE}}}"#,
            Uuid::from_u128(id),
            Uuid::from_u128(debit),
            Uuid::from_u128(credit),
        )
        .expect("writing to a String cannot fail");
    }

    /// Creates accounts on the benchmark ledger: `(id, debits_must_not_exceed_credits)`.
    /// Fails unless every one is `ok`.
    pub async fn create_accounts(&self, accounts: &[(u128, bool)]) -> anyhow::Result<()> {
        let mut body = String::with_capacity(2 + accounts.len() * 120);
        body.push('[');
        for (index, (id, constrained)) in accounts.iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            let flags = if *constrained { r#"["debits_must_not_exceed_credits"]"# } else { "[]" };
            write!(
                body,
                r#"{{"id":"{}","ledger":{LEDGER},"code":{CODE},"flags":{flags}}}"#,
                Uuid::from_u128(*id)
            )
            .expect("writing to a String cannot fail");
        }
        body.push(']');
        let outcome = self.post_batch("/v1/ledger/accounts", body, accounts.len()).await?;
        ensure!(outcome.first_failure.is_none(), "creating accounts: {:?}", outcome.first_failure);
        Ok(())
    }

    /// Posts a transfers body holding `events` transfers; one outcome per transfer.
    pub async fn create_transfers(&self, body: String, events: usize) -> anyhow::Result<BatchOutcome> {
        self.post_batch("/v1/ledger/transfers", body, events).await
    }

    async fn post_batch(&self, path: &str, body: String, events: usize) -> anyhow::Result<BatchOutcome> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]));
        }
        Self::parse_batch(&bytes, events)
    }

    /// The outcome of a batch of `events` events from the body of a 2xx answer: exactly
    /// one result per event, in order, each `ok` or not.
    pub fn parse_batch(body: &[u8], events: usize) -> anyhow::Result<BatchOutcome> {
        let parsed: BatchResults<'_> = serde_json::from_slice(body).context("batch results")?;
        ensure!(parsed.results.len() == events, "{} results for {events} events", parsed.results.len());
        let mut outcome = BatchOutcome { ok: Vec::with_capacity(events), first_failure: None };
        for (position, result) in parsed.results.iter().enumerate() {
            ensure!(result.index == position, "result {position} has index {}", result.index);
            let ok = result.result == "ok";
            if !ok && outcome.first_failure.is_none() {
                outcome.first_failure = Some(result.result.to_owned());
            }
            outcome.ok.push(ok);
        }
        Ok(outcome)
    }

    /// The account `id`; an error when it does not exist.
    pub async fn account(&self, id: u128) -> anyhow::Result<AccountView> {
        let url = format!("{}/v1/ledger/accounts/{}", self.base_url, Uuid::from_u128(id));
        let response =
            self.client.get(url).header(reqwest::header::AUTHORIZATION, &self.authorization).send().await?;
        let status = response.status();
        ensure!(status.is_success(), "account {}: HTTP {status}", Uuid::from_u128(id));
        Ok(response.json().await?)
    }

    /// The server's `/metrics` page (Prometheus text).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let response = self.client.get(format!("{}/metrics", self.base_url)).send().await?;
        let status = response.status();
        ensure!(status.is_success(), "/metrics: HTTP {status}");
        Ok(response.text().await?)
    }

    /// The transfer `id`, or `None` when the server has no such transfer.
    pub async fn transfer(&self, id: u128) -> anyhow::Result<Option<TransferView>> {
        let url = format!("{}/v1/ledger/transfers/{}", self.base_url, Uuid::from_u128(id));
        let response =
            self.client.get(url).header(reqwest::header::AUTHORIZATION, &self.authorization).send().await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ensure!(status.is_success(), "transfer {}: HTTP {status}", Uuid::from_u128(id));
        Ok(Some(response.json().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_bodies_are_json_arrays_of_transfers() {
        let mut body = Api::transfers_body(2);
        body.push('[');
        Api::push_transfer(&mut body, 1, 2, 3, 4);
        Api::push_transfer(&mut body, 5, 6, 7, crate::workload::FUNDING_AMOUNT);
        body.push(']');
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 2);
        assert_eq!(parsed[1]["id"], Uuid::from_u128(5).to_string());
        assert_eq!(parsed[1]["amount"], crate::workload::FUNDING_AMOUNT);
        assert_eq!(parsed[0]["ledger"], LEDGER);
        assert!(body.len() <= 2 + 2 * TRANSFER_JSON_BYTES, "size estimate too small: {}", body.len());
    }
}
