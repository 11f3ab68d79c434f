//! AWS errors → the domain's error classes, by error code first and HTTP status as the
//! fallback. The failover decision depends on this table, so it is tested row by row.

use crate::domain::failover::{ClientKind, ErrorClass};

/// Classifies a service error from its code (`ResourceNotFoundException`, ...) and the
/// HTTP status of the response.
pub fn classify(code: Option<&str>, status: Option<u16>) -> ErrorClass {
    if let Some(class) = code.and_then(by_code) {
        return class;
    }
    match status {
        Some(404) => ErrorClass::Client(ClientKind::NotFound),
        Some(401 | 403) => ErrorClass::Client(ClientKind::AccessDenied),
        Some(429) => ErrorClass::Server,
        Some(s) if (400..500).contains(&s) => ErrorClass::Client(ClientKind::Other),
        Some(s) if s >= 500 => ErrorClass::Server,
        // No response at all: the request never made it.
        _ => ErrorClass::Transport,
    }
}

fn by_code(code: &str) -> Option<ErrorClass> {
    use ClientKind::*;
    Some(match code {
        "ResourceNotFoundException"
        | "ParameterNotFound"
        | "ParameterVersionNotFound"
        | "ParameterVersionLabelNotFound"
        | "NoSuchEntity" => ErrorClass::Client(NotFound),
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidIdentityToken"
        | "IDPRejectedClaim"
        | "IDPCommunicationError"
        | "SignatureDoesNotMatch"
        | "MissingAuthenticationToken"
        | "DecryptionFailure"
        | "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException"
        | "RegionDisabledException" => ErrorClass::Client(AccessDenied),
        "ValidationException"
        | "InvalidArnException"
        | "InvalidParameterException"
        | "InvalidParameterValue"
        | "InvalidRequestException"
        | "InvalidParameters"
        | "InvalidKeyId"
        | "MalformedPolicyDocument"
        | "PackedPolicyTooLarge" => ErrorClass::Client(Invalid),
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "ThrottledException"
        | "RequestThrottled"
        | "ProvisionedThroughputExceededException" => ErrorClass::Server,
        "InternalServiceError"
        | "InternalServiceErrorException"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => ErrorClass::Server,
        _ => return None,
    })
}

/// True when the caller's credentials were refused as stale: drop them and retry once.
pub fn is_stale_credentials(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ExpiredTokenException"
                | "ExpiredToken"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientKind::*;

    #[test]
    fn codes_decide_first() {
        let rows: &[(&str, u16, ErrorClass)] = &[
            (
                "ResourceNotFoundException",
                400,
                ErrorClass::Client(NotFound),
            ),
            // moto answers 404 where AWS answers 400: same class either way.
            (
                "ResourceNotFoundException",
                404,
                ErrorClass::Client(NotFound),
            ),
            ("ParameterNotFound", 400, ErrorClass::Client(NotFound)),
            (
                "AccessDeniedException",
                400,
                ErrorClass::Client(AccessDenied),
            ),
            ("DecryptionFailure", 400, ErrorClass::Client(AccessDenied)),
            (
                "ExpiredTokenException",
                400,
                ErrorClass::Client(AccessDenied),
            ),
            (
                "InvalidIdentityToken",
                400,
                ErrorClass::Client(AccessDenied),
            ),
            ("ValidationException", 400, ErrorClass::Client(Invalid)),
            ("InvalidParameters", 400, ErrorClass::Client(Invalid)),
            ("InvalidRequestException", 400, ErrorClass::Client(Invalid)),
            ("ThrottlingException", 400, ErrorClass::Server),
            ("Throttling", 400, ErrorClass::Server),
            ("InternalServiceError", 500, ErrorClass::Server),
            ("ServiceUnavailable", 503, ErrorClass::Server),
        ];
        for (code, status, class) in rows {
            assert_eq!(classify(Some(code), Some(*status)), *class, "{code}");
        }
    }

    #[test]
    fn status_decides_when_the_code_is_unknown_or_missing() {
        assert_eq!(
            classify(None, Some(403)),
            ErrorClass::Client(AccessDenied),
            "unparseable 403 body"
        );
        assert_eq!(
            classify(Some("Weird"), Some(404)),
            ErrorClass::Client(NotFound)
        );
        assert_eq!(classify(None, Some(400)), ErrorClass::Client(Other));
        assert_eq!(classify(None, Some(429)), ErrorClass::Server);
        assert_eq!(classify(None, Some(500)), ErrorClass::Server);
        assert_eq!(classify(Some("Weird"), Some(502)), ErrorClass::Server);
        assert_eq!(classify(None, None), ErrorClass::Transport);
    }

    #[test]
    fn stale_credentials_are_recognised() {
        assert!(is_stale_credentials(Some("ExpiredTokenException")));
        assert!(!is_stale_credentials(Some("AccessDeniedException")));
        assert!(!is_stale_credentials(None));
    }
}
