//! Enqueue through a connection the application holds: the statement and the values the
//! normal path would send (`rows::ENQUEUE`, the same ids, rows and unique-key rule), for
//! the application's own driver to run inside its transaction.

use super::rows::ENQUEUE;
use super::wake::channel;
use crate::job::NewJob;
use crate::storage::ids;

/// The values of one enqueue statement, in the order of its `$1..$13`.
pub struct EnqueueValues {
    pub queues: Vec<String>,
    pub task_names: Vec<String>,
    pub payloads: Vec<Vec<u8>>,
    pub priorities: Vec<i64>,
    pub delays_ms: Vec<i64>,
    pub max_retries: Vec<i64>,
    pub retry_backoffs: Vec<f64>,
    pub timeouts_ms: Vec<i64>,
    pub unique_keys: Vec<Option<String>>,
    pub metadata: Vec<Option<String>>,
    pub id_prefixes: Vec<String>,
    pub result_ttls_ms: Vec<Option<i64>>,
}

/// The enqueue statement (names unqualified: run it with the queue's schema first on the
/// search path).
pub fn enqueue_sql() -> &'static str {
    ENQUEUE
}

/// The channel workers of `schema` listen on.
pub fn notify_channel(schema: &str) -> String {
    channel(schema)
}

/// The values for `jobs`, as `rows::enqueue_marked` builds them.
pub fn enqueue_values(jobs: Vec<NewJob>, client_now: i64) -> EnqueueValues {
    let mut v = EnqueueValues {
        queues: Vec::with_capacity(jobs.len()),
        task_names: Vec::with_capacity(jobs.len()),
        payloads: Vec::with_capacity(jobs.len()),
        priorities: Vec::with_capacity(jobs.len()),
        delays_ms: Vec::with_capacity(jobs.len()),
        max_retries: Vec::with_capacity(jobs.len()),
        retry_backoffs: Vec::with_capacity(jobs.len()),
        timeouts_ms: Vec::with_capacity(jobs.len()),
        unique_keys: Vec::with_capacity(jobs.len()),
        metadata: Vec::with_capacity(jobs.len()),
        id_prefixes: Vec::with_capacity(jobs.len()),
        result_ttls_ms: Vec::with_capacity(jobs.len()),
    };
    for j in jobs {
        v.delays_ms.push(j.scheduled_at - client_now);
        v.id_prefixes.push(ids::prefix(client_now));
        v.queues.push(j.queue);
        v.task_names.push(j.task_name);
        v.payloads.push(j.payload);
        v.priorities.push(j.priority);
        v.max_retries.push(j.max_retries);
        v.retry_backoffs.push(j.retry_backoff);
        v.timeouts_ms.push(j.timeout_ms);
        v.unique_keys.push(j.unique_key);
        v.metadata.push(j.metadata);
        v.result_ttls_ms.push(j.result_ttl_ms);
    }
    v
}
