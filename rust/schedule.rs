//! Cron expressions and time zones of periodic schedules: parsing, and the next time a
//! schedule is due after a given instant. Pure (no clock, no storage), so the storage layer
//! can compute the next fire inside the transaction that claims the current one.
//!
//! Parsing and the calendar walk are `croner`'s (second-resolution patterns, and daylight
//! saving rules that fire a wall-clock time skipped by a spring-forward once, at the first
//! instant after the gap, and a time repeated by a fall-back once); zones are `chrono-tz`'s
//! copy of the IANA database.

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

use crate::error::{Error, Result};

/// A parsed cron expression with its zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Parses `expr` (6 fields, seconds first; 5 fields mean second 0; or an `@hourly`-style
    /// alias) in the IANA zone `timezone` (`None` or empty: UTC).
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Schedule> {
        let fields = expr.split_whitespace().count();
        let alias = expr.trim_start().starts_with('@');
        if !alias && !(5..=6).contains(&fields) {
            return Err(Error::invalid(
                "cron",
                format!("{expr:?} has {fields} fields (expected 6, seconds first, or 5)"),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| Error::invalid("cron", format!("{expr:?}: {e}")))?;
        let tz = match timezone.map(str::trim).filter(|t| !t.is_empty()) {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                Error::invalid(
                    "timezone",
                    format!("{name:?} is not an IANA time zone name (e.g. \"Europe/Paris\")"),
                )
            })?,
        };
        let schedule = Schedule { cron, tz };
        // A pattern that never matches (e.g. 30 February) is refused now, not at first fire.
        schedule
            .next_after(crate::job::now_ms())
            .ok_or_else(|| Error::invalid("cron", format!("{expr:?} never matches a real date")))?;
        Ok(schedule)
    }

    /// The zone's IANA name.
    pub fn timezone(&self) -> &'static str {
        self.tz.name()
    }

    /// The first due time strictly after `after_ms` (epoch milliseconds), or `None` when the
    /// pattern has no further match.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = Utc.timestamp_millis_opt(after_ms).single()?;
        let local = start.with_timezone(&self.tz);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        tz.with_ymd_and_hms(y, mo, d, h, mi, s)
            .earliest()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn five_fields_mean_second_zero() {
        let s = Schedule::parse("*/5 * * * *", None).unwrap();
        let at = ms(Tz::UTC, 2026, 1, 1, 0, 1, 30);
        assert_eq!(s.next_after(at), Some(ms(Tz::UTC, 2026, 1, 1, 0, 5, 0)));
    }

    #[test]
    fn six_fields_are_seconds_first() {
        let s = Schedule::parse("*/10 * * * * *", Some("UTC")).unwrap();
        let at = ms(Tz::UTC, 2026, 1, 1, 0, 0, 3);
        assert_eq!(s.next_after(at), Some(ms(Tz::UTC, 2026, 1, 1, 0, 0, 10)));
    }

    #[test]
    fn bad_input_names_the_option() {
        for bad in ["", "* * *", "61 * * * * *", "1 2 3 4 5 6 7", "nonsense"] {
            let e = Schedule::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains("cron"), "{bad:?}: {e}");
        }
        let e = Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(e.to_string().contains("timezone"));
    }

    #[test]
    fn spring_forward_fires_once() {
        // 2026-03-29: Paris skips 02:00-03:00.
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let s = Schedule::parse("0 30 2 * * *", Some("Europe/Paris")).unwrap();
        let before = ms(tz, 2026, 3, 28, 12, 0, 0);
        let first = s.next_after(before).unwrap();
        let second = s.next_after(first).unwrap();
        // One fire on the 29th (at the first instant after the gap), the next on the 30th.
        assert_eq!(first, ms(tz, 2026, 3, 29, 3, 0, 0));
        assert_eq!(second, ms(tz, 2026, 3, 30, 2, 30, 0));
    }

    #[test]
    fn fall_back_fires_once() {
        // 2026-10-25: Paris repeats 02:00-03:00.
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let s = Schedule::parse("0 30 2 * * *", Some("Europe/Paris")).unwrap();
        let first = s.next_after(ms(tz, 2026, 10, 24, 12, 0, 0)).unwrap();
        let second = s.next_after(first).unwrap();
        assert_eq!(first, ms(tz, 2026, 10, 25, 2, 30, 0));
        assert_eq!(second, ms(tz, 2026, 10, 26, 2, 30, 0));
    }
}
