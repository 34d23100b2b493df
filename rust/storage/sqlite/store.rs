//! The SQLite store itself: how it is opened, its pooled connections, the write lock of
//! this process, the hints it sends other processes, and the upkeep of its file
//! (checkpoints, the change probe, closing).

use std::sync::Mutex;

use rusqlite::Connection;

use super::change::SqliteChangeProbe;
use super::connection::{self, with_retry, Pool, Settings};
use super::wake::{Kind, Notifier};
use super::wal_index::WalIndex;
use crate::error::{Error, Result};
use crate::storage::picker::LimitCache;
use crate::storage::{ChangeProbe, Write};

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: survives any process crash; a power cut may lose
    /// the last commits.
    Normal,
    /// `synchronous=FULL`: every commit is fsynced.
    Full,
}

impl Durability {
    pub fn parse(s: &str) -> Result<Durability> {
        match s {
            "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            other => Err(Error::invalid(
                "durability",
                format!("{other:?} (expected \"normal\" or \"full\")"),
            )),
        }
    }
}

/// A SQLite-backed `Storage`. Cheap to share behind an `Arc`.
pub struct SqliteStorage {
    pub(super) pool: Pool,
    /// Serializes this process's write transactions. Threads of one process then queue on
    /// a mutex (nanoseconds to hand over) instead of on SQLite's busy handler, which sleeps
    /// in millisecond steps; SQLite's lock only arbitrates between processes.
    write_lock: Mutex<()>,
    /// For `:memory:` only: the connection that keeps the database alive.
    _keepalive: Mutex<Option<Connection>>,
    /// Tasks with a rate limit or concurrency cap; while there are none, claims take the
    /// plain path.
    pub(super) limits: LimitCache,
    /// Tells listening processes (workers, result waiters) of commits that concern them.
    pub(super) hints: Notifier,
    /// This store's entry among the files the process holds (`connection::Hold`).
    _hold: connection::Hold,
}

impl SqliteStorage {
    /// Opens (creating and migrating) the database at `path`; a new file is readable and
    /// writable by its owner only.
    pub fn open(path: &str, durability: Durability) -> Result<SqliteStorage> {
        Self::open_with_mode(path, durability, connection::DEFAULT_FILE_MODE)
    }

    /// `open`, creating a missing file with the permission bits `file_mode`.
    pub fn open_with_mode(
        path: &str,
        durability: Durability,
        file_mode: u32,
    ) -> Result<SqliteStorage> {
        if file_mode & 0o600 != 0o600 || file_mode > 0o777 {
            return Err(Error::invalid(
                "file_mode",
                format!("{file_mode:#o} (must be at most 0o777 and let the owner read and write)"),
            ));
        }
        let mut settings = Settings::new(path, durability == Durability::Full);
        settings.file_mode = file_mode;
        let first = connection::open_and_migrate(&settings)?;
        // An in-memory database lives as long as one connection to it: keep one aside
        // for the store's life (a pooled one may be dropped after a failed transaction).
        let keepalive = match settings.memory_name {
            Some(_) => Some(connection::open(&settings)?),
            None => None,
        };
        // An in-memory database has no other process to tell, nor a folder beside it.
        let shared = settings.memory_name.is_none();
        let hold = match settings.memory_name {
            Some(_) => connection::Hold::none(),
            None => connection::Hold::take(path),
        };
        Ok(SqliteStorage {
            _hold: hold,
            hints: Notifier::new(path, shared),
            pool: Pool::new(settings, first),
            write_lock: Mutex::new(()),
            _keepalive: Mutex::new(keepalive),
            limits: LimitCache::default(),
        })
    }

    pub fn path(&self) -> &str {
        &self.pool.settings().path
    }

    /// Whether this is an in-memory database (no file, no other process to tell).
    pub(super) fn in_memory(&self) -> bool {
        self.pool.settings().memory_name.is_some()
    }

    /// After a batch of outcomes: finished jobs concern result waiters; jobs put back
    /// (retries, requeues) concern workers.
    pub(super) fn hint_after_record(&self, writes: &[Write]) {
        let (mut work, mut results) = (false, false);
        for w in writes {
            match w {
                Write::Started { .. } => {}
                Write::Complete { .. } | Write::Fail { .. } => results = true,
                Write::Retry { .. } | Write::Requeue { .. } => work = true,
            }
        }
        if work {
            self.hints.notify(Kind::Work);
        }
        if results {
            self.hints.notify(Kind::Results);
        }
    }

    /// Runs a read on a pooled connection, retrying lock contention.
    pub(super) fn read<T>(&self, mut f: impl FnMut(&mut Connection) -> Result<T>) -> Result<T> {
        with_retry(|| self.pool.with(&mut f))
    }

    /// Runs a write on a pooled connection, one writer of this process at a time.
    pub(super) fn write<T>(&self, mut f: impl FnMut(&mut Connection) -> Result<T>) -> Result<T> {
        with_retry(|| {
            let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.pool.with(&mut f)
        })
    }
}

/// The maintenance checkpoint waits for the WAL to hold this many frames not yet copied
/// back (about 400 KiB of 4 KiB pages; a busy queue writes that within a tick).
const CHECKPOINT_MIN_FRAMES: u32 = 100;

impl SqliteStorage {
    /// A probe of the file's commit counter on a connection of its own.
    pub(super) fn new_change_probe(&self) -> Result<Box<dyn ChangeProbe>> {
        let conn = connection::open(self.pool.settings())?;
        Ok(Box::new(SqliteChangeProbe::new(conn)))
    }

    /// Copies the WAL back into the database once it holds enough frames to be worth it.
    pub(super) fn checkpoint_wal(&self) -> Result<()> {
        self.read(|c| {
            // An idle queue's WAL holds a few heartbeats: copying them back costs two
            // fsyncs, and the next heartbeat then starts the log over with a third.
            let pending = WalIndex::of(c).and_then(|w| w.frames_to_checkpoint());
            if pending.is_some_and(|n| n < CHECKPOINT_MIN_FRAMES) {
                return Ok(());
            }
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            Ok(())
        })
    }
}
