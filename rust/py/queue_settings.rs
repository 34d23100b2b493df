//! `QueueCore.setting_get` / `setting_put` / `setting_delete` / `settings_list`: the shared
//! settings store, which every worker process on the database sees.

use pyo3::prelude::*;

use super::queue::PyQueueCore;

#[pymethods]
impl PyQueueCore {
    /// `(value, version)` stored under `key`, or None.
    fn setting_get(&self, py: Python<'_>, key: String) -> PyResult<Option<(String, i64)>> {
        let storage = self.storage();
        Ok(py.detach(move || storage.setting_get(&key))?)
    }

    /// Stores `value` under `key`. `expected`: None always writes, 0 only if absent, `v`
    /// only if the stored version is `v`. Returns the new version, or None if `expected`
    /// did not hold.
    #[pyo3(signature = (key, value, expected=None))]
    fn setting_put(
        &self,
        py: Python<'_>,
        key: String,
        value: String,
        expected: Option<i64>,
    ) -> PyResult<Option<i64>> {
        let storage = self.storage();
        Ok(py.detach(move || storage.setting_put(&key, &value, expected))?)
    }

    /// Removes `key`; True if it was there.
    fn setting_delete(&self, py: Python<'_>, key: String) -> PyResult<bool> {
        let storage = self.storage();
        Ok(py.detach(move || storage.setting_delete(&key))?)
    }

    /// `(key, value, version)` of every key starting with `prefix`, by key.
    #[pyo3(signature = (prefix=String::new()))]
    fn settings_list(
        &self,
        py: Python<'_>,
        prefix: String,
    ) -> PyResult<Vec<(String, String, i64)>> {
        let storage = self.storage();
        Ok(py.detach(move || storage.settings_list(&prefix))?)
    }
}
