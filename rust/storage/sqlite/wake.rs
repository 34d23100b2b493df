//! Wake-ups between processes sharing one SQLite file: each listening process binds a Unix
//! datagram socket in a folder beside the database (`<db>-wake/`), and a process that
//! commits work sends one byte to each socket there. A byte is only a hint: a lost one
//! costs the listener a poll interval, never a job, so every send is non-blocking and
//! every failure is ignored.
//!
//! Two kinds of listener share the folder: workers (`w-*.sock`: jobs may be ready) and
//! result waiters (`r-*.sock`: a job may have finished), so a completion does not wake
//! idle schedulers and an enqueue does not wake result waiters.
//!
//! Chosen over a file-change watch on the write-ahead log (it fires on every write of
//! every connection, heartbeats and claims included, and on nothing for a checkpointed or
//! rolled-back file) and over a futex in shared memory (no way to tell a live waiter from
//! a dead one, and a mapping that outlives its file): a socket of a dead process refuses
//! the send, so its file is removed by the next sender.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::storage::WakeSource;

/// Turns the mechanism off in this process (`TASKITO_WAKE=off`): polling alone then.
pub const ENV_SWITCH: &str = "TASKITO_WAKE";
/// A cached listing of the folder is trusted only once it was taken this long after the
/// folder last changed: file-system timestamps are coarse, and a socket bound in the same
/// tick as the listing would otherwise go unseen until the next change.
const SETTLED: Duration = Duration::from_millis(100);
/// Listings are read again at least this often, whatever the timestamps say.
const RELIST_EVERY: Duration = Duration::from_secs(2);
/// Sun paths longer than this do not fit a `sockaddr_un`.
const MAX_SOCKET_PATH: usize = 100;

/// Who a hint is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Schedulers of worker processes: jobs may be ready.
    Work,
    /// Threads waiting on results: a job may have finished.
    Results,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Work => "w-",
            Kind::Results => "r-",
        }
    }
}

/// Whether wake-ups are on in this process (the environment switch).
pub fn enabled() -> bool {
    !matches!(
        std::env::var(ENV_SWITCH).as_deref().map(str::trim),
        Ok("off" | "0" | "false" | "no")
    )
}

/// The folder of wake sockets for the database at `db_path`.
pub fn folder_for(db_path: &str) -> PathBuf {
    PathBuf::from(format!("{db_path}-wake"))
}

/// The modes of the wake folder and of its sockets: the database file's own bits (it
/// follows `file_mode`), the folder with search permission wherever it has read.
fn private_modes(db_path: &str) -> (u32, u32) {
    use std::os::unix::fs::PermissionsExt;
    let file = fs::metadata(db_path)
        .map(|m| m.permissions().mode() & 0o666)
        .unwrap_or(0o600);
    (file | ((file & 0o444) >> 2), file)
}

/// Creates the wake folder with `mode` exactly, or checks the one that is there: a
/// symbolic link, a folder of another user or one wider than `mode` is refused
/// (`PermissionDenied`, saying why), since whoever controls it could read or fake hints.
fn prepare_folder(folder: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match fs::DirBuilder::new().mode(mode).create(folder) {
        // The umask narrowed the bits given to mkdir: set them exactly.
        Ok(()) => fs::set_permissions(folder, fs::Permissions::from_mode(mode))?,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let refuse = |why: String| {
        Err(std::io::Error::new(
            ErrorKind::PermissionDenied,
            format!("the wake folder {} {why}", folder.display()),
        ))
    };
    let meta = fs::symlink_metadata(folder)?;
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse("is not a folder".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return refuse(format!(
            "belongs to user {} (this process runs as user {me})",
            meta.uid()
        ));
    }
    let got = meta.mode() & 0o777;
    if got & !mode != 0 {
        return refuse(format!("has mode {got:o}, wider than {mode:o}"));
    }
    Ok(())
}

/// A path for a socket in `folder` that fits a `sockaddr_un`: the plain path when it is
/// short enough, else the same file reached through this process's descriptor of the
/// folder (`/proc/self/fd/N/name`).
fn socket_path(folder: &Path, dir_fd: Option<i32>, name: &str) -> Option<PathBuf> {
    let plain = folder.join(name);
    if plain.as_os_str().len() <= MAX_SOCKET_PATH {
        return Some(plain);
    }
    dir_fd.map(|fd| PathBuf::from(format!("/proc/self/fd/{fd}/{name}")))
}

/// An open descriptor of a folder, kept for `/proc/self/fd` paths.
struct FolderHandle {
    file: Option<fs::File>,
}

impl FolderHandle {
    fn open(folder: &Path) -> FolderHandle {
        FolderHandle {
            file: fs::File::open(folder).ok(),
        }
    }

    fn fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        self.file.as_ref().map(|f| f.as_raw_fd())
    }
}

/// One process's listening socket; implements `WakeSource`. The socket file is removed
/// when it is dropped.
pub struct Listener {
    sock: UnixDatagram,
    file: PathBuf,
    timeout: Option<Duration>,
}

static SOCKET_SEQ: AtomicU64 = AtomicU64::new(0);

impl Listener {
    /// Binds a new socket of `kind` in the folder beside the database (creating it).
    /// `Ok(None)` when wake-ups are switched off.
    pub fn bind(db_path: &str, kind: Kind) -> std::io::Result<Option<Listener>> {
        if !enabled() {
            return Ok(None);
        }
        let folder = folder_for(db_path);
        let (folder_mode, socket_mode) = private_modes(db_path);
        prepare_folder(&folder, folder_mode)?;
        let handle = FolderHandle::open(&folder);
        let name = format!(
            "{}{}-{}-{:x}.sock",
            kind.prefix(),
            std::process::id(),
            SOCKET_SEQ.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let path = socket_path(&folder, handle.fd(), &name)
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "socket path too long"))?;
        let sock = UnixDatagram::bind(&path)?;
        {
            // Bound with the umask's bits: set the database's own, whatever the umask.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(socket_mode))?;
        }
        Ok(Some(Listener {
            sock,
            file: folder.join(name),
            timeout: None,
        }))
    }

    /// Reads every hint already queued, so a burst of them wakes the listener once.
    fn drain(&self) {
        if self.sock.set_nonblocking(true).is_err() {
            return;
        }
        let mut buf = [0u8; 16];
        while self.sock.recv(&mut buf).is_ok() {}
        let _ = self.sock.set_nonblocking(false);
    }
}

impl WakeSource for Listener {
    fn wait(&mut self, timeout: Duration) -> bool {
        // Zero means "no timeout" to the socket: never block forever on a hint.
        let timeout = timeout.max(Duration::from_millis(1));
        if self.timeout != Some(timeout) {
            if self.sock.set_read_timeout(Some(timeout)).is_err() {
                std::thread::sleep(timeout);
                return false;
            }
            self.timeout = Some(timeout);
        }
        let mut buf = [0u8; 16];
        match self.sock.recv(&mut buf) {
            Ok(_) => {
                self.drain();
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) if e.kind() == ErrorKind::Interrupted => false,
            Err(e) => {
                // A broken socket must not spin its thread: behave like a quiet timeout.
                log::debug!("wake socket failed: {e}");
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

/// The sending side, one per store: sends a byte to every listener of a kind, from a cached
/// listing of the folder.
pub struct Notifier {
    folder: PathBuf,
    on: bool,
    state: Mutex<NotifierState>,
    /// Sockets bound through the same store: the engine and waiters that own them share
    /// this store's queue object and hear its commits directly, so no byte is sent there.
    own: Mutex<Vec<String>>,
}

struct NotifierState {
    sock: Option<UnixDatagram>,
    handle: Option<FolderHandle>,
    listing: Option<Listing>,
}

struct Listing {
    changed: Option<SystemTime>,
    taken_wall: SystemTime,
    taken: Instant,
    names: HashMap<Kind, Vec<String>>,
}

impl Notifier {
    /// `shared`: whether other processes can open the database at all.
    pub fn new(db_path: &str, shared: bool) -> Notifier {
        Notifier {
            folder: folder_for(db_path),
            on: shared && enabled(),
            state: Mutex::new(NotifierState {
                sock: None,
                handle: None,
                listing: None,
            }),
            own: Mutex::new(Vec::new()),
        }
    }

    /// Marks a socket bound through the same store as this notifier (see `own`).
    pub fn skip(&self, listener: &Listener) {
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        own.retain(|n| self.folder.join(n).exists());
        if let Some(name) = listener.file.file_name().and_then(|n| n.to_str()) {
            own.push(name.to_string());
        }
    }

    /// Sends a hint to every listener of `kind`. Never blocks and never fails: a full
    /// socket already holds a hint, and a refused one belongs to a process that is gone
    /// (its file is removed).
    pub fn notify(&self, kind: Kind) {
        if !self.on {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let changed = fs::metadata(&self.folder).and_then(|m| m.modified()).ok();
        let fresh = st.listing.as_ref().is_some_and(|l| {
            l.changed == changed
                && l.taken.elapsed() < RELIST_EVERY
                && changed
                    .is_some_and(|c| l.taken_wall.duration_since(c).unwrap_or_default() >= SETTLED)
        });
        if !fresh {
            if changed.is_none() {
                // No folder: nobody listens. Checked again on the next commit.
                st.listing = None;
                return;
            }
            st.listing = Some(list(&self.folder, changed));
            st.handle = None; // the folder may have been made again
        }
        let names: Vec<String> = {
            let own = self.own.lock().unwrap_or_else(|p| p.into_inner());
            match st.listing.as_ref().and_then(|l| l.names.get(&kind)) {
                Some(n) => n.iter().filter(|x| !own.contains(x)).cloned().collect(),
                None => return,
            }
        };
        if names.is_empty() {
            return;
        }
        if st.sock.is_none() {
            st.sock = UnixDatagram::unbound()
                .and_then(|s| s.set_nonblocking(true).map(|_| s))
                .ok();
        }
        if st.handle.is_none() {
            st.handle = Some(FolderHandle::open(&self.folder));
        }
        let fd = st.handle.as_ref().and_then(FolderHandle::fd);
        let Some(sock) = st.sock.as_ref() else {
            return;
        };
        let mut gone = Vec::new();
        for name in &names {
            let Some(path) = socket_path(&self.folder, fd, name) else {
                continue;
            };
            match sock.send_to(&[1], &path) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    // Nothing is bound there any more: its process died unannounced.
                    let _ = fs::remove_file(self.folder.join(name));
                    gone.push(name.clone());
                }
                Err(e) if e.kind() == ErrorKind::NotFound => gone.push(name.clone()),
                Err(_) => {} // full (a hint is already waiting) or otherwise unreachable
            }
        }
        if !gone.is_empty() {
            if let Some(l) = st.listing.as_mut() {
                for v in l.names.values_mut() {
                    v.retain(|n| !gone.contains(n));
                }
            }
        }
    }
}

fn list(folder: &Path, changed: Option<SystemTime>) -> Listing {
    let taken_wall = SystemTime::now();
    let mut names: HashMap<Kind, Vec<String>> = HashMap::new();
    if let Ok(entries) = fs::read_dir(folder) {
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.ends_with(".sock") || !entry.file_type().is_ok_and(|t| t.is_socket()) {
                continue;
            }
            for kind in [Kind::Work, Kind::Results] {
                if name.starts_with(kind.prefix()) {
                    names.entry(kind).or_default().push(name.clone());
                }
            }
        }
    }
    Listing {
        changed,
        taken_wall,
        taken: Instant::now(),
        names,
    }
}

/// A listening socket for hints of `kind` on the store at `path`, told to `hints` so this
/// process does not wake itself; `None` (polling) where it cannot be had.
pub(super) fn listen(
    path: &str,
    memory: bool,
    hints: &Notifier,
    kind: Kind,
) -> Option<Box<dyn WakeSource>> {
    // An in-memory database has no other process to hear from, nor a folder beside it.
    if memory {
        return None;
    }
    match Listener::bind(path, kind) {
        Ok(l) => l.map(|l| {
            hints.skip(&l);
            Box::new(l) as Box<dyn WakeSource>
        }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // A wake folder that is not private: said once per process, then polling.
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                log::warn!("no wake-ups for {path}, polling only: {e}");
            }
            None
        }
        Err(e) => {
            log::debug!("no wake-ups for {path}, polling only: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_reaches_listener_of_its_kind_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let db = db.to_str().unwrap();
        let mut worker = Listener::bind(db, Kind::Work).unwrap().unwrap();
        let mut waiter = Listener::bind(db, Kind::Results).unwrap().unwrap();
        let notifier = Notifier::new(db, true);
        assert!(!worker.wait(Duration::from_millis(5)));
        notifier.notify(Kind::Work);
        assert!(worker.wait(Duration::from_secs(5)));
        assert!(!waiter.wait(Duration::from_millis(20)));
        // A burst is drained by one wait.
        for _ in 0..10 {
            notifier.notify(Kind::Work);
        }
        assert!(worker.wait(Duration::from_secs(5)));
        assert!(!worker.wait(Duration::from_millis(20)));
        notifier.notify(Kind::Results);
        assert!(waiter.wait(Duration::from_secs(5)));
    }

    #[test]
    fn a_listener_bound_after_a_listing_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let db = db.to_str().unwrap();
        let notifier = Notifier::new(db, true);
        notifier.notify(Kind::Work); // no folder yet: nothing to do
        let _first = Listener::bind(db, Kind::Work).unwrap().unwrap();
        notifier.notify(Kind::Work);
        let mut second = Listener::bind(db, Kind::Work).unwrap().unwrap();
        notifier.notify(Kind::Work);
        assert!(second.wait(Duration::from_secs(5)));
    }

    #[test]
    fn a_dead_listeners_file_is_removed_and_dropping_removes_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let db = db.to_str().unwrap();
        let folder = folder_for(db);
        let listener = Listener::bind(db, Kind::Work).unwrap().unwrap();
        let file = listener.file.clone();
        // A socket file with nothing bound behind it, as a killed process leaves one.
        let stale = folder.join("w-1-0-dead.sock");
        drop(UnixDatagram::bind(&stale).unwrap());
        assert!(stale.exists());
        Notifier::new(db, true).notify(Kind::Work);
        assert!(!stale.exists());
        assert!(file.exists());
        drop(listener);
        assert!(!file.exists());
    }

    #[test]
    fn long_database_paths_still_bind() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a".repeat(60)).join("b".repeat(60));
        fs::create_dir_all(&deep).unwrap();
        let db = deep.join("q.db");
        let db = db.to_str().unwrap();
        let mut listener = Listener::bind(db, Kind::Work).unwrap().unwrap();
        Notifier::new(db, true).notify(Kind::Work);
        assert!(listener.wait(Duration::from_secs(5)));
    }
}
