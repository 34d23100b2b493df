//! A user's numbers of seconds as the engine's durations and millisecond times: refused,
//! naming the option, unless finite and non-negative; saturated past any clock instead of
//! overflowing `Instant` or `i64` milliseconds.

use std::time::Duration;

use crate::error::Error;

/// The longest duration the engine works with: longer ones (a timeout of 2**63 s) are
/// honoured as this, which no clock reaches, instead of overflowing `Instant` or `i64` ms.
pub(super) const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);
/// The latest time a job may be scheduled for: the end of year 9999, in epoch ms.
const LATEST_SCHEDULED_MS: i64 = 253_402_300_799_999;

/// A user's number of seconds as a duration: NaN, infinities and negatives are refused
/// naming the option; anything past `LONGEST` saturates to it (never a panic).
pub(super) fn secs(option: &'static str, v: f64) -> Result<Duration, Error> {
    check_secs(option, v)?;
    Ok(Duration::try_from_secs_f64(v)
        .unwrap_or(LONGEST)
        .min(LONGEST))
}

/// A user's number of seconds in whole milliseconds, saturating at `i64::MAX`.
pub(super) fn millis(option: &'static str, v: f64) -> Result<i64, Error> {
    check_secs(option, v)?;
    // `as` from f64 saturates; the product cannot be NaN for a finite, non-negative `v`.
    Ok((v * 1000.0) as i64)
}

/// Refuses (naming the option) a number of seconds that is not finite and non-negative.
pub(super) fn check_secs(option: &'static str, v: f64) -> Result<(), Error> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::invalid(
            option,
            format!("{v} (must be a finite, non-negative number of seconds)"),
        ));
    }
    Ok(())
}

/// A per-job result TTL in ms, refused (naming `result_ttl`) unless finite and
/// non-negative; past `LONGEST` it saturates to it, so `completed_at + ttl` never overflows.
pub(super) fn result_ttl_ms(ttl: f64) -> Result<i64, Error> {
    Ok(millis("result_ttl", ttl)?.min(LONGEST.as_millis() as i64))
}

/// `now + delay`, refused (naming `delay`) past the end of year 9999.
pub(super) fn scheduled_at(now: i64, delay: f64) -> Result<i64, Error> {
    let delay_ms = millis("delay", delay)?;
    now.checked_add(delay_ms)
        .filter(|t| *t <= LATEST_SCHEDULED_MS)
        .ok_or_else(|| {
            Error::invalid(
                "delay",
                format!("{delay} seconds places the job past the year 9999"),
            )
        })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::job::now_ms;

    #[test]
    fn seconds_past_any_clock_saturate_instead_of_panicking() {
        for v in [2f64.powi(63), 1e300, f64::MAX] {
            assert_eq!(secs("timeout", v).unwrap(), LONGEST);
            assert_eq!(millis("timeout", v).unwrap(), i64::MAX);
            assert!(Instant::now()
                .checked_add(secs("timeout", v).unwrap())
                .is_some());
        }
        assert_eq!(secs("timeout", 1.5).unwrap(), Duration::from_millis(1500));
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -f64::MIN_POSITIVE,
        ] {
            let err = secs("drain_timeout", v).unwrap_err().to_string();
            assert!(err.contains("drain_timeout"), "{err}");
            assert!(millis("older_than", v).is_err());
        }
    }

    #[test]
    fn a_delay_past_the_year_9999_is_refused() {
        let now = 1_800_000_000_000;
        assert_eq!(scheduled_at(now, 0.0).unwrap(), now);
        assert_eq!(scheduled_at(now, 2.5).unwrap(), now + 2500);
        let last_ok = (LATEST_SCHEDULED_MS - now) as f64 / 1000.0;
        assert!(scheduled_at(now, last_ok).is_ok());
        for v in [last_ok + 1.0, 2f64.powi(63), 1e300] {
            let err = scheduled_at(now, v).unwrap_err().to_string();
            assert!(err.contains("delay") && err.contains("9999"), "{err}");
        }
        assert!(scheduled_at(i64::MAX, 1.0).is_err());
    }

    #[test]
    fn an_old_enough_age_saturates_to_deleting_nothing() {
        let before = now_ms().saturating_sub(millis("older_than", 1e300).unwrap());
        assert!(before < 0);
    }
}
