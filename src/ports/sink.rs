//! Where the files of a mount go: the pod's volume, or back to the driver.

use async_trait::async_trait;

use crate::domain::mode::FileMode;
use crate::domain::naming::FileName;
use crate::domain::secret::SecretValue;

/// One file of a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: FileName,
    pub mode: FileMode,
    pub contents: SecretValue,
}

/// What the sink did with the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Written into the target directory.
    Written,
    /// Not written: the driver writes them (driver-writes mode).
    ForDriver(Vec<OutputFile>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The target path is unusable (missing, not a directory, not absolute).
    #[error("target path {path}: {reason}")]
    Target { path: String, reason: String },
    /// Writing failed; the target was left as it was.
    #[error("writing {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Publishes every file of one mount.
///
/// Contract: all files become visible together or none does; on `Err` the target
/// directory is exactly as it was before the call. Files that an earlier publish of
/// this sink wrote and that `files` no longer names are removed.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MountSink: Send + Sync {
    async fn publish(&self, target: &str, files: Vec<OutputFile>) -> Result<Published, SinkError>;
}
