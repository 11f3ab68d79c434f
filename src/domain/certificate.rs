//! An ACM certificate as a mount sees it: a JSON document of three PEM texts,
//! `certificate`, `certificateChain` and `privateKey`, so that jmesPath entries pick each
//! into its own file (`tls.crt`, `tls.key`) as they pick keys of a JSON secret. The
//! object's own file is the bundle: the certificate, its chain, then the key, which is
//! what servers such as nginx and HAProxy read from one file.
//!
//! The store adapter decrypts the key and hands the three texts here; everything after
//! (the value cache, jmesPath, the files) works on the document like on any value.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use super::secret::SecretValue;

/// The document's fields, as jmesPath paths name them.
pub const CERTIFICATE: &str = "certificate";
pub const CHAIN: &str = "certificateChain";
pub const PRIVATE_KEY: &str = "privateKey";

/// What is wrong with a certificate's document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the exported certificate has no {0}")]
    Missing(&'static str),
    #[error("the certificate's {0} is not PEM text")]
    NotPem(&'static str),
    #[error("the certificate's document is not the provider's own (a bug)")]
    Document,
}

#[derive(Serialize)]
struct Out<'a> {
    certificate: &'a str,
    #[serde(rename = "certificateChain")]
    chain: &'a str,
    #[serde(rename = "privateKey")]
    private_key: &'a str,
}

/// The same, read back as borrowed JSON text: serde_json would unescape each string
/// into a scratch buffer of its own, which is freed without being wiped.
#[derive(Deserialize)]
struct In<'a> {
    #[serde(borrow)]
    certificate: &'a RawValue,
    #[serde(rename = "certificateChain", borrow)]
    chain: &'a RawValue,
    #[serde(rename = "privateKey", borrow)]
    private_key: &'a RawValue,
}

/// The document of one export. The chain may be empty (a self-signed root has none);
/// the certificate and key may not, and each text must look like PEM.
pub fn document(
    certificate: &str,
    chain: &str,
    private_key: &str,
) -> Result<SecretValue, CertificateError> {
    for (field, text, required) in [
        (CERTIFICATE, certificate, true),
        (CHAIN, chain, false),
        (PRIVATE_KEY, private_key, true),
    ] {
        if text.trim().is_empty() {
            if required {
                return Err(CertificateError::Missing(field));
            }
            continue;
        }
        if !looks_like_pem(text) {
            return Err(CertificateError::NotPem(field));
        }
    }
    // Sized for the worst case of the text `looks_like_pem` lets through (printable ASCII
    // and line breaks: at most two bytes each once escaped), so the buffer never grows:
    // growing would leave an unwiped copy of the key behind.
    let room = 2 * (certificate.len() + chain.len() + private_key.len()) + 128;
    let mut out = Zeroizing::new(Vec::with_capacity(room));
    let fields = Out {
        certificate,
        chain,
        private_key,
    };
    serde_json::to_writer(&mut *out, &fields).map_err(|_| CertificateError::Document)?;
    Ok(SecretValue::new(std::mem::take(&mut *out)))
}

/// The object's own file: the certificate, its chain, then the key, each ending in a
/// line break.
pub fn bundle(document: &[u8]) -> Result<SecretValue, CertificateError> {
    let parts: In = serde_json::from_slice(document).map_err(|_| CertificateError::Document)?;
    let texts = [parts.certificate, parts.chain, parts.private_key];
    // A text unescapes to fewer bytes than its JSON form: with one line break more
    // each, the buffer never grows.
    let room = texts.iter().map(|t| t.get().len() + 1).sum();
    let mut out = Zeroizing::new(Vec::with_capacity(room));
    for text in texts {
        let start = out.len();
        unescape_into(text.get(), &mut out)?;
        if out.len() > start && out.last() != Some(&b'\n') {
            out.push(b'\n');
        }
    }
    Ok(SecretValue::new(std::mem::take(&mut *out)))
}

/// A JSON string of the document (quotes included) unescaped onto `out`. Its texts are
/// printable ASCII and line breaks, so only the short escapes can occur.
fn unescape_into(json: &str, out: &mut Vec<u8>) -> Result<(), CertificateError> {
    let text = json
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or(CertificateError::Document)?;
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        out.push(match byte {
            b'\\' => match bytes.next() {
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b'"') => b'"',
                Some(b'\\') => b'\\',
                Some(b'/') => b'/',
                _ => return Err(CertificateError::Document),
            },
            other => other,
        });
    }
    Ok(())
}

/// Whether a jmesPath entry's path picks only public parts (the certificate or its
/// chain), so its file keeps the class's default mode. Any other path may reach the key.
pub fn selects_public_part(path: &str) -> bool {
    matches!(path.trim(), CERTIFICATE | CHAIN)
}

/// PEM armour around printable ASCII and line breaks: anything else (control bytes,
/// which JSON escapes in six bytes) is not PEM, and is refused.
fn looks_like_pem(text: &str) -> bool {
    let printable = text
        .bytes()
        .all(|b| matches!(b, b' '..=b'~' | b'\n' | b'\r'));
    let text = text.trim();
    printable
        && text.starts_with("-----BEGIN ")
        && text.ends_with("-----")
        && text.contains("-----END ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const CHAIN_PEM: &str =
        "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIID\n-----END CERTIFICATE-----";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    #[test]
    fn the_document_names_each_part_for_jmes_path() {
        let doc = document(CERT, CHAIN_PEM, KEY).unwrap();
        let json: serde_json::Value = serde_json::from_slice(doc.expose()).unwrap();
        assert_eq!(json[CERTIFICATE], CERT);
        assert_eq!(json[CHAIN], CHAIN_PEM);
        assert_eq!(json[PRIVATE_KEY], KEY);
        assert_eq!(json.as_object().unwrap().len(), 3);
    }

    #[test]
    fn the_bundle_is_certificate_then_chain_then_key_each_on_its_own_lines() {
        let doc = document(CERT, CHAIN_PEM, KEY).unwrap();
        let bundle = bundle(doc.expose()).unwrap();
        let text = std::str::from_utf8(bundle.expose()).unwrap();
        assert_eq!(text, format!("{CERT}{CHAIN_PEM}\n{KEY}"));
        let blocks: Vec<&str> = text.matches("-----BEGIN ").collect();
        assert_eq!(blocks.len(), 4);
        assert!(text.find("MIIB") < text.find("MIIC"));
        assert!(text.find("MIID") < text.find("MIIE"));
    }

    #[test]
    fn the_bundle_holds_the_texts_exactly_whatever_json_escaped() {
        let key = "-----BEGIN PRIVATE KEY-----\r\nMI/\\\"E\r\n-----END PRIVATE KEY-----";
        let doc = document(CERT, CHAIN_PEM, key).unwrap();
        let bundle = bundle(doc.expose()).unwrap();
        assert_eq!(
            bundle.expose(),
            format!("{CERT}{CHAIN_PEM}\n{key}\n").as_bytes()
        );
    }

    #[test]
    fn a_certificate_without_chain_bundles_the_certificate_and_key() {
        let doc = document(CERT, "", KEY).unwrap();
        let text = String::from_utf8(bundle(doc.expose()).unwrap().expose().to_vec()).unwrap();
        assert_eq!(text, format!("{CERT}{KEY}"));
    }

    #[test]
    fn a_missing_or_foreign_part_is_refused_by_name() {
        assert_eq!(
            document("", CHAIN_PEM, KEY),
            Err(CertificateError::Missing(CERTIFICATE))
        );
        assert_eq!(
            document(CERT, CHAIN_PEM, "  \n"),
            Err(CertificateError::Missing(PRIVATE_KEY))
        );
        assert_eq!(
            document(CERT, "<html>", KEY),
            Err(CertificateError::NotPem(CHAIN))
        );
        assert_eq!(
            document(CERT, CHAIN_PEM, "hunter2"),
            Err(CertificateError::NotPem(PRIVATE_KEY))
        );
        assert_eq!(
            document(
                CERT,
                CHAIN_PEM,
                "-----BEGIN PRIVATE KEY-----\n\u{7}\n-----END PRIVATE KEY-----"
            ),
            Err(CertificateError::NotPem(PRIVATE_KEY)),
            "a control byte"
        );
        for foreign in [
            &b"{\"certificate\": 1}"[..],
            br#"{"certificate": "a", "certificateChain": "", "privateKey": "\u0041"}"#,
            b"not json",
        ] {
            assert_eq!(bundle(foreign).unwrap_err(), CertificateError::Document);
        }
    }

    #[test]
    fn only_the_certificate_and_chain_are_public_parts() {
        assert!(selects_public_part("certificate"));
        assert!(selects_public_part(" certificateChain "));
        for path in [
            "privateKey",
            "@",
            "*",
            "[certificate, privateKey]",
            "join('', *)",
        ] {
            assert!(!selects_public_part(path), "{path}");
        }
    }
}
