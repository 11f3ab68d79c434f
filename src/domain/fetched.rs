//! What a store answers: a value with the version it came from, and a selection's
//! matches. The store port hands them to the core, and planning turns them into files.

use super::secret::SecretValue;

/// A value and the version it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub value: SecretValue,
    /// Secrets Manager VersionId, or the SSM version number in decimal.
    pub version: String,
}

/// One match of a selection: the store's name for it, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub fetched: Fetched,
}
