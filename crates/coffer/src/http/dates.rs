//! Times and dates on the wire. Out: RFC 3339 in UTC ([`rfc3339`], [`nanos`]). In: RFC
//! 3339 times as nanoseconds since the epoch ([`instant`]) and `YYYY-MM-DD` days
//! ([`day`]); anything else is a 422 naming the field.

use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use super::error::ApiError;

pub use crate::rfc3339;

/// A stored time (nanoseconds since the epoch, signed as the store keeps them) in RFC 3339.
pub fn nanos(value: i64) -> String {
    rfc3339(u64::try_from(value).unwrap_or(0))
}

/// An RFC 3339 time as nanoseconds since the epoch, in the integer type the caller keeps
/// (`u64` reaches 2554, `i64` 2262); earlier than 1970 or past the type's end is refused.
pub fn instant<T: TryFrom<i128>>(field: &str, text: &str) -> Result<T, ApiError> {
    let time = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| ApiError::field(field, "must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"))?;
    let nanos = time.unix_timestamp_nanos();
    T::try_from(nanos).map_err(|_| {
        ApiError::field(field, if nanos < 0 { "must not be before 1970" } else { "too far in the future" })
    })
}

/// A day, `YYYY-MM-DD`.
pub fn day(field: &str, text: &str) -> Result<Date, ApiError> {
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| ApiError::field(field, "must be a date, YYYY-MM-DD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_within_their_type() {
        assert_eq!(instant::<u64>("from", "1970-01-01T00:00:01Z").unwrap(), 1_000_000_000);
        assert_eq!(instant::<i64>("from", "1970-01-01T00:00:00.5+00:00").unwrap(), 500_000_000);
        assert!(instant::<u64>("from", "1969-12-31T23:59:59Z").is_err());
        assert!(instant::<i64>("from", "2300-01-01T00:00:00Z").is_err());
        assert!(instant::<u64>("from", "2300-01-01T00:00:00Z").is_ok());
        assert!(instant::<u64>("from", "yesterday").is_err());
        assert_eq!(rfc3339(1_000_000_000), "1970-01-01T00:00:01Z");
        assert_eq!(nanos(-5), "1970-01-01T00:00:00Z");
        assert!(day("from", "2026-02-30").is_err());
        assert_eq!(day("from", "2026-02-28").unwrap().to_string(), "2026-02-28");
    }
}
