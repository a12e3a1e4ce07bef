//! Checks of request fields that several resources share: free text, names, amounts,
//! merchant codes. Each answers a 422 naming the field (a JSON pointer for body fields,
//! the parameter's name for query values) and returns the value as it is kept.

use super::error::ApiError;

/// Optional free text: trimmed; empty means absent; at most `max` characters and no
/// control characters.
pub fn text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) if text.chars().count() > max => {
            Err(ApiError::field(field, format!("at most {max} characters")))
        }
        Some(text) if text.chars().any(char::is_control) => {
            Err(ApiError::field(field, "no control characters"))
        }
        Some(text) => Ok(Some(text.to_owned())),
    }
}

/// A CSV upload's decimal mark (`.` or `,`) and delimiter (`,` or `;`); a decimal comma
/// needs the `;` delimiter.
pub fn csv_marks(decimal: &str, delimiter: &str) -> Result<(char, u8), ApiError> {
    let decimal = match decimal {
        "." => '.',
        "," => ',',
        _ => return Err(ApiError::field("/decimal", "must be \".\" or \",\"")),
    };
    let delimiter = match delimiter {
        "," => b',',
        ";" => b';',
        _ => return Err(ApiError::field("/delimiter", "must be \",\" or \";\"")),
    };
    if decimal == ',' && delimiter == b',' {
        return Err(ApiError::field("/delimiter", "a decimal comma needs the \";\" delimiter"));
    }
    Ok((decimal, delimiter))
}

/// Required text (a name): as [`text`], and not empty.
pub fn name(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    text(field, Some(value), max)?.ok_or_else(|| ApiError::field(field, "must not be empty"))
}

/// An amount in minor units: 1 to `max`.
pub fn amount<T>(field: &str, amount: T, max: T) -> Result<T, ApiError>
where
    T: PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    if amount < T::from(1) || amount > max {
        return Err(ApiError::field(field, format!("must be 1 to {max}")));
    }
    Ok(amount)
}

/// A merchant category code, when given: 4 digits (ISO 18245).
pub fn mcc(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(code) if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) => {
            Err(ApiError::field(field, "must be 4 digits (ISO 18245)"))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_and_normalised() {
        assert_eq!(text("/d", Some("  hi  "), 5).unwrap().as_deref(), Some("hi"));
        assert_eq!(text("/d", Some("   "), 5).unwrap(), None);
        assert!(text("/d", Some("123456"), 5).is_err());
        assert!(text("/d", Some("a\u{7}b"), 5).is_err());
        assert!(name("/n", " ", 5).is_err());
        assert_eq!(amount("/amount", 5_u64, 5).unwrap(), 5);
        assert!(amount("/amount", 0_i64, 5).is_err());
        assert!(amount("/amount", 6_i64, 5).is_err());
        assert!(mcc("/mcc", Some("54a1".into())).is_err());
        assert_eq!(mcc("/mcc", Some("5411".into())).unwrap().as_deref(), Some("5411"));
    }
}
