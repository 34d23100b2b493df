//! Operator actions on single jobs and dead letters on PostgreSQL: delete a dead letter,
//! put a running job back.

use super::pool::{Conn, PgSettings};
use crate::error::Result;
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;

pub fn delete_dead(c: &mut Conn, s: &PgSettings, dead_id: &str) -> Result<bool> {
    let n = c
        .client
        .execute("DELETE FROM dead_letters WHERE id = $1", &[&dead_id])
        .map_err(|e| s.error(e))?;
    Ok(n > 0)
}

/// Puts a running job back to `pending` and ends its claim (fenced); keeps its retry count.
pub fn requeue_job(c: &mut Conn, s: &PgSettings, id: &str) -> Result<bool> {
    let n = c
        .client
        .execute(
            concat!(
                "UPDATE jobs SET status = ",
                job_status!(pending),
                ", owner = NULL, claim_token = NULL, started_at = NULL, \
             worker_id = NULL, cancel_requested = false WHERE seq = $2 AND id = $1 AND status = ",
                job_status!(running)
            ),
            &[&id, &seq_of(id)],
        )
        .map_err(|e| s.error(e))?;
    Ok(n > 0)
}
