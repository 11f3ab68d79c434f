//! File modes. A mode is a value carried by each file of a mount, never process state,
//! so concurrent mounts with different permissions cannot affect each other.

use super::text::bounded;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("filePermission `{}` must be 4 octal digits, such as \"0644\"", bounded(&.0))]
    NotFourOctalDigits(String),
    #[error("permission `{}` must be a decimal file mode between 0 and 511 (\"420\" is 0644)", bounded(&.0))]
    BadDecimal(String),
}

impl FileMode {
    /// The mode the existing provider uses when nothing else is said: 0644.
    pub const DEFAULT: FileMode = FileMode(0o644);
    /// A file that holds a private key, unless the class says otherwise.
    pub const KEY: FileMode = FileMode(0o400);

    pub fn new(bits: u32) -> Option<FileMode> {
        (bits <= 0o777).then_some(FileMode(bits))
    }

    /// A class's `filePermission`: exactly four octal digits (`^[0-7]{4}$`).
    pub fn parse_octal(text: &str) -> Result<FileMode, ModeError> {
        let bad = || ModeError::NotFourOctalDigits(text.to_string());
        if text.len() != 4 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad());
        }
        let bits = u32::from_str_radix(text, 8).map_err(|_| bad())?;
        // Four octal digits can carry setuid/setgid/sticky bits; files of a mount never need them.
        FileMode::new(bits).ok_or_else(bad)
    }

    /// The request's `permission`: a JSON number holding the mode in decimal.
    pub fn parse_decimal(text: &str) -> Result<FileMode, ModeError> {
        let bad = || ModeError::BadDecimal(text.to_string());
        let bits: u32 = text.trim().parse().map_err(|_| bad())?;
        FileMode::new(bits).ok_or_else(bad)
    }

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl Default for FileMode {
    fn default() -> Self {
        FileMode::DEFAULT
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_permission_is_four_octal_digits() {
        assert_eq!(FileMode::parse_octal("0644").unwrap().bits(), 0o644);
        assert_eq!(FileMode::parse_octal("0400").unwrap().bits(), 0o400);
        for bad in ["644", "06444", "0648", "rw-r", "", "+644", "4755"] {
            assert!(FileMode::parse_octal(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn request_permission_is_decimal() {
        assert_eq!(FileMode::parse_decimal("420").unwrap().bits(), 0o644);
        assert_eq!(FileMode::parse_decimal("511").unwrap().bits(), 0o777);
        for bad in ["512", "-1", "0644x", "", "4.2"] {
            assert!(FileMode::parse_decimal(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn displays_as_octal() {
        assert_eq!(FileMode::parse_decimal("384").unwrap().to_string(), "0600");
    }
}
