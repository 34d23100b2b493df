//! Reading a `postgresql://` URL the way libpq does where the `postgres` client does not:
//! the TLS parameters it leaves out (taken off the URL here, with their `PG*` environment
//! fallbacks) and the one rule for showing a URL without its secrets.

use std::collections::HashMap;

/// Query parameters that are ours to read: the client's parser rejects them (or, for
/// `sslmode`, knows only three of libpq's six values).
const TLS_KEYS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword"];

/// Query parameters whose value is a secret.
const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];

/// The TLS parameters of a URL, each from the URL or else its environment variable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub sslpassword: Option<String>,
}

/// Splits `url` into the URL the client parses (without the TLS parameters) and those
/// parameters; `env` looks up `PGSSLMODE` and friends for the ones the URL lacks.
pub fn split_tls_params(url: &str, env: impl Fn(&str) -> Option<String>) -> (String, TlsParams) {
    let (base, query) = match query_start(url) {
        Some(q) => (&url[..q], &url[q + 1..]),
        None => (url, ""),
    };
    let mut found: HashMap<&'static str, String> = HashMap::new();
    let mut kept: Vec<&str> = Vec::new();
    // A value may hold `&` (an unescaped `sslpassword`): it runs to the next `&key=`.
    let mut pairs: Vec<String> = Vec::new();
    for piece in query.split('&') {
        match pairs.last_mut() {
            Some(last) if !starts_with_key(piece) => {
                last.push('&');
                last.push_str(piece);
            }
            _ => pairs.push(piece.to_string()),
        }
    }
    for pair in pairs.iter().map(String::as_str).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match TLS_KEYS.iter().find(|k| **k == key) {
            Some(k) => {
                found.insert(k, percent_decode(value));
            }
            None => kept.push(pair),
        }
    }
    let mut take = |key: &'static str, var: &str| {
        found
            .remove(key)
            .or_else(|| env(var))
            .filter(|v| !v.is_empty())
    };
    let params = TlsParams {
        sslmode: take("sslmode", "PGSSLMODE"),
        sslrootcert: take("sslrootcert", "PGSSLROOTCERT"),
        sslcert: take("sslcert", "PGSSLCERT"),
        sslkey: take("sslkey", "PGSSLKEY"),
        sslpassword: found.remove("sslpassword"),
    };
    let base = escape_password(base);
    let rest = if kept.is_empty() {
        base
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, params)
}

/// `url` with `@`, `/`, `?` and `#` in the password percent-escaped: the client's parser
/// ends the user info at the first `@` and would misread a password holding one.
fn escape_password(url: &str) -> String {
    let (Some(scheme), Some(end)) = (url.find("://"), userinfo_end(url)) else {
        return url.to_string();
    };
    let start = scheme + 3;
    let Some(colon) = url[start..end].find(':') else {
        return url.to_string();
    };
    let mut out = url[..start + colon + 1].to_string();
    for c in url[start + colon + 1..end].chars() {
        match c {
            '@' => out.push_str("%40"),
            '/' => out.push_str("%2F"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out.push_str(&url[end..]);
    out
}

/// Where the user-info part of the URL ends. A password may hold `@`, `/`, `?`, `:`, `#`
/// unescaped, and a query value may hold `@` too: the end is the last `@` that is followed
/// by what a URL has after its user info (a host, a path without `@`, a query of
/// `key=value` pairs); failing that, the last `@` (showing too little, never too much).
fn userinfo_end(url: &str) -> Option<usize> {
    let start = url.find("://")? + 3;
    let ats: Vec<usize> = url[start..]
        .match_indices('@')
        .map(|(i, _)| start + i)
        .collect();
    ats.iter()
        .rev()
        .copied()
        .find(|&at| follows_userinfo(&url[at + 1..]))
        .or(ats.last().copied())
}

/// Whether `rest` reads as `host[:port][,host...][/database][?key=value...]`.
fn follows_userinfo(rest: &str) -> bool {
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let host = &before_query[..before_query.find('/').unwrap_or(before_query.len())];
    let host_ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-:[],%_".contains(c));
    let query_ok = query.is_none_or(|q| q.is_empty() || starts_with_key(q));
    host_ok && !before_query.contains('@') && query_ok
}

/// Whether `s` starts with `key=` (letters, digits, `_`).
fn starts_with_key(s: &str) -> bool {
    s.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Where the query string starts (`?` past the user info), if there is one.
fn query_start(url: &str) -> Option<usize> {
    let from = userinfo_end(url).unwrap_or(0);
    url[from..].find('?').map(|q| from + q)
}

/// The password of `user:password@` as written in the URL (undecoded), if any.
pub fn url_password(url: &str) -> Option<String> {
    let start = url.find("://")? + 3;
    let end = userinfo_end(url)?;
    let userinfo = &url[start..end];
    Some(userinfo[userinfo.find(':')? + 1..].to_string())
}

/// The URL with the password of `user:password@` and the value of every `password=` and
/// `sslpassword=` parameter replaced by `***`, whatever characters they hold. Anything
/// shown to a person (`db_path`, `repr`, banners, logs, the dashboard) goes through this.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let (Some(scheme), Some(end)) = (url.find("://"), userinfo_end(url)) {
        let start = scheme + 3;
        if let Some(colon) = url[start..end].find(':') {
            out.replace_range(start + colon + 1..end, "***");
        }
    }
    let Some(q) = query_start(&out) else {
        return out;
    };
    let (head, query) = out.split_at(q + 1);
    // A secret's value runs to the next `&key=`: it may hold `&` itself.
    let mut shown: Vec<String> = Vec::new();
    let mut in_secret = false;
    for pair in query.split('&') {
        if in_secret && !starts_with_key(pair) {
            continue;
        }
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        in_secret = SECRET_KEYS.iter().any(|s| key.eq_ignore_ascii_case(s));
        shown.push(match in_secret {
            true => format!("{key}=***"),
            false => pair.to_string(),
        });
    }
    format!("{head}{}", shown.join("&"))
}

/// `%XX` escapes decoded (as the client decodes the rest of the URL); bad escapes kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn passwords_are_hidden_whatever_they_contain() {
        for password in [
            "s3cret", "p@ss", "pa/ss", "pa?ss", "a:b", "x#y", "?/@:&=", "%2F",
        ] {
            let url = format!("postgresql://bob:{password}@db:5432/app?sslmode=require");
            let shown = redact_url(&url);
            assert_eq!(shown, "postgresql://bob:***@db:5432/app?sslmode=require");
            assert_eq!(url_password(&url).as_deref(), Some(password));
        }
        assert_eq!(
            redact_url("postgres://bob@db/app?password=s3cret&sslpassword=k/e?y&sslmode=disable"),
            "postgres://bob@db/app?password=***&sslpassword=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://db/app"), "postgres://db/app");
        assert_eq!(
            redact_url("postgres://db/app?PASSWORD=x"),
            "postgres://db/app?PASSWORD=***"
        );
    }

    #[test]
    fn tls_parameters_come_off_the_url_and_fall_back_to_the_environment() {
        let (rest, p) = split_tls_params(
            "postgresql://u:p?w@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
            no_env,
        );
        assert_eq!(rest, "postgresql://u:p%3Fw@h/db?application_name=x");
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        let env = |k: &str| match k {
            "PGSSLMODE" => Some("require".to_string()),
            "PGSSLCERT" => Some("/c.pem".to_string()),
            _ => None,
        };
        let (rest, p) = split_tls_params("postgresql://h/db?sslmode=disable", env);
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(p.sslmode.as_deref(), Some("disable"), "the URL wins");
        assert_eq!(p.sslcert.as_deref(), Some("/c.pem"));
        let (_, p) = split_tls_params("postgresql://h/db", env);
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        let (rest, p) = split_tls_params("postgresql://h/db?sslpassword=a&=b&c&x=1", no_env);
        assert_eq!(rest, "postgresql://h/db?x=1");
        assert_eq!(p.sslpassword.as_deref(), Some("a&=b&c"));
    }
}
