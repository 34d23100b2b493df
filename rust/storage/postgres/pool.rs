//! Connections to PostgreSQL: the parsed URL (shown only without its password), a small
//! bounded lazy pool and the rule that keeps the blocking client off Tokio threads.
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

use super::pg_url::{split_tls_params, url_password};
use super::tls::Tls;
use crate::error::{Error, Result};

/// How long connecting may take before the error names the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// An idle connection beyond the first is closed after this long unused.
const IDLE_EXTRA_CLOSE: Duration = Duration::from_secs(5);
/// The last idle connection is closed after this long unused.
const IDLE_CLOSE: Duration = Duration::from_secs(30);
/// How long a caller waits for a free connection when all `size` are busy.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);
/// The server ends a session of ours that sits inside a transaction this long. Every
/// transaction here is a few statements sent back to back, so such a session belongs to a
/// process that was stopped (SIGSTOP, a debugger, a paused VM) mid-transaction: ending it
/// releases the rows it locked (a claim's jobs, a worker's registry row), which would
/// otherwise stay locked, unrecoverable by anyone, until that process ran again.
const IDLE_IN_TRANSACTION_LIMIT: &str = "15s";
/// How long one of our statements waits for a lock before giving up. Claims, completions,
/// heartbeats and enqueues lock a few rows for milliseconds; a lock held longer belongs to
/// someone else (a `LOCK TABLE`, a long DDL), and waiting on it would freeze the worker.
/// The statement fails, its transaction rolls back, and the caller tries again later: the
/// engine treats the failure as the store being out of reach (`Error::is_unavailable`).
pub const LOCK_TIMEOUT: &str = "2s";
/// The longest any statement of ours may run (migrations raise it for their transaction).
pub const STATEMENT_TIMEOUT: &str = "30s";

/// Where to connect and how, parsed once from the URL.
#[derive(Clone)]
pub struct PgSettings {
    config: postgres::Config,
    /// `host:port/db`, for errors.
    pub target: String,
    /// The URL with its password replaced by `***`.
    pub redacted_url: String,
    pub schema: String,
    password: Option<String>,
    /// `sslpassword`, kept only to scrub it from messages.
    ssl_password: Option<String>,
    pub tls: Tls,
}

impl PgSettings {
    /// Parses `url`; errors name the problem but never the password.
    pub fn parse(url: &str, schema: &str) -> Result<PgSettings> {
        let redacted_url = redact_url(url);
        if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
            return Err(Error::invalid(
                "db_url",
                format!(
                    "{redacted_url:?} (expected postgresql://user:password@host:port/database)"
                ),
            ));
        }
        check_schema(schema)?;
        let (url, tls_params) = split_tls_params(url, |var| std::env::var(var).ok());
        let url = url.as_str();
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let tls = Tls::from_params(&tls_params, home.as_deref())
            .map_err(|cause| Error::invalid("db_url", cause))?;
        let mut config: postgres::Config =
            url.parse().map_err(|e: postgres::Error| Error::Connect {
                target: redacted_url.clone(),
                cause: scrub_with(
                    url_password(url).as_deref(),
                    &format!("malformed URL: {}", describe(&e)),
                ),
            })?;
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("").to_string();
        let db = config.get_dbname().unwrap_or(&user).to_string();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(20));
        if config.get_application_name().is_none() {
            config.application_name("taskito");
        }
        let settings = PgSettings {
            config,
            target: format!("{host}:{port}/{db}"),
            redacted_url,
            schema: schema.to_string(),
            password,
            ssl_password: tls_params.sslpassword,
            tls,
        };
        Ok(settings)
    }

    /// `s` with the password (if any) replaced, for anything that leaves the process.
    pub fn scrub(&self, s: &str) -> String {
        let s = scrub_with(self.password.as_deref(), s);
        scrub_with(self.ssl_password.as_deref(), &s)
    }

    /// Opens one connection and points it at the schema.
    pub fn connect(&self) -> Result<Client> {
        let mut client = self.tls.connect(&self.config).map_err(|e| Error::Connect {
            target: self.target.clone(),
            cause: self.scrub(&describe(&e)),
        })?;
        client
            .batch_execute(&format!(
                "SET search_path TO {}, public; \
                 SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_LIMIT}'; \
                 SET lock_timeout = '{LOCK_TIMEOUT}'; \
                 SET statement_timeout = '{STATEMENT_TIMEOUT}'",
                quote_ident(&self.schema)
            ))
            .map_err(|e| self.error(e))?;
        Ok(client)
    }

    /// A statement error, scrubbed.
    pub fn error(&self, e: postgres::Error) -> Error {
        let timed_out = e.code().is_some_and(|c| {
            *c == postgres::error::SqlState::LOCK_NOT_AVAILABLE
                || *c == postgres::error::SqlState::QUERY_CANCELED
        });
        let text = self.scrub(&describe(&e));
        match timed_out {
            // Tagged whatever language the server speaks, so the engine retries it.
            true => Error::Postgres(format!("{text} ({TIMED_OUT})")),
            false => Error::Postgres(text),
        }
    }
}

/// The tag on a statement the server cancelled for a lock or statement timeout.
pub const TIMED_OUT: &str = "timed out waiting for the server; retried";

fn scrub_with(password: Option<&str>, s: &str) -> String {
    match password {
        Some(p) if !p.is_empty() => s.replace(p, "***"),
        _ => s.to_string(),
    }
}

/// A readable cause: the server's message when there is one, else the client's.
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let more = inner.to_string();
        if !s.contains(&more) {
            s = format!("{s}: {more}");
        }
        source = inner.source();
    }
    s
}

/// Whether an error means the connection is gone (and the statement never ran on a live
/// server session).
fn is_broken(e: &Error, client: &Client) -> bool {
    client.is_closed()
        || matches!(e, Error::Postgres(m) if m.contains("connection closed") || m.contains("error communicating with the server"))
}

/// Schema names are identifiers: letters, digits and `_`, not starting with a digit.
pub fn check_schema(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "schema",
            format!("{schema:?} (letters, digits and _ only, at most 63, not starting with a digit or pg_)"),
        ))
    }
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub use super::pg_url::redact_url;

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

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgresql://bob:s3cret@db:5432/app"),
            "postgresql://bob:***@db:5432/app"
        );
        assert_eq!(
            redact_url("postgres://bob@db/app?password=s3cret&sslmode=disable"),
            "postgres://bob@db/app?password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://db/app"), "postgres://db/app");
        assert_eq!(
            redact_url("postgresql://bob:p@ss@db/app"),
            "postgresql://bob:***@db/app"
        );
    }

    #[test]
    fn schema_names_are_identifiers() {
        assert!(check_schema("taskito_1").is_ok());
        assert!(check_schema("1abc").is_err());
        assert!(check_schema("a;drop").is_err());
        assert!(check_schema("").is_err());
    }

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
        assert_eq!(shown, IDLE_IN_TRANSACTION_LIMIT);
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
