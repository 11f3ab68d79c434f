//! Values that must never reach a log line: secret contents and service-account tokens.
//! Their `Debug` and `Display` print only a length, so a stray `{:?}` cannot leak them.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

/// The bytes of a secret or parameter value. Cheap to clone (shared), redacted when
/// printed, and wiped when the last clone is dropped: values live on in the node-wide
/// cache, and freed memory must not keep them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Arc<Zeroizing<Vec<u8>>>);

impl SecretValue {
    /// Takes the bytes as they are (no copy, so no unwiped copy is left behind).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Arc::new(Zeroizing::new(bytes.into())))
    }

    /// The raw value: the only way to read it, so every read is easy to find.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted, {} bytes>)", self.0.len())
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0.len())
    }
}

/// A service-account token handed over by the driver. Redacted when printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Self(Arc::from(token.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted token>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_value_debug_and_display_do_not_show_the_value() {
        let value = SecretValue::new(b"hunter2".to_vec());
        assert!(!format!("{value:?}").contains("hunter2"));
        assert!(!format!("{value}").contains("hunter2"));
        assert_eq!(value.expose(), b"hunter2");
    }

    #[test]
    fn token_debug_and_display_do_not_show_the_token() {
        let token = Token::new("eyJhbGciOi.secret");
        assert!(!format!("{token:?}").contains("eyJ"));
        assert!(!format!("{token}").contains("eyJ"));
    }
}
