//! The WAL index of a SQLite file, read where SQLite keeps it: the first region of the
//! `<db>-shm` shared memory that every connection to the file maps. Its layout is part of
//! SQLite's documented file format (two copies of a 48-byte header holding a transaction
//! counter, the last valid frame and the salts, then the checkpoint record).
//!
//! The region is asked of the connection's own VFS (`xShmMap`), so this reads SQLite's
//! mapping and never opens the file itself: closing a descriptor of our own would drop
//! every POSIX lock this process holds on it, SQLite's included. The region stays mapped,
//! and valid, while the connection is open.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::sync::atomic::{fence, Ordering};

use rusqlite::{ffi, Connection};

/// One copy of the header.
const COPY: usize = 48;
/// `iVersion`, the header's first field: the only WAL-index format there has been.
const FORMAT: u32 = 3_007_000;
/// Offsets in a copy: `isInit` (non-zero once valid) and `mxFrame` (the last frame).
const IS_INIT: usize = 12;
const MX_FRAME: usize = 16;
/// Offset of `nBackfill` (frames already copied into the database) in the region.
const N_BACKFILL: usize = 2 * COPY;
/// The size of a WAL-index region.
const REGION: i32 = 32 * 1024;

/// The mapped region, valid for as long as the connection it came from is open.
pub struct WalIndex<'c> {
    region: *const u8,
    /// Ties the mapping to the borrow of its connection.
    _conn: PhantomData<&'c ()>,
}

// SAFETY: the region is memory shared between processes, read only through volatile loads;
// which thread reads it does not matter (SQLite's own mapping is used from any thread).
unsafe impl Send for WalIndex<'_> {}

impl<'c> WalIndex<'c> {
    /// `None` when the connection has no shared-memory WAL index (not in WAL mode, an
    /// in-memory or exclusive-locking database, a VFS without one) or the header is not of
    /// the known format.
    pub fn of(conn: &'c Connection) -> Option<WalIndex<'c>> {
        // SAFETY: `handle` is the live connection's pointer; the file-control call fills
        // `file` with the main database's `sqlite3_file`, owned by the connection.
        let region = unsafe {
            let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&mut file as *mut *mut ffi::sqlite3_file).cast(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
                return None;
            }
            let methods = &*(*file).pMethods;
            if methods.iVersion < 2 {
                return None;
            }
            let map = methods.xShmMap?;
            let mut region: *mut c_void = std::ptr::null_mut();
            // Region 0, not extending the file: the connection has read in WAL mode, so it
            // exists (and is already mapped by SQLite, which just hands it back).
            let rc = map(
                file,
                0,
                REGION,
                0,
                &mut region as *mut *mut c_void as *mut _,
            );
            if rc != ffi::SQLITE_OK || region.is_null() {
                return None;
            }
            region as *const u8
        };
        let index = WalIndex {
            region,
            _conn: PhantomData,
        };
        let first = index.copy(0);
        (u32::from_ne_bytes(first[0..4].try_into().ok()?) == FORMAT).then_some(index)
    }

    /// The same mapping, no longer tied to the borrow of its connection.
    ///
    /// # Safety
    /// The caller keeps the connection open, and never replaces it, for as long as the
    /// result is used (the probe owns both side by side).
    pub unsafe fn unbound(self) -> WalIndex<'static> {
        WalIndex {
            region: self.region,
            _conn: PhantomData,
        }
    }

    fn byte(&self, at: usize) -> u8 {
        // SAFETY: every offset read is below 2 * COPY + 4, inside the 32 KiB region.
        unsafe { std::ptr::read_volatile(self.region.add(at)) }
    }

    fn copy(&self, which: usize) -> [u8; COPY] {
        std::array::from_fn(|i| self.byte(which * COPY + i))
    }

    /// The header when both copies agree and it is valid; `None` while a commit is
    /// writing it.
    fn header(&self) -> Option<[u8; COPY]> {
        let first = self.copy(0);
        fence(Ordering::Acquire);
        let second = self.copy(1);
        (first == second && first[IS_INIT] != 0).then_some(first)
    }

    /// A value that changes with every commit (`None` while one is being written).
    pub fn change_stamp(&self) -> Option<u64> {
        self.header().map(|h| {
            h.iter().fold(0xcbf2_9ce4_8422_2325, |acc, b| {
                (acc ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
            })
        })
    }

    /// Frames in the WAL not yet copied into the database (`None` when unreadable now).
    pub fn frames_to_checkpoint(&self) -> Option<u32> {
        let header = self.header()?;
        let last = u32::from_ne_bytes(header[MX_FRAME..MX_FRAME + 4].try_into().ok()?);
        let backfilled = u32::from_ne_bytes(std::array::from_fn(|i| self.byte(N_BACKFILL + i)));
        Some(last.saturating_sub(backfilled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "wal").unwrap();
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        c
    }

    #[test]
    fn counts_the_frames_a_checkpoint_would_copy() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("q.db"));
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let index = WalIndex::of(&conn).expect("a WAL index");
        let before = index.frames_to_checkpoint().unwrap();
        assert!(before >= 1);
        let stamp = index.change_stamp();
        for i in 0..10 {
            conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        assert!(index.frames_to_checkpoint().unwrap() >= before + 10);
        assert_ne!(index.change_stamp(), stamp);
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(index.frames_to_checkpoint(), Some(0));
    }

    #[test]
    fn no_index_without_wal() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(WalIndex::of(&conn).is_none());
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("plain.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        assert!(WalIndex::of(&conn).is_none());
    }
}
