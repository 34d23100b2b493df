//! The hot path on PostgreSQL: enqueue, claim and the batched writes of the result handler.
//!
//! Time: every stored instant comes from the server's clock. A time the engine passes in
//! (a delay until `scheduled_at`, a retry's `run_at`) is turned into an offset from the
//! caller's clock and added to the server's, so hosts whose clocks disagree still agree on
//! what is ready and never run a job early.

use postgres::error::SqlState;
use postgres::{Statement, Transaction};

use super::job_control::finish_cancelled;
use super::limits;
use super::links::with_parents;
use super::pool::{Conn, PgSettings};
use super::rows::{
    claimed_columns, claimed_job, claimed_rows, enqueue_in, enqueue_statement, insert_error,
    new_token, now_ms_sql, write_dead_letter,
};
use super::store::{PgStorage, MAX_UNSURE_CLAIMS};
use crate::error::Result;
use crate::job::{ClaimedJob, NewJob, WorkerKey};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;
use crate::storage::{TaskFilter, Write};

/// Inserts jobs (see `enqueue_in`) as one autocommitted statement.
pub fn enqueue(
    conn: &mut Conn,
    settings: &PgSettings,
    jobs: &[NewJob],
    client_now: i64,
    notify: Option<&str>,
) -> Result<Vec<String>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = enqueue_statement(conn, settings)?;
    enqueue_in(&mut conn.client, &stmt, settings, jobs, client_now, notify)
}

/// The claim statement; `$filter` restricts task names (`$6`). The CTE is an optimisation
/// fence: the planner cannot lock more rows than it returns.
macro_rules! claim_sql {
    ($filter:literal) => {
        concat!(
            "WITH picked AS MATERIALIZED ( \
               SELECT r.seq, coalesce(r.expires_at > 0 AND r.expires_at <= ",
            now_ms_sql!(),
            ", false) AS expired \
               FROM (SELECT name FROM unnest($1::text[]) AS u(name) \
                 WHERE name NOT IN (SELECT name FROM paused_queues)) AS qn CROSS JOIN LATERAL ( \
                 SELECT seq, priority, scheduled_at, expires_at FROM jobs \
                 WHERE status = ", job_status!(pending), " AND queue = qn.name AND scheduled_at <= ",
            now_ms_sql!(),
            $filter,
            "   ORDER BY priority DESC, scheduled_at, seq LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) AS r \
               ORDER BY r.priority DESC, r.scheduled_at, r.seq LIMIT $2), ",
            // A job picked after its expiry time is cancelled instead of handed out.
            "expired AS (UPDATE jobs AS e SET status = ", job_status!(cancelled), ", completed_at = ",
            now_ms_sql!(),
            ", expires_at = -e.expires_at, error = 'expired: not started before its expiry time' \
               FROM picked WHERE e.seq = picked.seq AND picked.expired AND e.status = ", job_status!(pending), "), \
             claimed AS (UPDATE jobs AS j SET status = ", job_status!(running), ", owner = $3, claim_token = $4, \
               started_at = ",
            now_ms_sql!(),
            // Started: it can no longer expire (the time is kept, negated, for replay).
            ", worker_id = NULL, incarnation = $5, expires_at = -abs(j.expires_at) FROM picked \
               WHERE j.seq = picked.seq AND NOT picked.expired AND j.status = ", job_status!(pending), " \
               RETURNING ",
            claimed_columns!(),
            ") SELECT c.*, picked.expired FROM picked LEFT JOIN claimed AS c ON c.seq = picked.seq"
        )
    };
}

const CLAIM: &str = claim_sql!("");
const CLAIM_ONLY: &str = claim_sql!(" AND task_name = ANY($6::text[])");
const CLAIM_EXCEPT: &str = claim_sql!(" AND task_name <> ALL($6::text[])");

/// Claims up to `limit` ready jobs in one statement: per queue, an ordered walk of the
/// ready index that skips rows another claimer holds, merged by priority, then schedule,
/// then insertion order.
pub fn claim(
    conn: &mut Conn,
    settings: &PgSettings,
    queues: Option<&[String]>,
    owner: &WorkerKey,
    limit: usize,
    token: i64,
    tasks: Option<TaskFilter<'_>>,
) -> Result<Vec<ClaimedJob>> {
    let err = |e| settings.error(e);
    let all;
    let queues: &[String] = match queues {
        Some(q) => q,
        None => {
            let stmt = conn.prepare("SELECT name FROM queues").map_err(err)?;
            all = conn
                .client
                .query(&stmt, &[])
                .map_err(err)?
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>();
            &all
        }
    };
    if queues.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let sql = match tasks {
        None => CLAIM,
        Some(TaskFilter::Only(_)) => CLAIM_ONLY,
        Some(TaskFilter::Except(_)) => CLAIM_EXCEPT,
    };
    let stmt = conn.prepare(sql).map_err(err)?;
    let mut claimed = Vec::new();
    // Jobs picked after their expiry time are cancelled, not handed out: look again for
    // the slots they took (they have left the ready index now).
    while claimed.len() < limit {
        // Taken before the statement is sent: the wait a worker measures from it is never
        // shorter than the one `cancel` judges by on the server's clock.
        let sent = std::time::Instant::now();
        let rows = claim_once(
            conn,
            &stmt,
            queues,
            owner,
            limit - claimed.len(),
            token,
            tasks,
        )
        .map_err(err)?;
        let expired = rows.iter().filter(|r| r.get::<_, bool>(13)).count();
        let taken = rows
            .iter()
            .filter(|r| r.get::<_, Option<String>>(0).is_some());
        claimed.extend(claimed_rows(taken, token, Some(sent)));
        if expired == 0 {
            break;
        }
    }
    with_parents(&mut conn.client, settings, claimed)
}

/// One run of the claim statement: a row per picked job, with NULL columns for one that
/// expired (column 13 true) instead of being claimed.
fn claim_once(
    conn: &mut Conn,
    stmt: &Statement,
    queues: &[String],
    owner: &WorkerKey,
    limit: usize,
    token: i64,
    tasks: Option<TaskFilter<'_>>,
) -> std::result::Result<Vec<postgres::Row>, postgres::Error> {
    let limit = limit as i64;
    match tasks {
        None => conn.client.query(
            stmt,
            &[
                &queues,
                &limit,
                &owner.worker_id,
                &token,
                &owner.incarnation,
            ],
        ),
        Some(TaskFilter::Only(names)) | Some(TaskFilter::Except(names)) => conn.client.query(
            stmt,
            &[
                &queues,
                &limit,
                &owner.worker_id,
                &token,
                &owner.incarnation,
                &names,
            ],
        ),
    }
}

/// The jobs a claim with `token` took, if it committed. A claim whose reply was lost
/// (the server went down between its commit and the answer) is found again this way
/// instead of leaving its jobs `running` under a live worker that never got them.
pub fn claimed_by_token(
    conn: &mut Conn,
    settings: &PgSettings,
    owner: &WorkerKey,
    token: i64,
) -> Result<Vec<ClaimedJob>> {
    let err = |e| settings.error(e);
    let stmt = conn
        .prepare(concat!(
            "SELECT id, task_name, queue, payload, retry_count, max_retries, retry_backoff, \
             timeout_ms, priority, scheduled_at, seq, pass_result, eager_start FROM jobs \
             WHERE status = ",
            job_status!(running),
            " AND claim_token = $1 AND owner = $2 AND incarnation = $3"
        ))
        .map_err(err)?;
    let rows = conn
        .client
        .query(&stmt, &[&token, &owner.worker_id, &owner.incarnation])
        .map_err(err)?;
    with_parents(
        &mut conn.client,
        settings,
        claimed_rows(rows.iter(), token, None),
    )
}

/// Claims one job by id whatever its status and schedule (`taskito execute`).
pub fn claim_by_id(
    conn: &mut Conn,
    settings: &PgSettings,
    id: &str,
    owner: &WorkerKey,
) -> Result<Option<ClaimedJob>> {
    let err = |e| settings.error(e);
    let token = new_token();
    let sent = std::time::Instant::now();
    let stmt = conn
        .prepare(concat!(
            "UPDATE jobs SET status = ",
            job_status!(running),
            ", owner = $2, claim_token = $3, started_at = ",
            now_ms_sql!(),
            ", completed_at = NULL, worker_id = NULL, incarnation = $5, \
             expires_at = -abs(expires_at) \
             WHERE seq = $4 AND id = $1 AND status <> ",
            job_status!(running),
            " \
             RETURNING id, task_name, queue, payload, retry_count, max_retries, \
             retry_backoff, timeout_ms, pass_result, eager_start"
        ))
        .map_err(err)?;
    let row = conn
        .client
        .query_opt(
            &stmt,
            &[
                &id,
                &owner.worker_id,
                &token,
                &seq_of(id),
                &owner.incarnation,
            ],
        )
        .map_err(err)?;
    let claimed = row.map(|r| (claimed_job(&r, token, 9, Some(sent)), r.get::<_, i16>(8)));
    Ok(with_parents(&mut conn.client, settings, claimed.into_iter().collect())?.pop())
}

/// Records that a claimed job starts now (fenced by its token); false if the claim is gone.
pub fn record_start(
    conn: &mut Conn,
    settings: &PgSettings,
    id: &str,
    token: i64,
    thread_id: &str,
) -> Result<bool> {
    let err = |e| settings.error(e);
    let stmt = conn
        .prepare(concat!(
            "UPDATE jobs SET worker_id = $3 WHERE seq = $1 AND claim_token = $2 AND status = ",
            job_status!(running)
        ))
        .map_err(err)?;
    let n = conn
        .client
        .execute(&stmt, &[&seq_of(id), &token, &thread_id])
        .map_err(err)?;
    Ok(n > 0)
}

/// Columns of the batched completions: seq, token, result, thread.
type Completions<'a> = (Vec<i64>, Vec<i64>, Vec<&'a [u8]>, Vec<&'a str>);

/// Applies a batch of writes in one transaction: the starts and the completions (nearly
/// every write) as one statement each, the rest one by one. Every write is fenced by its
/// claim token. Returns how many ended a claim.
pub fn record(
    conn: &mut Conn,
    settings: &PgSettings,
    writes: &[Write],
    client_now: i64,
) -> Result<usize> {
    let err = |e| settings.error(e);
    let started_stmt = conn
        .prepare(concat!(
            "UPDATE jobs AS j SET worker_id = u.w FROM unnest($1::bigint[], $2::bigint[], \
             $3::text[]) AS u(s, t, w) WHERE j.seq = u.s AND j.claim_token = u.t AND j.status = ",
            job_status!(running)
        ))
        .map_err(err)?;
    let complete_stmt = conn
        .prepare(concat!(
            "UPDATE jobs AS j SET status = ",
            job_status!(complete),
            ", result = u.r, completed_at = ",
            now_ms_sql!(),
            ", worker_id = u.w, error = NULL, claim_token = NULL \
             FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[]) AS u(s, t, r, w) \
             WHERE j.seq = u.s AND j.claim_token = u.t AND j.status = ",
            job_status!(running)
        ))
        .map_err(err)?;
    let mut started: (Vec<i64>, Vec<i64>, Vec<&str>) = Default::default();
    let mut done: Completions<'_> = Default::default();
    let mut others: Vec<&Write> = Vec::new();
    for w in writes {
        match w {
            Write::Started {
                id,
                token,
                thread_id,
            } => {
                started.0.push(seq_of(id));
                started.1.push(*token);
                started.2.push(thread_id);
            }
            Write::Complete {
                id,
                token,
                thread_id,
                result,
            } => {
                done.0.push(seq_of(id));
                done.1.push(*token);
                done.2.push(result);
                done.3.push(thread_id);
            }
            other => others.push(other),
        }
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = (|| -> std::result::Result<usize, postgres::Error> {
            let mut tx = conn.client.transaction()?;
            let mut ended = 0;
            if !started.0.is_empty() {
                tx.execute(&started_stmt, &[&started.0, &started.1, &started.2])?;
            }
            if !done.0.is_empty() {
                ended +=
                    tx.execute(&complete_stmt, &[&done.0, &done.1, &done.2, &done.3])? as usize;
            }
            for w in &others {
                if apply(&mut tx, w, client_now)? {
                    ended += 1;
                }
            }
            tx.commit()?;
            Ok(ended)
        })();
        match out {
            // Ending jobs that others depend on locks those dependents (the trigger of
            // schema migration 6), so two batches may deadlock; the server rolls one back,
            // and all of it can simply run again.
            Err(e) if attempt < 5 && e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => continue,
            out => return out.map_err(err),
        }
    }
}

/// The rare writes (retry, failure, requeue), one statement each.
fn apply(
    tx: &mut Transaction<'_>,
    write: &Write,
    client_now: i64,
) -> std::result::Result<bool, postgres::Error> {
    Ok(match write {
        Write::Started { .. } | Write::Complete { .. } => false,
        Write::Retry {
            id,
            token,
            thread_id,
            error,
            traceback,
            run_at,
            counted,
        } => {
            if finish_cancelled(tx, id, *token, error, thread_id)? {
                return Ok(true);
            }
            let delay = run_at - client_now;
            let row = tx.query_opt(
                concat!(
                    "UPDATE jobs SET status = ",
                    job_status!(pending),
                    ", scheduled_at = ",
                    now_ms_sql!(),
                    " + $3, error = $4, worker_id = $5, owner = NULL, claim_token = NULL, \
                     started_at = NULL, retry_count = retry_count + $6 \
                     WHERE seq = $1 AND claim_token = $2 AND status = ",
                    job_status!(running),
                    " RETURNING retry_count"
                ),
                &[
                    &seq_of(id),
                    token,
                    &delay,
                    error,
                    thread_id,
                    &i64::from(*counted),
                ],
            )?;
            if let Some(row) = row {
                let attempt: i64 = row.get(0);
                if *counted {
                    insert_error(tx, id, attempt, error, traceback)?;
                }
                true
            } else {
                false
            }
        }
        Write::Fail {
            id,
            token,
            thread_id,
            error,
            traceback,
            status,
            dead_metadata,
        } => {
            if finish_cancelled(tx, id, *token, error, thread_id)? {
                return Ok(true);
            }
            let row = tx.query_opt(
                concat!(
                    "UPDATE jobs SET status = $3, error = $4, completed_at = ",
                    now_ms_sql!(),
                    ", worker_id = $5, claim_token = NULL \
                     WHERE seq = $1 AND claim_token = $2 AND status = ",
                    job_status!(running),
                    " RETURNING retry_count"
                ),
                &[&seq_of(id), token, &(*status as i16), error, thread_id],
            )?;
            if let Some(row) = row {
                let retries: i64 = row.get(0);
                insert_error(tx, id, retries + 1, error, traceback)?;
                write_dead_letter(tx, id, dead_metadata.as_deref())?;
                true
            } else {
                false
            }
        }
        Write::Requeue { id, token } => {
            tx.execute(
                concat!(
                    "UPDATE jobs SET status = ",
                    job_status!(pending),
                    ", owner = NULL, claim_token = NULL, \
                 started_at = NULL, worker_id = NULL \
                 WHERE seq = $1 AND claim_token = $2 AND status = ",
                    job_status!(running)
                ),
                &[&seq_of(id), token],
            )? > 0
        }
    })
}

impl PgStorage {
    /// Claims ready jobs, optionally only of some task names. A claim whose answer was lost
    /// with its connection is looked up again by its token, here or at the next claim.
    pub(super) fn claim_where(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        tasks: Option<TaskFilter<'_>>,
    ) -> Result<Vec<ClaimedJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let unsure: Vec<(WorkerKey, i64)> =
            std::mem::take(&mut *self.unsure_claims.lock().unwrap_or_else(|p| p.into_inner()));
        if !unsure.is_empty() {
            let found = self.with(|c, s| {
                let mut all = Vec::new();
                for (who, token) in &unsure {
                    all.extend(claimed_by_token(c, s, who, *token)?);
                }
                Ok(all)
            });
            match found {
                Ok(jobs) if !jobs.is_empty() => {
                    log::warn!(
                        "recovered {} job(s) of a claim whose answer was lost",
                        jobs.len()
                    );
                    return Ok(jobs);
                }
                Ok(_) => {}
                Err(e) => {
                    self.unsure_claims
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(unsure);
                    return Err(e);
                }
            }
        }
        let limited = self.limits.get(|| self.with(limits::load))?;
        let token = new_token();
        let mut tried = false;
        let out = self.with(|c, s| {
            if std::mem::replace(&mut tried, true) {
                // Retried on a new connection: the first try may have committed.
                let jobs = claimed_by_token(c, s, owner, token)?;
                if !jobs.is_empty() {
                    return Ok(jobs);
                }
            }
            if limited.is_empty() {
                return claim(c, s, queues, owner, limit, token, tasks);
            }
            let out = limits::claim(c, s, queues, owner, limit, token, &limited, tasks)?;
            self.limits.set_wake_at(out.wake_at);
            Ok(out.jobs)
        });
        // Any failed try may have committed before its connection broke (a later try may
        // fail only to connect): look for this token's jobs at the next claim.
        if out.is_err() {
            let mut unsure = self.unsure_claims.lock().unwrap_or_else(|p| p.into_inner());
            unsure.push((owner.clone(), token));
            let excess = unsure.len().saturating_sub(MAX_UNSURE_CLAIMS);
            unsure.drain(..excess);
        }
        out
    }
}
