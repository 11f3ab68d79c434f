//! What the inbound port carries: a mount as the driver sends it, the same parsed, and
//! what a successful mount produced.

use std::path::Path;

use crate::domain::attributes::{AuthMode, MountAttributes};
use crate::domain::files::FileSummary;
use crate::domain::mode::FileMode;
use crate::domain::mount_secrets::MountSecrets;
use crate::domain::objects::UnknownKey;
use crate::domain::target::TargetPath;
use crate::domain::versions::ObjectVersion;
use crate::ports::{IdentityError, OutputFile, PublishGate};

use super::budget::Reservation;
use super::error::MountError;

/// A mount as the driver sends it, before any parsing. Transports turn it into a
/// [`MountRequest`] with [`RawMountRequest::parse`]: from there on the core holds typed
/// values only.
#[derive(Clone, Default)]
pub struct RawMountRequest {
    /// JSON object of strings (spec §3).
    pub attributes: String,
    /// Default file mode in decimal, e.g. "420".
    pub permission: String,
    pub target_path: String,
    pub current_versions: Vec<ObjectVersion>,
    /// JSON object of strings: the volume's nodePublishSecretRef (secret values).
    pub secrets: String,
}

/// `secrets` holds the volume's secret in clear text: never printed.
impl std::fmt::Debug for RawMountRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMountRequest")
            .field("attributes", &self.attributes)
            .field("permission", &self.permission)
            .field("target_path", &self.target_path)
            .field("current_versions", &self.current_versions)
            .field(
                "secrets",
                &format_args!("<{} bytes redacted>", self.secrets.len()),
            )
            .finish()
    }
}

impl RawMountRequest {
    /// Parses every field; with `kubelet_dir`, the target must be a pod's CSI volume.
    /// The volume's secret matters only to classes that authenticate with it: for the
    /// others a secret that does not parse is ignored, as it always was.
    pub fn parse(self, kubelet_dir: Option<&Path>) -> Result<MountRequest, MountError> {
        let attributes = MountAttributes::parse(&self.attributes)?;
        let secrets = match MountSecrets::parse(&self.secrets) {
            Ok(secrets) => secrets,
            Err(e) if attributes.auth == AuthMode::SecretRef => {
                return Err(MountError::Identity(IdentityError::SecretRef(e)))
            }
            Err(_) => MountSecrets::default(),
        };
        Ok(MountRequest {
            attributes,
            default_mode: FileMode::parse_decimal(&self.permission)?,
            target: TargetPath::parse(&self.target_path, kubelet_dir)?,
            current_versions: self.current_versions,
            secrets,
            gate: PublishGate::default(),
        })
    }
}

/// A mount, parsed: what the service works on.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub attributes: MountAttributes,
    /// The file mode of objects that set no filePermission.
    pub default_mode: FileMode,
    pub target: TargetPath,
    pub current_versions: Vec<ObjectVersion>,
    /// The volume's secret, every value redacted.
    pub secrets: MountSecrets,
    /// Until when the files may be published (the transport's deadline).
    pub gate: PublishGate,
}

/// What a successful mount produced.
#[derive(Debug)]
pub struct MountOutcome {
    pub versions: Vec<ObjectVersion>,
    /// Files for the driver to write (driver-writes mode), else `None`.
    pub files: Option<Vec<OutputFile>>,
    /// Objects of the class (not counting jmesPath files).
    pub objects: usize,
    /// Every file of the mount, for people: path, mode, version.
    pub summary: Vec<FileSummary>,
    /// Keys of the class that name no field (ignored, as the existing provider does).
    pub unknown_keys: Vec<UnknownKey>,
    /// The memory budget this mount's values hold, given back when the outcome is
    /// dropped (in driver-writes mode it is twice the files, and the transport keeps it
    /// until the encoded response has been sent).
    pub held: Reservation,
}
