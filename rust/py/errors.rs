//! The one conversion from the crate's `Error` to Python exceptions. The exception classes
//! are defined once, in `taskito/exceptions.py`, and imported here.

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

use crate::error::Error;

pyo3::import_exception!(taskito.exceptions, TaskitoError);
pyo3::import_exception!(taskito.exceptions, DatabaseError);
pyo3::import_exception!(taskito.exceptions, JobNotFoundError);
pyo3::import_exception!(taskito.exceptions, TaskTimeoutError);
pyo3::import_exception!(taskito.exceptions, QueueFullError);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::InvalidOption { .. } => PyValueError::new_err(msg),
            Error::NotFound { .. } => JobNotFoundError::new_err(msg),
            Error::Open { .. }
            | Error::SchemaTooNew { .. }
            | Error::Sqlite(_)
            | Error::Connect { .. }
            | Error::Postgres(_) => DatabaseError::new_err(msg),
            Error::Start(_) | Error::Unsupported { .. } => TaskitoError::new_err(msg),
            Error::QueueFull { .. } => QueueFullError::new_err(msg),
        }
    }
}
