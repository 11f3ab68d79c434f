//! Which store an object lives in, and the largest value that store holds.

use std::fmt;

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    SecretsManager,
    SsmParameter,
}

impl ObjectKind {
    /// The largest value the store holds: Secrets Manager 64 KiB, Parameter Store 8 KiB
    /// (advanced parameters; standard ones 4 KiB).
    pub const fn max_value_bytes(self) -> usize {
        match self {
            ObjectKind::SecretsManager => 64 * 1024,
            ObjectKind::SsmParameter => 8 * 1024,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::SecretsManager => "secretsmanager",
            ObjectKind::SsmParameter => "ssmparameter",
        })
    }
}
