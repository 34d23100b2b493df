//! Operator actions on single jobs and dead letters that no worker takes: dropping a dead
//! letter, and handing a running job back to the queue.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;

/// Deletes one dead letter; false if there is none with that id.
pub fn delete_dead(c: &Connection, dead_id: &str) -> Result<bool> {
    let n = c
        .prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?
        .execute(params![dead_id])?;
    Ok(n > 0)
}

/// Moves a running job back to `pending` and ends its claim: the claim token is cleared, so
/// whatever the worker that held it reports later changes nothing (fencing). The retry
/// count is kept: this is not a failed attempt. False if the job is missing or not running.
pub fn requeue_job(c: &Connection, id: &str) -> Result<bool> {
    let n = c
        .prepare_cached(concat!(
            "UPDATE jobs SET status = ",
            job_status!(pending),
            ", owner = NULL, claim_token = NULL, started_at = NULL, \
             worker_id = NULL, cancel_requested = 0 WHERE seq = ?2 AND id = ?1 AND status = ",
            job_status!(running)
        ))?
        .execute(params![id, seq_of(id)])?;
    Ok(n > 0)
}
