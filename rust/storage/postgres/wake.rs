//! Wake-ups over LISTEN/NOTIFY. An enqueue transaction notifies the schema's channel once
//! per queue it touched; a worker listens on a connection of its own, outside the pool.
//! A notification is a hint: the scheduler's poll stays the guarantee, and covers the gap
//! while a dropped listening connection is opened again (with backoff).

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::pool::{quote_ident, PgSettings};
use crate::storage::WakeSource;

/// The notification channel of a schema.
pub fn channel(schema: &str) -> String {
    format!("taskito_{schema}")
}

/// Longest wait between two attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A listening connection that heard nothing for this long is checked with a round trip
/// (a half-open TCP connection would otherwise stay silent forever).
const HEALTH_CHECK: Duration = Duration::from_secs(30);

pub struct Listener {
    settings: PgSettings,
    client: Option<Client>,
    retry_at: Instant,
    backoff: Duration,
    checked: Instant,
}

impl Listener {
    pub fn new(settings: PgSettings) -> Listener {
        Listener {
            settings,
            client: None,
            retry_at: Instant::now(),
            backoff: Duration::from_millis(100),
            checked: Instant::now(),
        }
    }

    fn connect(&mut self) -> bool {
        if Instant::now() < self.retry_at {
            return false;
        }
        let listen = format!("LISTEN {}", quote_ident(&channel(&self.settings.schema)));
        match self.settings.connect().and_then(|mut c| {
            c.batch_execute(&listen)
                .map(|_| c)
                .map_err(|e| self.settings.error(e))
        }) {
            Ok(c) => {
                self.client = Some(c);
                self.backoff = Duration::from_millis(100);
                self.checked = Instant::now();
                true
            }
            Err(e) => {
                log::warn!(
                    "cannot listen for new jobs ({e}); polling until the connection is back"
                );
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                false
            }
        }
    }

    fn drop_client(&mut self, why: &str) {
        log::warn!("lost the connection listening for new jobs ({why}); reconnecting");
        self.client = None;
        self.retry_at = Instant::now() + self.backoff;
    }
}

impl WakeSource for Listener {
    fn wait(&mut self, timeout: Duration) -> bool {
        let had = self.client.is_some();
        if !had && !self.connect() {
            std::thread::sleep(
                timeout
                    .min(self.retry_at.saturating_duration_since(Instant::now()))
                    .max(Duration::from_millis(10)),
            );
            return false;
        }
        if !had {
            // Jobs may have been enqueued while nobody listened.
            return true;
        }
        let Some(client) = self.client.as_mut() else {
            return false;
        };
        let heard = {
            let mut notifications = client.notifications();
            let first = notifications.timeout_iter(timeout).next();
            match first {
                Ok(Some(_)) => {
                    // Fold whatever else already arrived into this one hint.
                    while let Ok(Some(_)) = notifications.iter().next() {}
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            }
        };
        match heard {
            Ok(true) => {
                self.checked = Instant::now();
                true
            }
            Ok(false) => {
                if client.is_closed() {
                    self.drop_client("closed");
                } else if self.checked.elapsed() >= HEALTH_CHECK {
                    self.checked = Instant::now();
                    if let Err(e) = client.is_valid(Duration::from_secs(5)) {
                        let why = self.settings.scrub(&e.to_string());
                        self.drop_client(&why);
                    }
                }
                false
            }
            Err(e) => {
                let why = self.settings.scrub(&e.to_string());
                self.drop_client(&why);
                false
            }
        }
    }
}
