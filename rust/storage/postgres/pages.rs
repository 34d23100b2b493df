//! On PostgreSQL: paused queues, keyset pages (newest first, never an OFFSET scan),
//! completed-jobs throughput and the argument bytes of one job. A jobs cursor is the hex
//! `seq` of the last row shown, as on SQLite.

use postgres::types::ToSql;

use super::inspect::push_text_filters;
use super::pool::{Conn, PgSettings};
use super::rows::{job_columns, job_row};
use crate::error::{Error, Result};
use crate::job::{DeadLetter, JobFilter, JobRecord};
use crate::storage::cursor::{check_limit, page, parse_cursor};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;
use crate::storage::rules::status_sql;
use crate::storage::JobPage;

pub fn jobs_after(
    c: &mut Conn,
    s: &PgSettings,
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
    let fetch = limit + 1;
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&before];
    let mut sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE seq < $1").to_string();
    if let Some(st) = f.status {
        sql.push_str(&format!(" AND {}", status_sql(st)));
    }
    if let Some(q) = &f.queue {
        args.push(q);
        sql.push_str(&format!(" AND queue = ${}", args.len()));
    }
    if let Some(t) = &f.task_name {
        args.push(t);
        sql.push_str(&format!(" AND task_name = ${}", args.len()));
    }
    if let Some(w) = &f.worker_id {
        args.push(w);
        let n = args.len();
        sql.push_str(&format!(" AND (worker_id = ${n} OR owner = ${n})"));
    }
    push_text_filters(&mut sql, &mut args, f);
    args.push(&fetch);
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", args.len()));
    let rows = c.client.query(&sql, &args).map_err(|e| s.error(e))?;
    let jobs: Vec<JobRecord> = rows.iter().map(job_row).collect();
    Ok(page(jobs, limit, |j| seq_of(&j.id)))
}

pub fn dead_after(
    c: &mut Conn,
    s: &PgSettings,
    after: Option<&str>,
    limit: i64,
) -> Result<JobPage<DeadLetter>> {
    check_limit(limit)?;
    let before = parse_cursor(after)?;
    let rows = c
        .client
        .query(
            "SELECT seq, id, original_job_id, task_name, queue, error, retry_count, failed_at, \
             metadata FROM dead_letters WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
            &[&before, &(limit + 1)],
        )
        .map_err(|e| s.error(e))?;
    let items: Vec<(i64, DeadLetter)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                DeadLetter {
                    id: r.get(1),
                    original_job_id: r.get(2),
                    task_name: r.get(3),
                    queue: r.get(4),
                    error: r.get(5),
                    retry_count: r.get(6),
                    failed_at: r.get(7),
                    metadata: r.get(8),
                },
            )
        })
        .collect();
    let p = page(items, limit, |(seq, _)| *seq);
    Ok(JobPage {
        items: p.items.into_iter().map(|(_, d)| d).collect(),
        next_cursor: p.next_cursor,
    })
}

pub fn throughput(
    c: &mut Conn,
    s: &PgSettings,
    since: i64,
    bucket_ms: i64,
) -> Result<Vec<(i64, i64)>> {
    if bucket_ms <= 0 {
        return Err(Error::invalid(
            "bucket",
            format!("{bucket_ms} ms (must be positive)"),
        ));
    }
    let rows = c
        .client
        .query(
            concat!(
                "SELECT $1 + ((completed_at - $1) / $2) * $2 AS b, count(*) FROM jobs \
             WHERE status = ",
                job_status!(complete),
                " AND completed_at >= $1 GROUP BY b ORDER BY b"
            ),
            &[&since, &bucket_ms],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub fn payload(c: &mut Conn, s: &PgSettings, id: &str) -> Result<Option<Vec<u8>>> {
    let row = c
        .client
        .query_opt(
            "SELECT payload FROM jobs WHERE seq = $2 AND id = $1",
            &[&id, &seq_of(id)],
        )
        .map_err(|e| s.error(e))?;
    Ok(row.map(|r| r.get(0)))
}
