//! Paused queues on PostgreSQL: a small table the claim statement reads, so a paused
//! queue's jobs are not claimable by any process until it is resumed.

use super::pool::{Conn, PgSettings};
use crate::error::Result;

pub fn pause(c: &mut Conn, s: &PgSettings, queue: &str, now: i64) -> Result<bool> {
    let n = c
        .client
        .execute(
            "INSERT INTO paused_queues (name, paused_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&queue, &now],
        )
        .map_err(|e| s.error(e))?;
    Ok(n > 0)
}

pub fn resume(c: &mut Conn, s: &PgSettings, queue: &str) -> Result<bool> {
    let n = c
        .client
        .execute("DELETE FROM paused_queues WHERE name = $1", &[&queue])
        .map_err(|e| s.error(e))?;
    Ok(n > 0)
}

pub fn paused(c: &mut Conn, s: &PgSettings) -> Result<Vec<String>> {
    let rows = c
        .client
        .query("SELECT name FROM paused_queues ORDER BY name", &[])
        .map_err(|e| s.error(e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
