//! `enqueue_plan`: the PostgreSQL statement and values that store jobs exactly as
//! `enqueue` would, for the application's driver to run inside its own transaction.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::queue::PyQueueCore;
use super::units::{check_secs, millis, result_ttl_ms, scheduled_at, LONGEST};
use crate::error::Error;
use crate::job::{now_ms, NewJob};
use crate::storage::postgres::plan;

#[pymethods]
impl PyQueueCore {
    /// `{"sql", "params", "channel"}` for `enqueue`'s arguments: `sql` uses `$1..$13`,
    /// `params` has its 13 values (`$12`, the notify channel, left `None` for the caller).
    #[staticmethod]
    #[pyo3(signature = (schema, task_name, payloads, queue, priority, delay, max_retries, retry_backoff, timeout, unique_key=None, metadata=None, unique_keys=None, result_ttls=None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue_plan<'py>(
        py: Python<'py>,
        schema: &str,
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
        result_ttls: Option<Vec<Option<f64>>>,
    ) -> PyResult<Bound<'py, PyDict>> {
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
        let result_ttls_ms = result_ttls
            .map(|ttls| {
                ttls.into_iter()
                    .map(|t| t.map(result_ttl_ms).transpose())
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let now = now_ms();
        let scheduled_at = scheduled_at(now, delay)?;
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
        let v = plan::enqueue_values(jobs, now);
        let payloads: Vec<Bound<'py, PyBytes>> =
            v.payloads.iter().map(|p| PyBytes::new(py, p)).collect();
        let params = PyList::empty(py);
        params.append(v.queues)?;
        params.append(v.task_names)?;
        params.append(payloads)?;
        params.append(v.priorities)?;
        params.append(v.delays_ms)?;
        params.append(v.max_retries)?;
        params.append(v.retry_backoffs)?;
        params.append(v.timeouts_ms)?;
        params.append(v.unique_keys)?;
        params.append(v.metadata)?;
        params.append(v.id_prefixes)?;
        params.append(None::<String>)?;
        params.append(v.result_ttls_ms)?;
        let out = PyDict::new(py);
        out.set_item("sql", plan::enqueue_sql())?;
        out.set_item("params", params)?;
        out.set_item("channel", plan::notify_channel(schema))?;
        Ok(out)
    }
}
