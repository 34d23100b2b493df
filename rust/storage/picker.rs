//! Flow control shared by both stores: per-task rate limits (a token bucket holding one
//! token, kept in the store so every process and host shares it) and concurrency caps
//! (the task's running jobs, counted in the store). Each store reads the buckets and counts
//! inside its claim transaction (`sqlite_limits.rs`, `postgres/limits.rs`); this module
//! decides, from those figures and the ready rows in claim order, which jobs may start.
//!
//! A job whose task is out of tokens or at its cap is not ready: the claim steps over it
//! and it stays `pending` without holding a worker thread. Queues whose tasks have no limit
//! never come here (the store keeps the set of limited tasks in memory and takes the plain
//! claim when it is empty).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use super::TaskFilter;
use crate::error::Result;

/// How many ready rows of one queue a limited claim looks at, at most: jobs behind more
/// blocked jobs than this wait for those to start (give a big limited backlog its own queue).
pub(super) const SCAN_MAX: i64 = 2048;

/// The limits of one task, as its worker registers them.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLimit {
    pub task_name: String,
    /// `(count, period_ms)`: at most `count` starts per `period_ms`.
    pub rate: Option<(i64, i64)>,
    pub max_concurrent: Option<i64>,
}

impl TaskLimit {
    /// A limit as stored: a rate with a zero or negative part counts as none.
    pub(super) fn from_stored(
        task_name: String,
        count: Option<i64>,
        period_ms: Option<i64>,
        max_concurrent: Option<i64>,
    ) -> Option<TaskLimit> {
        let rate = count.zip(period_ms).filter(|(c, p)| *c > 0 && *p > 0);
        (rate.is_some() || max_concurrent.is_some()).then_some(TaskLimit {
            task_name,
            rate,
            max_concurrent,
        })
    }
}

/// Limited tasks by name.
pub type LimitMap = HashMap<String, TaskLimit>;

/// A store's copy of the limited tasks and when the next skipped job gets a token.
#[derive(Default)]
pub(super) struct LimitCache {
    /// Loaded on the first claim and refreshed by `reload_task_limits`; while empty,
    /// claims take the plain path.
    map: RwLock<Option<Arc<LimitMap>>>,
    /// On this process's clock (epoch ms); 0: no job waits for a token.
    wake_at: AtomicI64,
}

impl LimitCache {
    /// The limited tasks, read with `load` on first use.
    pub fn get(&self, load: impl FnOnce() -> Result<LimitMap>) -> Result<Arc<LimitMap>> {
        if let Some(l) = self.map.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(l.clone());
        }
        let map = Arc::new(load()?);
        self.set(map.clone());
        Ok(map)
    }

    pub fn set(&self, map: Arc<LimitMap>) {
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Some(map);
    }

    pub fn wake_at(&self) -> Option<i64> {
        Some(self.wake_at.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    pub fn set_wake_at(&self, at: Option<i64>) {
        self.wake_at.store(at.unwrap_or(0), Ordering::Relaxed);
    }
}

/// What a task may still start in this claim.
pub(super) struct Budget {
    /// Tokens in the bucket at the claim's instant, before this claim took any (the
    /// bucket holds one at most: starts are spaced evenly, so no window of one period
    /// ever sees more than `count` of them).
    start_tokens: Option<f64>,
    tokens: Option<f64>,
    /// Free slots under `max_concurrent`.
    slots: Option<i64>,
    taken: i64,
    /// When the next token is due, if the bucket is empty.
    refill_at: Option<i64>,
}

impl Budget {
    /// The budget of `limit` at `now`, from its stored bucket `(tokens, refilled_at)`
    /// (`None`: no row, a full bucket) and its running jobs.
    pub fn new(limit: &TaskLimit, bucket: Option<(f64, i64)>, running: i64, now: i64) -> Budget {
        let mut b = Budget {
            start_tokens: None,
            tokens: None,
            slots: limit.max_concurrent.map(|max| max - running),
            taken: 0,
            refill_at: None,
        };
        if let Some((count, period)) = limit.rate {
            let (tokens, at) = bucket.unwrap_or((1.0, 0));
            let per_ms = count as f64 / period as f64;
            let now_tokens = (tokens + (now - at).max(0) as f64 * per_ms).min(1.0);
            if now_tokens < 1.0 {
                b.refill_at = Some(now + ((1.0 - now_tokens) / per_ms).ceil() as i64);
            }
            b.start_tokens = Some(now_tokens);
            b.tokens = Some(now_tokens);
        }
        b
    }

    fn open(&self) -> bool {
        self.tokens.is_none_or(|t| t >= 1.0) && self.slots.is_none_or(|s| s > 0)
    }

    fn out_of_tokens(&self) -> bool {
        self.tokens.is_some_and(|t| t < 1.0)
    }

    fn take(&mut self) {
        if let Some(t) = self.tokens.as_mut() {
            *t -= 1.0;
        }
        if let Some(s) = self.slots.as_mut() {
            *s -= 1;
        }
        self.taken += 1;
    }

    /// How many jobs of the task one claim may start.
    fn room(&self) -> i64 {
        let by_tokens = self.tokens.map(|t| if t >= 1.0 { 1 } else { 0 });
        let by_slots = self.slots.map(|s| s.max(0));
        match (by_tokens, by_slots) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => i64::MAX,
        }
    }

    /// Jobs this claim chose to start.
    pub fn taken(&self) -> i64 {
        self.taken
    }

    /// The tokens to store after `started` starts, for a task with a rate.
    pub fn tokens_after(&self, started: i64) -> Option<f64> {
        self.start_tokens.map(|t| (t - started as f64).max(0.0))
    }
}

/// A ready row of a limited claim, in the plain claim's order within its queue.
pub(super) struct Ready {
    pub priority: i64,
    pub scheduled_at: i64,
    pub seq: i64,
    pub task: String,
}

/// Chooses the jobs of a limited claim. The store offers the ready rows of each queue in
/// claim order (`next_queue` between queues) until `offer` says the queue gave enough;
/// `finish` merges the queues in the plain claim's order, stepping over jobs whose task is
/// out of tokens or slots (and, with a task filter, jobs of other tasks).
pub(super) struct Picker<'a> {
    limit: usize,
    tasks: Option<TaskFilter<'a>>,
    budgets: HashMap<String, Budget>,
    found: Vec<Ready>,
    skipped_for_tokens: bool,
    /// Per queue: jobs kept of each limited task, and of all tasks.
    local: HashMap<String, i64>,
    kept: usize,
}

impl<'a> Picker<'a> {
    pub fn new(
        limit: usize,
        budgets: HashMap<String, Budget>,
        tasks: Option<TaskFilter<'a>>,
    ) -> Picker<'a> {
        Picker {
            limit,
            tasks,
            budgets,
            found: Vec::new(),
            skipped_for_tokens: false,
            local: HashMap::new(),
            kept: 0,
        }
    }

    pub fn next_queue(&mut self) {
        self.local.clear();
        self.kept = 0;
    }

    /// Keeps `row` if this claim could start it; false once this queue gave enough.
    pub fn offer(&mut self, row: Ready) -> bool {
        let wanted = match self.tasks {
            None => true,
            Some(TaskFilter::Only(names)) => names.contains(&row.task),
            Some(TaskFilter::Except(names)) => !names.contains(&row.task),
        };
        if !wanted {
            return true;
        }
        // Per queue, keep only what this claim could start; `finish` applies the budgets
        // again across queues.
        if let Some(b) = self.budgets.get(&row.task) {
            let used = self.local.entry(row.task.clone()).or_insert(0);
            if *used >= b.room() {
                self.skipped_for_tokens |= b.out_of_tokens();
                return true;
            }
            *used += 1;
        }
        self.found.push(row);
        self.kept += 1;
        self.kept < self.limit
    }

    /// The limited tasks among the kept rows, sorted.
    pub fn limited_tasks(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .found
            .iter()
            .filter(|r| self.budgets.contains_key(&r.task))
            .map(|r| r.task.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Replaces the budget of a task (figures read again under a lock).
    pub fn set_budget(&mut self, task: String, budget: Budget) {
        self.budgets.insert(task, budget);
    }

    pub fn finish(mut self) -> Choice {
        self.found.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.scheduled_at.cmp(&b.scheduled_at))
                .then(a.seq.cmp(&b.seq))
        });
        let mut seqs = Vec::with_capacity(self.limit.min(self.found.len()));
        for row in &self.found {
            if seqs.len() >= self.limit {
                break;
            }
            if let Some(b) = self.budgets.get_mut(&row.task) {
                if !b.open() {
                    self.skipped_for_tokens |= b.out_of_tokens();
                    continue;
                }
                b.take();
            }
            seqs.push(row.seq);
        }
        let wake_at = if self.skipped_for_tokens {
            self.budgets
                .values()
                .filter(|b| b.out_of_tokens())
                .filter_map(|b| b.refill_at)
                .min()
        } else {
            None
        };
        Choice {
            seqs,
            wake_at,
            budgets: self.budgets,
        }
    }
}

/// A limited claim's choice: the seqs to claim, in claim order, when a job skipped for
/// lack of a token gets one (on the clock the budgets were computed with), and the
/// budgets with what the choice took.
pub(super) struct Choice {
    pub seqs: Vec<i64>,
    pub wake_at: Option<i64>,
    pub budgets: HashMap<String, Budget>,
}
