//! The engine's `log` records, delivered to Python's `logging` without any engine thread
//! waiting for the GIL. Records go into a bounded channel (a full channel drops the record
//! and counts it); a thread that holds the GIL anyway drains them into the `taskito`
//! loggers: the thread waiting in `run_worker` (woken through `doorbell.rs` when records are
//! queued, at most every 100 ms, and once more after the engine stopped), and the bindings
//! that run work in the calling thread. Which levels are worth
//! queueing is refreshed from Python's logger configuration at each drain.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

/// Most records waiting for delivery.
const CAPACITY: usize = 10_000;

/// One engine record, as Python's `logging` will see it.
pub struct Record {
    /// The Rust module path (`_taskito::scheduler`).
    pub target: String,
    pub level: log::Level,
    pub message: String,
    pub thread: String,
    /// Seconds since the epoch when it was logged.
    pub created: f64,
    pub file: String,
    pub line: u32,
}

struct Bridge {
    tx: Sender<Record>,
    rx: Receiver<Record>,
    dropped: AtomicU64,
    /// Set by the first record queued since the last `take`: only that one rings the bell.
    waiting: AtomicBool,
    /// The most verbose level any taskito logger wants, as `log::LevelFilter as usize`.
    threshold: AtomicUsize,
}

fn bridge() -> &'static Bridge {
    static BRIDGE: OnceLock<Bridge> = OnceLock::new();
    BRIDGE.get_or_init(|| {
        let (tx, rx) = bounded(CAPACITY);
        Bridge {
            tx,
            rx,
            dropped: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            threshold: AtomicUsize::new(log::LevelFilter::Trace as usize),
        }
    })
}

struct BridgeLogger;

impl log::Log for BridgeLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        // The PostgreSQL client logs every statement at debug level; only its warnings and
        // errors are worth a record.
        let target = metadata.target();
        if (target.starts_with("tokio_postgres") || target.starts_with("postgres"))
            && metadata.level() > log::Level::Warn
        {
            return false;
        }
        metadata.level() as usize <= bridge().threshold.load(Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let entry = Record {
            target: record.target().to_string(),
            level: record.level(),
            message: record.args().to_string(),
            thread: std::thread::current()
                .name()
                .unwrap_or("taskito-engine")
                .to_string(),
            created,
            file: record.file().unwrap_or("").to_string(),
            line: record.line().unwrap_or(0),
        };
        match bridge().tx.try_send(entry) {
            Ok(()) => {
                if !bridge().waiting.swap(true, Ordering::AcqRel) {
                    crate::doorbell::ring();
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                bridge().dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&self) {}
}

static LOGGER: BridgeLogger = BridgeLogger;

/// Makes this the process's `log` logger (once; later calls and other loggers are ignored).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// Sets the most verbose level worth queueing.
pub fn set_threshold(level: log::LevelFilter) {
    bridge().threshold.store(level as usize, Ordering::Relaxed);
}

/// Takes every waiting record.
pub fn take() -> Vec<Record> {
    // Cleared first: a record queued after this rings again.
    bridge().waiting.store(false, Ordering::Release);
    bridge().rx.try_iter().collect()
}

/// Whether records were queued since the last `take`.
pub fn waiting() -> bool {
    bridge().waiting.load(Ordering::Acquire)
}

/// Takes the number of records dropped because the channel was full.
pub fn take_dropped() -> u64 {
    bridge().dropped.swap(0, Ordering::Relaxed)
}

/// The `log` level filter matching a Python logging level (records at or above it pass).
pub fn filter_for_python_level(level: i64) -> log::LevelFilter {
    match level {
        i64::MIN..=5 => log::LevelFilter::Trace,
        6..=10 => log::LevelFilter::Debug,
        11..=20 => log::LevelFilter::Info,
        21..=30 => log::LevelFilter::Warn,
        31..=40 => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    }
}

/// The Python logging level of a record.
pub fn python_level(level: log::Level) -> i64 {
    match level {
        log::Level::Error => 40,
        log::Level::Warn => 30,
        log::Level::Info => 20,
        log::Level::Debug => 10,
        log::Level::Trace => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        set_threshold(log::LevelFilter::Trace);
        let _ = take();
        let _ = take_dropped();
        for i in 0..CAPACITY + 25 {
            LOGGER.log(
                &log::Record::builder()
                    .args(format_args!("record {i}"))
                    .level(log::Level::Warn)
                    .target("_taskito::test")
                    .build(),
            );
        }
        let kept = take();
        assert_eq!(kept.len(), CAPACITY);
        assert_eq!(kept[0].message, "record 0");
        assert_eq!(take_dropped(), 25);
        // Below the threshold nothing is even formatted or queued.
        set_threshold(log::LevelFilter::Warn);
        LOGGER.log(
            &log::Record::builder()
                .args(format_args!("debug"))
                .level(log::Level::Debug)
                .target("_taskito::test")
                .build(),
        );
        assert!(take().is_empty());
    }
}
