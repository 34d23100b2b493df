//! `QueueCore`: the compiled half of `taskito.Queue`. It owns the store and the control
//! handle; every call that touches the store or waits runs detached from the interpreter,
//! and long waits wake every 100 ms to let Python handle signals.
//!
//! This file holds the class, its constructor and the enqueue hot path. Its other methods
//! live in one file per storage area, each with its own `#[pymethods]` block:
//! `queue_inspect.rs`, `queue_pages.rs`, `queue_workers.rs` (and the engine's run),
//! `queue_retention.rs`, `queue_periodic.rs`, `queue_limits.rs`, `queue_links.rs`,
//! `queue_job_control.rs`, `queue_admin.rs`, `queue_task_logs.rs`, `queue_pause.rs`.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::logs::deliver;
use super::units::{check_secs, millis, result_ttl_ms, scheduled_at, LONGEST};
use crate::engine::control::Control;
use crate::engine::waker::ResultWaker;
use crate::error::Error;
use crate::job::{now_ms, NewJob};
use crate::storage::{ChangeProbe, Durability, PgOptions, PgStorage, SqliteStorage, Storage};

#[pyclass(name = "QueueCore", module = "taskito._taskito", frozen)]
pub struct PyQueueCore {
    pub(super) storage: Arc<dyn Storage>,
    path: String,
    pub(super) control: Arc<Control>,
    pub(super) probe: Mutex<Option<Box<dyn ChangeProbe>>>,
    /// Hears other processes' completions, once a result wait started it; `Some(None)`
    /// when the store has no such hints (waits then read the change probe).
    pub(super) result_wake: Mutex<Option<Option<ResultWaker>>>,
}

impl PyQueueCore {
    /// The store, for bindings in other files.
    pub(crate) fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// Wakes this process's scheduler (new or returned work).
    pub(crate) fn wake(&self) {
        self.control.wake.notify_one();
    }
}

#[pymethods]
impl PyQueueCore {
    /// Opens (creating or upgrading) the SQLite database at `db_path` (a file it creates gets
    /// the permission bits `file_mode`), or with `backend="postgres"` the schema `schema` of
    /// the PostgreSQL database at `db_url`.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (db_path, durability = "normal", file_mode = 0o600, backend = "sqlite", db_url = None, schema = "taskito", pool_size = None, notify = true))]
    fn new(
        py: Python<'_>,
        db_path: String,
        durability: &str,
        file_mode: u32,
        backend: &str,
        db_url: Option<String>,
        schema: &str,
        pool_size: Option<usize>,
        notify: bool,
    ) -> PyResult<Self> {
        let (storage, path): (Arc<dyn Storage>, String) = match backend {
            "sqlite" => {
                let durability = Durability::parse(durability)?;
                let path = db_path.clone();
                let s =
                    py.detach(move || SqliteStorage::open_with_mode(&path, durability, file_mode));
                deliver(py)?;
                let s = s?;
                (Arc::new(s), db_path)
            }
            "postgres" => {
                let options = PgOptions {
                    url: db_url.ok_or_else(|| {
                        Error::invalid("db_url", "is required for the postgres backend")
                    })?,
                    schema: schema.to_string(),
                    pool_size,
                    notify,
                };
                let s = py.detach(move || PgStorage::open(&options));
                deliver(py)?;
                let s = s?;
                let shown = s.redacted_url().to_string();
                (Arc::new(s), shown)
            }
            other => {
                return Err(Error::invalid(
                    "backend",
                    format!("{other:?} (expected \"sqlite\" or \"postgres\")"),
                )
                .into())
            }
        };
        Ok(PyQueueCore {
            storage,
            path,
            control: Arc::new(Control::new()),
            probe: Mutex::new(None),
            result_wake: Mutex::new(None),
        })
    }

    /// Releases every pooled connection (the queue reconnects if used again).
    fn close(&self, py: Python<'_>) {
        let storage = self.storage.clone();
        let probe = self.probe.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(move || {
            drop(probe);
            storage.close();
        });
    }

    /// The database path.
    #[getter]
    fn db_path(&self) -> &str {
        &self.path
    }

    /// Stores jobs in one transaction and returns their ids; wakes this process's worker.
    /// `unique_keys` gives each payload its own key (instead of `unique_key` for all);
    /// `max_pending` refuses the whole batch if the queue would then hold more pending jobs.
    #[pyo3(signature = (task_name, payloads, queue, priority, delay, max_retries, retry_backoff, timeout, unique_key=None, metadata=None, unique_keys=None, max_pending=None, result_ttls=None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        py: Python<'_>,
        task_name: String,
        payloads: Vec<Py<PyBytes>>,
        queue: String,
        priority: i64,
        delay: f64,
        max_retries: i64,
        retry_backoff: f64,
        timeout: f64,
        unique_key: Option<String>,
        metadata: Option<String>,
        unique_keys: Option<Vec<Option<String>>>,
        max_pending: Option<i64>,
        result_ttls: Option<Vec<Option<f64>>>,
    ) -> PyResult<Vec<String>> {
        if unique_keys
            .as_ref()
            .is_some_and(|k| k.len() != payloads.len())
        {
            return Err(Error::invalid("unique_keys", "must have one entry per job").into());
        }
        if result_ttls
            .as_ref()
            .is_some_and(|t| t.len() != payloads.len())
        {
            return Err(Error::invalid("result_ttl_list", "must have one entry per job").into());
        }
        // None (the common case) allocates nothing.
        let result_ttls_ms = result_ttls
            .map(|ttls| {
                ttls.into_iter()
                    .map(|t| t.map(result_ttl_ms).transpose())
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let scheduled_at = scheduled_at(now_ms(), delay)?;
        let timeout_ms = (millis("timeout", timeout)?.max(1)).min(LONGEST.as_millis() as i64);
        check_secs("retry_backoff", retry_backoff)?;
        let jobs: Vec<NewJob> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| NewJob {
                task_name: task_name.clone(),
                queue: queue.clone(),
                payload: p.as_bytes(py).to_vec(),
                priority,
                scheduled_at,
                max_retries,
                retry_backoff,
                timeout_ms,
                unique_key: match &unique_keys {
                    Some(keys) => keys[i].clone(),
                    None => unique_key.clone(),
                },
                metadata: metadata.clone(),
                result_ttl_ms: result_ttls_ms.as_ref().and_then(|t| t[i]),
            })
            .collect();
        let storage = self.storage.clone();
        let ids = py.detach(move || match max_pending {
            Some(max) => storage.enqueue_bounded(&jobs, max),
            None => storage.enqueue(&jobs),
        })?;
        self.control.wake.notify_one();
        Ok(ids)
    }
}
