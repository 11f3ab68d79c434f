//! An ACM certificate as a mount sees it: a JSON document of three PEM texts,
//! `certificate`, `certificateChain` and `privateKey`, so that jmesPath entries pick each
//! into its own file (`tls.crt`, `tls.key`) as they pick keys of a JSON secret. The
//! object's own file is the bundle: the certificate, its chain, then the key, which is
//! what servers such as nginx and HAProxy read from one file.
//!
//! The store adapter decrypts the key and hands the three texts here; everything after
//! (the value cache, jmesPath, the files) works on the document like on any value.

use serde::{Deserialize, Serialize};
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

/// The same, read back; each text is wiped when dropped.
#[derive(Deserialize)]
struct In {
    certificate: Zeroizing<String>,
    #[serde(rename = "certificateChain", default)]
    chain: Zeroizing<String>,
    #[serde(rename = "privateKey")]
    private_key: Zeroizing<String>,
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
    // Sized for the worst case of PEM text (every line break escaped as two bytes), so
    // the buffer never grows: growing would leave an unwiped copy of the key behind.
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
    let texts = [&parts.certificate, &parts.chain, &parts.private_key];
    let room = texts.iter().map(|t| t.len() + 1).sum();
    let mut out = Zeroizing::new(Vec::with_capacity(room));
    for text in texts {
        if text.is_empty() {
            continue;
        }
        out.extend_from_slice(text.as_bytes());
        if !text.ends_with('\n') {
            out.push(b'\n');
        }
    }
    Ok(SecretValue::new(std::mem::take(&mut *out)))
}

/// Whether a jmesPath entry's path picks only public parts (the certificate or its
/// chain), so its file keeps the class's default mode. Any other path may reach the key.
pub fn selects_public_part(path: &str) -> bool {
    matches!(path.trim(), CERTIFICATE | CHAIN)
}

fn looks_like_pem(text: &str) -> bool {
    let text = text.trim();
    text.starts_with("-----BEGIN ") && text.ends_with("-----") && text.contains("-----END ")
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
            bundle(b"{\"certificate\": 1}").unwrap_err(),
            CertificateError::Document
        );
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
