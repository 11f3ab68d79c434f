//! A class's role to assume: STS AssumeRole signed with the pod's own credentials.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;

use super::Signing;
use crate::adapters::aws::errors::from_sdk;
use crate::domain::assume::AssumeRole;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::region::Region;
use crate::ports::StoreError;

/// Assumes `role` in `region` as `base`; answers the credentials and how long they last.
pub async fn assume_role(
    sdk: &SdkConfig,
    region: &Region,
    base: &Signing,
    role: &AssumeRole,
    session_name: &str,
) -> Result<(Credentials, Duration), StoreError> {
    let mut config =
        aws_sdk_sts::config::Builder::from(sdk).region(aws_config::Region::new(region.to_string()));
    if let Signing::Pod(credentials) = base {
        config = config.credentials_provider(credentials.clone());
    }
    let client = aws_sdk_sts::Client::from_conf(config.build());
    let what = format!("AssumeRole for role {} in {region}", role.role_arn);
    let seconds = i32::try_from(role.duration.as_secs()).unwrap_or(3600);
    let out = client
        .assume_role()
        .role_arn(&role.role_arn)
        .role_session_name(session_name)
        .set_external_id(role.external_id.clone())
        .duration_seconds(seconds)
        .send()
        .await
        .map_err(|e| from_sdk(&what, e).error)?;
    let creds = out.credentials().ok_or_else(|| {
        StoreError::new(
            ErrorClass::Client(ClientKind::AccessDenied),
            format!("{what}: the answer holds no credentials"),
        )
    })?;
    let expiry = SystemTime::try_from(*creds.expiration()).unwrap_or_else(|_| SystemTime::now());
    let valid_for = expiry.duration_since(SystemTime::now()).unwrap_or_default();
    Ok((
        Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            Some(expiry),
            "assume-role",
        ),
        valid_for,
    ))
}
