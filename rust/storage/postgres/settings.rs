//! Where a PostgreSQL store connects and how: the URL parsed once, its password kept out of
//! every message, the schema name checked and quoted.

use std::time::Duration;

use postgres::{Client, NoTls};

use crate::error::{Error, Result};

/// How long connecting may take before the error names the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// The server ends a session of ours that sits inside a transaction this long. Every
/// transaction here is a few statements sent back to back, so such a session belongs to a
/// process that was stopped (SIGSTOP, a debugger, a paused VM) mid-transaction: ending it
/// releases the rows it locked (a claim's jobs, a worker's registry row), which would
/// otherwise stay locked, unrecoverable by anyone, until that process ran again.
pub(super) const IDLE_IN_TRANSACTION_LIMIT: &str = "15s";

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
        };
        Ok(settings)
    }

    /// `s` with the password (if any) replaced, for anything that leaves the process.
    pub fn scrub(&self, s: &str) -> String {
        scrub_with(self.password.as_deref(), s)
    }

    /// Opens one connection and points it at the schema.
    pub fn connect(&self) -> Result<Client> {
        let mut client = self.config.connect(NoTls).map_err(|e| Error::Connect {
            target: self.target.clone(),
            cause: self.scrub(&describe(&e)),
        })?;
        client
            .batch_execute(&format!(
                "SET search_path TO {}, public; \
                 SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_LIMIT}'",
                quote_ident(&self.schema)
            ))
            .map_err(|e| self.error(e))?;
        Ok(client)
    }

    /// A statement error, scrubbed.
    pub fn error(&self, e: postgres::Error) -> Error {
        Error::Postgres(self.scrub(&describe(&e)))
    }
}

fn scrub_with(password: Option<&str>, s: &str) -> String {
    let Some(p) = password.filter(|p| !p.is_empty()) else {
        return s.to_string();
    };
    // Only where the password stands on its own: masking it inside other words ("o***tion"
    // for the password "p") would both garble the message and tell the reader the password.
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(p) {
        out.push_str(&rest[..pos]);
        let before = out.chars().last();
        let after = rest[pos + p.len()..].chars().next();
        if is_word(before) || is_word(after) {
            let first = p.chars().next().map_or(1, char::len_utf8);
            out.push_str(&rest[pos..pos + first]);
            rest = &rest[pos + first..];
        } else {
            out.push_str("***");
            rest = &rest[pos + p.len()..];
        }
    }
    out.push_str(rest);
    out
}

/// The `password` of `user:password@` as written in the URL (undecoded), if any. The last
/// `@` ends the user info, so a password may hold `/`, `?` or `@`.
fn url_password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    Some(userinfo[userinfo.find(':')? + 1..].to_string())
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

/// The URL with the password part of `user:password@` (and any `password=` parameter)
/// replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        // The last `@` ends the user info: a password may hold `/`, `?` or `@` unescaped.
        if let Some(at) = rest.rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let start = scheme_end + 3 + colon + 1;
                let end = scheme_end + 3 + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| {
                if kv.to_ascii_lowercase().starts_with("password=") {
                    "password=***".to_string()
                } else {
                    kv.to_string()
                }
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
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
    fn schema_names_are_identifiers() {
        assert!(check_schema("taskito_1").is_ok());
        assert!(check_schema("1abc").is_err());
        assert!(check_schema("a;drop").is_err());
        assert!(check_schema("").is_err());
    }
}
