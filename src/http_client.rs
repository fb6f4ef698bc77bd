//! Builds the HTTP client of a scrape job or a remote-write queue from its
//! `tls_config` and `follow_redirects`, and applies its credentials to a
//! request. Credentials files are read per request, so a rotated token is
//! used without a reload, as Prometheus does.

use std::path::Path;

use crate::config::http_client::{Credentials, HttpClientConfig, TlsVersion};

/// Builds a client; `base` resolves relative file paths.
pub fn build(config: &HttpClientConfig, base: &Path) -> Result<reqwest::Client, String> {
    let tls = &config.tls_config;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("fleetmon/", env!("CARGO_PKG_VERSION")))
        .redirect(if config.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        });
    let read = |file: &Path| {
        let path = crate::config::http_client::resolve(base, file);
        std::fs::read(&path).map_err(|e| format!("unable to read {}: {e}", path.display()))
    };
    let ca = match (&tls.ca, &tls.ca_file) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    if let Some(pem) = ca {
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("invalid CA certificate: {e}"))?;
        if certificates.is_empty() {
            return Err("no CA certificate found in the PEM data".into());
        }
        // Like Go's TLS config with RootCAs set: only these CAs are trusted.
        builder = builder.tls_built_in_root_certs(false);
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let cert = match (&tls.cert, &tls.cert_file) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    let key = match (&tls.key, &tls.key_file) {
        (Some(pem), _) => Some(pem.0.as_bytes().to_vec()),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    if let (Some(mut cert), Some(key)) = (cert, key) {
        cert.push(b'\n');
        cert.extend_from_slice(&key);
        let identity = reqwest::Identity::from_pem(&cert)
            .map_err(|e| format!("invalid client certificate or key: {e}"))?;
        builder = builder.identity(identity);
    }
    if tls.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    if let Some(min) = tls.min_version {
        builder = builder.min_tls_version(version(min)?);
    }
    if let Some(max) = tls.max_version {
        builder = builder.max_tls_version(version(max)?);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// rustls speaks TLS 1.2 and 1.3 only.
fn version(version: TlsVersion) -> Result<reqwest::tls::Version, String> {
    match version {
        TlsVersion::TLS12 => Ok(reqwest::tls::Version::TLS_1_2),
        TlsVersion::TLS13 => Ok(reqwest::tls::Version::TLS_1_3),
        old => Err(format!(
            "{old:?} is not supported: fleetmon speaks TLS 1.2 and 1.3"
        )),
    }
}

/// Adds the section's credentials to `request`.
pub fn authorize(
    request: reqwest::RequestBuilder,
    config: &HttpClientConfig,
    base: &Path,
) -> Result<reqwest::RequestBuilder, String> {
    Ok(match config.credentials(base)? {
        Some(Credentials::Basic { username, password }) => {
            request.basic_auth(username, Some(password))
        }
        Some(Credentials::Header {
            scheme,
            credentials,
        }) => request.header(
            reqwest::header::AUTHORIZATION,
            format!("{scheme} {credentials}"),
        ),
        None => request,
    })
}
