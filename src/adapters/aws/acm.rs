//! ACM certificates: one ExportCertificate per certificate, with a fresh passphrase per
//! call; the key is decrypted in memory and the three PEM texts become the object's
//! document (`domain::certificate`), its version the certificate's serial.

use std::time::Instant;

use aws_smithy_types::Blob;

use super::errors::{from_sdk, Classified};
use super::store::AwsStore;
use crate::adapters::x509::{decrypt_key, passphrase, serial};
use crate::domain::certificate::document;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::objects::ObjectRef;
use crate::domain::region::Region;
use crate::ports::{Fetched, StoreError};

impl AwsStore {
    /// One ExportCertificate. The passphrase is wiped when this returns; the SDK's own
    /// copy of it (the request body) is not ours to wipe, and is useless without the
    /// answer, which is decrypted here and dropped.
    pub(super) async fn certificate(
        &self,
        client: &aws_sdk_acm::Client,
        region: &Region,
        object: &ObjectRef,
    ) -> Result<Fetched, Classified> {
        let what = format!("ExportCertificate {} in {region}", object.name);
        let passphrase = passphrase();
        let started = Instant::now();
        let sent = client
            .export_certificate()
            .certificate_arn(&object.name)
            .passphrase(Blob::new(passphrase.as_bytes()))
            .send()
            .await
            .map_err(|e| explain(from_sdk(&what, e)));
        self.record(
            "acm",
            "ExportCertificate",
            region,
            sent.as_ref().err().map(|c| c.error.class),
            started,
        );
        let out = sent?;
        // An answer we cannot use is the region's failure, not the class's: as a server
        // error, the failover region and a stale cached value may still stand in.
        let unusable = |reason: &dyn std::fmt::Display| {
            StoreError::new(
                ErrorClass::Server,
                format!("{what}: unusable answer: {reason}"),
            )
        };
        let (Some(certificate), Some(encrypted)) = (out.certificate(), out.private_key()) else {
            let missing = "it lacks the certificate or its private key";
            return Err(Classified::plain(unusable(&missing)));
        };
        let key = decrypt_key(encrypted, passphrase.as_bytes())
            .map_err(|e| Classified::plain(unusable(&e).caused_by(e)))?;
        let version =
            serial(certificate).map_err(|e| Classified::plain(unusable(&e).caused_by(e)))?;
        let value = document(
            certificate,
            out.certificate_chain().unwrap_or_default(),
            &key,
        )
        .map_err(|e| Classified::plain(unusable(&e).caused_by(e)))?;
        Ok(Fetched { value, version })
    }
}

/// ACM's refusals, with what to do about each. A certificate that cannot be exported
/// (imported, or public without export enabled) or is not issued yet is not the class's
/// fault: it fails as a precondition, not as an invalid class.
fn explain(mut classified: Classified) -> Classified {
    let hint = match classified.code.as_deref() {
        Some("ValidationException") => {
            classified.error.class = ErrorClass::Client(ClientKind::Other);
            "the certificate cannot be exported: only private certificates (AWS Private CA) and public certificates requested with export enabled can be; imported ones cannot"
        }
        Some("RequestInProgressException") => {
            classified.error.class = ErrorClass::Client(ClientKind::Other);
            "the certificate is not issued yet: complete its validation, and the next mount or rotation picks it up"
        }
        Some("InvalidArnException") => "objectName is not a valid ACM certificate ARN",
        Some("ResourceNotFoundException") => {
            "no such certificate in this region and account: check the ARN"
        }
        _ if classified.error.class == ErrorClass::Client(ClientKind::AccessDenied) => {
            "the pod's role needs acm:ExportCertificate on this certificate"
        }
        _ => return classified,
    };
    classified.error.message = format!("{} ({hint})", classified.error.message);
    classified
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str, class: ErrorClass) -> Classified {
        Classified {
            error: StoreError::new(
                class,
                format!("ExportCertificate arn in r: {code} (HTTP 400): m"),
            ),
            code: Some(code.to_string()),
        }
    }

    #[test]
    fn each_refusal_says_which_and_what_to_do() {
        let invalid = ErrorClass::Client(ClientKind::Invalid);
        let cases = [
            (
                "ValidationException",
                invalid,
                ClientKind::Other,
                "cannot be exported",
            ),
            (
                "RequestInProgressException",
                invalid,
                ClientKind::Other,
                "not issued yet",
            ),
            (
                "InvalidArnException",
                invalid,
                ClientKind::Invalid,
                "not a valid ACM certificate ARN",
            ),
            (
                "ResourceNotFoundException",
                ErrorClass::Client(ClientKind::NotFound),
                ClientKind::NotFound,
                "check the ARN",
            ),
            (
                "AccessDeniedException",
                ErrorClass::Client(ClientKind::AccessDenied),
                ClientKind::AccessDenied,
                "acm:ExportCertificate",
            ),
        ];
        for (code, class, kind, words) in cases {
            let out = explain(refused(code, class));
            assert_eq!(out.error.class, ErrorClass::Client(kind), "{code}");
            assert!(
                out.error.message.contains(words),
                "{code}: {}",
                out.error.message
            );
            assert!(
                out.error
                    .message
                    .starts_with("ExportCertificate arn in r: "),
                "{code}"
            );
        }
        let throttled = explain(refused("ThrottlingException", ErrorClass::Server));
        assert_eq!(throttled.error.class, ErrorClass::Server);
        assert_eq!(
            throttled.error.message,
            refused("ThrottlingException", ErrorClass::Server)
                .error
                .message,
            "no hint for a server error"
        );
    }
}
