//! The shared settings store in SQLite: small versioned key/value rows every process on
//! the database reads (webhook subscriptions, circuit-breaker and retry-budget state).
//! The table is created by the first write, so a database that never uses it never has it.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS settings_kv (\
    key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID";

/// True for the error of a statement on the table before any write created it.
fn missing_table(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("no such table"))
}

/// `(value, version)` of `key`.
pub fn get(c: &Connection, key: &str) -> Result<Option<(String, i64)>> {
    let row = c
        .prepare_cached("SELECT value, version FROM settings_kv WHERE key = ?1")
        .and_then(|mut s| {
            s.query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        });
    match row {
        Err(e) if missing_table(&e) => Ok(None),
        other => Ok(other?),
    }
}

/// `(key, value, version)` of every key starting with `prefix`, by key.
pub fn list(c: &Connection, prefix: &str) -> Result<Vec<(String, String, i64)>> {
    let rows = c
        .prepare_cached(
            "SELECT key, value, version FROM settings_kv WHERE substr(key, 1, length(?1)) = ?1 \
             ORDER BY key",
        )
        .and_then(|mut s| {
            s.query_map(params![prefix], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    match rows {
        Err(e) if missing_table(&e) => Ok(Vec::new()),
        other => Ok(other?),
    }
}

/// Stores `value` under `key`. `expected`: None writes unconditionally, `Some(0)` only if
/// the key is absent, `Some(v)` only if the stored version is `v`. Returns the new
/// version, or None when `expected` did not hold (nothing written).
pub fn put(c: &Connection, key: &str, value: &str, expected: Option<i64>) -> Result<Option<i64>> {
    c.execute_batch(CREATE)?;
    let n = match expected {
        None => c
            .prepare_cached(
                "INSERT INTO settings_kv (key, value, version) VALUES (?1, ?2, 1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = version + 1",
            )?
            .execute(params![key, value])?,
        Some(0) => c
            .prepare_cached(
                "INSERT INTO settings_kv (key, value, version) VALUES (?1, ?2, 1) \
                 ON CONFLICT (key) DO NOTHING",
            )?
            .execute(params![key, value])?,
        Some(v) => c
            .prepare_cached(
                "UPDATE settings_kv SET value = ?2, version = version + 1 \
                 WHERE key = ?1 AND version = ?3",
            )?
            .execute(params![key, value, v])?,
    };
    if n == 0 {
        return Ok(None);
    }
    Ok(get(c, key)?.map(|(_, v)| v))
}

/// Removes `key`; true if it was there.
pub fn delete(c: &Connection, key: &str) -> Result<bool> {
    match c
        .prepare_cached("DELETE FROM settings_kv WHERE key = ?1")
        .and_then(|mut s| s.execute(params![key]))
    {
        Err(e) if missing_table(&e) => Ok(false),
        other => Ok(other? > 0),
    }
}
