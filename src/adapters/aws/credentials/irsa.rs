//! IRSA: STS AssumeRoleWithWebIdentity with the pod's `sts.amazonaws.com` token.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;

use crate::adapters::aws::errors::from_sdk;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::region::Region;
use crate::domain::secret::Token;
use crate::ports::StoreError;

const SESSION_NAME: &str = "secrets-store-csi-driver-provider-aws";

/// Assumes `role` in `region`; answers the credentials and how long they are valid.
pub async fn assume_role(
    sdk: &SdkConfig,
    region: &Region,
    role: &str,
    token: &Token,
) -> Result<(Credentials, Duration), StoreError> {
    let config = aws_sdk_sts::config::Builder::from(sdk)
        .region(aws_config::Region::new(region.to_string()))
        .build();
    let client = aws_sdk_sts::Client::from_conf(config);
    let what = format!("AssumeRoleWithWebIdentity for role {role} in {region}");
    let out = client
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name(SESSION_NAME)
        .web_identity_token(token.expose())
        .send()
        .await
        .map_err(|e| from_sdk(&what, e).error)?;
    from_sts(&what, out.credentials(), "irsa")
}

/// The credentials of an STS answer and how long they are valid; `provider` names their
/// source in the SDK's credential metadata.
pub(super) fn from_sts(
    what: &str,
    creds: Option<&aws_sdk_sts::types::Credentials>,
    provider: &'static str,
) -> Result<(Credentials, Duration), StoreError> {
    let creds = creds.ok_or_else(|| {
        StoreError::new(
            ErrorClass::Client(ClientKind::AccessDenied),
            format!("{what}: the answer holds no credentials"),
        )
    })?;
    let expiry = SystemTime::try_from(*creds.expiration()).unwrap_or_else(|_| SystemTime::now());
    let valid_for = expiry.duration_since(SystemTime::now()).unwrap_or_default();
    let credentials = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        Some(expiry),
        provider,
    );
    Ok((credentials, valid_for))
}
