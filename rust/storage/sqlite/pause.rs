//! Paused queues: a small table that the claim reads with its queue list, so a paused
//! queue's jobs are simply not claimable by any process until it is resumed.

use std::borrow::Cow;

use rusqlite::{params, Connection};

use crate::error::Result;

/// Names of the paused queues, sorted.
pub fn paused_names(c: &Connection) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached("SELECT name FROM paused_queues ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Pauses `queue`; true if it was not paused already.
pub fn pause(c: &Connection, queue: &str, now: i64) -> Result<bool> {
    let n = c
        .prepare_cached("INSERT OR IGNORE INTO paused_queues (name, paused_at) VALUES (?1, ?2)")?
        .execute(params![queue, now])?;
    Ok(n > 0)
}

/// Resumes `queue`; true if it was paused.
pub fn resume(c: &Connection, queue: &str) -> Result<bool> {
    let n = c
        .prepare_cached("DELETE FROM paused_queues WHERE name = ?1")?
        .execute(params![queue])?;
    Ok(n > 0)
}

/// The queues a claim reads: the named ones (every known queue when `None`) less the
/// paused ones. Paused queues are simply not claimable (a read of a table of a few rows).
pub(super) fn claimable_queues<'a>(
    conn: &Connection,
    queues: Option<&'a [String]>,
) -> Result<Cow<'a, [String]>> {
    Ok(match queues {
        Some(q) => {
            let paused = paused_names(conn)?;
            if paused.is_empty() {
                Cow::Borrowed(q)
            } else {
                Cow::Owned(q.iter().filter(|n| !paused.contains(n)).cloned().collect())
            }
        }
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT name FROM queues WHERE name NOT IN (SELECT name FROM paused_queues)",
            )?;
            let names = stmt.query_map([], |r| r.get(0))?;
            Cow::Owned(names.collect::<std::result::Result<_, _>>()?)
        }
    })
}
