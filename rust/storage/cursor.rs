//! Keyset page cursors, shared by every store's listings. A cursor is the hex `seq` of the
//! last row shown; the next page reads `seq < it`, so rows inserted meanwhile (higher seqs)
//! never make a page skip or repeat a row.

use super::model::JobPage;
use crate::error::{Error, Result};

/// The seq a cursor (hex, as `page` writes it) stands for; the first page reads from the top.
/// Shared by every store's keyset listings.
pub(crate) fn parse_cursor(after: Option<&str>) -> Result<i64> {
    match after {
        None => Ok(i64::MAX),
        Some(c) => i64::from_str_radix(c, 16)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| {
                Error::invalid(
                    "after",
                    format!("{c:?} is not a cursor this store returned"),
                )
            }),
    }
}

pub(crate) fn check_limit(limit: i64) -> Result<()> {
    if limit < 0 {
        return Err(Error::invalid(
            "limit",
            format!("{limit} (must not be negative)"),
        ));
    }
    Ok(())
}

/// Rows come back `limit + 1` at most: the extra one only says a next page exists.
pub(crate) fn page<T>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> i64) -> JobPage<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(format!("{:x}", cursor(last))),
        _ => None,
    };
    JobPage {
        items: rows,
        next_cursor,
    }
}
