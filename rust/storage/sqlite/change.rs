//! Whether anything was committed to the SQLite file since the last look: the change probe
//! an idle scheduler reads once per poll.
//!
//! The exact answer is `PRAGMA data_version`, but asking it opens and ends a read
//! transaction: a statement run plus two `fcntl` lock calls, each dear on a thread that
//! just woke from sleep. Every commit in WAL mode rewrites the header of the WAL index
//! (`wal_index.rs`), so the probe compares that header with what it saw last instead: no
//! system call at all. As a safety net the exact answer is still asked once every
//! `EXACT_EVERY` looks: should the header ever stay the same across a commit, the change
//! is seen within that many polls.

use rusqlite::Connection;

use super::wal_index::WalIndex;
use crate::storage::ChangeProbe;

/// Every this many looks, `PRAGMA data_version` is asked as well (once a second at the
/// default poll interval).
const EXACT_EVERY: u32 = 20;

pub struct SqliteChangeProbe {
    /// The connection's WAL index, mapped once (`None`: every look is exact). Declared
    /// before `conn`, and dropped before it.
    index: Option<WalIndex<'static>>,
    /// A connection of its own: `data_version` counts commits by every other connection.
    conn: Connection,
    looks: u32,
    /// Looks that found the header mid-write (each reports a value of its own).
    torn: u64,
    /// The header and data version at the last exact look, and a count bumped whenever
    /// the data version moved while the header did not (it is part of the version).
    header_at_exact: Option<u64>,
    last_exact: Option<i64>,
    missed: i64,
}

impl SqliteChangeProbe {
    pub fn new(conn: Connection) -> SqliteChangeProbe {
        // One read first: it opens the connection's WAL index.
        let _ = data_version(&conn);
        // SAFETY: the connection moves into the probe beside the index and stays there,
        // open, for the probe's whole life (a move does not change the mapping).
        let index = WalIndex::of(&conn).map(|i| unsafe { i.unbound() });
        let mut probe = SqliteChangeProbe {
            index,
            conn,
            looks: 0,
            torn: 0,
            header_at_exact: None,
            last_exact: None,
            missed: 0,
        };
        // The header before the data version: a commit between the two then shows in the
        // header at the next exact look, not as a miss.
        probe.header_at_exact = probe.header_hash();
        probe.last_exact = data_version(&probe.conn);
        probe
    }

    /// Whether the header is read (false: every look asks `data_version`).
    #[cfg(test)]
    pub fn reads_header(&self) -> bool {
        self.index.is_some()
    }

    /// The header's stamp; while a commit is writing it, a value never returned before
    /// (the caller then looks at the store).
    fn header_hash(&mut self) -> Option<u64> {
        let index = self.index.as_ref()?;
        Some(index.change_stamp().unwrap_or_else(|| {
            self.torn = self.torn.wrapping_add(1);
            self.torn.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 1
        }))
    }
}

impl ChangeProbe for SqliteChangeProbe {
    fn version(&mut self) -> Option<i64> {
        let Some(header) = self.header_hash() else {
            return data_version(&self.conn);
        };
        self.looks = self.looks.wrapping_add(1);
        if self.looks % EXACT_EVERY == 0 {
            let exact = data_version(&self.conn);
            if exact != self.last_exact && Some(header) == self.header_at_exact {
                log::debug!("a commit left the WAL-index header unchanged; seen by data_version");
                self.missed += 1;
            }
            self.header_at_exact = Some(header);
            self.last_exact = exact;
        }
        Some((header as i64).wrapping_add(self.missed))
    }
}

fn data_version(conn: &Connection) -> Option<i64> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "wal").unwrap();
        c
    }

    #[test]
    fn every_commit_elsewhere_changes_the_version_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let writer = open(&path);
        writer.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let mut probe = SqliteChangeProbe::new(open(&path));
        assert!(probe.reads_header());
        let mut last = probe.version();
        for i in 0..50 {
            // Quiet looks (more than EXACT_EVERY of them) report the same version.
            for _ in 0..25 {
                assert_eq!(probe.version(), last);
            }
            writer.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
            let now = probe.version();
            assert_ne!(now, last, "commit {i} unseen");
            last = now;
            if i % 10 == 9 {
                // A checkpoint that empties the WAL, after which the next commit
                // starts it over from its first frame.
                writer
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
                last = probe.version();
            }
        }
    }

    /// The writer is another process (this test binary run again): the header lives in
    /// memory shared between processes.
    #[test]
    fn commits_of_another_process_change_the_version() {
        const WRITER: &str = "TASKITO_TEST_PROBE_WRITER";
        if let Ok(path) = std::env::var(WRITER) {
            let c = open(std::path::Path::new(&path));
            c.execute("INSERT INTO t VALUES (1)", []).unwrap();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        open(&path)
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let mut probe = SqliteChangeProbe::new(open(&path));
        assert!(probe.reads_header());
        for _ in 0..3 {
            let before = probe.version();
            // Fewer looks than EXACT_EVERY: the header alone must show the change.
            probe.looks = 0;
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "storage::sqlite::change::tests::commits_of_another_process_change_the_version",
                    "--nocapture",
                ])
                .env(WRITER, &path)
                .status()
                .unwrap();
            assert!(status.success());
            assert_ne!(probe.version(), before);
            assert_eq!(probe.version(), probe.version());
        }
    }

    #[test]
    fn an_in_memory_database_is_probed_the_exact_way() {
        let mut probe = SqliteChangeProbe::new(Connection::open_in_memory().unwrap());
        assert!(!probe.reads_header());
        assert_eq!(probe.version(), probe.version());
    }
}
