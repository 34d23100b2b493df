//! A failed run's next step as the task's own retry rules chose it (exception filters,
//! per-retry delays, a delay cap, a retry budget), decided on the Python side; without
//! rules the result handler's own policy decides and this is never built.

/// What the task's rules say about one failed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryRule {
    /// Retry after this many milliseconds, if retries are left.
    After(i64),
    /// Dead-letter now; `metadata` (when given) replaces the dead letter's metadata.
    DeadLetter { metadata: Option<String> },
    /// The run was put off before it started (an open circuit breaker): run again after
    /// this many milliseconds without using a retry, whatever retries are left.
    Postpone(i64),
}

impl RetryRule {
    /// From its parts as the Python side sends them: `kind` 0 retry after `delay_ms`,
    /// 1 dead-letter with `metadata`, 2 postpone by `delay_ms`.
    pub fn from_parts(kind: i64, delay_ms: i64, metadata: Option<String>) -> Option<RetryRule> {
        match kind {
            0 => Some(RetryRule::After(delay_ms.max(0))),
            1 => Some(RetryRule::DeadLetter { metadata }),
            2 => Some(RetryRule::Postpone(delay_ms.max(0))),
            _ => None,
        }
    }
}
