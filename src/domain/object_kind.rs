//! Which store an object lives in (Secrets Manager, Parameter Store or ACM), and the largest value that store holds.

use std::fmt;

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    SecretsManager,
    SsmParameter,
    /// An ACM certificate, exported with its chain and private key (a JSON document of
    /// the three PEM texts: see `domain::certificate`).
    Acm,
}

impl ObjectKind {
    /// The largest value the store holds: Secrets Manager 64 KiB, Parameter Store 8 KiB
    /// (advanced parameters; standard ones 4 KiB). An exported certificate is a few KiB
    /// (a 4096-bit key, the certificate and a chain of two or three); 64 KiB refuses a
    /// hostile chain long before it costs anything.
    pub const fn max_value_bytes(self) -> usize {
        match self {
            ObjectKind::SecretsManager => 64 * 1024,
            ObjectKind::SsmParameter => 8 * 1024,
            ObjectKind::Acm => 64 * 1024,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::SecretsManager => "secretsmanager",
            ObjectKind::SsmParameter => "ssmparameter",
            ObjectKind::Acm => "acm",
        })
    }
}
