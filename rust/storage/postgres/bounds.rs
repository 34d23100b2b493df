//! Bounded queues on PostgreSQL (`Queue(max_pending=...)`): an enqueue that would take a
//! queue past its bound stores nothing. Used by the plain and the linked enqueue alike.

use postgres::Transaction;

use super::pool::PgSettings;
use crate::error::{Error, Result};
use crate::storage::rules::job_status;

/// Takes the pending-count lock of each bounded queue, `bounds` sorted by name (so producers
/// of overlapping queue sets never wait on each other in a cycle). Producers of one queue
/// take turns on this transaction-scoped advisory lock, so two cannot both pass a count
/// that misses the other's inserts.
pub fn lock_pending(
    tx: &mut Transaction<'_>,
    s: &PgSettings,
    bounds: &[(&str, i64)],
) -> Result<()> {
    for (queue, _) in bounds {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('taskito-pending:' || current_schema()), \
             hashtext($1))",
            &[queue],
        )
        .map_err(|e| s.error(e))?;
    }
    Ok(())
}

/// Fails with `QueueFull` if a queue holds more pending jobs (ready, delayed or waiting for
/// dependencies) than its bound. Runs after the inserts, in their transaction, under
/// `lock_pending`.
pub fn check_pending(
    tx: &mut Transaction<'_>,
    s: &PgSettings,
    bounds: &[(&str, i64)],
) -> Result<()> {
    for (queue, max_pending) in bounds {
        let n: i64 = tx
            .query_one(
                concat!(
                    "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status IN (",
                    job_status!(pending),
                    ", ",
                    job_status!(waiting),
                    ") AND queue = $1 \
                 LIMIT $2) AS p"
                ),
                &[queue, &max_pending.saturating_add(1)],
            )
            .map_err(|e| s.error(e))?
            .get(0);
        if n > *max_pending {
            return Err(Error::QueueFull {
                queue: queue.to_string(),
                limit: *max_pending,
            });
        }
    }
    Ok(())
}
