//! Opening SQLite connections: path checks that leave foreign files untouched, pragmas,
//! the schema, a small pool for callers without a connection of their own, and the retry
//! loop that keeps "database is locked" away from users.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::schema;
use crate::error::{Error, Result};

/// How long SQLite itself waits on a lock before returning `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `with_retry` keeps retrying contention after that, in total.
const RETRY_FOR: Duration = Duration::from_secs(120);
/// Below this size a new connection's first open also runs `PRAGMA quick_check`, so a
/// damaged file is refused at `Queue(...)`; larger files are checked by reading their schema.
const QUICK_CHECK_MAX_BYTES: u64 = 64 * 1024 * 1024;
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// WAL size (pages) at which a commit checkpoints by itself: about 32 MiB.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 8000;

/// Permission bits of a database file taskito creates: owner read and write only. Workers
/// unpickle what the file holds, so whoever may write it (or its -wal and -shm files, which
/// SQLite creates with the database file's bits) may run code in every worker.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// Connection settings shared by every connection of one store.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: String,
    pub synchronous_full: bool,
    /// For `:memory:`: the name of this store's private in-memory database (SQLite's
    /// `memdb` VFS), shared by the store's connections and gone with the last of them.
    pub memory_name: Option<String>,
    /// Permission bits for a database file created by this store; an existing file's are
    /// left alone.
    pub file_mode: u32,
}

impl Settings {
    /// Settings for `path`; `:memory:` gets an in-memory database of its own.
    pub fn new(path: &str, synchronous_full: bool) -> Settings {
        let memory_name = (path == MEMORY_PATH)
            .then(|| format!("file:/taskito-{}?vfs=memdb", uuid::Uuid::now_v7().simple()));
        Settings {
            path: path.to_string(),
            synchronous_full,
            memory_name,
            file_mode: DEFAULT_FILE_MODE,
        }
    }
}

/// The path that asks for an in-process database (tests, throwaway queues).
pub const MEMORY_PATH: &str = ":memory:";

/// Opens one connection to a store's in-memory database. `memdb` (not `:memory:`) because
/// each `:memory:` connection would get a database of its own, while every thread of the
/// engine needs the same one; `memdb` also keeps SQLite's ordinary locking between them.
fn open_memory(name: &str) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(name, flags).map_err(|e| open_error(MEMORY_PATH, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(MEMORY_PATH, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| open_error(MEMORY_PATH, e))?;
    Ok(conn)
}

fn open_error(path: &str, cause: impl ToString) -> Error {
    Error::Open {
        path: path.to_string(),
        cause: cause.to_string(),
    }
}

/// Checks the path before SQLite touches it: a directory, a path under a regular file or a
/// file that is not SQLite is refused without writing a byte. Creates missing parent folders.
pub fn check_path(path: &str) -> Result<()> {
    if path.is_empty() || path.starts_with("file:") {
        return Err(open_error(
            path,
            "a queue needs a database file path, or \":memory:\" for an in-process database",
        ));
    }
    let p = Path::new(path);
    if p.is_dir() {
        return Err(open_error(path, "it is a directory"));
    }
    if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Walk up to the first existing ancestor: it must be a directory.
        let mut ancestor = Some(parent);
        while let Some(a) = ancestor {
            if a.exists() {
                if !a.is_dir() {
                    return Err(open_error(
                        path,
                        format!("{} is a file, not a directory", a.display()),
                    ));
                }
                break;
            }
            ancestor = a.parent().filter(|d| !d.as_os_str().is_empty());
        }
        fs::create_dir_all(parent).map_err(|e| {
            open_error(
                path,
                format!("cannot create folder {}: {e}", parent.display()),
            )
        })?;
    }
    if p.exists() {
        let mut header = [0u8; 16];
        let mut file = fs::File::open(p).map_err(|e| open_error(path, e))?;
        let len = file.metadata().map_err(|e| open_error(path, e))?.len();
        if len > 0 {
            let n = file.read(&mut header).map_err(|e| open_error(path, e))?;
            if n < 16 || &header != SQLITE_MAGIC {
                return Err(open_error(
                    path,
                    "the file exists but is not a SQLite database",
                ));
            }
        }
    }
    Ok(())
}

/// Refuses an existing SQLite database that belongs to another application, before
/// anything (WAL mode, tables) is written to it: it has tables, and not taskito's.
fn check_not_foreign(path: &str) -> Result<()> {
    if fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(());
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(path, flags) else {
        return Ok(()); // the full open that follows reports the cause
    };
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Ok(()); // refused by the full open, before anything is read or created
    }
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
    let tables: Vec<String> = match conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut st| {
            st.query_map([], |r| r.get(0))?
                .collect::<std::result::Result<Vec<String>, _>>()
        }) {
        Ok(t) => t,
        Err(_) => return Ok(()), // damaged: the full open names the damage
    };
    if tables.is_empty()
        || tables.iter().any(|t| t == "jobs") && tables.iter().any(|t| t == "workers")
    {
        return Ok(());
    }
    let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    Err(open_error(
        path,
        format!(
            "it is a SQLite database of another application (tables: {}); taskito leaves it untouched",
            shown.join(", ")
        ),
    ))
}

/// Opens one connection with the store's pragmas.
pub fn open(settings: &Settings) -> Result<Connection> {
    if let Some(name) = &settings.memory_name {
        return open_memory(name);
    }
    let path = settings.path.as_str();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|_| open_error(path, why_not_open(path)))?;
    // SQLite quietly falls back to read-only when it may not write the file; the queue
    // would then fail at its first write, far from the cause. Checked before the first
    // read, so nothing (not even a -wal or -shm file) is created.
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(open_error(
            path,
            "the file is read-only (this user may not write it)",
        ));
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Query-planner stability: without it SQLite looks at bound values while planning
    // (a LIMIT ?, a parameter compared with a partial index's predicate), and every cached
    // statement whose parameter then changes (the claim's `now`, the row's seq) is parsed
    // and planned again on its next run. Measured: that was most of an idle worker's CPU.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| open_error(path, e))?;
    let mode: String = with_retry(|| {
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(Error::from)
    })
    .map_err(|e| open_error(path, describe(&e)))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(open_error(
            path,
            format!("cannot switch to WAL mode (got {mode})"),
        ));
    }
    // Checkpoints (copying the WAL back into the database, with fsyncs) are mostly left
    // to a running worker's maintenance timer; the automatic one, which runs inside
    // whichever commit crosses the threshold, only bounds the WAL when no worker runs.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(|e| open_error(path, e))?;
    let sync = if settings.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// Creates a missing database file with `mode` exactly (the umask does not widen or narrow
/// it) before SQLite opens it, so SQLite's -wal and -shm files copy the same bits. An
/// existing file, or one another process creates first, is left as it is.
fn create_with_mode(path: &str, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path);
        match created {
            Ok(file) => file
                .set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| open_error(path, format!("cannot set the file's mode: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => {
                let folder = match Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    Some(d) => d.display().to_string(),
                    None => ".".into(),
                };
                Err(open_error(
                    path,
                    format!("cannot create the file in folder {folder}: {e}"),
                ))
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Database files this process holds open through a store, by device and inode, with how
/// many stores hold each. POSIX record locks belong to the process, and closing *any*
/// descriptor of a file drops all of them, SQLite's included: a plain open-and-close of a
/// file that a store of this process already uses (the header check of a second `Queue` on
/// it) would leave that store unlocked, and another process closing its last connection
/// would then delete the write-ahead log under it, losing what it commits next. So a file
/// already held here is neither opened outside SQLite nor checked again.
static HELD: Mutex<BTreeMap<(u64, u64), usize>> = Mutex::new(BTreeMap::new());

fn file_key(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn is_held(path: &str) -> bool {
    let Some(key) = file_key(path) else {
        return false;
    };
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&key)
}

/// A store's claim on its database file in `HELD`, released when the store is dropped.
pub struct Hold(Option<(u64, u64)>);

impl Hold {
    /// No file (an in-memory store).
    pub fn none() -> Hold {
        Hold(None)
    }

    /// Records that a store of this process now holds `path` open.
    pub fn take(path: &str) -> Hold {
        let key = file_key(path);
        if let Some(k) = key {
            *HELD
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(k)
                .or_insert(0) += 1;
        }
        Hold(key)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some(k) = self.0 else {
            return;
        };
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                held.remove(&k);
            }
        }
    }
}

/// Opens the first connection of a store: creates or upgrades the schema and checks that
/// the file is sound. Errors name the path and the cause.
pub fn open_and_migrate(settings: &Settings) -> Result<Connection> {
    if settings.memory_name.is_some() {
        let mut conn = open(settings)?;
        schema::migrate(&mut conn, MEMORY_PATH)?;
        return Ok(conn);
    }
    // A file another store of this process holds was checked when that store opened it,
    // and must not be opened outside SQLite now (see `HELD`).
    let checked = !is_held(&settings.path);
    if checked {
        check_path(&settings.path)?;
        if !Path::new(&settings.path).exists() {
            create_with_mode(&settings.path, settings.file_mode)?;
        }
        // A dangling link "does not exist" yet SQLite would create its target with the
        // umask's bits: refused before SQLite sees it.
        if fs::symlink_metadata(&settings.path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(open_error(
                &settings.path,
                "it is a symbolic link; give the path of the file itself",
            ));
        }
        check_not_foreign(&settings.path)?;
    }
    let mut conn = open(settings)?;
    let path = settings.path.as_str();
    with_retry(|| schema::migrate(&mut conn, path)).map_err(|e| match e {
        Error::SchemaTooNew { .. } | Error::Open { .. } => e,
        other => open_error(path, describe(&other)),
    })?;
    let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let probe = |sql: &str| -> std::result::Result<String, rusqlite::Error> {
        conn.query_row(sql, [], |r| r.get::<_, String>(0))
    };
    if size <= QUICK_CHECK_MAX_BYTES {
        let verdict = probe("PRAGMA quick_check(1)").map_err(|e| open_error(path, e))?;
        if verdict != "ok" {
            return Err(open_error(
                path,
                format!("the database is damaged: {verdict}"),
            ));
        }
    } else {
        probe("SELECT id FROM jobs ORDER BY seq DESC LIMIT 1")
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(String::new()),
                e => Err(e),
            })
            .map_err(|e| open_error(path, format!("the database is damaged: {e}")))?;
    }
    if checked {
        check_private(path, settings.file_mode)?;
    }
    Ok(conn)
}

/// Refuses a database file of another user, or one whose mode gives more than
/// `file_mode`: whoever else can write it can make the workers run code.
fn check_private(path: &str, file_mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(path).map_err(|e| open_error(path, e))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(open_error(
                path,
                format!(
                    "the file belongs to user {} and this process runs as user {me}",
                    meta.uid()
                ),
            ));
        }
        let got = meta.mode() & 0o777;
        if got & !file_mode != 0 {
            return Err(open_error(
                path,
                format!(
                    "the file's mode is {got:o}, wider than file_mode {file_mode:o}: \
                     chmod it, or pass file_mode={got:#o} to share it on purpose"
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, file_mode);
    Ok(())
}

/// Why SQLite could not open or create `path`: SQLite only says "unable to open database
/// file", so ask the OS the same question to get its reason (permission denied, read-only
/// file system, ...). Never changes an existing file; a file created here is removed.
fn why_not_open(path: &str) -> String {
    let p = Path::new(path);
    if p.exists() {
        return match fs::OpenOptions::new().read(true).write(true).open(p) {
            Err(e) => format!("cannot open the file for writing: {e}"),
            Ok(_) => "SQLite cannot open the file".into(),
        };
    }
    let folder = match p.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.display().to_string(),
        None => ".".into(),
    };
    match fs::OpenOptions::new().write(true).create_new(true).open(p) {
        Err(e) => format!("cannot create the file in folder {folder}: {e}"),
        Ok(_) => {
            let _ = fs::remove_file(p);
            "SQLite cannot create the file".into()
        }
    }
}

/// A human wording of SQLite's errors for the open path.
fn describe(e: &Error) -> String {
    match e {
        Error::Sqlite(inner) => match inner.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => "the file is not a SQLite database".into(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => "the database is damaged".into(),
            Some(rusqlite::ErrorCode::ReadOnly) => "the file or its folder is read-only".into(),
            Some(rusqlite::ErrorCode::CannotOpen) => {
                "cannot open the file (missing permission?)".into()
            }
            _ => inner.to_string(),
        },
        other => other.to_string(),
    }
}

/// Runs `f`, retrying lock contention with jittered backoff for up to two minutes, so that
/// writers wait for each other instead of failing.
pub fn with_retry<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    let mut delay_ms = 1u64;
    loop {
        match f() {
            Err(e) if e.is_busy() && start.elapsed() < RETRY_FOR => {
                thread::sleep(Duration::from_millis(fastrand::u64(0..=delay_ms)));
                delay_ms = (delay_ms * 2).min(200);
            }
            other => return other,
        }
    }
}

/// Connections for callers without their own (producers, inspection). A connection is
/// taken for one call and given back.
pub struct Pool {
    settings: Settings,
    idle: Mutex<Vec<Connection>>,
}

const POOL_KEEP: usize = 8;

impl Pool {
    pub fn new(settings: Settings, first: Connection) -> Pool {
        Pool {
            settings,
            idle: Mutex::new(vec![first]),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Closes the idle connections; the next call opens one again.
    pub fn close(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Runs `f` with a pooled connection, opening one if none is idle.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => open(&self.settings)?,
        };
        let out = f(&mut conn);
        if !conn.is_autocommit() {
            // A failed call left a transaction open: discard the connection rather than
            // hand a half-done transaction to the next caller.
            return out;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_KEEP {
            idle.push(conn);
        }
        out
    }
}
