//! Certificates and keys as ACM exports them: the serial of a PEM certificate (the
//! version a mount reports for it, so a renewal shows) and the PKCS #8 private key,
//! decrypted in memory with the export's one-time passphrase. RustCrypto's `pkcs8` and
//! `x509-cert` do the parsing and the cryptography; this module only decides what it
//! accepts.

use pkcs8::der::pem::PemLabel;
use pkcs8::der::{DecodePem, SecretDocument};
use pkcs8::pkcs5::pbes2::Kdf;
use pkcs8::pkcs5::EncryptionScheme;
use pkcs8::{EncryptedPrivateKeyInfoRef, LineEnding, PrivateKeyInfoRef};
use rand::distr::{Alphanumeric, SampleString};
use zeroize::Zeroizing;

/// Why an exported certificate or key was refused. Never carries key material (the
/// parsers' errors name a position or a tag, never a byte of the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the certificate is not a PEM X.509 certificate")]
    Certificate(#[source] pkcs8::der::Error),
    #[error("the private key is not an encrypted PKCS #8 PEM key")]
    NotEncrypted(#[source] pkcs8::Error),
    #[error("the private key is encrypted with {0}, which the provider does not accept")]
    Scheme(String),
    #[error("the private key does not decrypt with the export's passphrase")]
    Decrypt(#[source] pkcs8::pkcs5::Error),
    #[error("the decrypted private key is not a PKCS #8 key")]
    NotAKey(#[source] pkcs8::Error),
}

/// Most PBKDF2 iterations accepted. ACM and moto use a few thousand; an answer asking
/// for billions would hold a core for minutes.
const MAX_ITERATIONS: u32 = 1_000_000;

/// Length of a fresh passphrase: 32 letters and digits are 190 bits, and ACM accepts
/// 4 to 128 characters other than `#`, `$` and `%`.
const PASSPHRASE_CHARS: usize = 32;

/// A fresh passphrase for one export, from the thread's CSPRNG; wiped when dropped.
pub fn passphrase() -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(PASSPHRASE_CHARS));
    Alphanumeric.append_string(&mut rand::rng(), &mut text, PASSPHRASE_CHARS);
    text
}

/// The certificate's serial as colon-separated lower-case hex bytes (`0a:1b:…`).
pub fn serial(certificate_pem: &str) -> Result<String, KeyError> {
    let certificate = x509_cert::Certificate::from_pem(certificate_pem.trim().as_bytes())
        .map_err(KeyError::Certificate)?;
    Ok(serial_text(
        certificate.tbs_certificate().serial_number().as_bytes(),
    ))
}

/// A serial's bytes as text, without the sign byte DER puts before a first byte of
/// 0x80 or more (a serial is positive: the same number with or without it).
fn serial_text(der: &[u8]) -> String {
    let bytes = match der {
        [0, next, ..] if *next >= 0x80 => &der[1..],
        _ => der,
    };
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The private key, decrypted and re-armoured as `-----BEGIN PRIVATE KEY-----` PEM.
/// Only PBES2 with PBKDF2 (SHA-1 or SHA-2, at most [`MAX_ITERATIONS`]) is accepted: that
/// is what ACM sends, and scrypt's memory cost is the sender's to choose.
pub fn decrypt_key(encrypted_pem: &str, passphrase: &[u8]) -> Result<Zeroizing<String>, KeyError> {
    let (label, document) =
        SecretDocument::from_pem(encrypted_pem.trim()).map_err(not_encrypted)?;
    EncryptedPrivateKeyInfoRef::validate_pem_label(label)
        .map_err(|e| not_encrypted(pkcs8::der::Error::from(e)))?;
    let info = EncryptedPrivateKeyInfoRef::try_from(document.as_bytes())
        .map_err(KeyError::NotEncrypted)?;
    accept_scheme(&info.encryption_algorithm)?;
    // Decrypted in a buffer of ours, wiped when dropped: pkcs5's `decrypt` returns a
    // plain Vec, unwiped on its error path. (The AES key pkcs5 derives is not wiped by
    // it: a gap of the crate, for the length of one call.)
    let mut buffer = Zeroizing::new(info.encrypted_data.as_bytes().to_vec());
    let plain = info
        .encryption_algorithm
        .decrypt_in_place(passphrase, &mut buffer)
        .map_err(KeyError::Decrypt)?;
    // A wrong passphrase usually fails the padding; when it does not, the text is noise.
    PrivateKeyInfoRef::try_from(plain).map_err(KeyError::NotAKey)?;
    let key = SecretDocument::try_from(plain).map_err(not_encrypted)?;
    key.to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(not_encrypted)
}

fn not_encrypted(e: pkcs8::der::Error) -> KeyError {
    KeyError::NotEncrypted(e.into())
}

fn accept_scheme(scheme: &EncryptionScheme) -> Result<(), KeyError> {
    match scheme {
        EncryptionScheme::Pbes2(params) => match &params.kdf {
            Kdf::Pbkdf2(kdf) if kdf.iteration_count <= MAX_ITERATIONS => Ok(()),
            Kdf::Pbkdf2(kdf) => Err(KeyError::Scheme(format!(
                "{} PBKDF2 iterations (at most {MAX_ITERATIONS})",
                kdf.iteration_count
            ))),
            Kdf::Scrypt(_) => Err(KeyError::Scheme("scrypt".to_string())),
            _ => Err(KeyError::Scheme("an unknown key derivation".to_string())),
        },
        _ => Err(KeyError::Scheme("PBES1".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkcs8::pkcs5::pbes2;

    /// A PKCS #8 key (Ed25519, from ring), encrypted as ACM does with `iterations`.
    fn encrypted_key(passphrase: &str, iterations: u32) -> (Vec<u8>, String) {
        let rng = ring::rand::SystemRandom::new();
        let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let params =
            pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(iterations, &[7u8; 16], [9u8; 16])
                .unwrap();
        let info = PrivateKeyInfoRef::try_from(der.as_ref()).unwrap();
        let encrypted = info.encrypt_with_params(params, passphrase).unwrap();
        let pem = encrypted
            .to_pem(EncryptedPrivateKeyInfoRef::PEM_LABEL, LineEnding::LF)
            .unwrap();
        (der.as_ref().to_vec(), pem.to_string())
    }

    #[test]
    fn a_key_decrypts_with_its_passphrase_to_the_same_pkcs8() {
        let (der, pem) = encrypted_key("s3cret-pass", 2048);
        let plain = decrypt_key(&pem, b"s3cret-pass").unwrap();
        assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let (_, back) = SecretDocument::from_pem(&plain).unwrap();
        assert_eq!(back.as_bytes(), der.as_slice());
    }

    #[test]
    fn a_wrong_passphrase_or_a_foreign_text_is_refused_without_key_material() {
        let (_, pem) = encrypted_key("right", 2048);
        let wrong = decrypt_key(&pem, b"wrong").unwrap_err();
        assert!(
            matches!(wrong, KeyError::Decrypt(_) | KeyError::NotAKey(_)),
            "{wrong:?}"
        );
        let cut = format!("{}\n-----END ENCRYPTED PRIVATE KEY-----", &pem[..200]);
        assert!(matches!(
            decrypt_key(&cut, b"right"),
            Err(KeyError::NotEncrypted(_))
        ));
        assert!(matches!(
            decrypt_key("hunter2", b"right"),
            Err(KeyError::NotEncrypted(_))
        ));
        let plain = decrypt_key(&pem, b"right").unwrap();
        assert!(
            matches!(
                decrypt_key(&plain, b"right"),
                Err(KeyError::NotEncrypted(_))
            ),
            "an unencrypted key is not what ACM sends"
        );
        for error in [wrong, decrypt_key(&cut, b"right").unwrap_err()] {
            assert!(
                !format!("{error} {error:?}").contains("PRIVATE KEY"),
                "{error:?}"
            );
        }
    }

    #[test]
    fn a_costly_key_derivation_is_refused_before_it_runs() {
        let costly = pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
            MAX_ITERATIONS + 1,
            &[7u8; 16],
            [9u8; 16],
        )
        .unwrap();
        let err = accept_scheme(&EncryptionScheme::Pbes2(costly)).unwrap_err();
        assert!(
            err.to_string().contains("1000001 PBKDF2 iterations"),
            "{err}"
        );
        let usual =
            pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(2048, &[7u8; 16], [9u8; 16])
                .unwrap();
        assert_eq!(accept_scheme(&EncryptionScheme::Pbes2(usual)), Ok(()));
    }

    #[test]
    fn passphrases_are_fresh_and_acm_accepts_them() {
        let (a, b) = (passphrase(), passphrase());
        assert_ne!(*a, *b);
        assert_eq!(a.len(), PASSPHRASE_CHARS);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn a_certificate_that_is_not_one_has_no_serial() {
        let bad = serial("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----");
        assert!(matches!(bad, Err(KeyError::Certificate(_))), "{bad:?}");
        assert!(matches!(serial(""), Err(KeyError::Certificate(_))));
    }

    #[test]
    fn a_serial_is_its_positive_number_in_hex_bytes() {
        assert_eq!(serial_text(&[0x0a, 0x1b, 0xff]), "0a:1b:ff");
        assert_eq!(serial_text(&[0x00, 0x8f, 0x01]), "8f:01", "DER's sign byte");
        assert_eq!(serial_text(&[0x00, 0x7f]), "00:7f", "not a sign byte");
        assert_eq!(serial_text(&[0x05]), "05");
    }
}
