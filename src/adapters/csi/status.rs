//! MountError → gRPC status, in one place. Never UNAVAILABLE: the driver retries that
//! three times on top of our own retries.

use tonic::{Code, Status};

use crate::domain::failover::{ClientKind, ErrorClass};
use crate::ports::IdentityError;
use crate::service::MountError;

pub fn status_of(error: &MountError) -> Status {
    Status::new(code_of(error), error.to_string())
}

/// The small vocabulary of `MountResponse.error.code` (opt-in, `--error-codes`) and of
/// the `code` label of the mounts metric.
pub fn error_code(error: &MountError) -> &'static str {
    match error {
        MountError::Attributes(_)
        | MountError::Permission(_)
        | MountError::Class(_)
        | MountError::NoRegion
        | MountError::SameRegions(_)
        | MountError::Extract { .. }
        | MountError::Identity(IdentityError::Region(_))
        | MountError::RegionLookup(IdentityError::Region(_)) => "InvalidSecretProviderClass",
        MountError::Identity(
            IdentityError::MissingToken { .. } | IdentityError::ServiceAccount(_),
        )
        | MountError::RegionLookup(
            IdentityError::MissingToken { .. } | IdentityError::ServiceAccount(_),
        ) => "AuthenticationFailed",
        MountError::Identity(IdentityError::Unavailable(_))
        | MountError::RegionLookup(IdentityError::Unavailable(_)) => "KubernetesUnavailable",
        MountError::Fetch { error, .. } => match error.class {
            ErrorClass::Client(ClientKind::NotFound) => "SecretNotFound",
            ErrorClass::Client(ClientKind::AccessDenied) => "AccessDenied",
            ErrorClass::Client(ClientKind::Invalid) => "InvalidSecretProviderClass",
            ErrorClass::Client(ClientKind::Other) => "RequestRejected",
            ErrorClass::Server | ErrorClass::Transport => "AWSUnavailable",
        },
        MountError::Write(_) => "FileWriteError",
        MountError::Deadline(_) => "MountTimeout",
        MountError::Limit(_) => "LimitExceeded",
        MountError::Internal(_) => "InternalError",
    }
}

fn code_of(error: &MountError) -> Code {
    match error {
        MountError::Attributes(_)
        | MountError::Permission(_)
        | MountError::Class(_)
        | MountError::NoRegion
        | MountError::SameRegions(_)
        | MountError::Extract { .. } => Code::InvalidArgument,
        MountError::Identity(IdentityError::Unavailable(_))
        | MountError::RegionLookup(IdentityError::Unavailable(_)) => Code::Internal,
        MountError::Identity(_) | MountError::RegionLookup(_) => Code::FailedPrecondition,
        MountError::Fetch { error, .. } => match error.class {
            ErrorClass::Client(ClientKind::NotFound) => Code::NotFound,
            ErrorClass::Client(ClientKind::AccessDenied) => Code::PermissionDenied,
            ErrorClass::Client(ClientKind::Invalid) => Code::InvalidArgument,
            ErrorClass::Client(ClientKind::Other) => Code::FailedPrecondition,
            ErrorClass::Server | ErrorClass::Transport => Code::Internal,
        },
        MountError::Deadline(_) => Code::DeadlineExceeded,
        MountError::Limit(_) => Code::ResourceExhausted,
        MountError::Write(_) | MountError::Internal(_) => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::region::Region;
    use crate::ports::{SinkError, StoreError};

    fn fetch(class: ErrorClass) -> MountError {
        MountError::Fetch {
            object: "object \"s\" (#1)".into(),
            region: Region::parse("us-east-1").unwrap(),
            error: StoreError::new(class, "boom"),
            also_failed: 0,
        }
    }

    #[test]
    fn codes_fit_the_cause() {
        assert_eq!(code_of(&MountError::NoRegion), Code::InvalidArgument);
        assert_eq!(
            code_of(&fetch(ErrorClass::Client(ClientKind::NotFound))),
            Code::NotFound
        );
        assert_eq!(
            code_of(&fetch(ErrorClass::Client(ClientKind::AccessDenied))),
            Code::PermissionDenied
        );
        assert_eq!(code_of(&fetch(ErrorClass::Server)), Code::Internal);
        assert_eq!(code_of(&fetch(ErrorClass::Transport)), Code::Internal);
        assert_eq!(
            code_of(&MountError::Write(SinkError::Write {
                path: "/t".into(),
                reason: "full".into()
            })),
            Code::Internal
        );
        assert_eq!(
            code_of(&MountError::Deadline(std::time::Duration::from_secs(1))),
            Code::DeadlineExceeded
        );
    }

    #[test]
    fn error_codes_name_the_cause() {
        assert_eq!(
            error_code(&MountError::NoRegion),
            "InvalidSecretProviderClass"
        );
        assert_eq!(
            error_code(&fetch(ErrorClass::Client(ClientKind::NotFound))),
            "SecretNotFound"
        );
        assert_eq!(
            error_code(&fetch(ErrorClass::Client(ClientKind::AccessDenied))),
            "AccessDenied"
        );
        assert_eq!(error_code(&fetch(ErrorClass::Server)), "AWSUnavailable");
        assert_eq!(error_code(&fetch(ErrorClass::Transport)), "AWSUnavailable");
        assert_eq!(
            error_code(&MountError::Identity(IdentityError::MissingToken {
                audience: "a".into()
            })),
            "AuthenticationFailed"
        );
        assert_eq!(
            error_code(&MountError::Write(SinkError::Write {
                path: "/t".into(),
                reason: "full".into()
            })),
            "FileWriteError"
        );
        assert_eq!(
            error_code(&MountError::Deadline(std::time::Duration::from_secs(1))),
            "MountTimeout"
        );
    }

    #[test]
    fn the_message_names_object_and_cause() {
        let status = status_of(&fetch(ErrorClass::Client(ClientKind::NotFound)));
        assert!(status.message().contains("object \"s\"") && status.message().contains("boom"));
    }
}
