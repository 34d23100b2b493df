//! What both dialects must agree on: which rows a status means to users, the cancel window
//! of a claimed job, what recovery does with a job that lost its worker, and the small
//! helpers of schedules. Each backend writes its own SQL around these.

use super::model::QueueCounts;
use crate::error::{Error, Result};
use crate::job::JobStatus;
use crate::schedule::Schedule;

/// A job status as the SQL literal both stores write: `JobStatus as i64`, and `waiting` for
/// a job whose dependencies are not all complete (stored apart so the claim's index skips
/// it; users see it pending). For `concat!`; the test below keeps it equal to the enum.
macro_rules! job_status {
    (pending) => {
        "0"
    };
    (running) => {
        "1"
    };
    (complete) => {
        "2"
    };
    (failed) => {
        "3"
    };
    (dead) => {
        "4"
    };
    (cancelled) => {
        "5"
    };
    (waiting) => {
        "6"
    };
}
pub(crate) use job_status;

/// How old (ms, on the store's clock) a claim with no start recorded must be before
/// `cancel` takes its job. A worker records the start of a job it takes 20 ms or more after
/// the claim (`worker::CLAIMED_AHEAD_AFTER`), so a job cancelled past this can never start;
/// and one taken sooner has had its start recorded by then (the result handler's delayed
/// mark, unless the store lags), so `cancel` does not take a job that runs.
pub const CANCEL_CLAIMED_AFTER_MS: i64 = 200;

/// Moves the claimed jobs that have not started (`unstarted`: per queue) from `running` to
/// `pending` in `counts`, as users see them.
pub(crate) fn move_unstarted(
    mut counts: QueueCounts,
    unstarted: Vec<(String, i64)>,
) -> QueueCounts {
    for (queue, n) in unstarted {
        if let Some(running) = counts
            .iter_mut()
            .find(|(q, s, _)| *q == queue && *s == JobStatus::Running)
        {
            running.2 -= n;
        }
        counts.push((queue, JobStatus::Pending, n));
    }
    counts.retain(|(_, _, n)| *n > 0);
    counts
}

/// The rows users see with status `s` (a literal condition: no parameter, so a listing's
/// statement is prepared once per status). Jobs waiting for their dependencies (6) and
/// claimed jobs not yet started are pending to users.
pub(crate) fn status_sql(s: JobStatus) -> String {
    match s {
        JobStatus::Pending => concat!(
            "(status IN (",
            job_status!(pending),
            ", ",
            job_status!(waiting),
            ") OR (status = ",
            job_status!(running),
            " AND worker_id IS NULL))"
        )
        .into(),
        JobStatus::Running => concat!(
            "(status = ",
            job_status!(running),
            " AND worker_id IS NOT NULL)"
        )
        .into(),
        other => format!("status = {}", other as i64),
    }
}

/// How many times a job may be put back after losing its worker before it is dead-lettered.
pub const MAX_RECOVERIES: i64 = 5;

/// What recovery does with a job that lost its worker, and the note it adds to the job's
/// history: `(dead-letter it, note)`. A job that lost its worker after starting more than
/// `MAX_RECOVERIES` times is dead-lettered; one that never started goes back uncounted.
pub(crate) fn recovery_note(worker: &str, recoveries: i64, started: bool) -> (bool, String) {
    if !started {
        return (
            false,
            format!(
                "worker {worker} stopped heartbeating before the job started; job put back to \
                 pending (not counted as a lost run)"
            ),
        );
    }
    let dead = recoveries > MAX_RECOVERIES;
    let note = if dead {
        format!(
            "worker {worker} stopped heartbeating; the job lost its worker {recoveries} times \
             and is dead-lettered"
        )
    } else {
        format!("worker {worker} stopped heartbeating; job put back to pending")
    };
    (dead, note)
}

pub(crate) fn next_or_err(schedule: &Schedule, name: &str, after: i64) -> Result<i64> {
    schedule.next_after(after).ok_or_else(|| {
        Error::invalid(
            "cron",
            format!("schedule {name:?} has no due time after now"),
        )
    })
}

pub(crate) fn not_found(name: &str) -> Error {
    Error::NotFound {
        kind: "periodic schedule",
        id: name.to_string(),
    }
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The statuses as SQL literals for `format!` strings (see `job_status!`).
pub(crate) const SQL_PENDING: &str = job_status!(pending);
pub(crate) const SQL_RUNNING: &str = job_status!(running);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_statuses_are_the_enums_numbers() {
        let sql = [
            job_status!(pending),
            job_status!(running),
            job_status!(complete),
            job_status!(failed),
            job_status!(dead),
            job_status!(cancelled),
        ];
        assert_eq!((SQL_PENDING, SQL_RUNNING), (sql[0], sql[1]));
        for (status, literal) in JobStatus::ALL.iter().zip(sql) {
            assert_eq!(literal, (*status as i64).to_string(), "{status:?}");
        }
        // Waiting comes after every status users see, outside the enum.
        assert_eq!(
            job_status!(waiting),
            (JobStatus::ALL.len() as i64).to_string()
        );
    }
}
