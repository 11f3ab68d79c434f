//! The rules of an `objectType: acm` entry: named by a certificate ARN (its
//! failoverObject too), no version, label or encoding, served only where the operator
//! turned certificates on. (The 0400 default of the files that may hold its key is in
//! `modes.rs`.)

use super::raw::RawObject;
use super::rules::ObjectChecker;
use super::Rule;
use crate::domain::arn::Arn;
use crate::domain::encoding::Encoding;
use crate::domain::text::bounded;

/// How an operator turns certificates on, for every message that says so.
pub const TURN_ON: &str = "--acm-certificates (chart value acmCertificates: true)";

/// The refusal of `select` with `objectType: acm`.
pub(super) const NO_CERTIFICATE_SELECTION: &str =
    "select chooses secrets or parameters; list each acm certificate by its ARN";

impl ObjectChecker<'_, '_> {
    /// What an ACM object must be (turned on, named by an ARN: the ARN's own rules are
    /// those of every ARN) and cannot have: a version or label (ExportCertificate exports
    /// the certificate's current issue), or an objectEncoding (the value is PEM text).
    pub(super) fn certificate_fields(&mut self, name: &str, raw: &RawObject) {
        if !self.ctx.certificates {
            self.fail(
                name,
                Rule::Certificate,
                format!("ACM certificates are off on this node: the operator turns them on with {TURN_ON}"),
            );
        }
        if !Arn::looks_like_arn(name) {
            self.fail(
                name,
                Rule::Certificate,
                "an acm object is named by its certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)",
            );
        }
        for (field, set) in [
            ("objectVersion", raw.object_version.is_some()),
            ("objectVersionLabel", raw.object_version_label.is_some()),
        ] {
            if set {
                self.fail(
                    name,
                    Rule::Certificate,
                    format!("an acm object cannot set {field}: ACM exports the certificate's current issue"),
                );
            }
        }
        if raw
            .object_encoding
            .as_deref()
            .is_some_and(|e| Encoding::parse(e).is_ok_and(|e| e != Encoding::Utf8))
        {
            self.fail(
                name,
                Rule::Certificate,
                "an acm object cannot set objectEncoding: its files are PEM text",
            );
        }
    }

    /// Whether an ACM ARN names a certificate (`certificate/<id>`); fails the object when
    /// not, `within` saying where (`failoverObject`).
    pub(super) fn certificate_resource(
        &mut self,
        name: &str,
        within: Option<&str>,
        arn: &Arn,
    ) -> bool {
        if arn.resource.starts_with("certificate/") {
            return true;
        }
        let prefix = within.map(|w| format!("{w}: ")).unwrap_or_default();
        self.fail(
            name,
            Rule::Certificate,
            format!(
                "{prefix}the ACM ARN's resource `{}` is not a certificate (certificate/<id>)",
                bounded(&arn.resource)
            ),
        );
        false
    }

    /// A failoverObject of an acm object: a certificate ARN (checked with the other ARN
    /// rules), and no label (its version must equal the object's, which has none).
    pub(super) fn certificate_failover(&mut self, name: &str, fo_name: &str, label: Option<&str>) {
        if !Arn::looks_like_arn(fo_name) {
            self.fail(
                name,
                Rule::Certificate,
                "failoverObject.objectName of an acm object must be a certificate ARN",
            );
        }
        if label.is_some() {
            self.fail(
                name,
                Rule::Certificate,
                "failoverObject of an acm object cannot set objectVersionLabel: ACM exports the certificate's current issue",
            );
        }
    }
}
