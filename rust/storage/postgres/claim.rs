//! The hot path on PostgreSQL: enqueue, claim and the batched writes of the result handler.
//!
//! Time: every stored instant comes from the server's clock. A time the engine passes in
//! (a delay until `scheduled_at`, a retry's `run_at`) is turned into an offset from the
//! caller's clock and added to the server's, so hosts whose clocks disagree still agree on
//! what is ready and never run a job early.

use postgres::error::SqlState;
use postgres::{GenericClient, Statement, Transaction};

use super::job_control::finish_cancelled;
use super::links::with_parents;
use super::pool::{Conn, PgSettings};
use crate::error::Result;
use crate::job::{ClaimedJob, NewJob, WorkerKey};
use crate::storage::ids::{self, seq_of};
use crate::storage::{TaskFilter, Write};

/// The server's clock in epoch milliseconds, as of the start of the transaction.
macro_rules! now_ms_sql {
    () => {
        "(extract(epoch from now()) * 1000)::bigint"
    };
}
pub(crate) use now_ms_sql;

/// The one statement of an enqueue: sequence numbers, the rows, the queue names and the
/// wake-up notifications (once per queue), in one round trip. Rows come back in input order
/// with their id and whether they were inserted (false: a live job holds the unique key).
pub(super) const ENQUEUE: &str = concat!(
    "WITH input AS ( \
       SELECT nextval('jobs_seq') AS s, u.* FROM unnest($1::text[], $2::text[], $3::bytea[], \
         $4::bigint[], $5::bigint[], $6::bigint[], $7::float8[], $8::bigint[], $9::text[], \
         $10::text[], $11::text[], $13::bigint[]) \
         WITH ORDINALITY AS u(q, t, p, pr, d, mr, rb, tm, uk, md, px, rt, ord)), \
     ins AS ( \
       INSERT INTO jobs (seq, id, queue, task_name, payload, status, priority, created_at, \
         scheduled_at, max_retries, retry_backoff, timeout_ms, unique_key, metadata, \
         result_ttl_ms) \
       SELECT s, px || lpad(to_hex(s), 12, '0'), q, t, p, 0, pr, ",
    now_ms_sql!(),
    ", ",
    now_ms_sql!(),
    " + d, mr, rb, tm, uk, md, rt FROM input ORDER BY ord \
       ON CONFLICT (unique_key) WHERE unique_key > '' AND status IN (0, 1, 6) DO NOTHING \
       RETURNING seq), \
     noted AS (INSERT INTO queues (name) SELECT DISTINCT q FROM input ON CONFLICT DO NOTHING) \
     SELECT i.px || lpad(to_hex(i.s), 12, '0'), ins.seq IS NOT NULL, \
       (SELECT count(pg_notify($12, dq.q)) FROM (SELECT DISTINCT q FROM input) AS dq \
        WHERE $12::text IS NOT NULL) \
     FROM input AS i LEFT JOIN ins ON ins.seq = i.s ORDER BY i.ord"
);

/// Inserts jobs with one statement and returns their ids (for a `unique_key` that a pending
/// or running job holds, that job's id); notifies listening workers once per queue when
/// `notify` names the channel. Runs in the caller's transaction, if any.
pub fn enqueue_in(
    client: &mut impl GenericClient,
    stmt: &Statement,
    settings: &PgSettings,
    jobs: &[NewJob],
    client_now: i64,
    notify: Option<&str>,
) -> Result<Vec<String>> {
    let rows = enqueue_marked(client, stmt, settings, jobs, client_now, notify)?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

/// `enqueue_in`, telling for each job whether it was inserted (false: a live job holds its
/// unique key, and the id is that job's).
pub fn enqueue_marked(
    client: &mut impl GenericClient,
    stmt: &Statement,
    settings: &PgSettings,
    jobs: &[NewJob],
    client_now: i64,
    notify: Option<&str>,
) -> Result<Vec<(String, bool)>> {
    let err = |e| settings.error(e);
    let q: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    let t: Vec<&str> = jobs.iter().map(|j| j.task_name.as_str()).collect();
    let p: Vec<&[u8]> = jobs.iter().map(|j| j.payload.as_slice()).collect();
    let pr: Vec<i64> = jobs.iter().map(|j| j.priority).collect();
    let d: Vec<i64> = jobs.iter().map(|j| j.scheduled_at - client_now).collect();
    let mr: Vec<i64> = jobs.iter().map(|j| j.max_retries).collect();
    let rb: Vec<f64> = jobs.iter().map(|j| j.retry_backoff).collect();
    let tm: Vec<i64> = jobs.iter().map(|j| j.timeout_ms).collect();
    let uk: Vec<Option<&str>> = jobs.iter().map(|j| j.unique_key.as_deref()).collect();
    let md: Vec<Option<&str>> = jobs.iter().map(|j| j.metadata.as_deref()).collect();
    let rt: Vec<Option<i64>> = jobs.iter().map(|j| j.result_ttl_ms).collect();
    // The id's time prefix is the caller's clock: it only spreads ids, it orders nothing.
    let px: Vec<String> = jobs.iter().map(|_| ids::prefix(client_now)).collect();
    let rows = client
        .query(
            stmt,
            &[
                &q, &t, &p, &pr, &d, &mr, &rb, &tm, &uk, &md, &px, &notify, &rt,
            ],
        )
        .map_err(err)?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, job) in rows.iter().zip(jobs) {
        if row.get::<_, bool>(1) {
            out.push((row.get(0), true));
            continue;
        }
        let key = job.unique_key.as_deref().unwrap_or_default();
        let existing = client
            .query_opt(
                "SELECT id FROM jobs WHERE unique_key = $1 AND unique_key > '' \
                 AND status IN (0, 1, 6)",
                &[&key],
            )
            .map_err(err)?;
        // The holder may have finished in between: its id is still the answer.
        out.push((
            existing.map(|r| r.get(0)).unwrap_or_else(|| row.get(0)),
            false,
        ));
    }
    Ok(out)
}

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

/// The enqueue statement, prepared once per connection.
pub fn enqueue_statement(conn: &mut Conn, settings: &PgSettings) -> Result<Statement> {
    conn.prepare(ENQUEUE).map_err(|e| settings.error(e))
}

pub fn new_token() -> i64 {
    fastrand::i64(1..i64::MAX)
}

/// What a claim returns of each job it took (`j` is the jobs table), as `claimed_rows` reads it.
macro_rules! claimed_columns {
    () => {
        "j.id, j.task_name, j.queue, j.payload, j.retry_count, j.max_retries, \
         j.retry_backoff, j.timeout_ms, j.priority, j.scheduled_at, j.seq, j.pass_result, \
         j.eager_start"
    };
}
pub(crate) use claimed_columns;

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
                 WHERE status = 0 AND queue = qn.name AND scheduled_at <= ",
            now_ms_sql!(),
            $filter,
            "   ORDER BY priority DESC, scheduled_at, seq LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) AS r \
               ORDER BY r.priority DESC, r.scheduled_at, r.seq LIMIT $2), ",
            // A job picked after its expiry time is cancelled instead of handed out.
            "expired AS (UPDATE jobs AS e SET status = 5, completed_at = ",
            now_ms_sql!(),
            ", expires_at = -e.expires_at, error = 'expired: not started before its expiry time' \
               FROM picked WHERE e.seq = picked.seq AND picked.expired AND e.status = 0), \
             claimed AS (UPDATE jobs AS j SET status = 1, owner = $3, claim_token = $4, \
               started_at = ",
            now_ms_sql!(),
            // Started: it can no longer expire (the time is kept, negated, for replay).
            ", worker_id = NULL, incarnation = $5, expires_at = -abs(j.expires_at) FROM picked \
               WHERE j.seq = picked.seq AND NOT picked.expired AND j.status = 0 \
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
        .prepare(
            "SELECT id, task_name, queue, payload, retry_count, max_retries, retry_backoff, \
             timeout_ms, priority, scheduled_at, seq, pass_result, eager_start FROM jobs \
             WHERE status = 1 AND claim_token = $1 AND owner = $2 AND incarnation = $3",
        )
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

/// Claimed rows in claim order, each with how it takes its parents' results.
/// `claimed_at`: an instant before the claim's statement was sent; `None` for a claim made
/// at an unknown earlier time, whose jobs then record their start before running.
pub(super) fn claimed_rows<'a>(
    rows: impl Iterator<Item = &'a postgres::Row>,
    token: i64,
    claimed_at: Option<std::time::Instant>,
) -> Vec<(ClaimedJob, i16)> {
    let mut found: Vec<(i64, i64, i64, i16, ClaimedJob)> = rows
        .map(|r| {
            (
                r.get(8),
                r.get(9),
                r.get(10),
                r.get(11),
                claimed_job(r, token, 12, claimed_at),
            )
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found.into_iter().map(|f| (f.4, f.3)).collect()
}

/// A claimed job from the first eight columns of a claim's row and its `eager_start`
/// column; `claimed_at` as for `claimed_rows`.
fn claimed_job(
    r: &postgres::Row,
    token: i64,
    eager_start: usize,
    claimed_at: Option<std::time::Instant>,
) -> ClaimedJob {
    ClaimedJob {
        id: r.get(0),
        task_name: r.get(1),
        queue: r.get(2),
        payload: r.get(3),
        retry_count: r.get(4),
        max_retries: r.get(5),
        retry_backoff: r.get(6),
        timeout_ms: r.get(7),
        claim_token: token,
        parents: None,
        claimed_at: claimed_at.unwrap_or_else(std::time::Instant::now),
        eager_start: claimed_at.is_none() || r.get::<_, bool>(eager_start),
    }
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
            "UPDATE jobs SET status = 1, owner = $2, claim_token = $3, started_at = ",
            now_ms_sql!(),
            ", completed_at = NULL, worker_id = NULL, incarnation = $5, \
             expires_at = -abs(expires_at) \
             WHERE seq = $4 AND id = $1 AND status <> 1 \
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
        .prepare(
            "UPDATE jobs SET worker_id = $3 WHERE seq = $1 AND claim_token = $2 AND status = 1",
        )
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
        .prepare(
            "UPDATE jobs AS j SET worker_id = u.w FROM unnest($1::bigint[], $2::bigint[], \
             $3::text[]) AS u(s, t, w) WHERE j.seq = u.s AND j.claim_token = u.t AND j.status = 1",
        )
        .map_err(err)?;
    let complete_stmt = conn
        .prepare(concat!(
            "UPDATE jobs AS j SET status = 2, result = u.r, completed_at = ",
            now_ms_sql!(),
            ", worker_id = u.w, error = NULL, claim_token = NULL \
             FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[]) AS u(s, t, r, w) \
             WHERE j.seq = u.s AND j.claim_token = u.t AND j.status = 1"
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
        } => {
            if finish_cancelled(tx, id, *token, error, thread_id)? {
                return Ok(true);
            }
            let delay = run_at - client_now;
            let row = tx.query_opt(
                concat!(
                    "UPDATE jobs SET status = 0, scheduled_at = ",
                    now_ms_sql!(),
                    " + $3, error = $4, worker_id = $5, owner = NULL, claim_token = NULL, \
                     started_at = NULL, retry_count = retry_count + 1 \
                     WHERE seq = $1 AND claim_token = $2 AND status = 1 RETURNING retry_count"
                ),
                &[&seq_of(id), token, &delay, error, thread_id],
            )?;
            if let Some(row) = row {
                let attempt: i64 = row.get(0);
                insert_error(tx, id, attempt, error, traceback)?;
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
        } => {
            if finish_cancelled(tx, id, *token, error, thread_id)? {
                return Ok(true);
            }
            let row = tx.query_opt(
                concat!(
                    "UPDATE jobs SET status = $3, error = $4, completed_at = ",
                    now_ms_sql!(),
                    ", worker_id = $5, claim_token = NULL \
                     WHERE seq = $1 AND claim_token = $2 AND status = 1 RETURNING retry_count"
                ),
                &[&seq_of(id), token, &(*status as i16), error, thread_id],
            )?;
            if let Some(row) = row {
                let retries: i64 = row.get(0);
                insert_error(tx, id, retries + 1, error, traceback)?;
                write_dead_letter(tx, id)?;
                true
            } else {
                false
            }
        }
        Write::Requeue { id, token } => {
            tx.execute(
                "UPDATE jobs SET status = 0, owner = NULL, claim_token = NULL, \
                 started_at = NULL, worker_id = NULL \
                 WHERE seq = $1 AND claim_token = $2 AND status = 1",
                &[&seq_of(id), token],
            )? > 0
        }
    })
}

pub(super) fn insert_error(
    tx: &mut Transaction<'_>,
    id: &str,
    attempt: i64,
    error: &str,
    traceback: &str,
) -> std::result::Result<(), postgres::Error> {
    tx.execute(
        concat!(
            "INSERT INTO job_errors (job_id, attempt, error, traceback, failed_at) \
             VALUES ($1, $2, $3, $4, ",
            now_ms_sql!(),
            ")"
        ),
        &[&id, &attempt, &error, &traceback],
    )?;
    Ok(())
}

/// Copies a job that failed for good into the dead-letter table (one letter per job).
pub(super) fn write_dead_letter(
    tx: &mut Transaction<'_>,
    id: &str,
) -> std::result::Result<(), postgres::Error> {
    tx.execute(
        "DELETE FROM dead_letters WHERE original_job_id = $1",
        &[&id],
    )?;
    tx.execute(
        concat!(
            "INSERT INTO dead_letters (id, original_job_id, task_name, queue, payload, \
             priority, max_retries, retry_backoff, timeout_ms, metadata, error, \
             retry_count, failed_at, notes) \
             SELECT $2, id, task_name, queue, payload, priority, max_retries, \
             retry_backoff, timeout_ms, metadata, error, retry_count, ",
            now_ms_sql!(),
            ", notes FROM jobs WHERE seq = $1"
        ),
        &[&seq_of(id), &uuid::Uuid::now_v7().to_string()],
    )?;
    Ok(())
}
