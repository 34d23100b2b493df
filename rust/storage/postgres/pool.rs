//! Connections to PostgreSQL (where to, `settings.rs`): a small bounded lazy pool and the rule that keeps the blocking client off Tokio threads.
//!
//! The `postgres` client blocks on a runtime of its own, which panics on a thread that is
//! driving a Tokio runtime (the scheduler claims from its runtime thread). Every call
//! therefore checks where it runs and, inside a runtime, moves to a short-lived plain thread.
//! Connections are opened on first use, at most `size` of them; an idle pool keeps one, and
//! closes that one too after `IDLE_CLOSE`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use postgres::{Client, Statement};

pub use super::settings::{quote_ident, redact_url, PgSettings};
use crate::error::{Error, Result};

/// An idle connection beyond the first is closed after this long unused.
const IDLE_EXTRA_CLOSE: Duration = Duration::from_secs(5);
/// The last idle connection is closed after this long unused.
const IDLE_CLOSE: Duration = Duration::from_secs(30);
/// How long a caller waits for a free connection when all `size` are busy.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether an error means the connection is gone (and the statement never ran on a live
/// server session).
fn is_broken(e: &Error, client: &Client) -> bool {
    client.is_closed()
        || matches!(e, Error::Postgres(m) if m.contains("connection closed") || m.contains("error communicating with the server"))
}

/// Runs `f` on this thread, or on a plain thread when this one is inside a Tokio runtime.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// One open connection with its prepared statements.
pub struct Conn {
    pub client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// The prepared form of `sql`, prepared once per connection.
    pub fn prepare(
        &mut self,
        sql: &'static str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

struct State {
    idle: Vec<Idle>,
    /// Connections open (idle or lent out).
    open: usize,
    /// Bumped by `close`: connections lent out before it are closed when given back.
    generation: u64,
    reaper: bool,
}

struct Inner {
    settings: PgSettings,
    size: usize,
    state: Mutex<State>,
    freed: Condvar,
}

/// A bounded, lazy pool. Cheap to share.
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    pub fn new(settings: PgSettings, size: usize) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                settings,
                size: size.max(1),
                state: Mutex::new(State {
                    idle: Vec::new(),
                    open: 0,
                    generation: 0,
                    reaper: false,
                }),
                freed: Condvar::new(),
            }),
        }
    }

    pub fn settings(&self) -> &PgSettings {
        &self.inner.settings
    }

    /// Runs `f` with a connection. A connection found broken (the server restarted, the
    /// network dropped it) is discarded; when it was an idle one taken from the pool, `f`
    /// runs once more on a fresh connection, since nothing ran on the dead one.
    pub fn with<T: Send>(&self, mut f: impl FnMut(&mut Conn) -> Result<T> + Send) -> Result<T> {
        off_runtime(|| {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let (mut conn, reused, generation) = self.acquire()?;
                let out = f(&mut conn);
                let broken = matches!(&out, Err(e) if is_broken(e, &conn.client));
                if broken || conn.client.is_closed() {
                    self.discard(conn);
                    if broken && reused && attempt < 3 {
                        continue;
                    }
                } else {
                    self.release(conn, generation);
                }
                return out;
            }
        })
    }

    fn acquire(&self) -> Result<(Conn, bool, u64)> {
        let inner = &self.inner;
        let deadline = Instant::now() + ACQUIRE_TIMEOUT;
        let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let generation = state.generation;
            if let Some(idle) = state.idle.pop() {
                return Ok((idle.conn, true, generation));
            }
            if state.open < inner.size {
                state.open += 1;
                self.start_reaper(&mut state);
                drop(state);
                return match inner.settings.connect() {
                    Ok(client) => Ok((
                        Conn {
                            client,
                            statements: HashMap::new(),
                        },
                        false,
                        generation,
                    )),
                    Err(e) => {
                        let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                        state.open -= 1;
                        inner.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Postgres(format!(
                    "no free connection to {} within {}s (pool_size={})",
                    inner.settings.target,
                    ACQUIRE_TIMEOUT.as_secs(),
                    inner.size
                )));
            }
            state = inner
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn release(&self, conn: Conn, generation: u64) {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if generation != state.generation {
            state.open -= 1;
            drop(state);
            self.inner.freed.notify_one();
            drop(conn);
            return;
        }
        state.idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        drop(state);
        self.inner.freed.notify_one();
    }

    fn discard(&self, conn: Conn) {
        drop(conn);
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open -= 1;
        drop(state);
        self.inner.freed.notify_one();
    }

    /// Closes every idle connection now, and the busy ones as they come back. The pool
    /// stays usable: the next call opens a connection again.
    pub fn close(&self) {
        let idle = {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            state.generation += 1;
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        self.inner.freed.notify_all();
        off_runtime(move || drop(idle));
    }

    /// Connections open right now (idle or lent out).
    pub fn open_connections(&self) -> usize {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
    }

    /// One thread per pool closes idle connections; it ends with the pool.
    fn start_reaper(&self, state: &mut State) {
        if state.reaper {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let spawned = thread::Builder::new()
            .name("taskito-pg-reaper".into())
            .spawn(move || reap(weak));
        state.reaper = spawned.is_ok();
    }
}

fn reap(weak: Weak<Inner>) {
    loop {
        thread::sleep(Duration::from_secs(1));
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let closing: Vec<Idle> = {
            let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            // Most recently used last: keep those, close the ones idle longest.
            let now = Instant::now();
            let mut keep = Vec::new();
            let mut close = Vec::new();
            let total = state.idle.len();
            for (i, idle) in std::mem::take(&mut state.idle).into_iter().enumerate() {
                let unused = now - idle.since;
                let last = i + 1 == total;
                if unused >= IDLE_CLOSE || (!last && unused >= IDLE_EXTRA_CLOSE) {
                    close.push(idle);
                } else {
                    keep.push(idle);
                }
            }
            state.idle = keep;
            state.open -= close.len();
            close
        };
        drop(inner);
        drop(closing);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs a server: `TASKITO_TEST_PG_URL` (skipped without it).
    #[test]
    fn a_session_frozen_inside_a_transaction_is_ended_by_the_server() {
        let Ok(url) = std::env::var("TASKITO_TEST_PG_URL") else {
            return;
        };
        let settings = PgSettings::parse(&url, "public").unwrap();
        let mut client = settings.connect().unwrap();
        let shown: String = client
            .query_one("SHOW idle_in_transaction_session_timeout", &[])
            .unwrap()
            .get(0);
        assert_eq!(shown, super::super::settings::IDLE_IN_TRANSACTION_LIMIT);
        // The server acts on it: shortened here so the test does not wait 15 s.
        client
            .batch_execute("SET idle_in_transaction_session_timeout = '200ms'; BEGIN")
            .unwrap();
        thread::sleep(Duration::from_millis(600));
        assert!(client.query_one("SELECT 1", &[]).is_err());
    }

    /// Needs a server: `TASKITO_TEST_PG_URL` (skipped without it).
    #[test]
    fn a_lost_connection_is_unavailable_and_a_refused_value_is_not() {
        let Ok(url) = std::env::var("TASKITO_TEST_PG_URL") else {
            return;
        };
        let settings = PgSettings::parse(&url, "public").unwrap();
        let mut victim = settings.connect().unwrap();
        let pid: i32 = victim
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        let refused = victim.batch_execute("SELECT 1 / 0").unwrap_err();
        assert!(!settings.error(refused).is_unavailable());
        let mut other = settings.connect().unwrap();
        other
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        thread::sleep(Duration::from_millis(200));
        let lost = victim.batch_execute("SELECT 1").unwrap_err();
        let lost = settings.error(lost);
        assert!(lost.is_unavailable(), "{lost}");
        let unreachable = PgSettings::parse("postgresql://u:p@127.0.0.1:1/db", "public")
            .unwrap()
            .connect()
            .err()
            .expect("nothing listens on port 1");
        assert!(unreachable.is_unavailable());
    }
}
