//! The PostgreSQL store itself: how it is opened (options, pool, migrations) and the
//! connection every area's function runs on.

use std::sync::Mutex;

use super::pool::{Conn, PgSettings, Pool};
use super::{schema, wake};
use crate::error::{Error, Result};
use crate::job::{now_ms, WorkerKey};
use crate::storage::picker::LimitCache;
use crate::storage::ChangeProbe;

/// Failed claims remembered for a later look-up (a server down for long makes many).
pub(super) const MAX_UNSURE_CLAIMS: usize = 1024;

/// Connections a store opens at most when `pool_size` is not given.
pub const DEFAULT_POOL_SIZE: usize = 10;

/// How a PostgreSQL store is opened.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: String,
    pub schema: String,
    pub pool_size: Option<usize>,
    /// LISTEN/NOTIFY wake-ups; off for PgBouncer in transaction mode.
    pub notify: bool,
}

/// A PostgreSQL-backed `Storage`. Cheap to share behind an `Arc`.
pub struct PgStorage {
    pub(super) pool: Pool,
    pub(super) notify: Option<String>,
    /// Tokens of claims that failed with the connection: they may have committed, so the
    /// next claim first collects whatever they took.
    pub(super) unsure_claims: Mutex<Vec<(WorkerKey, i64)>>,
    /// Tasks with a rate limit or concurrency cap; while there are none, claims take the
    /// plain one-statement path.
    pub(super) limits: LimitCache,
}

impl PgStorage {
    /// Connects, creates the schema if missing and brings it up to date.
    pub fn open(options: &PgOptions) -> Result<PgStorage> {
        let settings = PgSettings::parse(&options.url, &options.schema)?;
        if options.pool_size == Some(0) {
            return Err(Error::invalid("pool_size", "must be at least 1"));
        }
        let size = options.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        let notify = options.notify.then(|| wake::channel(&settings.schema));
        let storage = PgStorage {
            pool: Pool::new(settings, size),
            notify,
            unsure_claims: Mutex::new(Vec::new()),
            limits: LimitCache::default(),
        };
        storage.with(|c, s| schema::migrate(&mut c.client, s))?;
        Ok(storage)
    }

    /// The URL without its password.
    pub fn redacted_url(&self) -> &str {
        &self.pool.settings().redacted_url
    }

    pub fn schema(&self) -> &str {
        &self.pool.settings().schema
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.pool.open_connections()
    }

    pub(super) fn with<T: Send>(
        &self,
        mut f: impl FnMut(&mut Conn, &PgSettings) -> Result<T> + Send,
    ) -> Result<T> {
        let settings = self.pool.settings();
        self.pool.with(|c| f(c, settings))
    }
}

/// Milliseconds from `before` until now on the caller's clock: how the engine's absolute
/// cut-offs become ages measured on the server's clock.
pub(super) fn age_of(before: i64) -> i64 {
    (now_ms() - before).max(0)
}

/// A probe that never reports a change: on PostgreSQL, wake-ups come from notifications.
pub(super) struct NoProbe;

impl ChangeProbe for NoProbe {
    fn version(&mut self) -> Option<i64> {
        None
    }
}
