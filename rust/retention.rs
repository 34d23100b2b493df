//! How long each kind of stored row is kept, and what a sweep or its dry run found. Plain
//! data: the SQL is in `storage/retention.rs`, the timer in the scheduler.

/// Windows in milliseconds; `None` keeps that kind of row forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Finished jobs (complete, failed, dead, cancelled), in the jobs table and the archive,
    /// by their completion time.
    pub archived_jobs: Option<i64>,
    pub dead_letter: Option<i64>,
    pub task_logs: Option<i64>,
    /// Per-task run metrics. taskito keeps none in the database, so nothing is ever swept
    /// for it; the window is accepted and reported for compatibility.
    pub task_metrics: Option<i64>,
    pub job_errors: Option<i64>,
    /// True when no retention was configured and these are the defaults.
    pub defaulted: bool,
}

impl Retention {
    /// Whether any window is set (a sweep has something to do).
    pub fn enabled(&self) -> bool {
        self.archived_jobs.is_some()
            || self.dead_letter.is_some()
            || self.task_logs.is_some()
            || self.task_metrics.is_some()
            || self.job_errors.is_some()
    }

    /// The shortest window set, which bounds how often a sweep is worth running.
    pub fn shortest(&self) -> Option<i64> {
        [
            self.archived_jobs,
            self.dead_letter,
            self.task_logs,
            self.task_metrics,
            self.job_errors,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Rows a sweep deleted, or a dry run would delete, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionCounts {
    pub archived_jobs: i64,
    pub dead_letter: i64,
    pub task_logs: i64,
    pub task_metrics: i64,
    pub job_errors: i64,
}

impl RetentionCounts {
    pub fn total(&self) -> i64 {
        self.archived_jobs + self.dead_letter + self.task_logs + self.task_metrics + self.job_errors
    }
}

/// What the last sweep of any worker ran with, as stored for `effective_retention()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    pub windows: Retention,
    pub reported_at: i64,
}

/// The time before which a window's rows go: saturates instead of overflowing for windows
/// past any clock (nothing is that old, so nothing goes).
pub fn cutoff(now: i64, window_ms: i64) -> i64 {
    now.saturating_sub(window_ms)
}
