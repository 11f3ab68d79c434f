//! MountError → gRPC status, in one place. Never UNAVAILABLE: the driver retries that
//! three times on top of our own retries.

use tonic::{Code, Status};

use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::text::capped;
use crate::ports::{IdentityError, SinkError};
use crate::service::MountError;

pub fn status_of(error: &MountError) -> Status {
    Status::new(
        code_of(error),
        capped(error.to_string(), MAX_STATUS_MESSAGE_BYTES),
    )
}

/// Largest status message: it travels in HTTP/2 trailers, and a class with hundreds of
/// broken objects must not produce one the driver's client cannot read.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 8 * 1024;

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
        | MountError::Values(_)
        | MountError::Identity(IdentityError::Region(_))
        | MountError::RegionLookup(IdentityError::Region(_)) => "InvalidSecretProviderClass",
        MountError::Identity(
            IdentityError::MissingToken { .. }
            | IdentityError::ServiceAccount(_)
            | IdentityError::SecretRef(_),
        )
        | MountError::RegionLookup(
            IdentityError::MissingToken { .. }
            | IdentityError::ServiceAccount(_)
            | IdentityError::SecretRef(_),
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
        MountError::Write(SinkError::Abandoned { .. }) => "MountTimeout",
        MountError::Write(_) => "FileWriteError",
        MountError::Deadline(_) => "MountTimeout",
        MountError::Limit(_) => "LimitExceeded",
        MountError::MemoryPressure { .. } => "MemoryPressure",
        MountError::Target(_) => "InvalidTargetPath",
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
        | MountError::Extract { .. }
        | MountError::Values(_) => Code::InvalidArgument,
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
        MountError::Deadline(_) | MountError::Write(SinkError::Abandoned { .. }) => {
            Code::DeadlineExceeded
        }
        MountError::Limit(_) | MountError::MemoryPressure { .. } => Code::ResourceExhausted,
        MountError::Target(_) => Code::InvalidArgument,
        MountError::Write(_) | MountError::Internal(_) => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::region::Region;
    use crate::ports::StoreError;

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
                source: std::io::Error::other("full")
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
                source: std::io::Error::other("full")
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

    #[test]
    fn a_huge_message_is_capped() {
        let errors = (0..2000)
            .map(|i| crate::domain::objects::ObjectError {
                object: format!("object \"o{i}\" (#{i})"),
                rule: crate::domain::objects::Rule::FileName,
                message: "bad".into(),
            })
            .collect();
        let status = status_of(&MountError::Class(crate::domain::objects::ClassErrors(
            errors,
        )));
        assert!(status.message().len() <= MAX_STATUS_MESSAGE_BYTES);
        assert!(status.message().ends_with("bytes in all)"));
    }
}
