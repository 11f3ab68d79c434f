//! A mount's files: each with its contents, as the sink writes them, and without, as
//! people and the response see them.

use super::mode::FileMode;
use super::naming::FileName;
use super::secret::SecretValue;

/// One file of a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: FileName,
    pub mode: FileMode,
    pub contents: SecretValue,
}

/// A file of a mount, without its contents: what people and the response see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub path: String,
    pub mode: FileMode,
    pub version: String,
}
