//! The HTTP client settings Prometheus shares between scrape jobs, remote-write
//! queues and Alertmanager endpoints: `basic_auth`, `authorization`,
//! `bearer_token`/`bearer_token_file`, `tls_config` and `follow_redirects`.
//! This module owns their types, their validation (Prometheus's rules and
//! wording) and reading the `_file` variants; building a client from them is
//! the caller's business. Absent keys are left out when serializing, so the
//! served configuration shows what was written, not a page of nulls.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::secret::Secret;

/// `basic_auth:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    #[serde(default)]
    pub username: String,
    /// A file holding the user name, instead of `username`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_file: Option<PathBuf>,
    /// The password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A file holding the password, instead of `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// `authorization:`: the `Authorization` header's scheme and credentials.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme, `Bearer` when absent.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Secret>,
    /// A file holding the credentials, instead of `credentials`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
}

/// A TLS protocol version named in `min_version`/`max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsVersion {
    /// TLS 1.0.
    TLS10,
    /// TLS 1.1.
    TLS11,
    /// TLS 1.2.
    TLS12,
    /// TLS 1.3.
    TLS13,
}

/// `tls_config:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM CA certificates, inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// A file of PEM CA certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The client certificate, inline PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// A file holding the client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The client key, inline PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// A file holding the client key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The lowest TLS version accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    /// The highest TLS version accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_version: Option<TlsVersion>,
}

/// The settings of one HTTP client, gathered from the flat keys of its
/// section (Prometheus writes them beside the section's own keys).
#[derive(Debug, Clone, Default)]
pub struct HttpClientConfig {
    /// `basic_auth:`.
    pub basic_auth: Option<BasicAuth>,
    /// `authorization:`.
    pub authorization: Option<Authorization>,
    /// The deprecated `bearer_token:`.
    pub bearer_token: Option<Secret>,
    /// The deprecated `bearer_token_file:`.
    pub bearer_token_file: Option<PathBuf>,
    /// `tls_config:`.
    pub tls_config: TlsConfig,
    /// `follow_redirects:` (default true).
    pub follow_redirects: bool,
}

/// The `Authorization` header value a client sends, resolved from inline
/// values or files.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// `<scheme> <credentials>`, such as a bearer token.
    Header {
        /// The scheme, e.g. `Bearer`.
        scheme: String,
        /// The credentials.
        credentials: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <secret>)"),
            Credentials::Header { scheme, .. } => write!(f, "{scheme} <secret>"),
        }
    }
}

impl HttpClientConfig {
    /// Checks the combinations Prometheus refuses, with its wording.
    pub fn validate(&self) -> Result<(), String> {
        let token = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        let ways = [
            self.basic_auth.is_some(),
            self.authorization.is_some(),
            token,
        ];
        if ways.iter().filter(|set| **set).count() > 1 {
            return Err("at most one of basic_auth, bearer_token & bearer_token_file, authorization must be configured".into());
        }
        if let Some(basic) = &self.basic_auth {
            if !basic.username.is_empty() && basic.username_file.is_some() {
                return Err(
                    "at most one of basic_auth username & username_file must be configured".into(),
                );
            }
            if basic.password.is_some() && basic.password_file.is_some() {
                return Err(
                    "at most one of basic_auth password & password_file must be configured".into(),
                );
            }
        }
        if let Some(authorization) = &self.authorization {
            if authorization.credentials.is_some() && authorization.credentials_file.is_some() {
                return Err("at most one of authorization credentials & credentials_file must be configured".into());
            }
            if authorization
                .kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("basic"))
            {
                return Err(
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                        .into(),
                );
            }
        }
        let tls = &self.tls_config;
        if tls.ca.is_some() && tls.ca_file.is_some() {
            return Err("at most one of ca and ca_file must be configured".into());
        }
        if tls.cert.is_some() && tls.cert_file.is_some() {
            return Err("at most one of cert and cert_file must be configured".into());
        }
        if tls.key.is_some() && tls.key_file.is_some() {
            return Err("at most one of key and key_file must be configured".into());
        }
        let has_cert = tls.cert.is_some() || tls.cert_file.is_some();
        let has_key = tls.key.is_some() || tls.key_file.is_some();
        if has_cert != has_key {
            return Err(
                "exactly one of key or key_file must be configured when a client certificate is configured"
                    .into(),
            );
        }
        if let (Some(min), Some(max)) = (tls.min_version, tls.max_version) {
            if min as u8 > max as u8 {
                return Err(format!(
                    "tls_config min_version {min:?} is greater than max_version {max:?}"
                ));
            }
        }
        Ok(())
    }

    /// The credentials to send, reading `_file` settings now: a file is read
    /// at every client build, so a rotated token is picked up on reload.
    /// `base` resolves relative paths (the config file's directory).
    pub fn credentials(&self, base: &Path) -> Result<Option<Credentials>, String> {
        if let Some(basic) = &self.basic_auth {
            let username = match &basic.username_file {
                Some(file) => read_secret_file(base, file)?,
                None => basic.username.clone(),
            };
            let password = match (&basic.password, &basic.password_file) {
                (_, Some(file)) => read_secret_file(base, file)?,
                (Some(password), None) => password.expose().to_string(),
                (None, None) => String::new(),
            };
            return Ok(Some(Credentials::Basic { username, password }));
        }
        let (scheme, inline, file) = match &self.authorization {
            Some(a) => (
                a.kind.clone().unwrap_or_else(|| "Bearer".to_string()),
                a.credentials.as_ref(),
                a.credentials_file.as_ref(),
            ),
            None => (
                "Bearer".to_string(),
                self.bearer_token.as_ref(),
                self.bearer_token_file.as_ref(),
            ),
        };
        let credentials = match (inline, file) {
            (_, Some(file)) => read_secret_file(base, file)?,
            (Some(secret), None) => secret.expose().to_string(),
            (None, None) if self.authorization.is_some() => String::new(),
            (None, None) => return Ok(None),
        };
        Ok(Some(Credentials::Header {
            scheme,
            credentials,
        }))
    }
}

/// Resolves `path` against the config file's directory, as Prometheus does.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Reads a credential file; surrounding whitespace (a trailing newline) is
/// dropped, as Prometheus does.
fn read_secret_file(base: &Path, file: &Path) -> Result<String, String> {
    let path = resolve(base, file);
    std::fs::read_to_string(&path)
        .map(|text| text.trim().to_string())
        .map_err(|e| format!("unable to read {}: {e}", path.display()))
}

/// Declares a config section with its own fields followed by the flat HTTP
/// client keys, and a `http_client()` accessor that gathers them. Prometheus
/// writes those keys inline in each section; serde cannot flatten them while
/// also refusing unknown keys with their line, hence one macro instead of
/// three copies of the fields.
macro_rules! section_with_http_client {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($body:tt)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($body)*
            /// `basic_auth:` credentials.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub basic_auth: Option<$crate::config::http_client::BasicAuth>,
            /// `authorization:` header settings.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub authorization: Option<$crate::config::http_client::Authorization>,
            /// Deprecated bearer token, inline.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub bearer_token: Option<$crate::config::http_client::Secret>,
            /// Deprecated bearer token, from a file.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub bearer_token_file: Option<std::path::PathBuf>,
            /// TLS settings.
            #[serde(default)]
            pub tls_config: $crate::config::http_client::TlsConfig,
            /// Whether redirects are followed (default true).
            #[serde(default = "crate::config::yes")]
            pub follow_redirects: bool,
        }

        impl $name {
            /// The HTTP client settings of this section.
            pub fn http_client(&self) -> $crate::config::http_client::HttpClientConfig {
                $crate::config::http_client::HttpClientConfig {
                    basic_auth: self.basic_auth.clone(),
                    authorization: self.authorization.clone(),
                    bearer_token: self.bearer_token.clone(),
                    bearer_token_file: self.bearer_token_file.clone(),
                    tls_config: self.tls_config.clone(),
                    follow_redirects: self.follow_redirects,
                }
            }
        }
    };
}

pub(crate) use section_with_http_client;

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut HttpClientConfig)) -> HttpClientConfig {
        let mut config = HttpClientConfig {
            follow_redirects: true,
            ..HttpClientConfig::default()
        };
        f(&mut config);
        config
    }

    #[test]
    fn only_one_way_to_authenticate() {
        let both = with(|c| {
            c.basic_auth = Some(BasicAuth::default());
            c.bearer_token = Some(Secret("t".into()));
        });
        assert!(both
            .validate()
            .unwrap_err()
            .contains("at most one of basic_auth"));
        let basic = with(|c| {
            c.authorization = Some(Authorization {
                kind: Some("Basic".into()),
                ..Authorization::default()
            })
        });
        assert!(basic.validate().unwrap_err().contains("use \"basic_auth\""));
        let cert_without_key = with(|c| c.tls_config.cert_file = Some("c.pem".into()));
        assert!(cert_without_key.validate().is_err());
    }

    #[test]
    fn credentials_come_from_inline_values_or_trimmed_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let file = with(|c| c.bearer_token_file = Some("token".into()));
        assert_eq!(
            file.credentials(dir.path()).unwrap(),
            Some(Credentials::Header {
                scheme: "Bearer".into(),
                credentials: "s3cret".into()
            })
        );
        let basic = with(|c| {
            c.basic_auth = Some(BasicAuth {
                username: "u".into(),
                password: Some(Secret("hunter2".into())),
                ..BasicAuth::default()
            })
        });
        assert_eq!(
            basic.credentials(dir.path()).unwrap(),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "hunter2".into()
            })
        );
        let missing = with(|c| c.bearer_token_file = Some("absent".into()));
        assert!(missing
            .credentials(dir.path())
            .unwrap_err()
            .contains("absent"));
        assert_eq!(with(|_| {}).credentials(dir.path()).unwrap(), None);
        assert!(!format!("{:?}", basic.credentials(dir.path()).unwrap()).contains("hunter2"));
    }
}
