//! Plain data that flows through the engine: jobs to store, jobs claimed, outcomes, and the
//! status names users see. No SQL and no Python here.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: every timestamp taskito stores.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The life of a job. The integers are what SQLite stores; the strings are what users see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Pending = 0,
    Running = 1,
    Complete = 2,
    Failed = 3,
    Dead = 4,
    Cancelled = 5,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Complete,
        JobStatus::Failed,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    /// The status string of a job (`complete`, not `completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The key used by `stats()`, which counts finished jobs under `completed`.
    pub fn stats_key(self) -> &'static str {
        match self {
            JobStatus::Complete => "completed",
            other => other.as_str(),
        }
    }

    /// Parses a status as users write it; both `complete` and `completed` are accepted.
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "complete" | "completed" => JobStatus::Complete,
            "failed" => JobStatus::Failed,
            "dead" => JobStatus::Dead,
            "cancelled" | "canceled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn from_i64(v: i64) -> JobStatus {
        match v {
            // 6 is a job waiting for its dependencies (storage/dependencies.rs): users see
            // it as pending, but the ready index does not cover it.
            0 | 6 => JobStatus::Pending,
            1 => JobStatus::Running,
            2 => JobStatus::Complete,
            3 => JobStatus::Failed,
            4 => JobStatus::Dead,
            _ => JobStatus::Cancelled,
        }
    }

    /// The status users see of a stored row: a running row with no start recorded
    /// (`worker_id` unset) was claimed ahead of busy workers and has not begun, so it
    /// reads pending, and can be cancelled like one.
    pub fn shown(v: i64, started: bool) -> JobStatus {
        match JobStatus::from_i64(v) {
            JobStatus::Running if !started => JobStatus::Pending,
            status => status,
        }
    }

    /// Whether the job will not run again by itself.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Failed | JobStatus::Dead | JobStatus::Cancelled
        )
    }
}

/// A job to insert. Times are epoch milliseconds.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub task_name: String,
    pub queue: String,
    pub payload: Vec<u8>,
    pub priority: i64,
    pub scheduled_at: i64,
    pub max_retries: i64,
    pub retry_backoff: f64,
    pub timeout_ms: i64,
    pub unique_key: Option<String>,
    pub metadata: Option<String>,
    /// How long the finished job is kept before the maintenance sweep deletes it, whatever
    /// the queue-level retention says (`None`: the queue's retention decides).
    pub result_ttl_ms: Option<i64>,
}

/// A job handed to a worker: what it needs to run and to report back (the claim token
/// fences every write that ends the claim).
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub task_name: String,
    pub queue: String,
    pub payload: Vec<u8>,
    pub retry_count: i64,
    pub max_retries: i64,
    pub retry_backoff: f64,
    pub timeout_ms: i64,
    pub claim_token: i64,
    /// Results of the jobs it depends on, for a canvas step that takes them as its first
    /// argument (`None` for every other job: reading them costs nothing then).
    pub parents: Option<ParentResults>,
    /// When this process claimed it: a job that waited in the channel behind busy workers
    /// records its start before it runs (`worker.rs`).
    pub claimed_at: Instant,
    /// A claim of this job was lost before its start was recorded (its worker died): this
    /// run records its start before it runs, so a job that kills its process at once is
    /// counted against the crash-loop limit from its second run on.
    pub eager_start: bool,
}

/// How a canvas step receives the results of the jobs it depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassResult {
    /// Not at all (a plain dependency, or an immutable `si()` signature).
    #[default]
    None = 0,
    /// The one parent's result as the first argument (a chain link).
    First = 1,
    /// The list of every parent's result, in dependency order (a chord callback).
    All = 2,
}

impl PassResult {
    pub fn from_i64(v: i64) -> PassResult {
        match v {
            1 => PassResult::First,
            2 => PassResult::All,
            _ => PassResult::None,
        }
    }
}

/// The stored result bytes of a job's parents, in dependency order.
#[derive(Debug, Clone)]
pub struct ParentResults {
    pub mode: PassResult,
    pub results: Vec<Option<Vec<u8>>>,
}

/// A job's dependency: an existing job's id, or an earlier job of the same batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dep {
    Job(String),
    Batch(usize),
}

impl Dep {
    /// The id this dependency names, for job `index` of a batch whose earlier jobs got
    /// `ids`; a batch index that is not earlier is an error naming both.
    pub fn id_in_batch(&self, index: usize, ids: &[String]) -> crate::error::Result<String> {
        match self {
            Dep::Job(id) => Ok(id.clone()),
            Dep::Batch(k) if *k < index => Ok(ids[*k].clone()),
            Dep::Batch(k) => Err(crate::error::Error::invalid(
                "depends_on",
                format!("job {index} of the batch cannot depend on job {k}, which comes later"),
            )),
        }
    }
}

/// What a job carries beyond `NewJob`: dependencies, notes, expiry. Jobs without any of
/// these go through the plain `Storage::enqueue` and pay nothing for them.
#[derive(Debug, Clone, Default)]
pub struct JobLinks {
    pub depends_on: Vec<Dep>,
    pub pass_result: PassResult,
    /// Validated JSON (checked by the Python side).
    pub notes: Option<String>,
    /// Epoch ms after which the job, not yet started, is cancelled instead of run.
    pub expires_at: Option<i64>,
}

/// How one run of a job ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The task returned; the serialized result.
    Complete(Vec<u8>),
    /// The task raised, timed out or could not run. `retryable` is false for failures that
    /// another run cannot fix (unknown task, unreadable arguments, unpicklable result).
    Failed {
        error: String,
        traceback: String,
        retryable: bool,
        /// Set only for a task with retry rules (`crate::retry_rule`).
        rule: Option<crate::retry_rule::RetryRule>,
    },
}

/// One stored job, as the inspection API shows it (without payload and result bytes).
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: String,
    pub queue: String,
    pub task_name: String,
    pub status: JobStatus,
    pub priority: i64,
    pub retry_count: i64,
    pub max_retries: i64,
    pub created_at: i64,
    pub scheduled_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub error: Option<String>,
    pub progress: Option<i64>,
    pub worker_id: Option<String>,
    pub unique_key: Option<String>,
    pub metadata: Option<String>,
    pub timeout_ms: i64,
    /// JSON notes set at enqueue.
    pub notes: Option<String>,
}

/// A job's status with its stored result bytes and last error (for `JobResult.result()`).
#[derive(Debug, Clone)]
pub struct StoredOutcome {
    pub status: JobStatus,
    pub result: Option<Vec<u8>>,
    pub error: Option<String>,
}

/// One failed attempt (or recovery note) in a job's history.
#[derive(Debug, Clone)]
pub struct ErrorRecord {
    /// The row's own id (increasing).
    pub id: i64,
    pub job_id: String,
    pub attempt: i64,
    pub error: String,
    pub traceback: String,
    pub failed_at: i64,
}

/// A dead-letter row: a job that failed for good, kept with its arguments for `retry_dead`.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: String,
    pub original_job_id: String,
    pub task_name: String,
    pub queue: String,
    pub error: Option<String>,
    pub retry_count: i64,
    pub failed_at: i64,
    pub metadata: Option<String>,
}

/// One run of a worker: its id and the incarnation token drawn when it started. A process
/// restarted under the same id is a new incarnation, so its predecessor's claims are told
/// apart from its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerKey {
    pub worker_id: String,
    pub incarnation: i64,
}

impl WorkerKey {
    pub fn new(worker_id: impl Into<String>, incarnation: i64) -> WorkerKey {
        WorkerKey {
            worker_id: worker_id.into(),
            incarnation,
        }
    }

    /// A fresh incarnation of `worker_id`: a random non-zero token (0 is the incarnation
    /// of rows written before incarnations existed).
    pub fn fresh(worker_id: impl Into<String>) -> WorkerKey {
        WorkerKey::new(worker_id, fastrand::i64(1..i64::MAX))
    }
}

impl From<&str> for WorkerKey {
    fn from(worker_id: &str) -> WorkerKey {
        WorkerKey::new(worker_id, 0)
    }
}

/// A live registry row as liveness observers read it: `beats` goes up by one with every
/// heartbeat, whatever the clocks say.
#[derive(Debug, Clone)]
pub struct WorkerBeat {
    pub key: WorkerKey,
    pub hostname: String,
    pub pid: i64,
    pub beats: i64,
}

/// A registered worker process.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub worker_id: String,
    /// Tells apart two runs under one `worker_id` (not shown by `queue.workers()`).
    pub incarnation: i64,
    pub hostname: String,
    pub pid: i64,
    pub queues: String,
    pub started_at: i64,
    pub last_heartbeat: i64,
    pub status: String,
}

/// Filters of `list_jobs` (and `list_jobs_filtered`, which adds the text and time ones).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub queue: Option<String>,
    pub task_name: Option<String>,
    pub worker_id: Option<String>,
    /// A `LIKE` pattern found anywhere in the metadata (`%` and `_` are wildcards).
    pub metadata_like: Option<String>,
    /// A `LIKE` pattern found anywhere in the last error.
    pub error_like: Option<String>,
    /// Created strictly after / before these epoch ms.
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// One line a task logged about its own job.
#[derive(Debug, Clone)]
pub struct TaskLog {
    pub job_id: String,
    pub task_name: String,
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` or `RESULT`.
    pub level: String,
    pub message: String,
    /// JSON text, if the task passed extra fields.
    pub extra: Option<String>,
    pub logged_at: i64,
}
