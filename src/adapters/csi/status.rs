//! MountError → gRPC status, in one place: the service classifies the error, this maps
//! its kind to a gRPC code.

use tonic::{Code, Status};

use crate::domain::text::capped;
use crate::service::{classify, Failure, MountError};

pub fn status_of(error: &MountError) -> Status {
    Status::new(
        grpc_code(classify(error).failure),
        capped(error.to_string(), MAX_STATUS_MESSAGE_BYTES),
    )
}

/// Largest status message: it travels in HTTP/2 trailers, and a class with hundreds of
/// broken objects must not produce one the driver's client cannot read.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 8 * 1024;

/// Never UNAVAILABLE: the driver retries that three times on top of our own retries, so
/// a dependency that did not answer is INTERNAL here.
///
/// Only codes the kubelet treats as final. After DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
/// UNAVAILABLE, ABORTED or CANCELLED it keeps the target and retries, and the driver
/// (v1.6, rotation on) answers that retry with success without mounting anything, so
/// the pod would start with an empty directory. So a mount past its deadline is
/// INTERNAL, and one over a limit OUT_OF_RANGE (our metrics still tell them apart by
/// their code label: MountTimeout, LimitExceeded, MemoryPressure).
fn grpc_code(failure: Failure) -> Code {
    match failure {
        Failure::Invalid => Code::InvalidArgument,
        Failure::NotFound => Code::NotFound,
        Failure::Denied => Code::PermissionDenied,
        Failure::Precondition => Code::FailedPrecondition,
        Failure::Unavailable | Failure::Internal | Failure::Timeout => Code::Internal,
        Failure::Exhausted => Code::OutOfRange,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::failover::{ClientKind, ErrorClass};
    use crate::domain::region::Region;
    use crate::ports::{IdentityError, SinkError, StoreError};

    fn code_of(error: &MountError) -> Code {
        status_of(error).code()
    }

    fn fetch(class: ErrorClass) -> MountError {
        MountError::Fetch {
            object: "object \"s\" (#1)".into(),
            region: Region::parse("us-east-1").unwrap(),
            error: StoreError::new(class, "boom"),
            also_failed: 0,
        }
    }

    #[test]
    fn every_failure_is_final_for_the_kubelet() {
        // The kubelet's non-final codes: after them it keeps the target and retries, and
        // the driver may answer that retry with success without mounting.
        let not_final = [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::Aborted,
        ];
        for failure in [
            Failure::Invalid,
            Failure::NotFound,
            Failure::Denied,
            Failure::Precondition,
            Failure::Unavailable,
            Failure::Internal,
            Failure::Timeout,
            Failure::Exhausted,
        ] {
            let code = grpc_code(failure);
            assert!(!not_final.contains(&code), "{failure:?} maps to {code:?}");
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
            Code::Internal
        );
    }

    #[test]
    fn identity_failures_keep_their_codes() {
        let unavailable = IdentityError::Unavailable("down".to_string().into());
        assert_eq!(
            code_of(&MountError::Identity(unavailable.clone())),
            Code::Internal
        );
        assert_eq!(
            code_of(&MountError::RegionLookup(unavailable)),
            Code::Internal
        );
        let region = IdentityError::Region("no label".to_string().into());
        assert_eq!(
            code_of(&MountError::RegionLookup(region)),
            Code::FailedPrecondition
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
