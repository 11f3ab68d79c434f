//! EKS Pod Identity: the node's agent hands out credentials for the pod's
//! `pods.eks.amazonaws.com` token. Reached directly (never through a proxy), IPv4 then
//! IPv6 by default, each call bounded by `--pod-identity-http-timeout`, retried with
//! backoff on connection failures and 5xx.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::domain::attributes::AddressPreference;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::secret::Token;
use crate::ports::StoreError;

pub const DEFAULT_IPV4_ENDPOINT: &str = "http://169.254.170.23/v1/credentials";
pub const DEFAULT_IPV6_ENDPOINT: &str = "http://[fd00:ec2::23]/v1/credentials";
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The SDK's default for container credentials, used when no timeout is configured.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub ipv4_endpoint: String,
    pub ipv6_endpoint: String,
    pub timeout: Option<Duration>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            ipv4_endpoint: DEFAULT_IPV4_ENDPOINT.to_string(),
            ipv6_endpoint: DEFAULT_IPV6_ENDPOINT.to_string(),
            timeout: None,
        }
    }
}

pub struct PodIdentityAgent {
    client: Client<HttpConnector, Empty<Bytes>>,
    settings: AgentSettings,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

enum Attempt {
    /// Try again, or the next address.
    Retry(StoreError),
    Final(StoreError),
}

impl PodIdentityAgent {
    pub fn new(settings: AgentSettings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timeout.unwrap_or(DEFAULT_TIMEOUT)));
        PodIdentityAgent {
            client: Client::builder(TokioExecutor::new()).build(connector),
            settings,
        }
    }

    pub async fn credentials(
        &self,
        token: &Token,
        preference: AddressPreference,
    ) -> Result<(Credentials, Duration), StoreError> {
        let endpoints: Vec<&str> = match preference {
            AddressPreference::Auto => {
                vec![&self.settings.ipv4_endpoint, &self.settings.ipv6_endpoint]
            }
            AddressPreference::Ipv4 => vec![&self.settings.ipv4_endpoint],
            AddressPreference::Ipv6 => vec![&self.settings.ipv6_endpoint],
        };
        let mut last = StoreError::new(
            ErrorClass::Transport,
            "Pod Identity agent: no endpoint configured",
        );
        // Each attempt tries every address, so an unreachable IPv4 agent costs one
        // timeout before IPv6 is asked, not three.
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            for endpoint in &endpoints {
                match self.once(endpoint, token).await {
                    Ok(found) => return Ok(found),
                    Err(Attempt::Final(e)) => return Err(e),
                    Err(Attempt::Retry(e)) => last = e,
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(last)
    }

    async fn once(
        &self,
        endpoint: &str,
        token: &Token,
    ) -> Result<(Credentials, Duration), Attempt> {
        let what = format!("Pod Identity agent {endpoint}");
        let request = http::Request::get(endpoint)
            .header(http::header::AUTHORIZATION, token.expose())
            .body(Empty::new())
            .map_err(|_| {
                Attempt::Final(StoreError::new(
                    ErrorClass::Client(ClientKind::Invalid),
                    format!("{what}: invalid endpoint"),
                ))
            })?;
        let timeout = self.settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let response = match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => {
                return Err(Attempt::Retry(StoreError::new(
                    ErrorClass::Transport,
                    format!("{what}: timed out after {timeout:?}"),
                )))
            }
            Ok(Err(e)) => {
                return Err(Attempt::Retry(StoreError::new(
                    ErrorClass::Transport,
                    format!("{what}: {e}"),
                )))
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let body = tokio::time::timeout(timeout, response.into_body().collect())
            .await
            .map_err(|_| {
                Attempt::Retry(StoreError::new(
                    ErrorClass::Transport,
                    format!("{what}: timed out reading the answer"),
                ))
            })?
            .map_err(|e| {
                Attempt::Retry(StoreError::new(
                    ErrorClass::Transport,
                    format!("{what}: {e}"),
                ))
            })?
            .to_bytes();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Attempt::Retry(StoreError::new(
                ErrorClass::Server,
                format!("{what}: HTTP {status}"),
            )));
        }
        if !status.is_success() {
            let class = match status.as_u16() {
                401 | 403 => ErrorClass::Client(ClientKind::AccessDenied),
                404 => ErrorClass::Client(ClientKind::NotFound),
                _ => ErrorClass::Client(ClientKind::Invalid),
            };
            // The agent's message says why (no association for the service account, ...).
            // Redact before shortening, so no part of an echoed token survives.
            let text = String::from_utf8_lossy(&body).replace(token.expose(), "<token>");
            let text: String = text.chars().take(300).collect();
            return Err(Attempt::Final(StoreError::new(
                class,
                format!("{what}: HTTP {status}: {}", text.trim()),
            )));
        }
        if body.len() > MAX_BODY {
            return Err(Attempt::Final(StoreError::new(
                ErrorClass::Server,
                format!("{what}: answer too large"),
            )));
        }
        let parsed: AgentCredentials = serde_json::from_slice(&body).map_err(|e| {
            Attempt::Retry(StoreError::new(
                ErrorClass::Server,
                format!("{what}: unreadable answer: {e}"),
            ))
        })?;
        let expiry = aws_smithy_types::DateTime::from_str(
            &parsed.expiration,
            aws_smithy_types::date_time::Format::DateTime,
        )
        .ok()
        .and_then(|d| SystemTime::try_from(d).ok())
        .ok_or_else(|| {
            Attempt::Retry(StoreError::new(
                ErrorClass::Server,
                format!("{what}: unreadable Expiration"),
            ))
        })?;
        let valid_for = expiry.duration_since(SystemTime::now()).unwrap_or_default();
        let credentials = Credentials::new(
            parsed.access_key_id,
            parsed.secret_access_key,
            Some(parsed.token),
            Some(expiry),
            "pod-identity",
        );
        Ok((credentials, valid_for))
    }
}
