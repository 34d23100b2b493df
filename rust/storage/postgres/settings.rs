//! Where a PostgreSQL store connects and how: the URL parsed once (TLS parameters
//! included), its passwords kept out of every message, the session's time limits, the
//! schema name checked and quoted.

use std::time::Duration;

use postgres::Client;

pub use super::pg_url::redact_url;
use super::pg_url::{split_tls_params, url_password};
use super::tls::Tls;
use crate::error::{Error, Result};

/// How long connecting may take before the error names the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// The server ends a session of ours that sits inside a transaction this long. Every
/// transaction here is a few statements sent back to back, so such a session belongs to a
/// process that was stopped (SIGSTOP, a debugger, a paused VM) mid-transaction: ending it
/// releases the rows it locked (a claim's jobs, a worker's registry row), which would
/// otherwise stay locked, unrecoverable by anyone, until that process ran again.
pub(super) const IDLE_IN_TRANSACTION_LIMIT: &str = "15s";
/// How long one of our statements waits for a lock before giving up. Claims, completions,
/// heartbeats and enqueues lock a few rows for milliseconds; a lock held longer belongs to
/// someone else (a `LOCK TABLE`, a long DDL), and waiting on it would freeze the worker.
/// The statement fails, its transaction rolls back, and the caller tries again later: the
/// engine treats the failure as the store being out of reach (`Error::is_unavailable`).
pub const LOCK_TIMEOUT: &str = "2s";
/// The longest any statement of ours may run (migrations raise it for their transaction).
pub const STATEMENT_TIMEOUT: &str = "30s";
/// The tag on a statement the server cancelled for a lock or statement timeout.
pub const TIMED_OUT: &str = "timed out waiting for the server; retried";

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

    /// `s` with the passwords (if any) replaced, for anything that leaves the process.
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

/// `s` with each occurrence of `password` that stands as a whole word replaced by `***`:
/// one inside a longer word (a short password inside "authentication") is left, so a
/// message stays readable, while the password itself, wherever it appears, is hidden.
fn scrub_with(password: Option<&str>, s: &str) -> String {
    let p = match password {
        Some(p) if !p.is_empty() => p,
        _ => return s.to_string(),
    };
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(s.len());
    let mut rest = 0;
    let mut from = 0;
    while let Some(found) = s[from..].find(p) {
        let start = from + found;
        let end = start + p.len();
        let before = s[..start].chars().next_back();
        let after = s[end..].chars().next();
        if before.is_some_and(is_word) || after.is_some_and(is_word) {
            // Part of a longer word: look again from the next character.
            from = start + s[start..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        out.push_str(&s[rest..start]);
        out.push_str("***");
        rest = end;
        from = end;
    }
    out.push_str(&s[rest..]);
    out
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
        assert_eq!(
            redact_url("postgresql://bob:a/b?c@d@db:5432/app"),
            "postgresql://bob:***@db:5432/app"
        );
        assert_eq!(
            url_password("postgresql://bob:x?y/z@db/app").as_deref(),
            Some("x?y/z")
        );
    }

    #[test]
    fn scrubbing_masks_the_password_only_where_it_stands_alone() {
        let msg = "invalid value for option \"p\": p";
        assert_eq!(
            scrub_with(Some("p"), msg),
            "invalid value for option \"***\": ***"
        );
        assert_eq!(scrub_with(Some("p"), "option"), "option");
        assert_eq!(
            scrub_with(Some("hunter2"), "auth hunter2 failed"),
            "auth *** failed"
        );
    }

    #[test]
    fn scrubs_whole_words_only() {
        let hide = |p, s| scrub_with(Some(p), s);
        assert_eq!(hide("s3cret", "auth s3cret failed"), "auth *** failed");
        assert_eq!(hide("s3cret", "s3cret"), "***");
        assert_eq!(hide("p@ss/w?rd", "bad p@ss/w?rd: no"), "bad ***: no");
        assert_eq!(
            hide("on", "connection lost on db"),
            "connection lost *** db"
        );
        assert_eq!(hide("ab", "xab ab abx"), "xab *** abx");
        assert_eq!(hide("", "anything"), "anything");
        assert_eq!(scrub_with(None, "anything"), "anything");
    }

    #[test]
    fn schema_names_are_identifiers() {
        assert!(check_schema("taskito_1").is_ok());
        assert!(check_schema("1abc").is_err());
        assert!(check_schema("a;drop").is_err());
        assert!(check_schema("").is_err());
    }
}
