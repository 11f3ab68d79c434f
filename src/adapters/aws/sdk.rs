//! The one AWS SDK configuration of the process: one HTTP client and connection pool
//! (built here once and handed to every client: left unset, each SDK client would build
//! its own connector and pool, one per credential set and region), standard retries, timeouts on every call, the user-agent app id, and the SDK's own
//! environment handling (AWS_ENDPOINT_URL[_<SERVICE>], AWS_USE_FIPS_ENDPOINT,
//! HTTPS_PROXY/HTTP_PROXY/NO_PROXY), plus AWS_CA_BUNDLE, which the Rust SDK leaves to us.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{tls, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// How the SDK configuration is built.
#[derive(Debug, Clone, Default)]
pub struct SdkSettings {
    /// `--eks-addon-version`; replaces the crate version in the app id when set.
    pub eks_addon_version: String,
    /// Use the machine's default credential chain when a mount brings no token
    /// (`mount` on a laptop). Never when serving pods: they must use their own identity.
    pub default_credentials: bool,
    /// Overrides AWS_ENDPOINT_URL (tests).
    pub endpoint_url: Option<String>,
}

/// The user-agent app id of §9: `secrets-store-csi-driver-provider-aws-<version>`.
pub fn app_id(eks_addon_version: &str) -> String {
    let version = if eks_addon_version.is_empty() {
        env!("CARGO_PKG_VERSION")
    } else {
        eks_addon_version
    };
    let clean: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("secrets-store-csi-driver-provider-aws-{clean}")
}

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("AWS_CA_BUNDLE {path}: {reason}")]
    CaBundle { path: String, reason: String },
    #[error(
        "no CA certificates found to verify AWS's TLS certificates ({detail}): the image must \
         carry them (the shipped image does), or set SSL_CERT_FILE or AWS_CA_BUNDLE to a PEM \
         bundle, e.g. one mounted from the host"
    )]
    NoRootCertificates { detail: String },
}

/// What the connector trusts.
enum Trust {
    /// The system's certificates (SSL_CERT_FILE, SSL_CERT_DIR or the usual places).
    System,
    /// Only these (AWS_CA_BUNDLE), or none when every endpoint is plain HTTP.
    Only(tls::TlsContext),
}

/// The SDK's connector panics on each new connection when the system has no CA
/// certificates (an image built without them): the fetch then fails with no cause a
/// user can act on. So look once, at startup, and refuse to start with the remedy,
/// unless AWS is reached over plain HTTP (a local endpoint), which needs none.
fn system_trust(
    found: usize,
    errors: &[String],
    endpoint: Option<&str>,
) -> Result<Trust, SdkError> {
    if found > 0 {
        return Ok(Trust::System);
    }
    if endpoint.is_some_and(|url| url.starts_with("http://")) {
        let context = tls::TlsContext::builder()
            .with_trust_store(tls::TrustStore::empty().with_native_roots(false))
            .build()
            .map_err(|e| SdkError::NoRootCertificates {
                detail: e.to_string(),
            })?;
        return Ok(Trust::Only(context));
    }
    let detail = if errors.is_empty() {
        "none in SSL_CERT_FILE, SSL_CERT_DIR or the system's places".to_string()
    } else {
        errors.join("; ")
    };
    Err(SdkError::NoRootCertificates { detail })
}

/// The process's one HTTP client, built like the SDK's default but with ring (rustls,
/// proxies from the environment), trusting only the certificates of `AWS_CA_BUNDLE`
/// when given (as the other AWS SDKs do). Its connectors are cached by their settings,
/// which every client shares, so every client uses one connection pool.
fn shared_http_client(
    ca_bundle: Option<&str>,
    endpoint: Option<&str>,
) -> Result<SharedHttpClient, SdkError> {
    let trust = match ca_bundle {
        Some(path) => Trust::Only(ca_bundle_context(path)?),
        None => {
            let native = rustls_native_certs::load_native_certs();
            let errors: Vec<String> = native.errors.iter().map(|e| e.to_string()).collect();
            system_trust(native.certs.len(), &errors, endpoint)?
        }
    };
    let context = match trust {
        Trust::System => None,
        Trust::Only(context) => Some(context),
    };
    Ok(
        aws_smithy_http_client::Builder::new().build_with_connector_fn(
            move |settings, components| {
                let mut builder = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ));
                if let Some(context) = &context {
                    builder = builder.tls_context(context.clone());
                }
                builder.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    builder.set_sleep_impl(components.sleep_impl());
                }
                builder.set_proxy_config(Some(ProxyConfig::from_env()));
                builder.build()
            },
        ),
    )
}

/// TLS trusting only the certificates of the PEM file at `path`.
fn ca_bundle_context(path: &str) -> Result<tls::TlsContext, SdkError> {
    let bad = |reason: String| SdkError::CaBundle {
        path: path.to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let trust = tls::TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(pem);
    tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| bad(e.to_string()))
}

pub async fn load(settings: &SdkSettings) -> Result<SdkConfig, SdkError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        // Every client sets its region per call; naming one here keeps the loader from
        // asking the instance metadata service.
        .region(aws_config::Region::new("us-east-1"))
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(15))
                .build(),
        );
    if let Ok(name) = AppName::new(app_id(&settings.eks_addon_version)) {
        loader = loader.app_name(name);
    }
    if !settings.default_credentials {
        loader = loader.no_credentials();
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let ca_bundle = std::env::var("AWS_CA_BUNDLE")
        .ok()
        .filter(|p| !p.is_empty());
    let endpoint = settings
        .endpoint_url
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    loader = loader.http_client(shared_http_client(
        ca_bundle.as_deref(),
        endpoint.as_deref(),
    )?);
    Ok(loader.load().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_ca_bundle_is_a_clear_error() {
        let err = shared_http_client(Some("/nonexistent/ca.pem"), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn no_system_certificates_is_a_startup_error_with_the_remedy() {
        let err = system_trust(0, &[], None).err().expect("refused");
        let message = err.to_string();
        assert!(message.contains("no CA certificates"), "{message}");
        assert!(message.contains("AWS_CA_BUNDLE"), "{message}");
        let err = system_trust(
            0,
            &["open /etc/ssl/certs: denied".into()],
            Some("https://x"),
        )
        .err()
        .expect("refused");
        assert!(err.to_string().contains("denied"), "{err}");
    }

    #[test]
    fn plain_http_endpoints_need_no_certificates_and_found_ones_are_used() {
        assert!(matches!(
            system_trust(0, &[], Some("http://127.0.0.1:5000")),
            Ok(Trust::Only(_))
        ));
        assert!(matches!(system_trust(3, &[], None), Ok(Trust::System)));
    }

    #[tokio::test]
    async fn every_client_gets_the_one_http_client() {
        let sdk = load(&SdkSettings::default()).await.unwrap();
        assert!(
            sdk.http_client().is_some(),
            "without one, each SDK client builds its own connection pool"
        );
    }

    #[test]
    fn app_id_carries_the_version_or_the_addon_version() {
        assert_eq!(
            app_id(""),
            format!(
                "secrets-store-csi-driver-provider-aws-{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            app_id("v1.0.0-eksbuild.1"),
            "secrets-store-csi-driver-provider-aws-v1.0.0-eksbuild.1"
        );
        assert_eq!(app_id("a b"), "secrets-store-csi-driver-provider-aws-a_b");
    }
}
