//! `objectEncoding`: values stored as text that stand for bytes (certificates and
//! keystores kept as base64 or hex), decoded before they are written. The field name
//! and its values follow the Azure provider's; the values are case-sensitive, as the
//! existing provider's `objectType` is.

use base64::Engine;
use zeroize::Zeroizing;

use super::secret::SecretValue;
use super::text::bounded;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Written as stored (the default, and what the existing provider does).
    #[default]
    Utf8,
    /// Standard alphabet (`+`, `/`) with `=` padding.
    Base64,
    /// Two hex digits per byte, either case.
    Hex,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    #[error("objectEncoding `{}` must be utf-8, base64 or hex", bounded(.0))]
    Unknown(String),
    #[error("objectEncoding `{}`: values are case-sensitive, write `{}`", bounded(.0), .1)]
    Case(String, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "the value is not valid base64 (standard alphabet with = padding; line breaks are ignored)"
    )]
    Base64,
    /// The value decodes as URL-safe base64 (`-` and `_` instead of `+` and `/`).
    #[error(
        "the value is URL-safe base64 (- or _): only the standard alphabet (+ and /) is accepted"
    )]
    Base64UrlSafe,
    #[error(
        "the value is not valid hex (an even number of digits 0-9, a-f; line breaks are ignored)"
    )]
    Hex,
}

impl Encoding {
    /// `utf-8` (or `utf8`), `base64` or `hex`, exactly; another case of one of them is
    /// refused with the spelling to use.
    pub fn parse(text: &str) -> Result<Encoding, EncodingError> {
        let exact = |text: &str| match text {
            "utf-8" | "utf8" => Some((Encoding::Utf8, "utf-8")),
            "base64" => Some((Encoding::Base64, "base64")),
            "hex" => Some((Encoding::Hex, "hex")),
            _ => None,
        };
        match (exact(text), exact(&text.to_ascii_lowercase())) {
            (Some((encoding, _)), _) => Ok(encoding),
            (None, Some((_, spelling))) => Err(EncodingError::Case(text.to_string(), spelling)),
            (None, None) => Err(EncodingError::Unknown(text.to_string())),
        }
    }

    /// The bytes `value` stands for. Whitespace (line breaks of wrapped base64, a
    /// trailing newline) is ignored. Errors never quote the value.
    pub fn decode(self, value: &SecretValue) -> Result<SecretValue, DecodeError> {
        let text = || -> Zeroizing<Vec<u8>> {
            Zeroizing::new(
                value
                    .expose()
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect(),
            )
        };
        let decoded = match self {
            Encoding::Utf8 => return Ok(value.clone()),
            Encoding::Base64 => {
                let text = text();
                base64::engine::general_purpose::STANDARD
                    .decode(&*text)
                    .map_err(|_| {
                        if is_url_safe_base64(&text) {
                            DecodeError::Base64UrlSafe
                        } else {
                            DecodeError::Base64
                        }
                    })?
            }
            Encoding::Hex => hex::decode(&*text()).map_err(|_| DecodeError::Hex)?,
        };
        Ok(SecretValue::new(decoded))
    }
}

/// Whether `text` (whitespace removed) is base64 in the URL-safe alphabet, padded or
/// not: only then does the error say so. A stray `-` in text that is not base64 at all
/// is just not base64.
fn is_url_safe_base64(text: &[u8]) -> bool {
    use base64::engine::{general_purpose::GeneralPurposeConfig, DecodePaddingMode};
    const URL_SAFE_ANY_PADDING: base64::engine::GeneralPurpose =
        base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
    // The decoded bytes are the secret's: wiped when dropped.
    text.iter().any(|b| *b == b'-' || *b == b'_')
        && URL_SAFE_ANY_PADDING
            .decode(text)
            .map(Zeroizing::new)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> SecretValue {
        SecretValue::new(text.as_bytes().to_vec())
    }

    #[test]
    fn names_as_azure_spells_them_case_sensitive() {
        assert_eq!(Encoding::parse("base64"), Ok(Encoding::Base64));
        assert_eq!(Encoding::parse("hex"), Ok(Encoding::Hex));
        assert_eq!(Encoding::parse("utf-8"), Ok(Encoding::Utf8));
        assert_eq!(Encoding::parse("utf8"), Ok(Encoding::Utf8));
        assert_eq!(
            Encoding::parse("BASE64"),
            Err(EncodingError::Case("BASE64".into(), "base64"))
        );
        assert_eq!(
            Encoding::parse("UTF8"),
            Err(EncodingError::Case("UTF8".into(), "utf-8"))
        );
        assert!(Encoding::parse("HEX")
            .unwrap_err()
            .to_string()
            .contains("case-sensitive, write `hex`"));
        assert_eq!(
            Encoding::parse("base32"),
            Err(EncodingError::Unknown("base32".into()))
        );
    }

    #[test]
    fn base64_standard_padded_with_line_breaks() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let wrapped: String = text
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let decoded = Encoding::Base64.decode(&value(&wrapped)).unwrap();
        assert_eq!(decoded.expose(), &bytes[..]);
    }

    #[test]
    fn invalid_base64_and_url_safe_are_refused_without_quoting_the_value() {
        assert_eq!(
            Encoding::Base64.decode(&value("not base64!")),
            Err(DecodeError::Base64)
        );
        assert_eq!(
            Encoding::Base64.decode(&value("YWJj")).unwrap().expose(),
            b"abc"
        );
        assert_eq!(
            Encoding::Base64.decode(&value("YWI")),
            Err(DecodeError::Base64),
            "padding is required"
        );
        assert_eq!(
            Encoding::Base64.decode(&value("-_-_")),
            Err(DecodeError::Base64UrlSafe)
        );
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb, 0xff]);
        assert_eq!(
            Encoding::Base64.decode(&value(&url_safe)),
            Err(DecodeError::Base64UrlSafe),
            "unpadded URL-safe base64 ({url_safe})"
        );
        // Text that is no base64 at all, whatever its dashes.
        for text in ["not-base64!", "user_name", "2026-12-04", "a-b"] {
            assert_eq!(
                Encoding::Base64.decode(&value(text)),
                Err(DecodeError::Base64),
                "{text}"
            );
        }
        assert!(!DecodeError::Base64.to_string().contains("not base64!"));
    }

    #[test]
    fn hex_either_case_and_even_length() {
        assert_eq!(
            Encoding::Hex.decode(&value("00ffAB\n")).unwrap().expose(),
            &[0x00, 0xff, 0xab]
        );
        assert_eq!(Encoding::Hex.decode(&value("abc")), Err(DecodeError::Hex));
        assert_eq!(Encoding::Hex.decode(&value("zz")), Err(DecodeError::Hex));
    }

    #[test]
    fn utf8_is_the_value_as_stored() {
        let v = value("  as is \n");
        assert_eq!(Encoding::Utf8.decode(&v).unwrap(), v);
    }
}
