//! A role a class asks to assume (`assumeRoleArn`): the pod's own credentials (IRSA,
//! Pod Identity or the volume's secret) call sts:AssumeRole, for secrets kept in another
//! account. Checked before any call.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::arn::Arn;
use super::text::bounded;

/// STS limits: a session lasts 15 min to 1 h when the caller's own credentials came from
/// a role (role chaining caps it at one hour).
pub const MIN_DURATION: Duration = Duration::from_secs(15 * 60);
pub const MAX_DURATION: Duration = Duration::from_secs(60 * 60);
/// Longest role session name STS accepts.
const MAX_SESSION_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssumeRole {
    pub role_arn: String,
    /// `assumeRoleExternalId`, for roles whose trust policy asks for one.
    pub external_id: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssumeRoleError {
    #[error("assumeRoleArn `{}` is not an IAM role ARN (arn:aws:iam::123456789012:role/name)", bounded(.0))]
    Arn(String),
    #[error("assumeRoleExternalId must be 2 to 1224 characters of letters, digits and +=,.@:/-")]
    ExternalId,
    #[error("assumeRoleDuration `{}` must be a duration from 15m to 1h (STS limits sessions of chained roles to one hour)", bounded(.0))]
    Duration(String),
    #[error("assumeRoleExternalId and assumeRoleDuration need assumeRoleArn")]
    WithoutRole,
}

impl AssumeRole {
    /// `duration` is a parsed Go duration (None: one hour), `raw_duration` its text for
    /// messages.
    pub fn parse(
        role_arn: &str,
        external_id: Option<&str>,
        duration: Option<(Duration, &str)>,
    ) -> Result<AssumeRole, AssumeRoleError> {
        let arn = Arn::parse(role_arn).map_err(|_| AssumeRoleError::Arn(role_arn.to_string()))?;
        let is_role = arn.service == "iam"
            && arn.region.is_empty()
            && arn.account.len() == 12
            && arn.account.bytes().all(|b| b.is_ascii_digit())
            && arn
                .resource
                .strip_prefix("role/")
                .is_some_and(|name| !name.is_empty());
        if !is_role {
            return Err(AssumeRoleError::Arn(role_arn.to_string()));
        }
        if let Some(id) = external_id {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c);
            if !(2..=1224).contains(&id.len()) || !id.chars().all(allowed) {
                return Err(AssumeRoleError::ExternalId);
            }
        }
        let duration = match duration {
            None => MAX_DURATION,
            Some((d, _)) if (MIN_DURATION..=MAX_DURATION).contains(&d) => d,
            Some((_, text)) => return Err(AssumeRoleError::Duration(text.to_string())),
        };
        Ok(AssumeRole {
            role_arn: role_arn.to_string(),
            external_id: external_id.map(str::to_string),
            duration,
        })
    }
}

/// The role session name CloudTrail shows: `<namespace>@<service account>`, in STS's
/// alphabet, shortened with a hash of the whole when longer than 64 characters.
pub fn session_name(namespace: &str, service_account: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let full = format!("{}@{}", clean(namespace), clean(service_account));
    if full.len() < 2 {
        return "secrets-store-csi".to_string();
    }
    if full.len() <= MAX_SESSION_NAME {
        return full;
    }
    let hash: String = Sha256::digest(full.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    // ASCII only by now, so any cut is on a character boundary.
    format!("{}-{hash}", &full[..MAX_SESSION_NAME - hash.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::210987654321:role/central/secrets-reader";

    #[test]
    fn a_role_arn_is_checked_before_any_call() {
        let a = AssumeRole::parse(ROLE, Some("team-a"), None).unwrap();
        assert_eq!(a.duration, MAX_DURATION);
        assert_eq!(a.external_id.as_deref(), Some("team-a"));
        for bad in [
            "central/secrets-reader",
            "arn:aws:iam::2109876543:role/x",
            "arn:aws:iam::210987654321:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam:us-east-1:210987654321:role/x",
            "arn:aws:iam::210987654321:role/",
        ] {
            assert!(
                matches!(
                    AssumeRole::parse(bad, None, None),
                    Err(AssumeRoleError::Arn(_))
                ),
                "{bad}"
            );
        }
        assert!(AssumeRole::parse("arn:aws-cn:iam::210987654321:role/x", None, None).is_ok());
    }

    #[test]
    fn external_id_and_duration_within_sts_limits() {
        assert_eq!(
            AssumeRole::parse(ROLE, Some("x"), None),
            Err(AssumeRoleError::ExternalId)
        );
        assert_eq!(
            AssumeRole::parse(ROLE, Some("has space"), None),
            Err(AssumeRoleError::ExternalId)
        );
        let half = Duration::from_secs(1800);
        assert_eq!(
            AssumeRole::parse(ROLE, None, Some((half, "30m")))
                .unwrap()
                .duration,
            half
        );
        for (d, text) in [
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(7200), "2h"),
        ] {
            assert_eq!(
                AssumeRole::parse(ROLE, None, Some((d, text))),
                Err(AssumeRoleError::Duration(text.into()))
            );
        }
    }

    #[test]
    fn session_names_name_the_service_account_within_64_characters() {
        assert_eq!(session_name("shop", "web"), "shop@web");
        let long = session_name(&"n".repeat(63), &"s".repeat(60));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("nnnn"));
        assert_ne!(
            long,
            session_name(&"n".repeat(63), &"s".repeat(61)),
            "the hash tells them apart"
        );
        assert_eq!(session_name("a b", "c/d"), "a-b@c-d");
    }
}
