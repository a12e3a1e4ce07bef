//! Cursor pagination, the same on every list: `limit` (1 to [`PAGE_LIMIT_MAX`], default
//! [`PAGE_LIMIT_DEFAULT`]) and an opaque `cursor` in; a [`Page`] with `has_more` and
//! `next_cursor` out.
//!
//! A cursor is base64url of `tag:key`: the tag names the list (and the cursor's version),
//! so a cursor from one list is refused by another; the key is where the next page
//! starts (an id, a time, or a pair of them). An empty `cursor=` means the first page.
//! Lists read `limit + 1` rows so that [`Page::of`] learns whether another page follows.

use std::str::FromStr;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

/// The most rows one page holds.
pub const PAGE_LIMIT_MAX: u32 = 100;
/// Rows per page when the request does not say.
pub const PAGE_LIMIT_DEFAULT: u32 = 20;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of `rows` (read with `limit + 1`): at most `limit` of them, viewed, and
    /// the cursor after the last one when more follow.
    pub fn of<R>(
        mut rows: Vec<R>,
        limit: u32,
        next_cursor: impl FnOnce(&R) -> String,
        view: impl FnMut(R) -> T,
    ) -> Self {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if has_more { rows.last().map(next_cursor) } else { None };
        Page { data: rows.into_iter().map(view).collect(), has_more, next_cursor }
    }
}

/// The query of a list that only pages.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100 (default 20).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The requested page size, checked: 422 outside 1 to [`PAGE_LIMIT_MAX`].
pub fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(PAGE_LIMIT_DEFAULT);
    if !(1..=PAGE_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::field("limit", format!("must be 1 to {PAGE_LIMIT_MAX}")));
    }
    Ok(limit)
}

/// What a cursor carries: written as text, read back exactly.
pub trait CursorKey: Sized {
    fn write(&self) -> String;
    fn read(text: &str) -> Option<Self>;
}

macro_rules! cursor_key_by_display {
    ($($kind:ty),*) => {$(
        impl CursorKey for $kind {
            fn write(&self) -> String {
                self.to_string()
            }
            fn read(text: &str) -> Option<Self> {
                <$kind as FromStr>::from_str(text).ok()
            }
        }
    )*};
}

cursor_key_by_display!(u64, i64, uuid::Uuid);

impl CursorKey for bool {
    fn write(&self) -> String {
        u8::from(*self).to_string()
    }
    fn read(text: &str) -> Option<Self> {
        match text {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        }
    }
}

impl<A: CursorKey, B: CursorKey> CursorKey for (A, B) {
    fn write(&self) -> String {
        format!("{}:{}", self.0.write(), self.1.write())
    }
    fn read(text: &str) -> Option<Self> {
        let (a, b) = text.split_once(':')?;
        Some((A::read(a)?, B::read(b)?))
    }
}

/// The cursor of list `tag` that resumes after `key`.
pub fn cursor(tag: &str, key: &impl CursorKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{}", key.write()))
}

/// Where a page starts: `None` for the first page (no cursor, or an empty one), else the
/// key in a cursor of list `tag`; 400 `invalid_parameter` for anything else.
pub fn after<K: CursorKey>(tag: &str, cursor: Option<&str>) -> Result<Option<K>, ApiError> {
    let cursor = match cursor {
        None | Some("") => return Ok(None),
        Some(cursor) => cursor,
    };
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| K::read(text.strip_prefix(tag)?.strip_prefix(':')?))
        .map(Some)
        .ok_or_else(invalid_cursor)
}

/// The answer to a cursor that is not one of this list's.
pub fn invalid_cursor() -> ApiError {
    ApiError::InvalidParameter { detail: "`cursor` is not a cursor from this list".into() }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn cursors_round_trip_within_their_list_only() {
        let id = Uuid::now_v7();
        let key = (1_234_u64, id);
        let text = cursor("w1", &key);
        assert_eq!(after::<(u64, Uuid)>("w1", Some(&text)).unwrap(), Some(key));
        assert!(after::<(u64, Uuid)>("e1", Some(&text)).is_err(), "another list's cursor");
        assert!(after::<Uuid>("w1", Some(&text)).is_err(), "another key's shape");
        assert!(after::<Uuid>("w1", Some("not a cursor!")).is_err());
        assert!(after::<(u64, bool)>("o1", Some(&cursor("o1", &(5_u64, 7_u64)))).is_err());
        assert_eq!(after::<(u64, bool)>("o1", Some(&cursor("o1", &(5_u64, true)))).unwrap(), Some((5, true)));
        assert_eq!(after::<Uuid>("w1", None).unwrap(), None);
        assert_eq!(after::<Uuid>("w1", Some("")).unwrap(), None, "an empty cursor is the first page");
    }

    #[test]
    fn limits_and_pages() {
        assert_eq!(limit(None).unwrap(), PAGE_LIMIT_DEFAULT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(PAGE_LIMIT_MAX + 1)).is_err());
        let page = Page::of(vec![1, 2, 3], 2, |last| cursor("n1", &(*last as u64)), |n| n * 10);
        assert_eq!((page.data, page.has_more), (vec![10, 20], true));
        assert_eq!(after::<u64>("n1", page.next_cursor.as_deref()).unwrap(), Some(2));
        let last = Page::of(vec![1, 2], 2, |_| unreachable!(), |n| n);
        assert_eq!((last.has_more, last.next_cursor), (false, None));
    }
}
