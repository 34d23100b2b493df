//! Keyset pages (newest first, never an OFFSET scan), completed-jobs throughput and the
//! argument bytes of one job: the reads behind the dashboard.
//!
//! A jobs cursor is the hex `seq` of the last row shown; the next page reads `seq < it`,
//! so rows inserted meanwhile (higher seqs) never make a page skip or repeat a row.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::inspect::push_text_filters;
use super::rows::{job_row, JOB_COLUMNS};
use crate::error::{Error, Result};
use crate::job::{DeadLetter, JobFilter, JobRecord, JobStatus};
use crate::storage::cursor::{check_limit, page, parse_cursor};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;
use crate::storage::JobPage;

/// Below this many rows matching the indexed filters (status, queue), a page reads them
/// through the status index and sorts; above it, walking the table backwards from the
/// cursor finds a page's rows sooner than the sort would.
const SORT_LIMIT: i64 = 10_000;

pub fn jobs_after(
    c: &Connection,
    f: &JobFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<JobPage<JobRecord>> {
    check_limit(limit)?;
    let before = parse_cursor(after)?;
    if limit == 0 {
        return Ok(JobPage {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    // The indexed part of the filter: status and queue lead the status index.
    // Pending to users: waiting for dependencies (6), and claimed but not started (running
    // without a start recorded; told apart outside the index).
    let statuses: Vec<i64> = match f.status {
        Some(JobStatus::Pending) => vec![0, 1, 6],
        Some(s) => vec![s as i64],
        None => JobStatus::ALL
            .iter()
            .map(|s| *s as i64)
            .chain([6])
            .collect(),
    };
    let in_list = statuses
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut indexed = format!("status IN ({in_list})");
    let mut args: Vec<Value> = vec![before.into()];
    if let Some(q) = &f.queue {
        args.push(q.clone().into());
        indexed.push_str(&format!(" AND queue = ?{}", args.len()));
    }
    let mut rest = String::from(match f.status {
        Some(JobStatus::Pending) => concat!(
            " AND (status <> ",
            job_status!(running),
            " OR worker_id IS NULL)"
        ),
        Some(JobStatus::Running) => " AND worker_id IS NOT NULL",
        _ => "",
    });
    if let Some(t) = &f.task_name {
        args.push(t.clone().into());
        rest.push_str(&format!(" AND task_name = ?{}", args.len()));
    }
    if let Some(w) = &f.worker_id {
        args.push(w.clone().into());
        let n = args.len();
        rest.push_str(&format!(" AND (worker_id = ?{n} OR owner = ?{n})"));
    }
    push_text_filters(&mut rest, &mut args, f);
    args.push((limit + 1).into());
    let limit_arg = args.len();

    let narrow = f.status.is_some() || f.queue.is_some();
    let use_index = narrow && {
        // Bounded count over the index alone: at most SORT_LIMIT entries are read.
        let count_args: Vec<Value> = args[..if f.queue.is_some() { 2 } else { 1 }].to_vec();
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_by_status \
             WHERE {indexed} AND seq < ?1 LIMIT {SORT_LIMIT})"
        );
        let n: i64 = c
            .prepare_cached(&sql)?
            .query_row(params_from_iter(count_args), |r| r.get(0))?;
        n < SORT_LIMIT
    };
    let source = if use_index {
        "jobs INDEXED BY jobs_by_status"
    } else {
        // Backwards along the rowid from the cursor; stops after limit + 1 matches.
        "jobs NOT INDEXED"
    };
    let where_indexed = if narrow {
        format!(" AND {indexed}")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM {source} WHERE seq < ?1{where_indexed}{rest} \
         ORDER BY seq DESC LIMIT ?{limit_arg}"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args), job_row)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(page(rows, limit, |j| seq_of(&j.id)))
}

pub fn dead_after(c: &Connection, after: Option<&str>, limit: i64) -> Result<JobPage<DeadLetter>> {
    check_limit(limit)?;
    let before = parse_cursor(after)?;
    let mut stmt = c.prepare_cached(
        "SELECT seq, id, original_job_id, task_name, queue, error, retry_count, failed_at, \
         metadata FROM dead_letters WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![before, limit + 1], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                DeadLetter {
                    id: r.get(1)?,
                    original_job_id: r.get(2)?,
                    task_name: r.get(3)?,
                    queue: r.get(4)?,
                    error: r.get(5)?,
                    retry_count: r.get(6)?,
                    failed_at: r.get(7)?,
                    metadata: r.get(8)?,
                },
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let p = page(rows, limit, |(seq, _)| *seq);
    Ok(JobPage {
        items: p.items.into_iter().map(|(_, d)| d).collect(),
        next_cursor: p.next_cursor,
    })
}

pub fn throughput(c: &Connection, since: i64, bucket_ms: i64) -> Result<Vec<(i64, i64)>> {
    if bucket_ms <= 0 {
        return Err(Error::invalid(
            "bucket",
            format!("{bucket_ms} ms (must be positive)"),
        ));
    }
    let queues: Vec<String> = {
        let mut stmt = c.prepare_cached("SELECT name FROM queues")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    // One range of the status index per queue: (status, queue, completed_at) leads with
    // both equalities, so each read touches only the window's rows.
    let mut stmt = c.prepare_cached(concat!(
        "SELECT (completed_at - ?2) / ?3, COUNT(*) FROM jobs INDEXED BY jobs_by_status \
         WHERE status = ",
        job_status!(complete),
        " AND queue = ?1 AND completed_at >= ?2 GROUP BY 1"
    ))?;
    let mut buckets: std::collections::BTreeMap<i64, i64> = Default::default();
    for q in &queues {
        let rows = stmt.query_map(params![q, since, bucket_ms], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (b, n) = row?;
            *buckets.entry(since + b * bucket_ms).or_default() += n;
        }
    }
    Ok(buckets.into_iter().collect())
}

pub fn payload(c: &Connection, id: &str) -> Result<Option<Vec<u8>>> {
    Ok(
        c.prepare_cached("SELECT payload FROM jobs WHERE seq = ?2 AND id = ?1")?
            .query_row(params![id, seq_of(id)], |r| r.get(0))
            .optional()?,
    )
}
