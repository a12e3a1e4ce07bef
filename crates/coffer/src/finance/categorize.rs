//! Automatic categorisation, explainable: every decision says what made it and how sure
//! it is. In order:
//!
//! 1. the customer's rules, in position order (Firefly III style: triggers on description,
//!    merchant, MCC and amount; `strict` = all triggers must hold, else any) — confidence 1;
//! 2. the merchant dictionary (`merchants.rs`, whole-word match on the merchant name, then
//!    on the description) — 0.93, or 0.97 when the MCC agrees;
//! 3. the MCC (ISO 18245): an exact code 0.9, else its range 0.6;
//! 4. otherwise `Uncategorised`, confidence 0.
//!
//! The result names a category of the default tree by name (dictionary, MCC) or a
//! customer's category by id (rules); the service resolves names against the customer's
//! own categories.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::merchants::MERCHANTS;

/// What categorisation looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts<'a> {
    pub description: Option<&'a str>,
    pub merchant: Option<&'a str>,
    pub mcc: Option<&'a str>,
    pub amount: i64,
}

/// One condition of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// The description contains `value` (case-insensitive).
    DescriptionContains { value: String },
    /// The merchant contains `value` (case-insensitive).
    MerchantContains { value: String },
    /// The merchant is `value` (case-insensitive).
    MerchantIs { value: String },
    /// The MCC is `value`.
    MccIs { value: String },
    /// The amount is within `[min, max]` (minor units; either bound may be absent).
    AmountBetween { min: Option<i64>, max: Option<i64> },
}

impl Trigger {
    fn holds(&self, facts: &Facts<'_>) -> bool {
        let contains = |text: Option<&str>, value: &str| {
            text.is_some_and(|text| text.to_lowercase().contains(&value.to_lowercase()))
        };
        match self {
            Self::DescriptionContains { value } => contains(facts.description, value),
            Self::MerchantContains { value } => contains(facts.merchant, value),
            Self::MerchantIs { value } => {
                facts.merchant.is_some_and(|merchant| merchant.eq_ignore_ascii_case(value))
            }
            Self::MccIs { value } => facts.mcc == Some(value.as_str()),
            Self::AmountBetween { min, max } => {
                min.is_none_or(|min| facts.amount >= min) && max.is_none_or(|max| facts.amount <= max)
            }
        }
    }
}

/// What a rule does to a matching expense.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    pub category_id: Uuid,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A rule, as the categoriser sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: Uuid,
    pub strict: bool,
    pub triggers: Vec<Trigger>,
    pub actions: Actions,
}

impl Rule {
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        if self.triggers.is_empty() {
            return false;
        }
        if self.strict {
            self.triggers.iter().all(|trigger| trigger.holds(facts))
        } else {
            self.triggers.iter().any(|trigger| trigger.holds(facts))
        }
    }
}

/// Which category, by what, how sure.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub target: Target,
    /// `rule:<id>`, `merchant`, `mcc` or `none`.
    pub by: String,
    pub confidence: f64,
    /// Tags the deciding rule adds.
    pub tags: Vec<String>,
}

/// A category by id (a customer's) or by name (of the default tree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Id(Uuid),
    Name(&'static str),
}

/// Upper-case letters and digits, every other run of characters one space, padded with a
/// space on both sides so that whole words can be found with `contains`.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for character in text.chars() {
        if character.is_alphanumeric() {
            out.extend(character.to_uppercase());
        } else if character == '\'' {
            // MCDONALD'S → MCDONALDS
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// The dictionary's category for `text`, longest keyword first.
fn merchant_category(text: &str) -> Option<&'static str> {
    let text = normalise(text);
    MERCHANTS
        .iter()
        .filter(|(keyword, _)| text.contains(&format!(" {keyword} ")))
        .max_by_key(|(keyword, _)| keyword.len())
        .map(|(_, category)| *category)
}

/// Exact MCCs with their category.
const MCC_CODES: &[(u16, &str)] = &[
    (4011, "Public Transit"),
    (4111, "Public Transit"),
    (4112, "Public Transit"),
    (4131, "Public Transit"),
    (4121, "Taxi & Rideshare"),
    (4511, "Flights"),
    (4722, "Travel Agencies"),
    (4784, "Parking & Tolls"),
    (7523, "Parking & Tolls"),
    (4812, "Mobile Phone"),
    (4814, "Mobile Phone"),
    (4816, "Internet"),
    (4899, "Subscriptions"),
    (4900, "Electricity & Gas"),
    (4829, "Money Sent"),
    (5411, "Groceries"),
    (5422, "Groceries"),
    (5441, "Groceries"),
    (5451, "Groceries"),
    (5462, "Coffee Shops"),
    (5499, "Groceries"),
    (5812, "Restaurants"),
    (5813, "Bars"),
    (5814, "Coffee Shops"),
    (5541, "Fuel"),
    (5542, "Fuel"),
    (5983, "Fuel"),
    (7531, "Car Maintenance"),
    (7534, "Car Maintenance"),
    (7538, "Car Maintenance"),
    (7542, "Car Maintenance"),
    (5533, "Car Maintenance"),
    (5311, "Department Stores"),
    (5310, "Department Stores"),
    (5399, "Department Stores"),
    (5045, "Electronics"),
    (5732, "Electronics"),
    (5734, "Electronics"),
    (5946, "Electronics"),
    (5200, "Home & Garden"),
    (5211, "Home & Garden"),
    (5251, "Home & Garden"),
    (5261, "Home & Garden"),
    (5712, "Home & Garden"),
    (5719, "Home & Garden"),
    (5942, "Books"),
    (5192, "Books"),
    (5964, "Online Shopping"),
    (5965, "Online Shopping"),
    (5966, "Online Shopping"),
    (5967, "Online Shopping"),
    (5968, "Subscriptions"),
    (5969, "Online Shopping"),
    (5815, "Subscriptions"),
    (5817, "Subscriptions"),
    (5818, "Subscriptions"),
    (5816, "Games"),
    (7994, "Games"),
    (5945, "Games"),
    (5912, "Pharmacy"),
    (5122, "Pharmacy"),
    (8011, "Doctor"),
    (8031, "Doctor"),
    (8041, "Doctor"),
    (8042, "Doctor"),
    (8049, "Doctor"),
    (8050, "Doctor"),
    (8062, "Doctor"),
    (8071, "Doctor"),
    (8099, "Doctor"),
    (8021, "Dentist"),
    (7997, "Fitness"),
    (7941, "Fitness"),
    (7832, "Movies"),
    (7841, "Movies"),
    (5733, "Music"),
    (5735, "Music"),
    (7922, "Events"),
    (7929, "Events"),
    (7991, "Events"),
    (7996, "Events"),
    (7999, "Events"),
    (8211, "Tuition"),
    (8220, "Tuition"),
    (8241, "Courses"),
    (8244, "Courses"),
    (8249, "Courses"),
    (8299, "Courses"),
    (5943, "School Supplies"),
    (5111, "School Supplies"),
    (6513, "Rent"),
    (6300, "Insurance"),
    (5960, "Insurance"),
    (6011, "Cash Withdrawal"),
    (6010, "Cash Withdrawal"),
    (6012, "Bank Fees"),
    (6051, "Money Sent"),
    (6540, "Money Sent"),
    (9311, "Government"),
    (9399, "Government"),
    (9222, "Government"),
    (9211, "Government"),
    (9402, "Government"),
    (4215, "Service Fees"),
    (7299, "Service Fees"),
    (5651, "Clothing"),
    (5661, "Clothing"),
    (5691, "Clothing"),
    (5699, "Clothing"),
    (5611, "Clothing"),
    (5621, "Clothing"),
    (5631, "Clothing"),
    (5641, "Clothing"),
    (5655, "Clothing"),
    (3351, "Car Rental"),
    (7512, "Car Rental"),
    (7011, "Hotels"),
    (4411, "Travel Agencies"),
    (7033, "Hotels"),
];

/// ISO 18245 ranges (inclusive) with the category most of their codes belong to.
const MCC_RANGES: &[(u16, u16, &str)] = &[
    (3000, 3350, "Flights"),
    (3351, 3500, "Car Rental"),
    (3501, 3999, "Hotels"),
    (4000, 4799, "Public Transit"),
    (4800, 4999, "Subscriptions"),
    (5000, 5599, "Department Stores"),
    (5600, 5699, "Clothing"),
    (5700, 5799, "Home & Garden"),
    (5800, 5899, "Restaurants"),
    (5900, 5999, "Online Shopping"),
    (6000, 6999, "Bank Fees"),
    (7000, 7299, "Service Fees"),
    (7300, 7529, "Service Fees"),
    (7530, 7549, "Car Maintenance"),
    (7800, 7999, "Events"),
    (8000, 8099, "Doctor"),
    (8200, 8299, "Courses"),
    (9000, 9999, "Government"),
];

/// The MCC's category and whether the code itself (not just its range) is known.
fn mcc_category(mcc: &str) -> Option<(&'static str, bool)> {
    let code: u16 = mcc.parse().ok()?;
    if let Some((_, category)) = MCC_CODES.iter().find(|(known, _)| *known == code) {
        return Some((category, true));
    }
    MCC_RANGES
        .iter()
        .find(|(low, high, _)| (*low..=*high).contains(&code))
        .map(|(_, _, category)| (*category, false))
}

/// Decides the category of an expense with `facts`, given the customer's `rules`.
pub fn categorize(facts: &Facts<'_>, rules: &[Rule]) -> Decision {
    if let Some(rule) = rules.iter().find(|rule| rule.matches(facts)) {
        return Decision {
            target: Target::Id(rule.actions.category_id),
            by: format!("rule:{}", rule.id),
            confidence: 1.0,
            tags: rule.actions.tags.clone(),
        };
    }
    let by_mcc = facts.mcc.and_then(mcc_category);
    let by_merchant =
        facts.merchant.and_then(merchant_category).or_else(|| facts.description.and_then(merchant_category));
    let decision = |name: &'static str, by: &str, confidence: f64| Decision {
        target: Target::Name(name),
        by: by.to_owned(),
        confidence,
        tags: Vec::new(),
    };
    match (by_merchant, by_mcc) {
        (Some(name), Some((mcc_name, _))) if name == mcc_name => decision(name, "merchant", 0.97),
        (Some(name), _) => decision(name, "merchant", 0.93),
        (None, Some((name, true))) => decision(name, "mcc", 0.9),
        (None, Some((name, false))) => decision(name, "mcc", 0.6),
        (None, None) => decision(super::categories::UNCATEGORISED, "none", 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finance::categories::{UNCATEGORISED, default_names};

    fn facts<'a>(merchant: Option<&'a str>, description: Option<&'a str>, mcc: Option<&'a str>) -> Facts<'a> {
        Facts { description, merchant, mcc, amount: 550 }
    }

    #[test]
    fn starbucks_with_its_mcc_is_a_coffee_shop_with_high_confidence() {
        let decision = categorize(&facts(Some("STARBUCKS"), None, Some("5814")), &[]);
        assert_eq!(decision.target, Target::Name("Coffee Shops"));
        assert_eq!(decision.by, "merchant");
        assert!(decision.confidence > 0.9, "{decision:?}");
    }

    #[test]
    fn merchants_match_whole_words_longest_first() {
        assert_eq!(merchant_category("Starbucks Store #1234 Seattle"), Some("Coffee Shops"));
        assert_eq!(merchant_category("UBER *EATS pending"), Some("Food Delivery"));
        assert_eq!(merchant_category("UBER TRIP 8H2"), Some("Taxi & Rideshare"));
        assert_eq!(merchant_category("McDonald's 0421"), Some("Fast Food"));
        assert_eq!(merchant_category("SHELLFISH SHACK"), None, "SHELL is a word, not a prefix");
    }

    #[test]
    fn mcc_codes_and_ranges() {
        assert_eq!(mcc_category("5411"), Some(("Groceries", true)));
        assert_eq!(mcc_category("3058"), Some(("Flights", false)));
        assert_eq!(mcc_category("abcd"), None);
        let decision = categorize(&facts(Some("Some Local Diner"), None, Some("5812")), &[]);
        assert_eq!(
            (decision.target, decision.by.as_str(), decision.confidence),
            (Target::Name("Restaurants"), "mcc", 0.9)
        );
        let nothing = categorize(&facts(Some("Zyx"), None, None), &[]);
        assert_eq!((nothing.target, nothing.confidence), (Target::Name(UNCATEGORISED), 0.0));
    }

    #[test]
    fn rules_come_first_strict_means_all() {
        let category = Uuid::now_v7();
        let rule = |strict| Rule {
            id: Uuid::nil(),
            strict,
            triggers: vec![
                Trigger::MerchantIs { value: "starbucks".into() },
                Trigger::AmountBetween { min: Some(1000), max: None },
            ],
            actions: Actions { category_id: category, tags: vec!["work".into()] },
        };
        let cheap = facts(Some("STARBUCKS"), None, Some("5814"));
        assert_eq!(
            categorize(&cheap, &[rule(true)]).target,
            Target::Name("Coffee Shops"),
            "strict: amount fails"
        );
        let decided = categorize(&cheap, &[rule(false)]);
        assert_eq!(
            (decided.target, decided.confidence, decided.tags),
            (Target::Id(category), 1.0, vec!["work".to_owned()])
        );
        assert!(decided.by.starts_with("rule:"));
    }

    #[test]
    fn every_table_names_a_default_category() {
        let names: std::collections::HashSet<&str> = default_names().map(|(name, _)| name).collect();
        for (keyword, category) in MERCHANTS {
            assert!(names.contains(category), "{keyword} → {category}");
            assert_eq!(normalise(keyword).trim(), *keyword, "keywords are stored normalised: {keyword}");
        }
        assert!(MERCHANTS.len() >= 300, "a few hundred merchants");
        for (code, category) in MCC_CODES {
            assert!(names.contains(category), "{code} → {category}");
        }
        for (low, high, category) in MCC_RANGES {
            assert!(low <= high && names.contains(category), "{low}-{high} → {category}");
        }
    }
}
