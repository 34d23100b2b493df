//! What every contract test needs: the backends to run on, a fresh store on each, and the
//! jobs and workers the tests build. tests/sqlite.rs and tests/postgres.rs include it too,
//! each using a part of it.
#![allow(dead_code, unused_imports)]

pub use std::collections::HashSet;
pub use std::sync::{Arc, Barrier};
pub use std::thread;

pub use _taskito::error::Error;
pub use _taskito::job::{
    now_ms, Dep, JobFilter, JobLinks, JobStatus, NewJob, PassResult, WorkerBeat, WorkerInfo,
    WorkerKey,
};
use _taskito::storage::{Durability, PgOptions, PgStorage, SqliteStorage};
pub use _taskito::storage::{PeriodicSpec, Storage, TaskFilter, TaskLimit, Write};

/// A backend the contract runs on.
pub enum Backend {
    Sqlite,
    Postgres { url: String },
}

impl Backend {
    /// A new, empty database on this backend: a file in a fresh folder, or a schema of its
    /// own on the server.
    pub fn db(&self) -> Db {
        Arc::new(match self {
            Backend::Sqlite => Database::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres { url } => Database::Postgres {
                url: url.clone(),
                schema: format!("rt_{:016x}", fastrand::u64(..)),
            },
        })
    }
}

pub enum Database {
    Sqlite(tempfile::TempDir),
    Postgres { url: String, schema: String },
}

/// One database; every `open` of it is another handle, as another process would have.
pub type Db = Arc<Database>;

/// A new handle on `db` (its own connections).
pub fn open(db: &Db) -> Arc<dyn Storage> {
    match &**db {
        Database::Sqlite(dir) => Arc::new(
            SqliteStorage::open(
                dir.path().join("q.db").to_str().unwrap(),
                Durability::Normal,
            )
            .unwrap(),
        ),
        Database::Postgres { url, schema } => Arc::new(
            PgStorage::open(&PgOptions {
                url: url.clone(),
                schema: schema.clone(),
                pool_size: Some(4),
                notify: true,
            })
            .unwrap(),
        ),
    }
}

/// Runs `test` on SQLite, then on the PostgreSQL server named by `TASKITO_TEST_PG_URL`
/// (see tests/pg_server.sh). Without a server the PostgreSQL half is skipped, except under
/// `CI`, where a missing server is a failure: CI always starts one.
pub fn each(test: impl Fn(&Backend)) {
    eprintln!("on SQLite");
    test(&Backend::Sqlite);
    match std::env::var("TASKITO_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => {
            eprintln!("on PostgreSQL");
            test(&Backend::Postgres { url });
        }
        _ if std::env::var_os("CI").is_some() => panic!(
            "CI is set but TASKITO_TEST_PG_URL is not: the PostgreSQL half of the storage \
             contract must run in CI (start a server with tests/pg_server.sh)"
        ),
        _ => eprintln!(
            "PostgreSQL half skipped: no server (set TASKITO_TEST_PG_URL, see tests/pg_server.sh)"
        ),
    }
}

/// Runs `test` on SQLite only (for tests/sqlite.rs).
pub fn sqlite_only(test: impl Fn(&Backend)) {
    test(&Backend::Sqlite);
}

/// Runs `test` on PostgreSQL only (for tests/postgres.rs), with the rule of `each`.
pub fn postgres_only(test: impl Fn(&Backend)) {
    match std::env::var("TASKITO_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => test(&Backend::Postgres { url }),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but TASKITO_TEST_PG_URL is not: this test must run in CI")
        }
        _ => eprintln!("skipped: no PostgreSQL server (set TASKITO_TEST_PG_URL)"),
    }
}

/// A plain job of the task `t` on `queue`.
pub fn job(queue: &str, priority: i64, scheduled_at: i64) -> NewJob {
    NewJob {
        task_name: "t".into(),
        queue: queue.into(),
        payload: vec![1, 2, 3],
        priority,
        scheduled_at,
        max_retries: 3,
        retry_backoff: 1.0,
        timeout_ms: 300_000,
        unique_key: None,
        result_ttl_ms: None,
        metadata: None,
    }
}

/// A job of the task `task` on the default queue, ready at once, never retried.
pub fn named(task: &str) -> NewJob {
    NewJob {
        task_name: task.into(),
        queue: "default".into(),
        payload: vec![1],
        priority: 0,
        scheduled_at: 0,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 300_000,
        unique_key: None,
        result_ttl_ms: None,
        metadata: None,
    }
}

/// A job of the task `task` on queue `q`.
pub fn task_job(task: &str) -> NewJob {
    NewJob {
        task_name: task.into(),
        ..job("q", 0, 0)
    }
}

/// A job on `queue` that was due a moment ago.
pub fn ready(queue: &str) -> NewJob {
    NewJob {
        payload: vec![7],
        scheduled_at: now_ms() - 1,
        max_retries: 0,
        timeout_ms: 1000,
        ..job(queue, 0, 0)
    }
}

/// A job kept `result_ttl_ms` after it finishes.
pub fn with_ttl(result_ttl_ms: Option<i64>) -> NewJob {
    NewJob {
        queue: "q".into(),
        result_ttl_ms,
        ..named("t")
    }
}

/// Registers the worker `id` (incarnation 0), live now.
pub fn worker(s: &dyn Storage, id: &str) {
    register(s, &id.into(), now_ms());
}

/// Registers the incarnation `key`, live at `now`.
pub fn register(s: &dyn Storage, key: &WorkerKey, now: i64) {
    s.register_worker(&WorkerInfo {
        worker_id: key.worker_id.clone(),
        incarnation: key.incarnation,
        hostname: "h".into(),
        pid: 1,
        queues: "*".into(),
        started_at: now,
        last_heartbeat: now,
        status: "active".into(),
    })
    .unwrap();
}

pub fn started_at(s: &dyn Storage, id: &str) -> i64 {
    s.get_job(id).unwrap().unwrap().started_at.unwrap()
}

/// Links that make a job depend on `deps`.
pub fn after(deps: Vec<Dep>) -> JobLinks {
    JobLinks {
        depends_on: deps,
        ..JobLinks::default()
    }
}

/// Links that make a job depend on `deps` and take its parent's result.
pub fn chained(deps: Vec<Dep>) -> JobLinks {
    JobLinks {
        depends_on: deps,
        pass_result: PassResult::First,
        ..JobLinks::default()
    }
}

/// A schedule of the task `tick` due every second.
pub fn every_second(name: &str) -> PeriodicSpec {
    PeriodicSpec {
        name: name.into(),
        task_name: "tick".into(),
        cron_expr: "* * * * * *".into(),
        timezone: String::new(),
        queue: "default".into(),
        payload: vec![],
        priority: 0,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 1000,
    }
}

/// How many jobs of `task` the store holds.
pub fn jobs_of(s: &dyn Storage, task: &str) -> usize {
    s.list_jobs(&JobFilter {
        task_name: Some(task.into()),
        limit: 100_000,
        ..Default::default()
    })
    .unwrap()
    .len()
}
