//! TLS to PostgreSQL with libpq's meanings: the six `sslmode`s, `sslrootcert` (a file or
//! `system`), client certificates, and connecting with the fallbacks `allow` and `prefer`
//! make. rustls (pure Rust) does the TLS, so the package needs no system OpenSSL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode as ClientSslMode;
use postgres::{Client, Config, NoTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pg_url::TlsParams;

/// libpq's `sslmode`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            }
        })
    }
}

/// How far the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Encrypted, but any certificate is taken (libpq's `require` with no root certificate).
    Nothing,
    /// The chain must lead to a trusted root; the host name is not compared.
    Chain,
    /// The chain, and the certificate must name the host connected to.
    ChainAndHost,
}

/// The TLS side of the connection settings, built once from the URL.
#[derive(Clone)]
pub struct Tls {
    pub mode: SslMode,
    /// `None` for `disable`.
    connector: Option<MakeRustlsConnect>,
}

impl Tls {
    /// Reads the parameters; a missing or unreadable file is an error now, not at the
    /// first connection. `home` is where libpq's default files live (`~/.postgresql`).
    pub fn from_params(p: &TlsParams, home: Option<&Path>) -> Result<Tls, String> {
        let mode = SslMode::parse(p.sslmode.as_deref().unwrap_or("prefer"))?;
        if mode == SslMode::Disable {
            return Ok(Tls {
                mode,
                connector: None,
            });
        }
        let default = |name: &str| {
            home.map(|h| h.join(".postgresql").join(name))
                .filter(|f| f.exists())
        };
        let root = match p.sslrootcert.as_deref() {
            Some("system") => Some(Roots::System),
            Some(file) => Some(Roots::File(PathBuf::from(file))),
            None => default("root.crt").map(Roots::File),
        };
        let check = match (mode, &root) {
            (SslMode::VerifyFull, _) => Check::ChainAndHost,
            (SslMode::VerifyCa, _) => Check::Chain,
            // As libpq: with a root certificate at hand, the lesser modes verify the chain.
            (_, Some(_)) => Check::Chain,
            (_, None) => Check::Nothing,
        };
        // ring builds with only a C compiler; the post-quantum key exchange its deprecation
        // note is about is not what guards a link to a database server.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (check, root) {
            (Check::Nothing, _) => Arc::new(Verifier {
                check,
                webpki: None,
                provider: provider.clone(),
            }),
            (_, None) => {
                return Err(format!(
                    "sslmode {} needs a root certificate: set sslrootcert to a file of trusted \
                     CA certificates, or to \"system\" for the platform's, or put one at \
                     ~/.postgresql/root.crt",
                    p.sslmode.as_deref().unwrap_or("prefer")
                ))
            }
            (_, Some(roots)) => {
                let store = roots.load()?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .build()
                        .map_err(|e| format!("sslrootcert: {e}"))?;
                Arc::new(Verifier {
                    check,
                    webpki: Some(webpki),
                    provider: provider.clone(),
                })
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let cert = p
            .sslcert
            .clone()
            .map(PathBuf::from)
            .or_else(|| default("postgresql.crt"));
        let key = p
            .sslkey
            .clone()
            .map(PathBuf::from)
            .or_else(|| default("postgresql.key"));
        let config = match (cert, key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = load_certs(&cert, "sslcert")?;
                let key = load_key(&key, p.sslpassword.is_some())?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("sslcert/sslkey: {e}"))?
            }
            (Some(c), None) => {
                return Err(format!(
                    "sslcert {} is given without sslkey (the client certificate's private key)",
                    c.display()
                ))
            }
            (None, Some(k)) => {
                return Err(format!(
                    "sslkey {} is given without sslcert (the client certificate)",
                    k.display()
                ))
            }
        };
        Ok(Tls {
            mode,
            connector: Some(MakeRustlsConnect::new(config)),
        })
    }

    /// Connects as libpq would for this mode: `allow` tries without TLS first, `prefer`
    /// with TLS first, each falling back to the other; the others use TLS or nothing.
    pub fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        let plain = || {
            let mut c = config.clone();
            c.ssl_mode(ClientSslMode::Disable);
            c.connect(NoTls)
        };
        let Some(connector) = &self.connector else {
            return plain();
        };
        let tls = || {
            let mut c = config.clone();
            c.ssl_mode(ClientSslMode::Require);
            c.connect(connector.clone())
        };
        match self.mode {
            SslMode::Disable => plain(),
            SslMode::Allow => match plain() {
                // Refused by the server (pg_hba.conf, say): try once more, encrypted.
                Err(e) if e.as_db_error().is_some() => tls().map_err(|_| e),
                other => other,
            },
            SslMode::Prefer => match tls() {
                Err(e) if refused_tls(&e) => plain(),
                other => other,
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tls(),
        }
    }
}

/// Whether the connection failed for want of TLS (the server has none, or the handshake
/// failed), so that `prefer` may go on without it.
fn refused_tls(e: &postgres::Error) -> bool {
    e.as_db_error().is_none() && e.to_string().contains("TLS")
}

enum Roots {
    File(PathBuf),
    System,
}

impl Roots {
    fn load(self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match self {
            Roots::File(file) => {
                for cert in load_certs(&file, "sslrootcert")? {
                    store
                        .add(cert)
                        .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
                }
            }
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    return Err(format!(
                        "sslrootcert=system: no trusted root certificates found on this system{why}"
                    ));
                }
            }
        }
        Ok(store)
    }
}

fn load_certs(file: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{what} {}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate in the file",
            file.display()
        ));
    }
    Ok(certs)
}

fn load_key(file: &Path, has_password: bool) -> Result<PrivateKeyDer<'static>, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("sslkey {}: {e}", file.display()))?;
    if text.contains("ENCRYPTED") {
        let hint = if has_password {
            ""
        } else {
            " and no sslpassword is given"
        };
        return Err(format!(
            "sslkey {}: the key is encrypted{hint}; encrypted keys are not supported, store it \
             unencrypted with owner-only permissions (openssl pkey -in KEY -out KEY.plain)",
            file.display()
        ));
    }
    PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|e| format!("sslkey {}: {e}", file.display()))
}

/// The server-certificate check for one mode; failures name the host and the reason.
#[derive(Debug)]
struct Verifier {
    check: Check,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(v) => Ok(v),
            // The name is compared only after the chain was found good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(rustls::Error::General(format!(
                "certificate verify failed for host {}: {}",
                server_name.to_str(),
                reason(&e)
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A verification failure in words.
fn reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "unknown issuer".into(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the certificate does not name this host".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the certificate is not valid yet".into()
            }
            CertificateError::Revoked => "the certificate is revoked".into(),
            CertificateError::BadSignature => "bad signature".into(),
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::settings::{PgSettings, LOCK_TIMEOUT, STATEMENT_TIMEOUT};
    use super::*;

    /// Needs a server: `TASKITO_TEST_PG_URL` (skipped without it).
    #[test]
    fn sessions_carry_lock_and_statement_timeouts_and_a_timeout_is_retryable() {
        let Ok(url) = std::env::var("TASKITO_TEST_PG_URL") else {
            return;
        };
        let settings = PgSettings::parse(&url, "public").unwrap();
        let mut client = settings.connect().unwrap();
        let lock: String = client.query_one("SHOW lock_timeout", &[]).unwrap().get(0);
        let statement: String = client
            .query_one("SHOW statement_timeout", &[])
            .unwrap()
            .get(0);
        assert_eq!(
            (lock.as_str(), statement.as_str()),
            (LOCK_TIMEOUT, STATEMENT_TIMEOUT)
        );
        let e = client
            .batch_execute("SET statement_timeout = '50ms'; SELECT pg_sleep(1)")
            .unwrap_err();
        let e = settings.error(e);
        assert!(e.is_unavailable(), "{e}");
    }

    #[test]
    fn system_roots_are_the_platforms() {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            return; // a machine without a CA bundle: nothing to load
        }
        let p = TlsParams {
            sslmode: Some("verify-full".into()),
            sslrootcert: Some("system".into()),
            ..TlsParams::default()
        };
        assert_eq!(
            Tls::from_params(&p, None).unwrap().mode,
            SslMode::VerifyFull
        );
    }

    #[test]
    fn modes_are_libpqs() {
        let mut p = TlsParams::default();
        assert_eq!(Tls::from_params(&p, None).unwrap().mode, SslMode::Prefer);
        p.sslmode = Some("verify-full".into());
        let e = Tls::from_params(&p, None).err().unwrap();
        assert!(e.contains("needs a root certificate"), "{e}");
        p.sslmode = Some("strict".into());
        let e = Tls::from_params(&p, None).err().unwrap();
        assert!(e.contains("\"strict\""), "{e}");
        p.sslmode = Some("require".into());
        p.sslrootcert = Some("/nonexistent/ca.pem".into());
        let e = Tls::from_params(&p, None).err().unwrap();
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
    }
}
