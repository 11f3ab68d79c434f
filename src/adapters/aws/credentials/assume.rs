//! A class's role to assume: STS AssumeRole signed with the pod's own credentials.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;

use super::irsa::from_sts;
use super::Signing;
use crate::adapters::aws::errors::from_sdk;
use crate::domain::assume::AssumeRole;
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
    from_sts(&what, out.credentials(), "assume-role")
}
