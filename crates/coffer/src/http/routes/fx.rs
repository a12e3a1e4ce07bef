//! Currency conversion over HTTP: `GET /v1/fx/rates`, `POST /v1/fx/quotes` (a quote
//! between two of my wallets), `GET /v1/fx/quotes/{id}`, `POST /v1/fx/quotes/{id}/execute`
//! (with an `Idempotency-Key`), and the operators' `GET /v1/admin/fx/report`. The rules
//! are `crate::fx`'s.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use store::FxQuoteRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::fx::convert::{AMOUNT_MAX, AmountError, Fixed};
use crate::fx::{FxError, QuoteRequest, Target};
use crate::http::caller::{AdminUser, AuthUser};
use crate::http::{
    AppState,
    error::ApiError,
    extract::{Json, Path},
    idempotency::{self, IdempotencyKeyHeader},
    validate,
};
use crate::rfc3339;
use crate::wallets::Currency;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/fx/rates", get(get_rates))
        .route("/v1/fx/quotes", post(create_quote))
        .route("/v1/fx/quotes/{id}", get(get_quote))
        .route("/v1/fx/quotes/{id}/execute", post(execute_quote))
        .route("/v1/admin/fx/report", get(fx_report))
}

impl From<FxError> for ApiError {
    fn from(error: FxError) -> Self {
        use StatusCode as S;
        let detail = error.to_string();
        match error {
            FxError::WalletNotFound => ApiError::rejected(S::NOT_FOUND, "wallet_not_found", detail),
            FxError::QuoteNotFound => ApiError::rejected(S::NOT_FOUND, "fx_quote_not_found", detail),
            FxError::NoWalletInCurrency(_) => ApiError::field("/to_currency", detail),
            FxError::SameWallet => ApiError::rejected(S::UNPROCESSABLE_ENTITY, "same_wallet", detail),
            FxError::SameCurrency(_) => {
                ApiError::rejected(S::UNPROCESSABLE_ENTITY, "fx_same_currency", detail)
            }
            FxError::PairNotQuoted(..) => {
                ApiError::rejected(S::UNPROCESSABLE_ENTITY, "fx_pair_not_quoted", detail)
            }
            FxError::RatesStale { .. } => {
                ApiError::rejected(S::SERVICE_UNAVAILABLE, "fx_rates_stale", detail)
            }
            FxError::RatesUnavailable(_) => {
                ApiError::rejected(S::SERVICE_UNAVAILABLE, "fx_rates_unavailable", detail)
            }
            FxError::Amount(AmountError::TooSmall) => {
                ApiError::rejected(S::UNPROCESSABLE_ENTITY, "fx_amount_too_small", detail)
            }
            FxError::Amount(AmountError::TooLarge) => {
                ApiError::rejected(S::UNPROCESSABLE_ENTITY, "fx_amount_too_large", detail)
            }
            FxError::QuoteExpired => ApiError::rejected(S::CONFLICT, "fx_quote_expired", detail),
            FxError::InsufficientFunds => {
                ApiError::rejected(S::UNPROCESSABLE_ENTITY, "insufficient_funds", detail)
            }
            FxError::Commit(error) => error.into(),
            FxError::Store(error) => error.into(),
            FxError::Ledger(answer) => ApiError::Internal(anyhow::anyhow!("ledger answered {answer}")),
        }
    }
}

/// One currency's reference rate.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferenceRateView {
    pub currency: String,
    /// Units of it per unit of the base currency, as published.
    pub rate: String,
}

/// The rates quotes are made from now.
#[derive(Debug, Serialize, ToSchema)]
pub struct FxRatesView {
    /// The currency the rates are against (one unit of it).
    pub base: String,
    pub rates: Vec<ReferenceRateView>,
    /// `sandbox`, or `ecb:` and the reference file's path or URL.
    pub source: String,
    /// When the rates were valid (a reference file's date, at midnight UTC).
    pub as_of: String,
    pub age_seconds: u64,
    /// Taken off the mid rate in every quote, in basis points.
    pub spread_bps: u32,
    /// Charged on the amount sold, in basis points.
    pub fee_bps: u32,
    /// How long a quote may be executed.
    pub quote_ttl_seconds: u64,
}

/// The reference rates in force, with their source and age.
#[utoipa::path(get, path = "/v1/fx/rates", tag = "fx", security(("access_token" = [])),
    responses(
        (status = 200, body = FxRatesView),
        (status = 503, description = "fx_rates_stale or fx_rates_unavailable", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_rates(
    _user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<FxRatesView>, ApiError> {
    let view = state.fx.rates().await?;
    let settings = state.fx.settings();
    let mut rates: Vec<ReferenceRateView> = view
        .rates
        .rates
        .iter()
        .map(|(currency, rate)| ReferenceRateView { currency: currency.code().into(), rate: rate.text() })
        .collect();
    rates.sort_by(|a, b| a.currency.cmp(&b.currency));
    Ok(axum::Json(FxRatesView {
        base: view.rates.base.code().into(),
        rates,
        source: view.rates.source,
        as_of: rfc3339(view.rates.as_of),
        age_seconds: view.age_s,
        spread_bps: settings.spread_bps,
        fee_bps: settings.fee_bps,
        quote_ttl_seconds: settings.quote_ttl.as_secs(),
    }))
}

/// A quote to ask for: from one of my wallets to another of mine (named, or my default
/// wallet in a currency), fixing either the amount sold or the amount bought.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuote {
    pub from_wallet_id: Uuid,
    /// The wallet that buys; or give `to_currency`.
    #[serde(default)]
    pub to_wallet_id: Option<Uuid>,
    /// My default wallet in this currency buys; or give `to_wallet_id`.
    #[serde(default)]
    pub to_currency: Option<String>,
    /// Minor units of the from-wallet's currency to sell; or give `buy_amount`.
    #[serde(default)]
    pub sell_amount: Option<u64>,
    /// Minor units of the other currency to buy; or give `sell_amount`.
    #[serde(default)]
    pub buy_amount: Option<u64>,
}

/// A quote, and once executed, the conversion. Amounts in minor units of their currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct FxQuoteView {
    pub id: Uuid,
    /// `open` (may be executed), `expired`, or `executed`.
    pub status: QuoteStatus,
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Uuid,
    pub sell_currency: String,
    pub buy_currency: String,
    /// Which amount was fixed by the request: `sell` or `buy`.
    pub fixed: String,
    pub sell_amount: u64,
    pub buy_amount: u64,
    /// Taken from the from-wallet besides `sell_amount`, in its currency.
    pub fee: u64,
    /// What the from-wallet pays in all: `sell_amount` + `fee`.
    pub total_debit: u64,
    /// Units of the bought currency per unit of the sold one (major units), after the spread.
    pub rate: String,
    /// The same before the spread.
    pub mid_rate: String,
    pub spread_bps: u32,
    pub rate_source: String,
    pub rate_as_of: String,
    pub created_at: String,
    pub expires_at: String,
    /// When it was executed; `null` until then.
    #[schema(required = true)]
    pub executed_at: Option<String>,
}

/// Where a quote stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuoteStatus {
    Open,
    Expired,
    Executed,
}

fn quote_view(quote: FxQuoteRow) -> FxQuoteView {
    let status = match quote.executed_at {
        Some(_) => QuoteStatus::Executed,
        None if store::now_ns() > quote.expires_at => QuoteStatus::Expired,
        None => QuoteStatus::Open,
    };
    FxQuoteView {
        id: quote.id,
        status,
        from_wallet_id: quote.sell_wallet_id,
        to_wallet_id: quote.buy_wallet_id,
        sell_currency: quote.sell_currency,
        buy_currency: quote.buy_currency,
        fixed: quote.fixed,
        sell_amount: quote.sell_amount,
        buy_amount: quote.buy_amount,
        fee: quote.fee,
        total_debit: quote.sell_amount + quote.fee,
        rate: quote.rate,
        mid_rate: quote.mid_rate,
        spread_bps: quote.spread_bps,
        rate_source: quote.rate_source,
        rate_as_of: rfc3339(quote.rate_as_of),
        created_at: rfc3339(quote.created_at),
        expires_at: rfc3339(quote.expires_at),
        executed_at: quote.executed_at.map(rfc3339),
    }
}

/// Quote a conversion between two of my wallets. Nothing moves: execute the quote before
/// `expires_at` to convert. The rate is the mid rate less the spread; what I buy is
/// rounded down and what I sell for a fixed purchase rounded up, in minor units.
#[utoipa::path(post, path = "/v1/fx/quotes", tag = "fx", request_body = NewQuote,
    security(("access_token" = [])),
    responses(
        (status = 201, body = FxQuoteView),
        (status = 404, description = "wallet_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "same_wallet, fx_same_currency, fx_pair_not_quoted, fx_amount_too_small, fx_amount_too_large, or a field", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many money requests; see Retry-After", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "fx_rates_stale or fx_rates_unavailable", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_quote(
    user: AuthUser,
    State(state): State<AppState>,
    Json(request): Json<NewQuote>,
) -> Result<(StatusCode, axum::Json<FxQuoteView>), ApiError> {
    state.limits.money.check(user.customer_id).await?;
    let to = match (request.to_wallet_id, request.to_currency) {
        (Some(wallet), None) => Target::Wallet(wallet),
        (None, Some(code)) => Target::Currency(
            Currency::parse(&code)
                .ok_or_else(|| ApiError::field("/to_currency", "not a supported currency"))?,
        ),
        _ => {
            return Err(ApiError::field("/to_wallet_id", "give exactly one of to_wallet_id and to_currency"));
        }
    };
    let fixed = match (request.sell_amount, request.buy_amount) {
        (Some(amount), None) => Fixed::Sell(validate::amount("/sell_amount", amount, AMOUNT_MAX)?),
        (None, Some(amount)) => Fixed::Buy(validate::amount("/buy_amount", amount, AMOUNT_MAX)?),
        _ => return Err(ApiError::field("/sell_amount", "give exactly one of sell_amount and buy_amount")),
    };
    let request = QuoteRequest { from_wallet_id: request.from_wallet_id, to, fixed };
    let quote = state.fx.quote(user.customer_id, request).await?;
    Ok((StatusCode::CREATED, axum::Json(quote_view(quote))))
}

/// One of my quotes, with its status.
#[utoipa::path(get, path = "/v1/fx/quotes/{id}", tag = "fx", params(("id" = Uuid, Path)),
    security(("access_token" = [])),
    responses(
        (status = 200, body = FxQuoteView),
        (status = 404, description = "fx_quote_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn get_quote(
    user: AuthUser,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<FxQuoteView>, ApiError> {
    Ok(axum::Json(quote_view(state.fx.get(user.customer_id, id).await?)))
}

/// Execute one of my quotes before it expires: the sale, its fee and the purchase commit
/// together or not at all. A quote converts once: executing it again (with any key)
/// answers 200 with the conversion made before, and moves nothing.
#[utoipa::path(post, path = "/v1/fx/quotes/{id}/execute", tag = "fx",
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "Unique per request; retries reuse it")),
    security(("access_token" = [])),
    responses(
        (status = 200, description = "Executed before; nothing moved now", body = FxQuoteView),
        (status = 201, description = "Converted", body = FxQuoteView),
        (status = 404, description = "fx_quote_not_found", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "fx_quote_expired, or an idempotency conflict", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "insufficient_funds", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn execute_quote(
    user: AuthUser,
    key: IdempotencyKeyHeader,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    state.limits.money.check(user.customer_id).await?;
    let fx = state.fx.clone();
    let route = format!("POST /v1/fx/quotes/{id}/execute");
    idempotency::once(&state, user.customer_id, &key, &route, b"", || async move {
        let (quote, made) = fx.execute(user.customer_id, id).await?;
        let status = if made { StatusCode::CREATED } else { StatusCode::OK };
        Ok((status, serde_json::to_value(quote_view(quote)).expect("serialisable")))
    })
    .await
}

/// One currency in the operators' report. Minor units.
#[derive(Debug, Serialize, ToSchema)]
pub struct FxPositionView {
    pub currency: String,
    /// The house's FX account in the ledger: credits − debits.
    pub position: i64,
    /// Conversions that sold this currency to the house, and the amount.
    pub sold_count: u64,
    pub sold: u64,
    /// Conversions that bought it from the house, and the amount.
    pub bought_count: u64,
    pub bought: u64,
    /// `sold − bought`: what the position must be. `balanced` says whether it is.
    pub expected_position: i64,
    pub balanced: bool,
    /// Fees taken in this currency on conversions.
    pub fees: u64,
    /// What the spread earned in this currency (as the bought side).
    pub spread: u64,
}

/// The conversion report.
#[derive(Debug, Serialize, ToSchema)]
pub struct FxReport {
    pub currencies: Vec<FxPositionView>,
}

/// The house's FX positions per currency, what conversions sold and bought, and the spread
/// and fees earned (admin).
#[utoipa::path(get, path = "/v1/admin/fx/report", tag = "operations",
    security(("admin_api_key" = []), ("access_token" = [])),
    responses(
        (status = 200, body = FxReport),
        (status = 403, description = "Not an admin", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn fx_report(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Result<axum::Json<FxReport>, ApiError> {
    let clamp = |value: i128| i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX });
    let currencies = state
        .fx
        .positions()
        .await?
        .into_iter()
        .map(|position| {
            let totals = position.totals;
            let expected = i128::from(totals.sold) - i128::from(totals.bought);
            FxPositionView {
                currency: totals.currency,
                position: clamp(position.position),
                sold_count: totals.sold_count,
                sold: totals.sold,
                bought_count: totals.bought_count,
                bought: totals.bought,
                expected_position: clamp(expected),
                balanced: expected == position.position,
                fees: totals.fees,
                spread: totals.spread,
            }
        })
        .collect();
    Ok(axum::Json(FxReport { currencies }))
}
