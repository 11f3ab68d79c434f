//! The default modes of an object's files: the object's filePermission, else the
//! mount's; for files that may hold a private key, 0400.

use crate::domain::certificate;
use crate::domain::mode::FileMode;

/// The default modes of one object's files. A file that may hold a private key (an ACM
/// object's own file, and its jmesPath entries other than the certificate and chain)
/// is 0400 unless the class says otherwise: readable by the pod's root user only.
#[derive(Debug, Clone, Copy)]
pub(super) struct Modes {
    /// The object's filePermission, when given.
    pub explicit: Option<FileMode>,
    pub class_default: FileMode,
    pub holds_key: bool,
}

impl Modes {
    pub fn own_file(self) -> FileMode {
        self.explicit.unwrap_or(if self.holds_key {
            FileMode::KEY
        } else {
            self.class_default
        })
    }

    /// The mode of a jmesPath entry that gives none.
    pub fn entry(self, path: &str) -> FileMode {
        let key = self.holds_key && !certificate::selects_public_part(path);
        self.explicit.unwrap_or(if key {
            FileMode::KEY
        } else {
            self.class_default
        })
    }
}
