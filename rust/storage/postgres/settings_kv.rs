//! The shared settings store in PostgreSQL (the same rows as `sqlite/settings_kv.rs`).
//! The table is created by the first write that finds it missing, so its cost is one
//! failed statement once per database.

use postgres::error::SqlState;

use super::pool::{Conn, PgSettings};
use crate::error::Result;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS settings_kv (\
    key text PRIMARY KEY, value text NOT NULL, version bigint NOT NULL)";

fn missing_table(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNDEFINED_TABLE)
}

pub fn get(c: &mut Conn, s: &PgSettings, key: &str) -> Result<Option<(String, i64)>> {
    match c.client.query_opt(
        "SELECT value, version FROM settings_kv WHERE key = $1",
        &[&key],
    ) {
        Ok(row) => Ok(row.map(|r| (r.get(0), r.get(1)))),
        Err(e) if missing_table(&e) => Ok(None),
        Err(e) => Err(s.error(e)),
    }
}

pub fn list(c: &mut Conn, s: &PgSettings, prefix: &str) -> Result<Vec<(String, String, i64)>> {
    match c.client.query(
        "SELECT key, value, version FROM settings_kv \
         WHERE left(key, length($1)) = $1 ORDER BY key",
        &[&prefix],
    ) {
        Ok(rows) => Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()),
        Err(e) if missing_table(&e) => Ok(Vec::new()),
        Err(e) => Err(s.error(e)),
    }
}

fn try_put(
    c: &mut Conn,
    key: &str,
    value: &str,
    expected: Option<i64>,
) -> std::result::Result<Option<i64>, postgres::Error> {
    let row = match expected {
        None => c.client.query_opt(
            "INSERT INTO settings_kv (key, value, version) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             version = settings_kv.version + 1 RETURNING version",
            &[&key, &value],
        )?,
        Some(0) => c.client.query_opt(
            "INSERT INTO settings_kv (key, value, version) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO NOTHING RETURNING version",
            &[&key, &value],
        )?,
        Some(v) => c.client.query_opt(
            "UPDATE settings_kv SET value = $2, version = version + 1 \
             WHERE key = $1 AND version = $3 RETURNING version",
            &[&key, &value, &v],
        )?,
    };
    Ok(row.map(|r| r.get(0)))
}

pub fn put(
    c: &mut Conn,
    s: &PgSettings,
    key: &str,
    value: &str,
    expected: Option<i64>,
) -> Result<Option<i64>> {
    match try_put(c, key, value, expected) {
        Err(e) if missing_table(&e) => {
            // Two processes may create it at once: one of them then fails on the catalog's
            // unique index, and the table exists either way.
            let _ = c.client.batch_execute(CREATE);
            try_put(c, key, value, expected).map_err(|e| s.error(e))
        }
        other => other.map_err(|e| s.error(e)),
    }
}

pub fn delete(c: &mut Conn, s: &PgSettings, key: &str) -> Result<bool> {
    match c
        .client
        .execute("DELETE FROM settings_kv WHERE key = $1", &[&key])
    {
        Ok(n) => Ok(n > 0),
        Err(e) if missing_table(&e) => Ok(false),
        Err(e) => Err(s.error(e)),
    }
}
