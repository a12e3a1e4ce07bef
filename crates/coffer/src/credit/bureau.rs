//! Credit bureaus: the [`CreditBureau`] interface and the deterministic [`Sandbox`], the
//! only bureau Coffer ships (a real bureau needs a contract; its client implements the
//! same trait).
//!
//! The sandbox scores each customer from a hash of their id, so the same customer always
//! gets the same report, and lets a test choose a scenario by a tag in the email's local
//! part (`ada+thin-file@example.com`):
//!
//! - `+thin-file`: too little history to score; a report without a score.
//! - `+bureau-down`: the bureau is unavailable; every pull fails.
//! - `+score-drop` / `+score-rise`: each pull scores 40 points below / 35 above the last.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who a report is about.
#[derive(Clone, Debug)]
pub struct Subject {
    pub customer_id: Uuid,
    pub email: String,
}

/// The score's band (FICO's ranges), or none for a thin file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// 300–579.
    Poor,
    /// 580–669.
    Fair,
    /// 670–739.
    Good,
    /// 740–799.
    VeryGood,
    /// 800–850.
    Exceptional,
    /// Too little history to score.
    NoScore,
}

impl Band {
    pub fn of(score: Option<u16>) -> Self {
        match score {
            None => Self::NoScore,
            Some(score) if score < 580 => Self::Poor,
            Some(score) if score < 670 => Self::Fair,
            Some(score) if score < 740 => Self::Good,
            Some(score) if score < 800 => Self::VeryGood,
            Some(_) => Self::Exceptional,
        }
    }

    /// Its name on the wire (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poor => "poor",
            Self::Fair => "fair",
            Self::Good => "good",
            Self::VeryGood => "very_good",
            Self::Exceptional => "exceptional",
            Self::NoScore => "no_score",
        }
    }
}

/// What helps or hurts a score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Factor {
    /// `utilization`, `payment_history`, `credit_age`, `open_accounts` or `thin_file`.
    pub code: String,
    /// `positive` or `negative`.
    pub impact: String,
    pub description: String,
}

/// The credit accounts the bureau knows of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountsSummary {
    pub open_accounts: u32,
    /// Owed across them, in USD cents.
    pub total_balance: u64,
    /// Balances as a share of credit limits, percent.
    pub utilization_percent: u32,
    /// Payments made on time, percent.
    pub on_time_percent: u32,
    pub oldest_account_years: u32,
}

/// A bureau's report on one customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BureauReport {
    /// The bureau's name (`sandbox`).
    pub bureau: String,
    /// 300–850; `null` for a thin file.
    #[schema(required = true)]
    pub score: Option<u16>,
    pub band: Band,
    pub factors: Vec<Factor>,
    pub accounts: AccountsSummary,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum BureauError {
    #[error("the credit bureau is unavailable: {0}")]
    Unavailable(String),
}

/// A credit bureau.
pub trait CreditBureau: Send + Sync + std::fmt::Debug {
    /// The report on `subject`; `previous` is the score of their last report, if any.
    fn pull<'a>(
        &'a self,
        subject: &'a Subject,
        previous: Option<u16>,
    ) -> BoxFuture<'a, Result<BureauReport, BureauError>>;
}

/// The deterministic sandbox bureau.
#[derive(Debug, Default)]
pub struct Sandbox;

/// Whether the email's local part carries `+tag`.
fn tagged(email: &str, tag: &str) -> bool {
    let local = email.split('@').next().unwrap_or("");
    local.split('+').skip(1).any(|part| part.eq_ignore_ascii_case(tag))
}

impl CreditBureau for Sandbox {
    fn pull<'a>(
        &'a self,
        subject: &'a Subject,
        previous: Option<u16>,
    ) -> BoxFuture<'a, Result<BureauReport, BureauError>> {
        Box::pin(async move {
            if tagged(&subject.email, "bureau-down") {
                return Err(BureauError::Unavailable("the sandbox bureau is down for this customer".into()));
            }
            let digest = Sha256::digest(subject.customer_id.as_bytes());
            let seed = u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
            let pick = |shift: u32, modulo: u64| ((seed >> shift) % modulo) as u32;
            if tagged(&subject.email, "thin-file") {
                return Ok(BureauReport {
                    bureau: "sandbox".into(),
                    score: None,
                    band: Band::NoScore,
                    factors: vec![Factor {
                        code: "thin_file".into(),
                        impact: "negative".into(),
                        description: "Too little credit history to calculate a score.".into(),
                    }],
                    accounts: AccountsSummary::default(),
                });
            }
            let base = 560 + pick(0, 261) as u16;
            let score = match previous {
                Some(previous) if tagged(&subject.email, "score-drop") => {
                    previous.saturating_sub(40).max(300)
                }
                Some(previous) if tagged(&subject.email, "score-rise") => (previous + 35).min(850),
                _ => base,
            };
            let accounts = AccountsSummary {
                open_accounts: 1 + pick(8, 9),
                total_balance: u64::from(pick(16, 50_000)) * 100,
                utilization_percent: 5 + pick(24, 60),
                on_time_percent: 90 + pick(32, 11),
                oldest_account_years: 1 + pick(40, 20),
            };
            let factor = |code: &str, good: bool, description: String| Factor {
                code: code.into(),
                impact: if good { "positive" } else { "negative" }.into(),
                description,
            };
            let factors = vec![
                factor(
                    "utilization",
                    accounts.utilization_percent <= 30,
                    format!(
                        "Card balances are {}% of their limits (under 30% helps).",
                        accounts.utilization_percent
                    ),
                ),
                factor(
                    "payment_history",
                    accounts.on_time_percent >= 98,
                    format!("{}% of payments were made on time.", accounts.on_time_percent),
                ),
                factor(
                    "credit_age",
                    accounts.oldest_account_years >= 7,
                    format!("The oldest account is {} years old.", accounts.oldest_account_years),
                ),
            ];
            Ok(BureauReport {
                bureau: "sandbox".into(),
                score: Some(score),
                band: Band::of(Some(score)),
                factors,
                accounts,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(email: &str) -> Subject {
        Subject { customer_id: Uuid::from_u128(42), email: email.into() }
    }

    #[tokio::test]
    async fn the_sandbox_is_repeatable_and_its_tags_choose_the_scenario() {
        let plain = Sandbox.pull(&subject("ada@example.com"), None).await.unwrap();
        assert_eq!(plain, Sandbox.pull(&subject("ada@example.com"), Some(700)).await.unwrap());
        let score = plain.score.unwrap();
        assert!((560..=820).contains(&score));
        assert_eq!(plain.band, Band::of(Some(score)));
        let thin = Sandbox.pull(&subject("ada+thin-file@example.com"), None).await.unwrap();
        assert_eq!((thin.score, thin.band), (None, Band::NoScore));
        assert!(Sandbox.pull(&subject("ada+bureau-down@example.com"), None).await.is_err());
        let drop = Sandbox.pull(&subject("ada+score-drop@example.com"), Some(700)).await.unwrap();
        assert_eq!((drop.score, drop.band), (Some(660), Band::Fair));
        assert!(!tagged("ada@example+score-drop.com", "score-drop"), "only the local part");
    }

    #[test]
    fn bands_follow_the_ranges() {
        let bands: Vec<Band> =
            [None, Some(579), Some(580), Some(669), Some(670), Some(739), Some(740), Some(799), Some(800)]
                .into_iter()
                .map(Band::of)
                .collect();
        use Band::*;
        assert_eq!(bands, [NoScore, Poor, Fair, Fair, Good, Good, VeryGood, VeryGood, Exceptional]);
        for band in bands {
            assert_eq!(serde_json::to_value(band).unwrap(), band.as_str());
        }
    }
}
