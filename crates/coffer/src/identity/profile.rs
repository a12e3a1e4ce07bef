//! The values of a customer profile as types: an [`Email`], a [`CustomerName`], a
//! [`Phone`], a [`Country`] and [`Preferences`] can only be built by parsing, so whatever
//! holds one holds a valid, normalised value.

use std::fmt;

use serde_json::{Map, Value};

/// Longest email address, in bytes (RFC 5321's path limit less the angle brackets).
const EMAIL_BYTES_MAX: usize = 254;
/// Longest local part (before the `@`), in bytes (RFC 5321).
const EMAIL_LOCAL_BYTES_MAX: usize = 64;
/// Longest name, in characters: room for long names in any script, a cap on abuse.
const NAME_CHARS_MAX: usize = 200;
/// Digits in an E.164 number: at most 15, and no real number has fewer than 7.
const PHONE_DIGITS_MIN: usize = 7;
const PHONE_DIGITS_MAX: usize = 15;
/// Bytes of serialised preferences at most: settings, not a document store.
const PREFERENCES_BYTES_MAX: usize = 4 * 1024;

/// A value that failed to parse, with a message for the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// An email address, trimmed and lowercased: the form in which it is stored and compared,
/// so `Ada@Example.com` and `ada@example.com` are one account.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let email = text.trim().to_lowercase();
        let invalid = InvalidValue("must be an email address such as ada@example.com");
        if email.len() > EMAIL_BYTES_MAX {
            return Err(InvalidValue("must be at most 254 bytes long"));
        }
        let Some((local, domain)) = email.split_once('@') else { return Err(invalid) };
        let well_formed = !local.is_empty()
            && local.len() <= EMAIL_LOCAL_BYTES_MAX
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if well_formed { Ok(Self(email)) } else { Err(invalid) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

/// A customer's display name: trimmed, 1–200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let name = text.trim();
        if name.is_empty() {
            return Err(InvalidValue("must not be empty"));
        }
        if name.chars().count() > NAME_CHARS_MAX {
            return Err(InvalidValue("must be at most 200 characters long"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidValue("must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A phone number in E.164 form (`+` and 7–15 digits). Spaces, dashes, dots and
/// parentheses that people type are accepted and removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let invalid = InvalidValue("must be an international number such as +442071838750");
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        let Some(digits) = compact.strip_prefix('+') else { return Err(invalid) };
        let valid = (PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid { Ok(Self(compact)) } else { Err(invalid) }
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The officially assigned ISO 3166-1 alpha-2 codes (249, as of 2024).
const ISO_3166_ALPHA_2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN \
     BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG \
     EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE \
     IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD \
     ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG \
     PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
     TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// A country as an assigned ISO 3166-1 alpha-2 code, uppercase (`gb` is accepted as `GB`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Country(String);

impl Country {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let code = text.trim().to_ascii_uppercase();
        let assigned =
            code.len() == 2 && ISO_3166_ALPHA_2.split_ascii_whitespace().any(|known| known == code);
        if assigned {
            Ok(Self(code))
        } else {
            Err(InvalidValue("must be an ISO 3166-1 alpha-2 country code such as GB"))
        }
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A customer's preferences: a JSON object of at most 4 KiB, kept as its JSON text. Its
/// `notifications` section, if any, must be well-formed (see
/// `crate::notifications::Preferences`); `home_currency`, if any, must be a supported
/// currency (reports and budgets then value other currencies in it: `finance::home`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preferences(String);

impl Preferences {
    pub fn parse(value: &Map<String, Value>) -> Result<Self, InvalidValue> {
        let text = serde_json::to_string(value).expect("a JSON map always serialises");
        if text.len() > PREFERENCES_BYTES_MAX {
            return Err(InvalidValue("must be at most 4096 bytes of JSON"));
        }
        if let Some(section) = value.get("notifications") {
            crate::notifications::Preferences::validate(section).map_err(InvalidValue)?;
        }
        if let Some(home) = value.get("home_currency") {
            let supported = home.as_str().and_then(crate::wallets::Currency::parse).is_some();
            if !supported {
                return Err(InvalidValue("home_currency must be one of USD, EUR, GBP, JPY, KES, RWF, NGN"));
            }
        }
        Ok(Self(text))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn names_phones_and_countries() {
        assert_eq!(CustomerName::parse("  Ada  ").unwrap().into_inner(), "Ada");
        assert!(CustomerName::parse("   ").is_err());
        assert!(CustomerName::parse("a\u{0}b").is_err());
        assert!(CustomerName::parse(&"x".repeat(201)).is_err());
        assert_eq!(Phone::parse("+44 20 7183-8750").unwrap().into_inner(), "+442071838750");
        for bad in ["442071838750", "+44abc", "+123", "+0123456789", "+1234567890123456"] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Country::parse("gb").unwrap().into_inner(), "GB");
        assert_eq!(ISO_3166_ALPHA_2.split_ascii_whitespace().count(), 249);
        for bad in ["UK", "XX", "GBR", ""] {
            assert!(Country::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn preferences_are_bounded() {
        let mut map = Map::new();
        map.insert("theme".into(), Value::from("dark"));
        assert_eq!(Preferences::parse(&map).unwrap().into_inner(), r#"{"theme":"dark"}"#);
        map.insert("blob".into(), Value::from("x".repeat(5000)));
        assert!(Preferences::parse(&map).is_err());
        let mut map = Map::new();
        map.insert("notifications".into(), serde_json::json!({"email": false, "high_value_threshold": 500}));
        assert!(Preferences::parse(&map).is_ok());
        map.insert("notifications".into(), serde_json::json!({"email": "no"}));
        assert!(Preferences::parse(&map).is_err());
        let mut map = Map::new();
        map.insert("home_currency".into(), Value::from("EUR"));
        assert!(Preferences::parse(&map).is_ok());
        for bad in [Value::from("eur"), Value::from("XYZ"), Value::from(978)] {
            map.insert("home_currency".into(), bad.clone());
            assert!(Preferences::parse(&map).is_err(), "{bad}");
        }
    }
}
