//! Per-subscription TLS: verification on unless `skip_verify`, an extra CA, a client
//! certificate. The files are read and parsed at load time, so a missing or malformed file is a
//! rule-file error with file and line, not a failed delivery.

use std::fmt;
use std::path::{Path, PathBuf};

use super::config::TlsConfig;

/// Why a `tls` block is invalid.
#[derive(Debug, thiserror::Error)]
pub enum InvalidTls {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{path} is not a valid {what}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// `CA certificate (PEM)`, `client certificate and PKCS#8 key (PEM)`.
        what: &'static str,
        /// The TLS library's complaint.
        #[source]
        source: reqwest::Error,
    },
    /// One of `client_cert` / `client_key` without the other.
    #[error("client_cert and client_key must be given together")]
    HalfIdentity,
}

impl InvalidTls {
    /// The config key at fault.
    pub fn field(&self) -> &'static str {
        match self {
            InvalidTls::Read { .. } | InvalidTls::Parse { .. } => "tls",
            InvalidTls::HalfIdentity => "tls.client_key",
        }
    }
}

/// TLS material, loaded. `Debug` does not show the key.
#[derive(Clone, Default, PartialEq)]
pub struct TlsSettings {
    /// Accept any server certificate (Netography's "Skip SSL Verification").
    pub skip_verify: bool,
    /// Extra trusted CA certificates (PEM), on top of the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and PKCS#8 key (PEM).
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("skip_verify", &self.skip_verify)
            .field("ca", &self.ca_pem.is_some())
            .field("client_identity", &self.identity_pem.is_some())
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, InvalidTls> {
    std::fs::read(path).map_err(|source| InvalidTls::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl TlsSettings {
    /// Reads and parses the files `config` names.
    pub fn load(config: &TlsConfig) -> Result<TlsSettings, InvalidTls> {
        let ca_pem = match &config.ca_file {
            Some(path) => {
                let pem = read(path)?;
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                    InvalidTls::Parse {
                        path: path.clone(),
                        what: "CA certificate (PEM)",
                        source,
                    }
                })?;
                // from_pem_bundle accepts a file without any certificate; that is a mistake.
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(InvalidTls::Parse {
                        path: path.clone(),
                        what: "CA certificate (PEM)",
                        source: reqwest::Certificate::from_pem(b"").expect_err("empty PEM"),
                    });
                }
                Some(pem)
            }
            None => None,
        };
        let identity_pem = match (&config.client_cert, &config.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let (c, k) = (read(cert)?, read(key)?);
                reqwest::Identity::from_pkcs8_pem(&c, &k).map_err(|source| InvalidTls::Parse {
                    path: cert.clone(),
                    what: "client certificate and PKCS#8 key (PEM)",
                    source,
                })?;
                Some((c, k))
            }
            _ => return Err(InvalidTls::HalfIdentity),
        };
        Ok(TlsSettings {
            skip_verify: config.skip_verify,
            ca_pem,
            identity_pem,
        })
    }

    /// Configures `builder` with these settings.
    pub fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, reqwest::Error> {
        if self.skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &self.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &self.identity_pem {
            builder = builder.identity(reqwest::Identity::from_pkcs8_pem(cert, key)?);
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_malformed_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            ca_file: Some(dir.path().join("nope.pem")),
            ..TlsConfig::default()
        };
        let e = TlsSettings::load(&missing).unwrap_err();
        assert!(matches!(e, InvalidTls::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("nope.pem"));

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let bad = TlsConfig {
            ca_file: Some(junk.clone()),
            ..TlsConfig::default()
        };
        assert!(matches!(
            TlsSettings::load(&bad).unwrap_err(),
            InvalidTls::Parse { .. }
        ));

        let half = TlsConfig {
            client_cert: Some(junk),
            ..TlsConfig::default()
        };
        assert!(matches!(
            TlsSettings::load(&half).unwrap_err(),
            InvalidTls::HalfIdentity
        ));
    }

    #[test]
    fn skip_verify_is_off_by_default() {
        let s = TlsSettings::load(&TlsConfig::default()).unwrap();
        assert!(!s.skip_verify);
        assert_eq!(
            format!("{s:?}"),
            "TlsSettings { skip_verify: false, ca: false, client_identity: false }"
        );
    }
}
