//! What flows from the scheduler and the worker threads to the result handler: a job
//! reference without its payload, and the events that end or annotate a claim.

use crate::job::{ClaimedJob, Outcome};

/// What a result needs to know about its job, without the payload.
#[derive(Debug, Clone)]
pub struct JobRef {
    pub id: String,
    pub token: i64,
    pub task_name: String,
    pub retry_count: i64,
    pub max_retries: i64,
    pub retry_backoff: f64,
    pub timeout_ms: i64,
}

impl From<&ClaimedJob> for JobRef {
    fn from(j: &ClaimedJob) -> JobRef {
        JobRef {
            id: j.id.clone(),
            token: j.claim_token,
            task_name: j.task_name.clone(),
            retry_count: j.retry_count,
            max_retries: j.max_retries,
            retry_backoff: j.retry_backoff,
            timeout_ms: j.timeout_ms,
        }
    }
}

/// Messages to the result handler.
#[derive(Debug)]
pub enum Event {
    Started {
        id: String,
        token: i64,
        thread_id: String,
    },
    Finished {
        job: JobRef,
        thread_id: String,
        outcome: Outcome,
    },
    /// Claimed but not run: back to pending as it was.
    Requeue(JobRef),
    /// Flush and exit; sent by the engine after every producer of events is done.
    Stop,
}
