//! Credentials and TLS files, from the environment: a password given
//! beside a URL rather than in it (`TASKER_AMQP_PASSWORD`,
//! `TASKER_REDIS_PASSWORD`, or a file named by `…_FILE`, as containers
//! mount secrets), and the CA and client certificate of TLS connections
//! (`TASKER_TLS_CA_FILE`, `TASKER_TLS_CERT_FILE`, `TASKER_TLS_KEY_FILE`).
//!
//! Every Tasker process reads them where it connects, so the coordinator,
//! the CLI, the workers and the client all take them the same way. Nothing
//! here ever puts a secret in an error: errors name the variable and the
//! file.

use std::path::PathBuf;

use crate::Error;

/// The secret in variable `name`, or in the file that `<name>_FILE` names
/// (without its trailing line break); `None` if neither is set.
///
/// # Errors
///
/// Returns [`Error::Config`] if both are set, or the file cannot be read.
pub fn secret_from_env(name: &str) -> Result<Option<String>, Error> {
    secret_from(name, |v| std::env::var(v).ok())
}

fn secret_from(name: &str, var: impl Fn(&str) -> Option<String>) -> Result<Option<String>, Error> {
    let file_var = format!("{name}_FILE");
    match (var(name), var(&file_var)) {
        (Some(_), Some(_)) => Err(Error::Config(format!(
            "both {name} and {file_var} are set; set one: the secret itself, or the file that holds it"
        ))),
        (Some(secret), None) => Ok(Some(secret)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_owned()))
            .map_err(|e| Error::Config(format!("{file_var}={path}: cannot read the file: {e}"))),
        (None, None) => Ok(None),
    }
}

/// `urls` (one URL, or several separated by commas) with the password from
/// variable `name` or its `_FILE` ([`secret_from_env`]) in each, in place of
/// any they had; `urls` as they are when neither is set.
///
/// # Errors
///
/// As [`secret_from_env`], and [`Error::Config`] for a URL that cannot
/// hold a password.
pub fn with_password_from_env(urls: &str, name: &str) -> Result<String, Error> {
    match secret_from_env(name)? {
        Some(password) => with_password(urls, &password, name),
        None => Ok(urls.to_owned()),
    }
}

fn with_password(urls: &str, password: &str, name: &str) -> Result<String, Error> {
    crate::broker::broker_urls(urls)
        .into_iter()
        .map(|u| {
            let mut url = url::Url::parse(u).map_err(|e| {
                Error::Config(format!(
                    "{} is not a URL ({e}), so {name} cannot be added to it",
                    crate::broker::redact_url(u)
                ))
            })?;
            // The URL crate leaves `%` and `,` as they are; a comma would
            // split the list, and a `%` start an escape.
            let encoded = password.replace('%', "%25").replace(',', "%2C");
            url.set_password(Some(&encoded)).map_err(|()| {
                Error::Config(format!(
                    "{} cannot hold a password; give it a user name, e.g. amqp://tasker@host/%2f",
                    crate::broker::redact_url(u)
                ))
            })?;
            Ok(url.to_string())
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|u| u.join(","))
}

/// The files of TLS connections: the CA to trust besides the system's,
/// and a client certificate and its key for mutual TLS. Read from
/// `TASKER_TLS_CA_FILE`, `TASKER_TLS_CERT_FILE` and `TASKER_TLS_KEY_FILE`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates of the CAs that sign the servers' certificates.
    pub ca: Option<PathBuf>,
    /// The client's certificate and its private key, both PEM.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// The PEM contents of [`TlsFiles`].
#[derive(Clone, Default)]
pub struct TlsPem {
    /// The CA certificates.
    pub ca: Option<Vec<u8>>,
    /// The client certificate and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    /// The files the environment names.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Config`] if only one of the certificate and the key
    /// is set.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|v| std::env::var(v).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let identity = match (var("TASKER_TLS_CERT_FILE"), var("TASKER_TLS_KEY_FILE")) {
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "set both TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE for a client certificate, or neither"
                        .into(),
                ));
            }
        };
        Ok(Self {
            ca: var("TASKER_TLS_CA_FILE").map(Into::into),
            identity,
        })
    }

    /// Reads the files.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Config`] naming the variable and the file that
    /// cannot be read.
    pub fn read(&self) -> Result<TlsPem, Error> {
        let read = |var: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| Error::Config(format!("{var}={}: cannot read the file: {e}", path.display())))
        };
        Ok(TlsPem {
            ca: self
                .ca
                .as_ref()
                .map(|p| read("TASKER_TLS_CA_FILE", p))
                .transpose()?,
            identity: self
                .identity
                .as_ref()
                .map(|(c, k)| {
                    Ok::<_, Error>((read("TASKER_TLS_CERT_FILE", c)?, read("TASKER_TLS_KEY_FILE", k)?))
                })
                .transpose()?,
        })
    }
}

/// What to check when a TLS handshake failed, for error messages.
pub const TLS_HINT: &str = "check that TASKER_TLS_CA_FILE holds the CA that signed the server's certificate, and \
                            TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE if it asks for a client certificate";

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| set.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_its_file_but_not_both() {
        let file = std::env::temp_dir().join(format!("tasker-secret-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(
            secret_from("P", vars(&[("P", "inline")])).unwrap().as_deref(),
            Some("inline")
        );
        assert_eq!(
            secret_from("P", vars(&[("P_FILE", path)])).unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(secret_from("P", vars(&[])).unwrap(), None);
        let both = secret_from("P", vars(&[("P", "x"), ("P_FILE", path)])).unwrap_err();
        assert!(both.to_string().contains("both P and P_FILE are set"), "{both}");
        let missing = secret_from("P", vars(&[("P_FILE", "/nonexistent/secret")])).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("P_FILE=/nonexistent/secret: cannot read the file"),
            "{missing}"
        );
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn the_password_goes_into_every_url_and_is_encoded() {
        assert_eq!(
            with_password(
                "amqp://tasker@n1:5672/%2f,amqp://tasker:old@n2:5672/%2f",
                "p@ss/w,rd",
                "X"
            )
            .unwrap(),
            "amqp://tasker:p%40ss%2Fw%2Crd@n1:5672/%2f,amqp://tasker:p%40ss%2Fw%2Crd@n2:5672/%2f"
        );
        let bad = with_password("not a url", "hunter2", "TASKER_AMQP_PASSWORD").unwrap_err();
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let both = TlsFiles::from_vars(vars(&[
            ("TASKER_TLS_CA_FILE", "ca.pem"),
            ("TASKER_TLS_CERT_FILE", "c.pem"),
            ("TASKER_TLS_KEY_FILE", "c.key"),
        ]))
        .unwrap();
        assert_eq!(
            both,
            TlsFiles {
                ca: Some("ca.pem".into()),
                identity: Some(("c.pem".into(), "c.key".into()))
            }
        );
        let half = TlsFiles::from_vars(vars(&[("TASKER_TLS_CERT_FILE", "c.pem")])).unwrap_err();
        assert!(half.to_string().contains("TASKER_TLS_KEY_FILE"), "{half}");
    }
}
