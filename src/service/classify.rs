//! What a failed mount means to whoever reports it, decided once per error: the kind of
//! failure (each transport turns it into its own status code) and the provider's error
//! code (`MountResponse.error.code`, and the `code` label of the mounts metric, so that
//! an operator finds the same word in both).

use crate::domain::failover::{ClientKind, ErrorClass};
use crate::ports::{IdentityError, SinkError};

use super::error::MountError;

/// How a mount failed, for reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub failure: Failure,
    pub code: ErrorCode,
}

/// The kind of a failure, in words every transport has (gRPC's canonical codes are
/// one spelling of them): whether the request was wrong, something outside it must
/// change, a dependency did not answer, or the provider ran out of time or room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request or its class is wrong: the same request fails again.
    Invalid,
    /// A secret the class names does not exist.
    NotFound,
    /// The pod's identity may not read what the class names.
    Denied,
    /// Something besides the request must change first: the pod's identity, its node,
    /// or what the store refused.
    Precondition,
    /// AWS or the cluster did not answer, or answered with its own failure.
    Unavailable,
    /// The mount did not finish in time.
    Timeout,
    /// A limit of the provider (sizes, counts, memory) was reached.
    Exhausted,
    /// The provider itself failed: a file write, a bug.
    Internal,
}

/// The small vocabulary of `MountResponse.error.code` (opt-in, `--error-codes`) and of
/// the `code` label of the mounts metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidSecretProviderClass,
    AuthenticationFailed,
    KubernetesUnavailable,
    SecretNotFound,
    AccessDenied,
    RequestRejected,
    AwsUnavailable,
    MountTimeout,
    FileWriteError,
    LimitExceeded,
    MemoryPressure,
    InvalidTargetPath,
    InternalError,
}

impl ErrorCode {
    /// The code as the driver, the pod's events and the metric show it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidSecretProviderClass => "InvalidSecretProviderClass",
            ErrorCode::AuthenticationFailed => "AuthenticationFailed",
            ErrorCode::KubernetesUnavailable => "KubernetesUnavailable",
            ErrorCode::SecretNotFound => "SecretNotFound",
            ErrorCode::AccessDenied => "AccessDenied",
            ErrorCode::RequestRejected => "RequestRejected",
            ErrorCode::AwsUnavailable => "AWSUnavailable",
            ErrorCode::MountTimeout => "MountTimeout",
            ErrorCode::FileWriteError => "FileWriteError",
            ErrorCode::LimitExceeded => "LimitExceeded",
            ErrorCode::MemoryPressure => "MemoryPressure",
            ErrorCode::InvalidTargetPath => "InvalidTargetPath",
            ErrorCode::InternalError => "InternalError",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const fn is(failure: Failure, code: ErrorCode) -> Classification {
    Classification { failure, code }
}

/// The one table from a mount's error to what it means.
pub fn classify(error: &MountError) -> Classification {
    match error {
        MountError::Attributes(_)
        | MountError::Permission(_)
        | MountError::Class(_)
        | MountError::NoRegion
        | MountError::SameRegions(_)
        | MountError::Extract { .. }
        | MountError::Values(_) => is(Failure::Invalid, ErrorCode::InvalidSecretProviderClass),
        MountError::Identity(e) | MountError::RegionLookup(e) => identity(e),
        MountError::Fetch { error, .. } => match error.class {
            ErrorClass::Client(ClientKind::NotFound) => {
                is(Failure::NotFound, ErrorCode::SecretNotFound)
            }
            ErrorClass::Client(ClientKind::AccessDenied) => {
                is(Failure::Denied, ErrorCode::AccessDenied)
            }
            ErrorClass::Client(ClientKind::Invalid) => {
                is(Failure::Invalid, ErrorCode::InvalidSecretProviderClass)
            }
            ErrorClass::Client(ClientKind::Other) => {
                is(Failure::Precondition, ErrorCode::RequestRejected)
            }
            ErrorClass::Server | ErrorClass::Transport => {
                is(Failure::Unavailable, ErrorCode::AwsUnavailable)
            }
        },
        MountError::Write(SinkError::Abandoned { .. }) | MountError::Deadline(_) => {
            is(Failure::Timeout, ErrorCode::MountTimeout)
        }
        MountError::Write(_) => is(Failure::Internal, ErrorCode::FileWriteError),
        MountError::Limit(_) => is(Failure::Exhausted, ErrorCode::LimitExceeded),
        MountError::MemoryPressure { .. } => is(Failure::Exhausted, ErrorCode::MemoryPressure),
        MountError::Target(_) => is(Failure::Invalid, ErrorCode::InvalidTargetPath),
        MountError::Internal(_) => is(Failure::Internal, ErrorCode::InternalError),
    }
}

/// An identity or region lookup that failed: the pod's node without a usable region
/// label is a class to fix (set `region`); the rest are the pod's identity.
fn identity(error: &IdentityError) -> Classification {
    match error {
        IdentityError::Region(_) => {
            is(Failure::Precondition, ErrorCode::InvalidSecretProviderClass)
        }
        IdentityError::MissingToken { .. }
        | IdentityError::ServiceAccount(_)
        | IdentityError::SecretRef(_) => is(Failure::Precondition, ErrorCode::AuthenticationFailed),
        IdentityError::Unavailable(_) => is(Failure::Unavailable, ErrorCode::KubernetesUnavailable),
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

    fn code(error: &MountError) -> &'static str {
        classify(error).code.as_str()
    }

    #[test]
    fn error_codes_name_the_cause() {
        assert_eq!(code(&MountError::NoRegion), "InvalidSecretProviderClass");
        assert_eq!(
            code(&fetch(ErrorClass::Client(ClientKind::NotFound))),
            "SecretNotFound"
        );
        assert_eq!(
            code(&fetch(ErrorClass::Client(ClientKind::AccessDenied))),
            "AccessDenied"
        );
        assert_eq!(code(&fetch(ErrorClass::Server)), "AWSUnavailable");
        assert_eq!(code(&fetch(ErrorClass::Transport)), "AWSUnavailable");
        assert_eq!(
            code(&MountError::Identity(IdentityError::MissingToken {
                audience: "a".into()
            })),
            "AuthenticationFailed"
        );
        assert_eq!(
            code(&MountError::Write(SinkError::Write {
                path: "/t".into(),
                source: std::io::Error::other("full")
            })),
            "FileWriteError"
        );
        assert_eq!(
            code(&MountError::Deadline(std::time::Duration::from_secs(1))),
            "MountTimeout"
        );
    }

    #[test]
    fn a_lookup_fails_as_the_identity_it_looked_for() {
        let unavailable = IdentityError::Unavailable("down".to_string().into());
        let region = IdentityError::Region("no label".to_string().into());
        for e in [unavailable, region] {
            assert_eq!(
                classify(&MountError::Identity(e.clone())),
                classify(&MountError::RegionLookup(e))
            );
        }
    }
}
