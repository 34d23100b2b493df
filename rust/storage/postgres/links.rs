//! Links between jobs on PostgreSQL: dependencies and canvas steps, with notes and expiry
//! stored alongside. The same rules as SQLite (`storage/dependencies.rs`): a job with an
//! unmet dependency is stored as status 6 (waiting), outside the ready index, so the claim
//! never sees it. Release and cascade happen in the transaction that ends a parent, in the
//! `jobs_ended` trigger (schema migration 6), whatever statement ended it.

use postgres::{GenericClient, Transaction};

use super::bounds::{check_pending, lock_pending};
use super::pool::{Conn, PgSettings};
use super::rows::{enqueue_marked, enqueue_statement, now_ms_sql};
use crate::error::{Error, Result};
use crate::job::{ClaimedJob, Dep, JobLinks, JobStatus, NewJob, ParentResults, PassResult};
use crate::storage::ids::seq_of;

const PENDING: i16 = 0;
const RUNNING: i16 = 1;
const COMPLETE: i16 = 2;
const CANCELLED: i16 = 5;
const WAITING: i16 = 6;

/// A parent of a job being inserted: `(id, seq, status)`.
type Parent = (String, i64, i16);

/// Inserts jobs with their links in one transaction (see `Storage::enqueue_linked`). Each
/// parent row is locked before its status is read, so a parent ending meanwhile either ends
/// before (and the new job starts pending or cancelled) or after this commit (and its
/// trigger sees the new edge). `max_pending` bounds queues as `enqueue_bounded` does.
#[allow(clippy::too_many_arguments)]
pub fn enqueue_linked(
    conn: &mut Conn,
    s: &PgSettings,
    jobs: &[NewJob],
    links: &[JobLinks],
    max_pending: &[(String, i64)],
    client_now: i64,
    notify: Option<&str>,
) -> Result<Vec<String>> {
    if jobs.len() != links.len() {
        return Err(Error::invalid("links", "one entry per job is needed"));
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let err = |e| s.error(e);
    let mut bounds: Vec<(&str, i64)> = max_pending
        .iter()
        .filter(|(q, _)| jobs.iter().any(|j| &j.queue == q))
        .map(|(q, n)| (q.as_str(), *n))
        .collect();
    bounds.sort_unstable();
    bounds.dedup_by(|a, b| a.0 == b.0);
    let stmt = enqueue_statement(conn, s)?;
    let mut tx = conn.client.transaction().map_err(err)?;
    lock_pending(&mut tx, s, &bounds)?;
    let mut ids: Vec<String> = Vec::with_capacity(jobs.len());
    for (i, (job, link)) in jobs.iter().zip(links).enumerate() {
        let parents = lock_parents(&mut tx, s, &link.depends_on, i, &ids)?;
        let marked = enqueue_marked(
            &mut tx,
            &stmt,
            s,
            std::slice::from_ref(job),
            client_now,
            notify,
        )?;
        let Some((id, inserted)) = marked.into_iter().next() else {
            return Err(Error::invalid("jobs", "a job was not stored"));
        };
        if inserted {
            link_job(&mut tx, &id, link, &parents, client_now).map_err(err)?;
        }
        ids.push(id);
    }
    check_pending(&mut tx, s, &bounds)?;
    tx.commit().map_err(err)?;
    Ok(ids)
}

/// Resolves and locks the parents of job `index` of the batch, in seq order (so two
/// producers sharing parents never wait on each other in a cycle); returned in dependency
/// order. A parent that does not exist is `NotFound`.
fn lock_parents(
    tx: &mut Transaction<'_>,
    s: &PgSettings,
    deps: &[Dep],
    index: usize,
    ids: &[String],
) -> Result<Vec<Parent>> {
    let mut wanted: Vec<(String, i64)> = Vec::with_capacity(deps.len());
    for dep in deps {
        let id = dep.id_in_batch(index, ids)?;
        let seq = seq_of(&id);
        wanted.push((id, seq));
    }
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by_key(|&i| wanted[i].1);
    let mut status: Vec<Option<i16>> = vec![None; wanted.len()];
    for i in order {
        let (id, seq) = &wanted[i];
        let row = tx
            .query_opt(
                "SELECT status FROM jobs WHERE seq = $1 AND id = $2 FOR UPDATE",
                &[seq, id],
            )
            .map_err(|e| s.error(e))?;
        match row {
            Some(r) => status[i] = Some(r.get(0)),
            None => {
                return Err(Error::NotFound {
                    kind: "job",
                    id: id.clone(),
                })
            }
        }
    }
    Ok(wanted
        .into_iter()
        .zip(status)
        .map(|((id, seq), st)| (id, seq, st.unwrap_or(PENDING)))
        .collect())
}

/// Sets the links of a job just inserted (pending): its starting status, notes, expiry and
/// edges, and marks its parents as having dependents.
fn link_job(
    tx: &mut Transaction<'_>,
    id: &str,
    link: &JobLinks,
    parents: &[Parent],
    client_now: i64,
) -> std::result::Result<(), postgres::Error> {
    let failed = parents
        .iter()
        .find(|p| !matches!(p.2, PENDING | RUNNING | COMPLETE | WAITING));
    let (status, error) = match failed {
        Some((pid, _, st)) => (
            CANCELLED,
            Some(format!(
                "dependency {pid} ended {}",
                JobStatus::from_i64(*st as i64).as_str()
            )),
        ),
        None if parents.iter().all(|p| p.2 == COMPLETE) => (PENDING, None),
        None => (WAITING, None),
    };
    // Expiry is stored on the server's clock, as every instant is.
    let expires_in: Option<i64> = link.expires_at.map(|at| at - client_now);
    tx.execute(
        concat!(
            "UPDATE jobs SET status = $2::smallint, error = $3, \
             completed_at = CASE WHEN $2::smallint = 5 THEN ",
            now_ms_sql!(),
            " END, notes = $4, expires_at = ",
            now_ms_sql!(),
            " + $5, pass_result = $6 WHERE seq = $1"
        ),
        &[
            &seq_of(id),
            &status,
            &error,
            &link.notes,
            &expires_in,
            &(link.pass_result as i16),
        ],
    )?;
    if parents.is_empty() {
        return Ok(());
    }
    let parent_ids: Vec<&str> = parents.iter().map(|p| p.0.as_str()).collect();
    let parent_seqs: Vec<i64> = parents.iter().map(|p| p.1).collect();
    tx.execute(
        "INSERT INTO job_dependencies (job_id, depends_on, job_seq, depends_on_seq) \
         SELECT $1, u.id, $2, u.seq FROM unnest($3::text[], $4::bigint[]) \
         WITH ORDINALITY AS u(id, seq, ord) ORDER BY u.ord",
        &[&id, &seq_of(id), &parent_ids, &parent_seqs],
    )?;
    tx.execute(
        "UPDATE jobs SET has_dependents = true WHERE seq = ANY($1) AND NOT has_dependents",
        &[&parent_seqs],
    )?;
    Ok(())
}

/// `(dependencies, dependents)` of a job, as ids in dependency order.
pub fn job_links(c: &mut Conn, s: &PgSettings, id: &str) -> Result<(Vec<String>, Vec<String>)> {
    let seq = seq_of(id);
    let mut read = |sql: &str| -> Result<Vec<String>> {
        let rows = c.client.query(sql, &[&seq]).map_err(|e| s.error(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    };
    Ok((
        read("SELECT depends_on FROM job_dependencies WHERE job_seq = $1 ORDER BY id")?,
        read("SELECT job_id FROM job_dependencies WHERE depends_on_seq = $1 ORDER BY id")?,
    ))
}

/// Claimed jobs with their parents' results, for the canvas steps that take them (the
/// other jobs cost nothing here).
pub fn with_parents(
    client: &mut impl GenericClient,
    s: &PgSettings,
    claimed: Vec<(ClaimedJob, i16)>,
) -> Result<Vec<ClaimedJob>> {
    let mut out = Vec::with_capacity(claimed.len());
    for (mut job, mode) in claimed {
        if mode != 0 {
            let rows = client
                .query(
                    "SELECT p.result FROM job_dependencies d JOIN jobs p \
                     ON p.seq = d.depends_on_seq WHERE d.job_seq = $1 ORDER BY d.id",
                    &[&seq_of(&job.id)],
                )
                .map_err(|e| s.error(e))?;
            job.parents = Some(ParentResults {
                mode: PassResult::from_i64(mode as i64),
                results: rows.iter().map(|r| r.get(0)).collect(),
            });
        }
        out.push(job);
    }
    Ok(out)
}
